//! An in-memory key-value server speaking redis's RESP2: the string commands
//! and connection handshakes that `redis-cli`, `redis-benchmark` and common
//! client libraries send (solo5-style unikernel `kv`), with redis's reply
//! types and error texts.
//!
//! Requests are RESP arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or
//! inline commands (`PING\r\n`, what `redis-benchmark`'s `PING_INLINE` sends).
//! Several requests in one read (pipelining) are answered in order. Commands:
//!
//! | group | commands |
//! |---|---|
//! | connection | `PING [msg]`, `ECHO`, `SELECT 0` (other indexes: `-ERR DB index is out of range`), `QUIT`, `HELLO [2 [AUTH u p] [SETNAME n]]` (`HELLO 3`: `-NOPROTO`, so RESP3 clients fall back to RESP2), `CLIENT SETNAME/GETNAME/SETINFO/ID/INFO/LIST/NO-EVICT/NO-TOUCH` |
//! | server | `COMMAND` / `COMMAND DOCS` (empty), `COMMAND COUNT`, `CONFIG GET pattern…` (maxmemory, maxmemory-policy, save, appendonly, databases, timeout, port), `INFO [section…]` (server, clients, memory, persistence, stats, replication, keyspace), `DBSIZE`, `TIME`, `FLUSHDB`/`FLUSHALL [ASYNC\|SYNC]` |
//! | strings | `GET`, `SET k v [NX\|XX] [GET] [EX s\|PX ms\|EXAT t\|PXAT t\|KEEPTTL]`, `SETNX`, `SETEX`, `PSETEX`, `GETSET`, `GETDEL`, `MGET`, `MSET`, `MSETNX`, `APPEND`, `STRLEN`, `INCR`, `INCRBY`, `DECR`, `DECRBY` |
//! | keys | `DEL`/`UNLINK`, `EXISTS`, `TYPE`, `EXPIRE`/`PEXPIRE`/`EXPIREAT`/`PEXPIREAT [NX\|XX\|GT\|LT]`, `TTL`, `PTTL`, `PERSIST`, `KEYS pattern`, `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` |
//! | transactions | `MULTI`, `EXEC`, `DISCARD` (a command that fails to queue makes `EXEC` answer `-EXECABORT`), `WATCH`/`UNWATCH` (`EXEC` answers a null array if a watched key changed) |
//!
//! Only strings exist, so `-WRONGTYPE` never occurs. Keys expire lazily (on
//! access) and actively (a small sweep per batch of requests). With a
//! `maxmemory` ([`KvConfig`]), a write that would take used memory past it is
//! answered `-OOM command not allowed when used memory > 'maxmemory'.` and
//! changes nothing; every allocation a request makes for keys, values,
//! queued commands and large replies is fallible (`try_reserve`), so a full
//! heap is an answer, never an abort.
//!
//! Limits: a bulk string of at most [`MAX_BULK`] bytes, at most [`MAX_ARGS`]
//! arguments, inline commands of at most [`MAX_INLINE`] bytes. Beyond them, as
//! on malformed input, the reply is `-ERR Protocol error: …` and the connection
//! closes (as redis does).

use alloc::vec::Vec;

use crate::{push_decimal, Progress, Protocol, Received, Shared};

pub mod block_log;
mod commands;
mod glob;

pub use commands::{Journal, Kv, KvConfig, KvConn, COMPACT_FLOOR, OOM, REDIS_VERSION};

/// Largest bulk string accepted (redis allows 512 MiB; a guest has less memory).
pub const MAX_BULK: usize = 1 << 20;
/// Most arguments in one command, the command name included.
pub const MAX_ARGS: usize = 1024;
/// Longest inline command line.
pub const MAX_INLINE: usize = 64 * 1024;
/// A bulk string at least this long is a big argument (redis's
/// `PROTO_MBULK_BIG_ARG`): its request's length is reported as soon as its
/// header arrives ([`Progress::big_request`]), and a value this big is kept
/// where it was received rather than copied ([`crate::Received`]).
pub const BIG_ARG: usize = 32 * 1024;

/// Arguments held without allocating; more go to the heap.
const INLINE_ARGS: usize = 16;

/// One parsed command: up to [`MAX_ARGS`] arguments borrowed from the input.
/// Made once per batch of requests: the common few arguments live inline (a
/// `MAX_ARGS` array took 16 KiB of stores to set up, per call).
struct Args<'a> {
    inline: [&'a [u8]; INLINE_ARGS],
    spilled: Vec<&'a [u8]>,
    argc: usize,
}

