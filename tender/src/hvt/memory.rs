//! Guest memory of the hvt backend: one vm-memory region at guest-physical 0,
//! and every access the tender makes on the guest's behalf checked first.
//!
//! The mapping is anonymous, private, `MAP_NORESERVE` and zero
//! (`GuestMemoryMmap::from_ranges`): `--mem=4096` costs only the pages the
//! guest touches. The tender writes the image, page tables and boot info into
//! it, then makes the read-only segments (and text: X becomes R on the host)
//! read-only on its side, so KVM refuses guest writes there (docs/solo5-abi.md §3
//! item 8).
//!
//! Guest pointers are checked as Solo5 checks them (§6.6): `gpa < size`, no
//! overflow, and `gpa + len < size`, strictly. Outputs are also refused where
//! the tender would write to a page it made read-only (it would fault) or into
//! the low area the guest's own page tables leave unmapped or read-only (GDT,
//! page tables, boot info): the tender does not write for the guest where the
//! guest itself may not.
//!
//! `unsafe` here: `mprotect` of the host mapping, and the four host I/O calls
//! that pass a guest buffer to the kernel.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use hypercall_abi::hvt::LOW_AREA_END;
use nix::sys::mman::{mprotect, ProtFlags};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

/// Errors setting up guest memory (tender-side; never caused by the guest).
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// mmap failed.
    #[error("error allocating {size} bytes of guest memory: {source}")]
    Allocate {
        /// Bytes asked for.
        size: u64,
        /// Why.
        source: vm_memory::mmap::FromRangesError,
    },
    /// A tender write outside guest memory (a loader invariant broke).
    #[error("guest range {gpa:#x}+{len:#x} lies outside guest memory ({size:#x} bytes)")]
    OutOfRange {
        /// Start.
        gpa: u64,
        /// Length.
        len: u64,
        /// Guest memory size.
        size: u64,
    },
    /// mprotect failed.
    #[error("mprotect of guest range {start:#x}..{end:#x} failed: {source}")]
    Protect {
        /// Start.
        start: u64,
        /// End.
        end: u64,
        /// Why.
        source: nix::Error,
    },
}

/// Why a guest-supplied range was refused. The message starts with Solo5's
/// words, `Invalid guest access: gpa=0x…, sz=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Not inside guest memory (§6.6).
    #[error("Invalid guest access: gpa={gpa:#x}, sz={len}: {reason} (guest memory is {size:#x} bytes)")]
    OutOfRange {
        /// Start.
        gpa: u64,
        /// Length.
        len: u64,
        /// Guest memory size.
        size: u64,
        /// Which check failed.
        reason: RangeFault,
    },
    /// An output into memory the tender will not write.
    #[error("Invalid guest access: gpa={gpa:#x}, sz={len}: output overlaps {start:#x}..{end:#x}, {what}")]
    NotWritable {
        /// Start.
        gpa: u64,
        /// Length.
        len: u64,
        /// The protected range.
        start: u64,
        /// Its end.
        end: u64,
        /// What lives there.
        what: &'static str,
    },
}

/// Which of Solo5's range checks a guest range failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeFault {
    /// `gpa >= size`.
    #[error("starts beyond the end of guest memory")]
    StartsBeyond,
    /// `gpa + len` overflows.
    #[error("wraps around the address space")]
    Wraps,
    /// `gpa + len >= size`.
    #[error("ends at or beyond the end of guest memory")]
    EndsBeyond,
}

/// Whether the tender reads the range for the guest or writes into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The tender only reads (inputs, data to write out).
    Read,
    /// The tender writes (outputs, buffers to fill).
    Write,
}

/// A guest range that passed [`GuestRam::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    /// Start (guest-physical).
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A range the tender does not write into for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Protected {
    start: u64,
    end: u64,
    what: &'static str,
}

/// The guest's memory, `[0, size)` at guest-physical 0.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
    protected: Vec<Protected>,
}

