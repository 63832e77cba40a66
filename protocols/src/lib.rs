//! The request handling of the `kv` and `http` guests, shared with their native
//! baselines so that a benchmark compares the platforms, not two implementations.
//!
//! `no_std` + `alloc`, no dependencies, no floating point: it runs inside
//! unikernels built without SSE (the hvt build) as well as in ordinary Linux
//! processes. Each protocol is a [`Protocol`]: bytes received on one connection
//! in, replies out, with no I/O of its own.
//!
//! * [`resp`]: redis's RESP2 string commands, expiry, transactions and the
//!   handshakes of `redis-cli`, `redis-benchmark` and client libraries, with
//!   pipelining, inline commands and a `maxmemory` answered with `-OOM`.
//! * [`http`]: HTTP/1.1 (and 1.0) with keep-alive, pipelining and size limits,
//!   answering a small fixed page (for `wrk`).
//! * [`Received`]: a connection's unanswered bytes, in a buffer a protocol may
//!   keep part of: a big value is stored where it arrived, not copied.
#![no_std]

extern crate alloc;

pub mod http;
pub mod resp;

mod received;

use alloc::vec::Vec;

pub use received::{Received, Shared};

/// What one call of [`Protocol::handle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes at the start of the input that were complete requests, now answered;
    /// the caller drops them. A partial request at the end stays unconsumed.
    pub consumed: usize,
    /// Close the connection once the replies appended so far are sent (a
    /// protocol error, `QUIT`, `Connection: close`).
    pub close: bool,
    /// The partial request at `input[consumed..]` is big and will be at least
    /// this long (its header said so): a [`Received`] buffer grows toward it
    /// and is read into no further than that ([`Received::read_limit`]), so
    /// that it ends in one buffer of its size, which the protocol may keep a
    /// part of.
    pub big_request: Option<usize>,
}

impl Progress {
    /// `consumed` bytes answered, the connection stays open, nothing big pending.
    pub const fn answered(consumed: usize) -> Self {
        Progress { consumed, close: false, big_request: None }
    }

    /// `consumed` bytes answered, then the connection closes.
    pub const fn closing(consumed: usize) -> Self {
        Progress { consumed, close: true, big_request: None }
    }
}

/// A request/reply protocol over one byte stream.
pub trait Protocol {
    /// Per-connection state.
    type Conn: Default;

    /// Answers the complete requests at the start of `input` (pipelining: as many
    /// as there are), appending the replies to `out`.
    fn handle(&mut self, conn: &mut Self::Conn, input: &[u8], out: &mut Vec<u8>) -> Progress;

    /// As [`Protocol::handle`], on bytes in a buffer the protocol may keep a
    /// [`Shared`] part of past the call (a big value stays where it arrived
    /// instead of being copied). By default nothing is kept.
    fn handle_received(&mut self, conn: &mut Self::Conn, input: &Received, out: &mut Vec<u8>) -> Progress {
        self.handle(conn, input.bytes(), out)
    }

    /// The connection's request stayed incomplete for too long: append what to
    /// answer before it is closed (nothing by default; HTTP answers `408`).
    fn timed_out(&mut self, _conn: &mut Self::Conn, _out: &mut Vec<u8>) {}
}

/// Appends the decimal form of `n` to `out` (core::fmt is slower and larger).
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        for n in [0, 7, -7, 10, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, alloc::format!("{n}").into_bytes());
        }
    }
}
