//! The hvt hypercalls: decoding a port write into a typed request, and serving
//! it with the same host syscalls the spt model uses (docs/solo5-abi.md §6.5, §8).
//!
//! | nr | hypercall | host syscall |
//! |---|---|---|
//! | 1 | WALLTIME | `clock_gettime(CLOCK_REALTIME)` |
//! | 2 | PUTS | `write(1, …)` |
//! | 3 | POLL | `timerfd_settime` (relative) + `epoll_pwait` |
//! | 4 | BLOCK_WRITE | `pwrite64(fd, …)` |
//! | 5 | BLOCK_READ | `pread64(fd, …)` |
//! | 6 | NET_WRITE | `write(tapfd, …)` |
//! | 7 | NET_READ | `read(tapfd, …)` |
//! | 8 | HALT | none: the run loop ends and the process exits with the status |
//!
//! [`decode`] is pure; [`Hypercalls::handle`] reads the argument struct once
//! (the guest cannot change it under the tender), checks every pointer and
//! length in it through [`GuestRam::check`], calls the host, and writes the
//! output fields back.

use std::io;
use std::mem::offset_of;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use hypercall_abi::hvt::{
    HvtBlockIo, HvtHalt, HvtNetRead, HvtNetWrite, HvtPoll, HvtPuts, HvtTrapRegs, HvtWalltime, Hypercall,
    HALT_COOKIE_MAX, HYPERCALL_PIO_BASE, HYPERCALL_PIO_LAST,
};
use hypercall_abi::mft::MftType;
use hypercall_abi::spt::TIMER_EPOLL_DATA;
use hypercall_abi::{Handle, Solo5Result};
use nix::sys::epoll::{Epoll, EpollEvent};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};

use super::memory::{Access, AccessError, GuestRam, GuestRange};
use super::signals;
use crate::devices::AttachedDevices;
use crate::yield_set::YieldSet;

/// A port access as KVM reported it (`kvm_run.io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortIo {
    /// The port.
    pub port: u16,
    /// `out` (true) or `in`.
    pub out: bool,
    /// Bytes per access.
    pub size: u8,
    /// Accesses (more than 1 for `rep outs`/`ins`).
    pub count: u32,
    /// The first 4 data bytes, little-endian (the value of an `outl`).
    pub value: u32,
}

/// A decoded hypercall: which one, and where its argument struct is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The hypercall.
    pub call: Hypercall,
    /// Guest-physical address of its argument struct.
    pub gpa: u64,
}

/// A port access that is not a hypercall this run serves (fatal, as in Solo5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a single 4-byte `out` to a hypercall port.
    #[error("Invalid guest port access: port={:#x} ({}, {} x {} bytes): a hypercall is one 4-byte `out` to ports {HYPERCALL_PIO_BASE:#x}..={HYPERCALL_PIO_LAST:#x}", .0.port, if .0.out { "out" } else { "in" }, .0.count, .0.size)]
    Port(PortIo),
    /// A hypercall number with no handler in this run.
    #[error("Invalid guest hypercall: num={nr} ({why})")]
    Number {
        /// The number (port − 0x500).
        nr: u16,
        /// Why it is not served.
        why: &'static str,
    },
}

/// Which optional hypercalls this run serves: block calls only with a block
/// device attached, net calls only with a net device (as solo5-hvt registers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Served {
    /// BLOCK_READ, BLOCK_WRITE.
    pub block: bool,
    /// NET_READ, NET_WRITE.
    pub net: bool,
}

/// Turns a port access into a hypercall request (no guest memory is read).
pub fn decode(io: PortIo, served: Served) -> Result<Request, DecodeError> {
    if !io.out || io.size != 4 || io.count != 1 || !(HYPERCALL_PIO_BASE..=HYPERCALL_PIO_LAST).contains(&io.port) {
        return Err(DecodeError::Port(io));
    }
    let nr = io.port - HYPERCALL_PIO_BASE;
    let call = Hypercall::from_nr(nr).ok_or(DecodeError::Number { nr, why: "no such hypercall" })?;
    match call {
        Hypercall::BlockRead | Hypercall::BlockWrite if !served.block => {
            Err(DecodeError::Number { nr, why: "no block device is attached" })
        }
        Hypercall::NetRead | Hypercall::NetWrite if !served.net => {
            Err(DecodeError::Number { nr, why: "no net device is attached" })
        }
        _ => Ok(Request { call, gpa: u64::from(io.value) }),
    }
}

