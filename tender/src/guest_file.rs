//! The guest file: its headers read once into memory of ours, its segments read
//! straight into guest memory.
//!
//! Only regular files are accepted: a FIFO, socket or device (`/dev/zero`,
//! `<(cat guest)`) could feed the tender without end or block it forever, so it is
//! refused before any read, naming what the path is.
//!
//! The loader validates a private copy: the first [`HEAD_LEN`] bytes (ELF header,
//! program headers and, in every Solo5 guest, the notes), or the whole file when they
//! do not hold what it needs. Segment bytes are `pread` into guest memory by the
//! backend at the offsets the loader validated. Nothing is mapped, so a file truncated
//! or rewritten by another process while it loads cannot raise SIGBUS or change what
//! was validated: a short read is an error naming the file ("changed while it was
//! loaded"), and rewritten segment bytes are only the guest's own code and data. It is
//! also cheaper than mapping the file (no page-cache mapping faults, one copy).
//!
//! A read racing a truncation can still return zeros where the file had bytes (the
//! kernel zeroes the cut page after the read checked the size): a guest made of them
//! dies by SIGSEGV (1 run in ~300 of the CLI test). So the file's size and change time
//! are taken before the first read and compared once everything is loaded
//! ([`GuestFile::check_unchanged`]): a file written or truncated meanwhile is an error.
//! Since Linux 6.13 (ext4, xfs, btrfs, tmpfs) a change after a `stat` gets a
//! fine-grained change time, so no change in between goes unseen.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes read for the loader at first: headers and notes lie in the first page or two
/// of a Solo5 guest (the manifest note is at most 6,668 bytes).
pub const HEAD_LEN: usize = 16 * 1024;

/// An open guest file and the bytes the loader validates.
#[derive(Debug)]
pub struct GuestFile {
    file: File,
    /// The path it was opened at (for errors).
    path: PathBuf,
    len: u64,
    /// Change time (seconds, nanoseconds) when it was opened.
    ctime: (i64, i64),
    head: Vec<u8>,
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

/// A file's change time: any write, truncation or metadata change moves it.
fn change_time(meta: &std::fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.ctime(), meta.ctime_nsec())
}

impl GuestFile {
    /// Opens `path` and reads its head. Anything but a regular file is refused before a
    /// byte is read (`InvalidInput`, naming what it is).
    pub fn open(path: &Path) -> io::Result<Self> {
        // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever, before
        // the type check below could refuse it. Reads of a regular file ignore it.
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
        Self::from_file(file, path)
    }

    /// Reads the head of `file`, which the caller opened at `path` (read-only, and with
    /// `O_NONBLOCK` if it may be a FIFO). Refuses anything but a regular file, as `open`.
    pub fn from_file(file: File, path: &Path) -> io::Result<Self> {
        let meta = file.metadata()?;
        if let Some(what) = not_regular(meta.file_type()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("is {what}, not a regular file: give the path of the unikernel's ELF file"),
            ));
        }
        let len = meta.len();
        let ctime = change_time(&meta);
        let head_len = usize::try_from(len).map_or(HEAD_LEN, |len| len.min(HEAD_LEN));
        let mut this = Self { file, path: path.to_owned(), len, ctime, head: vec![0; head_len] };
        let mut head = std::mem::take(&mut this.head);
        this.read_exact_at(0, &mut head)?;
        this.head = head;
        Ok(this)
    }

    /// The file's size when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes read so far from offset 0: the head, or all of the file.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Whether [`Self::head`] holds the whole file.
    pub fn is_whole(&self) -> bool {
        self.head.len() as u64 == self.len
    }

    /// Reads the whole file into [`Self::head`] (for a loader that needs more than the
    /// head, and for front ends that want every byte checked up front).
    pub fn read_whole(&mut self) -> io::Result<()> {
        let len = usize::try_from(self.len).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        let mut all = vec![0; len];
        self.read_exact_at(0, &mut all)?;
        self.head = all;
        Ok(())
    }

    /// Fills `dst` from `offset`: a segment straight into guest memory. A short read
    /// means the file shrank since it was opened.
    pub fn read_exact_at(&self, offset: u64, dst: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(dst, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file changed while it was loaded: it is shorter than the {} bytes it had", self.len),
                )
            } else {
                e
            }
        })
    }

    /// Fails if the file was written, truncated or had its metadata changed since it was
    /// opened: what was read may then mix old bytes, new bytes and zeros.
    pub fn check_unchanged(&self) -> io::Result<()> {
        let meta = self.file.metadata()?;
        if meta.len() == self.len && change_time(&meta) == self.ctime {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{}: the file changed while it was loaded (it is now {} bytes, was {}, and was written or \
             truncated meanwhile): run it again once nothing writes it, or run a copy",
            self.path.display(),
            meta.len(),
            self.len
        )))
    }

    /// The open file (hvt reads segments into its guest memory with it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
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
    fn the_head_is_read_and_the_rest_on_demand() {
        let bytes: Vec<u8> = (0..=u8::MAX).cycle().take(HEAD_LEN + 10_000).collect();
        let path = temp_file("regular", &bytes);
        let mut file = GuestFile::open(&path).unwrap();
        assert_eq!(file.len(), bytes.len() as u64);
        assert_eq!(file.head(), &bytes[..HEAD_LEN]);
        assert!(!file.is_whole());
        let mut segment = [0u8; 100];
        file.read_exact_at(HEAD_LEN as u64 + 5, &mut segment).unwrap();
        assert_eq!(&segment[..], &bytes[HEAD_LEN + 5..HEAD_LEN + 105]);
        file.read_whole().unwrap();
        assert!(file.is_whole());
        assert_eq!(file.head(), &bytes[..]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_truncated_while_loading_is_an_error_not_a_signal() {
        let path = temp_file("truncated", &vec![7u8; 3 * HEAD_LEN]);
        let mut file = GuestFile::open(&path).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(HEAD_LEN as u64 + 10).unwrap();
        let mut segment = vec![0u8; HEAD_LEN];
        let err = file.read_exact_at(HEAD_LEN as u64, &mut segment).unwrap_err();
        assert!(err.to_string().contains("changed while it was loaded"), "{err}");
        let err = file.read_whole().unwrap_err();
        assert!(err.to_string().contains("changed while it was loaded"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_rewritten_or_truncated_while_loading_is_seen() {
        let bytes = vec![7u8; 2 * HEAD_LEN];
        let path = temp_file("rewritten", &bytes);
        let file = GuestFile::open(&path).unwrap();
        file.check_unchanged().unwrap();
        // The same bytes written again: the size is the same, the change time is not
        // (past a coarse clock tick too, on filesystems without fine-grained times).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        FileExt::write_all_at(&writer, &bytes, 0).unwrap();
        let err = file.check_unchanged().unwrap_err();
        assert!(err.to_string().contains("changed while it was loaded"), "{err}");
        let file = GuestFile::open(&path).unwrap();
        writer.set_len(HEAD_LEN as u64).unwrap();
        let err = file.check_unchanged().unwrap_err();
        assert!(err.to_string().contains(&format!("now {HEAD_LEN} bytes, was {}", 2 * HEAD_LEN)), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_empty_file_reads_as_no_bytes() {
        let path = temp_file("empty", b"");
        let file = GuestFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(file.head().is_empty() && file.is_whole() && file.is_empty());
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
