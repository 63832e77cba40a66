//! One attack on the hvt tender per run: hypercalls with pointers and lengths
//! the tender must refuse, ports and I/O shapes it must not serve, and CPU
//! states that end the VM. Each must end the run with status 1 and a message
//! from the tender naming what was wrong; none may reach host memory.
//! `hostile_hvt VARIANT`:
//!
//! | variant | what the guest does | the tender must say |
//! |---|---|---|
//! | `struct-beyond-memory` | WALLTIME struct at 0xffff_fff0 | invalid guest access |
//! | `struct-straddles-end` | WALLTIME struct at mem − 4 (8 bytes) | invalid guest access |
//! | `data-ends-at-end` | PUTS of the last 16 bytes of memory (strict `<`, as Solo5) | invalid guest access |
//! | `data-straddles-end` | PUTS of 16 bytes at mem − 8 | invalid guest access |
//! | `wrapping-length` | PUTS at 1 MiB with length `u64::MAX` | invalid guest access |
//! | `output-into-text` | WALLTIME struct inside its own (read-only) text | read-only |
//! | `output-into-rodata` | POLL struct inside its rodata | read-only |
//! | `halt-cookie-past-end` | HALT with a cookie 100 bytes below the end (needs 512) | invalid guest access |
//! | `unknown-port` | `outl` to 0x509 | invalid guest port access |
//! | `ring-kick-port` | `outl` to 0x600 (no net ring is offered) | invalid guest port access |
//! | `hypercall-0` | `outl` to 0x500 | invalid guest hypercall |
//! | `block-without-device` | BLOCK_READ with no block device attached | invalid guest hypercall |
//! | `port-in` | `inl` from 0x501 | invalid guest port access |
//! | `port-byte` | `outb` to 0x501 | invalid guest port access |
//! | `rep-outsb` | `rep outsb` of 4 bytes to 0x501 (looks like an `outl` in the data) | invalid guest port access |
//! | `mmio` | its own page tables map GPA 4 GiB, outside guest memory, and it writes there | MMIO |
//! | `hlt` | `cli; hlt` | HLT |
//! | `triple-fault` | empty IDT, then `ud2` | triple fault |
//!
//! If the tender serves the request after all, the guest prints `FAIL` and
//! exits 1 by HALT, which the tests tell apart by the missing tender message.
#![no_std]
#![no_main]

use core::arch::asm;
use core::cell::UnsafeCell;