/// Why a hypercall ended the run (the guest's fault, or a host I/O failure that
/// Solo5 also treats as fatal).
#[derive(Debug, thiserror::Error)]
pub enum HypercallError {
    /// A bad pointer or length in the struct, or the struct itself.
    #[error("{}: {field}: {source}", .call.name())]
    Access {
        /// The hypercall.
        call: Hypercall,
        /// Which pointer: `argument struct`, `data`, `cookie`.
        field: &'static str,
        /// What was wrong with it.
        source: AccessError,
    },
    /// Writing to the console failed.
    #[error("PUTS: writing {len} bytes to stdout failed: {source}")]
    Console {
        /// Bytes.
        len: u64,
        /// Why.
        source: io::Error,
    },
    /// The host clock failed.
    #[error("WALLTIME: clock_gettime(CLOCK_REALTIME) failed: {0}")]
    Clock(nix::Error),
    /// timerfd/epoll failed.
    #[error("POLL: {what} failed: {source}")]
    Poll {
        /// Which call.
        what: &'static str,
        /// Why.
        source: nix::Error,
    },
    /// Block I/O failed or came up short (fatal in Solo5 too).
    #[error("Fatal error when {op} block device '{name}' ({len} bytes at offset {offset}): {source}")]
    Block {
        /// "reading" or "writing".
        op: &'static str,
        /// Device name.
        name: Arc<str>,
        /// Byte offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Why.
        source: TransferError,
    },
    /// Net I/O failed or came up short (fatal in Solo5 too).
    #[error("Fatal error when {op} net device '{name}' (tap {iface}, {len} bytes): {source}")]
    Net {
        /// "reading" or "writing".
        op: &'static str,
        /// Device name.
        name: Arc<str>,
        /// Tap name.
        iface: Arc<str>,
        /// Length.
        len: u64,
        /// Why.
        source: TransferError,
    },
}

/// Why a device transfer failed. Built after the filter is installed, so nothing in
/// it allocates (an allocation could need `brk` or `mmap`, which the filter kills):
/// OS errors are plain codes, names are shared `Arc`s.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Fewer bytes than asked (a block file shrunk under the guest, a tap's short write).
    #[error("short transfer of {0} bytes")]
    Short(usize),
    /// The host call failed.
    #[error(transparent)]
    Os(#[from] io::Error),
}

/// What the run loop does after a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Resume the guest.
    Resume,
    /// POLL was interrupted by a terminating signal: stop.
    Interrupted,
    /// HALT: exit with this status.
    Halt(i32),
}

/// An attached device as the hypercalls see it.
#[derive(Debug)]
enum Device<'a> {
    Block { fd: BorrowedFd<'a>, capacity: u64, name: Arc<str> },
    Net { fd: BorrowedFd<'a>, name: Arc<str>, iface: Arc<str> },
}

/// The POLL machinery: a relative timerfd and the taps in one epoll set.
#[derive(Debug)]
pub struct Poller {
    set: YieldSet,
}

impl Poller {
    /// An epoll set with the timer (data [`TIMER_EPOLL_DATA`]) and each tap
    /// (data = its handle), as solo5-hvt builds it.
    pub fn new<'a>(taps: impl IntoIterator<Item = (usize, BorrowedFd<'a>)>) -> Result<Self, HypercallError> {
        let set = YieldSet::new(taps).map_err(|e| HypercallError::Poll { what: e.what, source: e.source })?;
        Ok(Self { set })
    }

    /// The epoll set and timer, for the seccomp filter's parameters.
    pub fn set(&self) -> &YieldSet {
        &self.set
    }

    /// Waits up to `timeout_ns` for tap input. Returns the ready set and the
    /// number of ready devices, or `None` if a terminating signal arrived.
    fn poll(&self, timeout_ns: u64) -> Result<Option<(u64, i32)>, HypercallError> {
        const NS: u64 = 1_000_000_000;
        // Bit 0 forced: a zero timeout would disarm the timer and wait forever.
        let timeout = timeout_ns | 1;
        let value = TimeSpec::new((timeout / NS) as libc::time_t, (timeout % NS) as libc::c_long);
        self.set
            .timer()
            .set(Expiration::OneShot(value), TimerSetTimeFlags::empty())
            .map_err(|source| HypercallError::Poll { what: "timerfd_settime", source })?;
        let mut events = [EpollEvent::empty(); hypercall_abi::mft::MFT_MAX_ENTRIES];
        let events = &mut events[..self.set.nets() + 1];
        let n = loop {
            match epoll_pwait(self.set.epoll(), events) {
                Ok(n) => break n,
                Err(nix::Error::EINTR) if signals::pending().is_some() => return Ok(None),
                Err(nix::Error::EINTR) => continue,
                Err(source) => return Err(HypercallError::Poll { what: "epoll_pwait", source }),
            }
        };
        let mut ready = 0u64;
        let mut count = 0;
        for event in &events[..n] {
            let data = event.data();
            if data != TIMER_EPOLL_DATA && data < 64 {
                ready |= 1 << data;
                count += 1;
            }
        }
        Ok(Some((ready, count)))
    }
}

