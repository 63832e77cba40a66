//! What the hvt guest finds at entry, exactly as Solo5 v0.12.1 sets it up
//! (docs/solo5-abi.md §6.2–6.4): the boot GDT, the identity-mapping page tables and
//! the vCPU's registers. Pure functions: the values are computed here and
//! tested without KVM; `vm.rs` hands them to KVM.

use hypercall_abi::hvt::{
    self, BOOT_INFO_ADDR, GDT_ADDR, GDT_CODE, GDT_DATA, GDT_LIMIT, PDPT_ADDR, PD_ADDR, PML4_ADDR, PT_ADDR,
};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

/// Page-table entry bits.
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const PAGE_4K: u64 = 0x1000;
const PAGE_2M: u64 = 2 << 20;
/// Below this nothing is mapped for the guest (zero page, GDT, tables).
const FIRST_MAPPED: u64 = 0x1_0000;
/// From here on the first 2 MiB are writable (the image; below it the boot info is read-only).
const FIRST_WRITABLE: u64 = hypercall_abi::elf::GUEST_MIN_LOAD_ADDR;
/// The four page directories map 4 GiB.
const PD_COUNT: u64 = 4;

/// The boot GDT at [`GDT_ADDR`]: null, 64-bit code (0x08), data (0x10).
pub fn boot_gdt() -> [(u64, u64); 3] {
    [(GDT_ADDR, 0), (GDT_ADDR + 8, GDT_CODE), (GDT_ADDR + 16, GDT_DATA)]
}

/// Every non-zero page-table word as (guest-physical address, value), for
/// guest memory of `mem_size` bytes (a multiple of 2 MiB, at most 4 GiB).
///
/// PML4[0] → PDPT; PDPT[0..4] → the four page directories; PD[0] → a page
/// table of 4 KiB pages for the first 2 MiB (nothing below 64 KiB, read-only
/// up to 1 MiB, writable above); every further PD entry a writable 2 MiB page,
/// up to `mem_size`. No NX, no user bit: the guest runs at CPL 0.
pub fn page_table_entries(mem_size: u64) -> impl Iterator<Item = (u64, u64)> {
    let pml4 = std::iter::once((PML4_ADDR, PDPT_ADDR | PRESENT | WRITABLE));
    let pdpt = (0..PD_COUNT).map(|i| (PDPT_ADDR + 8 * i, (PD_ADDR + PAGE_4K * i) | PRESENT | WRITABLE));
    let first_pd = std::iter::once((PD_ADDR, PT_ADDR | PRESENT | WRITABLE));
    let small = (FIRST_MAPPED / PAGE_4K..PAGE_2M / PAGE_4K).map(|i| {
        let paddr = i * PAGE_4K;
        let flags = if paddr < FIRST_WRITABLE { PRESENT } else { PRESENT | WRITABLE };
        (PT_ADDR + 8 * i, paddr | flags)
    });
    let huge = (1..mem_size / PAGE_2M).map(|i| (PD_ADDR + 8 * i, (i * PAGE_2M) | PRESENT | WRITABLE | HUGE));
    pml4.chain(pdpt).chain(first_pd).chain(small).chain(huge)
}

fn flat_segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Long mode with the boot GDT and the identity map (§6.3), starting from
/// what `KVM_GET_SREGS` returned for a fresh vCPU.
pub fn sregs(mut sregs: kvm_sregs) -> kvm_sregs {
    /// Type 9: execute-only code, accessed. Type 3: read/write data, accessed.
    const CODE_TYPE: u8 = 9;
    const DATA_TYPE: u8 = 3;
    /// Busy 64-bit TSS.
    const TSS_BUSY_TYPE: u8 = 11;
    sregs.cr0 = hvt::CR0;
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 = hvt::CR4;
    sregs.efer = hvt::EFER;
    sregs.cs = flat_segment(hvt::SEL_CODE, CODE_TYPE, true);
    let data = flat_segment(hvt::SEL_DATA, DATA_TYPE, false);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment { type_: TSS_BUSY_TYPE, present: 1, s: 0, ..kvm_segment::default() };
    sregs.ldt = kvm_segment { unusable: 1, ..sregs.ldt };
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = GDT_LIMIT;
    sregs
}

/// RIP at the entry, RSP just below the top of memory (`rsp + 8` 16-aligned,
/// as after a call), RDI = the boot info, interrupts off.
pub fn regs(entry: u64, mem_size: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: mem_size - hvt::STACK_OFFSET,
        rdi: BOOT_INFO_ADDR,
        rflags: hvt::RFLAGS,
        ..kvm_regs::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn page_tables_match_solo5() {
        let t: BTreeMap<u64, u64> = page_table_entries(8 * MIB).collect();
        assert_eq!(t[&0x2000], 0x3003);
        for i in 0..4 {
            assert_eq!(t[&(0x3000 + 8 * i)], (0x4000 + 0x1000 * i) | 3);
        }
        assert_eq!(t[&0x4000], 0x8003);
        // 4 KiB pages: nothing below 64 KiB, read-only boot area, writable image.
        assert!(!t.contains_key(&(0x8000 + 8 * 0xf)));
        assert_eq!(t[&(0x8000 + 8 * 0x10)], 0x1_0001);
        assert_eq!(t[&(0x8000 + 8 * 0xff)], 0xf_f001);
        assert_eq!(t[&(0x8000 + 8 * 0x100)], 0x10_0003);
        assert_eq!(t[&(0x8000 + 8 * 0x1ff)], 0x1f_f003);
        // 2 MiB pages from 2 MiB to the end of memory, none beyond.
        assert_eq!(t[&0x4008], 0x20_0083);
        assert_eq!(t[&0x4018], 0x60_0083);
        assert!(!t.contains_key(&0x4020));
        // Everything lives in the low area below the boot info.
        assert!(t.keys().all(|&a| (0x2000..0x9000).contains(&a)));
    }

    #[test]
    fn page_tables_reach_4_gib() {
        let t: BTreeMap<u64, u64> = page_table_entries(4 << 30).collect();
        let last_pd_entry = 0x4000 + 8 * 2047;
        assert_eq!(t[&last_pd_entry], ((4u64 << 30) - (2 << 20)) | 0x83);
        assert!(t.keys().all(|&a| a < 0x8000 + 0x1000));
        // 2 MiB at the minimum size: only the 4 KiB table.
        assert_eq!(page_table_entries(2 * MIB).filter(|&(a, _)| (0x4008..0x8000).contains(&a)).count(), 0);
    }

    #[test]
    fn registers_match_solo5() {
        let s = sregs(kvm_sregs::default());
        assert_eq!((s.cr0, s.cr3, s.cr4, s.efer), (0x8001_0021, 0x2000, 0x620, 0x500));
        assert_eq!((s.cs.selector, s.cs.type_, s.cs.l, s.cs.db, s.cs.g, s.cs.present), (0x08, 9, 1, 0, 1, 1));
        for seg in [s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!((seg.selector, seg.type_, seg.db, seg.l, seg.s), (0x10, 3, 1, 0, 1));
        }
        assert_eq!((s.tr.type_, s.tr.present, s.tr.s, s.tr.limit), (11, 1, 0, 0));
        assert_eq!(s.ldt.unusable, 1);
        assert_eq!((s.gdt.base, s.gdt.limit), (0x1000, 23));
        let r = regs(0x10_0020, 8 * MIB);
        assert_eq!((r.rip, r.rsp, r.rdi, r.rflags), (0x10_0020, 0x7f_fff8, 0x1_0000, 2));
        assert_eq!(boot_gdt()[1], (0x1008, 0x00AF_9900_0000_FFFF));
    }
}
