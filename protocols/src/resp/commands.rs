//! The key space and the commands (see the table in the module above).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{bulk, error, glob, integer, parse_i64, simple, BIG_ARG, NULL_BULK};
use crate::{push_decimal, Shared};

/// The error redis gives a write past `maxmemory`.
pub const OOM: &[u8] = b"OOM command not allowed when used memory > 'maxmemory'.";
const SYNTAX: &[u8] = b"ERR syntax error";
const NOT_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
const OVERFLOW: &[u8] = b"ERR increment or decrement would overflow";

/// Where a durable server writes what changed: each record is the time of a
/// request and the write commands it ran (RESP), to be given back to
/// [`Kv::replay`] in order at the next start.
///
/// A journal with room limits also compacts: [`Kv`] writes its live key space
/// as records of a new log (`begin_rewrite`, `rewrite` …, `commit_rewrite`)
/// that replaces the old one only at `commit_rewrite`, when the log has grown
/// past twice the live data (and [`COMPACT_FLOOR`]) or when a record no longer
/// fits. The defaults describe an unbounded journal that never compacts.
pub trait Journal: core::fmt::Debug {
    /// Makes `record` durable before returning (the reply leaves only after).
    fn append(&mut self, record: &[u8]) -> Result<(), &'static str>;
    /// Whether a record of `len` bytes fits now.
    fn fits(&self, _len: usize) -> bool {
        true
    }
    /// Bytes the log takes now (records and their framing).
    fn used(&self) -> u64 {
        0
    }
    /// The most bytes the log may take.
    fn limit(&self) -> u64 {
        u64::MAX
    }
    /// Starts a new log beside the current one, which stays the valid log.
    fn begin_rewrite(&mut self) -> Result<(), &'static str> {
        Err("this journal does not compact")
    }
    /// Appends a record to the new log.
    fn rewrite(&mut self, _record: &[u8]) -> Result<(), &'static str> {
        Err("this journal does not compact")
    }
    /// Makes the new log the log, atomically.
    fn commit_rewrite(&mut self) -> Result<(), &'static str> {
        Err("this journal does not compact")
    }
    /// Forgets a new log that will not be committed.
    fn abandon_rewrite(&mut self) {}
}

/// A log smaller than this (or than a quarter of its limit) is not compacted
/// for growth alone.
pub const COMPACT_FLOOR: u64 = 1 << 20;

/// The largest value one command of a compacted log carries: a longer value is
/// written as `SET` of its first part and `APPEND`s of the rest (the parser
/// takes bulk strings up to [`super::MAX_BULK`]).
const SNAPSHOT_CHUNK: usize = super::MAX_BULK / 2;

/// The reply to a write whose record the journal cannot take, even compacted
/// (redis's reply when its AOF cannot be written).
const LOG_FULL: &[u8] =
    b"MISCONF Errors writing to the durable log: no space left on the block device (the live data needs more than the log's half of it)";

/// Commands that change the key space: the ones a [`Journal`] records.
const WRITES: &[&str] = &[
    "set",
    "setnx",
    "setex",
    "psetex",
    "getset",
    "getdel",
    "mset",
    "msetnx",
    "append",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "del",
    "unlink",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "persist",
    "flushdb",
    "flushall",
];

/// The version reported by `INFO` and `HELLO`: the redis whose string commands
/// and replies this follows.
pub const REDIS_VERSION: &str = "7.0.15";

/// How a [`Kv`] learns time and memory.
#[derive(Debug, Clone, Copy)]
pub struct KvConfig {
    /// Milliseconds since the Unix epoch (expiry, `TIME`, `INFO`).
    pub clock_ms: fn() -> u64,
    /// Bytes in use by the whole server (redis's `used_memory`); `None`: the
    /// key space's own estimate (keys, values and per-key overhead).
    pub used_memory: Option<fn() -> usize>,
    /// Writes that would take `used_memory` past this are refused with `-OOM`
    /// (0: no limit).
    pub maxmemory: usize,
    /// Memory the server has in all (`INFO memory`'s `total_system_memory`).
    pub total_memory: usize,
}

fn no_clock() -> u64 {
    0
}

impl Default for KvConfig {
    /// No clock (keys never expire by time), no memory limit.
    fn default() -> Self {
        KvConfig { clock_ms: no_clock, used_memory: None, maxmemory: 0, total_memory: 0 }
    }
}

/// A value: its own allocation, or a big one kept in the buffer it was
/// received in (no copy; see [`crate::Received`]).
#[derive(Debug)]
enum Value {
    Own(Vec<u8>),
    Kept(Shared),
}

impl core::ops::Deref for Value {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Own(v) => v,
            Value::Kept(s) => s,
        }
    }
}

