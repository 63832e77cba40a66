//! A hostile guest that looks for anything of the tender still in its reach (issue 17).
//!
//! spt: it probes every page below its memory, the 4 GiB above it, the top 4 GiB of the
//! user address space (where, with ASLR off, the kernel places the tender's mappings,
//! stack and vDSO) and the vsyscall page, and dumps whatever it can read there. The
//! probe is a syscall the filter allows with any pointer: `timerfd_settime` on the
//! tender's own timerfd reads a 32-byte `itimerspec` from the page and fails with
//! EFAULT exactly when the page is not readable; it prints nothing and touches nothing
//! but the guest's timer. A readable page is then probed for writing with
//! `clock_gettime(CLOCK_MONOTONIC)` into its first 16 bytes (EFAULT when read-only).
//!
//! hvt: the guest's address space is what its page tables map, so it walks them from
//! CR3 (it runs at CPL 0) and prints every mapping, virtual and physical; then it reads
//! the first byte past its memory, which must fault (the tender maps nothing else).
//!
//! Output: one `mapped START-END PERMS` line per run of readable pages (its own memory
//! included, so the test can tell it apart; hvt: `mapped VSTART-VEND PERMS -> PSTART`),
//! then on spt `bytes START HEX` lines with the contents of every page outside its own
//! memory (at most 16 pages), and `scan: done, N pages probed`. spt exits 0; hvt
//! ends in its own page fault (`Solo5: trap: type=#PF`, status 255).
#![no_std]
#![no_main]

use solo5_rt::Cmdline;

solo5_rt::manifest! {}
solo5_rt::main!(main);

const PAGE: u64 = 4096;
fn main(_args: &Cmdline) -> i32 {
    imp::scan()
}

/// spt: probe pages through syscalls.
#[cfg(not(feature = "hvt"))]
mod imp {
    use super::PAGE;
    use solo5_rt::{boot_info, println};

    const GIB: u64 = 1 << 30;
    const SYS_TIMERFD_SETTIME: u64 = 286;
    const SYS_CLOCK_GETTIME: u64 = 228;
    const CLOCK_MONOTONIC: u64 = 1;
    const EFAULT: i64 = 14;
    /// The top of the x86-64 user address space (47-bit).
    const USER_TOP: u64 = 0x8000_0000_0000;
    /// The vsyscall page (legacy, fixed address; not user-readable in `xonly` mode).
    const VSYSCALL: u64 = 0xffff_ffff_ff60_0000;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Foreign pages dumped at most.
    const DUMP_MAX: usize = 16;

    /// What a probe found at one page.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Access {
        None,
        Read,
        ReadWrite,
    }

    fn probe(timerfd: u64, page: u64, own: bool) -> Access {
        // SAFETY: the kernel reads 32 bytes at `page` (or fails with EFAULT) and arms or
        // refuses our own timer; nothing of ours is written.
        let read = unsafe { solo5_rt::sys::raw_syscall(SYS_TIMERFD_SETTIME, [timerfd, 0, page, 0, 0, 0]) };
        if read == -EFAULT {
            return Access::None;
        }
        if own {
            // Its own memory: only whether it is there matters; never write into it.
            return Access::Read;
        }
        // SAFETY: the kernel writes 16 bytes at `page` if it is writable, else EFAULT. The
        // page is not this guest's memory: whatever is there is the tender's leftover,
        // which nothing of ours uses.
        let write = unsafe { solo5_rt::sys::raw_syscall(SYS_CLOCK_GETTIME, [CLOCK_MONOTONIC, page, 0, 0, 0, 0]) };
        if write == -EFAULT { Access::Read } else { Access::ReadWrite }
    }

    struct Scan {
        timerfd: u64,
        own: core::ops::Range<u64>,
        probed: u64,
        run: Option<(u64, u64, Access)>,
        foreign: [u64; DUMP_MAX],
        foreign_len: usize,
    }

    impl Scan {
        fn range(&mut self, start: u64, end: u64) {
            let mut page = start;
            while page < end {
                self.page(page);
                page += PAGE;
            }
            self.flush();
        }

        fn page(&mut self, page: u64) {
            let own = self.own.contains(&page);
            let access = probe(self.timerfd, page, own);
            self.probed += 1;
            if access != Access::None && !own && self.foreign_len < DUMP_MAX {
                self.foreign[self.foreign_len] = page;
                self.foreign_len += 1;
            }
            match self.run {
                Some((start, end, a)) if end == page && a == access => self.run = Some((start, page + PAGE, a)),
                _ => {
                    self.flush();
                    if access != Access::None {
                        self.run = Some((page, page + PAGE, access));
                    }
                }
            }
        }

        fn flush(&mut self) {
            if let Some((start, end, access)) = self.run.take() {
                let perms = if access == Access::ReadWrite { "rw" } else { "r-" };
                println!("mapped {start:#x}-{end:#x} {perms}");
            }
        }
    }

    pub fn scan() -> i32 {
        let bi = boot_info();
        let timerfd = bi.timerfd as u64;
        let mem = bi.mem_size;
        // Its own memory: from the lowest address a process may map up to mem_size.
        let mut scan =
            Scan { timerfd, own: 0x1_0000..mem, probed: 0, run: None, foreign: [0; DUMP_MAX], foreign_len: 0 };
        scan.range(0, mem + 4 * GIB);
        scan.range(USER_TOP - 4 * GIB, USER_TOP);
        scan.range(VSYSCALL, VSYSCALL + PAGE);
        for &page in &scan.foreign[..scan.foreign_len] {
            // SAFETY: the probe found this page readable and nothing unmaps it (the tender
            // is gone); reading it is exactly what a hostile guest would do.
            let bytes = unsafe { core::slice::from_raw_parts(page as *const u8, PAGE as usize) };
            let mut hex = [0u8; 2 * PAGE as usize];
            for (pair, b) in hex.chunks_exact_mut(2).zip(bytes) {
                pair.copy_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
            solo5_rt::print!("bytes {page:#x} ");
            solo5_rt::console::write(&hex);
            println!();
        }
        println!("scan: done, {} pages probed", scan.probed);
        0
    }
}