impl<'a> Args<'a> {
    fn new() -> Self {
        Args { inline: [&[]; INLINE_ARGS], spilled: Vec::new(), argc: 0 }
    }
    fn clear(&mut self) {
        self.argc = 0;
        self.spilled.clear();
    }
    fn push(&mut self, arg: &'a [u8]) -> Result<(), &'static str> {
        if self.argc >= MAX_ARGS {
            return Err("too many arguments");
        }
        if self.argc < INLINE_ARGS {
            self.inline[self.argc] = arg;
        } else {
            if self.argc == INLINE_ARGS {
                self.spilled.try_reserve(INLINE_ARGS * 2).map_err(|_| "no memory for the arguments")?;
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.try_reserve(1).map_err(|_| "no memory for the arguments")?;
            self.spilled.push(arg);
        }
        self.argc += 1;
        Ok(())
    }
    fn as_slice(&self) -> &[&'a [u8]] {
        if self.argc <= INLINE_ARGS {
            &self.inline[..self.argc]
        } else {
            &self.spilled
        }
    }
}

/// The outcome of parsing at the start of the input.
enum Parsed {
    /// Not a whole request yet; `at_least` bytes long in the end when a big
    /// argument's header has arrived.
    Incomplete { at_least: Option<usize> },
    /// A request of `len` bytes, its arguments in the `Args` passed in (none
    /// for a blank inline line).
    Command { len: usize },
    /// Malformed: reply with this and close.
    Error(&'static str),
}

/// Where the header line that starts at `from` ends: `Ok(Some(i))` with
/// `buf[i..i + 2] == b"\r\n"`, `Ok(None)` if no `\n` has arrived yet, and
/// `Err(())` for a `\n` without its `\r` (malformed).
fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, ()> {
    let Some(rest) = buf.get(from..) else { return Ok(None) };
    match rest.iter().position(|&b| b == b'\n') {
        None => Ok(None),
        Some(lf) if lf > 0 && rest[lf - 1] == b'\r' => Ok(Some(from + lf - 1)),
        Some(_) => Err(()),
    }
}

/// Parses a non-negative decimal; `None` if empty, not digits or too large.
fn parse_len(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0')))
}

/// Parses a signed 64-bit decimal the way redis's `string2ll` does (no spaces,
/// no `+`, no leading zeros except "0" itself).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

fn parse<'a>(buf: &'a [u8], args: &mut Args<'a>) -> Parsed {
    args.clear();
    match buf.first() {
        None => Parsed::Incomplete { at_least: None },
        Some(b'*') => parse_multibulk(buf, args),
        Some(_) => parse_inline(buf, args),
    }
}

fn parse_multibulk<'a>(buf: &'a [u8], args: &mut Args<'a>) -> Parsed {
    let end = match line_end(buf, 1) {
        Ok(Some(end)) => end,
        Ok(None) if buf.len() <= 32 => return Parsed::Incomplete { at_least: None },
        _ => return Parsed::Error("invalid multibulk length"),
    };
    let Some(count) = parse_len(&buf[1..end]) else {
        // `*-1` or garbage
        return Parsed::Error("invalid multibulk length");
    };
    if count > MAX_ARGS {
        return Parsed::Error("too many arguments");
    }
    let mut at = end + 2;
    for _ in 0..count {
        match buf.get(at) {
            None => return Parsed::Incomplete { at_least: None },
            Some(b'$') => {}
            Some(_) => return Parsed::Error("expected '$'"),
        }
        let end = match line_end(buf, at + 1) {
            Ok(Some(end)) => end,
            Ok(None) if buf.len() - at <= 32 => return Parsed::Incomplete { at_least: None },
            _ => return Parsed::Error("invalid bulk length"),
        };
        let len = match parse_len(&buf[at + 1..end]) {
            Some(len) if len <= MAX_BULK => len,
            _ => return Parsed::Error("invalid bulk length"),
        };
        let start = end + 2;
        let stop = start + len;
        if buf.len() < stop + 2 {
            return Parsed::Incomplete { at_least: (len >= BIG_ARG).then_some(stop + 2) };
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Parsed::Error("bulk string not terminated by CRLF");
        }
        if let Err(e) = args.push(&buf[start..stop]) {
            return Parsed::Error(e);
        }
        at = stop + 2;
    }
    Parsed::Command { len: at }
}

fn parse_inline<'a>(buf: &'a [u8], args: &mut Args<'a>) -> Parsed {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Parsed::Error("too big inline request")
        } else {
            Parsed::Incomplete { at_least: None }
        };
    };
    if lf > MAX_INLINE {
        return Parsed::Error("too big inline request");
    }
    let line = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
    for word in line.split(|b| *b == b' ' || *b == b'\t').filter(|w| !w.is_empty()) {
        if let Err(e) = args.push(word) {
            return Parsed::Error(e);
        }
    }
    Parsed::Command { len: lf + 1 }
}

fn simple(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'+');
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

fn error(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.push(b'-');
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
}

fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, s: &[u8]) {
    // A value may be large: no room for it is an -OOM reply, not an abort.
    if out.try_reserve(s.len() + 32).is_err() {
        return error(out, &[OOM]);
    }
    out.push(b'$');
    push_decimal(out, s.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

const NULL_BULK: &[u8] = b"$-1\r\n";

impl Kv {
    /// Answers the whole requests at the start of `input`; a big value in
    /// them that lies in `received` may be kept there instead of copied.
    fn answer(&mut self, conn: &mut KvConn, input: &[u8], received: Option<Shared>, out: &mut Vec<u8>) -> Progress {
        // Expire a few keys per batch of requests, as redis's active expiry.
        self.sweep(32);
        self.received = received;
        let mut consumed = 0;
        let mut args = Args::new();
        let progress = loop {
            match parse(&input[consumed..], &mut args) {
                Parsed::Incomplete { at_least } => {
                    break Progress { big_request: at_least, ..Progress::answered(consumed) };
                }
                Parsed::Error(why) => {
                    error(out, &[b"ERR Protocol error: ", why.as_bytes()]);
                    break Progress::closing(input.len());
                }
                Parsed::Command { len } => {
                    consumed += len;
                    if self.dispatch(conn, args.as_slice(), out) {
                        break Progress::closing(consumed);
                    }
                }
            }
        };
        // The buffer is the caller's again once nothing here holds it.
        self.received = None;
        progress
    }
}

impl Protocol for Kv {
    type Conn = KvConn;

    fn handle(&mut self, conn: &mut KvConn, input: &[u8], out: &mut Vec<u8>) -> Progress {
        self.answer(conn, input, None, out)
    }

    fn handle_received(&mut self, conn: &mut KvConn, input: &Received, out: &mut Vec<u8>) -> Progress {
        self.answer(conn, input.bytes(), input.share(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut v = alloc::format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(alloc::format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        v
    }

    fn run(kv: &mut Kv, input: &[u8]) -> (String, Progress) {
        let mut out = Vec::new();
        let p = kv.handle(&mut KvConn::default(), input, &mut out);
        (String::from_utf8(out).unwrap(), p)
    }

    fn reply(kv: &mut Kv, args: &[&str]) -> String {
        let input = cmd(args);
        let (out, p) = run(kv, &input);
        assert_eq!(p, Progress::answered(input.len()), "{args:?}");
        out
    }

    #[test]
    fn set_get_del_exists_dbsize() {
        let mut kv = Kv::new();
        assert_eq!(reply(&mut kv, &["GET", "k"]), "$-1\r\n");
        assert_eq!(reply(&mut kv, &["SET", "k", "hello"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["get", "k"]), "$5\r\nhello\r\n");
        assert_eq!(reply(&mut kv, &["SET", "k", ""]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["GET", "k"]), "$0\r\n\r\n");
        assert_eq!(reply(&mut kv, &["SET", "k2", "x"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["DBSIZE"]), ":2\r\n");
        assert_eq!(reply(&mut kv, &["EXISTS", "k", "k2", "nope", "k"]), ":3\r\n");
        assert_eq!(reply(&mut kv, &["DEL", "k", "nope"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["DEL", "k"]), ":0\r\n");
        assert_eq!(reply(&mut kv, &["DBSIZE"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["FLUSHALL"]), "+OK\r\n");
        assert!(kv.is_empty());
    }

    #[test]
    fn big_values_are_kept_where_they_were_received() {
        let mut kv = Kv::new();
        let mut c = KvConn::default();
        let value = "v".repeat(100_000);
        let request = cmd(&["SET", "big", &value]);
        // Its length is known as soon as the value's header is in.
        let header = request.len() - value.len() - 2;
        // As a server loop gets it: the first bytes answered in place, the rest
        // added up to the read limit and answered from the buffer.
        let first = &request[..header + 10];
        let mut p = kv.handle(&mut c, first, &mut Vec::new());
        assert_eq!(p, Progress { big_request: Some(request.len()), ..Progress::answered(0) });
        let mut received = Received::default();
        received.keep_unanswered(first, &p).unwrap();
        // Room for twice what arrived, not for all the header announced.
        assert_eq!(received.capacity(), 2 * first.len());
        // Small arguments are not big requests.
        let mut small = cmd(&["SET", "k", &"s".repeat(1000)]);
        small.truncate(40);
        assert_eq!(run(&mut kv, &small).1, Progress::answered(0));
        let mut out = Vec::new();
        let mut at = first.len();
        while at < request.len() {
            let n = received.read_limit().unwrap().min(40_000);
            received.try_extend(&request[at..at + n]).unwrap();
            at += n;
            if at == request.len() {
                assert_eq!(received.capacity(), request.len(), "grown to exactly the request");
            }
            p = kv.handle_received(&mut c, &received, &mut out);
            received.answered(&p).unwrap();
        }
        assert_eq!((out.as_slice(), p), (&b"+OK\r\n"[..], Progress::answered(request.len())));
        assert_eq!(received.read_limit(), None);
        // Kept: the store holds the buffer, the connection has a new (empty) one.
        assert_eq!(received.capacity(), 0);
        assert_eq!(reply(&mut kv, &["GET", "big"]), alloc::format!("$100000\r\n{value}\r\n"));
        assert_eq!(reply(&mut kv, &["APPEND", "big", "!"]), ":100001\r\n");
        assert_eq!(reply(&mut kv, &["STRLEN", "big"]), ":100001\r\n");
        // A big value among other requests is copied: keeping it would keep them.
        let mut batch = cmd(&["SET", "k2", &"w".repeat(40_000)]);
        for _ in 0..30 {
            batch.extend_from_slice(&cmd(&["SET", "pad", &"p".repeat(2000)]));
        }
        let mut received = Received::default();
        received.try_extend(&batch).unwrap();
        let p = kv.handle_received(&mut c, &received, &mut Vec::new());
        received.answered(&p).unwrap();
        assert!(received.capacity() >= batch.len());
        // Overwritten by a small value, then a big one again; queued in MULTI (copied).
        assert_eq!(reply(&mut kv, &["SET", "big", "small"]), "+OK\r\n");
        let mut received = Received::default();
        received.try_extend(&request).unwrap();
        kv.handle_received(&mut c, &received, &mut Vec::new());
        session(&mut kv, &mut c, &["MULTI"]);
        let queued = cmd(&["SET", "q", &value]);
        let mut in_multi = Received::default();
        in_multi.try_extend(&queued).unwrap();
        let mut out = Vec::new();
        kv.handle_received(&mut c, &in_multi, &mut out);
        assert_eq!(out, b"+QUEUED\r\n");
        in_multi.answered(&Progress::answered(queued.len())).unwrap();
        assert!(in_multi.capacity() >= queued.len(), "a queued command holds its own copy");
        assert_eq!(session(&mut kv, &mut c, &["EXEC"]), "*1\r\n+OK\r\n");
        assert_eq!(reply(&mut kv, &["STRLEN", "q"]), ":100000\r\n");
        drop(received);
        assert_eq!(reply(&mut kv, &["GET", "big"]), alloc::format!("$100000\r\n{value}\r\n"));
    }

    #[test]
    fn many_arguments_spill_past_the_inline_ones() {
        let mut kv = Kv::new();
        let keys: Vec<String> = (0..30).map(|i| alloc::format!("k{i}")).collect();
        let mut mset = alloc::vec!["MSET"];
        keys.iter().for_each(|k| mset.extend([k.as_str(), k.as_str()]));
        assert_eq!(reply(&mut kv, &mset), "+OK\r\n");
        let mut mget = alloc::vec!["MGET"];
        mget.extend(keys.iter().map(String::as_str));
        let expect: String = keys.iter().map(|k| alloc::format!("${}\r\n{k}\r\n", k.len())).collect();
        assert_eq!(reply(&mut kv, &mget), alloc::format!("*30\r\n{expect}"));
        let inline = alloc::format!("EXISTS {} nope\r\n", keys.join(" "));
        assert_eq!(run(&mut kv, inline.as_bytes()).0, ":30\r\n");
    }

    #[test]
    fn binary_safe_values() {
        let mut kv = Kv::new();
        let mut input = cmd(&["SET", "bin"]);
        input[1] = b'3';
        input.extend_from_slice(b"$4\r\n\r\n\0\xff\r\n");
        let (out, p) = run(&mut kv, &input);
        assert_eq!((out.as_str(), p.consumed), ("+OK\r\n", input.len()));
        let mut out = Vec::new();
        kv.handle(&mut KvConn::default(), &cmd(&["GET", "bin"]), &mut out);
        assert_eq!(out, b"$4\r\n\r\n\0\xff\r\n");
    }

    #[test]
    fn incr_follows_redis() {
        let mut kv = Kv::new();
        assert_eq!(reply(&mut kv, &["INCR", "n"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["INCR", "n"]), ":2\r\n");
        assert_eq!(reply(&mut kv, &["GET", "n"]), "$1\r\n2\r\n");
        reply(&mut kv, &["SET", "n", "-5"]);
        assert_eq!(reply(&mut kv, &["INCR", "n"]), ":-4\r\n");
        reply(&mut kv, &["SET", "n", "9223372036854775807"]);
        assert_eq!(reply(&mut kv, &["INCR", "n"]), "-ERR increment or decrement would overflow\r\n");
        for bad in ["abc", "", " 1", "01", "+1", "1.5", "-0", "99999999999999999999"] {
            reply(&mut kv, &["SET", "n", bad]);
            assert_eq!(reply(&mut kv, &["INCR", "n"]), "-ERR value is not an integer or out of range\r\n", "{bad:?}");
        }
    }

    #[test]
    fn ping_echo_and_probes() {
        let mut kv = Kv::new();
        assert_eq!(reply(&mut kv, &["PING"]), "+PONG\r\n");
        assert_eq!(reply(&mut kv, &["PING", "hi"]), "$2\r\nhi\r\n");
        assert_eq!(reply(&mut kv, &["ECHO", "x y"]), "$3\r\nx y\r\n");
        assert_eq!(reply(&mut kv, &["CONFIG", "GET", "save"]), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
        assert_eq!(reply(&mut kv, &["SELECT", "0"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["SELECT", "1"]), "-ERR DB index is out of range\r\n");
    }

    #[test]
    fn errors_keep_the_connection() {
        let mut kv = Kv::new();
        assert_eq!(reply(&mut kv, &["GET"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(reply(&mut kv, &["get", "a", "b"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(reply(&mut kv, &["SET", "a", "b", "EX"]), "-ERR syntax error\r\n");
        assert_eq!(reply(&mut kv, &["SET", "a", "b", "NX", "XX"]), "-ERR syntax error\r\n");
        assert_eq!(reply(&mut kv, &["SET", "a", "b", "EX", "0"]), "-ERR invalid expire time in 'set' command\r\n");
        assert_eq!(reply(&mut kv, &["SET", "a", "b", "EX", "x"]), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            reply(&mut kv, &["NOSUCH", "x"]),
            "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
        );
        assert_eq!(reply(&mut kv, &["INCR"]), "-ERR wrong number of arguments for 'incr' command\r\n");
    }

    #[test]
    fn inline_commands() {
        let mut kv = Kv::new();
        let (out, p) = run(&mut kv, b"PING\r\nSET a  1\nGET a\r\n\r\nINCR a\r\n");
        assert_eq!(out, "+PONG\r\n+OK\r\n$1\r\n1\r\n:2\r\n");
        assert_eq!(p, Progress::answered(32));
        let (out, p) = run(&mut kv, b"PING");
        assert_eq!((out.as_str(), p.consumed), ("", 0));
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_partials_wait() {
        let mut kv = Kv::new();
        let mut input = Vec::new();
        for i in 0..100 {
            input.extend_from_slice(&cmd(&["SET", &alloc::format!("k{i}"), &alloc::format!("v{i}")]));
            input.extend_from_slice(&cmd(&["GET", &alloc::format!("k{i}")]));
        }
        let whole = input.len();
        let tail = cmd(&["GET", "k7"]);
        input.extend_from_slice(&tail[..tail.len() - 3]);
        let (out, p) = run(&mut kv, &input);
        assert_eq!(p, Progress::answered(whole));
        let mut expect = String::new();
        for i in 0..100 {
            let v = alloc::format!("v{i}");
            expect.push_str(&alloc::format!("+OK\r\n${}\r\n{v}\r\n", v.len()));
        }
        assert_eq!(out, expect);
        // Every split point of one request: incomplete until the last byte.
        let one = cmd(&["SET", "key", "value"]);
        for cut in 0..one.len() {
            let (out, p) = run(&mut kv, &one[..cut]);
            assert_eq!((out.as_str(), p.consumed), ("", 0), "cut at {cut}");
        }
    }

    #[test]
    fn protocol_errors_close() {
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n+PING\r\n",
            b"*1\r\n$4\r\nPINGxx",
            b"*1\r\n$-1\r\n",
            b"*99999\r\n",
            b"*1\r\n$99999999\r\n",
            b"*1\n",
        ] {
            let mut kv = Kv::new();
            let (out, p) = run(&mut kv, bad);
            assert!(out.starts_with("-ERR Protocol error: "), "{bad:?}: {out}");
            assert_eq!(p, Progress::closing(bad.len()), "{bad:?}");
        }
        let mut kv = Kv::new();
        let (out, p) = run(&mut kv, &[b'x'; MAX_INLINE + 1]);
        assert!(out.starts_with("-ERR Protocol error: too big inline"), "{out}");
        assert!(p.close);
    }

    #[test]
    fn quit_closes_after_the_reply() {
        let mut kv = Kv::new();
        let mut input = cmd(&["QUIT"]);
        let n = input.len();
        input.extend_from_slice(&cmd(&["PING"]));
        let (out, p) = run(&mut kv, &input);
        assert_eq!(out, "+OK\r\n");
        assert_eq!(p, Progress::closing(n));
    }

    static NOW_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1_000_000);
    fn fake_clock() -> u64 {
        NOW_MS.load(core::sync::atomic::Ordering::Relaxed)
    }
    fn advance(ms: u64) {
        NOW_MS.fetch_add(ms, core::sync::atomic::Ordering::Relaxed);
    }

    /// Runs commands one by one on one connection; returns the replies.
    fn session(kv: &mut Kv, conn: &mut KvConn, args: &[&str]) -> String {
        let input = cmd(args);
        let mut out = Vec::new();
        let p = kv.handle(conn, &input, &mut out);
        assert_eq!(p.consumed, input.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn set_options_and_expiry() {
        let mut kv = Kv::with_config(KvConfig { clock_ms: fake_clock, ..KvConfig::default() });
        assert_eq!(reply(&mut kv, &["SET", "k", "v", "NX"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["SET", "k", "w", "NX"]), "$-1\r\n");
        assert_eq!(reply(&mut kv, &["SET", "k", "w", "XX", "GET"]), "$1\r\nv\r\n");
        assert_eq!(reply(&mut kv, &["SET", "nokey", "w", "XX"]), "$-1\r\n");
        assert_eq!(reply(&mut kv, &["SET", "k", "x", "GET"]), "$1\r\nw\r\n");
        assert_eq!(reply(&mut kv, &["TTL", "k"]), ":-1\r\n");
        assert_eq!(reply(&mut kv, &["TTL", "missing"]), ":-2\r\n");
        assert_eq!(reply(&mut kv, &["SET", "e", "1", "EX", "10"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["TTL", "e"]), ":10\r\n");
        assert_eq!(reply(&mut kv, &["PTTL", "e"]), ":10000\r\n");
        assert_eq!(reply(&mut kv, &["INCR", "e"]), ":2\r\n"); // keeps its TTL
        assert_eq!(reply(&mut kv, &["PTTL", "e"]), ":10000\r\n");
        assert_eq!(reply(&mut kv, &["SET", "e", "3", "KEEPTTL"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["PTTL", "e"]), ":10000\r\n");
        assert_eq!(reply(&mut kv, &["SET", "p", "1", "PX", "1500"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["EXPIRE", "k", "100"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["EXPIRE", "k", "200", "NX"]), ":0\r\n");
        assert_eq!(reply(&mut kv, &["EXPIRE", "k", "50", "GT"]), ":0\r\n");
        assert_eq!(reply(&mut kv, &["EXPIRE", "k", "50", "LT"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["PEXPIRE", "missing", "50"]), ":0\r\n");
        assert_eq!(
            reply(&mut kv, &["INFO", "keyspace"]),
            "$44\r\n# Keyspace\r\ndb0:keys=3,expires=3,avg_ttl=0\r\n\r\n"
        );
        assert_eq!(reply(&mut kv, &["PERSIST", "k"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["PERSIST", "k"]), ":0\r\n");
        advance(2000);
        assert_eq!(reply(&mut kv, &["GET", "p"]), "$-1\r\n");
        assert_eq!(reply(&mut kv, &["EXISTS", "p", "e", "k"]), ":2\r\n");
        assert_eq!(reply(&mut kv, &["TTL", "e"]), ":8\r\n");
        advance(8000);
        assert_eq!(reply(&mut kv, &["GET", "e"]), "$-1\r\n");
        assert_eq!(reply(&mut kv, &["DBSIZE"]), ":1\r\n");
        // A past deadline deletes; the active sweep removes keys nobody reads.
        assert_eq!(reply(&mut kv, &["SET", "gone", "1"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["EXPIRE", "gone", "-1"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["EXISTS", "gone"]), ":0\r\n");
        for i in 0..100 {
            reply(&mut kv, &["SET", &alloc::format!("t{i}"), "x", "PX", "10"]);
        }
        advance(20);
        for _ in 0..10 {
            reply(&mut kv, &["PING"]);
        }
        assert_eq!(reply(&mut kv, &["DBSIZE"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["SETEX", "s", "5", "v"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["TTL", "s"]), ":5\r\n");
        assert_eq!(reply(&mut kv, &["SETEX", "s", "0", "v"]), "-ERR invalid expire time in 'setex' command\r\n");
    }

    #[test]
    fn strings_counters_and_multi_keys() {
        let mut kv = Kv::new();
        assert_eq!(reply(&mut kv, &["INCRBY", "n", "10"]), ":10\r\n");
        assert_eq!(reply(&mut kv, &["DECRBY", "n", "3"]), ":7\r\n");
        assert_eq!(reply(&mut kv, &["DECR", "n"]), ":6\r\n");
        assert_eq!(reply(&mut kv, &["INCRBY", "n", "x"]), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(reply(&mut kv, &["DECRBY", "n", "-9223372036854775808"]), "-ERR decrement would overflow\r\n");
        assert_eq!(reply(&mut kv, &["APPEND", "s", "ab"]), ":2\r\n");
        assert_eq!(reply(&mut kv, &["APPEND", "s", "cd"]), ":4\r\n");
        assert_eq!(reply(&mut kv, &["STRLEN", "s"]), ":4\r\n");
        assert_eq!(reply(&mut kv, &["STRLEN", "none"]), ":0\r\n");
        assert_eq!(reply(&mut kv, &["MSET", "a", "1", "b", "2"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["MSET", "a", "1", "b"]), "-ERR wrong number of arguments for 'mset' command\r\n");
        assert_eq!(reply(&mut kv, &["MGET", "a", "x", "b"]), "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n");
        assert_eq!(reply(&mut kv, &["MSETNX", "a", "9", "c", "3"]), ":0\r\n");
        assert_eq!(reply(&mut kv, &["MSETNX", "c", "3", "d", "4"]), ":1\r\n");
        assert_eq!(reply(&mut kv, &["GETSET", "a", "new"]), "$1\r\n1\r\n");
        assert_eq!(reply(&mut kv, &["GETDEL", "a"]), "$3\r\nnew\r\n");
        assert_eq!(reply(&mut kv, &["GETDEL", "a"]), "$-1\r\n");
        assert_eq!(reply(&mut kv, &["TYPE", "b"]), "+string\r\n");
        assert_eq!(reply(&mut kv, &["TYPE", "a"]), "+none\r\n");
        assert_eq!(reply(&mut kv, &["KEYS", "[bc]"]), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(reply(&mut kv, &["UNLINK", "b", "c"]), ":2\r\n");
        assert_eq!(reply(&mut kv, &["FLUSHDB", "ASYNC"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["DBSIZE"]), ":0\r\n");
    }

    #[test]
    fn scan_visits_every_key_once_in_full_iterations() {
        let mut kv = Kv::new();
        let mut names = alloc::collections::BTreeSet::new();
        for i in 0..500 {
            // Many share a 7-byte prefix: the cursor must still move on.
            let k = alloc::format!("user:000{i:04}");
            reply(&mut kv, &["SET", &k, "v"]);
            names.insert(k);
        }
        reply(&mut kv, &["SET", "other", "v"]);
        let mut seen = alloc::collections::BTreeSet::new();
        let mut cursor = String::from("0");
        for _ in 0..1000 {
            let out = reply(&mut kv, &["SCAN", &cursor, "MATCH", "user:*", "COUNT", "7"]);
            let mut lines = out.split("\r\n");
            assert_eq!(lines.next(), Some("*2"));
            lines.next();
            cursor = lines.next().unwrap().into();
            let n: usize = lines.next().unwrap()[1..].parse().unwrap();
            for _ in 0..n {
                lines.next();
                seen.insert(String::from(lines.next().unwrap()));
            }
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(cursor, "0", "SCAN ended");
        assert_eq!(seen, names);
    }

    #[test]
    fn multi_exec_discard() {
        let mut kv = Kv::new();
        let mut c = KvConn::default();
        assert_eq!(session(&mut kv, &mut c, &["EXEC"]), "-ERR EXEC without MULTI\r\n");
        assert_eq!(session(&mut kv, &mut c, &["MULTI"]), "+OK\r\n");
        assert_eq!(session(&mut kv, &mut c, &["INCR", "n"]), "+QUEUED\r\n");
        assert_eq!(session(&mut kv, &mut c, &["INCRBY", "n", "5"]), "+QUEUED\r\n");
        assert_eq!(session(&mut kv, &mut c, &["GET", "n"]), "+QUEUED\r\n");
        assert_eq!(session(&mut kv, &mut c, &["MULTI"]), "-ERR MULTI calls can not be nested\r\n");
        // Another connection sees nothing until EXEC.
        assert_eq!(reply(&mut kv, &["GET", "n"]), "$-1\r\n");
        assert_eq!(session(&mut kv, &mut c, &["EXEC"]), "*3\r\n:1\r\n:6\r\n$1\r\n6\r\n");
        assert_eq!(session(&mut kv, &mut c, &["MULTI"]), "+OK\r\n");
        assert_eq!(session(&mut kv, &mut c, &["SET", "n", "0"]), "+QUEUED\r\n");
        assert_eq!(session(&mut kv, &mut c, &["DISCARD"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["GET", "n"]), "$1\r\n6\r\n");
        assert_eq!(session(&mut kv, &mut c, &["DISCARD"]), "-ERR DISCARD without MULTI\r\n");
        // A malformed EXEC ends the transaction (as redis: EXECABORT with the reason).
        session(&mut kv, &mut c, &["MULTI"]);
        assert_eq!(
            session(&mut kv, &mut c, &["EXEC", "x"]),
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"
        );
        assert_eq!(session(&mut kv, &mut c, &["DISCARD"]), "-ERR DISCARD without MULTI\r\n");
        // A command that cannot queue aborts the transaction; a runtime error does not.
        session(&mut kv, &mut c, &["MULTI"]);
        assert!(session(&mut kv, &mut c, &["NOPE"]).starts_with("-ERR unknown command 'NOPE'"));
        assert_eq!(session(&mut kv, &mut c, &["GET"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(
            session(&mut kv, &mut c, &["EXEC"]),
            "-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
        session(&mut kv, &mut c, &["MULTI"]);
        session(&mut kv, &mut c, &["SET", "s", "text"]);
        session(&mut kv, &mut c, &["INCR", "s"]);
        session(&mut kv, &mut c, &["INCR", "n"]);
        assert_eq!(
            session(&mut kv, &mut c, &["EXEC"]),
            "*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:7\r\n"
        );
    }

    #[test]
    fn handshakes_of_common_clients() {
        let mut kv = Kv::new();
        let mut c = KvConn::default();
        let hello = session(&mut kv, &mut c, &["HELLO", "2", "SETNAME", "app"]);
        assert!(hello.starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"), "{hello}");
        assert!(hello.contains("$5\r\nproto\r\n:2\r\n"), "{hello}");
        assert_eq!(session(&mut kv, &mut c, &["HELLO", "3"]), "-NOPROTO unsupported protocol version\r\n");
        assert_eq!(session(&mut kv, &mut c, &["CLIENT", "GETNAME"]), "$3\r\napp\r\n");
        assert_eq!(session(&mut kv, &mut c, &["CLIENT", "SETNAME", "worker-1"]), "+OK\r\n");
        assert_eq!(session(&mut kv, &mut c, &["CLIENT", "GETNAME"]), "$8\r\nworker-1\r\n");
        assert_eq!(session(&mut kv, &mut c, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]), "+OK\r\n");
        assert_eq!(session(&mut kv, &mut c, &["CLIENT", "SETINFO", "lib-ver", "5.0"]), "+OK\r\n");
        assert_eq!(session(&mut kv, &mut c, &["CLIENT", "ID"]), ":1\r\n");
        assert_eq!(session(&mut kv, &mut c, &["COMMAND", "DOCS"]), "*0\r\n");
        assert!(session(&mut kv, &mut c, &["COMMAND", "COUNT"]).starts_with(':'));
        assert_eq!(session(&mut kv, &mut c, &["SELECT", "0"]), "+OK\r\n");
        assert_eq!(
            session(&mut kv, &mut c, &["CONFIG", "GET", "appendonly"]),
            "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
        );
        assert!(session(&mut kv, &mut c, &["CONFIG", "GET", "maxmemory*"]).starts_with("*4\r\n"));
        let info = session(&mut kv, &mut c, &["INFO"]);
        for needle in ["# Server\r\nredis_version:", "# Memory\r\nused_memory:", "maxmemory:0\r\n", "# Keyspace\r\n"] {
            assert!(info.contains(needle), "{needle} in {info}");
        }
        assert_eq!(session(&mut kv, &mut c, &["UNWATCH"]), "+OK\r\n");
    }

    #[test]
    fn writes_past_maxmemory_get_oom_and_nothing_is_lost() {
        let mut kv = Kv::with_config(KvConfig { maxmemory: 4096, ..KvConfig::default() });
        for i in 0..10 {
            assert_eq!(reply(&mut kv, &["SET", &alloc::format!("k{i}"), &"x".repeat(100)]), "+OK\r\n");
        }
        let oom = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
        assert_eq!(reply(&mut kv, &["SET", "big", &"y".repeat(4000)]), oom);
        assert_eq!(reply(&mut kv, &["APPEND", "k0", &"y".repeat(4000)]), oom);
        // As redis: the write is refused when queued, and EXEC aborts.
        let mut c = KvConn::default();
        session(&mut kv, &mut c, &["MULTI"]);
        assert_eq!(session(&mut kv, &mut c, &["SET", "big", &"y".repeat(4000)]), oom);
        assert_eq!(session(&mut kv, &mut c, &["GET", "k1"]), "+QUEUED\r\n");
        let exec = session(&mut kv, &mut c, &["EXEC"]);
        assert_eq!(exec, "-EXECABORT Transaction discarded because of previous errors.\r\n");
        // Reads and deletes still work; deleting makes room again.
        assert_eq!(reply(&mut kv, &["GET", "k9"]), alloc::format!("$100\r\n{}\r\n", "x".repeat(100)));
        assert_eq!(reply(&mut kv, &["DBSIZE"]), ":10\r\n");
        assert_eq!(reply(&mut kv, &["DEL", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"]), ":10\r\n");
        assert_eq!(reply(&mut kv, &["SET", "big", &"y".repeat(3000)]), "+OK\r\n");
    }

    #[test]
    fn watch_aborts_exec_when_a_watched_key_changed() {
        let mut kv = Kv::with_config(KvConfig { clock_ms: fake_clock, ..KvConfig::default() });
        let (mut a, mut b) = (KvConn::default(), KvConn::default());
        reply(&mut kv, &["SET", "k", "1"]);
        // Unchanged: EXEC runs.
        assert_eq!(session(&mut kv, &mut a, &["WATCH", "k", "absent"]), "+OK\r\n");
        session(&mut kv, &mut a, &["MULTI"]);
        assert_eq!(session(&mut kv, &mut a, &["WATCH", "x"]), "-ERR WATCH inside MULTI is not allowed\r\n");
        session(&mut kv, &mut a, &["INCR", "k"]);
        assert_eq!(session(&mut kv, &mut a, &["EXEC"]), "*1\r\n:2\r\n");
        // Changed by another client (even to the same value): a null array, nothing ran.
        for change in [&["SET", "k", "2"][..], &["EXPIRE", "k", "100"], &["APPEND", "k", ""], &["DEL", "k"]] {
            reply(&mut kv, &["SET", "k", "2"]);
            session(&mut kv, &mut a, &["WATCH", "k"]);
            session(&mut kv, &mut b, change);
            session(&mut kv, &mut a, &["MULTI"]);
            session(&mut kv, &mut a, &["SET", "k", "mine"]);
            assert_eq!(session(&mut kv, &mut a, &["EXEC"]), "*-1\r\n", "{change:?}");
            assert_ne!(reply(&mut kv, &["GET", "k"]), "$4\r\nmine\r\n");
        }
        // A watched key that did not exist and was created; one that expired.
        session(&mut kv, &mut a, &["WATCH", "new"]);
        reply(&mut kv, &["SET", "new", "x"]);
        session(&mut kv, &mut a, &["MULTI"]);
        assert_eq!(session(&mut kv, &mut a, &["EXEC"]), "*-1\r\n");
        reply(&mut kv, &["SET", "t", "x", "PX", "10"]);
        session(&mut kv, &mut a, &["WATCH", "t"]);
        advance(20);
        session(&mut kv, &mut a, &["MULTI"]);
        assert_eq!(session(&mut kv, &mut a, &["EXEC"]), "*-1\r\n");
        // UNWATCH, EXEC and DISCARD forget the watched keys.
        session(&mut kv, &mut a, &["WATCH", "k"]);
        assert_eq!(session(&mut kv, &mut a, &["UNWATCH"]), "+OK\r\n");
        reply(&mut kv, &["SET", "k", "3"]);
        session(&mut kv, &mut a, &["MULTI"]);
        assert_eq!(session(&mut kv, &mut a, &["EXEC"]), "*0\r\n");
        session(&mut kv, &mut a, &["WATCH", "k"]);
        session(&mut kv, &mut a, &["MULTI"]);
        session(&mut kv, &mut a, &["DISCARD"]);
        reply(&mut kv, &["SET", "k", "4"]);
        session(&mut kv, &mut a, &["MULTI"]);
        assert_eq!(session(&mut kv, &mut a, &["EXEC"]), "*0\r\n");
        assert_eq!(session(&mut kv, &mut a, &["WATCH"]), "-ERR wrong number of arguments for 'watch' command\r\n");
    }

    /// A journal in memory with a size limit that compacts like the block log:
    /// the new log replaces the old one only at commit.
    #[derive(Debug)]
    struct Bounded {
        log: alloc::rc::Rc<core::cell::RefCell<Vec<Vec<u8>>>>,
        next: Option<Vec<Vec<u8>>>,
        limit: u64,
        compactions: alloc::rc::Rc<core::cell::Cell<u32>>,
    }

    fn framed(records: &[Vec<u8>]) -> u64 {
        records.iter().map(|r| r.len() as u64 + 24).sum()
    }

    impl Journal for Bounded {
        fn append(&mut self, record: &[u8]) -> Result<(), &'static str> {
            if !self.fits(record.len()) {
                return Err("full");
            }
            self.log.borrow_mut().push(record.to_vec());
            Ok(())
        }
        fn fits(&self, len: usize) -> bool {
            self.used() + len as u64 + 24 <= self.limit
        }
        fn used(&self) -> u64 {
            framed(&self.log.borrow())
        }
        fn limit(&self) -> u64 {
            self.limit
        }
        fn begin_rewrite(&mut self) -> Result<(), &'static str> {
            self.next = Some(Vec::new());
            Ok(())
        }
        fn rewrite(&mut self, record: &[u8]) -> Result<(), &'static str> {
            let next = self.next.as_mut().ok_or("no rewrite")?;
            if framed(next) + record.len() as u64 + 24 > self.limit {
                return Err("full");
            }
            next.push(record.to_vec());
            Ok(())
        }
        fn commit_rewrite(&mut self) -> Result<(), &'static str> {
            *self.log.borrow_mut() = self.next.take().ok_or("no rewrite")?;
            self.compactions.set(self.compactions.get() + 1);
            Ok(())
        }
        fn abandon_rewrite(&mut self) {
            self.next = None;
        }
    }

    fn replayed(records: &[Vec<u8>]) -> Kv {
        let mut copy = Kv::with_config(KvConfig { clock_ms: fake_clock, ..KvConfig::default() });
        for r in records {
            copy.replay(r).unwrap();
        }
        copy
    }

    #[test]
    fn the_log_is_compacted_and_a_full_log_refuses_writes() {
        let log = alloc::rc::Rc::new(core::cell::RefCell::new(Vec::new()));
        let compactions = alloc::rc::Rc::new(core::cell::Cell::new(0));
        let limit = 4 << 20;
        let journal = Bounded { log: log.clone(), next: None, limit, compactions: compactions.clone() };
        let mut kv = Kv::with_config(KvConfig { clock_ms: fake_clock, ..KvConfig::default() });
        kv.set_journal(alloc::boxed::Box::new(journal));
        // Overwriting a few keys grows the log, not the data: compacted past the floor.
        let value = "v".repeat(1000);
        for i in 0..5000 {
            assert_eq!(reply(&mut kv, &["SET", &alloc::format!("k{}", i % 10), &value]), "+OK\r\n");
        }
        assert!(compactions.get() >= 2, "{} compactions", compactions.get());
        assert!(framed(&log.borrow()) <= COMPACT_FLOOR + 2000, "{}", framed(&log.borrow()));
        // Expiry survives compaction as an absolute time; a long value is split and rejoined.
        reply(&mut kv, &["SET", "t", "x", "EX", "100"]);
        let long = "L".repeat(super::MAX_BULK - 10);
        reply(&mut kv, &["SET", "long", &long]);
        reply(&mut kv, &["APPEND", "long", &long]);
        reply(&mut kv, &["SET", "gone", "x", "PX", "5"]);
        advance(10);
        let before = compactions.get();
        kv.compact().unwrap();
        assert_eq!(compactions.get(), before + 1);
        advance(1000);
        let mut copy = replayed(&log.borrow());
        assert_eq!(reply(&mut copy, &["TTL", "t"]), ":99\r\n");
        assert_eq!(reply(&mut copy, &["STRLEN", "long"]), alloc::format!(":{}\r\n", 2 * long.len()));
        assert_eq!(reply(&mut copy, &["EXISTS", "gone"]), ":0\r\n");
        for i in 0..10 {
            let k = alloc::format!("k{i}");
            assert_eq!(reply(&mut copy, &["GET", &k]), reply(&mut kv, &["GET", &k]));
        }
        // Live data past what the log can hold: refused before anything changes.
        let big = "b".repeat(900_000);
        let full = "-MISCONF Errors writing to the durable log: no space left on the block device";
        let mut stored = 0;
        let refused = loop {
            let r = reply(&mut kv, &["SET", &alloc::format!("big{stored}"), &big]);
            if r != "+OK\r\n" {
                break r;
            }
            stored += 1;
            assert!(stored < 10);
        };
        assert!(refused.starts_with(full), "{refused}");
        // A refused write is not logged, and refusing again does not compact again.
        let (records, compacted) = (log.borrow().len(), compactions.get());
        assert!(reply(&mut kv, &["SET", "again", &big]).starts_with(full));
        assert_eq!((log.borrow().len(), compactions.get()), (records, compacted));
        assert_eq!(reply(&mut kv, &["EXISTS", &alloc::format!("big{stored}")]), ":0\r\n");
        let mut c = KvConn::default();
        session(&mut kv, &mut c, &["MULTI"]);
        session(&mut kv, &mut c, &["SET", "x", &big]);
        let exec = session(&mut kv, &mut c, &["EXEC"]);
        assert!(exec.starts_with("-EXECABORT Transaction discarded because of: MISCONF"), "{exec}");
        // Deleting still works (the compacted log holds the smaller key space) and frees room.
        assert_eq!(reply(&mut kv, &["DEL", "big0", "long"]), ":2\r\n");
        assert_eq!(reply(&mut kv, &["SET", "after", &big]), "+OK\r\n");
        let mut copy = replayed(&log.borrow());
        assert_eq!(reply(&mut copy, &["EXISTS", "big0", "long", "after", "big1"]), ":2\r\n");
        assert_eq!(reply(&mut copy, &["DBSIZE"]), reply(&mut kv, &["DBSIZE"]));
    }

    #[derive(Debug, Default)]
    struct Recorder(alloc::rc::Rc<core::cell::RefCell<Vec<Vec<u8>>>>);

    impl Journal for Recorder {
        fn append(&mut self, record: &[u8]) -> Result<(), &'static str> {
            self.0.borrow_mut().push(record.to_vec());
            Ok(())
        }
    }

    #[test]
    fn journal_replay_rebuilds_the_same_key_space() {
        let records = alloc::rc::Rc::new(core::cell::RefCell::new(Vec::new()));
        let config = KvConfig { clock_ms: fake_clock, maxmemory: 1 << 19, ..KvConfig::default() };
        let mut kv = Kv::with_config(config);
        kv.set_journal(alloc::boxed::Box::new(Recorder(records.clone())));
        let mut c = KvConn::default();
        for args in [
            &["SET", "a", "1"][..],
            &["GET", "a"],
            &["SET", "t", "x", "EX", "100"],
            &["INCRBY", "n", "7"],
            &["MULTI"],
            &["INCR", "n"],
            &["APPEND", "a", "23"],
            &["EXEC"],
            &["SET", "n", "x", "NX"],
            &["DEL", "gone"],
        ] {
            session(&mut kv, &mut c, args);
        }
        let big = "y".repeat(600_000);
        assert!(session(&mut kv, &mut c, &["SET", "big", &big]).starts_with("-OOM"));
        // One record per request that wrote (the transaction is one record);
        // GET, MULTI and the refused write are not in it.
        assert_eq!(records.borrow().len(), 6);
        advance(5000);
        let mut copy = Kv::with_config(config);
        for r in records.borrow().iter() {
            copy.replay(r).unwrap();
        }
        for key in ["a", "n", "t", "big"] {
            assert_eq!(reply(&mut copy, &["GET", key]), reply(&mut kv, &["GET", key]), "{key}");
        }
        // The expiry is absolute: the replayed copy has the original deadline.
        assert_eq!(reply(&mut copy, &["TTL", "t"]), ":95\r\n");
        assert_eq!(reply(&mut copy, &["GET", "a"]), "$3\r\n123\r\n");
        assert!(copy.replay(b"short").is_err());
    }
}
