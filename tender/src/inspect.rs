//! `tender inspect GUEST`: what the loader sees in a guest image.

use std::fmt::Write;

use hypercall_abi::mft::{net_features, MftType};

use crate::loader::GuestImage;

/// Human-readable description of `image`.
pub fn describe(image: &GuestImage) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "target:      {} (solo5-{})", image.target as u32, image.target.name());
    let _ = writeln!(out, "abi version: {}", image.abi_version);
    let _ = writeln!(out, "entry:       {:#x}", image.entry);
    let _ = writeln!(out, "kernel end:  {:#x}", image.kernel_end);
    let _ = writeln!(out, "segments:");
    for s in &image.segments {
        let perms = format!(
            "{}{}{}",
            if s.perms.read { 'r' } else { '-' },
            if s.perms.write { 'w' } else { '-' },
            if s.perms.exec { 'x' } else { '-' }
        );
        let _ = writeln!(
            out,
            "  phdr {:<2} {perms} {:#010x}..{:#010x}  filesz {:#x} memsz {:#x}",
            s.phdr_index, s.start, s.end, s.filesz, s.memsz
        );
    }
    let devices: Vec<_> = image.manifest.entries().iter().enumerate().skip(1).collect();
    let _ = writeln!(out, "devices:     {}", if devices.is_empty() { "none" } else { "" });
    for (handle, e) in devices {
        let kind = MftType::from_raw(e.device_type).map_or("?", MftType::name);
        let flag = if e.device_type == MftType::BlockBasic as u32 { "--block" } else { "--net" };
        let name = String::from_utf8_lossy(e.name_bytes());
        let asks = if e.net_asks_for(net_features::VNET_HDR) {
            " (asks for vnet_hdr: TCP offload, docs/solo5-abi.md §2.5)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {handle:<2} {name:<20} {kind:<12} attach with {flag}:{name}=...{asks}");
    }
    out
}
