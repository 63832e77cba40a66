//! An append-only log of records on a block device (the durable kv's
//! [`Journal`]: `kvd` runs it on its Solo5 block device), compacted into the
//! other half of the device when it outgrows the live data.
//!
//! Layout, in bytes (independent of the block size, which may be any power of
//! two up to 32 KiB and may change between runs):
//!
//! ```text
//! [0, 32K)        superblock slot 0
//! [32K, 64K)      superblock slot 1
//! [64K, 64K + H)  region 0 ┐ H = half of the rest, rounded down to 32 KiB;
//! [64K + H, …+2H) region 1 ┘ the superblock names the one holding the log
//! ```
//!
//! A superblock is `"KVS1" | sb_seq u64 | generation u64 | start u64 | len u64 |
//! max_gen u64 | crc u32` (little endian, CRC-32/IEEE over the fields between
//! magic and crc), written to slot `sb_seq % 2`; the valid slot with the higher
//! `sb_seq` wins. It says which region holds the log (`start`, `len`), the
//! log's generation, and `max_gen`, the highest generation ever handed out (so
//! an abandoned compaction's generation is never reused).
//!
//! A region holds records one after another from its start, each a 24-byte
//! header and its payload, ignoring block boundaries:
//!
//! ```text
//! magic "KVL2" | seq u32 | len u32 | crc u32 | generation u64 | payload (len bytes)
//! ```
//!
//! `seq` counts records from 0, `generation` is the log's, `crc` is CRC-32 over
//! `seq`, `len`, `generation` and the payload. The log ends at the first header
//! that is not a `KVL2` header of its generation: zeros, or what an older
//! generation left there. A header of the right generation that is not the
//! next record (wrong sequence, runs past the region) or whose CRC does not
//! match is a torn last record: it is dropped with a console message and the
//! next record overwrites it.
//!
//! **Appending** writes every block the record touches, the last one padded
//! with zeros, *the first one last*, before returning. The first block holds
//! the record's header (its start at least), so until that last block write
//! the header at the log's end is still the old end marker: a stop at any
//! moment leaves either no record or the whole record (a write of one block
//! either happens or not; should a host tear even that, the CRC catches it).
//!
//! **Compaction** ([`Journal::begin_rewrite`] … [`Journal::commit_rewrite`]):
//! the live key space is written as records of a fresh generation into the
//! other region, while the log in the active region stays untouched and
//! complete; then one superblock write names the new region. That write is
//! the switch: a stop before it restarts from the old, complete log; a stop
//! after it from the new one. The fresh generation (recorded in the
//! superblock as `max_gen` before the first record is written) makes
//! everything the other region held before, including an abandoned
//! compaction, read as "end of log".
//!
//! The guarantees hold as far as the device keeps a block write once it
//! returned: a Solo5 device (no flush call) keeps it across a `kill -9` of
//! the tender, not across a host crash (guests/README.md, "kvd: the log").

use alloc::vec;
use alloc::vec::Vec;

use super::Journal;

/// What the log needs of a block device (a Solo5 block device in the guest,
/// memory in the tests): whole, aligned blocks.
pub trait BlockDevice: core::fmt::Debug {
    /// Bytes per block: a power of two.
    fn block_size(&self) -> usize;
    /// Bytes of the device: a multiple of the block size.
    fn capacity(&self) -> u64;
    /// Reads the block at `offset` (a multiple of the block size) into `buf` (one block).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), &'static str>;
    /// Writes one block at `offset`; when it returns, the block is on the device.
    fn write(&self, offset: u64, buf: &[u8]) -> Result<(), &'static str>;
    /// Prints a line for the operator (the guest's console).
    fn report(&self, line: core::fmt::Arguments<'_>);
    /// A monotonic clock in ns (for the compaction's duration).
    fn now_ns(&self) -> u64;
}

const LOG_MAGIC: &[u8; 4] = b"KVL2";
const OLD_LOG_MAGIC: &[u8; 4] = b"KVL1";
const SB_MAGIC: &[u8; 4] = b"KVS1";
const HEADER: usize = 24;
/// Superblock slot size and region alignment: the largest Solo5 block size.
const SLOT: u64 = 32 * 1024;
const SB_LEN: usize = 48;

/// The log on its device.
#[derive(Debug)]
pub struct BlockLog<D> {
    block: D,
    block_size: usize,
    capacity: u64,
    sb: Superblock,
    /// The active log.
    log: Cursor,
    /// A compaction being written into the other region.
    rewrite: Option<Cursor>,
    /// When it started (monotonic ns), for the console message.
    rewrite_started: u64,
}

/// The device's superblock (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Superblock {
    sb_seq: u64,
    generation: u64,
    start: u64,
    len: u64,
    max_gen: u64,
}

