//! The guest's IPv4 configuration, from its command line.
//!
//! Leading words, before the application's own arguments (the OCI runtime passes
//! the same form):
//!
//! ```text
//! --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [APP ARGS...]
//! ```
//!
//! e.g. `--ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1`. `--ipv4` is required; the
//! gateway is optional (without it only the local subnet is reachable). The two
//! may come in either order; the first word that is neither ends them.

use core::fmt;
use core::net::Ipv4Addr;

/// Address, prefix length and optional default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// The guest's address.
    pub addr: Ipv4Addr,
    /// Prefix length (0-32).
    pub prefix: u8,
    /// Default gateway, if any (must lie inside the subnet).
    pub gateway: Option<Ipv4Addr>,
}

/// A command line the configuration cannot be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// No `--ipv4=` word.
    MissingAddress,
    /// `--ipv4=` is not `A.B.C.D/N` with N ≤ 32.
    BadAddress(&'static str),
    /// `--ipv4-gateway=` is not `A.B.C.D`, or lies outside the subnet.
    BadGateway(&'static str),
    /// A word was given twice.
    Repeated(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingAddress => f.write_str("missing --ipv4=ADDR/PREFIX (e.g. --ipv4=10.0.0.2/24)"),
            Self::BadAddress(w) => write!(f, "{w}: expected --ipv4=A.B.C.D/PREFIX with PREFIX at most 32"),
            Self::BadGateway(w) => write!(f, "{w}: expected --ipv4-gateway=A.B.C.D inside the --ipv4 subnet"),
            Self::Repeated(w) => write!(f, "{w}: given twice"),
        }
    }
}

fn words(line: &'static [u8]) -> impl Iterator<Item = (&'static str, usize)> {
    // (word, offset just past it)
    let mut at = 0;
    core::iter::from_fn(move || {
        while line.get(at) == Some(&b' ') {
            at += 1;
        }
        if at >= line.len() {
            return None;
        }
        let start = at;
        while at < line.len() && line[at] != b' ' {
            at += 1;
        }
        Some((core::str::from_utf8(&line[start..at]).unwrap_or(""), at))
    })
}

impl NetConfig {
    /// Parses the leading `--ipv4…` words of `line`; returns the configuration
    /// and the rest of the line (the application's arguments).
    pub fn parse(line: &'static [u8]) -> Result<(Self, &'static [u8]), ConfigError> {
        let (mut addr, mut gateway, mut rest_at) = (None, None, 0);
        for (word, end) in words(line) {
            if let Some(v) = word.strip_prefix("--ipv4=") {
                if addr.is_some() {
                    return Err(ConfigError::Repeated(word));
                }
                let (a, p) = v.split_once('/').ok_or(ConfigError::BadAddress(word))?;
                let a: Ipv4Addr = a.parse().map_err(|_| ConfigError::BadAddress(word))?;
                let p: u8 = p.parse().ok().filter(|p| *p <= 32).ok_or(ConfigError::BadAddress(word))?;
                addr = Some((a, p));
            } else if let Some(v) = word.strip_prefix("--ipv4-gateway=") {
                if gateway.is_some() {
                    return Err(ConfigError::Repeated(word));
                }
                gateway = Some((v.parse::<Ipv4Addr>().map_err(|_| ConfigError::BadGateway(word))?, word));
            } else {
                break;
            }
            rest_at = end;
        }
        let (addr, prefix) = addr.ok_or(ConfigError::MissingAddress)?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let gateway = match gateway {
            None => None,
            Some((gw, _)) if u32::from(gw) & mask == u32::from(addr) & mask && gw != addr => Some(gw),
            Some((_, word)) => return Err(ConfigError::BadGateway(word)),
        };
        let rest = &line[rest_at..];
        let rest = &rest[rest.iter().position(|&b| b != b' ').unwrap_or(rest.len())..];
        Ok((NetConfig { addr, prefix, gateway }, rest))
    }
}

impl fmt::Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)?;
        match self.gateway {
            Some(gw) => write!(f, " via {gw}"),
            None => f.write_str(" (no gateway)"),
        }
    }
}
