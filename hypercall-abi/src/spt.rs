//! The spt (sandboxed process) model: guest address = host address, and the guest's
//! "hypercalls" are host syscalls (`include/spt_abi.h`, docs/solo5-abi.md §5).

/// Start of the guest mapping; `[0, SPT_GUEST_BASE)` stays unmapped so null
/// dereferences fault.
pub const GUEST_BASE: u64 = 0x1_0000;
/// Where the boot info lives; `rdi` at entry.
pub const BOOT_INFO_ADDR: u64 = 0x1_1000;
/// Where the tender copies the edited manifest (right after the boot info).
pub const MFT_ADDR: u64 = BOOT_INFO_ADDR + core::mem::size_of::<SptBootInfo>() as u64;
/// `data.u64` of the timerfd in the epoll set; every other event's data is a handle.
pub const TIMER_EPOLL_DATA: u64 = 0xFFFF_FFFE;
/// The initial stack pointer is `mem - STACK_OFFSET` (so `rsp + 8` is 16-aligned).
pub const STACK_OFFSET: u64 = 8;
/// The guest aborts unless this much lies between its page-aligned end and `mem`.
pub const MIN_FREE_MEMORY: u64 = 512 * 1024;

/// Boot info handed to the guest in `rdi` (`struct spt_boot_info`, 40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SptBootInfo {
    /// Guest memory size in bytes (the top of guest memory).
    pub mem_size: u64,
    /// Highest end of the loaded segments (page-aligned).
    pub kernel_end: u64,
    /// Address of the NUL-terminated command line.
    pub cmdline: u64,
    /// Address of the manifest copy.
    pub mft: u64,
    /// epoll fd for yield.
    pub epollfd: i32,
    /// timerfd for yield deadlines.
    pub timerfd: i32,
}
const _: () = assert!(core::mem::size_of::<SptBootInfo>() == 40);

impl SptBootInfo {
    /// The boot info as little-endian bytes, in the struct's layout.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[0..8].copy_from_slice(&self.mem_size.to_le_bytes());
        out[8..16].copy_from_slice(&self.kernel_end.to_le_bytes());
        out[16..24].copy_from_slice(&self.cmdline.to_le_bytes());
        out[24..32].copy_from_slice(&self.mft.to_le_bytes());
        out[32..36].copy_from_slice(&self.epollfd.to_le_bytes());
        out[36..40].copy_from_slice(&self.timerfd.to_le_bytes());
        out
    }
}

/// The host syscalls an spt guest makes (x86_64 numbers); the whole guest surface.
pub mod sys {
    /// Net read.
    pub const READ: u64 = 0;
    /// Console and net write.
    pub const WRITE: u64 = 1;
    /// Block read.
    pub const PREAD64: u64 = 17;
    /// Block write.
    pub const PWRITE64: u64 = 18;
    /// TLS base (`ARCH_SET_FS` only).
    pub const ARCH_PRCTL: u64 = 158;
    /// Monotonic and wall clocks.
    pub const CLOCK_GETTIME: u64 = 228;
    /// Exit.
    pub const EXIT_GROUP: u64 = 231;
    /// Yield: wait for I/O or the deadline.
    pub const EPOLL_PWAIT: u64 = 281;
    /// Yield: arm the deadline.
    pub const TIMERFD_SETTIME: u64 = 286;

    /// `arch_prctl` code for setting the FS base.
    pub const ARCH_SET_FS: u64 = 0x1002;
    /// `CLOCK_REALTIME`.
    pub const CLOCK_REALTIME: u64 = 0;
    /// `CLOCK_MONOTONIC`.
    pub const CLOCK_MONOTONIC: u64 = 1;
    /// `TFD_TIMER_ABSTIME`.
    pub const TFD_TIMER_ABSTIME: u64 = 1;
    /// The console fd.
    pub const STDOUT: u64 = 1;
    /// `EAGAIN`, negated in a syscall result.
    pub const EAGAIN: i64 = 11;
    /// `EINTR`, negated in a syscall result.
    pub const EINTR: i64 = 4;
}

/// `struct epoll_event` on x86_64 is packed: 12 bytes.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EpollEvent {
    /// `EPOLLIN` etc.
    pub events: u32,
    /// The handle, or [`TIMER_EPOLL_DATA`].
    pub data: u64,
}
const _: () = assert!(core::mem::size_of::<EpollEvent>() == 12);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn boot_info_layout_matches_solo5() {
        assert_eq!(offset_of!(SptBootInfo, mem_size), 0);
        assert_eq!(offset_of!(SptBootInfo, kernel_end), 8);
        assert_eq!(offset_of!(SptBootInfo, cmdline), 16);
        assert_eq!(offset_of!(SptBootInfo, mft), 24);
        assert_eq!(offset_of!(SptBootInfo, epollfd), 32);
        assert_eq!(offset_of!(SptBootInfo, timerfd), 36);
        assert_eq!(MFT_ADDR, 0x11028);
        // hello: manifest of 1 entry (112 bytes) then the command line.
        assert_eq!(MFT_ADDR + crate::mft::mft_size(1) as u64, 0x11028 + 112, "the command line follows the manifest");
    }

    #[test]
    fn boot_info_bytes_follow_the_layout() {
        let bi = SptBootInfo { mem_size: 1, kernel_end: 2, cmdline: 3, mft: 4, epollfd: 5, timerfd: -1 };
        let b = bi.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(b[8], 2);
        assert_eq!(b[16], 3);
        assert_eq!(b[24], 4);
        assert_eq!(b[32], 5);
        assert_eq!(&b[36..40], &[0xff; 4]);
    }

    #[test]
    fn epoll_event_is_packed() {
        assert_eq!(offset_of!(EpollEvent, data), 4);
    }
}
