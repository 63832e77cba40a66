//! Validating a guest ELF image: header, Solo5 notes, manifest and `PT_LOAD` segments
//! (docs/solo5-abi.md §1–3), in the order Solo5's tenders check them.
//!
//! Only the ELF header and the program headers are read, never the section headers: the
//! fuzzed `buggyelf` guest has a truncated section table and must still be diagnosed.

use hypercall_abi::elf::{AbiTarget, ABI_VERSION, GUEST_MIN_LOAD_ADDR, PAGE_SIZE};
use object::elf::{
    FileHeader64, ProgramHeader64, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_DYN, ET_EXEC, EV_CURRENT, PF_R, PF_W,
    PF_X, PT_LOAD,
};
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::{LittleEndian as LE, ReadRef as _};

use super::manifest::{Manifest, ManifestError};
use super::notes::{find_note, NoteError, NoteKind};

/// A validated guest ELF: what a backend needs to load and start it.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// Target from the ABI note (spt or hvt; others are rejected).
    pub target: AbiTarget,
    /// ABI version from the ABI note (always `hypercall_abi::elf::ABI_VERSION` once parsed).
    pub abi_version: u32,
    /// `e_entry`.
    pub entry: u64,
    /// The considered `PT_LOAD`s (filesz != 0), in file order.
    pub segments: Vec<Segment>,
    /// Highest aligned `end` over the segments.
    pub kernel_end: u64,
    /// The validated manifest.
    pub manifest: Manifest,
}

/// Host protection of a segment, from `p_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPerms {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub exec: bool,
}

impl SegmentPerms {
    /// Decodes `p_flags` (R=4, W=2, X=1); other bits are ignored.
    pub const fn from_flags(p_flags: u32) -> Self {
        Self { read: p_flags & PF_R.0 != 0, write: p_flags & PF_W.0 != 0, exec: p_flags & PF_X.0 != 0 }
    }
}