/// `epoll_pwait(epfd, events, n, -1, NULL)`: the syscall the spt guest uses
/// and the hvt filter allows (nix's `wait` would use `epoll_wait`).
fn epoll_pwait(epoll: &Epoll, events: &mut [EpollEvent]) -> nix::Result<usize> {
    let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `EpollEvent` is a transparent `libc::epoll_event`; the kernel
    // writes at most `max` of them into our exclusive borrow; no signal mask.
    let n = unsafe {
        libc::epoll_pwait(epoll.0.as_fd().as_raw_fd(), events.as_mut_ptr().cast(), max, -1, std::ptr::null())
    };
    // -1 and errno on failure, else the count written (0..=max).
    usize::try_from(n).map_err(|_| nix::errno::Errno::last())
}

use std::os::fd::AsRawFd;

/// Serves the hypercalls of one run.
#[derive(Debug)]
pub struct Hypercalls<'a> {
    ram: &'a GuestRam,
    console: BorrowedFd<'a>,
    poller: &'a Poller,
    /// Indexed by handle (manifest index).
    devices: Vec<Option<Device<'a>>>,
    /// What the HALT cookie pointed at, copied when the guest halted.
    trap_regs: Option<HvtTrapRegs>,
}

impl<'a> Hypercalls<'a> {
    /// Hypercalls over `ram`, writing the console to `console`, with `devices`.
    pub fn new(ram: &'a GuestRam, console: BorrowedFd<'a>, poller: &'a Poller, devices: &'a AttachedDevices) -> Self {
        let entries = devices.manifest.entries();
        let mut by_handle: Vec<Option<Device<'a>>> = (0..entries.len()).map(|_| None).collect();
        let name = |handle: usize| Arc::from(String::from_utf8_lossy(entries[handle].name_bytes()));
        for b in &devices.blocks {
            by_handle[b.handle] =
                Some(Device::Block { fd: b.file.as_fd(), capacity: b.capacity, name: name(b.handle) });
        }
        for n in &devices.nets {
            by_handle[n.handle] =
                Some(Device::Net { fd: n.tap.as_fd(), name: name(n.handle), iface: Arc::from(n.iface.as_str()) });
        }
        debug_assert!(entries.iter().enumerate().all(|(i, e)| match MftType::from_raw(e.device_type) {
            Some(MftType::BlockBasic) => matches!(by_handle[i], Some(Device::Block { .. })),
            Some(MftType::NetBasic) => matches!(by_handle[i], Some(Device::Net { .. })),
            _ => by_handle[i].is_none(),
        }));
        Self { ram, console, poller, devices: by_handle, trap_regs: None }
    }

    /// Size of the guest memory they serve.
    pub fn mem_size(&self) -> u64 {
        self.ram.size()
    }

    /// The trap registers the guest handed over with HALT (a non-zero cookie), if it did.
    pub fn trap_regs(&self) -> Option<HvtTrapRegs> {
        self.trap_regs
    }

    /// Which optional hypercalls exist in this run.
    pub fn served(&self) -> Served {
        Served {
            block: self.devices.iter().any(|d| matches!(d, Some(Device::Block { .. }))),
            net: self.devices.iter().any(|d| matches!(d, Some(Device::Net { .. }))),
        }
    }

