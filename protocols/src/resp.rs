//! A small in-memory key-value server speaking redis's RESP2: enough for
//! `redis-cli` and `redis-benchmark -t set,get,ping` (solo5-style unikernel `kv`).
//!
//! Requests are RESP arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or
//! inline commands (`PING\r\n`, what `redis-benchmark`'s `PING_INLINE` sends).
//! Several requests in one read (pipelining) are answered in order. Commands:
//!
//! | command | reply |
//! |---|---|
//! | `PING [msg]` | `+PONG` or the message |
//! | `ECHO msg` | the message |
//! | `SET key value` | `+OK` (options such as `EX` are a syntax error) |
//! | `GET key` | the value or a null bulk |
//! | `DEL key…`, `EXISTS key…` | how many of the keys existed |
//! | `INCR key` | the new value (a missing key counts as 0) |
//! | `DBSIZE` | number of keys |
//! | `FLUSHDB`, `FLUSHALL` | `+OK`, all keys gone |
//! | `SELECT 0` | `+OK` (only database 0 exists) |
//! | `CONFIG GET …`, `COMMAND …` | an empty array (what `redis-benchmark`/`redis-cli` probe for) |
//! | `QUIT` | `+OK`, then the connection closes |
//!
//! Limits: a bulk string of at most [`MAX_BULK`] bytes, at most [`MAX_ARGS`]
//! arguments, inline commands of at most [`MAX_INLINE`] bytes. Beyond them, as
//! on malformed input, the reply is `-ERR Protocol error: …` and the connection
//! closes (as redis does).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::{push_decimal, Progress, Protocol};

/// Largest bulk string accepted (redis allows 512 MiB; a guest has less memory).
pub const MAX_BULK: usize = 1 << 20;
/// Most arguments in one command, the command name included.
pub const MAX_ARGS: usize = 64;
/// Longest inline command line.
pub const MAX_INLINE: usize = 64 * 1024;