/// One loadable segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Index of its program header (for messages).
    pub phdr_index: usize,
    /// `p_vaddr`: where the file bytes go.
    pub vaddr: u64,
    /// `p_offset`.
    pub file_offset: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_vaddr` rounded down to `p_align`: start of the protected range.
    pub start: u64,
    /// `p_vaddr + p_memsz` rounded up to `p_align`: end of the protected range.
    pub end: u64,
    /// From `p_flags`.
    pub perms: SegmentPerms,
}

impl Segment {
    /// The segment's bytes in the file, as a range into the parsed buffer.
    pub fn file_range(&self) -> core::ops::Range<usize> {
        // `parse` checked offset + filesz <= file length, so neither conversion saturates
        // for a segment it produced.
        let start = usize::try_from(self.file_offset).unwrap_or(usize::MAX);
        let end = usize::try_from(self.file_offset.saturating_add(self.filesz)).unwrap_or(usize::MAX);
        start..end
    }
}

/// Why a guest image was rejected. Messages name the culprit but not the file: the
/// caller prints them as `PATH: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file does not start with `\x7fELF`.
    #[error("invalid executable: not an ELF file (no \\x7fELF magic)")]
    NotElf,
    /// The file is shorter than an ELF64 header.
    #[error("invalid executable: file is {len} bytes, too short for the 64-byte ELF header")]
    HeaderTruncated {
        /// File length.
        len: usize,
    },
    /// `EI_CLASS` is not ELFCLASS64.
    #[error("invalid executable: ELF class {0} is not ELFCLASS64 (2); only 64-bit x86_64 images can run")]
    NotElf64(u8),
    /// `EI_DATA` is not little-endian.
    #[error("invalid executable: ELF data encoding {0} is not little-endian (ELFDATA2LSB, 1)")]
    NotLittleEndian(u8),
    /// `e_version` is not EV_CURRENT.
    #[error("invalid executable: e_version {0} is not EV_CURRENT (1)")]
    BadVersion(u32),
    /// `e_ehsize` is not 64.
    #[error("invalid executable: e_ehsize {0} is not 64")]
    BadEhsize(u16),
    /// `e_phentsize` is not 56.
    #[error("invalid executable: e_phentsize {0} is not 56 (the size of Elf64_Phdr)")]
    BadPhentsize(u16),
    /// `e_phnum` is 0.
    #[error("invalid executable: no program headers (e_phnum is 0)")]
    NoProgramHeaders,
    /// `e_type` is ET_DYN.
    #[error("invalid executable: position-independent executable (ET_DYN): PIE is not supported, link the guest as a static ET_EXEC at 0x100000")]
    Pie,
    /// `e_type` is neither ET_EXEC nor ET_DYN.
    #[error("invalid executable: e_type {0} is not ET_EXEC (2)")]
    NotExecutable(u16),
    /// `e_machine` is not EM_X86_64.
    #[error("invalid executable: e_machine {0} is not EM_X86_64 (62)")]
    WrongMachine(u16),
    /// `e_entry` below the lowest load address.
    #[error("invalid executable: entry point {entry:#x} is below the lowest load address {GUEST_MIN_LOAD_ADDR:#x}")]
    EntryBelowMin {
        /// `e_entry`.
        entry: u64,
    },
    /// `e_entry` at or beyond the end of guest memory.
    #[error(
        "invalid executable: entry point {entry:#x} is beyond guest memory ({mem_size:#x} bytes); try a larger --mem"
    )]
    EntryBeyondMemory {
        /// `e_entry`.
        entry: u64,
        /// Guest memory size.
        mem_size: u64,
    },
    /// The program header table is not inside the file.
    #[error("invalid executable: program headers ({phnum} x 56 bytes at offset {phoff:#x}) extend past end of file ({file_len} bytes)")]
    PhdrsTruncated {
        /// `e_phoff`.
        phoff: u64,
        /// `e_phnum`.
        phnum: u16,
        /// File length.
        file_len: usize,
    },
    /// A malformed Solo5 note.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// No ABI1 note.
    #[error("no Solo5 ABI information found in executable (no PT_NOTE starts with a Solo5 ABI1 note); is it a Solo5 unikernel?")]
    NoAbiNote,
    /// The ABI note names a target other than spt or hvt.
    #[error("{}", unsupported_target(*target))]
    UnsupportedTarget {
        /// Raw target word.
        target: u32,
    },
    /// The ABI note asks for another ABI version.
    #[error("executable requests unsupported ABI version {version} (this tender implements version {ABI_VERSION})")]
    UnsupportedAbiVersion {
        /// Requested version.
        version: u32,
    },
    /// No MFT1 note.
    #[error("no Solo5 manifest found in executable (no PT_NOTE starts with a Solo5 MFT1 note)")]
    NoManifest,
    /// The manifest payload is invalid; its message starts with "Solo5 manifest is invalid".
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A `PT_LOAD` breaks a loader rule.
    #[error("invalid executable: phdr[{phdr}] {reason}")]
    Segment {
        /// Program header index.
        phdr: usize,
        /// The rule broken.
        reason: SegmentError,
    },
    /// `e_entry` does not point into the file bytes of an executable segment.
    #[error("invalid executable: entry point {entry:#x} is outside the executable segments")]
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
    },
}

fn unsupported_target(raw: u32) -> String {
    match AbiTarget::from_raw(raw) {
        Some(t) => format!("executable is for the solo5-{} target, which this tender does not run", t.name()),
        None => format!("executable is for an unknown Solo5 target ({raw}), which this tender does not run"),
    }
}