    /// The device of a guest handle: Solo5 truncates the u64 handle to 32 bits.
    fn device(&self, handle: Handle) -> Option<&Device<'a>> {
        // cast: dropping the high 32 bits is Solo5's ABI (solo5-hvt does the same).
        #[allow(clippy::cast_possible_truncation)]
        let index = handle as u32;
        self.devices.get(index as usize)?.as_ref()
    }

    /// The hypercall's argument struct, checked for `access` and copied out.
    fn arg<T: zerocopy::FromBytes>(&self, req: Request, access: Access) -> Result<(GuestRange, T), HypercallError> {
        let range = self.check(req.call, "argument struct", req.gpa, size_of::<T>() as u64, access)?;
        Ok((range, self.ram.read_struct::<T>(range)))
    }

    fn check(
        &self,
        call: Hypercall,
        field: &'static str,
        gpa: u64,
        len: u64,
        access: Access,
    ) -> Result<GuestRange, HypercallError> {
        self.ram.check(gpa, len, access).map_err(|source| HypercallError::Access { call, field, source })
    }

    /// Serves one hypercall.
    pub fn handle(&mut self, req: Request) -> Result<Outcome, HypercallError> {
        match req.call {
            Hypercall::Walltime => self.walltime(req),
            Hypercall::Puts => self.puts(req),
            Hypercall::Poll => self.poll(req),
            Hypercall::BlockWrite | Hypercall::BlockRead => self.block(req),
            Hypercall::NetWrite => self.net_write(req),
            Hypercall::NetRead => self.net_read(req),
            Hypercall::Halt => self.halt(req),
        }
    }

    fn walltime(&self, req: Request) -> Result<Outcome, HypercallError> {
        let (arg, _) = self.arg::<HvtWalltime>(req, Access::Write)?;
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).map_err(HypercallError::Clock)?;
        // The wall clock is after the epoch, so the reinterpretations are lossless.
        let ns = now.tv_sec().cast_unsigned().wrapping_mul(1_000_000_000).wrapping_add(now.tv_nsec().cast_unsigned());
        self.ram.write_field(arg, offset_of!(HvtWalltime, nsecs), ns);
        Ok(Outcome::Resume)
    }

    fn puts(&self, req: Request) -> Result<Outcome, HypercallError> {
        let (_, HvtPuts { data, len }) = self.arg::<HvtPuts>(req, Access::Read)?;
        let range = self.check(req.call, "data", data, len, Access::Read)?;
        match self.ram.write_all_to(self.console, range) {
            Ok(()) => Ok(Outcome::Resume),
            // SIGINT/SIGTERM while stdout was full (a slow pipe): stop, as for POLL.
            Err(e) if e.kind() == io::ErrorKind::Interrupted && signals::pending().is_some() => {
                Ok(Outcome::Interrupted)
            }
            Err(source) => Err(HypercallError::Console { len, source }),
        }
    }

    fn poll(&self, req: Request) -> Result<Outcome, HypercallError> {
        let (arg, poll) = self.arg::<HvtPoll>(req, Access::Write)?;
        let Some((ready, count)) = self.poller.poll(poll.timeout_nsecs)? else {
            return Ok(Outcome::Interrupted);
        };
        self.ram.write_field(arg, offset_of!(HvtPoll, ready_set), ready);
        self.ram.write_field(arg, offset_of!(HvtPoll, ret), count);
        Ok(Outcome::Resume)
    }

    fn block(&self, req: Request) -> Result<Outcome, HypercallError> {
        let (arg, HvtBlockIo { handle, offset, data, len, .. }) = self.arg::<HvtBlockIo>(req, Access::Write)?;
        let ret = offset_of!(HvtBlockIo, ret);
        let Some(Device::Block { fd, capacity, name }) = self.device(handle) else {
            self.ram.write_field(arg, ret, Solo5Result::Einval as i32);
            return Ok(Outcome::Resume);
        };
        // Solo5's checks: the request lies inside the device. Size and alignment
        // are the guest's business on hvt (§6.5).
        let inside = len <= isize::MAX as u64
            && offset < *capacity
            && offset.checked_add(len).is_some_and(|end| end <= *capacity);
        if !inside {
            self.ram.write_field(arg, ret, Solo5Result::Einval as i32);
            return Ok(Outcome::Resume);
        }
        let (op, done) = if req.call == Hypercall::BlockWrite {
            let range = self.check(req.call, "data", data, len, Access::Read)?;
            ("writing", self.ram.pwrite_to(*fd, range, offset))
        } else {
            let range = self.check(req.call, "data", data, len, Access::Write)?;
            ("reading", self.ram.pread_from(*fd, range, offset))
        };
        let fatal = |source| HypercallError::Block { op, name: name.clone(), offset, len, source };
        match done {
            Ok(n) if n as u64 == len => {}
            Ok(n) => return Err(fatal(TransferError::Short(n))),
            Err(e) => return Err(fatal(e.into())),
        }
        self.ram.write_field(arg, ret, Solo5Result::Ok as i32);
        Ok(Outcome::Resume)
    }

    fn net_write(&self, req: Request) -> Result<Outcome, HypercallError> {
        let (arg, HvtNetWrite { handle, data, len, .. }) = self.arg::<HvtNetWrite>(req, Access::Write)?;
        let ret = offset_of!(HvtNetWrite, ret);
        let Some(Device::Net { fd, name, iface }) = self.device(handle) else {
            self.ram.write_field(arg, ret, Solo5Result::Einval as i32);
            return Ok(Outcome::Resume);
        };
        let range = self.check(req.call, "data", data, len, Access::Read)?;
        let fatal =
            |source| HypercallError::Net { op: "writing", name: name.clone(), iface: iface.clone(), len, source };
        match self.ram.write_to(*fd, range) {
            Ok(n) if n as u64 == len => {}
            Ok(n) => return Err(fatal(TransferError::Short(n))),
            Err(e) => return Err(fatal(e.into())),
        }
        self.ram.write_field(arg, ret, Solo5Result::Ok as i32);
        Ok(Outcome::Resume)
    }

    fn net_read(&self, req: Request) -> Result<Outcome, HypercallError> {
        let (arg, HvtNetRead { handle, data, len, .. }) = self.arg::<HvtNetRead>(req, Access::Write)?;
        let ret = offset_of!(HvtNetRead, ret);
        let Some(Device::Net { fd, name, iface }) = self.device(handle) else {
            self.ram.write_field(arg, ret, Solo5Result::Einval as i32);
            return Ok(Outcome::Resume);
        };
        let range = self.check(req.call, "data", data, len, Access::Write)?;
        match self.ram.read_from(*fd, range) {
            Ok(0) => self.ram.write_field(arg, ret, Solo5Result::Again as i32),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.ram.write_field(arg, ret, Solo5Result::Again as i32)
            }
            Ok(n) => {
                self.ram.write_field(arg, offset_of!(HvtNetRead, len), n as u64);
                self.ram.write_field(arg, ret, Solo5Result::Ok as i32);
            }
            Err(source) => {
                return Err(HypercallError::Net {
                    op: "reading",
                    name: name.clone(),
                    iface: iface.clone(),
                    len,
                    source: source.into(),
                })
            }
        }
        Ok(Outcome::Resume)
    }

    fn halt(&mut self, req: Request) -> Result<Outcome, HypercallError> {
        let (_, HvtHalt { cookie, exit_status }) = self.arg::<HvtHalt>(req, Access::Read)?;
        // Trap registers for --dumpcore; checked as Solo5 checks them (512 bytes).
        if cookie != 0 {
            let range = self.check(req.call, "cookie", cookie, HALT_COOKIE_MAX, Access::Read)?;
            self.trap_regs = Some(self.ram.read_struct(range));
        }
        Ok(Outcome::Halt(exit_status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(port: u16, value: u32) -> PortIo {
        PortIo { port, out: true, size: 4, count: 1, value }
    }

    #[test]
    fn decode_accepts_only_single_outl_to_served_ports() {
        let all = Served { block: true, net: true };
        assert_eq!(decode(out(0x501, 0x1234), all), Ok(Request { call: Hypercall::Walltime, gpa: 0x1234 }));
        assert_eq!(decode(out(0x508, 8), Served::default()).unwrap().call, Hypercall::Halt);
        for bad in [
            PortIo { out: false, ..out(0x501, 0) },
            PortIo { size: 1, ..out(0x501, 0) },
            PortIo { size: 1, count: 4, ..out(0x501, 0) },
            PortIo { count: 2, ..out(0x501, 0) },
            out(0x4ff, 0),
            out(0x509, 0),
            out(0x600, 0),
        ] {
            let e = decode(bad, all).unwrap_err();
            assert!(matches!(e, DecodeError::Port(_)), "{bad:?}");
            assert!(e.to_string().starts_with(&format!("Invalid guest port access: port={:#x}", bad.port)), "{e}");
        }
        assert_eq!(decode(out(0x500, 0), all), Err(DecodeError::Number { nr: 0, why: "no such hypercall" }));
        for port in [0x504, 0x505] {
            let e = decode(out(port, 0), Served { block: false, net: true }).unwrap_err();
            assert!(e.to_string().contains("Invalid guest hypercall: num="), "{e}");
        }
        for port in [0x506, 0x507] {
            assert!(decode(out(port, 0), Served { block: true, net: false }).is_err());
            assert!(decode(out(port, 0), Served { block: false, net: true }).is_ok());
        }
    }
}
