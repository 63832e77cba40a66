//! Declaring a guest's devices: the [`manifest!`](crate::manifest!) macro and the
//! const code behind it, which builds the MFT1 note at compile time (what
//! Solo5's `solo5-elftool gen-manifest` does from `manifest.json`).

use hypercall_abi::mft::{MFT_MAX_ENTRIES, MFT_NAME_MAX, MFT_NAME_SIZE, MftEntry, MftType};

/// One line of a `manifest!` declaration.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Decl {
    ty: MftType,
    name: &'static str,
    /// `None`: one device called `name`. `Some(n)`: `name0` … `name{n-1}`.
    count: Option<usize>,
    /// Net features asked for (`hypercall_abi::mft::net_features`).
    net_features: u16,
}

impl Decl {
    #[doc(hidden)]
    pub const fn new(ty: MftType, name: &'static str, count: Option<usize>, net_features: u16) -> Self {
        assert!(net_features == 0 || ty as u32 == MftType::NetBasic as u32, "only a net device takes `with`");
        Self { ty, name, count, net_features }
    }
}

/// Number of manifest entries for `decls`, the reserved entry 0 included.
#[doc(hidden)]
pub const fn entry_count(decls: &[Decl]) -> usize {
    let mut n = 1;
    let mut i = 0;
    while i < decls.len() {
        n += match decls[i].count {
            Some(c) => c,
            None => 1,
        };
        i += 1;
    }
    assert!(n <= MFT_MAX_ENTRIES, "a manifest holds at most 63 devices");
    n
}

/// The manifest entries for `decls`: the reserved entry, then each device in
/// declaration order (so the first declared device has handle 1).
#[doc(hidden)]
pub const fn entries<const N: usize>(decls: &[Decl]) -> [MftEntry; N] {
    assert!(N == entry_count(decls), "entry count mismatch");
    let mut out = [MftEntry::reserved_first(); N];
    let mut at = 1;
    let mut i = 0;
    while i < decls.len() {
        let d = decls[i];
        match d.count {
            None => {
                out[at] = MftEntry::new(d.name, d.ty).with_net_features_wanted(d.net_features);
                at += 1;
            }
            Some(count) => {
                let mut k = 0;
                while k < count {
                    out[at] = numbered(d.name, k, d.ty).with_net_features_wanted(d.net_features);
                    at += 1;
                    k += 1;
                }
            }
        }
        i += 1;
    }
    assert_unique_names(&out);
    out
}

/// Entry `NAME{k}` (decimal), checked like [`MftEntry::new`].
const fn numbered(prefix: &str, k: usize, ty: MftType) -> MftEntry {
    // Validates the prefix ([A-Za-z0-9], 1..=67 bytes) and copies it.
    let mut e = MftEntry::new(prefix, ty);
    let mut digits = [0u8; 20];
    let mut ndigits = 0;
    let mut v = k;
    loop {
        digits[ndigits] = b'0' + (v % 10) as u8;
        ndigits += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = prefix.len();
    assert!(len + ndigits <= MFT_NAME_MAX, "numbered device name longer than 67 bytes");
    let mut j = 0;
    while j < ndigits {
        e.name[len + j] = digits[ndigits - 1 - j];
        j += 1;
    }
    e
}

/// Two devices with one name could never both be attached (`--block:NAME=` picks one).
const fn assert_unique_names(entries: &[MftEntry]) {
    let mut a = 1;
    while a < entries.len() {
        let mut b = a + 1;
        while b < entries.len() {
            let mut same = true;
            let mut j = 0;
            while j < MFT_NAME_SIZE {
                if entries[a].name[j] != entries[b].name[j] {
                    same = false;
                }
                j += 1;
            }
            assert!(!same, "two manifest entries have the same name");
            b += 1;
        }
        a += 1;
    }
}

/// Declares the guest's devices and emits its two Solo5 notes.
///
/// Each line is `block NAME;`, `net NAME;`, or `block NAME[COUNT];` for COUNT
/// devices `NAME0` … `NAME{COUNT-1}`. Devices get handles 1, 2, … in order.
/// `net NAME with vnet_hdr;` asks this tender for frames with a virtio-net header
/// and TCP segmentation offload (docs/solo5-abi.md §2.5); the guest must check
/// [`NetInfo::vnet_hdr`](crate::NetInfo::vnet_hdr), as Solo5's tenders do not grant it.
/// Names are `[A-Za-z0-9]`, at most 67 bytes, unique; at most 63 devices. A
/// violation is a compile-time error.
///
/// ```ignore
/// solo5_rt::manifest! {
///     block storage;
///     net service0;
/// }
/// ```
///
/// Expands to two `#[used]` statics: the MFT1 note in `.note.solo5.manifest`
/// and the ABI1 note (target spt, ABI version 2) in `.note.solo5.abi`. The
/// linker script gives each its own `PT_NOTE`. Every guest needs exactly one
/// `manifest!`, even with no devices (`manifest! {}`): a tender rejects an
/// image without these notes.
#[macro_export]
macro_rules! manifest {
    ($($kind:ident $name:ident $([$count:expr])? $(with $feature:ident)? ;)*) => {
        const _: () = {
            const DECLS: &[$crate::manifest::Decl] = &[
                $($crate::manifest::Decl::new(
                    $crate::manifest!(@type $kind),
                    ::core::stringify!($name),
                    $crate::manifest!(@count $($count)?),
                    $crate::manifest!(@feature $($feature)?),
                ),)*
            ];
            const ENTRIES: usize = $crate::manifest::entry_count(DECLS);

            #[used]
            #[unsafe(link_section = ".note.solo5.manifest")]
            static SOLO5_MANIFEST: $crate::abi::mft::MftNote<ENTRIES> =
                $crate::abi::mft::MftNote::new($crate::manifest::entries::<ENTRIES>(DECLS));

            #[used]
            #[unsafe(link_section = ".note.solo5.abi")]
            static SOLO5_ABI: $crate::abi::elf::AbiNote = $crate::abi::elf::AbiNote::new($crate::ABI_TARGET);
        };
    };
    (@type block) => { $crate::abi::mft::MftType::BlockBasic };
    (@type net) => { $crate::abi::mft::MftType::NetBasic };
    (@type $other:ident) => {
        ::core::compile_error!(::core::concat!("unknown device type `", ::core::stringify!($other), "`: use `block` or `net`"))
    };
    (@feature) => { 0 };
    (@feature vnet_hdr) => { $crate::abi::mft::net_features::VNET_HDR };
    (@feature $other:ident) => {
        ::core::compile_error!(::core::concat!("unknown net feature `", ::core::stringify!($other), "`: use `vnet_hdr`"))
    };
    (@count) => { ::core::option::Option::None };
    (@count $count:expr) => { ::core::option::Option::Some($count) };
}
