//! The Solo5 ELF notes and load-address rules (`include/elf_abi.h`, docs/solo5-abi.md §1, §3).

/// Note owner name, NUL included (`n_namesz` = 6, padded to 8 in the file).
pub const NOTE_NAME: &[u8; 6] = b"Solo5\0";
/// `n_namesz` of every Solo5 note.
pub const NOTE_NAMESZ: u32 = 6;
/// `Elf64_Nhdr` (12 bytes) plus the name padded to 8: where the descriptor starts.
pub const NOTE_DESC_OFFSET: usize = 20;
/// Size of `Elf64_Nhdr`; a `PT_NOTE` smaller than this is rejected.
pub const NOTE_HEADER_SIZE: usize = 12;

/// `n_type` of the ABI note: the bytes `A B I 1`.
pub const NOTE_TYPE_ABI: u32 = 0x3149_4241;
/// `n_type` of the manifest note: the bytes `M F T 1`.
pub const NOTE_TYPE_MANIFEST: u32 = 0x3154_464d;

/// Largest accepted `n_descsz` of the ABI note.
pub const ABI_NOTE_MAX_DESCSZ: u32 = 32;
/// Largest accepted `n_descsz` of the manifest note (12 + 64 × 104).
pub const MFT_NOTE_MAX_DESCSZ: u32 = 6668;
/// Alignment of the ABI payload inside its note (no padding after the header).
pub const ABI_PAYLOAD_ALIGN: usize = 4;
/// Alignment of the manifest payload inside its note (4 padding bytes after the header).
pub const MFT_PAYLOAD_ALIGN: usize = 8;

/// The only ABI version Solo5 v0.12.1 (and v0.9.3) tenders accept.
pub const ABI_VERSION: u32 = 2;

/// Lowest guest address a `PT_LOAD` may start at (1 MiB).
pub const GUEST_MIN_LOAD_ADDR: u64 = 0x10_0000;

/// Guest page size; segment bounds must be multiples of it.
pub const PAGE_SIZE: u64 = 4096;

/// `PT_INTERP` of Solo5 guests: stops the host kernel from exec'ing them directly.
pub const GUEST_INTERP: &[u8] = b"/nonexistent/solo5/\0";

/// The ABI note's `target` field.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiTarget {
    /// Hardware virtualised tender (KVM).
    Hvt = 1,
    /// Sandboxed process tender (seccomp).
    Spt = 2,
    /// virtio (no tender).
    Virtio = 3,
    /// Muen separation kernel.
    Muen = 4,
    /// Genode.
    Genode = 5,
    /// Xen.
    Xen = 6,
}

impl AbiTarget {
    /// Decodes the raw `target` word.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Hvt),
            2 => Some(Self::Spt),
            3 => Some(Self::Virtio),
            4 => Some(Self::Muen),
            5 => Some(Self::Genode),
            6 => Some(Self::Xen),
            _ => None,
        }
    }

    /// The name Solo5 uses for the target (`solo5-NAME` tender).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hvt => "hvt",
            Self::Spt => "spt",
            Self::Virtio => "virtio",
            Self::Muen => "muen",
            Self::Genode => "genode",
            Self::Xen => "xen",
        }
    }
}

/// The ABI note payload (`struct abi1_info`, 16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiInfo {
    /// [`AbiTarget`] as a raw word.
    pub target: u32,
    /// ABI version, [`ABI_VERSION`].
    pub version: u32,
    /// Reserved, 0.
    pub reserved0: u32,
    /// Reserved, 0.
    pub reserved1: u32,
}
/// `n_descsz` of the ABI note: the size of [`AbiInfo`], as the note's `u32` field.
const ABI_INFO_SIZE: u32 = 16;
const _: () = assert!(core::mem::size_of::<AbiInfo>() == ABI_INFO_SIZE as usize);

/// A complete ABI note as it sits in a guest's `.note.solo5.abi` section.
///
/// Guests place one of these with `#[used] #[link_section = ".note.solo5.abi"]`.
#[repr(C, align(4))]
#[derive(Debug, Clone, Copy)]
pub struct AbiNote {
    /// `n_namesz` = 6.
    pub namesz: u32,
    /// `n_descsz` = 16.
    pub descsz: u32,
    /// `n_type` = [`NOTE_TYPE_ABI`].
    pub note_type: u32,
    /// `Solo5\0` padded to 8 bytes.
    pub name: [u8; 8],
    /// The payload.
    pub info: AbiInfo,
}
const _: () = assert!(core::mem::size_of::<AbiNote>() == 36);

impl AbiNote {
    /// The note for `target` at the current [`ABI_VERSION`].
    pub const fn new(target: AbiTarget) -> Self {
        Self {
            namesz: NOTE_NAMESZ,
            descsz: ABI_INFO_SIZE,
            note_type: NOTE_TYPE_ABI,
            name: *b"Solo5\0\0\0",
            info: AbiInfo { target: target as u32, version: ABI_VERSION, reserved0: 0, reserved1: 0 },
        }
    }
}

/// `align_up(NOTE_DESC_OFFSET, align) - NOTE_DESC_OFFSET`: padding bytes that count in
/// `n_descsz` before a payload of that alignment.
pub const fn note_payload_padding(align: usize) -> usize {
    NOTE_DESC_OFFSET.next_multiple_of(align) - NOTE_DESC_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn abi_note_layout_matches_solo5() {
        assert_eq!(offset_of!(AbiNote, namesz), 0);
        assert_eq!(offset_of!(AbiNote, descsz), 4);
        assert_eq!(offset_of!(AbiNote, note_type), 8);
        assert_eq!(offset_of!(AbiNote, name), 12);
        assert_eq!(offset_of!(AbiNote, info), NOTE_DESC_OFFSET);
        assert_eq!(offset_of!(AbiInfo, target), 0);
        assert_eq!(offset_of!(AbiInfo, version), 4);
        assert_eq!(core::mem::align_of::<AbiNote>(), 4);
        let note = AbiNote::new(AbiTarget::Spt);
        assert_eq!(note.descsz, 16);
        assert_eq!(&note.name[..6], NOTE_NAME);
    }

    #[test]
    fn note_type_bytes_spell_abi1_and_mft1() {
        assert_eq!(&NOTE_TYPE_ABI.to_le_bytes(), b"ABI1");
        assert_eq!(&NOTE_TYPE_MANIFEST.to_le_bytes(), b"MFT1");
    }

    #[test]
    fn payload_padding() {
        assert_eq!(note_payload_padding(ABI_PAYLOAD_ALIGN), 0);
        assert_eq!(note_payload_padding(MFT_PAYLOAD_ALIGN), 4);
    }

    #[test]
    fn target_numbers() {
        assert_eq!(AbiTarget::Hvt as u32, 1);
        assert_eq!(AbiTarget::Spt as u32, 2);
        assert_eq!(AbiTarget::from_raw(6), Some(AbiTarget::Xen));
        assert_eq!(AbiTarget::from_raw(0), None);
        assert_eq!(AbiTarget::from_raw(7), None);
    }
}