use solo5_rt::abi::hvt::{HALT_COOKIE_MAX, Hypercall};
use solo5_rt::{Cmdline, boot_info, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

/// A POLL argument in rodata: the tender must refuse to write its outputs there.
static RODATA_POLL: [u64; 3] = [0; 3];

/// Page-aligned, writable space for the `mmio` variant's own page tables.
#[repr(C, align(4096))]
struct PageTables(UnsafeCell<[[u64; 512]; 3]>);
// SAFETY: only the `mmio` variant touches it, once, on the one vCPU.
unsafe impl Sync for PageTables {}
static TABLES: PageTables = PageTables(UnsafeCell::new([[0; 512]; 3]));

fn main(args: &Cmdline) -> i32 {
    let Some(variant) = args.arg(0) else {
        println!("FAIL: usage: hostile_hvt VARIANT");
        return 1;
    };
    let mem = boot_info().mem_size;
    let puts = Hypercall::Puts.port();
    let walltime = Hypercall::Walltime.port();
    // A PUTS or HALT argument on our stack; the variants fill it as they like.
    let mut arg = [0u64; 2];
    println!("about to attack the tender: {variant}");
    match variant {
        "struct-beyond-memory" => out32(walltime, 0xffff_fff0),
        "struct-straddles-end" => out32(walltime, (mem - 4) as u32),
        "data-ends-at-end" => out32(puts, gpa(&mut arg, [mem - 16, 16])),
        "data-straddles-end" => out32(puts, gpa(&mut arg, [mem - 8, 16])),
        "wrapping-length" => out32(puts, gpa(&mut arg, [0x10_0000, u64::MAX])),
        "output-into-text" => out32(walltime, main as fn(&Cmdline) -> i32 as usize as u32),
        "output-into-rodata" => out32(Hypercall::Poll.port(), RODATA_POLL.as_ptr().expose_provenance() as u32),
        "halt-cookie-past-end" => out32(Hypercall::Halt.port(), gpa(&mut arg, [mem - HALT_COOKIE_MAX + 412, 0])),
        "unknown-port" => out32(Hypercall::Halt.port() + 1, gpa(&mut arg, [0; 2])),
        "ring-kick-port" => out32(solo5_rt::abi::hvt::RING_KICK_PORT, 0),
        "hypercall-0" => out32(Hypercall::Walltime.port() - 1, gpa(&mut arg, [0; 2])),
        "block-without-device" => out32(Hypercall::BlockRead.port(), gpa(&mut arg, [0; 2])),
        // SAFETY: a port read changes only eax; the tender must end the guest.
        "port-in" => unsafe { asm!("in eax, dx", in("dx") walltime, out("eax") _, options(nomem, nostack)) },
        // SAFETY: a one-byte port write touches no memory of ours.
        "port-byte" => unsafe { asm!("out dx, al", in("dx") walltime, in("al") 0u8, options(nomem, nostack)) },
        "rep-outsb" => {
            let bytes = gpa(&mut arg, [0; 2]).to_le_bytes();
            // SAFETY: `rep outsb` reads the 4 bytes of `bytes` (a live local) and
            // advances rsi/rcx, which are declared clobbered.
            unsafe {
                asm!("rep outsb", in("dx") walltime, inout("rsi") bytes.as_ptr() => _, inout("rcx") 4u64 => _,
                    options(nostack, readonly));
            }
        }
        "mmio" => mmio(mem),
        // SAFETY: stops the vCPU with interrupts off; the tender must end the VM.
        "hlt" => unsafe { asm!("cli", "hlt", options(nomem, nostack)) },
        "triple-fault" => triple_fault(),
        other => {
            println!("FAIL: unknown variant {other:?}");
            return 1;
        }
    }
    println!("FAIL: the tender served {variant}");
    1
}

/// Fills `arg` with `words` and returns its (identity-mapped) guest-physical
/// address, exposed so that the compiler keeps the stores for the tender.
fn gpa(arg: &mut [u64; 2], words: [u64; 2]) -> u32 {
    *arg = words;
    arg.as_mut_ptr().expose_provenance() as u32
}

fn out32(port: u16, value: u32) {
    // SAFETY: every value passed here is refused by the tender (that is the
    // test), which then ends the guest without touching our memory; were it
    // served after all, WALLTIME/POLL/PUTS write at most 24 bytes into the
    // struct named, which no Rust reference of ours covers except `arg` and
    // `RODATA_POLL`, both plain integers read only afterwards, if ever.
    unsafe { solo5_rt::hvt::raw_out32(port, value) };
}

/// Switches to page tables of our own that identity-map the first GiB with
/// 2 MiB pages and map the 2 MiB at guest-physical 4 GiB (beyond any `--mem`
/// below 4 GiB, so no RAM is there) at virtual 1 GiB − 2 MiB, then writes
/// there: KVM reports an MMIO access that no device of the tender serves.
fn mmio(mem: u64) {
    const PRESENT_WRITABLE: u64 = 0b11;
    const PAGE_2M: u64 = 1 << 7;
    const TWO_MIB: u64 = 2 << 20;
    const NOT_RAM: u64 = 4 << 30;
    if mem > (1 << 30) - TWO_MIB {
        println!("FAIL: mmio needs --mem below 1022 MiB");
        return;
    }
    let tables = TABLES.0.get();
    // SAFETY: `TABLES` is ours alone (see its Sync impl) and page-aligned.
    let [pml4, pdpt, pd] = unsafe { &mut *tables };
    for (i, entry) in pd.iter_mut().enumerate() {
        *entry = (i as u64 * TWO_MIB) | PRESENT_WRITABLE | PAGE_2M;
    }
    pd[511] = NOT_RAM | PRESENT_WRITABLE | PAGE_2M;
    pdpt[0] = pd.as_ptr().expose_provenance() as u64 | PRESENT_WRITABLE;
    pml4[0] = pdpt.as_ptr().expose_provenance() as u64 | PRESENT_WRITABLE;
    let cr3 = pml4.as_ptr().expose_provenance() as u64;
    let target = 511 * TWO_MIB;
    // SAFETY: the new tables identity-map all of guest memory (mem < 1 GiB − 2
    // MiB) exactly as before, so code, stack and data stay where they are; the
    // write goes to the one extra page, which is not RAM (the tender must end
    // the guest there).
    unsafe {
        asm!("mov cr3, {cr3}", "mov qword ptr [{target}], 1", cr3 = in(reg) cr3, target = in(reg) target,
            options(nostack));
    }
}

/// Loads an empty IDT and raises #UD: the CPU cannot deliver it (#GP), nor that
/// (#DF), and shuts down.
fn triple_fault() {
    #[repr(C, packed)]
    struct TablePointer {
        limit: u16,
        base: u64,
    }
    let empty = TablePointer { limit: 0, base: 0 };
    // SAFETY: deliberately fatal: after `ud2` nothing of ours runs again.
    unsafe { asm!("lidt [{}]", "ud2", in(reg) &raw const empty, options(nostack)) };
}
