//! The durable kv's journal on the Solo5 block device: the log of
//! `protocols::resp::block_log` (format, compaction, why a stop at any moment
//! loses no acknowledged write) over a [`Block`].
//!
//! Solo5 has no flush call: on spt a block write is a `pwrite` to the backing
//! file, which survives a `kill -9` of the tender (it is in the host's page
//! cache) but not a host crash or power loss before the kernel writes it back.

use protocols::resp::block_log::BlockDevice;
use solo5_rt::{Block, println};

pub use protocols::resp::block_log::Replayed;

/// The log on the guest's block device.
pub type BlockLog = protocols::resp::block_log::BlockLog<Storage>;

/// A Solo5 block device as the log's [`BlockDevice`]; reports go to the console.
#[derive(Debug)]
pub struct Storage(pub Block);

impl BlockDevice for Storage {
    fn block_size(&self) -> usize {
        // Solo5 block sizes are at most 32 KiB (checked by the log).
        usize::try_from(self.0.info().block_size).unwrap_or(usize::MAX)
    }

    fn capacity(&self) -> u64 {
        self.0.info().capacity
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), &'static str> {
        self.0.read(offset, buf).map_err(|_| "block read failed")
    }

    fn write(&self, offset: u64, buf: &[u8]) -> Result<(), &'static str> {
        self.0.write(offset, buf).map_err(|_| "block write failed")
    }

    fn report(&self, line: core::fmt::Arguments<'_>) {
        println!("{line}");
    }

    fn now_ns(&self) -> u64 {
        solo5_rt::clock_monotonic()
    }
}
