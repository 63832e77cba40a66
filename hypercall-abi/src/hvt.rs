//! The hvt (KVM) model: low-memory layout, boot info and port-I/O hypercalls
//! (`include/hvt_abi.h`, docs/solo5-abi.md §6).
//!
//! A hypercall is an `outl` of the 32-bit guest-physical address of its argument
//! struct to port [`HYPERCALL_PIO_BASE`] + number.

/// Boot GDT (3 entries).
pub const GDT_ADDR: u64 = 0x1000;
/// GDTR limit of the boot GDT.
pub const GDT_LIMIT: u16 = 23;
/// PML4 of the identity map.
pub const PML4_ADDR: u64 = 0x2000;
/// PDPT.
pub const PDPT_ADDR: u64 = 0x3000;
/// First of four page directories (0x4000..0x8000).
pub const PD_ADDR: u64 = 0x4000;
/// Page table for the first 2 MiB (4 KiB pages).
pub const PT_ADDR: u64 = 0x8000;
/// Boot info, then the manifest copy, then the command line; read-only to the guest.
pub const BOOT_INFO_ADDR: u64 = 0x1_0000;
/// Where the manifest copy starts.
pub const MFT_ADDR: u64 = BOOT_INFO_ADDR + core::mem::size_of::<HvtBootInfo>() as u64;
/// Guest memory is a multiple of this (rounded down) and at least this.
pub const MEM_ALIGN: u64 = 2 << 20;
/// Largest guest memory.
pub const MEM_MAX: u64 = 4 << 30;

/// Boot GDT entry 1 (selector 0x08): 64-bit code.
pub const GDT_CODE: u64 = 0x00AF_9900_0000_FFFF;
/// Boot GDT entry 2 (selector 0x10): data.
pub const GDT_DATA: u64 = 0x00CF_9300_0000_FFFF;
/// Code selector.
pub const SEL_CODE: u16 = 0x08;
/// Data selector.
pub const SEL_DATA: u16 = 0x10;
/// CR0 at entry: PE, NE, WP, PG.
pub const CR0: u64 = 0x8001_0021;
/// CR4 at entry: PAE, OSFXSR, OSXMMEXCPT.
pub const CR4: u64 = 0x620;
/// EFER at entry: LME, LMA.
pub const EFER: u64 = 0x500;
/// RFLAGS at entry (interrupts off).
pub const RFLAGS: u64 = 0x2;

/// First hypercall port; port = base + number.
pub const HYPERCALL_PIO_BASE: u16 = 0x500;
/// The ring kick port (unused by our tender: we offer no ring).
pub const RING_KICK_PORT: u16 = 0x600;

/// Hypercall numbers.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypercall {
    /// Wall-clock time.
    Walltime = 1,
    /// Console output.
    Puts = 2,
    /// Wait for I/O or a timeout.
    Poll = 3,
    /// Block write.
    BlockWrite = 4,
    /// Block read.
    BlockRead = 5,
    /// Net write.
    NetWrite = 6,
    /// Net read.
    NetRead = 7,
    /// Exit.
    Halt = 8,
}

impl Hypercall {
    /// Decodes a hypercall number.
    pub const fn from_nr(nr: u16) -> Option<Self> {
        match nr {
            1 => Some(Self::Walltime),
            2 => Some(Self::Puts),
            3 => Some(Self::Poll),
            4 => Some(Self::BlockWrite),
            5 => Some(Self::BlockRead),
            6 => Some(Self::NetWrite),
            7 => Some(Self::NetRead),
            8 => Some(Self::Halt),
            _ => None,
        }
    }

    /// The I/O port of this hypercall.
    pub const fn port(self) -> u16 {
        HYPERCALL_PIO_BASE + self as u16
    }

    /// Solo5's name (`HVT_HYPERCALL_<NAME>`), for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Walltime => "WALLTIME",
            Self::Puts => "PUTS",
            Self::Poll => "POLL",
            Self::BlockWrite => "BLOCK_WRITE",
            Self::BlockRead => "BLOCK_READ",
            Self::NetWrite => "NET_WRITE",
            Self::NetRead => "NET_READ",
            Self::Halt => "HALT",
        }
    }
}

