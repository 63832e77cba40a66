//! The guest's own x86_64 descriptor tables, as Solo5's `bindings/cpu_x86_64.c`
//! sets them up: a GDT with a 64-bit code and a data segment and a TSS whose
//! three interrupt stacks (IST) catch faults even on a broken stack, and an IDT
//! for the 32 exception vectors. Interrupts stay off; nothing else arrives.
//!
//! The tender's boot GDT is not mapped in the guest's page tables, so it is
//! replaced before anything could load a segment. A fault then runs
//! [`trap_handler`], which prints Solo5's report
//! (`Solo5: trap: type=#PF ec=0x… rip=0x… rsp=0x… rflags=0x…`, plus `cr2` for
//! a page fault) and aborts with HALT status 255, the trap frame as cookie: the
//! hvt counterpart of spt's SIGSEGV (docs/solo5-abi.md §6.8).
//!
//! The tables are arrays of atomics: the CPU writes to them (accessed bits, the
//! TSS busy bit), so they must be writable memory that Rust does not assume
//! immutable; atomics give that without `static mut`.

use core::arch::{asm, naked_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use hypercall_abi::exit::ABORT;
use hypercall_abi::hvt::HvtTrapRegs;

use crate::println;

/// GDT selectors.
const SEL_CODE: u16 = 0x08;
const SEL_DATA: u16 = 0x10;
const SEL_TSS: u16 = 0x18;

/// 64-bit code: base 0, limit 4 GiB (G), present, DPL 0, execute/read, L.
const GDT_CODE: u64 = 0x00AF_9A00_0000_FFFF;
/// Data: base 0, limit 4 GiB (G), present, DPL 0, read/write, D/B.
const GDT_DATA: u64 = 0x00CF_9200_0000_FFFF;
/// Access byte of an available 64-bit TSS, present, DPL 0.
const TSS_ACCESS: u64 = 0x89;
/// Size of the 64-bit TSS.
const TSS_SIZE: usize = 104;

/// Null, code, data, TSS (two words).
static GDT: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// The TSS as 32-bit words (its 64-bit fields sit at 4 mod 8).
static TSS: [AtomicU32; TSS_SIZE / 4] = [const { AtomicU32::new(0) }; TSS_SIZE / 4];
/// 32 gate descriptors of 16 bytes.
static IDT: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

const STACK_SIZE: usize = 16 * 1024;

/// An interrupt stack. Only the CPU writes it (when it switches to the stack);
/// Rust code never makes a reference into it.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: Rust never reads or writes the contents (only its address is taken),
// so sharing it between "threads" (there is one vCPU) cannot race in Rust terms.
unsafe impl Sync for Stack {}

impl Stack {
    const fn new() -> Self {
        Self(UnsafeCell::new([0; STACK_SIZE]))
    }

    /// The address just past the stack (stacks grow down), 16-aligned.
    fn top(&self) -> u64 {
        self.0.get().expose_provenance() as u64 + STACK_SIZE as u64
    }
}

/// IST1: every exception but NMI and double fault.
static TRAP_STACK: Stack = Stack::new();
/// IST2: NMI and machine check.
static NMI_STACK: Stack = Stack::new();
/// IST3: double fault.
static DOUBLE_FAULT_STACK: Stack = Stack::new();

/// Operand of `lgdt`/`lidt`.
#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT, TSS and IDT.
///
/// # Safety
/// Once, at start, with interrupts off and before anything loads a segment.
pub(super) unsafe fn init() {
    GDT[1].store(GDT_CODE, Relaxed);
    GDT[2].store(GDT_DATA, Relaxed);
    let tss = TSS.as_ptr().expose_provenance() as u64;
    let limit = (TSS_SIZE - 1) as u64;
    let tss_lo = (limit & 0xFFFF)
        | (tss & 0xFF_FFFF) << 16
        | TSS_ACCESS << 40
        | (limit >> 16 & 0xF) << 48
        | (tss >> 24 & 0xFF) << 56;
    GDT[3].store(tss_lo, Relaxed);
    GDT[4].store(tss >> 32, Relaxed);

    // IST n lives at byte 36 + 8 (n - 1), i.e. 32-bit word 9 + 2 (n - 1).
    for (n, stack) in [(1, &TRAP_STACK), (2, &NMI_STACK), (3, &DOUBLE_FAULT_STACK)] {
        let top = stack.top();
        TSS[9 + 2 * (n - 1)].store(top as u32, Relaxed);
        TSS[10 + 2 * (n - 1)].store((top >> 32) as u32, Relaxed);
    }
    // No I/O permission bitmap: its offset is the TSS size.
    TSS[25].store((TSS_SIZE as u32) << 16, Relaxed);

    for (vector, stub) in TRAP_STUBS.iter().enumerate() {
        let ist = match vector {
            2 | 18 => 2,
            8 => 3,
            _ => 1,
        };
        let offset = *stub as usize as u64;
        // Present interrupt gate (0x8E), DPL 0: IF stays clear in the handler.
        let lo = (offset & 0xFFFF) | u64::from(SEL_CODE) << 16 | ist << 32 | 0x8E << 40 | (offset >> 16 & 0xFFFF) << 48;
        IDT[2 * vector].store(lo, Relaxed);
        IDT[2 * vector + 1].store(offset >> 32, Relaxed);
    }

    let gdtr = TablePointer { limit: (size_of_val(&GDT) - 1) as u16, base: GDT.as_ptr().expose_provenance() as u64 };
    let idtr = TablePointer { limit: (size_of_val(&IDT) - 1) as u16, base: IDT.as_ptr().expose_provenance() as u64 };
    // SAFETY: the tables above are complete, static and writable; the new code
    // and data segments describe the same flat 64-bit address space as the
    // boot GDT's, so every address stays valid across the switch. The far
    // return reloads CS (pushing selector and target, popping both).
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            "lidt [{idtr}]",
            gdtr = in(reg) &raw const gdtr,
            idtr = in(reg) &raw const idtr,
            code = in(reg) u64::from(SEL_CODE),
            data = in(reg) SEL_DATA,
            tss = in(reg) SEL_TSS,
            tmp = out(reg) _,
        );
    }
}

