//! An HTTP/1.1 server answering one small fixed page, with keep-alive and
//! pipelining: what `wrk` measures (the unikernel `http` guest and its native twin).
//!
//! `GET` or `HEAD` of `/` or `/index.html` gets `200` and [`PAGE`]; another path
//! `404`; another method `405`. HTTP/1.1 connections stay open unless the request
//! says `Connection: close`; HTTP/1.0 ones close unless it says `keep-alive`. A
//! request body announced by `Content-Length` is read and ignored; chunked bodies
//! get `501`, malformed or oversized heads (more than [`MAX_HEAD`] bytes) `400`,
//! and those two close the connection.

use alloc::vec::Vec;

use crate::{push_decimal, Progress, Protocol};

/// The page: small, like the seed's static-page measurement.
pub const PAGE: &[u8] =
    b"<!DOCTYPE html>\n<html><head><title>tender</title></head>\n<body><h1>Hello from a unikernel</h1></body></html>\n";

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// Largest request body accepted (and skipped).
pub const MAX_BODY: usize = 1 << 20;

/// The server: ready-made responses.
#[derive(Debug)]
pub struct Http {
    ok_keep: Vec<u8>,
    ok_close: Vec<u8>,
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

fn head(out: &mut Vec<u8>, status: &[u8], len: usize, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\nServer: tender-http\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ");
    push_decimal(out, len as i64);
    out.extend_from_slice(if close { b"\r\nConnection: close\r\n\r\n" } else { b"\r\n\r\n" });
}

/// A parsed request head.
struct Request<'a> {
    method: &'a [u8],
    path: &'a [u8],
    keep_alive: bool,
    body: usize,
    chunked: bool,
}

enum Parsed<'a> {
    Incomplete,
    Request(Request<'a>, usize),
    Bad,
}

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
        return if buf.len() > MAX_HEAD { Parsed::Bad } else { Parsed::Incomplete };
    };
    if end > MAX_HEAD {
        return Parsed::Bad;
    }
    let mut lines = buf[..end].split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(line) = lines.next() else { return Parsed::Bad };
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad;
    };
    let mut keep_alive = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Parsed::Bad,
    };
    if method.is_empty() || path.is_empty() {
        return Parsed::Bad;
    }
    let mut body = 0;
    let mut chunked = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else { return Parsed::Bad };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"connection") {
            if has_token(value, b"close") {
                keep_alive = false;
            } else if has_token(value, b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = (!value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit))
                .then(|| value.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')));
            match n {
                Some(n) if n <= MAX_BODY => body = n,
                _ => return Parsed::Bad,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
    }
    Parsed::Request(Request { method, path, keep_alive, body, chunked }, end + 4)
}

impl Http {
    /// The server with its responses prepared.
    pub fn new() -> Self {
        let mut ok_keep = Vec::new();
        head(&mut ok_keep, b"200 OK", PAGE.len(), false);
        ok_keep.extend_from_slice(PAGE);
        let mut ok_close = Vec::new();
        head(&mut ok_close, b"200 OK", PAGE.len(), true);
        ok_close.extend_from_slice(PAGE);
        Http { ok_keep, ok_close }
    }

    fn respond(&self, req: &Request<'_>, out: &mut Vec<u8>) {
        let close = !req.keep_alive;
        const NOT_FOUND: &[u8] = b"not found\n";
        const NOT_ALLOWED: &[u8] = b"method not allowed\n";
        let is_page = req.path == b"/" || req.path == b"/index.html";
        match req.method {
            b"GET" if is_page => out.extend_from_slice(if close { &self.ok_close } else { &self.ok_keep }),
            b"HEAD" if is_page => {
                let full = if close { &self.ok_close } else { &self.ok_keep };
                out.extend_from_slice(&full[..full.len() - PAGE.len()]);
            }
            b"GET" | b"HEAD" => {
                head(out, b"404 Not Found", NOT_FOUND.len(), close);
                if req.method == b"GET" {
                    out.extend_from_slice(NOT_FOUND);
                }
            }
            _ => {
                head(out, b"405 Method Not Allowed", NOT_ALLOWED.len(), close);
                out.extend_from_slice(NOT_ALLOWED);
            }
        }
    }
}

fn bad(out: &mut Vec<u8>, status: &[u8]) {
    head(out, status, 0, true);
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
                    return Progress { consumed, close: false };
                }
            }
            match parse(&input[consumed..]) {
                Parsed::Incomplete => return Progress { consumed, close: false },
                Parsed::Bad => {
                    bad(out, b"400 Bad Request");
                    return Progress { consumed: input.len(), close: true };
                }
                Parsed::Request(req, len) => {
                    consumed += len;
                    if req.chunked {
                        bad(out, b"501 Not Implemented");
                        return Progress { consumed: input.len(), close: true };
                    }
                    self.respond(&req, out);
                    if !req.keep_alive {
                        return Progress { consumed, close: true };
                    }
                    conn.skip = req.body;
                }
            }
        }
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
        assert_eq!(p, Progress { consumed: req.len(), close: false });
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
        let (_, p) = run(&mut http, &mut conn, b"GET / HTTP/1.0\r\n\r\n");
        assert!(p.close);
        let (out, p) = run(&mut http, &mut conn, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(!p.close);
        assert!(out.starts_with("HTTP/1.1 200 OK"));
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
        assert!(out.starts_with("HTTP/1.1 400") && p.close);
        let (out, p) =
            run(&mut Http::new(), &mut Conn::default(), b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 501") && p.close);
    }
}