impl Value {
    /// The value as its own allocation with room for `additional` more bytes
    /// (a kept value is copied out first); `None` if the heap has no room.
    fn growable(&mut self, additional: usize) -> Option<&mut Vec<u8>> {
        if let Value::Kept(kept) = self {
            let mut own = Vec::new();
            own.try_reserve_exact(kept.len().checked_add(additional)?).ok()?;
            own.extend_from_slice(kept);
            *self = Value::Own(own);
        }
        match self {
            Value::Own(v) => v.try_reserve(additional).ok().map(|()| v),
            Value::Kept(_) => None,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    /// Unix ms at which the key is gone; 0: never.
    expires_at: u64,
    /// Changes with every write of the key (`WATCH` compares it).
    version: u64,
}

/// Bytes a key costs beyond its key and value (map node share, entry, allocation rounding).
const PER_KEY_OVERHEAD: usize = 64;

/// The key space and the command interpreter.
#[derive(Debug)]
pub struct Kv {
    map: BTreeMap<Vec<u8>, Entry>,
    config: KvConfig,
    /// Keys with an expiry.
    volatile: usize,
    /// The key space's own size estimate.
    dataset: usize,
    /// Where the background expiry sweep goes on (the next key to look at).
    sweep_from: Vec<u8>,
    started_ms: u64,
    next_client_id: u64,
    /// Commands run.
    pub commands: u64,
    journal: Option<alloc::boxed::Box<dyn Journal>>,
    /// The record being built for the journal: time, then the write commands
    /// of the current request.
    pending: Vec<u8>,
    /// Replaying: the clock stands at the record's time, no limits, no journal.
    replay_clock: Option<u64>,
    /// The next [`Entry::version`] (0 stands for "no key").
    next_version: u64,
    /// Running the commands of an `EXEC` (their record was checked as a whole).
    in_exec: bool,
    /// While requests are answered: the buffer they were received in, when
    /// the caller lets big values be kept there ([`Kv::keepable`]).
    pub(super) received: Option<Shared>,
}

impl Default for Kv {
    fn default() -> Self {
        Self::with_config(KvConfig::default())
    }
}

/// Per-connection state: a transaction being queued, the client's name and id.
#[derive(Debug, Default)]
pub struct KvConn {
    multi: Option<Vec<Vec<Vec<u8>>>>,
    /// A command failed to queue: `EXEC` discards the transaction.
    multi_failed: bool,
    /// `WATCH`ed keys and their versions then (0: no key): `EXEC` runs only if
    /// none changed.
    watched: Vec<(Vec<u8>, u64)>,
    name: Vec<u8>,
    id: u64,
}

/// Which commands exist, their arity (redis's convention: `n` exactly n
/// arguments including the name, `-n` at least n) and whether they may grow
/// memory (refused past `maxmemory`, as redis's `denyoom` commands).
const COMMANDS: &[(&str, i32, bool)] = &[
    ("get", 2, false),
    ("set", -3, true),
    ("setnx", 3, true),
    ("setex", 4, true),
    ("psetex", 4, true),
    ("getset", 3, true),
    ("getdel", 2, false),
    ("mget", -2, false),
    ("mset", -3, true),
    ("msetnx", -3, true),
    ("append", 3, true),
    ("strlen", 2, false),
    ("incr", 2, true),
    ("decr", 2, true),
    ("incrby", 3, true),
    ("decrby", 3, true),
    ("del", -2, false),
    ("unlink", -2, false),
    ("exists", -2, false),
    ("type", 2, false),
    ("expire", -3, false),
    ("pexpire", -3, false),
    ("expireat", -3, false),
    ("pexpireat", -3, false),
    ("ttl", 2, false),
    ("pttl", 2, false),
    ("persist", 2, false),
    ("dbsize", 1, false),
    ("keys", 2, false),
    ("scan", -2, false),
    ("flushdb", -1, false),
    ("flushall", -1, false),
    ("select", 2, false),
    ("ping", -1, false),
    ("echo", 2, false),
    ("time", 1, false),
    ("info", -1, false),
    ("config", -2, false),
    ("command", -1, false),
    ("client", -2, false),
    ("hello", -1, false),
    ("multi", 1, false),
    ("exec", 1, false),
    ("discard", 1, false),
    ("watch", -2, false),
    ("unwatch", 1, false),
    ("quit", -1, false),
];

/// The command's table entry (name lowercase), if it exists.
fn lookup(name: &[u8]) -> Option<&'static (&'static str, i32, bool)> {
    COMMANDS.iter().find(|(n, _, _)| n.as_bytes().eq_ignore_ascii_case(name))
}

fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    error(out, &[b"ERR wrong number of arguments for '", name.as_bytes(), b"' command"]);
}

fn unknown(out: &mut Vec<u8>, args: &[&[u8]]) {
    let name = &args[0][..args[0].len().min(128)];
    out.extend_from_slice(b"-ERR unknown command '");
    out.extend_from_slice(name);
    out.extend_from_slice(b"', with args beginning with: ");
    for a in args.iter().skip(1).take(8) {
        out.push(b'\'');
        out.extend_from_slice(&a[..a.len().min(128)]);
        out.extend_from_slice(b"' ");
    }
    out.extend_from_slice(b"\r\n");
}

/// A copy of `bytes`, or `None` if the heap has no room.
fn try_copy(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).ok()?;
    v.extend_from_slice(bytes);
    Some(v)
}

