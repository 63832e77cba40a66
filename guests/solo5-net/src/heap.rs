//! The guest heap: a size-class allocator over `[_end, mem - STACK_RESERVE)`.
//!
//! Solo5 gives a guest one flat memory: the image at 0x100000, then free memory
//! up to `mem`, whose top holds the stack (the tender starts it at `mem - 8`).
//! The image ends at the linker script's `_end`, after `.bss`: the boot info's
//! `kernel_end` stops before a zero-filesz BSS segment (docs/solo5-abi.md §3 rule 9),
//! so it is not the start of free memory; Solo5's own bindings use `_end` too.
//! This allocator hands out blocks of power-of-two sizes (16 B … 1 GiB), each
//! class with a free list, carving fresh blocks from a bump pointer; freed
//! blocks go back to their class's list. When a class's list is empty and the
//! bump pointer has no room left, a free block of a larger class is split in
//! halves (one used, the others onto the smaller lists), so memory freed in big
//! blocks (socket buffers of closed connections) serves small requests later.
//! Freed blocks are never merged back: a big request after the heap has gone
//! to small blocks fails. O(1) allocation and free, good for a server whose
//! allocations repeat (connection buffers, keys and values).
//!
//! It initialises itself on first use from the boot info, so it works before
//! `main` as well. Out of memory is a null return, which `alloc` turns into a
//! guest abort (`memory allocation of N bytes failed`): code on a request path
//! uses `try_reserve` and [`stats`] instead, so a full heap is an answer, not a crash.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Bytes left below `mem` for the stack. Solo5 guarantees at least 512 KiB of
/// free memory above the image (`hypercall_abi::spt::MIN_FREE_MEMORY`), so the
/// heap is never negative; the deepest guest stack we know (blk) needs ≈ 100 KiB.
pub const STACK_RESERVE: u64 = 512 * 1024;

const PAGE: usize = 4096;
const MIN_CLASS: u32 = 4; // 16 bytes: room for the free-list link, any align ≤ 16
const CLASSES: usize = 31 - MIN_CLASS as usize; // 16 B ..= 1 GiB

struct State {
    ready: bool,
    start: usize,
    next: usize,
    end: usize,
    free: [*mut u8; CLASSES],
    used: usize,
}

/// Whether a block comes from above the bump pointer, never handed out before.
/// Such memory is still zero: Solo5 tenders give a guest freshly zeroed memory
/// (spt and hvt map it anonymous; docs/solo5-abi.md §3 rule 9 relies on it for
/// BSS), and nothing but this allocator writes above the image and below the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Yes,
    No,
}

/// The allocator: `#[global_allocator]` below.
pub struct Heap {
    state: UnsafeCell<State>,
}

// SAFETY: a Solo5 guest has one thread and no interrupts or signal handlers
// (spt installs none; hvt delivers none), so the allocator's state is never
// reached from two contexts at once.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap {
    state: UnsafeCell::new(State {
        ready: false,
        start: 0,
        next: 0,
        end: 0,
        free: [ptr::null_mut(); CLASSES],
        used: 0,
    }),
};

/// Class index and block size for a layout; `None` if over 1 GiB.
fn class(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS).checked_next_power_of_two()?;
    let k = size.trailing_zeros();
    let index = (k - MIN_CLASS) as usize;
    (index < CLASSES).then_some((index, size))
}

unsafe extern "C" {
    /// End of the image including `.bss` (solo5-rt's linker script).
    static _end: u8;
}

/// The heap's bounds for a memory of `mem_size` bytes whose image ends at `image_end`.
pub fn bounds(image_end: u64, mem_size: u64) -> (u64, u64) {
    let start = image_end.next_multiple_of(PAGE as u64);
    let end = mem_size.saturating_sub(STACK_RESERVE).max(start);
    (start, end)
}

impl State {
    fn init(&mut self) {
        // The address of a linker symbol, never read.
        let image_end = (&raw const _end) as u64;
        let (start, end) = bounds(image_end, solo5_rt::boot_info().mem_size);
        self.start = start as usize;
        self.next = start as usize;
        self.end = end as usize;
        self.ready = true;
    }

    /// A block of class `index` split off a free block of a larger class, or null.
    fn split(&mut self, index: usize) -> *mut u8 {
        let Some(from) = (index + 1..CLASSES).find(|&c| !self.free[c].is_null()) else { return ptr::null_mut() };
        let block = self.free[from];
        // SAFETY: a free block starts with the link `dealloc` (or an earlier split) wrote.
        self.free[from] = unsafe { block.cast::<*mut u8>().read() };
        // Keep the lower half at each level down; the upper halves go free.
        for c in (index..from).rev() {
            let half = 1usize << (c as u32 + MIN_CLASS);
            // SAFETY: `block` spans 2 × half bytes at this level (it was a class c + 1
            // block), so its upper half is `half` writable bytes, aligned like
            // `half` (blocks are size-aligned up to a page; below a page, halves of
            // an aligned block are aligned), and no live allocation uses it.
            unsafe {
                let upper = block.add(half);
                upper.cast::<*mut u8>().write(self.free[c]);
                self.free[c] = upper;
            }
        }
        block
    }

