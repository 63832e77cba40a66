//! The spt guest region: one lazy anonymous mapping at the guest's own addresses.
//!
//! Guest address == host address (docs/solo5-abi.md §5.1). The region is
//! `[GUEST_BASE, mem)`; `[0, GUEST_BASE)` stays unmapped so null dereferences fault.

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};

use super::SptError;
use crate::loader::SegmentPerms;

/// The mapped guest region. Never unmapped: it lives until the guest exits the process.
#[derive(Debug)]
pub struct GuestRegion {
    base: NonNull<c_void>,
    len: usize,
}

impl GuestRegion {
    /// Maps `[GUEST_BASE, mem_size)` read-write (and executable with `exec_heap`).
    ///
    /// `MAP_FIXED_NOREPLACE` makes the kernel refuse rather than replace anything of the
    /// tender's that already sits there; `MAP_NORESERVE` keeps untouched pages free.
    pub fn map(guest_base: u64, mem_size: u64, exec_heap: bool) -> Result<Self, SptError> {
        let len = mem_size
            .checked_sub(guest_base)
            .and_then(|l| usize::try_from(l).ok())
            .and_then(NonZeroUsize::new)
            .ok_or(SptError::MemoryTooSmall(mem_size))?;
        let addr =
            usize::try_from(guest_base).ok().and_then(NonZeroUsize::new).ok_or(SptError::MemoryTooSmall(mem_size))?;
        let mut prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        if exec_heap {
            prot |= ProtFlags::PROT_EXEC;
        }
        let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_FIXED_NOREPLACE | MapFlags::MAP_NORESERVE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no memory
        // the tender uses can change under it; the new range is owned by this struct.
        let base = unsafe { mmap_anonymous(Some(addr), len, prot, flags) }.map_err(|source| SptError::Map {
            addr: guest_base,
            len: len.get() as u64,
            source,
        })?;
        // Kernels before 4.17 ignore NOREPLACE and may place the mapping elsewhere.
        if base.as_ptr() as u64 != guest_base {
            return Err(SptError::MapMoved { wanted: guest_base, got: base.as_ptr() as u64 });
        }
        Ok(Self { base, len: len.get() })
    }

    fn offset(&self, addr: u64, len: usize) -> Result<usize, SptError> {
        let out_of_range = || SptError::OutOfRange { addr, len: len as u64 };
        let offset = addr.checked_sub(self.base.as_ptr() as u64).ok_or_else(out_of_range)?;
        let offset = usize::try_from(offset).map_err(|_| out_of_range())?;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(offset),
            _ => Err(out_of_range()),
        }
    }

    /// The `len` bytes at guest address `addr`, which must lie inside the region, to
    /// write (before `protect`).
    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], SptError> {
        let offset = self.offset(addr, len)?;
        // SAFETY: `offset + len <= self.len` was checked above, the region is mapped
        // read-write until `protect` runs (callers write before protecting), and the
        // returned borrow of `self` keeps any other reference from existing.
        let region = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().cast::<u8>(), self.len) };
        Ok(&mut region[offset..offset + len])
    }
}

impl crate::boot::GuestBytes for GuestRegion {
    type Error = SptError;
    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], SptError> {
        GuestRegion::bytes_mut(self, addr, len)
    }
}

impl GuestRegion {
    /// Copies `bytes` to guest address `addr`, which must lie inside the region.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), SptError> {
        let offset = self.offset(addr, bytes.len())?;
        // SAFETY: `offset + bytes.len() <= self.len` was checked above, the region is
        // mapped read-write until `protect` runs (callers write before protecting), and
        // `&mut self` means no other reference to it exists.
        let region = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().cast::<u8>(), self.len) };
        region[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Applies a segment's protection to `[start, end)`.
    pub fn protect(&mut self, start: u64, end: u64, perms: SegmentPerms) -> Result<(), SptError> {
        let len = end.checked_sub(start).ok_or(SptError::OutOfRange { addr: start, len: 0 })?;
        let len = usize::try_from(len).map_err(|_| SptError::OutOfRange { addr: start, len })?;
        let offset = self.offset(start, len)?;
        let mut prot = ProtFlags::PROT_NONE;
        if perms.read {
            prot |= ProtFlags::PROT_READ;
        }
        if perms.write {
            prot |= ProtFlags::PROT_WRITE;
        }
        if perms.exec {
            prot |= ProtFlags::PROT_EXEC;
        }
        // SAFETY: the range was checked to lie inside our own mapping, which holds only
        // guest data; no Rust reference into it outlives `write`.
        let ptr = unsafe { self.base.byte_add(offset) };
        // SAFETY: as above: `ptr..ptr+len` is inside the region this struct owns.
        unsafe { mprotect(ptr, len, prot) }.map_err(|source| SptError::Protect { start, end, source })
    }
}
