//! `--dumpcore=DIR` (solo5-hvt-debug's): when the guest halts with status 255
//! (it aborted, or its trap handler reported a fault), write an ELF core of it to
//! `DIR/core.solo5-hvt.PID` that gdb reads with the guest binary
//! (`gdb GUEST CORE`). The core is what hvt_module_dumpcore.c writes: one
//! `NT_PRSTATUS` note with the vCPU's registers in x86_64 Linux's layout (rip,
//! rsp, rflags, cs and ss from the HALT cookie's trap registers when the guest
//! gave some), and all guest memory as one `PT_LOAD` at address 0 (the guest's
//! page tables are an identity map). Pages that hold only zeros are left as holes.
//!
//! Everything that takes a path happens before the seccomp filter:
//! [`CoreFile::create`] opens DIR, creates the core in it unnamed (`O_TMPFILE`)
//! and writes the two paths of the one `linkat` that will name it on a page it
//! then makes read-only. At abort the tender makes three more kinds of call, each
//! pinned by the filter ([`CoreFile::filter_params`]): `KVM_GET_SREGS` on the vCPU,
//! that `linkat` with every argument fixed (its path pointers point at the sealed
//! page, which nothing can make writable again: no `mprotect` after the filter), and
//! `pwrite64` on the core's fd, a page at most, within the core's size. Without
//! `--dumpcore` none of this exists and the filter is unchanged.
//!
//! After the filter nothing here allocates: headers and note are built on the
//! stack, messages formatted into stack buffers.
//!
//! `unsafe` here: mapping, filling, sealing and unmapping the path page, and the
//! `linkat` that passes its addresses to the kernel.

use std::ffi::{c_long, c_void, CStr, CString};
use std::io::Write as _;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use hypercall_abi::exit::ABORT;
use hypercall_abi::hvt::HvtTrapRegs;
use kvm_bindings::{kvm_regs, kvm_sregs};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap_anonymous, mprotect, munmap, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use object::elf::{
    FileHeader64, Ident, NoteHeader64, ProgramHeader64, ELFCLASS64, ELFDATA2LSB, ELFMAG, ELFOSABI_STANDALONE,
    EM_X86_64, ET_CORE, EV_CURRENT, NT_PRSTATUS, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE,
};
use object::{LittleEndian as LE, U16, U32, U64};
use seccomp_profiles::DumpcoreParams;
use zerocopy::{Immutable, IntoBytes};

use super::memory::GuestRam;
use super::vm::Vm;

/// Host and guest page size: the unit of the memory dump and of the filter's bound on it.
const PAGE: u64 = 4096;
/// The note's name, NUL-padded to 4 bytes as ELF notes are (Linux writes "CORE").
const NOTE_NAME: [u8; 8] = *b"CORE\0\0\0\0";
/// `n_namesz`: "CORE" and its NUL.
const NOTE_NAME_LEN: u32 = 5;
/// `SIGABRT`: the signal gdb reports the core was made by ("Program terminated with signal SIGABRT").
const SIGABRT: i16 = 6;

/// Setting up `--dumpcore` failed (before the guest runs).
#[derive(Debug, thiserror::Error)]
pub enum DumpcoreError {
    /// DIR is not a directory.
    #[error("--dumpcore={}: not a directory (give an existing directory the tender may write to)", .0.display())]
    NotADirectory(PathBuf),
    /// DIR could not be opened.
    #[error("--dumpcore={}: cannot open the directory: {source} (give an existing directory the tender may write to)", dir.display())]
    OpenDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: Errno,
    },
    /// The unnamed core file could not be created in DIR.
    #[error("--dumpcore={}: cannot create the core file in it: {source} (the directory must be writable by the tender, on a filesystem with O_TMPFILE: ext4, xfs, btrfs, tmpfs)", dir.display())]
    Create {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: Errno,
    },
    /// `/proc/self/fd/N` does not lead to the core file.
    #[error("--dumpcore: {path} does not lead to the core file ({reason}): the core is named through it at abort, so /proc must be mounted")]
    Proc {
        /// The magic link.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The path page could not be set up.
    #[error("--dumpcore: {what} of the page holding the core's paths failed: {source}")]
    Page {
        /// `mmap` or `mprotect`.
        what: &'static str,
        /// Why.
        source: Errno,
    },
}