    /// A block for `layout` (null if none), and whether it is fresh.
    fn allocate(&mut self, layout: Layout) -> (*mut u8, Fresh) {
        if !self.ready {
            self.init();
        }
        let Some((index, size)) = class(layout) else { return (ptr::null_mut(), Fresh::No) };
        let head = self.free[index];
        let (block, fresh) = if !head.is_null() && layout.align() <= PAGE {
            // SAFETY: a free block starts with the link `dealloc` wrote (16-byte
            // aligned, at least 16 bytes long).
            self.free[index] = unsafe { head.cast::<*mut u8>().read() };
            (head, Fresh::No)
        } else {
            match self.carve(size, layout.align()) {
                fresh if !fresh.is_null() => (fresh, Fresh::Yes),
                _ if layout.align() <= PAGE => (self.split(index), Fresh::No),
                none => (none, Fresh::No),
            }
        };
        if !block.is_null() {
            self.used += size;
        }
        (block, fresh)
    }

    fn carve(&mut self, size: usize, align: usize) -> *mut u8 {
        // Blocks are aligned to their size up to a page: enough for any layout
        // whose align ≤ size (class() folds align into size).
        let align = align.max(size.min(PAGE));
        let Some(start) = self.next.checked_next_multiple_of(align) else { return ptr::null_mut() };
        match start.checked_add(size) {
            Some(stop) if stop <= self.end => {
                self.next = stop;
                start as *mut u8
            }
            _ => ptr::null_mut(),
        }
    }
}

/// Bytes currently allocated (in whole blocks) and the heap's remaining fresh bytes.
pub fn usage() -> (usize, usize) {
    let s = stats();
    (s.used, s.fresh)
}

/// What the heap holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of the whole heap (image end to the stack reserve).
    pub total: usize,
    /// Bytes in allocated blocks (each counted at its power-of-two size).
    pub used: usize,
    /// Bytes never handed out yet (above the bump pointer).
    pub fresh: usize,
}

impl Stats {
    /// Bytes not in allocated blocks (fresh or on a free list).
    pub fn free(&self) -> usize {
        self.total.saturating_sub(self.used)
    }
}

/// The heap's size and use.
pub fn stats() -> Stats {
    // SAFETY: single-threaded (see `Sync` above) and no reference into the state
    // is held across this access.
    let s = unsafe { &mut *HEAP.state.get() };
    if !s.ready {
        s.init();
    }
    Stats { total: s.end - s.start, used: s.used, fresh: s.end.saturating_sub(s.next) }
}

// SAFETY: `alloc` returns blocks of at least `layout.size()` bytes aligned to
// `layout.align()` that no other live allocation overlaps: each block comes
// either fresh from the bump pointer (never handed out before) or from its
// class's free list, onto which `dealloc` only puts blocks it got back.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded, not re-entrant (nothing below allocates).
        let s = unsafe { &mut *self.state.get() };
        s.allocate(layout).0
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded, not re-entrant (nothing below allocates).
        let s = unsafe { &mut *self.state.get() };
        let (block, fresh) = s.allocate(layout);
        // Fresh blocks are already zero (see `Fresh`), and are left untouched:
        // a big socket buffer costs resident memory only as data arrives.
        if !block.is_null() && fresh == Fresh::No {
            // SAFETY: `block` has at least `layout.size()` writable bytes that no
            // live allocation uses (the contract above).
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: single-threaded, not re-entrant.
        let s = unsafe { &mut *self.state.get() };
        let Some((index, size)) = class(layout) else { return };
        s.used -= size;
        if layout.align() > PAGE {
            return; // rare over-aligned block: leaked rather than mixed into its class
        }
        // SAFETY: the caller gives back a block `alloc` returned for this layout,
        // so it has `size` ≥ 16 writable bytes, 16-byte aligned, now unused.
        unsafe { block.cast::<*mut u8>().write(s.free[index]) };
        s.free[index] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Same class: the block already has room (Vec growth doubles, so this
        // mostly catches shrinking and small growth).
        if let (Some((a, _)), Ok(new)) = (class(layout), Layout::from_size_align(new_size, layout.align()))
            && class(new).is_some_and(|(b, _)| a == b)
        {
            return block;
        }
        // SAFETY: the caller's contract for `realloc` (a live block of `layout`,
        // new_size > 0 and valid) is what `alloc`/`dealloc` need; the copy stays
        // within both blocks (the smaller of the two sizes).
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            new
        }
    }
}