/// hvt: walk the page tables.
#[cfg(feature = "hvt")]
mod imp {
    use core::cell::UnsafeCell;

    use super::PAGE;
    use solo5_rt::{boot_info, println};

    const PRESENT: u64 = 1 << 0;
    const WRITABLE: u64 = 1 << 1;
    const HUGE: u64 = 1 << 7;
    /// Physical address bits 12..51 of an entry.
    const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
    const TWO_MIB: u64 = 2 << 20;
    /// Below this the tender keeps the GDT and the page tables, unmapped for the guest.
    const LOW_END: u64 = 0x1_0000;

    /// Page-aligned room for page tables of our own.
    #[repr(C, align(4096))]
    struct Tables(UnsafeCell<[[u64; 512]; 3]>);
    // SAFETY: only `scan` touches it, once, on the one vCPU.
    unsafe impl Sync for Tables {}
    static OWN: Tables = Tables(UnsafeCell::new([[0; 512]; 3]));

    /// Runs of contiguous mappings with the same rights, printed as they end.
    #[derive(Default)]
    struct Mappings {
        run: Option<(u64, u64, u64, bool)>,
        pages: u64,
    }

    impl Mappings {
        fn add(&mut self, virt: u64, len: u64, phys: u64, writable: bool) {
            self.pages += 1;
            match &mut self.run {
                Some((start, end, pstart, w))
                    if *end == virt && *pstart + (*end - *start) == phys && *w == writable =>
                {
                    *end += len;
                }
                _ => {
                    self.flush();
                    self.run = Some((virt, virt + len, phys, writable));
                }
            }
        }

        fn flush(&mut self) {
            if let Some((start, end, phys, writable)) = self.run.take() {
                let perms = if writable { "rw" } else { "r-" };
                println!("mapped {start:#x}-{end:#x} {perms} -> {phys:#x}");
            }
        }
    }

