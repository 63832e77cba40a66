//! An HTTP/1.1 server answering one small fixed page, with keep-alive and
//! pipelining: what `wrk` measures (the unikernel `http` guest and its native twin).
//!
//! `GET` or `HEAD` of `/` or `/index.html` gets `200` and [`PAGE`]; another path
//! `404`; another method `405`. Persistence as RFC 9112 §9.3: an HTTP/1.1
//! connection stays open unless the request says `Connection: close`; an
//! HTTP/1.0 one closes unless the request says `Connection: keep-alive`, and
//! then the response says `Connection: keep-alive` too (RFC 9112 §C.2.2); a
//! response on a connection about to close says `Connection: close`.
//! Pipelined requests are answered in order. A request body announced by
//! `Content-Length` is read and ignored. Errors close the connection after
//! their response: a malformed head `400`; a head over [`MAX_HEAD`] bytes
//! `431 Request Header Fields Too Large` (RFC 6585); a body over [`MAX_BODY`]
//! `413 Content Too Large` (RFC 9110 §15.5.14); a chunked body `501`; a request
//! not complete in time `408 Request Timeout` ([`Protocol::timed_out`]).

use alloc::vec::Vec;

use crate::{push_decimal, Progress, Protocol};

/// The page: small, like the seed's static-page measurement.
pub const PAGE: &[u8] =
    b"<!DOCTYPE html>\n<html><head><title>tender</title></head>\n<body><h1>Hello from a unikernel</h1></body></html>\n";

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// Largest request body accepted (and skipped).
pub const MAX_BODY: usize = 1 << 20;

/// The server: ready-made responses of the page (open, keep-alive, close).
#[derive(Debug)]
pub struct Http {
    ok: [Vec<u8>; 3],
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

/// Per connection: bytes of a request body still to skip.
#[derive(Debug, Default)]
pub struct Conn {
    skip: usize,
}

/// What a response says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    /// HTTP/1.1 default: open, nothing said.
    Open,
    /// HTTP/1.0 with `Connection: keep-alive`: open, and said so.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

fn head(out: &mut Vec<u8>, status: &[u8], len: usize, persist: Persist) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\nServer: tender-http\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ");
    push_decimal(out, len as i64);
    out.extend_from_slice(match persist {
        Persist::Open => b"\r\n\r\n",
        Persist::KeepAlive => b"\r\nConnection: keep-alive\r\n\r\n",
        Persist::Close => b"\r\nConnection: close\r\n\r\n",
    });
}

/// A parsed request head.
struct Request<'a> {
    method: &'a [u8],
    path: &'a [u8],
    persist: Persist,
    body: usize,
    chunked: bool,
}