impl GuestRam {
    /// Allocates `size` bytes of zeroed, lazily backed guest memory.
    pub fn new(size: u64) -> Result<Self, MemoryError> {
        let len = usize::try_from(size).map_err(|_| MemoryError::OutOfRange { gpa: 0, len: size, size })?;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), len)])
            .map_err(|source| MemoryError::Allocate { size, source })?;
        let low = Protected {
            start: 0,
            end: LOW_AREA_END.min(size),
            what: "the tender's low area (GDT, page tables, boot info)",
        };
        Ok(Self { mem, size, protected: vec![low] })
    }

    /// Guest memory size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The host address of guest-physical 0, for `KVM_SET_USER_MEMORY_REGION`.
    pub fn host_base(&self) -> *mut u8 {
        // The one region starts at 0 and is `size` bytes long (`new`).
        self.mem.iter().next().map_or(std::ptr::null_mut(), |r| r.as_ptr())
    }

    /// The `len` bytes at `gpa` to write during setup (segments read from the guest
    /// file straight into guest memory).
    fn bytes_mut(&mut self, gpa: u64, len: usize) -> Result<&mut [u8], MemoryError> {
        let out_of_range = || MemoryError::OutOfRange { gpa, len: len as u64, size: self.size };
        match gpa.checked_add(len as u64) {
            Some(end) if end <= self.size => {}
            _ => return Err(out_of_range()),
        }
        let slice = self.mem.get_slice(GuestAddress(gpa), len).map_err(|_| out_of_range())?;
        let guard = slice.ptr_guard_mut();
        // SAFETY: `guard` points at `len` bytes of our own guest mapping (the range was
        // checked above), which stays mapped while `self` lives. During setup no vCPU
        // runs, so nothing but this borrow (of `&mut self`) touches those bytes.
        Ok(unsafe { std::slice::from_raw_parts_mut(guard.as_ptr(), len) })
    }
}

impl crate::boot::GuestBytes for GuestRam {
    type Error = super::HvtError;
    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], super::HvtError> {
        Ok(GuestRam::bytes_mut(self, addr, len)?)
    }
}

impl GuestRam {
    /// The tender's own writes during setup (image, tables, boot info).
    pub fn write(&self, gpa: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        let out_of_range = || MemoryError::OutOfRange { gpa, len: bytes.len() as u64, size: self.size };
        match gpa.checked_add(bytes.len() as u64) {
            Some(end) if end <= self.size => {}
            _ => return Err(out_of_range()),
        }
        self.mem.write_slice(bytes, GuestAddress(gpa)).map_err(|_| out_of_range())
    }

