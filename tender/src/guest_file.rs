//! The guest file's bytes, for the loader to parse and the backends to copy from.
//!
//! A regular file is mapped read-only: its pages are the page cache's own, mapped
//! sixteen at a time on first touch, where reading it cost a heap buffer (fresh pages,
//! a few microseconds each here) and a copy (README "Benchmarks", boot). Anything
//! that cannot be mapped (a pipe, `/dev/stdin`) is read into memory instead, so every
//! path `read` accepted still works.
//!
//! The mapping is private and read-only, and lives only until the guest is loaded
//! (the spt launch unmaps it with the rest of the tender). A file truncated by
//! another process within that window makes the next read of a lost page raise
//! SIGBUS, as for a shared library truncated under ld.so; nothing else changes:
//! the loader validates what it reads, and segment contents are the guest's own.

use std::ffi::c_void;
use std::fs::File;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::AsFd;
use std::path::Path;
use std::ptr::NonNull;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

/// The whole guest file.
#[derive(Debug)]
pub enum GuestFile {
    /// A private read-only mapping of a regular file.
    Mapped {
        /// Start of the mapping.
        base: NonNull<c_void>,
        /// File (and mapping) length in bytes.
        len: NonZeroUsize,
    },
    /// The bytes, read: empty files and what cannot be mapped.
    Read(Vec<u8>),
}

impl GuestFile {
    /// Opens `path` and maps or reads all of it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() {
            let len = usize::try_from(meta.len()).map_err(|_| std::io::ErrorKind::FileTooLarge)?;
            if let Some(len) = NonZeroUsize::new(len) {
                // Not MAP_POPULATE: mapping every page up front measured slower than
                // the one or two faults the loader's reads take.
                let flags = MapFlags::MAP_PRIVATE;
                // SAFETY: a fresh read-only private mapping at an address the kernel
                // picks replaces nothing; it is owned by the returned value and only
                // ever read through `deref`.
                match unsafe { mmap(None, len, ProtFlags::PROT_READ, flags, file.as_fd(), 0) } {
                    Ok(base) => return Ok(Self::Mapped { base, len }),
                    // Filesystems without mmap support: fall back to reading.
                    Err(nix::errno::Errno::ENODEV) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)?;
        Ok(Self::Read(bytes))
    }
}

impl Deref for GuestFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping is `len` readable bytes, private (no other process
            // can write our view, only truncate the file; see the module doc) and
            // unmapped only by `drop`, which needs this borrow to end first.
            Self::Mapped { base, len } => unsafe { std::slice::from_raw_parts(base.as_ptr().cast(), len.get()) },
            Self::Read(bytes) => bytes,
        }
    }
}

impl Drop for GuestFile {
    fn drop(&mut self) {
        if let Self::Mapped { base, len } = *self {
            // SAFETY: the mapping is this value's own, and no borrow of it outlives
            // `self` (`deref` ties slices to `&self`).
            let _ = unsafe { munmap(base, len.get()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("tender-guest-file-{}-{name}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    }

    #[test]
    fn a_regular_file_is_mapped_whole() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let path = temp_file("regular", &bytes);
        let file = GuestFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(file, GuestFile::Mapped { .. }), "{file:?}");
        assert_eq!(&*file, &bytes[..]);
    }

    #[test]
    fn an_empty_file_reads_as_no_bytes() {
        let path = temp_file("empty", b"");
        let file = GuestFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(&file, GuestFile::Read(b) if b.is_empty()), "{file:?}");
    }

    #[test]
    fn what_cannot_be_mapped_is_read() {
        // A FIFO, as `tender <(cat guest.spt)` passes: not a regular file, so read.
        let path = std::env::temp_dir().join(format!("tender-guest-file-{}-fifo", std::process::id()));
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all(b"\x7fELF...")
            })
        };
        let file = GuestFile::open(&path).unwrap();
        writer.join().unwrap().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(&file, GuestFile::Read(b) if b == b"\x7fELF..."), "{file:?}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = GuestFile::open(Path::new("/nonexistent/guest.spt")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