/// Where one log (a region and its generation) stands.
#[derive(Debug)]
struct Cursor {
    generation: u64,
    /// The region: byte offset and length on the device.
    start: u64,
    len: u64,
    /// Offset inside the region where the next record goes.
    end: u64,
    /// The next record's sequence number.
    seq: u32,
    /// The block holding `start + end` (its bytes before `end` are the log's).
    tail: Vec<u8>,
}

/// What [`BlockLog::open`] found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    /// Records applied.
    pub records: u32,
    /// Bytes of the log.
    pub bytes: u64,
    /// Device offset of the log's region.
    pub start: u64,
    /// The log's generation (1 on a fresh device; +1 or more per compaction).
    pub generation: u64,
    /// Whether a torn last record was dropped.
    pub dropped_torn: bool,
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)] // cast: i < 256
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

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

impl Superblock {
    fn encode(&self) -> [u8; SB_LEN] {
        let mut b = [0u8; SB_LEN];
        b[..4].copy_from_slice(SB_MAGIC);
        for (i, v) in [self.sb_seq, self.generation, self.start, self.len, self.max_gen].iter().enumerate() {
            b[4 + 8 * i..12 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let crc = crc32(&[&b[4..44]]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if &b[..4] != SB_MAGIC || crc32(&[&b[4..44]]) != u32_at(b, 44) {
            return None;
        }
        Some(Superblock {
            sb_seq: u64_at(b, 4),
            generation: u64_at(b, 12),
            start: u64_at(b, 20),
            len: u64_at(b, 28),
            max_gen: u64_at(b, 36),
        })
    }
}

/// Where byte `at` lies inside its block of `block_size` bytes.
#[allow(clippy::cast_possible_truncation)] // cast: less than the block size, at most 32 KiB
fn offset_in_block(at: u64, block_size: u64) -> usize {
    (at % block_size) as usize
}

/// A block of zeros, or an error if the heap has no room (never an abort).
fn zeroed_block(block_size: usize) -> Result<Vec<u8>, &'static str> {
    let mut block = Vec::new();
    block.try_reserve_exact(block_size).map_err(|_| "no memory for a block")?;
    block.resize(block_size, 0);
    Ok(block)
}

/// The two regions of a device of `capacity` bytes.
fn regions(capacity: u64) -> [(u64, u64); 2] {
    let half = (capacity.saturating_sub(2 * SLOT) / 2) / SLOT * SLOT;
    [(2 * SLOT, half), (2 * SLOT + half, half)]
}

impl Cursor {
    fn new(generation: u64, start: u64, len: u64, block_size: usize) -> Self {
        Cursor { generation, start, len, end: 0, seq: 0, tail: vec![0; block_size] }
    }

    /// Whether a record of `len` payload bytes fits after the end.
    fn fits(&self, len: usize) -> bool {
        self.end.saturating_add((HEADER + len) as u64) <= self.len
    }
}

impl<D: BlockDevice> BlockLog<D> {
    /// Reads the log on `block` and hands every intact record to `apply`, in
    /// order; a torn last record is dropped (and reported on the console). A
    /// zeroed device becomes an empty log; a device that is neither zeroed nor
    /// a kvd log is refused (so a wrong file is not overwritten).
    pub fn open(block: D, mut apply: impl FnMut(&[u8])) -> Result<(Self, Replayed), &'static str> {
        let block_size = block.block_size();
        let capacity = block.capacity();
        let [(r0_start, half), _] = regions(capacity);
        if half < SLOT || u64::try_from(block_size).map_or(true, |bs| bs > SLOT || !SLOT.is_multiple_of(bs)) {
            return Err("the device is too small (at least 128 KiB) or its block size is not a power of two ≤ 32 KiB");
        }
        let mut log = BlockLog {
            block,
            block_size,
            capacity,
            sb: Superblock { sb_seq: 0, generation: 1, start: r0_start, len: half, max_gen: 1 },
            log: Cursor::new(1, r0_start, half, block_size),
            rewrite: None,
            rewrite_started: 0,
        };
        let mut slots = [[0u8; SB_LEN]; 2];
        for (i, slot) in slots.iter_mut().enumerate() {
            log.read(i as u64 * SLOT, slot).map_err(|_| "cannot read the superblock")?;
        }
        let found = slots.iter().filter_map(|s| Superblock::decode(s)).max_by_key(|sb| sb.sb_seq);
        match found {
            Some(sb) => {
                if sb.start < 2 * SLOT || sb.start.saturating_add(sb.len) > capacity {
                    return Err("the superblock names a region past the device's end (was the file shrunk?)");
                }
                log.sb = sb;
                log.log = Cursor::new(sb.generation, sb.start, sb.len, block_size);
            }
            None if slots.iter().all(|s| s.iter().all(|&b| b == 0)) => {
                // A fresh device: generation 1 in region 0, named before any record.
                log.write_superblock(Superblock { sb_seq: 1, ..log.sb })?;
            }
            None if &slots[0][..4] == OLD_LOG_MAGIC => {
                return Err(
                    "the device holds a log of kvd's first format (KVL1, no superblock): start from a zeroed file",
                );
            }
            None => {
                return Err(
                    "the device is neither zeroed nor a kvd log: refusing to overwrite it (give a zeroed file)",
                );
            }
        }
        let mut replayed = Replayed { start: log.log.start, generation: log.log.generation, ..Replayed::default() };
        let mut header = [0u8; HEADER];
        let mut payload = Vec::new();
        loop {
            let cur = &log.log;
            if !cur.fits(0) || log.read(cur.start + cur.end, &mut header).is_err() {
                break;
            }
            if &header[..4] != LOG_MAGIC || u64_at(&header, 16) != cur.generation {
                break; // the clean end: zeros, or an older generation's bytes
            }
            let (seq, len, crc) = (u32_at(&header, 4), u32_at(&header, 8) as usize, u32_at(&header, 12));
            let fits = cur.fits(len);
            let intact = seq == cur.seq
                && fits
                && payload.try_reserve(len.saturating_sub(payload.len())).is_ok()
                && {
                    payload.resize(len, 0);
                    log.read(cur.start + cur.end + HEADER as u64, &mut payload).is_ok()
                }
                && crc32(&[&header[4..12], &header[16..24], &payload]) == crc;
            if !intact {
                log.block.report(format_args!(
                    "kvd: storage: dropped a torn last record (#{}) at byte {}: {}",
                    cur.seq,
                    cur.start + cur.end,
                    if seq != cur.seq {
                        "bad sequence number"
                    } else if !fits {
                        "runs past the region"
                    } else {
                        "checksum mismatch"
                    }
                ));
                replayed.dropped_torn = true;
                break;
            }
            apply(&payload);
            log.log.end += (HEADER + len) as u64;
            log.log.seq += 1;
            replayed.records += 1;
        }
        replayed.bytes = log.log.end;
        // The block holding the end: its bytes past `end` become zeros when next written.
        let at = log.log.start + log.log.end;
        let start = at - at % block_size as u64;
        if start < capacity {
            let mut tail = vec![0; block_size];
            log.block.read(start, &mut tail).map_err(|_| "cannot read the device")?;
            tail[offset_in_block(at, block_size as u64)..].fill(0);
            log.log.tail = tail;
        }
        if replayed.dropped_torn {
            // Zero the torn header now, so a restart before the next append
            // ends the log here instead of reporting the same torn record again.
            log.block.write(start, &log.log.tail).map_err(|_| "cannot write the block device")?;
            let next = start + block_size as u64;
            if offset_in_block(at, block_size as u64) + HEADER > block_size && next < capacity {
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
            let from = offset_in_block(at, bs);
            let n = (self.block_size - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        Ok(())
    }

    /// Writes `sb` to its slot (one block write: the switch of a compaction).
    fn write_superblock(&mut self, sb: Superblock) -> Result<(), &'static str> {
        let mut block = zeroed_block(self.block_size)?;
        block[..SB_LEN].copy_from_slice(&sb.encode());
        self.block.write((sb.sb_seq % 2) * SLOT, &block).map_err(|_| "superblock write failed")?;
        self.sb = sb;
        Ok(())
    }

    /// Appends one record to `cur` (the active log or a compaction's), every
    /// block written, the first one last. On error nothing counts as written.
    fn append_to(block: &D, block_size: usize, cur: &mut Cursor, record: &[u8]) -> Result<(), &'static str> {
        let len = u32::try_from(record.len()).map_err(|_| "record too large")?;
        if !cur.fits(record.len()) {
            return Err("no space left on the block device");
        }
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(LOG_MAGIC);
        header[4..8].copy_from_slice(&cur.seq.to_le_bytes());
        header[8..12].copy_from_slice(&len.to_le_bytes());
        header[16..24].copy_from_slice(&cur.generation.to_le_bytes());
        let crc = crc32(&[&header[4..12], &header[16..24], record]);
        header[12..16].copy_from_slice(&crc.to_le_bytes());
        let bs = block_size as u64;
        // Allocations on a request path are fallible: no memory is an error reply.
        let mut first = zeroed_block(block_size)?;
        first.copy_from_slice(&cur.tail);
        let mut at = cur.start + cur.end; // device offset of the next byte
        let first_start = at - at % bs;
        let mut buf = zeroed_block(block_size)?; // the block being filled
        buf.copy_from_slice(&cur.tail);
        let mut in_first = true;
        for part in [&header[..], record] {
            let mut rest = part;
            while !rest.is_empty() {
                let in_block = offset_in_block(at, bs);
                let n = (block_size - in_block).min(rest.len());
                buf[in_block..in_block + n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                at += n as u64;
                if at.is_multiple_of(bs) {
                    // A full block: write it (the first one waits); the next starts empty.
                    if in_first {
                        first.copy_from_slice(&buf);
                        in_first = false;
                    } else {
                        block.write(at - bs, &buf).map_err(|_| "block write failed")?;
                    }
                    buf.fill(0);
                }
            }
        }
        if !at.is_multiple_of(bs) {
            if in_first {
                first.copy_from_slice(&buf);
            } else {
                block.write(at - at % bs, &buf).map_err(|_| "block write failed")?;
            }
        }
        // The header's block last: from now on the record exists.
        block.write(first_start, &first).map_err(|_| "block write failed")?;
        cur.end = at - cur.start;
        cur.seq += 1;
        cur.tail = buf;
        Ok(())
    }
}

impl<D: BlockDevice> Journal for BlockLog<D> {
    fn append(&mut self, record: &[u8]) -> Result<(), &'static str> {
        Self::append_to(&self.block, self.block_size, &mut self.log, record)
    }

    fn fits(&self, len: usize) -> bool {
        self.log.fits(len)
    }

    fn used(&self) -> u64 {
        self.log.end
    }

    fn limit(&self) -> u64 {
        self.log.len
    }

    fn begin_rewrite(&mut self) -> Result<(), &'static str> {
        self.rewrite = None;
        let [r0, r1] = regions(self.capacity);
        let overlaps = |(s, l): (u64, u64)| s < self.log.start + self.log.len && self.log.start < s + l;
        let Some((start, len)) = [r0, r1].into_iter().find(|r| !overlaps(*r)) else {
            return Err("the device changed size: no free region to compact into");
        };
        // A generation never used before, recorded before any record carries it.
        let generation = self.sb.max_gen.max(self.sb.generation) + 1;
        self.write_superblock(Superblock { sb_seq: self.sb.sb_seq + 1, max_gen: generation, ..self.sb })?;
        self.block.report(format_args!(
            "kvd: storage: compacting: {} bytes of generation {} at byte {} into generation {generation} at byte {start}",
            self.log.end, self.log.generation, self.log.start
        ));
        let tail = zeroed_block(self.block_size)?;
        self.rewrite = Some(Cursor { tail, ..Cursor::new(generation, start, len, 0) });
        self.rewrite_started = self.block.now_ns();
        Ok(())
    }

    fn rewrite(&mut self, record: &[u8]) -> Result<(), &'static str> {
        let cur = self.rewrite.as_mut().ok_or("no compaction in progress")?;
        Self::append_to(&self.block, self.block_size, cur, record)
    }

