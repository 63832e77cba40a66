//! Finding the Solo5 notes (ABI1, MFT1) through the program headers (docs/solo5-abi.md §1.2).
//!
//! Only the first note at the start of each `PT_NOTE` segment is looked at, exactly as
//! Solo5's `elf_load_note` does; section headers are never read.

use core::fmt;

use hypercall_abi::elf::{
    note_payload_padding, AbiInfo, ABI_NOTE_MAX_DESCSZ, ABI_PAYLOAD_ALIGN, MFT_NOTE_MAX_DESCSZ, MFT_PAYLOAD_ALIGN,
    NOTE_DESC_OFFSET, NOTE_HEADER_SIZE, NOTE_NAME, NOTE_NAMESZ, NOTE_TYPE_ABI, NOTE_TYPE_MANIFEST,
};
use object::elf::{ProgramHeader64, PT_NOTE};
use object::read::elf::ProgramHeader as _;
use object::LittleEndian as LE;

/// A Solo5 note the loader cannot use. Messages name the program header; the caller
/// prints them as `PATH: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A `PT_NOTE` smaller than a note header.
    #[error("invalid executable: phdr[{phdr}].p_filesz note does not fall within valid size ({filesz} < 12, the size of a note header)")]
    TooSmall {
        /// Program header index.
        phdr: usize,
        /// `p_filesz`.
        filesz: u64,
    },
    /// A Solo5 note whose sizes are inconsistent.
    #[error("invalid executable: phdr[{phdr}] {kind} note does not fall within valid size: {reason}")]
    Size {
        /// Program header index.
        phdr: usize,
        /// Which note.
        kind: NoteKind,
        /// What is wrong.
        reason: NoteSizeError,
    },
    /// A note's bytes are not inside the file.
    #[error("invalid executable: phdr[{phdr}] note ({len} bytes at offset {offset:#x}) extends past end of file ({file_len} bytes)")]
    Truncated {
        /// Program header index.
        phdr: usize,
        /// `p_offset`.
        offset: u64,
        /// Bytes needed from `offset`.
        len: u64,
        /// File length.
        file_len: usize,
    },
}

/// The `len` bytes at `offset` in `file`, if they are all there.
fn file_bytes(file: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    file.get(start..end)
}

/// Which Solo5 note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// `ABI1`: target and ABI version.
    Abi,
    /// `MFT1`: the application manifest.
    Manifest,
}

impl NoteKind {
    /// The note's `n_type`.
    pub const fn n_type(self) -> u32 {
        match self {
            Self::Abi => NOTE_TYPE_ABI,
            Self::Manifest => NOTE_TYPE_MANIFEST,
        }
    }

    /// Largest accepted `n_descsz`.
    pub const fn max_descsz(self) -> u32 {
        match self {
            Self::Abi => ABI_NOTE_MAX_DESCSZ,
            Self::Manifest => MFT_NOTE_MAX_DESCSZ,
        }
    }

    /// Alignment of the payload inside the note; the padding up to it counts in `n_descsz`.
    pub const fn payload_align(self) -> usize {
        match self {
            Self::Abi => ABI_PAYLOAD_ALIGN,
            Self::Manifest => MFT_PAYLOAD_ALIGN,
        }
    }

    /// Smallest payload we can use. The manifest's exact size is checked by
    /// `Manifest::parse`; the ABI payload must hold the whole `abi1_info` since we read
    /// its fields (Solo5 v0.12.1 would read past a shorter one).
    const fn min_payload(self) -> usize {
        match self {
            Self::Abi => core::mem::size_of::<AbiInfo>(),
            Self::Manifest => 1,
        }
    }
}

impl fmt::Display for NoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Abi => "ABI1",
            Self::Manifest => "MFT1",
        })
    }
}