    /// The 512 entries of the table at guest-physical `addr`.
    ///
    /// # Safety
    /// `addr` is a page-aligned guest-physical address below 1 GiB, and our own tables
    /// (identity, first GiB) are loaded.
    unsafe fn table(addr: u64) -> &'static [u64; 512] {
        // SAFETY: per the contract it is mapped 1:1, and nothing writes tables while we
        // walk them (one vCPU, nothing else runs).
        unsafe { &*core::ptr::with_exposed_provenance::<[u64; 512]>(addr as usize) }
    }

    /// Walks the tables rooted at `cr3` (all of them below 1 GiB: the tender keeps them
    /// in the low 64 KiB).
    ///
    /// # Safety
    /// As [`table`].
    unsafe fn walk(cr3: u64, found: &mut Mappings) {
        // SAFETY: each address passed is CR3's or a present entry's: the tender's tables,
        // in its low area below 1 GiB, and our tables are loaded (the caller's contract).
        let tbl = |entry: u64| unsafe { table(entry & ADDR_MASK) };
        for (i4, &e4) in tbl(cr3).iter().enumerate() {
            if e4 & PRESENT == 0 {
                continue;
            }
            let v4 = (i4 as u64) << 39;
            for (i3, &e3) in tbl(e4).iter().enumerate() {
                let v3 = v4 | (i3 as u64) << 30;
                if e3 & PRESENT == 0 {
                    continue;
                }
                if e3 & HUGE != 0 {
                    found.add(v3, 1 << 30, e3 & ADDR_MASK, e3 & WRITABLE != 0);
                    continue;
                }
                for (i2, &e2) in tbl(e3).iter().enumerate() {
                    let v2 = v3 | (i2 as u64) << 21;
                    if e2 & PRESENT == 0 {
                        continue;
                    }
                    if e2 & HUGE != 0 {
                        found.add(v2, TWO_MIB, e2 & ADDR_MASK, e2 & WRITABLE != 0);
                        continue;
                    }
                    for (i1, &e1) in tbl(e2).iter().enumerate() {
                        if e1 & PRESENT != 0 {
                            found.add(v2 | (i1 as u64) << 12, PAGE, e1 & ADDR_MASK, e1 & WRITABLE != 0);
                        }
                    }
                }
            }
        }
        found.flush();
    }

    /// How many of the 512 words of the page at `page` are not zero. In assembly, as page
    /// 0 is among those read and Rust may not dereference address 0.
    fn nonzero_words(page: u64) -> u64 {
        let count: u64;
        // SAFETY: reads the 4 KiB at `page`, identity-mapped by our tables (the caller
        // has them loaded); writes only the registers named.
        unsafe {
            core::arch::asm!(
                "xor {count:e}, {count:e}",
                "2:",
                "cmp qword ptr [{p}], 0",
                "je 3f",
                "inc {count}",
                "3:",
                "add {p}, 8",
                "dec {n}",
                "jnz 2b",
                p = inout(reg) page => _,
                n = inout(reg) 512u64 => _,
                count = out(reg) count,
                options(nostack, readonly),
            );
        }
        count
    }

    pub fn scan() -> i32 {
        let mem = boot_info().mem_size;
        if mem > 1 << 30 {
            println!("FAIL: scan needs --mem of at most 1 GiB");
            return 1;
        }
        let tender_cr3: u64;
        // SAFETY: reading CR3 at CPL 0 has no side effect.
        unsafe { core::arch::asm!("mov {}, cr3", out(reg) tender_cr3, options(nomem, nostack)) };
        // SAFETY: `OWN` is ours alone (see its Sync impl) and page-aligned.
        let [pml4, pdpt, pd] = unsafe { &mut *OWN.0.get() };
        for (i, entry) in pd.iter_mut().enumerate() {
            *entry = (i as u64 * TWO_MIB) | PRESENT | WRITABLE | HUGE;
        }
        pdpt[0] = pd.as_ptr().expose_provenance() as u64 | PRESENT | WRITABLE;
        pml4[0] = pdpt.as_ptr().expose_provenance() as u64 | PRESENT | WRITABLE;
        let own_cr3 = pml4.as_ptr().expose_provenance() as u64;
        // SAFETY: our tables identity-map the first GiB, which holds all of guest memory
        // (checked above), so code, stack and data stay where they are; only the low
        // area the tender left unmapped becomes readable.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) own_cr3, options(nostack)) };
        let mut found = Mappings::default();
        // SAFETY: our tables are loaded; the tender's tables live below 64 KiB.
        unsafe { walk(tender_cr3, &mut found) };
        // What else the tender wrote below 64 KiB (the guest owns all of its physical
        // memory, so it can read it): each page holding anything.
        for page in (0..LOW_END).step_by(PAGE as usize) {
            let used = nonzero_words(page);
            if used > 0 {
                println!("low page {page:#x}: {used} non-zero words");
            }
        }
        // SAFETY: the tender's own tables, as at entry: they map the same guest memory.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) tender_cr3, options(nostack)) };
        println!("scan: done, {} pages probed", found.pages);
        println!("reading {mem:#x}, the first byte past guest memory");
        // SAFETY: one byte at the first address past guest memory; the tender's tables
        // map nothing there, so it faults before any value is returned.
        let byte = unsafe { core::ptr::with_exposed_provenance::<u8>(mem as usize).read_volatile() };
        println!("FAIL: read {byte:#x} past the end of memory");
        1
    }
}