fn array_len(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_decimal(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// A SCAN cursor that names a place in the sorted key space: the first
/// (up to) 7 bytes of the next key and their count. 0 is the start and the end.
fn cursor_of(key: &[u8]) -> u64 {
    let n = key.len().min(7);
    let mut v = 0u64;
    for i in 0..7 {
        v = (v << 8) | u64::from(key.get(i).copied().filter(|_| i < n).unwrap_or(0));
    }
    (v << 8) | (n as u64 + 1)
}

fn cursor_key(cursor: u64) -> Vec<u8> {
    let n = ((cursor & 0xff) as usize).saturating_sub(1).min(7);
    let bytes = (cursor >> 8).to_be_bytes();
    bytes[1..1 + n].to_vec()
}

/// SET's options.
#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    /// Absolute expiry (unix ms), if one was given.
    expires_at: Option<u64>,
}

impl Kv {
    /// An empty key space without a clock or memory limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty key space with this clock and memory limit.
    pub fn with_config(config: KvConfig) -> Self {
        Kv {
            map: BTreeMap::new(),
            config,
            volatile: 0,
            dataset: 0,
            sweep_from: Vec::new(),
            started_ms: (config.clock_ms)(),
            next_client_id: 1,
            commands: 0,
            journal: None,
            pending: Vec::new(),
            replay_clock: None,
            next_version: 1,
            in_exec: false,
            received: None,
        }
    }

    /// From now on, every request that changes the key space is appended to
    /// `journal` before its reply is written.
    pub fn set_journal(&mut self, journal: alloc::boxed::Box<dyn Journal>) {
        self.journal = Some(journal);
    }

    /// Applies one journal record (as [`Journal::append`] got it) with the clock
    /// at the record's time, so that it does exactly what it did then.
    /// `Err` if the record is malformed or a command in it finds no memory
    /// (nothing after that is applied).
    pub fn replay(&mut self, record: &[u8]) -> Result<(), &'static str> {
        let (time, mut commands) = match record.split_first_chunk::<8>() {
            Some((t, rest)) => (u64::from_le_bytes(*t), rest),
            None => return Err("journal record shorter than its timestamp"),
        };
        self.replay_clock = Some(time);
        let mut conn = KvConn::default();
        let mut out = Vec::new();
        let mut args = super::Args::new();
        let result = loop {
            if commands.is_empty() {
                break Ok(());
            }
            match super::parse(commands, &mut args) {
                super::Parsed::Command { len } => {
                    out.clear();
                    self.dispatch_inner(&mut conn, args.as_slice(), &mut out);
                    if out.starts_with(b"-OOM") {
                        break Err("out of memory (give the server more memory)");
                    }
                    commands = &commands[len..];
                }
                _ => break Err("journal record with a malformed command"),
            }
        };
        self.replay_clock = None;
        result
    }

    /// Number of keys (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn now(&self) -> u64 {
        self.replay_clock.unwrap_or_else(|| (self.config.clock_ms)())
    }

    fn used_memory(&self) -> usize {
        match self.config.used_memory {
            Some(f) => f(),
            None => self.dataset,
        }
    }

    /// Whether a write that adds about `extra` bytes must be refused.
    fn over_limit(&self, extra: usize) -> bool {
        self.replay_clock.is_none()
            && self.config.maxmemory != 0
            && self.used_memory().saturating_add(extra) > self.config.maxmemory
    }

    fn cost(key: &[u8], value: &[u8]) -> usize {
        key.len() + value.len() + PER_KEY_OVERHEAD
    }

    /// The live entry of `key` (an expired one is removed first).
    fn live(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now();
        let expired = matches!(self.map.get(key), Some(e) if e.expires_at != 0 && e.expires_at <= now);
        if expired {
            self.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.map.remove(key)?;
        self.dataset = self.dataset.saturating_sub(Self::cost(key, &e.value));
        if e.expires_at != 0 {
            self.volatile -= 1;
        }
        Some(e)
    }

    /// `value` as a part of the buffer it was received in, if it is a big
    /// argument and most of that buffer (keeping it then wastes little).
    fn keepable(&self, value: &[u8]) -> Option<Shared> {
        if value.len() < BIG_ARG {
            return None;
        }
        let kept = self.received.as_ref()?.cut(value)?;
        (kept.buffer_capacity() / 2 <= value.len()).then_some(kept)
    }

    /// Stores `value` under `key` with this expiry (0: none); `false` if the heap
    /// had no room (nothing changed then).
    fn store(&mut self, key: &[u8], value: &[u8], expires_at: u64) -> bool {
        let kept = self.keepable(value);
        if let Some(e) = self.map.get_mut(key) {
            let old = e.value.len();
            match (kept, &mut e.value) {
                (Some(kept), slot) => *slot = Value::Kept(kept),
                // Reuse the allocation (redis-benchmark overwrites one key).
                (None, Value::Own(v)) if v.capacity() >= value.len() => {
                    v.clear();
                    v.extend_from_slice(value);
                }
                (None, slot) => match try_copy(value) {
                    Some(v) => *slot = Value::Own(v),
                    None => return false,
                },
            }
            let had_expiry = e.expires_at != 0;
            e.expires_at = expires_at;
            e.version = self.next_version;
            self.next_version += 1;
            match (had_expiry, expires_at != 0) {
                (false, true) => self.volatile += 1,
                (true, false) => self.volatile -= 1,
                _ => {}
            }
            self.dataset = self.dataset - old.min(self.dataset) + value.len();
            return true;
        }
        let Some(k) = try_copy(key) else { return false };
        let Some(v) = kept.map(Value::Kept).or_else(|| try_copy(value).map(Value::Own)) else { return false };
        self.map.insert(k, Entry { value: v, expires_at, version: self.next_version });
        self.next_version += 1;
        if expires_at != 0 {
            self.volatile += 1;
        }
        self.dataset += Self::cost(key, value);
        true
    }

    fn set_expiry(&mut self, key: &[u8], expires_at: u64) {
        if let Some(e) = self.map.get_mut(key) {
            e.version = self.next_version;
            self.next_version += 1;
            match (e.expires_at != 0, expires_at != 0) {
                (false, true) => self.volatile += 1,
                (true, false) => self.volatile -= 1,
                _ => {}
            }
            e.expires_at = expires_at;
        }
    }

    /// Removes up to `budget` expired keys, going on from where the last sweep
    /// stopped (redis's active expiry, in small steps between requests).
    pub fn sweep(&mut self, budget: usize) {
        if self.volatile == 0 {
            return;
        }
        let now = self.now();
        let mut expired: Vec<Vec<u8>> = Vec::new();
        let mut next = None;
        for (i, (k, e)) in self.map.range(self.sweep_from.clone()..).enumerate() {
            if i == budget {
                next = Some(k.clone());
                break;
            }
            if e.expires_at != 0 && e.expires_at <= now && expired.try_reserve(1).is_ok() {
                expired.push(k.clone());
            }
        }
        self.sweep_from = next.unwrap_or_default();
        for k in expired {
            self.remove(&k);
        }
    }

    /// Runs one command of a connection, appending its reply; `true` if the
    /// connection should close.
    pub(super) fn dispatch(&mut self, conn: &mut KvConn, args: &[&[u8]], out: &mut Vec<u8>) -> bool {
        let mark = out.len();
        let close = self.dispatch_inner(conn, args, out);
        if !self.pending.is_empty() {
            let record = core::mem::take(&mut self.pending);
            let appended = match self.journal.as_mut() {
                None => Ok(()),
                Some(journal) if journal.fits(record.len()) => journal.append(&record),
                // No room (a write that frees memory, or a larger record than
                // checked): a compacted log holds the key space with this change.
                Some(_) => self.compact(),
            };
            if appended.is_ok() && self.log_outgrew_data() {
                // Failing is harmless: the log stays as it is and grows on.
                let _ = self.compact();
            }
            if let Err(why) = appended {
                // The change is in memory but not durable: say so instead of the reply.
                out.truncate(mark);
                error(out, &[b"ERR durable log: ", why.as_bytes(), b" (the change is in memory only)"]);
            }
            self.pending = record;
            self.pending.clear();
        }
        close
    }

    /// Whether a key `conn` watches changed (or expired) since `WATCH`.
    fn watched_changed(&mut self, conn: &KvConn) -> bool {
        conn.watched.iter().any(|(key, version)| self.live(key).map_or(0, |e| e.version) != *version)
    }

    /// Whether the journal's log has grown past twice the live data (and past
    /// its floor), so that compacting it pays.
    fn log_outgrew_data(&self) -> bool {
        let Some(journal) = self.journal.as_ref() else { return false };
        let floor = COMPACT_FLOOR.min(journal.limit() / 4);
        let used = journal.used();
        used > floor && used / 2 > self.dataset as u64
    }

    /// Whether the journal can take a record of `len` bytes, compacting it
    /// first if that is what it takes (and can help).
    fn log_room(&mut self, len: usize) -> bool {
        let Some(journal) = self.journal.as_ref() else { return true };
        if self.replay_clock.is_some() || journal.fits(len) {
            return true;
        }
        let live = (self.dataset as u64).saturating_add(len as u64);
        if live >= journal.used() || live >= journal.limit() || self.compact().is_err() {
            return false;
        }
        self.journal.as_ref().is_some_and(|j| j.fits(len))
    }

    /// Replaces the journal's log by the live key space: a `SET` (with `PXAT`
    /// for a key that expires, `APPEND`s for a value longer than
    /// [`SNAPSHOT_CHUNK`]) per key, in records of about 64 KiB stamped now.
    pub fn compact(&mut self) -> Result<(), &'static str> {
        let now = self.now();
        let Kv { journal, map, .. } = self;
        let Some(journal) = journal.as_mut() else { return Ok(()) };
        journal.begin_rewrite()?;
        let written = (|| {
            const RECORD: usize = 64 * 1024;
            let mut record = Vec::new();
            record.try_reserve(RECORD + SNAPSHOT_CHUNK + 256).map_err(|_| "no memory to compact the log")?;
            record.extend_from_slice(&now.to_le_bytes());
            let mut at = Vec::new();
            for (key, e) in map.iter() {
                if e.expires_at != 0 && e.expires_at <= now {
                    continue;
                }
                at.clear();
                push_decimal(&mut at, i64::try_from(e.expires_at).unwrap_or(i64::MAX));
                let mut chunks = e.value.chunks(SNAPSHOT_CHUNK);
                let first = chunks.next().unwrap_or(&[]);
                let need = key.len() + first.len() + 96;
                if record.len() + need > RECORD && record.len() > 8 {
                    journal.rewrite(&record)?;
                    record.truncate(8);
                }
                record.try_reserve(need).map_err(|_| "no memory to compact the log")?;
                if e.expires_at != 0 {
                    encode(&mut record, &[b"SET", key, first, b"PXAT", &at]);
                } else {
                    encode(&mut record, &[b"SET", key, first]);
                }
                for chunk in chunks {
                    journal.rewrite(&record)?;
                    record.truncate(8);
                    record.try_reserve(key.len() + chunk.len() + 64).map_err(|_| "no memory to compact the log")?;
                    encode(&mut record, &[b"APPEND", key, chunk]);
                }
            }
            if record.len() > 8 {
                journal.rewrite(&record)?;
            }
            journal.commit_rewrite()
        })();
        if written.is_err() {
            journal.abandon_rewrite();
        }
        written
    }

    fn dispatch_inner(&mut self, conn: &mut KvConn, args: &[&[u8]], out: &mut Vec<u8>) -> bool {
        let Some(name) = args.first() else { return false };
        self.commands += 1;
        if conn.id == 0 {
            conn.id = self.next_client_id;
            self.next_client_id += 1;
        }
        let entry = lookup(name);
        if let Some(queue) = conn.multi.as_mut() {
            match entry {
                // As redis: a rejected EXEC ends the transaction, with the reason.
                Some(&(n @ "exec", arity, _)) if !arity_ok(arity, args.len()) => {
                    conn.multi = None;
                    conn.multi_failed = false;
                    conn.watched.clear();
                    error(
                        out,
                        &[
                            b"EXECABORT Transaction discarded because of: wrong number of arguments for '",
                            n.as_bytes(),
                            b"' command",
                        ],
                    );
                    return false;
                }
                Some(&(n @ ("discard" | "multi"), arity, _)) if !arity_ok(arity, args.len()) => {
                    wrong_arity(out, n);
                    conn.multi_failed = true;
                    return false;
                }
                Some(("exec" | "discard" | "quit" | "multi", _, _)) => {}
                _ => {
                    match entry {
                        None => {
                            unknown(out, args);
                            conn.multi_failed = true;
                        }
                        Some(&(n, arity, _)) if !arity_ok(arity, args.len()) => {
                            wrong_arity(out, n);
                            conn.multi_failed = true;
                        }
                        // Refused, but the transaction goes on (as redis).
                        Some(("watch", _, _)) => error(out, &[b"ERR WATCH inside MULTI is not allowed"]),
                        Some(&(_, _, true)) if self.over_limit(args.iter().map(|a| a.len()).sum()) => {
                            // As redis: refused when queued, so EXEC aborts.
                            error(out, &[OOM]);
                            conn.multi_failed = true;
                        }
                        Some(_) => {
                            let mut copy = Vec::new();
                            let ok = copy.try_reserve_exact(args.len()).is_ok()
                                && args.iter().all(|a| try_copy(a).map(|a| copy.push(a)).is_some())
                                && queue.try_reserve(1).is_ok();
                            if ok {
                                queue.push(copy);
                                simple(out, b"QUEUED");
                            } else {
                                error(out, &[OOM]);
                                conn.multi_failed = true;
                            }
                        }
                    }
                    return false;
                }
            }
        }
        let Some(&(cmd, arity, grows)) = entry else {
            unknown(out, args);
            return false;
        };
        if !arity_ok(arity, args.len()) {
            wrong_arity(out, cmd);
            return false;
        }
        match cmd {
            "multi" => {
                if conn.multi.is_some() {
                    error(out, &[b"ERR MULTI calls can not be nested"]);
                } else {
                    conn.multi = Some(Vec::new());
                    conn.multi_failed = false;
                    simple(out, b"OK");
                }
            }
            "exec" => match conn.multi.take() {
                None => error(out, &[b"ERR EXEC without MULTI"]),
                Some(_) if core::mem::take(&mut conn.multi_failed) => {
                    conn.watched.clear();
                    error(out, &[b"EXECABORT Transaction discarded because of previous errors."])
                }
                Some(_) if self.watched_changed(conn) => {
                    // A watched key changed: nothing runs, a null array (redis's `*-1`).
                    conn.watched.clear();
                    out.extend_from_slice(b"*-1\r\n");
                }
                Some(queue) => {
                    conn.watched.clear();
                    // The transaction is one record: room for all of it, or nothing runs.
                    let is_write = |c: &Vec<Vec<u8>>| lookup(&c[0]).is_some_and(|e| WRITES.contains(&e.0));
                    if queue.iter().any(|c| is_write(c) && lookup(&c[0]).is_some_and(|e| e.2)) {
                        let len = 8 + queue
                            .iter()
                            .filter(|c| is_write(c))
                            .map(|c| encoded_len(c.iter().map(Vec::as_slice)))
                            .sum::<usize>();
                        if !self.log_room(len) {
                            error(out, &[b"EXECABORT Transaction discarded because of: ", LOG_FULL]);
                            return false;
                        }
                    }
                    self.in_exec = true;
                    array_len(out, queue.len());
                    for command in &queue {
                        let mut argv: Vec<&[u8]> = Vec::new();
                        if argv.try_reserve_exact(command.len()).is_err() {
                            error(out, &[OOM]);
                            continue;
                        }
                        argv.extend(command.iter().map(Vec::as_slice));
                        // Queued commands were checked; run each as on its own.
                        if let Some(&(cmd, _, grows)) = lookup(argv[0]) {
                            self.run(conn, cmd, grows, &argv, out);
                        }
                    }
                    self.in_exec = false;
                }
            },
            "discard" => {
                conn.watched.clear();
                if conn.multi.take().is_some() {
                    conn.multi_failed = false;
                    simple(out, b"OK");
                } else {
                    error(out, &[b"ERR DISCARD without MULTI"]);
                }
            }
            "quit" => {
                simple(out, b"OK");
                return true;
            }
            _ => self.run(conn, cmd, grows, args, out),
        }
        false
    }

    /// Runs a command whose name and arity are known good; a write that was
    /// not refused goes into the journal record.
    fn run(&mut self, conn: &mut KvConn, cmd: &str, grows: bool, args: &[&[u8]], out: &mut Vec<u8>) {
        let mark = out.len();
        self.execute(conn, cmd, grows, args, out);
        if self.journal.is_some()
            && self.replay_clock.is_none()
            && WRITES.contains(&cmd)
            // Refused before any change: nothing to replay.
            && !out[mark..].starts_with(b"-OOM")
            && !out[mark..].starts_with(b"-MISCONF")
        {
            if self.pending.is_empty() {
                let _ = self.pending.try_reserve(8);
                self.pending.extend_from_slice(&self.now().to_le_bytes());
            }
            let size: usize = args.iter().map(|a| a.len() + 16).sum::<usize>() + 16;
            if self.pending.try_reserve(size).is_err() {
                out.truncate(mark);
                return error(out, &[b"ERR durable log: no memory for the record (the change is in memory only)"]);
            }
            encode(&mut self.pending, args);
        }
    }

    fn execute(&mut self, conn: &mut KvConn, cmd: &str, grows: bool, args: &[&[u8]], out: &mut Vec<u8>) {
        let rest = &args[1..];
        if grows {
            // What the write adds, at most: the keys and values it names.
            let extra: usize = rest.iter().map(|a| a.len()).sum::<usize>() + PER_KEY_OVERHEAD;
            if self.over_limit(extra) {
                return error(out, &[OOM]);
            }
            // The record must fit in the log before anything changes.
            if self.journal.is_some()
                && !self.in_exec
                && WRITES.contains(&cmd)
                && !self.log_room(8 + encoded_len(args.iter().copied()))
            {
                return error(out, &[LOG_FULL]);
            }
        }
        match cmd {
            "get" => match self.live(rest[0]) {
                Some(e) => bulk(out, &e.value),
                None => out.extend_from_slice(NULL_BULK),
            },
            "set" => self.set(rest, out),
            "setnx" => {
                if self.live(rest[0]).is_some() {
                    integer(out, 0);
                } else if self.store(rest[0], rest[1], 0) {
                    integer(out, 1);
                } else {
                    error(out, &[OOM]);
                }
            }
            "setex" | "psetex" => {
                let unit = if cmd == "setex" { 1000 } else { 1 };
                match parse_i64(rest[1]) {
                    Some(n) if n > 0 => match self.deadline(n, unit, false) {
                        Some(at) => {
                            if self.store(rest[0], rest[2], at) {
                                simple(out, b"OK");
                            } else {
                                error(out, &[OOM]);
                            }
                        }
                        None => invalid_expire(out, cmd),
                    },
                    Some(_) => invalid_expire(out, cmd),
                    None => error(out, &[NOT_INTEGER]),
                }
            }
            "getset" => {
                let old = match self.live(rest[0]) {
                    Some(e) => match try_copy(&e.value) {
                        Some(v) => Some(v),
                        None => return error(out, &[OOM]),
                    },
                    None => None,
                };
                if !self.store(rest[0], rest[1], 0) {
                    return error(out, &[OOM]);
                }
                match old {
                    Some(v) => bulk(out, &v),
                    None => out.extend_from_slice(NULL_BULK),
                }
            }
            "getdel" => match self.live(rest[0]).is_some() {
                true => {
                    let e = self.remove(rest[0]);
                    bulk(out, e.as_ref().map_or(&[][..], |e| &e.value[..]));
                }
                false => out.extend_from_slice(NULL_BULK),
            },
            "mget" => {
                array_len(out, rest.len());
                for k in rest {
                    match self.live(k) {
                        Some(e) => bulk(out, &e.value),
                        None => out.extend_from_slice(NULL_BULK),
                    }
                }
            }
            "mset" | "msetnx" => {
                if !rest.len().is_multiple_of(2) {
                    return wrong_arity(out, cmd);
                }
                if cmd == "msetnx" && rest.chunks(2).any(|kv| self.live(kv[0]).is_some()) {
                    return integer(out, 0);
                }
                for kv in rest.chunks(2) {
                    if !self.store(kv[0], kv[1], 0) {
                        return error(out, &[OOM]);
                    }
                }
                if cmd == "mset" {
                    simple(out, b"OK")
                } else {
                    integer(out, 1)
                }
            }
            "append" => {
                let version = self.next_version;
                self.next_version += 1;
                let len = match self.live(rest[0]) {
                    Some(e) => {
                        let Some(value) = e.value.growable(rest[1].len()) else {
                            return error(out, &[OOM]);
                        };
                        value.extend_from_slice(rest[1]);
                        e.version = version;
                        let len = e.value.len();
                        self.dataset += rest[1].len();
                        len
                    }
                    None => {
                        if !self.store(rest[0], rest[1], 0) {
                            return error(out, &[OOM]);
                        }
                        rest[1].len()
                    }
                };
                integer(out, len as i64);
            }
            "strlen" => {
                let n = self.live(rest[0]).map_or(0, |e| e.value.len());
                integer(out, n as i64);
            }
            "incr" | "decr" | "incrby" | "decrby" => {
                let by = match cmd {
                    "incr" => Some(1),
                    "decr" => Some(-1),
                    "incrby" => parse_i64(rest[1]),
                    _ => match parse_i64(rest[1]) {
                        Some(i64::MIN) => return error(out, &[b"ERR decrement would overflow"]),
                        n => n.map(|n| -n),
                    },
                };
                match by {
                    Some(by) => self.incr(rest[0], by, out),
                    None => error(out, &[NOT_INTEGER]),
                }
            }
            "del" | "unlink" => {
                let n = rest.iter().filter(|k| self.live(k).is_some() && self.remove(k).is_some()).count();
                integer(out, n as i64);
            }
            "exists" => {
                let n = rest.iter().filter(|k| self.live(k).is_some()).count();
                integer(out, n as i64);
            }
            "type" => simple(out, if self.live(rest[0]).is_some() { b"string" } else { b"none" }),
            "expire" | "pexpire" | "expireat" | "pexpireat" => self.expire(cmd, rest, out),
            "ttl" | "pttl" => {
                let now = self.now();
                let reply = match self.live(rest[0]) {
                    None => -2,
                    Some(e) if e.expires_at == 0 => -1,
                    Some(e) => {
                        let ms = e.expires_at.saturating_sub(now) as i64;
                        if cmd == "ttl" {
                            (ms + 500) / 1000
                        } else {
                            ms
                        }
                    }
                };
                integer(out, reply);
            }
            "persist" => {
                let had = self.live(rest[0]).is_some_and(|e| e.expires_at != 0);
                if had {
                    self.set_expiry(rest[0], 0);
                }
                integer(out, i64::from(had));
            }
            "dbsize" => integer(out, self.map.len() as i64),
            "keys" => {
                let now = self.now();
                let mut keys: Vec<&[u8]> = Vec::new();
                for (k, e) in &self.map {
                    if (e.expires_at == 0 || e.expires_at > now) && glob::matches(rest[0], k) {
                        if keys.try_reserve(1).is_err() {
                            return error(out, &[OOM]);
                        }
                        keys.push(k);
                    }
                }
                array_len(out, keys.len());
                for k in keys {
                    bulk(out, k);
                }
            }
            "scan" => self.scan(rest, out),
            "flushdb" | "flushall" => {
                match rest {
                    [] => {}
                    [m] if m.eq_ignore_ascii_case(b"sync") || m.eq_ignore_ascii_case(b"async") => {}
                    _ => return error(out, &[SYNTAX]),
                }
                self.map = BTreeMap::new();
                self.volatile = 0;
                self.dataset = 0;
                self.sweep_from = Vec::new();
                simple(out, b"OK");
            }
            "select" => match parse_i64(rest[0]) {
                Some(0) => simple(out, b"OK"),
                Some(_) => error(out, &[b"ERR DB index is out of range"]),
                None => error(out, &[NOT_INTEGER]),
            },
            "ping" => match rest {
                [] => simple(out, b"PONG"),
                [msg] => bulk(out, msg),
                _ => wrong_arity(out, cmd),
            },
            "echo" => bulk(out, rest[0]),
            "time" => {
                let ms = self.now();
                array_len(out, 2);
                let mut s = Vec::new();
                push_decimal(&mut s, (ms / 1000) as i64);
                bulk(out, &s);
                s.clear();
                push_decimal(&mut s, ((ms % 1000) * 1000) as i64);
                bulk(out, &s);
            }
            "info" => self.info(rest, out),
            "config" => self.config(rest, out),
            "command" => match rest.first() {
                Some(sub) if sub.eq_ignore_ascii_case(b"count") && rest.len() > 1 => wrong_arity(out, "command|count"),
                Some(sub) if sub.eq_ignore_ascii_case(b"count") => integer(out, COMMANDS.len() as i64),
                // COMMAND, COMMAND DOCS, COMMAND INFO …: no documentation here;
                // an empty answer is what clients that probe it can live with.
                _ => array_len(out, 0),
            },
            "client" => self.client(conn, rest, out),
            "hello" => self.hello(conn, rest, out),
            "watch" => {
                if conn.watched.try_reserve(rest.len()).is_err() {
                    return error(out, &[OOM]);
                }
                for key in rest {
                    if conn.watched.iter().any(|(k, _)| k.as_slice() == *key) {
                        continue;
                    }
                    let version = self.live(key).map_or(0, |e| e.version);
                    let Some(key) = try_copy(key) else { return error(out, &[OOM]) };
                    conn.watched.push((key, version));
                }
                simple(out, b"OK");
            }
            "unwatch" => {
                conn.watched.clear();
                simple(out, b"OK");
            }
            _ => unknown(out, args),
        }
    }

    fn deadline(&self, n: i64, unit_ms: i64, absolute: bool) -> Option<u64> {
        let ms = n.checked_mul(unit_ms)?;
        let at = if absolute { ms } else { (self.now() as i64).checked_add(ms)? };
        // 0 means "no expiry": a deadline at the epoch is simply in the past.
        u64::try_from(at.max(1)).ok()
    }

    fn set(&mut self, rest: &[&[u8]], out: &mut Vec<u8>) {
        let (key, value) = (rest[0], rest[1]);
        let mut o = SetOptions::default();
        let mut i = 2;
        while i < rest.len() {
            let opt = rest[i];
            let is = |s: &[u8]| opt.eq_ignore_ascii_case(s);
            if is(b"NX") && !o.xx {
                o.nx = true;
            } else if is(b"XX") && !o.nx {
                o.xx = true;
            } else if is(b"GET") {
                o.get = true;
            } else if is(b"KEEPTTL") && o.expires_at.is_none() {
                o.keep_ttl = true;
            } else if (is(b"EX") || is(b"PX") || is(b"EXAT") || is(b"PXAT")) && o.expires_at.is_none() && !o.keep_ttl {
                let Some(arg) = rest.get(i + 1) else { return error(out, &[SYNTAX]) };
                let Some(n) = parse_i64(arg) else { return error(out, &[NOT_INTEGER]) };
                let unit = if is(b"EX") || is(b"EXAT") { 1000 } else { 1 };
                let absolute = is(b"EXAT") || is(b"PXAT");
                match (n > 0).then(|| self.deadline(n, unit, absolute)).flatten() {
                    Some(at) => o.expires_at = Some(at),
                    None => return invalid_expire(out, "set"),
                }
                i += 1;
            } else {
                return error(out, &[SYNTAX]);
            }
            i += 1;
        }
        let mark = out.len();
        let old = self.live(key);
        let exists = old.is_some();
        let keep = old.as_ref().map_or(0, |e| e.expires_at);
        if o.get {
            match &old {
                Some(e) => bulk(out, &e.value),
                None => out.extend_from_slice(NULL_BULK),
            }
        }
        if (o.nx && exists) || (o.xx && !exists) {
            if !o.get {
                out.extend_from_slice(NULL_BULK);
            }
            return;
        }
        let expires_at = match o.expires_at {
            Some(at) => at,
            None if o.keep_ttl => keep,
            None => 0,
        };
        if !self.store(key, value, expires_at) {
            out.truncate(mark);
            return error(out, &[OOM]);
        }
        if !o.get {
            simple(out, b"OK");
        }
    }

    fn incr(&mut self, key: &[u8], by: i64, out: &mut Vec<u8>) {
        let (current, expires_at) = match self.live(key) {
            None => (0, 0),
            Some(e) => match parse_i64(&e.value) {
                Some(n) => (n, e.expires_at),
                None => return error(out, &[NOT_INTEGER]),
            },
        };
        let Some(next) = current.checked_add(by) else {
            return error(out, &[OVERFLOW]);
        };
        let mut text = Vec::new();
        push_decimal(&mut text, next);
        if !self.store(key, &text, expires_at) {
            return error(out, &[OOM]);
        }
        integer(out, next);
    }

    fn expire(&mut self, cmd: &str, rest: &[&[u8]], out: &mut Vec<u8>) {
        let Some(n) = parse_i64(rest[1]) else { return error(out, &[NOT_INTEGER]) };
        let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
        for opt in &rest[2..] {
            let is = |s: &[u8]| opt.eq_ignore_ascii_case(s);
            if is(b"NX") {
                nx = true;
            } else if is(b"XX") {
                xx = true;
            } else if is(b"GT") {
                gt = true;
            } else if is(b"LT") {
                lt = true;
            } else {
                return error(out, &[b"ERR Unsupported option ", opt]);
            }
        }
        if nx && (xx || gt || lt) {
            return error(out, &[b"ERR NX and XX, GT or LT options at the same time are not compatible"]);
        }
        if gt && lt {
            return error(out, &[b"ERR GT and LT options at the same time are not compatible"]);
        }
        let unit = if cmd == "expire" || cmd == "expireat" { 1000 } else { 1 };
        let Some(at) = self.deadline(n, unit, cmd.ends_with("at")) else { return invalid_expire(out, cmd) };
        let now = self.now();
        let Some(e) = self.live(rest[0]) else { return integer(out, 0) };
        let current = e.expires_at; // 0: persistent, i.e. an infinite TTL for GT/LT
        let allowed = !(nx && current != 0
            || xx && current == 0
            || gt && (current == 0 || at <= current)
            || lt && current != 0 && at >= current);
        if !allowed {
            return integer(out, 0);
        }
        if at <= now {
            self.remove(rest[0]);
        } else {
            self.set_expiry(rest[0], at);
        }
        integer(out, 1);
    }

    fn scan(&mut self, rest: &[&[u8]], out: &mut Vec<u8>) {
        let Some(cursor) = core::str::from_utf8(rest[0]).ok().and_then(|s| s.parse::<u64>().ok()) else {
            return error(out, &[b"ERR invalid cursor"]);
        };
        let (mut pattern, mut count, mut only_strings) = (None, 10usize, true);
        let mut i = 1;
        while i < rest.len() {
            let (opt, arg) = (rest[i], rest.get(i + 1));
            let Some(arg) = arg else { return error(out, &[SYNTAX]) };
            if opt.eq_ignore_ascii_case(b"MATCH") {
                pattern = Some(*arg);
            } else if opt.eq_ignore_ascii_case(b"COUNT") {
                match parse_i64(arg) {
                    Some(n) if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX),
                    Some(_) => return error(out, &[SYNTAX]),
                    None => return error(out, &[NOT_INTEGER]),
                }
            } else if opt.eq_ignore_ascii_case(b"TYPE") {
                only_strings = arg.eq_ignore_ascii_case(b"string");
            } else {
                return error(out, &[SYNTAX]);
            }
            i += 2;
        }
        let now = self.now();
        let from = if cursor == 0 { Vec::new() } else { cursor_key(cursor) };
        let mut found: Vec<&[u8]> = Vec::new();
        let mut next = 0;
        // Visit `count` keys, then finish every key that shares the last one's
        // 7-byte prefix, so the cursor (which holds a prefix) always moves on.
        let mut visited = 0;
        let mut boundary: Option<&[u8]> = None;
        for (k, e) in self.map.range(from..) {
            if boundary.is_some_and(|b: &[u8]| k[..k.len().min(7)] != b[..b.len().min(7)]) {
                next = cursor_of(k);
                break;
            }
            visited += 1;
            if visited >= count && boundary.is_none() {
                boundary = Some(k);
            }
            let live = e.expires_at == 0 || e.expires_at > now;
            if live && only_strings && pattern.is_none_or(|p| glob::matches(p, k)) {
                if found.try_reserve(1).is_err() {
                    return error(out, &[OOM]);
                }
                found.push(k);
            }
        }
        array_len(out, 2);
        let mut c = Vec::new();
        push_decimal(&mut c, next as i64);
        // Cursors are unsigned; push_decimal takes i64: print the u64 exactly.
        if next > i64::MAX as u64 {
            c.clear();
            let mut digits = [0u8; 20];
            let (mut v, mut at) = (next, digits.len());
            while v > 0 {
                at -= 1;
                digits[at] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            c.extend_from_slice(&digits[at..]);
        }
        bulk(out, &c);
        array_len(out, found.len());
        for k in found {
            bulk(out, k);
        }
    }

    fn info(&mut self, rest: &[&[u8]], out: &mut Vec<u8>) {
        let want = |section: &[u8]| {
            rest.is_empty()
                || rest.iter().any(|r| {
                    r.eq_ignore_ascii_case(section)
                        || r.eq_ignore_ascii_case(b"all")
                        || r.eq_ignore_ascii_case(b"everything")
                        || r.eq_ignore_ascii_case(b"default")
                })
        };
        let now = self.now();
        let mut text = Vec::new();
        fn line(text: &mut Vec<u8>, name: &[u8], value: &[u8]) {
            text.extend_from_slice(name);
            text.push(b':');
            text.extend_from_slice(value);
            text.extend_from_slice(b"\r\n");
        }
        let num = |n: u64| {
            let mut v = Vec::new();
            push_decimal(&mut v, n.min(i64::MAX as u64) as i64);
            v
        };
        if want(b"server") {
            text.extend_from_slice(b"# Server\r\n");
            line(&mut text, b"redis_version", REDIS_VERSION.as_bytes());
            line(&mut text, b"redis_mode", b"standalone");
            line(&mut text, b"os", b"Solo5 unikernel (tender kv)");
            line(&mut text, b"arch_bits", b"64");
            line(&mut text, b"multiplexing_api", b"smoltcp");
            line(&mut text, b"tcp_port", b"6379");
            let up = now.saturating_sub(self.started_ms) / 1000;
            line(&mut text, b"uptime_in_seconds", &num(up));
            line(&mut text, b"uptime_in_days", &num(up / 86400));
            text.extend_from_slice(b"\r\n");
        }
        if want(b"clients") {
            text.extend_from_slice(b"# Clients\r\n");
            line(&mut text, b"total_connections_received", &num(self.next_client_id - 1));
            text.extend_from_slice(b"\r\n");
        }
        if want(b"memory") {
            text.extend_from_slice(b"# Memory\r\n");
            line(&mut text, b"used_memory", &num(self.used_memory() as u64));
            line(&mut text, b"used_memory_dataset", &num(self.dataset as u64));
            line(&mut text, b"total_system_memory", &num(self.config.total_memory as u64));
            line(&mut text, b"maxmemory", &num(self.config.maxmemory as u64));
            line(&mut text, b"maxmemory_policy", b"noeviction");
            text.extend_from_slice(b"\r\n");
        }
        if want(b"persistence") {
            text.extend_from_slice(b"# Persistence\r\n");
            line(&mut text, b"loading", b"0");
            line(&mut text, b"aof_enabled", b"0");
            line(&mut text, b"rdb_changes_since_last_save", b"0");
            text.extend_from_slice(b"\r\n");
        }
        if want(b"stats") {
            text.extend_from_slice(b"# Stats\r\n");
            line(&mut text, b"total_commands_processed", &num(self.commands));
            line(&mut text, b"expired_keys", b"0");
            text.extend_from_slice(b"\r\n");
        }
        if want(b"replication") {
            text.extend_from_slice(b"# Replication\r\n");
            line(&mut text, b"role", b"master");
            line(&mut text, b"connected_slaves", b"0");
            text.extend_from_slice(b"\r\n");
        }
        if want(b"keyspace") {
            text.extend_from_slice(b"# Keyspace\r\n");
            if !self.map.is_empty() {
                let mut v = b"keys=".to_vec();
                push_decimal(&mut v, self.map.len() as i64);
                v.extend_from_slice(b",expires=");
                push_decimal(&mut v, self.volatile as i64);
                v.extend_from_slice(b",avg_ttl=0");
                line(&mut text, b"db0", &v);
            }
        }
        bulk(out, &text);
    }

    fn config(&mut self, rest: &[&[u8]], out: &mut Vec<u8>) {
        let sub = rest[0];
        if sub.eq_ignore_ascii_case(b"get") {
            if rest.len() < 2 {
                return wrong_arity(out, "config|get");
            }
            let mut max = Vec::new();
            push_decimal(&mut max, self.config.maxmemory as i64);
            let params: [(&[u8], &[u8]); 7] = [
                (b"maxmemory", &max),
                (b"maxmemory-policy", b"noeviction"),
                (b"save", b""),
                (b"appendonly", b"no"),
                (b"databases", b"1"),
                (b"timeout", b"0"),
                (b"port", b"6379"),
            ];
            let mut hits: Vec<(&[u8], &[u8])> = Vec::new();
            for (name, value) in params {
                if rest[1..].iter().any(|p| glob::matches(&p.to_ascii_lowercase(), name)) {
                    hits.push((name, value));
                }
            }
            array_len(out, hits.len() * 2);
            for (name, value) in hits {
                bulk(out, name);
                bulk(out, value);
            }
        } else if sub.eq_ignore_ascii_case(b"set") {
            if rest.len() < 3 || !rest.len().is_multiple_of(2) {
                return wrong_arity(out, "config|set");
            }
            error(out, &[b"ERR CONFIG SET is not supported by this server"]);
        } else if sub.eq_ignore_ascii_case(b"resetstat") {
            simple(out, b"OK");
        } else {
            error(out, &[b"ERR unknown subcommand '", sub, b"'. Try CONFIG HELP."]);
        }
    }

    fn client(&mut self, conn: &mut KvConn, rest: &[&[u8]], out: &mut Vec<u8>) {
        let sub = rest[0];
        let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
        if is(b"setname") {
            let [_, name] = rest else { return wrong_arity(out, "client|setname") };
            if name.iter().any(|&b| b <= b' ' || b > b'~') {
                return error(out, &[b"ERR Client names cannot contain spaces, newlines or special characters."]);
            }
            match try_copy(name) {
                Some(n) => conn.name = n,
                None => return error(out, &[OOM]),
            }
            simple(out, b"OK");
        } else if is(b"getname") {
            if conn.name.is_empty() {
                out.extend_from_slice(NULL_BULK)
            } else {
                bulk(out, &conn.name)
            }
        } else if is(b"id") {
            integer(out, conn.id as i64);
        } else if is(b"setinfo") {
            let [_, attr, _] = rest else { return wrong_arity(out, "client|setinfo") };
            if attr.eq_ignore_ascii_case(b"lib-name") || attr.eq_ignore_ascii_case(b"lib-ver") {
                simple(out, b"OK");
            } else {
                error(out, &[b"ERR Unrecognized option '", attr, b"'"]);
            }
        } else if is(b"info") || is(b"list") {
            let mut text = b"id=".to_vec();
            push_decimal(&mut text, conn.id as i64);
            text.extend_from_slice(b" name=");
            text.extend_from_slice(&conn.name);
            text.extend_from_slice(b" db=0 multi=");
            push_decimal(&mut text, conn.multi.as_ref().map_or(-1, |q| q.len() as i64));
            text.extend_from_slice(b" resp=2\n");
            bulk(out, &text);
        } else if is(b"no-evict") || is(b"no-touch") || is(b"reply") {
            simple(out, b"OK");
        } else {
            error(out, &[b"ERR unknown subcommand '", sub, b"'. Try CLIENT HELP."]);
        }
    }

    fn hello(&mut self, conn: &mut KvConn, rest: &[&[u8]], out: &mut Vec<u8>) {
        if let Some(v) = rest.first() {
            match parse_i64(v) {
                Some(2) => {}
                Some(_) => return error(out, &[b"NOPROTO unsupported protocol version"]),
                None => return error(out, &[b"ERR Protocol version is not an integer or out of range"]),
            }
        }
        let mut i = 1;
        while i < rest.len() {
            let opt = rest[i];
            if opt.eq_ignore_ascii_case(b"AUTH") && i + 2 < rest.len() {
                i += 3; // no passwords here: any credentials are accepted
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && i + 1 < rest.len() {
                match try_copy(rest[i + 1]) {
                    Some(n) => conn.name = n,
                    None => return error(out, &[OOM]),
                }
                i += 2;
            } else {
                return error(out, &[b"ERR Syntax error in HELLO option '", opt, b"'"]);
            }
        }
        // RESP2: the map as a flat array of 14 elements.
        array_len(out, 14);
        bulk(out, b"server");
        bulk(out, b"redis");
        bulk(out, b"version");
        bulk(out, REDIS_VERSION.as_bytes());
        bulk(out, b"proto");
        integer(out, 2);
        bulk(out, b"id");
        integer(out, conn.id as i64);
        bulk(out, b"mode");
        bulk(out, b"standalone");
        bulk(out, b"role");
        bulk(out, b"master");
        bulk(out, b"modules");
        array_len(out, 0);
    }
}

/// Appends `args` as a RESP array of bulk strings (room already reserved).
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    array_len(out, args.len());
    for a in args {
        out.push(b'$');
        push_decimal(out, a.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The length of `args` encoded by [`encode`].
fn encoded_len<'a>(args: impl Iterator<Item = &'a [u8]>) -> usize {
    let digits = |n: usize| {
        let mut d = 1;
        let mut v = n;
        while v >= 10 {
            v /= 10;
            d += 1;
        }
        d
    };
    let (mut n, mut len) = (0, 0);
    for a in args {
        n += 1;
        len += 1 + digits(a.len()) + 2 + a.len() + 2;
    }
    len + 1 + digits(n) + 2
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 {
        usize::try_from(arity).is_ok_and(|a| a == argc)
    } else {
        argc >= arity.unsigned_abs() as usize
    }
}

fn invalid_expire(out: &mut Vec<u8>, cmd: &str) {
    error(out, &[b"ERR invalid expire time in '", cmd.as_bytes(), b"' command"]);
}