/// Writing the core failed (after the filter: every variant displays without allocating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// The core could not be linked into DIR under its name (as Solo5's
    /// `open(core.solo5-hvt.PID)` failing; EEXIST if the name is taken).
    #[error("naming the core: {0}")]
    Link(Errno),
    /// Reading the vCPU's registers failed.
    #[error("KVM: ioctl({what}) failed: {source}")]
    Registers {
        /// Which ioctl.
        what: &'static str,
        /// Why.
        source: Errno,
    },
    /// A write to the core failed.
    #[error("error writing {what}: {source}")]
    Write {
        /// The ELF headers or guest memory.
        what: &'static str,
        /// Why.
        source: Errno,
    },
}

/// The core of one run: DIR, the unnamed file and the sealed paths that name it.
#[derive(Debug)]
pub struct CoreFile {
    dir: OwnedFd,
    file: std::fs::File,
    paths: SealedPaths,
    /// `DIR/core.solo5-hvt.PID`, as the messages name it.
    shown: String,
    /// The tender's pid (read before the filter, which has no `getpid`).
    pid: u32,
    mem_size: u64,
}

impl CoreFile {
    /// Opens `dir` and creates the (unnamed) core of a guest of `mem_size` bytes in it.
    pub fn create(dir: &Path, mem_size: u64) -> Result<Self, DumpcoreError> {
        let dir_fd = nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|source| match source {
                Errno::ENOTDIR => DumpcoreError::NotADirectory(dir.to_owned()),
                source => DumpcoreError::OpenDir { dir: dir.to_owned(), source },
            })?;
        // Write-only, no O_APPEND (it would change pwrite), and no O_EXCL: an
        // O_TMPFILE file made with O_EXCL can never be linked.
        let file = nix::fcntl::openat(
            &dir_fd,
            ".",
            OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|source| DumpcoreError::Create { dir: dir.to_owned(), source })?;
        let file = std::fs::File::from(file);

        let link_from = format!("/proc/self/fd/{}", file.as_raw_fd());
        let leads_to_file = std::fs::metadata(&link_from)
            .and_then(|via| Ok((via.dev(), via.ino()) == (file.metadata()?.dev(), file.metadata()?.ino())));
        match leads_to_file {
            Ok(true) => {}
            Ok(false) => {
                return Err(DumpcoreError::Proc { path: link_from, reason: "it names another file".to_owned() })
            }
            Err(e) => return Err(DumpcoreError::Proc { path: link_from, reason: e.to_string() }),
        }
        let pid = std::process::id();
        let name = format!("core.solo5-hvt.{pid}");
        let shown = format!("{}/{name}", dir.display());
        let paths = SealedPaths::new(&link_from, &name)?;
        Ok(Self { dir: dir_fd, file, paths, shown, pid, mem_size })
    }

    /// What the filter pins for this core.
    pub fn filter_params(&self) -> DumpcoreParams {
        DumpcoreParams {
            dir_fd: self.dir.as_raw_fd(),
            core_fd: self.file.as_raw_fd(),
            link_from: self.paths.address(self.paths.link_from),
            name: self.paths.address(self.paths.name),
            last_page_offset: self.mem_size,
        }
    }

    /// The HALT hook: with status 255 (`SOLO5_EXIT_ABORT`) writes the core and says
    /// so on stderr, as solo5-hvt-debug does; other statuses write nothing. Failures
    /// are reported, never fatal: the run still ends with the guest's status.
    pub fn on_halt(&self, status: i32, vm: &Vm, ram: &GuestRam, trap: Option<HvtTrapRegs>) {
        if status != ABORT {
            return;
        }
        if let Err(DumpError::Link(errno)) = self.link() {
            let name = self.paths.c_str(self.paths.name).to_str().unwrap_or("core");
            report(format_args!("dumpcore: open({name}): {errno}"));
            return;
        }
        report(format_args!("dumpcore: dumping guest core to: {}", self.shown));
        match self.write(vm, ram, trap) {
            Ok(dumped) => {
                report(format_args!("dumpcore: dumped {dumped} pages of total {} pages", self.mem_size / PAGE))
            }
            Err(e) => {
                report(format_args!("dumpcore: {e}"));
                report(format_args!("dumpcore: error(s) dumping core, file may be incomplete"));
            }
        }
    }

    /// Gives the core its name in DIR: `linkat(AT_FDCWD, "/proc/self/fd/N", dir,
    /// "core.solo5-hvt.PID", AT_SYMLINK_FOLLOW)`, which fails if the name exists
    /// (Solo5 opens with `O_EXCL`). The one call the filter allows it as.
    fn link(&self) -> Result<(), DumpError> {
        let from = self.paths.c_str(self.paths.link_from);
        let name = self.paths.c_str(self.paths.name);
        // SAFETY: both paths are NUL-terminated strings on the sealed page, which
        // lives as long as `self`; the kernel only reads them. Every argument is a
        // full-width `long`, as the filter compares them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_linkat,
                c_long::from(libc::AT_FDCWD),
                from.as_ptr(),
                c_long::from(self.dir.as_raw_fd()),
                name.as_ptr(),
                c_long::from(libc::AT_SYMLINK_FOLLOW),
            )
        };
        if rc == -1 {
            return Err(DumpError::Link(Errno::last()));
        }
        Ok(())
    }

    /// Writes headers, note and the non-zero pages of guest memory. Returns the
    /// number of pages written.
    fn write(&self, vm: &Vm, ram: &GuestRam, trap: Option<HvtTrapRegs>) -> Result<u64, DumpError> {
        let (regs, sregs) =
            vm.registers().map_err(|(what, e)| DumpError::Registers { what, source: Errno::from_raw(e.errno()) })?;
        let mut head = [0u8; HEADERS_LEN];
        headers(&mut head, self.mem_size, &prstatus(&regs, &sregs, trap, self.pid));
        let fd = self.file.as_fd();
        write_all_at(fd, &head, 0).map_err(|source| DumpError::Write { what: "ELF headers", source })?;

        let mut page = [0u8; 4096];
        let mut dumped = 0;
        let mut gpa = 0;
        while gpa < self.mem_size {
            // The last page is written even if zero, so the file has its full size.
            if ram.read(gpa, &mut page).is_ok() && (page.iter().any(|&b| b != 0) || gpa + PAGE == self.mem_size) {
                write_all_at(fd, &page, PAGE + gpa)
                    .map_err(|source| DumpError::Write { what: "guest memory", source })?;
                dumped += 1;
            }
            gpa += PAGE;
        }
        Ok(dumped)
    }
}