/// The key space and the command interpreter.
#[derive(Debug, Default)]
pub struct Kv {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// One parsed command: up to [`MAX_ARGS`] arguments borrowed from the input.
struct Args<'a> {
    argv: [&'a [u8]; MAX_ARGS],
    argc: usize,
}

impl<'a> Args<'a> {
    fn new() -> Self {
        Args { argv: [&[]; MAX_ARGS], argc: 0 }
    }
    fn push(&mut self, arg: &'a [u8]) -> Result<(), &'static str> {
        let slot = self.argv.get_mut(self.argc).ok_or("too many arguments")?;
        *slot = arg;
        self.argc += 1;
        Ok(())
    }
    fn as_slice(&self) -> &[&'a [u8]] {
        &self.argv[..self.argc]
    }
}

/// The outcome of parsing at the start of the input.
enum Parsed {
    /// Not a whole request yet.
    Incomplete,
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
    args.argc = 0;
    match buf.first() {
        None => Parsed::Incomplete,
        Some(b'*') => parse_multibulk(buf, args),
        Some(_) => parse_inline(buf, args),
    }
}

fn parse_multibulk<'a>(buf: &'a [u8], args: &mut Args<'a>) -> Parsed {
    let end = match line_end(buf, 1) {
        Ok(Some(end)) => end,
        Ok(None) if buf.len() <= 32 => return Parsed::Incomplete,
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
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::Error("expected '$'"),
        }
        let end = match line_end(buf, at + 1) {
            Ok(Some(end)) => end,
            Ok(None) if buf.len() - at <= 32 => return Parsed::Incomplete,
            _ => return Parsed::Error("invalid bulk length"),
        };
        let len = match parse_len(&buf[at + 1..end]) {
            Some(len) if len <= MAX_BULK => len,
            _ => return Parsed::Error("invalid bulk length"),
        };
        let start = end + 2;
        let stop = start + len;
        if buf.len() < stop + 2 {
            return Parsed::Incomplete;
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
        return if buf.len() > MAX_INLINE { Parsed::Error("too big inline request") } else { Parsed::Incomplete };
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
    out.push(b'$');
    push_decimal(out, s.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

const NULL_BULK: &[u8] = b"$-1\r\n";
const EMPTY_ARRAY: &[u8] = b"*0\r\n";

impl Kv {
    /// An empty key space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Runs one command, appending its reply; `true` if the connection should close.
    fn execute(&mut self, args: &[&[u8]], out: &mut Vec<u8>) -> bool {
        let Some((name, rest)) = args.split_first() else { return false };
        let mut upper = [0u8; 16];
        let cmd: &[u8] = if name.len() <= upper.len() {
            upper[..name.len()].copy_from_slice(name);
            upper[..name.len()].make_ascii_uppercase();
            &upper[..name.len()]
        } else {
            b""
        };
        let arity_ok = |min: usize, max: usize| (min..=max).contains(&rest.len());
        let wrong_arity = |out: &mut Vec<u8>| {
            let mut lower = [0u8; 16];
            lower[..cmd.len()].copy_from_slice(cmd);
            lower[..cmd.len()].make_ascii_lowercase();
            error(out, &[b"ERR wrong number of arguments for '", &lower[..cmd.len()], b"' command"]);
        };
        match cmd {
            b"GET" if arity_ok(1, 1) => match self.map.get(rest[0]) {
                Some(v) => bulk(out, v),
                None => out.extend_from_slice(NULL_BULK),
            },
            b"SET" if arity_ok(2, 2) => {
                match self.map.get_mut(rest[0]) {
                    // Reuse the allocation: redis-benchmark overwrites one key.
                    Some(v) => {
                        v.clear();
                        v.extend_from_slice(rest[1]);
                    }
                    None => {
                        self.map.insert(rest[0].to_vec(), rest[1].to_vec());
                    }
                }
                simple(out, b"OK");
            }
            b"SET" if rest.len() > 2 => error(out, &[b"ERR syntax error"]),
            b"PING" if arity_ok(0, 0) => simple(out, b"PONG"),
            b"PING" | b"ECHO" if arity_ok(1, 1) => bulk(out, rest[0]),
            b"DEL" if !rest.is_empty() => {
                let n = rest.iter().filter(|k| self.map.remove(**k).is_some()).count();
                integer(out, n as i64);
            }
            b"EXISTS" if !rest.is_empty() => {
                let n = rest.iter().filter(|k| self.map.contains_key(**k)).count();
                integer(out, n as i64);
            }
            b"INCR" if arity_ok(1, 1) => self.incr(rest[0], out),
            b"DBSIZE" if arity_ok(0, 0) => integer(out, self.map.len() as i64),
            b"FLUSHDB" | b"FLUSHALL" => {
                self.map.clear();
                simple(out, b"OK");
            }
            b"SELECT" if arity_ok(1, 1) => {
                if rest[0] == b"0" {
                    simple(out, b"OK");
                } else {
                    error(out, &[b"ERR DB index is out of range"]);
                }
            }
            b"CONFIG" | b"COMMAND" => out.extend_from_slice(EMPTY_ARRAY),
            b"QUIT" => {
                simple(out, b"OK");
                return true;
            }
            b"GET" | b"SET" | b"PING" | b"ECHO" | b"DEL" | b"EXISTS" | b"INCR" | b"DBSIZE" | b"SELECT" => {
                wrong_arity(out)
            }
            _ => {
                let shown = &name[..name.len().min(64)];
                error(out, &[b"ERR unknown command '", shown, b"'"]);
            }
        }
        false
    }

    fn incr(&mut self, key: &[u8], out: &mut Vec<u8>) {
        let current = match self.map.get(key) {
            None => 0,
            Some(v) => match parse_i64(v) {
                Some(n) => n,
                None => return error(out, &[b"ERR value is not an integer or out of range"]),
            },
        };
        let Some(next) = current.checked_add(1) else {
            return error(out, &[b"ERR increment or decrement would overflow"]);
        };
        let mut text = Vec::new();
        push_decimal(&mut text, next);
        self.map.insert(key.to_vec(), text);
        integer(out, next);
    }
}

impl Protocol for Kv {
    type Conn = ();

    fn handle(&mut self, _conn: &mut (), input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut consumed = 0;
        let mut args = Args::new();
        loop {
            match parse(&input[consumed..], &mut args) {
                Parsed::Incomplete => return Progress { consumed, close: false },
                Parsed::Error(why) => {
                    error(out, &[b"ERR Protocol error: ", why.as_bytes()]);
                    return Progress { consumed: input.len(), close: true };
                }
                Parsed::Command { len } => {
                    consumed += len;
                    if self.execute(args.as_slice(), out) {
                        return Progress { consumed, close: true };
                    }
                }
            }
        }
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
        let p = kv.handle(&mut (), input, &mut out);
        (String::from_utf8(out).unwrap(), p)
    }

    fn reply(kv: &mut Kv, args: &[&str]) -> String {
        let input = cmd(args);
        let (out, p) = run(kv, &input);
        assert_eq!(p, Progress { consumed: input.len(), close: false }, "{args:?}");
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
    fn binary_safe_values() {
        let mut kv = Kv::new();
        let mut input = cmd(&["SET", "bin"]);
        input[1] = b'3';
        input.extend_from_slice(b"$4\r\n\r\n\0\xff\r\n");
        let (out, p) = run(&mut kv, &input);
        assert_eq!((out.as_str(), p.consumed), ("+OK\r\n", input.len()));
        let mut out = Vec::new();
        kv.handle(&mut (), &cmd(&["GET", "bin"]), &mut out);
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
        assert_eq!(reply(&mut kv, &["CONFIG", "GET", "save"]), "*0\r\n");
        assert_eq!(reply(&mut kv, &["SELECT", "0"]), "+OK\r\n");
        assert_eq!(reply(&mut kv, &["SELECT", "1"]), "-ERR DB index is out of range\r\n");
    }

    #[test]
    fn errors_keep_the_connection() {
        let mut kv = Kv::new();
        assert_eq!(reply(&mut kv, &["GET"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(reply(&mut kv, &["get", "a", "b"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(reply(&mut kv, &["SET", "a", "b", "EX", "10"]), "-ERR syntax error\r\n");
        assert_eq!(reply(&mut kv, &["NOSUCH", "x"]), "-ERR unknown command 'NOSUCH'\r\n");
        assert_eq!(reply(&mut kv, &["INCR"]), "-ERR wrong number of arguments for 'incr' command\r\n");
    }

    #[test]
    fn inline_commands() {
        let mut kv = Kv::new();
        let (out, p) = run(&mut kv, b"PING\r\nSET a  1\nGET a\r\n\r\nINCR a\r\n");
        assert_eq!(out, "+PONG\r\n+OK\r\n$1\r\n1\r\n:2\r\n");
        assert_eq!(p, Progress { consumed: 32, close: false });
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
        assert_eq!(p, Progress { consumed: whole, close: false });
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
            assert_eq!(p, Progress { consumed: bad.len(), close: true }, "{bad:?}");
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
        assert_eq!(p, Progress { consumed: n, close: true });
    }
}