/// Why a Solo5 note's sizes were rejected (steps 6–7 of docs/solo5-abi.md §1.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteSizeError {
    /// `n_descsz == 0`.
    #[error("n_descsz is 0")]
    DescszZero,
    /// `n_descsz` above the per-type maximum.
    #[error("n_descsz {descsz} exceeds the maximum of {max}")]
    DescszTooLarge {
        /// `n_descsz`.
        descsz: u32,
        /// Maximum for this note type.
        max: u32,
    },
    /// The descriptor does not fit in the `PT_NOTE` segment.
    #[error("p_filesz {filesz} < 20 + n_descsz {descsz}")]
    PastSegment {
        /// `p_filesz`.
        filesz: u64,
        /// `n_descsz`.
        descsz: u32,
    },
    /// `n_descsz` does not even cover the alignment padding (the `buggyelf` case).
    #[error("n_descsz {descsz} leaves no payload after {padding} alignment padding bytes")]
    NoPayload {
        /// `n_descsz`.
        descsz: u32,
        /// Padding bytes before the payload.
        padding: usize,
    },
    /// The payload is too small for the structure it must hold.
    #[error("payload of {size} bytes is smaller than the {min}-byte structure it must hold")]
    PayloadTooSmall {
        /// Payload size.
        size: usize,
        /// Required size.
        min: usize,
    },
}

