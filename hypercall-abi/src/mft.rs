//! The application manifest (`include/mft_abi.h`, docs/solo5-abi.md §2).
//!
//! Guests declare their devices in an MFT1 note; the tender validates it, attaches a
//! host resource to every entry and copies the edited manifest into guest memory, where
//! the guest looks devices up by name. Entry index = device handle.

use crate::elf::{NOTE_NAMESZ, NOTE_TYPE_MANIFEST};

/// The only manifest version.
pub const MFT_VERSION: u32 = 1;
/// Most entries a manifest may have, the reserved entry 0 included (so 63 devices).
pub const MFT_MAX_ENTRIES: usize = 64;
/// Size of an entry's name field, NUL included; names are at most 67 characters.
pub const MFT_NAME_SIZE: usize = 68;
/// Longest device name.
pub const MFT_NAME_MAX: usize = MFT_NAME_SIZE - 1;
/// Size of one entry.
pub const MFT_ENTRY_SIZE: usize = 104;
/// Size of the manifest header (version, entry count).
pub const MFT_HEADER_SIZE: usize = 8;

/// Byte offsets inside an entry, for code that edits raw manifest bytes.
pub mod entry_offset {
    /// NUL-terminated name.
    pub const NAME: usize = 0;
    /// Device type word.
    pub const TYPE: usize = 68;
    /// BLOCK_BASIC capacity (u64) / NET_BASIC MAC (6 bytes).
    pub const PROPS: usize = 72;
    /// BLOCK_BASIC block size (u16).
    pub const BLOCK_SIZE: usize = 80;
    /// NET_BASIC MTU (u16).
    pub const NET_MTU: usize = 78;
    /// NET_BASIC features the guest asks for (u16, this tender's extension, [`super::net_features`]).
    pub const NET_FEATURES_WANTED: usize = 80;
    /// NET_BASIC features the tender granted (u16; Solo5's tenders leave the file's 0).
    pub const NET_FEATURES_GRANTED: usize = 82;
    /// Host fd (i32) backing the device.
    pub const HOSTFD: usize = 88;
    /// Attached flag (u8).
    pub const ATTACHED: usize = 96;
}

/// NET_BASIC features: this tender's extension of the manifest (docs/solo5-abi.md §2.5).
///
/// A guest asks for features in the unused bytes of the NET_BASIC properties (u16 at
/// [`entry_offset::NET_FEATURES_WANTED`]); the tender writes the ones it granted to the
/// u16 after it. Solo5's tenders do not touch either, so a guest that asks reads 0 there
/// (the file's value) and keeps plain frames: the extension is opt-in on both sides.
pub mod net_features {
    /// Every frame read or written is preceded by a 10-byte `struct virtio_net_hdr`
    /// (little-endian, no `num_buffers`), and the host may send and accept TCP segments
    /// of up to 64 KiB (GSO/TSO, IPv4 and IPv6) with partial checksums (`IFF_VNET_HDR`
    /// and `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)` on the tap).
    pub const VNET_HDR: u16 = 1 << 0;
}

/// Size of `struct virtio_net_hdr` (no `num_buffers`): what precedes each frame with
/// [`net_features::VNET_HDR`].
pub const VIRTIO_NET_HDR_SIZE: usize = 10;

/// Device types (`enum mft_type`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MftType {
    /// A block device (file or host block device).
    BlockBasic = 1,
    /// A network device (tap).
    NetBasic = 2,
    /// Type of the reserved entry 0; no device uses it.
    ReservedFirst = 0x4000_0000,
}

impl MftType {
    /// Decodes a raw type word.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::BlockBasic),
            2 => Some(Self::NetBasic),
            0x4000_0000 => Some(Self::ReservedFirst),
            _ => None,
        }
    }

    /// Solo5's name of the type, as used in its messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BlockBasic => "BLOCK_BASIC",
            Self::NetBasic => "NET_BASIC",
            Self::ReservedFirst => "RESERVED_FIRST",
        }
    }
}

/// One manifest entry (`struct mft_entry`, 104 bytes).
///
/// The properties and backing unions are kept as bytes and read through accessors,
/// so neither side needs `unsafe` to use them.
#[repr(C, align(8))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MftEntry {
    /// NUL-terminated name; byte 67 is always 0.
    pub name: [u8; MFT_NAME_SIZE],
    /// [`MftType`] as a raw word.
    pub device_type: u32,
    /// Device properties (block: capacity u64, block size u16; net: MAC, MTU u16).
    pub props: [u8; 16],
    /// Backing: the host fd as an i32 in the first 4 bytes.
    pub backing: [u8; 8],
    /// 1 once the tender attached the device.
    pub attached: u8,
    /// Padding.
    pub pad: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<MftEntry>() == MFT_ENTRY_SIZE);

