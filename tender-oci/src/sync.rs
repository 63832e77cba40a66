//! `create` ⇄ init messages over a `SOCK_SEQPACKET` socket pair: one JSON message per
//! packet. EOF means the other side died.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// Largest message (error texts are short; the guest command line is at most 8 KiB).
const MAX_MSG: usize = 64 * 1024;

/// What the two sides say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// init → create: namespaces and cgroups joined; run the prestart hooks.
    NsReady,
    /// create → init: hooks done, go on.
    Go,
    /// init → create: everything is in place; it now waits for `start`.
    Ready {
        /// The guest's command line.
        guest_cmdline: String,
        /// The namespace interfaces redirected to the guest.
        net_ifaces: Vec<String>,
    },
    /// init → create: setup failed.
    Error(String),
}

/// Socket errors.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer closed (died).
    #[error("the other side closed the channel")]
    Closed,
    /// I/O.
    #[error("{0}")]
    Io(#[from] nix::Error),
    /// Not a message.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// A pair for parent and child.
pub fn pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
}

/// Sends one message.
pub fn send_msg(fd: impl AsFd, msg: &Msg) -> Result<(), SyncError> {
    let bytes = serde_json::to_vec(msg)?;
    send(fd.as_fd().as_raw_fd(), &bytes[..bytes.len().min(MAX_MSG)], MsgFlags::MSG_NOSIGNAL)?;
    Ok(())
}

/// Receives one message (blocking).
pub fn recv_msg(fd: impl AsFd) -> Result<Msg, SyncError> {
    let mut buf = vec![0u8; MAX_MSG];
    let n = loop {
        match recv(fd.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(nix::Error::EINTR) => continue,
            other => break other?,
        }
    };
    if n == 0 {
        return Err(SyncError::Closed);
    }
    Ok(serde_json::from_slice(&buf[..n])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_closed() {
        let (a, b) = pair().unwrap();
        let ready = Msg::Ready { guest_cmdline: "a b".into(), net_ifaces: vec!["eth0".into()] };
        send_msg(&a, &ready).unwrap();
        send_msg(&a, &Msg::Error("boom".into())).unwrap();
        assert_eq!(recv_msg(&b).unwrap(), ready);
        assert_eq!(recv_msg(&b).unwrap(), Msg::Error("boom".into()));
        drop(a);
        assert!(matches!(recv_msg(&b), Err(SyncError::Closed)));
    }
}