/// The last hypercall port (HALT); ports 0x500..=this are the hypercall range.
pub const HYPERCALL_PIO_LAST: u16 = HYPERCALL_PIO_BASE + Hypercall::Halt as u16;
/// The initial stack pointer is `mem - STACK_OFFSET` (so `rsp + 8` is 16-aligned).
pub const STACK_OFFSET: u64 = 8;
/// Guest-physical addresses below this are the tender's low area (GDT, page
/// tables, boot info): not present or read-only in the guest's page tables.
pub const LOW_AREA_END: u64 = crate::elf::GUEST_MIN_LOAD_ADDR;

/// Boot info at [`BOOT_INFO_ADDR`] (`struct hvt_boot_info`, 56 bytes in v0.12.1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HvtBootInfo {
    /// Guest memory size (without a ring area).
    pub mem_size: u64,
    /// Highest end of the loaded segments.
    pub kernel_end: u64,
    /// TSC frequency in Hz.
    pub cpu_cycle_freq: u64,
    /// GPA of the command line.
    pub cmdline: u64,
    /// GPA of the manifest copy.
    pub mft: u64,
    /// Bit 0: net ring offered.
    pub host_features: u32,
    /// Written 0 by the tender.
    pub guest_features: u32,
    /// GPA of the net ring, 0 if none.
    pub ring: u64,
}
const _: () = assert!(core::mem::size_of::<HvtBootInfo>() == 56);

impl HvtBootInfo {
    /// The boot info as little-endian bytes, in the struct's layout.
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        out[0..8].copy_from_slice(&self.mem_size.to_le_bytes());
        out[8..16].copy_from_slice(&self.kernel_end.to_le_bytes());
        out[16..24].copy_from_slice(&self.cpu_cycle_freq.to_le_bytes());
        out[24..32].copy_from_slice(&self.cmdline.to_le_bytes());
        out[32..40].copy_from_slice(&self.mft.to_le_bytes());
        out[40..44].copy_from_slice(&self.host_features.to_le_bytes());
        out[44..48].copy_from_slice(&self.guest_features.to_le_bytes());
        out[48..56].copy_from_slice(&self.ring.to_le_bytes());
        out
    }
}

/// WALLTIME argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtWalltime {
    /// Out: nanoseconds since the epoch.
    pub nsecs: u64,
}
const _: () = assert!(core::mem::size_of::<HvtWalltime>() == 8);

/// PUTS argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtPuts {
    /// GPA of the bytes.
    pub data: u64,
    /// Their length.
    pub len: u64,
}
const _: () = assert!(core::mem::size_of::<HvtPuts>() == 16);

/// POLL argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtPoll {
    /// In: relative timeout in ns.
    pub timeout_nsecs: u64,
    /// Out: ready set.
    pub ready_set: u64,
    /// Out: number of ready devices.
    pub ret: i32,
}
const _: () = assert!(core::mem::size_of::<HvtPoll>() == 24);

/// BLOCK_WRITE / BLOCK_READ argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtBlockIo {
    /// Device handle.
    pub handle: u64,
    /// Byte offset.
    pub offset: u64,
    /// GPA of the buffer.
    pub data: u64,
    /// Buffer length.
    pub len: u64,
    /// Out: [`crate::Solo5Result`].
    pub ret: i32,
}
const _: () = assert!(core::mem::size_of::<HvtBlockIo>() == 40);

/// NET_WRITE argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtNetWrite {
    /// Device handle.
    pub handle: u64,
    /// GPA of the frame.
    pub data: u64,
    /// Frame length.
    pub len: u64,
    /// Out: [`crate::Solo5Result`].
    pub ret: i32,
}
const _: () = assert!(core::mem::size_of::<HvtNetWrite>() == 32);

/// NET_READ argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtNetRead {
    /// Device handle.
    pub handle: u64,
    /// GPA of the buffer.
    pub data: u64,
    /// In: buffer size; out: bytes read.
    pub len: u64,
    /// Out: [`crate::Solo5Result`].
    pub ret: i32,
}
const _: () = assert!(core::mem::size_of::<HvtNetRead>() == 32);

/// HALT argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtHalt {
    /// GPA of a 512-byte trap frame, or 0.
    pub cookie: u64,
    /// Exit status.
    pub exit_status: i32,
}
const _: () = assert!(core::mem::size_of::<HvtHalt>() == 16);

