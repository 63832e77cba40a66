//! An append-only log of records on a Solo5 block device (the durable kv's
//! journal).
//!
//! Layout: records one after another from byte 0, each a 24-byte header and
//! its payload, ignoring block boundaries:
//!
//! ```text
//! magic "KVL1" | seq u32 | len u32 | crc u32 | reserved u64 | payload (len bytes)
//! ```
//!
//! little endian; `seq` counts records from 0; `crc` is CRC-32 (IEEE) over
//! `seq`, `len` and the payload. The log ends at the first header that is all
//! zero (a fresh device, or the zeroed rest of the last block written). A
//! header that is not zero but not the next record (wrong magic or sequence,
//! a length past the device), or a record whose CRC does not match, is a torn
//! last record (the guest stopped while writing it): it is dropped with a
//! console message and the next record overwrites it.
//!
//! Appending writes every block the record touches, the last one padded with
//! zeros, before returning: the record is on the device (a `pwrite` to the
//! backing file on spt) before the caller answers its client.

use alloc::vec;
use alloc::vec::Vec;

use solo5_rt::{Block, println};

const MAGIC: &[u8; 4] = b"KVL1";
const HEADER: usize = 24;

/// The log on its device.
#[derive(Debug)]
pub struct BlockLog {
    block: Block,
    block_size: usize,
    capacity: u64,
    /// Byte offset where the next record goes.
    end: u64,
    /// The next record's sequence number.
    seq: u32,
    /// The block holding `end` (its bytes before `end` are the log's).
    tail: Vec<u8>,
}

/// What [`BlockLog::open`] found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    /// Records applied.
    pub records: u32,
    /// Bytes of the log.
    pub bytes: u64,
    /// Whether a torn last record was dropped.
    pub dropped_torn: bool,
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for part in parts {
        for &b in *part {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
    }
    !c
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

impl BlockLog {
    /// Reads the log on `block` and hands every intact record to `apply`, in
    /// order; a torn last record is dropped (and reported on the console).
    pub fn open(block: Block, mut apply: impl FnMut(&[u8])) -> Result<(Self, Replayed), &'static str> {
        let info = block.info();
        let block_size = info.block_size as usize;
        let mut log =
            BlockLog { block, block_size, capacity: info.capacity, end: 0, seq: 0, tail: vec![0; block_size] };
        let mut replayed = Replayed::default();
        let mut header = [0u8; HEADER];
        let mut payload = Vec::new();
        loop {
            if log.end + HEADER as u64 > log.capacity || log.read(log.end, &mut header).is_err() {
                break;
            }
            if header.iter().all(|&b| b == 0) {
                break; // the clean end
            }
            let (seq, len, crc) = (u32_at(&header, 4), u32_at(&header, 8) as usize, u32_at(&header, 12));
            let fits = log.end + (HEADER + len) as u64 <= log.capacity;
            let intact = &header[..4] == MAGIC
                && seq == log.seq
                && fits
                && payload.try_reserve(len.saturating_sub(payload.len())).is_ok()
                && {
                    payload.resize(len, 0);
                    log.read(log.end + HEADER as u64, &mut payload).is_ok()
                }
                && crc32(&[&header[4..12], &payload]) == crc;
            if !intact {
                println!(
                    "kvd: storage: dropped a torn last record (#{}) at byte {}: {}",
                    log.seq,
                    log.end,
                    if &header[..4] != MAGIC || seq != log.seq {
                        "bad header"
                    } else if !fits {
                        "runs past the device"
                    } else {
                        "checksum mismatch"
                    }
                );
                replayed.dropped_torn = true;
                break;
            }
            apply(&payload);
            log.end += (HEADER + len) as u64;
            log.seq += 1;
            replayed.records += 1;
        }
        replayed.bytes = log.end;
        // The block holding the end: its bytes past `end` become zeros when next written.
        let start = log.end - log.end % block_size as u64;
        if start < log.capacity {
            let mut tail = vec![0; block_size];
            let _ = log.block.read(start, &mut tail);
            tail[(log.end - start) as usize..].fill(0);
            log.tail = tail;
        }
        if replayed.dropped_torn {
            // Zero the torn header now, so a restart before the next append
            // ends the log here instead of reporting the same torn record again.
            log.write_tail().map_err(|_| "cannot write the block device")?;
            let next = start + block_size as u64;
            if (log.end - start) as usize + HEADER > block_size && next < log.capacity {
                log.block.write(next, &vec![0; block_size]).map_err(|_| "cannot write the block device")?;
            }
        }
        Ok((log, replayed))
    }

    /// Reads `buf.len()` bytes at byte `offset` (any alignment).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ()> {
        let bs = self.block_size as u64;
        let mut block = vec![0u8; self.block_size];
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let start = at - at % bs;
            self.block.read(start, &mut block).map_err(|_| ())?;
            let from = (at - start) as usize;
            let n = (self.block_size - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        Ok(())
    }

    fn write_tail(&self) -> Result<(), ()> {
        let start = self.end - self.end % self.block_size as u64;
        self.block.write(start, &self.tail).map_err(|_| ())
    }

    /// Bytes of the log.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }
}

impl protocols::resp::Journal for BlockLog {
    fn append(&mut self, record: &[u8]) -> Result<(), &'static str> {
        let len = u32::try_from(record.len()).map_err(|_| "record too large")?;
        if self.end + (HEADER + record.len()) as u64 > self.capacity {
            return Err("the block device is full");
        }
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(MAGIC);
        header[4..8].copy_from_slice(&self.seq.to_le_bytes());
        header[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = crc32(&[&header[4..12], record]);
        header[12..16].copy_from_slice(&crc.to_le_bytes());
        let bs = self.block_size as u64;
        let (start_end, start_seq, start_tail) = (self.end, self.seq, self.tail.clone());
        let result = (|| {
            for part in [&header[..], record] {
                let mut rest = part;
                while !rest.is_empty() {
                    let in_block = (self.end % bs) as usize;
                    let n = (self.block_size - in_block).min(rest.len());
                    self.tail[in_block..in_block + n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    self.end += n as u64;
                    if self.end.is_multiple_of(bs) {
                        // A full block: write it; the next one starts empty.
                        self.block.write(self.end - bs, &self.tail).map_err(|_| "block write failed")?;
                        self.tail.fill(0);
                    }
                }
            }
            if !self.end.is_multiple_of(bs) {
                self.write_tail().map_err(|_| "block write failed")?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.seq += 1;
                Ok(())
            }
            Err(e) => {
                // Nothing counts as written: the next append starts over here.
                (self.end, self.seq, self.tail) = (start_end, start_seq, start_tail);
                Err(e)
            }
        }
    }
}