/// What the trap stubs push: the general registers (pushed last, so first
/// here), the vector, the error code (0 if the CPU pushes none), then the
/// CPU's own interrupt frame.
#[repr(C)]
#[derive(Debug)]
// The layout the stubs push; the handler reads only some of it (the general
// registers are there for a debugger looking at the trap stack).
#[allow(dead_code)]
struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Solo5's names for the exception vectors.
const TRAP_NAMES: [&str; 32] = [
    "#DE", "#DB", "#NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CPO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
];
const VECTOR_PAGE_FAULT: u64 = 14;

/// Set while a trap is being reported: a fault inside the report halts at once.
static IN_TRAP: AtomicBool = AtomicBool::new(false);

/// Reports a fault like Solo5's `cpu_trap_handler` and aborts (status 255), with
/// Solo5's trap registers as the HALT cookie: a tender's `--dumpcore` puts the
/// faulting rip and rsp in the core from there, so gdb's backtrace starts at the
/// fault rather than in this handler.
extern "C" fn trap_handler(frame: &TrapFrame) -> ! {
    let cr2: u64;
    // SAFETY: reads CR2 (the faulting address of a page fault); no memory, no flags.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    let regs = HvtTrapRegs {
        cr2,
        ec: frame.error_code,
        rip: frame.rip,
        cs: frame.cs,
        rflags: frame.rflags,
        rsp: frame.rsp,
        ss: frame.ss,
    };
    let cookie = core::ptr::from_ref(&regs).expose_provenance() as u64;
    if IN_TRAP.swap(true, Relaxed) {
        super::halt_with(ABORT, cookie);
    }
    let name = TRAP_NAMES.get(frame.vector as usize).copied().unwrap_or("#??");
    println!(
        "Solo5: trap: type={name} ec={:#x} rip={:#x} rsp={:#x} rflags={:#x}",
        frame.error_code, frame.rip, frame.rsp, frame.rflags
    );
    if frame.vector == VECTOR_PAGE_FAULT {
        println!("Solo5: trap: cr2={cr2:#x}");
    }
    println!("Solo5: ABORT: Fatal trap");
    super::halt_with(ABORT, cookie)
}

/// Saves the general registers on the trap stack and calls [`trap_handler`]
/// with a pointer to the frame. Entered by a jump from a stub, with the vector
/// and error code already pushed.
#[unsafe(naked)]
extern "C" fn trap_common() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        "and rsp, -16",
        "call {handler}",
        "ud2",
        handler = sym trap_handler,
    )
}

/// One IDT entry point per vector: pushes a 0 error code where the CPU pushes
/// none, then the vector number, and jumps to [`trap_common`].
macro_rules! trap_stubs {
    ($($name:ident = $vector:literal $kind:ident;)*) => {
        $(
            #[unsafe(naked)]
            extern "C" fn $name() {
                naked_asm!(trap_stubs!(@push $kind), concat!("push ", $vector), "jmp {common}", common = sym trap_common)
            }
        )*
        /// The stubs in vector order.
        const TRAP_STUBS: [extern "C" fn(); 32] = [$($name),*];
    };
    (@push error_code) => { "" };
    (@push no_error_code) => { "push 0" };
}

trap_stubs! {
    trap0 = 0 no_error_code;
    trap1 = 1 no_error_code;
    trap2 = 2 no_error_code;
    trap3 = 3 no_error_code;
    trap4 = 4 no_error_code;
    trap5 = 5 no_error_code;
    trap6 = 6 no_error_code;
    trap7 = 7 no_error_code;
    trap8 = 8 error_code;
    trap9 = 9 no_error_code;
    trap10 = 10 error_code;
    trap11 = 11 error_code;
    trap12 = 12 error_code;
    trap13 = 13 error_code;
    trap14 = 14 error_code;
    trap15 = 15 no_error_code;
    trap16 = 16 no_error_code;
    trap17 = 17 error_code;
    trap18 = 18 no_error_code;
    trap19 = 19 no_error_code;
    trap20 = 20 no_error_code;
    trap21 = 21 error_code;
    trap22 = 22 no_error_code;
    trap23 = 23 no_error_code;
    trap24 = 24 no_error_code;
    trap25 = 25 no_error_code;
    trap26 = 26 no_error_code;
    trap27 = 27 no_error_code;
    trap28 = 28 no_error_code;
    trap29 = 29 error_code;
    trap30 = 30 error_code;
    trap31 = 31 no_error_code;
}