/// The loader rule a `PT_LOAD` broke (docs/solo5-abi.md §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Rule 2: below 1 MiB.
    #[error("p_vaddr {vaddr:#x} is below the lowest load address {GUEST_MIN_LOAD_ADDR:#x}")]
    VaddrBelowMin {
        /// `p_vaddr`.
        vaddr: u64,
    },
    /// Rule 2: not sorted.
    #[error(
        "p_vaddr {vaddr:#x} is below the previous segment's p_vaddr {prev:#x}; PT_LOADs must be sorted by address"
    )]
    VaddrDecreasing {
        /// `p_vaddr`.
        vaddr: u64,
        /// Previous considered `p_vaddr`.
        prev: u64,
    },
    /// Rule 3: bad alignment.
    #[error("p_align {align:#x} is not a non-zero power of two")]
    BadAlign {
        /// `p_align`.
        align: u64,
    },
    /// Rule 3: aligned start below 1 MiB.
    #[error("start {start:#x} (p_vaddr {vaddr:#x} aligned down to {align:#x}) is below the lowest load address {GUEST_MIN_LOAD_ADDR:#x}")]
    StartBelowMin {
        /// Aligned start.
        start: u64,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_align`.
        align: u64,
    },
    /// Rule 3: overlaps an earlier segment.
    #[error("overlaps the previous segment: start {start:#x} is below its end {prev_end:#x}")]
    Overlap {
        /// Aligned start.
        start: u64,
        /// Highest aligned end so far.
        prev_end: u64,
    },
    /// Rule 4: starts beyond guest memory.
    #[error("p_vaddr {vaddr:#x} is beyond guest memory ({mem_size:#x} bytes); try a larger --mem")]
    VaddrBeyondMemory {
        /// `p_vaddr`.
        vaddr: u64,
        /// Guest memory size.
        mem_size: u64,
    },
    /// Rule 4: `p_vaddr + p_filesz` overflows.
    #[error("p_vaddr {vaddr:#x} + p_filesz {filesz:#x} overflows")]
    FileRangeOverflow {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_filesz`.
        filesz: u64,
    },
    /// Rule 4: file bytes end beyond guest memory.
    #[error("p_vaddr + p_filesz = {end:#x} is beyond guest memory ({mem_size:#x} bytes); try a larger --mem")]
    FileRangeBeyondMemory {
        /// `p_vaddr + p_filesz`.
        end: u64,
        /// Guest memory size.
        mem_size: u64,
    },
    /// Rule 5: `p_memsz < p_filesz`.
    #[error("p_memsz {memsz:#x} is smaller than p_filesz {filesz:#x}")]
    MemszBelowFilesz {
        /// `p_memsz`.
        memsz: u64,
        /// `p_filesz`.
        filesz: u64,
    },
    /// Rule 5: `p_vaddr + p_memsz`, aligned up, overflows.
    #[error("p_vaddr {vaddr:#x} + p_memsz {memsz:#x} aligned up to {align:#x} overflows")]
    MemRangeOverflow {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        memsz: u64,
        /// `p_align`.
        align: u64,
    },
    /// Rule 5: aligned end beyond guest memory.
    #[error(
        "end {end:#x} (p_vaddr + p_memsz aligned up) is beyond guest memory ({mem_size:#x} bytes); try a larger --mem"
    )]
    EndBeyondMemory {
        /// Aligned end.
        end: u64,
        /// Guest memory size.
        mem_size: u64,
    },
    /// Rule 6: the file bytes are not all in the file.
    #[error("segment extends past end of file: p_offset {offset:#x} + p_filesz {filesz:#x} > file size {file_len:#x}")]
    PastEndOfFile {
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// File length.
        file_len: usize,
    },
    /// Rule 7: start not page aligned.
    #[error("start {start:#x} is not a multiple of the page size {PAGE_SIZE:#x}; link with p_align >= {PAGE_SIZE:#x}")]
    StartUnaligned {
        /// Aligned start.
        start: u64,
    },
    /// Rule 7: end not page aligned.
    #[error("end {end:#x} is not a multiple of the page size {PAGE_SIZE:#x}; link with p_align >= {PAGE_SIZE:#x}")]
    EndUnaligned {
        /// Aligned end.
        end: u64,
    },
    /// Rule 8: W and X together.
    #[error(
        "requests WRITE and EXEC permissions (p_flags {flags:#x}); link code and writable data into separate segments"
    )]
    WriteExec {
        /// `p_flags`.
        flags: u32,
    },
}

/// The `PT_LOAD` fields the loader rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LoadPhdr {
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

impl LoadPhdr {
    fn from_phdr(ph: &ProgramHeader64<LE>) -> Self {
        Self {
            flags: ph.p_flags(LE).0,
            offset: ph.p_offset(LE),
            vaddr: ph.p_vaddr(LE),
            filesz: ph.p_filesz(LE),
            memsz: ph.p_memsz(LE),
            align: ph.p_align(LE),
        }
    }
}

