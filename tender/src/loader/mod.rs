//! Guest image parsing: ELF header, Solo5 notes, manifest, load segments.
//!
//! Pure functions over bytes: no syscalls here. The backends map memory and copy the
//! segments this module describes.

pub mod elf;
pub mod manifest;
pub mod notes;

pub use elf::{GuestImage, LoadError, Segment, SegmentError, SegmentPerms};
pub use manifest::{Manifest, ManifestError};
pub use notes::{NoteError, NoteKind, NoteSizeError};