impl MftEntry {
    /// An unattached entry, as a guest declares it. `name` must be 1..=67 bytes of
    /// `[A-Za-z0-9]` (Solo5's elftool rule); violating it fails const evaluation.
    pub const fn new(name: &str, device_type: MftType) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() <= MFT_NAME_MAX, "device name must be 1..=67 bytes");
        let mut out = [0u8; MFT_NAME_SIZE];
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i].is_ascii_alphanumeric(), "device names are [A-Za-z0-9]");
            out[i] = bytes[i];
            i += 1;
        }
        Self { name: out, device_type: device_type as u32, ..Self::zeroed() }
    }

    /// The reserved entry 0 (empty name, type RESERVED_FIRST).
    pub const fn reserved_first() -> Self {
        Self { device_type: MftType::ReservedFirst as u32, ..Self::zeroed() }
    }

    /// All-zero entry.
    pub const fn zeroed() -> Self {
        Self { name: [0; MFT_NAME_SIZE], device_type: 0, props: [0; 16], backing: [0; 8], attached: 0, pad: [0; 7] }
    }

    /// The name up to its NUL (or all 68 bytes if a hostile manifest has none).
    pub fn name_bytes(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(MFT_NAME_SIZE);
        &self.name[..len]
    }

    /// Block capacity in bytes.
    pub fn block_capacity(&self) -> u64 {
        u64::from_le_bytes(le_array(&self.props, 0))
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u16 {
        u16::from_le_bytes(le_array(&self.props, 8))
    }

    /// Sets the BLOCK_BASIC properties.
    pub fn set_block(&mut self, capacity: u64, block_size: u16) {
        self.props = [0; 16];
        self.props[..8].copy_from_slice(&capacity.to_le_bytes());
        self.props[8..10].copy_from_slice(&block_size.to_le_bytes());
    }

    /// Net MAC address.
    pub fn net_mac(&self) -> [u8; 6] {
        le_array(&self.props, 0)
    }

    /// Net MTU (payload, no Ethernet header).
    pub fn net_mtu(&self) -> u16 {
        u16::from_le_bytes(le_array(&self.props, 6))
    }

    /// Net features the guest asked for ([`net_features`]).
    pub fn net_features_wanted(&self) -> u16 {
        u16::from_le_bytes(le_array(&self.props, 8))
    }

    /// Net features the tender granted ([`net_features`]).
    pub fn net_features_granted(&self) -> u16 {
        u16::from_le_bytes(le_array(&self.props, 10))
    }

    /// Whether this is a net device whose guest asked for `feature` ([`net_features`]).
    pub fn net_asks_for(&self, feature: u16) -> bool {
        self.device_type == MftType::NetBasic as u32 && self.net_features_wanted() & feature != 0
    }

    /// Asks for net `features` (a guest's declaration, const).
    pub const fn with_net_features_wanted(mut self, features: u16) -> Self {
        let b = features.to_le_bytes();
        self.props[8] = b[0];
        self.props[9] = b[1];
        self
    }

    /// Sets the NET_BASIC properties and the features granted; keeps the features wanted.
    pub fn set_net(&mut self, mac: [u8; 6], mtu: u16, granted: u16) {
        let wanted = self.net_features_wanted();
        self.props = [0; 16];
        self.props[..6].copy_from_slice(&mac);
        self.props[6..8].copy_from_slice(&mtu.to_le_bytes());
        self.props[8..10].copy_from_slice(&wanted.to_le_bytes());
        self.props[10..12].copy_from_slice(&granted.to_le_bytes());
    }

    /// Host fd backing the device.
    pub fn hostfd(&self) -> i32 {
        i32::from_le_bytes(le_array(&self.backing, 0))
    }

    /// Records the host fd and marks the entry attached.
    pub fn attach(&mut self, hostfd: i32) {
        self.backing = [0; 8];
        self.backing[..4].copy_from_slice(&hostfd.to_le_bytes());
        self.attached = 1;
    }
}

impl core::fmt::Debug for MftEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MftEntry")
            .field("name", &core::str::from_utf8(self.name_bytes()))
            .field("device_type", &self.device_type)
            .field("attached", &self.attached)
            .finish()
    }
}

fn le_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The manifest payload with `N` entries (`struct mft`), as guests declare it.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct Mft<const N: usize> {
    /// [`MFT_VERSION`].
    pub version: u32,
    /// `N`.
    pub entries: u32,
    /// Entry 0 is [`MftEntry::reserved_first`].
    pub e: [MftEntry; N],
}

/// A complete manifest note as it sits in a guest's `.note.solo5.manifest` section.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct MftNote<const N: usize> {
    /// `n_namesz` = 6.
    pub namesz: u32,
    /// `n_descsz` = 4 + 8 + 104 × N (the 4 padding bytes count).
    pub descsz: u32,
    /// `n_type` = [`NOTE_TYPE_MANIFEST`].
    pub note_type: u32,
    /// `Solo5\0` padded to 8.
    pub name: [u8; 8],
    /// Aligns the payload to 8 inside the note.
    pub pad: [u8; 4],
    /// The payload.
    pub mft: Mft<N>,
}