enum Parsed<'a> {
    Incomplete,
    Request(Request<'a>, usize),
    /// Answer with this status and close.
    Bad(&'static [u8]),
}

const BAD_REQUEST: &[u8] = b"400 Bad Request";
const HEAD_TOO_LARGE: &[u8] = b"431 Request Header Fields Too Large";
const BODY_TOO_LARGE: &[u8] = b"413 Content Too Large";

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &s[start..end]
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn parse(buf: &[u8]) -> Parsed<'_> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD { Parsed::Bad(HEAD_TOO_LARGE) } else { Parsed::Incomplete };
    };
    if end > MAX_HEAD {
        return Parsed::Bad(HEAD_TOO_LARGE);
    }
    let mut lines = buf[..end].split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(line) = lines.next() else { return Parsed::Bad(BAD_REQUEST) };
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad(BAD_REQUEST);
    };
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Parsed::Bad(BAD_REQUEST),
    };
    if method.is_empty() || path.is_empty() {
        return Parsed::Bad(BAD_REQUEST);
    }
    let (mut close, mut keep_alive) = (false, false);
    let mut body = 0;
    let mut chunked = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else { return Parsed::Bad(BAD_REQUEST) };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Parsed::Bad(BAD_REQUEST); // RFC 9112 §5.1: no space before the colon
        }
        if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(value, b"close");
            keep_alive |= has_token(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = (!value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit))
                .then(|| value.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')));
            match n {
                Some(n) if n <= MAX_BODY => body = n,
                Some(_) => return Parsed::Bad(BODY_TOO_LARGE),
                None => return Parsed::Bad(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
    }
    let persist = match (close, http10, keep_alive) {
        (true, _, _) | (false, true, false) => Persist::Close,
        (false, true, true) => Persist::KeepAlive,
        (false, false, _) => Persist::Open,
    };
    Parsed::Request(Request { method, path, persist, body, chunked }, end + 4)
}

impl Http {
    /// The server with its responses prepared.
    pub fn new() -> Self {
        let ok = [Persist::Open, Persist::KeepAlive, Persist::Close].map(|persist| {
            let mut response = Vec::new();
            head(&mut response, b"200 OK", PAGE.len(), persist);
            response.extend_from_slice(PAGE);
            response
        });
        Http { ok }
    }

    fn respond(&self, req: &Request<'_>, out: &mut Vec<u8>) {
        const NOT_FOUND: &[u8] = b"not found\n";
        const NOT_ALLOWED: &[u8] = b"method not allowed\n";
        let is_page = req.path == b"/" || req.path == b"/index.html";
        let full = &self.ok[req.persist as usize];
        match req.method {
            b"GET" if is_page => out.extend_from_slice(full),
            b"HEAD" if is_page => out.extend_from_slice(&full[..full.len() - PAGE.len()]),
            b"GET" | b"HEAD" => {
                head(out, b"404 Not Found", NOT_FOUND.len(), req.persist);
                if req.method == b"GET" {
                    out.extend_from_slice(NOT_FOUND);
                }
            }
            _ => {
                head(out, b"405 Method Not Allowed", NOT_ALLOWED.len(), req.persist);
                out.extend_from_slice(NOT_ALLOWED);
            }
        }
    }
}

fn bad(out: &mut Vec<u8>, status: &[u8]) {
    head(out, status, 0, Persist::Close);
}

impl Protocol for Http {
    type Conn = Conn;

    fn handle(&mut self, conn: &mut Conn, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut consumed = 0;
        loop {
            if conn.skip > 0 {
                let n = conn.skip.min(input.len() - consumed);
                conn.skip -= n;
                consumed += n;
                if conn.skip > 0 {
                    return Progress::answered(consumed);
                }
            }
            match parse(&input[consumed..]) {
                Parsed::Incomplete => return Progress::answered(consumed),
                Parsed::Bad(status) => {
                    bad(out, status);
                    return Progress::closing(input.len());
                }
                Parsed::Request(req, len) => {
                    consumed += len;
                    if req.chunked {
                        bad(out, b"501 Not Implemented");
                        return Progress::closing(input.len());
                    }
                    self.respond(&req, out);
                    if req.persist == Persist::Close {
                        return Progress::closing(consumed);
                    }
                    conn.skip = req.body;
                }
            }
        }
    }

    fn timed_out(&mut self, _conn: &mut Conn, out: &mut Vec<u8>) {
        bad(out, b"408 Request Timeout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn run(http: &mut Http, conn: &mut Conn, input: &[u8]) -> (String, Progress) {
        let mut out = Vec::new();
        let p = http.handle(conn, input, &mut out);
        (String::from_utf8(out).unwrap(), p)
    }

    fn page_text() -> &'static str {
        core::str::from_utf8(PAGE).unwrap()
    }

    #[test]
    fn keep_alive_get_and_pipelining() {
        let mut http = Http::new();
        let mut conn = Conn::default();
        let req = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\n\r\n";
        let (out, p) = run(&mut http, &mut conn, req);
        assert_eq!(p, Progress::answered(req.len()));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains(&alloc::format!("\r\nContent-Length: {}\r\n", PAGE.len())), "{out}");
        assert!(!out.contains("Connection: close"));
        assert!(out.ends_with(page_text()));

        let three: Vec<u8> = req.iter().chain(req).chain(req).copied().collect();
        let (out3, p) = run(&mut http, &mut conn, &three);
        assert_eq!(p.consumed, three.len());
        assert_eq!(out3, alloc::format!("{out}{out}{out}"));
        for cut in 0..req.len() {
            let (out, p) = run(&mut http, &mut conn, &req[..cut]);
            assert_eq!((out.as_str(), p.consumed), ("", 0));
        }
    }

    #[test]
    fn connection_close_and_http10() {
        let mut http = Http::new();
        let mut conn = Conn::default();
        let (out, p) = run(&mut http, &mut conn, b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert!(p.close);
        assert_eq!(p.consumed, "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n".len());
        assert!(out.contains("Connection: close\r\n"));
        let (out, p) = run(&mut http, &mut conn, b"GET / HTTP/1.0\r\n\r\n");
        assert!(p.close);
        assert!(out.contains("Connection: close\r\n"));
        let (out, p) = run(&mut http, &mut conn, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(!p.close);
        assert!(out.starts_with("HTTP/1.1 200 OK"));
        assert!(out.contains("\r\nConnection: keep-alive\r\n"), "{out}");
        // Two 1.0 keep-alive requests pipelined, then one without: answered, then closed.
        let two = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nHEAD / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n";
        let (out, p) = run(&mut http, &mut conn, two);
        assert!(p.close);
        assert_eq!(p.consumed, two.len() - "GET / HTTP/1.0\r\n\r\n".len());
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
        // A 1.1 request never says keep-alive (it is the default); close and keep-alive: close wins.
        let (out, p) = run(&mut http, &mut conn, b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n");
        assert!(p.close && out.contains("Connection: close\r\n"));
        let (out, _) = run(&mut http, &mut conn, b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n");
        assert!(!out.contains("Connection:"), "{out}");
    }

    #[test]
    fn timeout_answers_408() {
        let mut out = Vec::new();
        Http::new().timed_out(&mut Conn::default(), &mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n") && out.contains("Connection: close"), "{out}");
    }

    #[test]
    fn head_404_405() {
        let mut http = Http::new();
        let mut conn = Conn::default();
        let (out, _) = run(&mut http, &mut conn, b"HEAD /index.html HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK") && out.ends_with("\r\n\r\n"), "{out}");
        let (out, p) = run(&mut http, &mut conn, b"GET /nope HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404 Not Found") && out.ends_with("not found\n"), "{out}");
        assert!(!p.close);
        let (out, _) = run(&mut http, &mut conn, b"DELETE / HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    }

    #[test]
    fn bodies_are_skipped_even_across_reads() {
        let mut http = Http::new();
        let mut conn = Conn::default();
        let (out, p) = run(&mut http, &mut conn, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
        assert!(out.starts_with("HTTP/1.1 405"));
        assert_eq!(p.consumed, 44);
        let (out, p) = run(&mut http, &mut conn, b"67890GET / HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert_eq!(p.consumed, 23);
    }

    #[test]
    fn malformed_requests_get_400_and_close() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b" / HTTP/1.1\r\n\r\n",
        ] {
            let mut conn = Conn::default();
            let (out, p) = run(&mut Http::new(), &mut conn, bad);
            assert!(out.starts_with("HTTP/1.1 400 Bad Request"), "{bad:?}: {out}");
            assert!(p.close);
        }
        let (out, p) = run(&mut Http::new(), &mut Conn::default(), &[b'a'; MAX_HEAD + 1]);
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n") && p.close, "{out}");
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend_from_slice(&[b'a'; MAX_HEAD]);
        long.extend_from_slice(b"\r\n\r\n");
        let (out, p) = run(&mut Http::new(), &mut Conn::default(), &long);
        assert!(out.starts_with("HTTP/1.1 431 ") && out.contains("Connection: close\r\n") && p.close, "{out}");
        let req = alloc::format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        let (out, p) = run(&mut Http::new(), &mut Conn::default(), req.as_bytes());
        assert!(out.starts_with("HTTP/1.1 413 Content Too Large\r\n") && p.close, "{out}");
        let (out, p) = run(&mut Http::new(), &mut Conn::default(), b"GET / HTTP/1.1\r\nHost : x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400 ") && p.close, "{out}");
        let (out, p) =
            run(&mut Http::new(), &mut Conn::default(), b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 501") && p.close);
    }
}
