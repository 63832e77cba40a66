//! Socket buffers kept for the next connection instead of going back to the heap.
//!
//! A buffer from the heap must be zeroed before a socket may hold it (recycled
//! heap memory is uninitialised to Rust), and a connection's large buffers are
//! hundreds of KiB: zeroing them at every accept cost connection-per-request
//! clients half their rate. A buffer a closed socket leaves here is already
//! initialised; the next socket takes it as it is. What it still holds of the old
//! connection is never seen: smoltcp reads a ring buffer only where it wrote.
//!
//! The pool holds at most a sixteenth of the heap; buffers beyond that, and all
//! of them when the heap runs short, go back to the heap.

use alloc::vec::Vec;
use core::ptr::NonNull;

use crate::heap;

/// The memory of one socket buffer: a leaked `Vec<u8>` of `len` initialised
/// bytes, lent to at most one socket at a time.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// A new zeroed buffer of `size` bytes from the heap, or `None` if it has no room.
    fn allocate(size: usize) -> Option<Self> {
        let layout = core::alloc::Layout::array::<u8>(size).ok().filter(|l| l.size() > 0)?;
        // SAFETY: `layout` has a non-zero size (checked above). Zeroed by the
        // allocator, which leaves never-used memory as it is: an idle connection's
        // large buffers stay untouched, not resident.
        let block = unsafe { alloc::alloc::alloc_zeroed(layout) };
        Some(Region { ptr: NonNull::new(block)?, len: size })
    }

    /// The buffer as a slice for a socket to own for as long as it lives.
    ///
    /// # Safety
    /// No other slice of this region may be alive while the returned one is: the
    /// caller lends each region to one socket and takes it back ([`Pool::give_back`])
    /// only once that socket has been dropped.
    pub(crate) unsafe fn lend(&self) -> &'static mut [u8] {
        // SAFETY: `ptr` points to `len` initialised bytes that are never freed while
        // the region exists (see `Region`); exclusivity is the caller's contract.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Returns the memory to the heap.
    fn free(self) {
        // SAFETY: allocated in `allocate` with the layout of `[u8; len]`, not lent
        // (the pool holds it), and freed once: `self` is consumed.
        unsafe {
            alloc::alloc::dealloc(self.ptr.as_ptr(), core::alloc::Layout::array::<u8>(self.len).expect("was valid"))
        }
    }
}

/// Free socket buffers, in classes by the power of two at or below their size.
#[derive(Debug)]
pub(crate) struct Pool {
    classes: [Vec<Region>; usize::BITS as usize],
    held: usize,
}

impl Pool {
    pub(crate) const fn new() -> Self {
        Pool { classes: [const { Vec::new() }; usize::BITS as usize], held: 0 }
    }

    /// A receive and a send buffer of these sizes: kept ones first, the rest from
    /// the heap if `headroom` bytes stay free after them. `None` if they do not fit.
    pub(crate) fn pair(&mut self, rx: usize, tx: usize, headroom: usize) -> Option<[Region; 2]> {
        let (mut r, mut t) = (self.take(rx), self.take(tx));
        let missing = usize::from(r.is_none()) * rx + usize::from(t.is_none()) * tx;
        if missing > 0 && heap::stats().free() < missing + headroom {
            self.drain();
        }
        if missing == 0 || heap::stats().free() >= missing + headroom {
            r = r.or_else(|| Region::allocate(rx));
            t = t.or_else(|| Region::allocate(tx));
        }
        match (r, t) {
            (Some(r), Some(t)) => Some([r, t]),
            (r, t) => {
                r.into_iter().chain(t).for_each(|region| self.give_back(region));
                None
            }
        }
    }

    fn take(&mut self, size: usize) -> Option<Region> {
        let class = &mut self.classes[size.checked_ilog2()? as usize];
        let at = class.iter().position(|r| r.len == size)?;
        let region = class.swap_remove(at);
        self.held -= region.len;
        Some(region)
    }

    /// Takes back a region whose socket has been dropped.
    pub(crate) fn give_back(&mut self, region: Region) {
        let cap = heap::stats().total / 16;
        // A region is never empty (`Region::allocate`), so ilog2 is defined.
        let class = &mut self.classes[region.len.ilog2() as usize];
        if self.held + region.len > cap || class.try_reserve(1).is_err() {
            region.free();
            return;
        }
        self.held += region.len;
        class.push(region);
    }

    /// Returns every kept buffer to the heap (it is running short).
    fn drain(&mut self) {
        for class in &mut self.classes {
            core::mem::take(class).into_iter().for_each(Region::free);
        }
        self.held = 0;
    }
}