impl<const N: usize> MftNote<N> {
    /// Wraps `entries` (entry 0 must be the reserved one) in a note.
    pub const fn new(entries: [MftEntry; N]) -> Self {
        assert!(N >= 1 && N <= MFT_MAX_ENTRIES, "a manifest has 1..=64 entries (63 devices)");
        assert!(entries[0].device_type == MftType::ReservedFirst as u32, "entry 0 must be reserved");
        // cast: N <= MFT_MAX_ENTRIES (64) is asserted above, so N and the size
        // (at most MFT_NOTE_MAX_DESCSZ = 6668) fit in u32. TryFrom is not const.
        #[allow(clippy::cast_possible_truncation)]
        let (descsz, count) = ((4 + mft_size(N)) as u32, N as u32);
        Self {
            namesz: NOTE_NAMESZ,
            descsz,
            note_type: NOTE_TYPE_MANIFEST,
            name: *b"Solo5\0\0\0",
            pad: [0; 4],
            mft: Mft { version: MFT_VERSION, entries: count, e: entries },
        }
    }
}

/// Size in bytes of a manifest payload with `entries` entries.
pub const fn mft_size(entries: usize) -> usize {
    MFT_HEADER_SIZE + MFT_ENTRY_SIZE * entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{MFT_NOTE_MAX_DESCSZ, NOTE_DESC_OFFSET};
    use core::mem::{offset_of, size_of};

    #[test]
    fn entry_layout_matches_solo5() {
        assert_eq!(size_of::<MftEntry>(), 104);
        assert_eq!(core::mem::align_of::<MftEntry>(), 8);
        assert_eq!(offset_of!(MftEntry, name), entry_offset::NAME);
        assert_eq!(offset_of!(MftEntry, device_type), entry_offset::TYPE);
        assert_eq!(offset_of!(MftEntry, props), entry_offset::PROPS);
        assert_eq!(offset_of!(MftEntry, backing), entry_offset::HOSTFD);
        assert_eq!(offset_of!(MftEntry, attached), entry_offset::ATTACHED);
    }

    #[test]
    fn union_fields_land_at_solo5_offsets() {
        let mut e = MftEntry::new("storage", MftType::BlockBasic);
        e.set_block(0x1122_3344_5566_7788, 4096);
        e.attach(5);
        let raw: [u8; 104] = unsafe_free_bytes(&e);
        assert_eq!(&raw[72..80], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&raw[80..82], &4096u16.to_le_bytes());
        assert_eq!(&raw[88..92], &5i32.to_le_bytes());
        assert_eq!(raw[96], 1);
        assert_eq!(e.block_capacity(), 0x1122_3344_5566_7788);
        assert_eq!(e.block_size(), 4096);
        assert_eq!(e.hostfd(), 5);

        let mut n = MftEntry::new("service0", MftType::NetBasic).with_net_features_wanted(net_features::VNET_HDR);
        n.set_net([2, 0, 0, 0, 0, 1], 9000, net_features::VNET_HDR);
        let raw: [u8; 104] = unsafe_free_bytes(&n);
        assert_eq!(&raw[72..78], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&raw[78..80], &9000u16.to_le_bytes());
        assert_eq!(&raw[80..82], &1u16.to_le_bytes());
        assert_eq!(&raw[82..84], &1u16.to_le_bytes());
        assert_eq!(n.net_mtu(), 9000);
        assert_eq!((n.net_features_wanted(), n.net_features_granted()), (1, 1));
        assert!(n.net_asks_for(net_features::VNET_HDR));
        assert!(
            !MftEntry::new("storage", MftType::BlockBasic).with_net_features_wanted(1).net_asks_for(1),
            "not a net"
        );
        n.set_net([2, 0, 0, 0, 0, 1], 1500, 0);
        assert_eq!((n.net_features_wanted(), n.net_features_granted()), (1, 0), "wanted survives a grant of nothing");
        assert_eq!(n.name_bytes(), b"service0");
    }

    /// Serialises an entry field by field (tests only; mirrors the documented offsets).
    fn unsafe_free_bytes(e: &MftEntry) -> [u8; 104] {
        let mut raw = [0u8; 104];
        raw[..68].copy_from_slice(&e.name);
        raw[68..72].copy_from_slice(&e.device_type.to_le_bytes());
        raw[72..88].copy_from_slice(&e.props);
        raw[88..96].copy_from_slice(&e.backing);
        raw[96] = e.attached;
        raw
    }

    #[test]
    fn note_layout_matches_solo5() {
        type Note2 = MftNote<2>;
        assert_eq!(offset_of!(Note2, mft), NOTE_DESC_OFFSET + 4);
        assert_eq!(offset_of!(Mft<2>, e), MFT_HEADER_SIZE);
        let note = MftNote::new([MftEntry::reserved_first(), MftEntry::new("service0", MftType::NetBasic)]);
        // test_net.spt (two entries): n_descsz = 0xdc, 4 padding + 0xd8 payload.
        assert_eq!(note.descsz, 0xdc);
        assert_eq!(size_of::<Note2>(), 24 + 0xd8);
        // Hello (one entry): n_descsz = 0x74.
        assert_eq!(MftNote::new([MftEntry::reserved_first()]).descsz, 0x74);
        assert_eq!(4 + mft_size(MFT_MAX_ENTRIES), MFT_NOTE_MAX_DESCSZ as usize);
    }
}