/// Applies loader rules 2–8 to the considered `PT_LOAD`s, one at a time, in order.
#[derive(Debug, Default)]
struct SegmentRules {
    /// `p_vaddr` of the previous considered segment (rule 2).
    last_vaddr: u64,
    /// Highest aligned end so far (rule 3 overlap check, rule 9 `kernel_end`).
    end: u64,
}

impl SegmentRules {
    fn check(
        &mut self,
        phdr_index: usize,
        ph: LoadPhdr,
        file_len: usize,
        mem_size: u64,
    ) -> Result<Segment, SegmentError> {
        let LoadPhdr { flags, offset, vaddr, filesz, memsz, align } = ph;
        // Rule 2.
        if vaddr < GUEST_MIN_LOAD_ADDR {
            return Err(SegmentError::VaddrBelowMin { vaddr });
        }
        if vaddr < self.last_vaddr {
            return Err(SegmentError::VaddrDecreasing { vaddr, prev: self.last_vaddr });
        }
        self.last_vaddr = vaddr;
        // Rule 3.
        if !align.is_power_of_two() {
            return Err(SegmentError::BadAlign { align });
        }
        let start = vaddr & !(align - 1);
        if start < GUEST_MIN_LOAD_ADDR {
            return Err(SegmentError::StartBelowMin { start, vaddr, align });
        }
        if start < self.end {
            return Err(SegmentError::Overlap { start, prev_end: self.end });
        }
        // Rule 4.
        if vaddr >= mem_size {
            return Err(SegmentError::VaddrBeyondMemory { vaddr, mem_size });
        }
        let file_end = vaddr.checked_add(filesz).ok_or(SegmentError::FileRangeOverflow { vaddr, filesz })?;
        if file_end > mem_size {
            return Err(SegmentError::FileRangeBeyondMemory { end: file_end, mem_size });
        }
        // Rule 5.
        if memsz < filesz {
            return Err(SegmentError::MemszBelowFilesz { memsz, filesz });
        }
        let end = vaddr
            .checked_add(memsz)
            .and_then(|e| e.checked_next_multiple_of(align))
            .ok_or(SegmentError::MemRangeOverflow { vaddr, memsz, align })?;
        if end > mem_size {
            return Err(SegmentError::EndBeyondMemory { end, mem_size });
        }
        // Rule 6: the backend copies these bytes; a short read is an error in Solo5.
        if !fits_in_file(offset, filesz, file_len) {
            return Err(SegmentError::PastEndOfFile { offset, filesz, file_len });
        }
        // Rule 7.
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(SegmentError::StartUnaligned { start });
        }
        if !end.is_multiple_of(PAGE_SIZE) {
            return Err(SegmentError::EndUnaligned { end });
        }
        // Rule 8.
        let perms = SegmentPerms::from_flags(flags);
        if perms.write && perms.exec {
            return Err(SegmentError::WriteExec { flags });
        }
        self.end = self.end.max(end);
        Ok(Segment { phdr_index, vaddr, file_offset: offset, filesz, memsz, start, end, perms })
    }

    /// Highest aligned end so far.
    fn kernel_end(&self) -> u64 {
        self.end
    }
}

impl LoadError {
    /// Whether the error may only mean that the bytes given stopped short of the file
    /// (a header, the program headers or a note lie beyond them).
    pub fn is_truncation(&self) -> bool {
        matches!(
            self,
            Self::HeaderTruncated { .. } | Self::PhdrsTruncated { .. } | Self::Note(NoteError::Truncated { .. })
        )
    }
}

/// Whether `[offset, offset + len)` lies inside a file of `file_len` bytes.
fn fits_in_file(offset: u64, len: u64, file_len: usize) -> bool {
    let file_len = u64::try_from(file_len).unwrap_or(u64::MAX);
    offset.checked_add(len).is_some_and(|end| end <= file_len)
}

