//! INTERFACE STUB — to be implemented (see loader/mod.rs docs).
use hypercall_abi::elf::AbiTarget;
use super::manifest::{Manifest, ManifestError};

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
pub struct SegmentPerms { pub read: bool, pub write: bool, pub exec: bool }

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

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("todo")]
    Todo,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

impl GuestImage {
    /// Parses and validates `bytes` for a guest memory of `mem_size` bytes.
    pub fn parse(_bytes: &[u8], _mem_size: u64) -> Result<Self, LoadError> { Err(LoadError::Todo) }

    /// The file bytes of `seg` (bounds were checked by `parse`).
    pub fn segment_bytes<'a>(&self, bytes: &'a [u8], seg: &Segment) -> &'a [u8] {
        &bytes[seg.file_offset as usize..(seg.file_offset + seg.filesz) as usize]
    }
}