/// Size of the HALT cookie a tender may read.
pub const HALT_COOKIE_MAX: u64 = 512;

/// What a HALT cookie points at when a guest's trap handler aborts: Solo5's
/// `struct x86_trap_regs` (kernel/cpu_x86_64.h, tenders/hvt/hvt_cpu_x86_64.h): the
/// CPU's interrupt frame, with the faulting address and the error code before it.
/// solo5-hvt-debug's `--dumpcore` takes rip, cs, rflags, rsp and ss for the core
/// from it rather than from the vCPU, which by then runs the trap handler.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable))]
pub struct HvtTrapRegs {
    /// CR2 (the faulting address of a page fault).
    pub cr2: u64,
    /// Error code (0 for vectors without one).
    pub ec: u64,
    /// Where the trap happened.
    pub rip: u64,
    /// Code segment selector.
    pub cs: u64,
    /// RFLAGS at the trap.
    pub rflags: u64,
    /// Stack pointer at the trap.
    pub rsp: u64,
    /// Stack segment selector.
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<HvtTrapRegs>() == 56);
const _: () = assert!(core::mem::size_of::<HvtTrapRegs>() as u64 <= HALT_COOKIE_MAX);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn boot_info_layout_matches_solo5() {
        assert_eq!(offset_of!(HvtBootInfo, mem_size), 0);
        assert_eq!(offset_of!(HvtBootInfo, kernel_end), 8);
        assert_eq!(offset_of!(HvtBootInfo, cpu_cycle_freq), 16);
        assert_eq!(offset_of!(HvtBootInfo, cmdline), 24);
        assert_eq!(offset_of!(HvtBootInfo, mft), 32);
        assert_eq!(offset_of!(HvtBootInfo, host_features), 40);
        assert_eq!(offset_of!(HvtBootInfo, guest_features), 44);
        assert_eq!(offset_of!(HvtBootInfo, ring), 48);
        assert_eq!(MFT_ADDR, 0x10038);
    }

    #[test]
    fn hypercall_struct_layouts_match_solo5() {
        assert_eq!(offset_of!(HvtPoll, ready_set), 8);
        assert_eq!(offset_of!(HvtPoll, ret), 16);
        assert_eq!(offset_of!(HvtBlockIo, offset), 8);
        assert_eq!(offset_of!(HvtBlockIo, data), 16);
        assert_eq!(offset_of!(HvtBlockIo, len), 24);
        assert_eq!(offset_of!(HvtBlockIo, ret), 32);
        assert_eq!(offset_of!(HvtNetWrite, len), 16);
        assert_eq!(offset_of!(HvtNetWrite, ret), 24);
        assert_eq!(offset_of!(HvtNetRead, len), 16);
        assert_eq!(offset_of!(HvtNetRead, ret), 24);
        assert_eq!(offset_of!(HvtHalt, exit_status), 8);
        assert_eq!(offset_of!(HvtPuts, len), 8);
    }

    #[test]
    fn boot_info_bytes_follow_the_layout() {
        let bi = HvtBootInfo {
            mem_size: 1,
            kernel_end: 2,
            cpu_cycle_freq: 3,
            cmdline: 4,
            mft: 5,
            host_features: 6,
            guest_features: 7,
            ring: 8,
        };
        let b = bi.to_bytes();
        for (at, v) in [(0, 1), (8, 2), (16, 3), (24, 4), (32, 5), (40, 6), (44, 7), (48, 8)] {
            assert_eq!(b[at], v, "byte {at}");
        }
    }

    #[test]
    fn hypercall_ports() {
        assert_eq!(HYPERCALL_PIO_LAST, 0x508);
        assert_eq!(Hypercall::BlockWrite.name(), "BLOCK_WRITE");
        assert_eq!(Hypercall::Walltime.port(), 0x501);
        assert_eq!(Hypercall::Halt.port(), 0x508);
        assert_eq!(Hypercall::from_nr(0), None);
        assert_eq!(Hypercall::from_nr(9), None);
        assert_eq!(Hypercall::from_nr(5), Some(Hypercall::BlockRead));
    }
}