/// Checks the ELF header (docs/solo5-abi.md §1.1) and returns it with the program headers.
fn parse_header(bytes: &[u8], mem_size: u64) -> Result<(&FileHeader64<LE>, &[ProgramHeader64<LE>]), LoadError> {
    let magic_len = bytes.len().min(ELFMAG.len());
    if bytes.get(..magic_len) != ELFMAG.get(..magic_len) {
        return Err(LoadError::NotElf);
    }
    // Not `FileHeader::parse`: it also insists on EI_VERSION, which Solo5 does not check,
    // and its generic error would not say which field is wrong.
    let header: &FileHeader64<LE> = bytes.read_at(0).map_err(|()| LoadError::HeaderTruncated { len: bytes.len() })?;
    let ident = header.e_ident();
    if ident.class != ELFCLASS64 {
        return Err(LoadError::NotElf64(ident.class.0));
    }
    if ident.data != ELFDATA2LSB {
        return Err(LoadError::NotLittleEndian(ident.data.0));
    }
    let version = header.e_version(LE);
    if version != u32::from(EV_CURRENT.0) {
        return Err(LoadError::BadVersion(version));
    }
    let ehsize = header.e_ehsize(LE);
    if usize::from(ehsize) != core::mem::size_of::<FileHeader64<LE>>() {
        return Err(LoadError::BadEhsize(ehsize));
    }
    let phentsize = header.e_phentsize(LE);
    if usize::from(phentsize) != core::mem::size_of::<ProgramHeader64<LE>>() {
        return Err(LoadError::BadPhentsize(phentsize));
    }
    let phnum = header.e_phnum(LE);
    if phnum == 0 {
        return Err(LoadError::NoProgramHeaders);
    }
    match header.e_type(LE) {
        ET_EXEC => {}
        ET_DYN => return Err(LoadError::Pie),
        other => return Err(LoadError::NotExecutable(other.0)),
    }
    let machine = header.e_machine(LE);
    if machine != EM_X86_64 {
        return Err(LoadError::WrongMachine(machine.0));
    }
    let entry = header.e_entry(LE);
    if entry < GUEST_MIN_LOAD_ADDR {
        return Err(LoadError::EntryBelowMin { entry });
    }
    if entry >= mem_size {
        return Err(LoadError::EntryBeyondMemory { entry, mem_size });
    }
    // Not `FileHeader::program_headers`: for e_phnum == PN_XNUM it would read section 0.
    // Solo5 takes e_phnum literally, and so do we.
    let phoff = header.e_phoff(LE);
    let phdrs = bytes.read_slice_at(phoff, usize::from(phnum)).map_err(|()| LoadError::PhdrsTruncated {
        phoff,
        phnum,
        file_len: bytes.len(),
    })?;
    Ok((header, phdrs))
}

impl GuestImage {
    /// Parses and validates `bytes`, a whole file, for a guest memory of `mem_size` bytes.
    ///
    /// Pure: no syscalls, and any input gives a value or an error, never a panic.
    pub fn parse(bytes: &[u8], mem_size: u64) -> Result<Self, LoadError> {
        Self::parse_in(bytes, bytes.len() as u64, mem_size)
    }

