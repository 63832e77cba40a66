//! The native baselines' server loop: one thread, one epoll set, non-blocking
//! sockets on the kernel's TCP stack, the same [`Protocol`] code as the guests.
//! Shaped like the guests' loop (and redis's): read what is there, answer every
//! whole request, write the replies, wait.

use std::collections::{HashMap, TryReserveError};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use protocols::{Progress, Protocol, Received};

struct Conn<C> {
    stream: TcpStream,
    state: C,
    /// Received bytes not yet forming a whole request.
    input: Received,
    output: Vec<u8>,
    closing: bool,
}

/// libc's `EPOLL*` bits are `c_int`s; `epoll_event.events` is their bit pattern as a u32.
const EPOLLIN: u32 = libc::EPOLLIN.cast_unsigned();
const EPOLLOUT: u32 = libc::EPOLLOUT.cast_unsigned();

fn epoll_ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
    // The fd rides in the event's data; a negative one is no descriptor at all.
    let data = u64::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; the
    // kernel copies it and keeps no pointer to it.
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Serves `proto` on `listener` until an I/O error on the listener or epoll.
pub fn serve<P: Protocol>(listener: TcpListener, proto: &mut P) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    // SAFETY: epoll_create1 takes no pointers; the result is checked below.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let lfd = listener.as_raw_fd();
    epoll_ctl(epfd, libc::EPOLL_CTL_ADD, lfd, EPOLLIN)?;
    let mut conns: HashMap<RawFd, Conn<P::Conn>> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 64 * 1024];
    let mut scratch = Vec::with_capacity(64 * 1024);
    loop {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` has room for `max` entries, which the kernel fills.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), max, -1) };
        let Ok(n) = usize::try_from(n) else {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        };
        for ev in &events[..n] {
            // Only our own fds were added (see epoll_ctl), so this always fits.
            let Ok(fd) = RawFd::try_from(ev.u64) else { continue };
            if fd == lfd {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true)?;
                            stream.set_nodelay(true)?;
                            let cfd = stream.as_raw_fd();
                            epoll_ctl(epfd, libc::EPOLL_CTL_ADD, cfd, EPOLLIN)?;
                            let conn = Conn {
                                stream,
                                state: P::Conn::default(),
                                input: Received::default(),
                                output: Vec::new(),
                                closing: false,
                            };
                            conns.insert(cfd, conn);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&fd) else { continue };
            let keep = step(conn, proto, &mut buf, &mut scratch);
            let events = if conn.output.is_empty() { EPOLLIN } else { EPOLLOUT };
            if !keep {
                conns.remove(&fd); // closes the socket, which leaves the epoll set
            } else {
                epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events)?;
            }
        }
    }
}

/// Reads, answers and writes for one ready connection; `false` to drop it.
fn step<P: Protocol>(conn: &mut Conn<P::Conn>, proto: &mut P, buf: &mut [u8], scratch: &mut Vec<u8>) -> bool {
    if !conn.output.is_empty() {
        match conn.stream.write(&conn.output) {
            Ok(n) => {
                conn.output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
        if !conn.output.is_empty() {
            return true;
        }
        if conn.closing {
            return false;
        }
    }
    // A big request is read up to its end only: it fills its buffer exactly,
    // and the protocol may keep its value there (as the guests do).
    let buf = match conn.input.read_limit() {
        Some(limit) if limit < buf.len() => &mut buf[..limit],
        _ => buf,
    };
    let n = match conn.stream.read(buf) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
        Err(_) => return false,
    };
    scratch.clear();
    // No memory for the request: this connection ends, the others go on.
    let Ok(progress) = answer(conn, proto, &buf[..n], scratch) else { return false };
    conn.closing |= progress.close;
    if !scratch.is_empty() {
        match conn.stream.write(scratch) {
            Ok(w) => conn.output.extend_from_slice(&scratch[w..]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.output.extend_from_slice(scratch),
            Err(_) => return false,
        }
    }
    !(conn.closing && conn.output.is_empty())
}

/// Answers what `received` completes, keeping the partial request at its end.
fn answer<P: Protocol>(
    conn: &mut Conn<P::Conn>,
    proto: &mut P,
    received: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<Progress, TryReserveError> {
    if conn.input.is_empty() {
        let p = proto.handle(&mut conn.state, received, scratch);
        conn.input.keep_unanswered(received, &p)?;
        Ok(p)
    } else {
        conn.input.try_extend(received)?;
        let p = proto.handle_received(&mut conn.state, &conn.input, scratch);
        conn.input.answered(&p)?;
        Ok(p)
    }
}