    fn commit_rewrite(&mut self) -> Result<(), &'static str> {
        let cur = self.rewrite.take().ok_or("no compaction in progress")?;
        let sb = Superblock {
            sb_seq: self.sb.sb_seq + 1,
            generation: cur.generation,
            start: cur.start,
            len: cur.len,
            ..self.sb
        };
        self.write_superblock(sb)?;
        let ms = self.block.now_ns().saturating_sub(self.rewrite_started) / 1_000_000;
        self.block.report(format_args!(
            "kvd: storage: compacted: {} bytes of generation {} → {} bytes ({} records) of generation {} in {ms} ms",
            self.log.end, self.log.generation, cur.end, cur.seq, cur.generation
        ));
        self.log = cur;
        Ok(())
    }

    fn abandon_rewrite(&mut self) {
        if self.rewrite.take().is_some() {
            self.block.report(format_args!(
                "kvd: storage: compaction abandoned; the log stays in generation {}",
                self.log.generation
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Kv, KvConfig, KvConn};
    use crate::Protocol;
    use alloc::format;
    use alloc::rc::Rc;
    use alloc::string::String;
    use core::cell::{Cell, RefCell};

    /// Memory as a block device that keeps only the first `budget` writes: the
    /// process died right after the last one it kept (a block write happens
    /// whole or not at all). Later writes "succeed" and are lost, so the run
    /// goes on exactly as without the stop; what it did after does not count.
    #[derive(Debug, Clone)]
    struct Mem {
        bytes: Rc<RefCell<Vec<u8>>>,
        budget: u64,
        writes: Rc<Cell<u64>>,
    }

    impl BlockDevice for Mem {
        fn block_size(&self) -> usize {
            512
        }
        fn capacity(&self) -> u64 {
            self.bytes.borrow().len() as u64
        }
        fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), &'static str> {
            let at = usize::try_from(offset).unwrap();
            buf.copy_from_slice(&self.bytes.borrow()[at..at + buf.len()]);
            Ok(())
        }
        fn write(&self, offset: u64, buf: &[u8]) -> Result<(), &'static str> {
            self.writes.set(self.writes.get() + 1);
            if self.writes.get() <= self.budget {
                let at = usize::try_from(offset).unwrap();
                self.bytes.borrow_mut()[at..at + buf.len()].copy_from_slice(buf);
            }
            Ok(())
        }
        fn report(&self, _line: core::fmt::Arguments<'_>) {}
        fn now_ns(&self) -> u64 {
            0
        }
    }

    fn clock() -> u64 {
        1_700_000_000_000
    }

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        v
    }

    /// Requests that overwrite, add, delete, expire and transact, enough for
    /// several compactions of a 256 KiB device (a 96 KiB log, 24 KiB floor).
    fn workload() -> Vec<Vec<u8>> {
        let mut w = Vec::new();
        for i in 0..300usize {
            w.push(cmd(&["SET", &format!("hot{}", i % 5), &"h".repeat(200 + i)]));
            if i % 3 == 0 {
                w.push(cmd(&["SET", &format!("u{i}"), &format!("{i}:{}", "u".repeat(40))]));
            }
            if i % 10 == 9 {
                w.push(cmd(&["DEL", &format!("u{}", i - 9)]));
                w.push(cmd(&["SET", &format!("t{i}"), "x", "PX", "100000"]));
                w.push(cmd(&["MULTI"]));
                w.push(cmd(&["INCR", "n"]));
                w.push(cmd(&["APPEND", "log", &format!("{i},")]));
                w.push(cmd(&["EXEC"]));
            }
        }
        w
    }

    /// The key space as text: every key, its value and its PTTL.
    fn dump(kv: &mut Kv) -> String {
        let mut conn = KvConn::default();
        let mut out = Vec::new();
        kv.handle(&mut conn, &cmd(&["KEYS", "*"]), &mut out);
        let text = String::from_utf8(out).unwrap();
        let keys: Vec<&str> = text.split("\r\n").skip(2).step_by(2).filter(|k| !k.is_empty()).collect();
        let mut all = String::new();
        for k in keys {
            let mut out = Vec::new();
            kv.handle(&mut conn, &cmd(&["GET", k]), &mut out);
            kv.handle(&mut conn, &cmd(&["PTTL", k]), &mut out);
            all.push_str(&format!("{k}={}\n", String::from_utf8_lossy(&out)));
        }
        all
    }

    fn open(device: Mem) -> (Kv, Replayed) {
        let mut kv = Kv::with_config(KvConfig { clock_ms: clock, ..KvConfig::default() });
        let mut failed = None;
        let (log, replayed) = BlockLog::open(device, |r| {
            if let Err(e) = kv.replay(r) {
                failed = Some(e);
            }
        })
        .unwrap();
        assert_eq!(failed, None);
        kv.set_journal(alloc::boxed::Box::new(log));
        (kv, replayed)
    }

    /// Runs the workload on a fresh device that keeps `budget` writes; returns
    /// the device, how many requests were answered before the stop, and the
    /// total number of writes the run made.
    fn run(budget: u64) -> (Mem, usize, u64) {
        let device = Mem { bytes: Rc::new(RefCell::new(vec![0; 256 * 1024])), budget, writes: Rc::new(Cell::new(0)) };
        let (mut kv, _) = open(device.clone());
        let mut conn = KvConn::default();
        let mut answered = 0;
        for request in workload() {
            let mut out = Vec::new();
            kv.handle(&mut conn, &request, &mut out);
            if out.starts_with(b"-") {
                let mut info = Vec::new();
                kv.handle(&mut conn, &cmd(&["INFO", "memory"]), &mut info);
                panic!("{} {:?} {}", String::from_utf8_lossy(&out), kv.compact(), String::from_utf8_lossy(&info));
            }
            // The reply leaves after handle returns: only if every write it made was kept.
            if device.writes.get() <= budget {
                answered += 1;
            }
        }
        (device.clone(), answered, device.writes.get())
    }

    /// A stop after any block write (any moment: appending, compacting,
    /// switching) loses no answered request: a restart finds the key space
    /// after the last answered request, or after the one in progress.
    #[test]
    fn a_stop_after_any_block_write_loses_no_answered_request() {
        let (device, answered, total) = run(u64::MAX);
        let requests = workload();
        assert_eq!(answered, requests.len());
        // The reference key spaces after each prefix of the workload.
        let mut reference = Kv::with_config(KvConfig { clock_ms: clock, ..KvConfig::default() });
        let mut conn = KvConn::default();
        let mut after = vec![dump(&mut reference)];
        for request in &requests {
            reference.handle(&mut conn, request, &mut Vec::new());
            after.push(dump(&mut reference));
        }
        let (mut whole, replayed) = open(device);
        assert_eq!(dump(&mut whole), after[requests.len()]);
        assert!(replayed.generation > 3, "{replayed:?}: too few compactions to test them");
        let mut landed_mid_compaction = 0;
        for budget in 0..=total {
            let (device, answered, _) = run(budget);
            let sb = {
                let mut slots = [[0u8; SB_LEN]; 2];
                for (i, slot) in slots.iter_mut().enumerate() {
                    device.read(i as u64 * SLOT, slot).unwrap();
                }
                slots.iter().filter_map(|s| Superblock::decode(s)).max_by_key(|sb| sb.sb_seq)
            };
            if sb.is_some_and(|sb| sb.max_gen > sb.generation) {
                landed_mid_compaction += 1;
            }
            let (mut kv, _) = open(Mem { budget: u64::MAX, ..device });
            let got = dump(&mut kv);
            assert!(
                got == after[answered] || after.get(answered + 1) == Some(&got),
                "stopped after write {budget} of {total}: {answered} requests answered, the restart has another key space"
            );
        }
        assert!(landed_mid_compaction > 50, "only {landed_mid_compaction} of {total} stops fell inside a compaction");
    }
}