    /// As [`Self::parse`], from the first bytes of a file of `file_len` bytes: headers
    /// and notes are read from `bytes`, segments are checked against `file_len` (their
    /// bytes are read later, straight into guest memory). A header or note beyond
    /// `bytes` is reported as truncated ([`LoadError::is_truncation`]): read more and
    /// parse again.
    pub fn parse_in(bytes: &[u8], file_len: u64, mem_size: u64) -> Result<Self, LoadError> {
        let file_len = usize::try_from(file_len).unwrap_or(usize::MAX);
        let (header, phdrs) = parse_header(bytes, mem_size)?;
        let entry = header.e_entry(LE);

        let abi = find_note(bytes, phdrs, NoteKind::Abi)?.ok_or(LoadError::NoAbiNote)?;
        let word = |at: usize| abi.get(at..at + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
        // find_note guarantees a full 16-byte abi1_info.
        let (raw_target, abi_version) = (word(0).unwrap_or(0), word(4).unwrap_or(0));
        let target = match AbiTarget::from_raw(raw_target) {
            Some(t @ (AbiTarget::Spt | AbiTarget::Hvt)) => t,
            _ => return Err(LoadError::UnsupportedTarget { target: raw_target }),
        };
        if abi_version != ABI_VERSION {
            return Err(LoadError::UnsupportedAbiVersion { version: abi_version });
        }

        let mft = find_note(bytes, phdrs, NoteKind::Manifest)?.ok_or(LoadError::NoManifest)?;
        let manifest = Manifest::parse(mft)?;

        let mut rules = SegmentRules::default();
        let mut segments = Vec::new();
        for (phdr, ph) in phdrs.iter().enumerate() {
            // Rule 1: zero-filesz PT_LOADs (the empty TLS slot at 0, BSS) are skipped entirely.
            if ph.p_type(LE) != PT_LOAD || ph.p_filesz(LE) == 0 {
                continue;
            }
            let segment = rules
                .check(phdr, LoadPhdr::from_phdr(ph), file_len, mem_size)
                .map_err(|reason| LoadError::Segment { phdr, reason })?;
            segments.push(segment);
        }

        // Stricter than Solo5, which would jump anywhere below mem_size.
        let runnable = |s: &Segment| s.perms.exec && entry >= s.vaddr && entry - s.vaddr < s.filesz;
        if !segments.iter().any(runnable) {
            return Err(LoadError::EntryNotExecutable { entry });
        }

        Ok(Self { target, abi_version, entry, segments, kernel_end: rules.kernel_end(), manifest })
    }

    /// Checks the image, parsed for a larger memory, against a smaller `mem_size` (hvt
    /// rounds `--mem` down to 2 MiB): the memory rules only, in `parse`'s order, so the
    /// error is the one a parse for `mem_size` would give. The other rules do not
    /// depend on the memory size.
    pub fn check_memory(&self, mem_size: u64) -> Result<(), LoadError> {
        if self.entry >= mem_size {
            return Err(LoadError::EntryBeyondMemory { entry: self.entry, mem_size });
        }
        for seg in &self.segments {
            let reason = if seg.vaddr >= mem_size {
                SegmentError::VaddrBeyondMemory { vaddr: seg.vaddr, mem_size }
            } else if seg.vaddr + seg.filesz > mem_size {
                SegmentError::FileRangeBeyondMemory { end: seg.vaddr + seg.filesz, mem_size }
            } else if seg.end > mem_size {
                SegmentError::EndBeyondMemory { end: seg.end, mem_size }
            } else {
                continue;
            };
            return Err(LoadError::Segment { phdr: seg.phdr_index, reason });
        }
        Ok(())
    }

    /// The file bytes of `seg`, in `bytes` (a whole file).
    ///
    /// # Panics
    /// If `bytes` is not the buffer `seg` was parsed from (`parse` checked the bounds).
    pub fn segment_bytes<'a>(&self, bytes: &'a [u8], seg: &Segment) -> &'a [u8] {
        &bytes[seg.file_range()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEM: u64 = 0x20_0000;

    fn load(vaddr: u64, filesz: u64, memsz: u64, align: u64, flags: u32) -> LoadPhdr {
        LoadPhdr { flags, offset: 0x1000, vaddr, filesz, memsz, align }
    }

    const RX: u32 = 5;
    const RW: u32 = 6;

    fn check_one(ph: LoadPhdr) -> Result<Segment, SegmentError> {
        SegmentRules::default().check(1, ph, 0x10_0000, MEM)
    }

    #[test]
    fn typical_spt_layout_is_accepted() {
        let mut rules = SegmentRules::default();
        let text = rules.check(1, load(0x10_0000, 0x3e38, 0x3e38, 0x1000, RX), 0x2_0000, MEM).unwrap();
        assert_eq!((text.start, text.end), (0x10_0000, 0x10_4000));
        assert_eq!(text.perms, SegmentPerms { read: true, write: false, exec: true });
        let data = rules.check(2, load(0x10_4000, 0xc, 0xc, 0x1000, RW), 0x2_0000, MEM).unwrap();
        assert_eq!((data.start, data.end), (0x10_4000, 0x10_5000));
        assert_eq!(rules.kernel_end(), 0x10_5000);
    }

    #[test]
    fn rule2_vaddr_minimum_and_order() {
        assert_eq!(
            check_one(load(0xf_f000, 0x10, 0x10, 0x1000, RX)),
            Err(SegmentError::VaddrBelowMin { vaddr: 0xf_f000 })
        );
        let mut rules = SegmentRules::default();
        rules.check(1, load(0x10_4000, 0x10, 0x10, 0x1000, RW), 0x2_0000, MEM).unwrap();
        assert_eq!(
            rules.check(2, load(0x10_2000, 0x10, 0x10, 0x1000, RX), 0x2_0000, MEM),
            Err(SegmentError::VaddrDecreasing { vaddr: 0x10_2000, prev: 0x10_4000 })
        );
    }

    #[test]
    fn rule3_alignment_and_overlap() {
        for align in [0, 3, 0x1800] {
            assert_eq!(check_one(load(0x10_0000, 0x10, 0x10, align, RX)), Err(SegmentError::BadAlign { align }));
        }
        // 0x100800 aligned down to 2 MiB is 0.
        assert_eq!(
            check_one(load(0x10_0800, 0x10, 0x10, 0x20_0000, RX)),
            Err(SegmentError::StartBelowMin { start: 0, vaddr: 0x10_0800, align: 0x20_0000 })
        );
        let mut rules = SegmentRules::default();
        rules.check(1, load(0x10_0000, 0x1100, 0x1100, 0x1000, RX), 0x2_0000, MEM).unwrap();
        // Starts after the previous p_vaddr + p_filesz but inside its aligned end.
        assert_eq!(
            rules.check(2, load(0x10_1800, 0x10, 0x10, 0x1000, RW), 0x2_0000, MEM),
            Err(SegmentError::Overlap { start: 0x10_1000, prev_end: 0x10_2000 })
        );
    }

    #[test]
    fn rule4_file_range_inside_memory() {
        assert_eq!(
            check_one(load(MEM, 0x10, 0x10, 0x1000, RX)),
            Err(SegmentError::VaddrBeyondMemory { vaddr: MEM, mem_size: MEM })
        );
        assert_eq!(
            check_one(load(0x10_0000, u64::MAX, u64::MAX, 0x1000, RX)),
            Err(SegmentError::FileRangeOverflow { vaddr: 0x10_0000, filesz: u64::MAX })
        );
        assert_eq!(
            check_one(load(0x1f_f000, 0x1001, 0x1001, 0x1000, RX)),
            Err(SegmentError::FileRangeBeyondMemory { end: MEM + 1, mem_size: MEM })
        );
    }

    #[test]
    fn rule5_memory_range() {
        assert_eq!(
            check_one(load(0x10_0000, 0x10, 0xf, 0x1000, RX)),
            Err(SegmentError::MemszBelowFilesz { memsz: 0xf, filesz: 0x10 })
        );
        assert_eq!(
            check_one(load(0x10_0000, 0x10, u64::MAX - 0x10_0000, 0x1000, RW)),
            Err(SegmentError::MemRangeOverflow { vaddr: 0x10_0000, memsz: u64::MAX - 0x10_0000, align: 0x1000 })
        );
        assert_eq!(
            check_one(load(0x10_0000, 0x10, MEM, 0x1000, RW)),
            Err(SegmentError::EndBeyondMemory { end: 0x30_0000, mem_size: MEM })
        );
        // Exactly up to the end of memory is fine.
        assert!(check_one(load(0x10_0000, 0x10, 0x10_0000, 0x1000, RW)).is_ok());
    }

    #[test]
    fn rule6_file_bytes_must_exist() {
        let mut ph = load(0x10_0000, 0x1000, 0x1000, 0x1000, RX);
        ph.offset = 0x1000;
        let mut rules = SegmentRules::default();
        assert!(rules.check(1, ph, 0x2000, MEM).is_ok());
        assert_eq!(
            SegmentRules::default().check(1, ph, 0x1fff, MEM),
            Err(SegmentError::PastEndOfFile { offset: 0x1000, filesz: 0x1000, file_len: 0x1fff })
        );
        ph.offset = u64::MAX;
        assert!(matches!(SegmentRules::default().check(1, ph, 0x2000, MEM), Err(SegmentError::PastEndOfFile { .. })));
    }

    #[test]
    fn rule7_page_alignment() {
        assert_eq!(
            check_one(load(0x10_0010, 0x10, 0x10, 0x10, RX)),
            Err(SegmentError::StartUnaligned { start: 0x10_0010 })
        );
        assert_eq!(
            check_one(load(0x10_0000, 0x10, 0x10, 0x10, RX)),
            Err(SegmentError::EndUnaligned { end: 0x10_0010 })
        );
    }

    #[test]
    fn rule8_write_and_exec() {
        let err = check_one(load(0x10_0000, 0x10, 0x10, 0x1000, 7)).unwrap_err();
        assert_eq!(err, SegmentError::WriteExec { flags: 7 });
        assert!(err.to_string().contains("requests WRITE and EXEC permissions"));
        // Execute-only (hvt text) is fine.
        assert_eq!(check_one(load(0x10_0000, 0x10, 0x10, 0x1000, 1)).unwrap().perms, SegmentPerms::from_flags(1));
    }

    #[test]
    fn segment_file_range() {
        let seg = check_one(load(0x10_0000, 0x10, 0x10, 0x1000, RX)).unwrap();
        assert_eq!(seg.file_range(), 0x1000..0x1010);
    }

    #[test]
    fn messages_name_the_culprit() {
        let err = LoadError::Segment { phdr: 3, reason: SegmentError::VaddrBelowMin { vaddr: 0x1000 } };
        assert_eq!(
            err.to_string(),
            "invalid executable: phdr[3] p_vaddr 0x1000 is below the lowest load address 0x100000"
        );
        assert_eq!(
            LoadError::UnsupportedTarget { target: 3 }.to_string(),
            "executable is for the solo5-virtio target, which this tender does not run"
        );
        assert!(LoadError::UnsupportedTarget { target: 99 }.to_string().contains("unknown Solo5 target (99)"));
        assert!(LoadError::Pie.to_string().contains("PIE is not supported"));
    }

    #[test]
    fn header_checks_on_raw_bytes() {
        assert_eq!(GuestImage::parse(&[], MEM).unwrap_err(), LoadError::HeaderTruncated { len: 0 });
        assert_eq!(GuestImage::parse(b"\x7fEL", MEM).unwrap_err(), LoadError::HeaderTruncated { len: 3 });
        assert_eq!(GuestImage::parse(b"MZ\x90\0", MEM).unwrap_err(), LoadError::NotElf);
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(&ELFMAG);
        h[4] = 1;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::NotElf64(1));
        h[4] = 2;
        h[5] = 2;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::NotLittleEndian(2));
        h[5] = 1;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::BadVersion(0));
        h[20] = 1;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::BadEhsize(0));
        h[52] = 64;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::BadPhentsize(0));
        h[54] = 56;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::NoProgramHeaders);
        h[56] = 1;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::NotExecutable(0));
        h[16] = 3;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::Pie);
        h[16] = 2;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::WrongMachine(0));
        h[18] = 62;
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::EntryBelowMin { entry: 0 });
        h[24..32].copy_from_slice(&MEM.to_le_bytes());
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::EntryBeyondMemory { entry: MEM, mem_size: MEM });
        h[24..32].copy_from_slice(&0x10_0000u64.to_le_bytes());
        // One phdr at offset 16 runs past the 64-byte file.
        h[32] = 16;
        assert_eq!(
            GuestImage::parse(&h, MEM).unwrap_err(),
            LoadError::PhdrsTruncated { phoff: 16, phnum: 1, file_len: 64 }
        );
        // e_phnum = PN_XNUM is taken literally, not looked up in section 0.
        h[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        assert!(matches!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::PhdrsTruncated { phnum: 0xffff, .. }));
    }

    #[test]
    fn ei_version_and_osabi_are_not_checked() {
        let mut h = [0u8; 64 + 56];
        h[..4].copy_from_slice(&ELFMAG);
        h[4..7].copy_from_slice(&[2, 1, 0]); // EI_VERSION 0
        h[7] = 9; // EI_OSABI
        h[8] = 7; // EI_ABIVERSION
        h[16] = 2;
        h[18] = 62;
        h[20] = 1;
        h[24..32].copy_from_slice(&0x10_0000u64.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[52] = 64;
        h[54] = 56;
        h[56] = 1;
        // Gets past the header checks to the note search.
        assert_eq!(GuestImage::parse(&h, MEM).unwrap_err(), LoadError::NoAbiNote);
    }
}