/// `pwrite64` until all of `buf` is at `offset`.
fn write_all_at(fd: std::os::fd::BorrowedFd<'_>, mut buf: &[u8], mut offset: u64) -> Result<(), Errno> {
    while !buf.is_empty() {
        let at = i64::try_from(offset).map_err(|_| Errno::EFBIG)?;
        match nix::sys::uio::pwrite(fd, buf, at) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One line on stderr, `tender: ` first, written at once from a stack buffer.
fn report(line: std::fmt::Arguments<'_>) {
    const SIZE: usize = 512;
    let mut buf = [0u8; SIZE];
    let mut rest = &mut buf[..];
    let _ = writeln!(rest, "tender: {line}");
    let len = SIZE - rest.len();
    let _ = std::io::stderr().write_all(&buf[..len]);
}

/// `struct user_regs_struct` of x86_64 Linux (sys/user.h): `elf_prstatus.pr_reg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, IntoBytes, Immutable)]
struct UserRegs {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    rbp: u64,
    rbx: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rax: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    orig_rax: u64,
    rip: u64,
    cs: u64,
    eflags: u64,
    rsp: u64,
    ss: u64,
    fs_base: u64,
    gs_base: u64,
    ds: u64,
    es: u64,
    fs: u64,
    gs: u64,
}

/// `struct elf_prstatus` of x86_64 Linux (linux/elfcore.h), 336 bytes: what gdb
/// (BFD's `elf_x86_64_grok_prstatus`) reads an `NT_PRSTATUS` note as. Padding is
/// spelled out so the whole struct is bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, IntoBytes, Immutable)]
struct ElfPrstatus {
    si_signo: i32,
    si_code: i32,
    si_errno: i32,
    pr_cursig: i16,
    _pad0: [u8; 2],
    pr_sigpend: u64,
    pr_sighold: u64,
    pr_pid: i32,
    pr_ppid: i32,
    pr_pgrp: i32,
    pr_sid: i32,
    pr_times: [[i64; 2]; 4],
    pr_reg: UserRegs,
    pr_fpvalid: i32,
    _pad1: [u8; 4],
}
const _: () = assert!(size_of::<ElfPrstatus>() == 336);
const _: () = assert!(std::mem::offset_of!(ElfPrstatus, pr_reg) == 112);

/// The registers as solo5-hvt-debug puts them in the core: the vCPU's, with rip,
/// cs, rflags, rsp and ss from the guest's trap registers if it passed any.
fn prstatus(regs: &kvm_regs, sregs: &kvm_sregs, trap: Option<HvtTrapRegs>, pid: u32) -> ElfPrstatus {
    let mut r = UserRegs {
        r15: regs.r15,
        r14: regs.r14,
        r13: regs.r13,
        r12: regs.r12,
        rbp: regs.rbp,
        rbx: regs.rbx,
        r11: regs.r11,
        r10: regs.r10,
        r9: regs.r9,
        r8: regs.r8,
        rax: regs.rax,
        rcx: regs.rcx,
        rdx: regs.rdx,
        rsi: regs.rsi,
        rdi: regs.rdi,
        orig_rax: 0,
        rip: regs.rip,
        cs: sregs.cs.selector.into(),
        eflags: regs.rflags,
        rsp: regs.rsp,
        ss: sregs.ss.selector.into(),
        fs_base: sregs.fs.base,
        gs_base: sregs.gs.base,
        ds: sregs.ds.selector.into(),
        es: sregs.es.selector.into(),
        fs: sregs.fs.selector.into(),
        gs: sregs.gs.selector.into(),
    };
    if let Some(trap) = trap {
        r.rip = trap.rip;
        r.cs = trap.cs;
        r.eflags = trap.rflags;
        r.rsp = trap.rsp;
        r.ss = trap.ss;
    }
    // The pid is the tender's: gdb names the core's one thread after it.
    let pr_pid = i32::try_from(pid).unwrap_or(0);
    ElfPrstatus { pr_cursig: SIGABRT, pr_pid, pr_reg: r, ..ElfPrstatus::default() }
}

/// Bytes of ELF header, the two program headers and the note.
const HEADERS_LEN: usize = size_of::<FileHeader64<LE>>()
    + 2 * size_of::<ProgramHeader64<LE>>()
    + size_of::<NoteHeader64<LE>>()
    + NOTE_NAME.len()
    + size_of::<ElfPrstatus>();
const _: () = assert!(HEADERS_LEN as u64 <= PAGE);

/// Fills `out` with the core's first bytes: ELF header (`ET_CORE`), `PT_NOTE`,
/// `PT_LOAD` (all guest memory at address 0, from file offset [`PAGE`]), and the
/// `NT_PRSTATUS` note.
fn headers(out: &mut [u8; HEADERS_LEN], mem_size: u64, prstatus: &ElfPrstatus) {
    let ehdr_len = size_of::<FileHeader64<LE>>();
    let phdr_len = size_of::<ProgramHeader64<LE>>();
    let note_offset = ehdr_len + 2 * phdr_len;
    let note_len = HEADERS_LEN - note_offset;
    let u16_of = |n: usize| U16::new(LE, u16::try_from(n).unwrap_or(u16::MAX));
    let u64_of = |n: usize| U64::new(LE, n as u64);
    let ehdr = FileHeader64::<LE> {
        e_ident: Ident {
            magic: ELFMAG,
            class: ELFCLASS64,
            data: ELFDATA2LSB,
            version: EV_CURRENT,
            // As solo5-hvt-debug: the guest is no Linux process.
            os_abi: ELFOSABI_STANDALONE,
            abi_version: 0,
            padding: [0; 7],
        },
        e_type: U16::new(LE, ET_CORE),
        e_machine: U16::new(LE, EM_X86_64),
        e_version: U32::new(LE, u32::from(EV_CURRENT.0)),
        e_entry: U64::new(LE, 0),
        e_phoff: u64_of(ehdr_len),
        e_shoff: U64::new(LE, 0),
        e_flags: U32::default(),
        e_ehsize: u16_of(ehdr_len),
        e_phentsize: u16_of(phdr_len),
        e_phnum: U16::new(LE, 2),
        e_shentsize: U16::new(LE, 0),
        e_shnum: U16::new(LE, 0),
        e_shstrndx: U16::default(),
    };
    let note = ProgramHeader64::<LE> {
        p_type: U32::new(LE, PT_NOTE),
        p_flags: U32::default(),
        p_offset: u64_of(note_offset),
        p_vaddr: U64::new(LE, 0),
        p_paddr: U64::new(LE, 0),
        p_filesz: u64_of(note_len),
        p_memsz: U64::new(LE, 0),
        p_align: U64::new(LE, 4),
    };
    let load = ProgramHeader64::<LE> {
        p_type: U32::new(LE, PT_LOAD),
        p_flags: U32::new(LE, PF_R | PF_W | PF_X),
        p_offset: U64::new(LE, PAGE),
        p_vaddr: U64::new(LE, 0),
        p_paddr: U64::new(LE, 0),
        p_filesz: U64::new(LE, mem_size),
        p_memsz: U64::new(LE, mem_size),
        p_align: U64::new(LE, PAGE),
    };
    let nhdr = NoteHeader64::<LE> {
        n_namesz: U32::new(LE, NOTE_NAME_LEN),
        n_descsz: U32::new(LE, u32::try_from(size_of::<ElfPrstatus>()).unwrap_or(u32::MAX)),
        n_type: U32::new(LE, NT_PRSTATUS),
    };
    let parts: [&[u8]; 6] = [
        object::bytes_of(&ehdr),
        object::bytes_of(&note),
        object::bytes_of(&load),
        object::bytes_of(&nhdr),
        &NOTE_NAME,
        prstatus.as_bytes(),
    ];
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
}

/// Two NUL-terminated paths on a page of their own, read-only once built: the
/// filter pins `linkat`'s path arguments to their addresses, and since it allows
/// no `mprotect`, `mmap` or `munmap`, what they say cannot change after it.
#[derive(Debug)]
struct SealedPaths {
    page: NonNull<c_void>,
    /// Offsets of the two strings.
    link_from: usize,
    name: usize,
}

/// The page's size: more than both paths need (`/proc/self/fd/N`, `core.solo5-hvt.PID`).
const PATHS_PAGE: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");

impl SealedPaths {
    fn new(link_from: &str, name: &str) -> Result<Self, DumpcoreError> {
        let link_from =
            CString::new(link_from).map_err(|_| DumpcoreError::Page { what: "mmap", source: Errno::EINVAL })?;
        let name = CString::new(name).map_err(|_| DumpcoreError::Page { what: "mmap", source: Errno::EINVAL })?;
        let (a, b) = (link_from.as_bytes_with_nul(), name.as_bytes_with_nul());
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let page = unsafe {
            mmap_anonymous(None, PATHS_PAGE, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_PRIVATE)
        }
        .map_err(|source| DumpcoreError::Page { what: "mmap", source })?;
        let paths = Self { page, link_from: 0, name: a.len() };
        paths.fill(&[a, b]);
        // SAFETY: the page is ours (mapped above) and only this struct refers to it;
        // from now on it is only read.
        unsafe { mprotect(page, PATHS_PAGE.get(), ProtFlags::PROT_READ) }
            .map_err(|source| DumpcoreError::Page { what: "mprotect", source })?;
        Ok(paths)
    }

    /// Copies `strings` to the start of the (still writable) page, one after another.
    fn fill(&self, strings: &[&[u8]]) {
        let total: usize = strings.iter().map(|s| s.len()).sum();
        assert!(total <= PATHS_PAGE.get(), "paths larger than a page");
        // SAFETY: the page is `PATHS_PAGE` bytes, mapped read-write by `new` and not
        // yet sealed; `total` fits (asserted); no other reference to it exists.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.page.as_ptr().cast::<u8>(), total) };
        let mut at = 0;
        for s in strings {
            bytes[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        }
    }

    /// The string at `offset`.
    fn c_str(&self, offset: usize) -> &CStr {
        // SAFETY: `offset` is where `fill` put a NUL-terminated string on the page,
        // which stays mapped (read-only) as long as `self`, to which the result's
        // lifetime is tied.
        unsafe { CStr::from_ptr(self.page.as_ptr().cast::<u8>().add(offset).cast()) }
    }

    /// The address of the string at `offset`, as the filter compares it.
    fn address(&self, offset: usize) -> u64 {
        (self.page.as_ptr().addr() + offset) as u64
    }
}

impl Drop for SealedPaths {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `new` and is unmapped once, here.
        let _ = unsafe { munmap(self.page, PATHS_PAGE.get()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prstatus_is_linuxs_and_trap_registers_win() {
        let regs = kvm_regs { rip: 0x10_1234, rsp: 0x20_0000, rbp: 7, rflags: 0x2, ..kvm_regs::default() };
        let mut sregs = kvm_sregs::default();
        sregs.cs.selector = 8;
        sregs.ss.selector = 0x10;
        sregs.fs.base = 0x30_0000;
        let p = prstatus(&regs, &sregs, None, 42);
        let bytes = p.as_bytes();
        let word = |i: usize| u64::from_le_bytes(bytes[112 + 8 * i..120 + 8 * i].try_into().unwrap());
        // user_regs_struct indexes: rbp 4, rip 16, cs 17, eflags 18, rsp 19, ss 20, fs_base 21.
        assert_eq!(
            [word(4), word(16), word(17), word(18), word(19), word(20), word(21)],
            [7, 0x10_1234, 8, 2, 0x20_0000, 0x10, 0x30_0000]
        );
        assert_eq!(i16::from_le_bytes([bytes[12], bytes[13]]), SIGABRT);
        let trap =
            HvtTrapRegs { rip: 0x10_5678, rsp: 0x1f_ff00, rflags: 0x10002, cs: 8, ss: 0x10, ..Default::default() };
        let p = prstatus(&regs, &sregs, Some(trap), 42);
        assert_eq!((p.pr_reg.rip, p.pr_reg.rsp, p.pr_reg.eflags, p.pr_reg.rbp), (0x10_5678, 0x1f_ff00, 0x10002, 7));
    }

    #[test]
    fn headers_parse_as_a_core_with_one_note_and_all_memory() {
        use object::read::elf::{FileHeader as _, ProgramHeader as _};
        let mut out = [0u8; HEADERS_LEN];
        headers(&mut out, 2 << 20, &ElfPrstatus::default());
        let ehdr = FileHeader64::<LE>::parse(&out[..]).unwrap();
        assert_eq!(ehdr.e_type(LE), ET_CORE);
        assert_eq!(ehdr.e_machine(LE), EM_X86_64);
        let phdrs = ehdr.program_headers(LE, &out[..]).unwrap();
        assert_eq!(phdrs.len(), 2);
        assert_eq!(phdrs[1].p_type(LE), PT_LOAD);
        assert_eq!((phdrs[1].p_offset(LE), phdrs[1].p_vaddr(LE), phdrs[1].p_filesz(LE)), (PAGE, 0, 2 << 20));
        let mut notes = phdrs[0].notes(LE, &out[..]).unwrap().unwrap();
        let note = notes.next().unwrap().unwrap();
        assert_eq!((note.name(), note.n_type(LE), note.desc().len()), (&b"CORE"[..], NT_PRSTATUS, 336));
        assert!(notes.next().unwrap().is_none());
    }

    #[test]
    fn a_missing_or_plain_file_dir_is_refused_by_name() {
        let missing = Path::new("/nonexistent-dumpcore-dir");
        let e = CoreFile::create(missing, 2 << 20).unwrap_err().to_string();
        assert!(e.starts_with("--dumpcore=/nonexistent-dumpcore-dir: cannot open the directory: ENOENT"), "{e}");
        let e = CoreFile::create(Path::new("/proc/self/exe"), 2 << 20).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn the_core_is_unnamed_until_linked_and_its_paths_are_sealed() {
        let dir = std::env::temp_dir().join(format!("tender-dumpcore-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let core = CoreFile::create(&dir, 2 << 20).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "a core file is visible before abort");
        let p = core.filter_params();
        assert_eq!(p.last_page_offset, 2 << 20);
        assert_eq!(
            core.paths.c_str(core.paths.name).to_str().unwrap(),
            format!("core.solo5-hvt.{}", std::process::id())
        );
        assert_eq!(p.name - p.link_from, core.paths.c_str(core.paths.link_from).to_bytes_with_nul().len() as u64);
        core.link().unwrap();
        let linked = dir.join(format!("core.solo5-hvt.{}", std::process::id()));
        assert!(linked.is_file());
        // Linking again fails like Solo5's O_EXCL open.
        assert_eq!(core.link(), Err(DumpError::Link(Errno::EEXIST)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
