//! The guest file's bytes, for the loader to parse and the backends to copy from.
//!
//! A regular file is mapped read-only: its pages are the page cache's own, mapped
//! sixteen at a time on first touch, where reading it cost a heap buffer (fresh pages,
//! a few microseconds each here) and a copy (README "Benchmarks", boot). Only regular
//! files are accepted: a FIFO, socket or device (`/dev/zero`, `<(cat guest)`) could
//! feed the tender without end or block it forever, so it is refused before any read,
//! naming what the path is. A regular file on a filesystem that cannot map it is read,
//! at most as many bytes as its size said.
//!
//! The mapping is private and read-only, and lives only until the guest is loaded
//! (the spt launch unmaps it with the rest of the tender). Private does not mean
//! frozen: until a page is copied on write (we never write) it is the page cache's,
//! so another process writing the file changes what we read, and truncating it makes
//! the next read of a lost page raise SIGBUS. The tender trusts the guest file not to
//! change while it loads, as ld.so trusts a shared library. What a concurrent writer
//! can still change is bounded: the loader copies every header value it validates
//! (segment ranges, entry, notes, manifest) into owned data, so bounds never come from
//! the file twice; only segment contents, the guest's own bytes, may differ from what
//! was there at validation. A truncation is a SIGBUS before the guest runs (issue 17:
//! reading instead costs about 2% of a boot; a lease or pread into guest memory would
//! not).

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
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

/// What a path is, in words, when it is not a regular file.
fn not_regular(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if file_type.is_file() {
        return None;
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    })
}

impl GuestFile {
    /// Opens `path` and maps or reads all of it. Anything but a regular file is refused
    /// before a byte is read (`InvalidInput`, naming what it is).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever, before
        // the type check below could refuse it. Reads of a regular file ignore it.
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
        Self::from_file(file)
    }

    /// Maps or reads all of `file`, which the caller opened (read-only, and with
    /// `O_NONBLOCK` if it may be a FIFO). Refuses anything but a regular file, as `open`.
    pub fn from_file(file: std::fs::File) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        if let Some(what) = not_regular(meta.file_type()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("is {what}, not a regular file: give the path of the unikernel's ELF file"),
            ));
        }
        {
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
        std::io::Read::read_to_end(&mut std::io::Read::take(file, meta.len()), &mut bytes)?;
        Ok(Self::Read(bytes))
    }
}

impl Deref for GuestFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping is `len` readable bytes, unmapped only by `drop`, which
            // needs this borrow to end first. The bytes are immutable to us but not to
            // the file's other writers: we trust the file not to change while it loads
            // (module doc), and nothing validated is read from it twice.
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
        let bytes: Vec<u8> = (0..=u8::MAX).cycle().take(10_000).collect();
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
    fn anything_but_a_regular_file_is_refused_before_reading() {
        // A FIFO with no writer: opening it must not block, and nothing is read.
        let fifo = std::env::temp_dir().join(format!("tender-guest-file-{}-fifo", std::process::id()));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = GuestFile::open(&fifo).unwrap_err();
        std::fs::remove_file(&fifo).unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("is a FIFO (named pipe), not a regular file"), "{err}");
        for (path, what) in [("/dev/zero", "a character device"), ("/", "a directory")] {
            let err = GuestFile::open(Path::new(path)).unwrap_err();
            assert!(err.to_string().contains(what), "{path}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = GuestFile::open(Path::new("/nonexistent/guest.spt")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