/// The payload (descriptor minus alignment padding) of the first Solo5 note of `kind`,
/// or `None` if no `PT_NOTE` starts with one.
pub(crate) fn find_note<'a>(
    file: &'a [u8],
    phdrs: &[ProgramHeader64<LE>],
    kind: NoteKind,
) -> Result<Option<&'a [u8]>, NoteError> {
    // Widening usize -> u64 is lossless on every supported host.
    let nhdr_size = NOTE_HEADER_SIZE as u64;
    let solo5_nhdr_size = NOTE_DESC_OFFSET as u64;

    for (phdr, ph) in phdrs.iter().enumerate() {
        if ph.p_type(LE) != PT_NOTE {
            continue;
        }
        let filesz = ph.p_filesz(LE);
        if filesz < nhdr_size {
            return Err(NoteError::TooSmall { phdr, filesz });
        }
        if filesz < solo5_nhdr_size {
            // Too small for a Solo5 note header: not ours.
            continue;
        }
        let offset = ph.p_offset(LE);
        let header = file_bytes(file, offset, solo5_nhdr_size).ok_or(NoteError::Truncated {
            phdr,
            offset,
            len: solo5_nhdr_size,
            file_len: file.len(),
        })?;
        let word = |at: usize| header.get(at..at + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
        let (Some(namesz), Some(descsz), Some(n_type)) = (word(0), word(4), word(8)) else {
            continue;
        };
        // Only the 6 name bytes are compared; the 2 padding bytes are not checked.
        if namesz != NOTE_NAMESZ || header.get(12..12 + NOTE_NAME.len()) != Some(NOTE_NAME.as_slice()) {
            continue;
        }
        if n_type != kind.n_type() {
            continue;
        }
        let size_error = |reason| NoteError::Size { phdr, kind, reason };
        if descsz == 0 {
            return Err(size_error(NoteSizeError::DescszZero));
        }
        if descsz > kind.max_descsz() {
            return Err(size_error(NoteSizeError::DescszTooLarge { descsz, max: kind.max_descsz() }));
        }
        if filesz < solo5_nhdr_size + u64::from(descsz) {
            return Err(size_error(NoteSizeError::PastSegment { filesz, descsz }));
        }
        let padding = note_payload_padding(kind.payload_align());
        let size = usize::try_from(descsz)
            .ok()
            .and_then(|d| d.checked_sub(padding))
            .filter(|&s| s > 0)
            .ok_or(size_error(NoteSizeError::NoPayload { descsz, padding }))?;
        if size < kind.min_payload() {
            return Err(size_error(NoteSizeError::PayloadTooSmall { size, min: kind.min_payload() }));
        }
        // Both fit easily: padding < 8 and size <= the per-type maximum.
        let payload_offset = offset.checked_add(solo5_nhdr_size + padding as u64);
        let payload = payload_offset.and_then(|at| file_bytes(file, at, size as u64));
        return payload.map(Some).ok_or(NoteError::Truncated {
            phdr,
            offset,
            len: solo5_nhdr_size + u64::from(descsz),
            file_len: file.len(),
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf::{PT_LOAD, PT_NOTE};
    use object::U32;
    use object::U64;

    fn phdr(p_type: u32, offset: u64, filesz: u64) -> ProgramHeader64<LE> {
        ProgramHeader64 {
            p_type: U32::new(LE, object::elf::ProgramType(p_type)),
            p_flags: U32::new(LE, object::elf::ProgramFlags(4)),
            p_offset: U64::new(LE, offset),
            p_vaddr: U64::new(LE, 0),
            p_paddr: U64::new(LE, 0),
            p_filesz: U64::new(LE, filesz),
            p_memsz: U64::new(LE, filesz),
            p_align: U64::new(LE, 4),
        }
    }

    fn note(namesz: u32, name: &[u8; 8], descsz: u32, n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&namesz.to_le_bytes());
        n.extend_from_slice(&descsz.to_le_bytes());
        n.extend_from_slice(&n_type.to_le_bytes());
        n.extend_from_slice(name);
        n.extend_from_slice(desc);
        n
    }

    fn abi_note(target: u32) -> Vec<u8> {
        let mut desc = Vec::new();
        for w in [target, 2, 0, 0] {
            desc.extend_from_slice(&w.to_le_bytes());
        }
        note(6, b"Solo5\0\0\0", 16, NOTE_TYPE_ABI, &desc)
    }

    /// `notes` placed back to back from offset 0, one `PT_NOTE` each.
    fn file_with(notes: &[Vec<u8>]) -> (Vec<u8>, Vec<ProgramHeader64<LE>>) {
        let mut file = Vec::new();
        let mut phdrs = Vec::new();
        for n in notes {
            phdrs.push(phdr(PT_NOTE.0, file.len() as u64, n.len() as u64));
            file.extend_from_slice(n);
        }
        (file, phdrs)
    }

    #[test]
    fn finds_abi_payload_after_other_notes() {
        let openbsd = note(8, b"OpenBSD\0", 4, 1, &[0; 4]);
        let (file, phdrs) = file_with(&[openbsd, abi_note(2)]);
        let payload = find_note(&file, &phdrs, NoteKind::Abi).unwrap().unwrap();
        assert_eq!(payload.len(), 16);
        assert_eq!(payload[..4], 2u32.to_le_bytes());
    }

    #[test]
    fn missing_note_is_none_and_other_types_are_ignored() {
        let (file, mut phdrs) = file_with(&[abi_note(2)]);
        assert_eq!(find_note(&file, &phdrs, NoteKind::Manifest), Ok(None));
        // The same bytes under PT_LOAD are not a note.
        phdrs[0] = phdr(PT_LOAD.0, 0, file.len() as u64);
        assert_eq!(find_note(&file, &phdrs, NoteKind::Abi), Ok(None));
    }

    #[test]
    fn pt_note_smaller_than_nhdr_is_rejected() {
        let (file, mut phdrs) = file_with(&[abi_note(2)]);
        phdrs.insert(0, phdr(PT_NOTE.0, 0, 11));
        assert_eq!(find_note(&file, &phdrs, NoteKind::Abi), Err(NoteError::TooSmall { phdr: 0, filesz: 11 }));
    }

    #[test]
    fn pt_note_smaller_than_solo5_nhdr_is_skipped() {
        let (file, mut phdrs) = file_with(&[abi_note(2)]);
        phdrs.insert(0, phdr(PT_NOTE.0, 0, 19));
        assert!(find_note(&file, &phdrs, NoteKind::Abi).unwrap().is_some());
    }

    #[test]
    fn wrong_owner_or_namesz_is_skipped() {
        let mut desc = [0u8; 16];
        desc[0] = 2;
        desc[4] = 2;
        for n in [
            note(6, b"Solo6\0\0\0", 16, NOTE_TYPE_ABI, &desc),
            note(5, b"Solo5\0\0\0", 16, NOTE_TYPE_ABI, &desc),
            note(6, b"Solo5x\0\0", 16, NOTE_TYPE_ABI, &desc),
        ] {
            let (file, phdrs) = file_with(&[n]);
            assert_eq!(find_note(&file, &phdrs, NoteKind::Abi), Ok(None));
        }
        // Padding bytes after the NUL are not checked.
        let (file, phdrs) = file_with(&[note(6, b"Solo5\0xy", 16, NOTE_TYPE_ABI, &desc)]);
        assert!(find_note(&file, &phdrs, NoteKind::Abi).unwrap().is_some());
    }

    fn size_error(n: Vec<u8>, kind: NoteKind) -> NoteSizeError {
        let (file, phdrs) = file_with(&[n]);
        match find_note(&file, &phdrs, kind) {
            Err(NoteError::Size { phdr: 0, kind: k, reason }) if k == kind => reason,
            other => panic!("expected a note size error, got {other:?}"),
        }
    }

    #[test]
    fn descsz_rules() {
        let n = note(6, b"Solo5\0\0\0", 0, NOTE_TYPE_ABI, &[0; 16]);
        assert_eq!(size_error(n, NoteKind::Abi), NoteSizeError::DescszZero);
        let n = note(6, b"Solo5\0\0\0", 33, NOTE_TYPE_ABI, &[0; 40]);
        assert_eq!(size_error(n, NoteKind::Abi), NoteSizeError::DescszTooLarge { descsz: 33, max: 32 });
        let n = note(6, b"Solo5\0\0\0", 6669, NOTE_TYPE_MANIFEST, &[0; 16]);
        assert_eq!(size_error(n, NoteKind::Manifest), NoteSizeError::DescszTooLarge { descsz: 6669, max: 6668 });
        let n = note(6, b"Solo5\0\0\0", 20, NOTE_TYPE_ABI, &[0; 16]);
        assert_eq!(size_error(n, NoteKind::Abi), NoteSizeError::PastSegment { filesz: 36, descsz: 20 });
        let n = note(6, b"Solo5\0\0\0", 8, NOTE_TYPE_ABI, &[0; 8]);
        assert_eq!(size_error(n, NoteKind::Abi), NoteSizeError::PayloadTooSmall { size: 8, min: 16 });
    }

    #[test]
    fn manifest_descsz_inside_padding_is_rejected() {
        // buggyelf.hvt: an MFT1 note with n_descsz = 1 (and 4 = exactly the padding).
        for descsz in [1, 4] {
            let n = note(6, b"Solo5\0\0\0", descsz, NOTE_TYPE_MANIFEST, &[0; 8]);
            let reason = size_error(n, NoteKind::Manifest);
            assert_eq!(reason, NoteSizeError::NoPayload { descsz, padding: 4 });
        }
        let err = NoteError::Size {
            phdr: 3,
            kind: NoteKind::Manifest,
            reason: NoteSizeError::NoPayload { descsz: 1, padding: 4 },
        };
        assert!(err.to_string().contains("note does not fall within valid size"), "{err}");
    }

    #[test]
    fn manifest_payload_skips_padding() {
        let mut desc = vec![0xee; 4];
        desc.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (file, phdrs) = file_with(&[note(6, b"Solo5\0\0\0", 12, NOTE_TYPE_MANIFEST, &desc)]);
        assert_eq!(find_note(&file, &phdrs, NoteKind::Manifest), Ok(Some(&[1u8, 2, 3, 4, 5, 6, 7, 8][..])));
    }

    #[test]
    fn note_past_end_of_file() {
        let (file, mut phdrs) = file_with(&[abi_note(2)]);
        phdrs[0] = phdr(PT_NOTE.0, 30, 36);
        assert!(matches!(find_note(&file, &phdrs, NoteKind::Abi), Err(NoteError::Truncated { phdr: 0, .. })));
        phdrs[0] = phdr(PT_NOTE.0, u64::MAX - 3, 36);
        assert!(matches!(find_note(&file, &phdrs, NoteKind::Abi), Err(NoteError::Truncated { .. })));
        // Header in the file, payload cut off.
        let (mut file, phdrs) = file_with(&[abi_note(2)]);
        file.truncate(30);
        assert!(matches!(find_note(&file, &phdrs, NoteKind::Abi), Err(NoteError::Truncated { .. })));
    }

    #[test]
    fn only_the_first_note_of_a_segment_counts() {
        let openbsd = note(8, b"OpenBSD\0", 4, 1, &[0; 4]);
        let mut both = openbsd.clone();
        both.extend_from_slice(&abi_note(2));
        let (file, phdrs) = file_with(&[both]);
        assert_eq!(find_note(&file, &phdrs, NoteKind::Abi), Ok(None));
    }
}