    /// The tender's own reads of guest memory (the `--dumpcore` core).
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let out_of_range = || MemoryError::OutOfRange { gpa, len, size: self.size };
        match gpa.checked_add(len) {
            Some(end) if end <= self.size => {}
            _ => return Err(out_of_range()),
        }
        self.mem.read_slice(buf, GuestAddress(gpa)).map_err(|_| out_of_range())
    }

    /// Makes `[start, end)` read-only on the host (after the tender wrote it),
    /// so KVM refuses guest writes there, and refuses outputs into it from now on.
    pub fn protect_read_only(&mut self, start: u64, end: u64, what: &'static str) -> Result<(), MemoryError> {
        let len = end.checked_sub(start).ok_or(MemoryError::OutOfRange { gpa: start, len: 0, size: self.size })?;
        let out_of_range = || MemoryError::OutOfRange { gpa: start, len, size: self.size };
        if end > self.size || len == 0 {
            return Err(out_of_range());
        }
        let host = self.mem.get_host_address(GuestAddress(start)).map_err(|_| out_of_range())?;
        let host = NonNull::new(host.cast::<std::ffi::c_void>()).ok_or_else(out_of_range)?;
        let host_len = usize::try_from(len).map_err(|_| out_of_range())?;
        // SAFETY: `[start, end)` lies inside our own guest mapping (checked above),
        // which holds only guest data; no Rust reference into it exists (all
        // access goes through vm-memory's volatile slices), and every later
        // tender write into the range is refused by `check`.
        unsafe { mprotect(host, host_len, ProtFlags::PROT_READ) }.map_err(|source| MemoryError::Protect {
            start,
            end,
            source,
        })?;
        self.protected.push(Protected { start, end, what });
        Ok(())
    }

    /// Checks a guest-supplied range as Solo5 does (§6.6), and for
    /// [`Access::Write`] that the tender may write there.
    pub fn check(&self, gpa: u64, len: u64, access: Access) -> Result<GuestRange, AccessError> {
        let fault = |reason| AccessError::OutOfRange { gpa, len, size: self.size, reason };
        if gpa >= self.size {
            return Err(fault(RangeFault::StartsBeyond));
        }
        let end = gpa.checked_add(len).ok_or(fault(RangeFault::Wraps))?;
        if end >= self.size {
            return Err(fault(RangeFault::EndsBeyond));
        }
        if access == Access::Write {
            if let Some(p) = self.protected.iter().find(|p| gpa < p.end && p.start < end.max(gpa + 1)) {
                return Err(AccessError::NotWritable { gpa, len, start: p.start, end: p.end, what: p.what });
            }
        }
        Ok(GuestRange { gpa, len })
    }

    /// A volatile view of a checked range.
    fn slice(&self, range: GuestRange) -> io::Result<VolatileSlice<'_, ()>> {
        let len = usize::try_from(range.len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.mem.get_slice(GuestAddress(range.gpa), len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// Copies an argument struct out of a checked range: read once, so the guest
    /// cannot change it while the tender works.
    pub fn read_struct<T: zerocopy::FromBytes>(&self, range: GuestRange) -> T {
        /// Larger than every hypercall argument struct.
        const MAX_ARG: usize = 64;
        const { assert!(size_of::<T>() <= MAX_ARG) };
        let mut out = [0u8; MAX_ARG];
        let n = usize::try_from(range.len).map_or(size_of::<T>(), |len| len.min(size_of::<T>()));
        // A checked range of the struct's size is always readable; on the impossible
        // failure the struct reads as zeros.
        let _ = self.mem.read_slice(&mut out[..n], GuestAddress(range.gpa));
        T::read_from_prefix(&out).map_or_else(|_| T::new_zeroed(), |(value, _)| value)
    }

    /// Writes `value` at `gpa` + `offset`, inside a range checked for writing.
    pub fn write_field<T: vm_memory::ByteValued>(&self, range: GuestRange, offset: usize, value: T) {
        debug_assert!((offset + size_of::<T>()) as u64 <= range.len);
        // Inside a range checked for Access::Write: never fails.
        let _ = self.mem.write_obj(value, GuestAddress(range.gpa + offset as u64));
    }

    /// `write(fd, guest[range])`: the whole range, retrying partial writes
    /// (a signal can cut one short).
    pub fn write_all_to(&self, fd: BorrowedFd<'_>, range: GuestRange) -> io::Result<()> {
        let slice = self.slice(range)?;
        let mut done = 0;
        while done < slice.len() {
            let rest = slice.offset(done).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let guard = rest.ptr_guard();
            // SAFETY: `guard` points at `guard.len()` bytes of our guest mapping,
            // alive while `self` is borrowed; the kernel only reads them.
            let n = unsafe { libc::write(fd.as_raw_fd(), guard.as_ptr().cast(), guard.len()) };
            match usize::try_from(n) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(_) => return Err(io::Error::last_os_error()),
            }
        }
        Ok(())
    }

    /// `write(fd, guest[range])` once (a tap takes a frame whole or not at all).
    pub fn write_to(&self, fd: BorrowedFd<'_>, range: GuestRange) -> io::Result<usize> {
        let guard = self.slice(range)?.ptr_guard();
        // SAFETY: `guard` points at `guard.len()` bytes of our guest mapping,
        // alive while `self` is borrowed; the kernel only reads them.
        let n = unsafe { libc::write(fd.as_raw_fd(), guard.as_ptr().cast(), guard.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// `read(fd, guest[range])` once, into a range checked for writing.
    pub fn read_from(&self, fd: BorrowedFd<'_>, range: GuestRange) -> io::Result<usize> {
        let guard = self.slice(range)?.ptr_guard_mut();
        // SAFETY: `guard` points at `guard.len()` writable bytes of our guest
        // mapping (checked for Access::Write, so not a page we made read-only),
        // alive while `self` is borrowed; the kernel writes at most that many.
        let n = unsafe { libc::read(fd.as_raw_fd(), guard.as_ptr().cast(), guard.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// `pwrite64(fd, guest[range], offset)` once.
    pub fn pwrite_to(&self, fd: BorrowedFd<'_>, range: GuestRange, offset: u64) -> io::Result<usize> {
        let offset = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let guard = self.slice(range)?.ptr_guard();
        // SAFETY: `guard` points at `guard.len()` bytes of our guest mapping,
        // alive while `self` is borrowed; the kernel only reads them.
        let n = unsafe { libc::pwrite64(fd.as_raw_fd(), guard.as_ptr().cast(), guard.len(), offset) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// `pread64(fd, guest[range], offset)` once, into a range checked for writing.
    pub fn pread_from(&self, fd: BorrowedFd<'_>, range: GuestRange, offset: u64) -> io::Result<usize> {
        let offset = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let guard = self.slice(range)?.ptr_guard_mut();
        // SAFETY: `guard` points at `guard.len()` writable bytes of our guest
        // mapping (checked for Access::Write), alive while `self` is borrowed;
        // the kernel writes at most that many.
        let n = unsafe { libc::pread64(fd.as_raw_fd(), guard.as_ptr().cast(), guard.len(), offset) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn ranges_are_checked_like_solo5_strict_end() {
        let ram = GuestRam::new(8 * MIB).unwrap();
        let size = 8 * MIB;
        assert!(ram.check(0x10_0000, 16, Access::Read).is_ok());
        // 8 bytes at 0x7ffff8 end exactly at the end: Solo5 refuses (strict <).
        let e = ram.check(size - 8, 8, Access::Read).unwrap_err();
        assert!(matches!(e, AccessError::OutOfRange { reason: RangeFault::EndsBeyond, .. }), "{e}");
        assert!(ram.check(size - 9, 8, Access::Read).is_ok());
        let e = ram.check(size, 0, Access::Read).unwrap_err();
        assert!(matches!(e, AccessError::OutOfRange { reason: RangeFault::StartsBeyond, .. }));
        let e = ram.check(0x10_0000, u64::MAX, Access::Read).unwrap_err();
        assert!(matches!(e, AccessError::OutOfRange { reason: RangeFault::Wraps, .. }));
        let e = ram.check(size - 8, 16, Access::Read).unwrap_err();
        assert!(matches!(e, AccessError::OutOfRange { reason: RangeFault::EndsBeyond, .. }));
        assert!(e.to_string().starts_with("Invalid guest access: gpa=0x7ffff8, sz=16"), "{e}");
    }

    #[test]
    fn outputs_into_the_low_area_or_read_only_segments_are_refused() {
        let mut ram = GuestRam::new(4 * MIB).unwrap();
        // Inputs may come from the boot info area (the command line lives there).
        assert!(ram.check(0x1_0000, 64, Access::Read).is_ok());
        assert!(matches!(ram.check(0x1_0000, 8, Access::Write), Err(AccessError::NotWritable { .. })));
        assert!(matches!(ram.check(0x2000, 8, Access::Write), Err(AccessError::NotWritable { .. })));
        ram.write(0x10_0000, &[0x90; 4096]).unwrap();
        ram.protect_read_only(0x10_0000, 0x10_1000, "guest text").unwrap();
        let e = ram.check(0x10_0ff8, 16, Access::Write).unwrap_err();
        assert!(e.to_string().contains("guest text"), "{e}");
        assert!(ram.check(0x10_0ff8, 8, Access::Read).is_ok());
        assert!(ram.check(0x10_1000, 8, Access::Write).is_ok());
        // A zero-length output at the start of a protected page is still inside it.
        assert!(ram.check(0x10_0000, 0, Access::Write).is_err());
        // The tender's own reads of protected memory still work.
        assert_eq!(ram.read_struct::<[u8; 4]>(GuestRange { gpa: 0x10_0000, len: 4 }), [0x90; 4]);
    }

    #[test]
    fn memory_starts_zeroed_and_is_lazily_backed() {
        // 4 GiB would be refused if the mapping reserved memory up front.
        let ram = GuestRam::new(4 << 30).unwrap();
        let r = ram.check((4 << 30) - 16, 8, Access::Read).unwrap();
        assert_eq!(ram.read_struct::<[u8; 8]>(r), [0; 8]);
    }

    #[test]
    fn host_io_moves_guest_bytes() {
        let ram = GuestRam::new(4 * MIB).unwrap();
        ram.write(0x20_0000, b"hello").unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let range = ram.check(0x20_0000, 5, Access::Read).unwrap();
        ram.write_all_to(w.as_fd(), range).unwrap();
        let into = ram.check(0x30_0000, 5, Access::Write).unwrap();
        assert_eq!(ram.read_from(r.as_fd(), into).unwrap(), 5);
        assert_eq!(&ram.read_struct::<[u8; 5]>(into), b"hello");
    }

    use std::os::fd::AsFd;
}
