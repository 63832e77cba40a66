//! The application manifest (MFT1 payload, docs/solo5-abi.md §2.2–2.3): decoded from
//! untrusted bytes field by field, validated, and encoded back for guest memory.

use core::fmt;

use hypercall_abi::mft::{
    entry_offset, mft_size, MftEntry, MftType, MFT_ENTRY_SIZE, MFT_MAX_ENTRIES, MFT_NAME_SIZE, MFT_VERSION,
};

/// A validated manifest: entry index = device handle; entry 0 is the reserved one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<MftEntry>,
}

/// Why a manifest payload was rejected. Every message starts with Solo5's
/// "Solo5 manifest is invalid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Shorter than the 8-byte header.
    #[error("Solo5 manifest is invalid: payload is {len} bytes, shorter than the 8-byte header")]
    TooShort {
        /// Payload size.
        len: usize,
    },
    /// `version` is not 1.
    #[error("Solo5 manifest is invalid: version {0}, expected {MFT_VERSION}")]
    Version(u32),
    /// Entry count outside 1..=64.
    #[error("Solo5 manifest is invalid: {0} entries, expected 1 to {MFT_MAX_ENTRIES} (the reserved entry and at most 63 devices)")]
    EntryCount(u32),
    /// Payload size is not `8 + 104 × entries`.
    #[error("Solo5 manifest is invalid: payload is {len} bytes, but {entries} entries need 8 + 104 x {entries} = {expected}")]
    Size {
        /// Payload size.
        len: usize,
        /// Declared entry count.
        entries: u32,
        /// Size the count implies.
        expected: usize,
    },
    /// Entry 0 does not have type RESERVED_FIRST.
    #[error("Solo5 manifest is invalid: entry 0 has type {0:#x}, expected RESERVED_FIRST (0x40000000)")]
    ReservedType(u32),
    /// Entry 0 has a name.
    #[error("Solo5 manifest is invalid: entry 0 (reserved) has name '{0}', expected an empty name")]
    ReservedName(String),
    /// Name byte 67 is not NUL.
    #[error("Solo5 manifest is invalid: entry {index}: name is not NUL-terminated (byte 67 is {byte:#x})")]
    NameNotTerminated {
        /// Entry index.
        index: usize,
        /// Byte 67.
        byte: u8,
    },
    /// The `attached` byte is set in the file.
    #[error("Solo5 manifest is invalid: entry {index} ('{name}') is already marked attached ({value})")]
    Attached {
        /// Entry index.
        index: usize,
        /// Entry name.
        name: String,
        /// The `attached` byte.
        value: u8,
    },
    /// A device entry with an unknown type.
    #[error("Solo5 manifest is invalid: entry {index} ('{name}') has unknown device type {raw:#x}")]
    UnknownType {
        /// Entry index.
        index: usize,
        /// Entry name.
        name: String,
        /// Raw type word.
        raw: u32,
    },
    /// A device entry with type RESERVED_FIRST.
    #[error(
        "Solo5 manifest is invalid: entry {index} ('{name}') has type RESERVED_FIRST, which only entry 0 may have"
    )]
    MisplacedReserved {
        /// Entry index.
        index: usize,
        /// Entry name.
        name: String,
    },
    /// A device entry with an empty name.
    #[error("Solo5 manifest is invalid: entry {0} has an empty name")]
    EmptyName(usize),
    /// Two devices with the same name.
    #[error("Solo5 manifest is invalid: entry {index}: name '{name}' is already used by entry {first}")]
    DuplicateName {
        /// Entry index.
        index: usize,
        /// The name.
        name: String,
        /// The earlier entry with that name.
        first: usize,
    },
}

/// Sizes of the entry fields, in order; their running sums are the `entry_offset`s.
const NAME_LEN: usize = MFT_NAME_SIZE;
const TYPE_LEN: usize = 4;
const PROPS_LEN: usize = 16;
const BACKING_LEN: usize = 8;
const PAD_LEN: usize = 7;
const _: () = {
    assert!(entry_offset::NAME == 0);
    assert!(entry_offset::TYPE == NAME_LEN);
    assert!(entry_offset::PROPS == entry_offset::TYPE + TYPE_LEN);
    assert!(entry_offset::HOSTFD == entry_offset::PROPS + PROPS_LEN);
    assert!(entry_offset::ATTACHED == entry_offset::HOSTFD + BACKING_LEN);
    assert!(entry_offset::ATTACHED + 1 + PAD_LEN == MFT_ENTRY_SIZE);
};

/// Splits `N` bytes off the front of `rest`.
fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

/// Decodes one 104-byte entry; `None` only if `raw` is too short.
fn decode_entry(mut raw: &[u8]) -> Option<MftEntry> {
    let r = &mut raw;
    Some(MftEntry {
        name: take::<NAME_LEN>(r)?,
        device_type: u32::from_le_bytes(take(r)?),
        props: take::<PROPS_LEN>(r)?,
        backing: take::<BACKING_LEN>(r)?,
        attached: u8::from_le_bytes(take(r)?),
        pad: take::<PAD_LEN>(r)?,
    })
}

fn encode_entry(e: &MftEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.name);
    out.extend_from_slice(&e.device_type.to_le_bytes());
    out.extend_from_slice(&e.props);
    out.extend_from_slice(&e.backing);
    out.push(e.attached);
    out.extend_from_slice(&e.pad);
}

/// A manifest entry's name for messages: the bytes up to the NUL, non-printable ones escaped.
#[derive(Debug, Clone, Copy)]
pub struct EntryName<'a>(&'a [u8]);

impl EntryName<'_> {
    /// The name as UTF-8, if it is.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.0).ok()
    }
}

impl fmt::Display for EntryName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.escape_ascii(), f)
    }
}

/// Displayable name of `entry`.
pub fn name(entry: &MftEntry) -> EntryName<'_> {
    EntryName(entry.name_bytes())
}

impl Manifest {
    /// Parses and validates a payload (note padding already removed).
    pub fn parse(payload: &[u8]) -> Result<Self, ManifestError> {
        let len = payload.len();
        let too_short = ManifestError::TooShort { len };
        let mut rest = payload;
        let version = take(&mut rest).map(u32::from_le_bytes).ok_or(too_short.clone())?;
        let count = take(&mut rest).map(u32::from_le_bytes).ok_or(too_short)?;
        if version != MFT_VERSION {
            return Err(ManifestError::Version(version));
        }
        let entries = usize::try_from(count)
            .ok()
            .filter(|n| (1..=MFT_MAX_ENTRIES).contains(n))
            .ok_or(ManifestError::EntryCount(count))?;
        let expected = mft_size(entries);
        if len != expected {
            return Err(ManifestError::Size { len, entries: count, expected });
        }
        let entries: Vec<MftEntry> = rest
            .chunks_exact(MFT_ENTRY_SIZE)
            .map(decode_entry)
            .collect::<Option<_>>()
            .ok_or(ManifestError::Size { len, entries: count, expected })?;
        validate(&entries)?;
        Ok(Self { entries })
    }

    /// All entries, reserved entry 0 included.
    pub fn entries(&self) -> &[MftEntry] {
        &self.entries
    }

    /// Mutable entries (the tender fills in properties and attaches fds on its copy).
    pub fn entries_mut(&mut self) -> &mut [MftEntry] {
        &mut self.entries
    }

    /// The declared devices with their handles (entry index), reserved entry 0 skipped.
    pub fn devices(&self) -> impl Iterator<Item = (usize, &MftEntry)> {
        self.entries.iter().enumerate().skip(1)
    }

    /// Index of the entry named `name` with type `kind`.
    pub fn find(&self, name: &str, kind: MftType) -> Option<usize> {
        self.entries.iter().position(|e| e.device_type == kind as u32 && e.name_bytes() == name.as_bytes())
    }

    /// Size of [`Manifest::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        mft_size(self.entries.len())
    }

    /// The payload bytes (header + entries) as they go into guest memory.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MFT_VERSION.to_le_bytes());
        // parse() capped the count at 64 and entries_mut() cannot change it.
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for e in &self.entries {
            encode_entry(e, &mut out);
        }
        out
    }
}

/// The entry rules of docs/solo5-abi.md §2.3, plus known types and unique, non-empty names.
fn validate(entries: &[MftEntry]) -> Result<(), ManifestError> {
    let display = |e: &MftEntry| name(e).to_string();
    if let Some(first) = entries.first() {
        if first.device_type != MftType::ReservedFirst as u32 {
            return Err(ManifestError::ReservedType(first.device_type));
        }
        if first.name[0] != 0 {
            return Err(ManifestError::ReservedName(display(first)));
        }
    }
    for (index, e) in entries.iter().enumerate() {
        let last = e.name[MFT_NAME_SIZE - 1];
        if last != 0 {
            return Err(ManifestError::NameNotTerminated { index, byte: last });
        }
        if e.attached != 0 {
            return Err(ManifestError::Attached { index, name: display(e), value: e.attached });
        }
        if index == 0 {
            continue;
        }
        match MftType::from_raw(e.device_type) {
            Some(MftType::BlockBasic | MftType::NetBasic) => {}
            Some(MftType::ReservedFirst) => {
                return Err(ManifestError::MisplacedReserved { index, name: display(e) });
            }
            None => return Err(ManifestError::UnknownType { index, name: display(e), raw: e.device_type }),
        }
        if e.name_bytes().is_empty() {
            return Err(ManifestError::EmptyName(index));
        }
        // At most 63 devices: a quadratic scan is cheaper than a set.
        if let Some(first) = entries[1..index].iter().position(|p| p.name_bytes() == e.name_bytes()) {
            return Err(ManifestError::DuplicateName { index, name: display(e), first: first + 1 });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw entry bytes, built at the documented offsets independently of `encode`.
    fn raw_entry(name: &[u8], device_type: u32) -> [u8; MFT_ENTRY_SIZE] {
        let mut raw = [0u8; MFT_ENTRY_SIZE];
        raw[..name.len()].copy_from_slice(name);
        raw[68..72].copy_from_slice(&device_type.to_le_bytes());
        raw
    }

    fn payload(version: u32, count: u32, entries: &[[u8; MFT_ENTRY_SIZE]]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&version.to_le_bytes());
        p.extend_from_slice(&count.to_le_bytes());
        for e in entries {
            p.extend_from_slice(e);
        }
        p
    }

    fn reserved() -> [u8; MFT_ENTRY_SIZE] {
        raw_entry(b"", 0x4000_0000)
    }

    fn valid() -> Vec<u8> {
        payload(1, 3, &[reserved(), raw_entry(b"storage", 1), raw_entry(b"service0", 2)])
    }

    #[test]
    fn parses_devices_in_handle_order() {
        let m = Manifest::parse(&valid()).unwrap();
        assert_eq!(m.entries().len(), 3);
        let devices: Vec<_> = m.devices().map(|(h, e)| (h, name(e).to_string(), e.device_type)).collect();
        assert_eq!(devices, [(1, "storage".to_string(), 1), (2, "service0".to_string(), 2)]);
        assert_eq!(m.find("service0", MftType::NetBasic), Some(2));
        assert_eq!(m.find("service0", MftType::BlockBasic), None);
    }

    #[test]
    fn hello_manifest_has_no_devices() {
        let m = Manifest::parse(&payload(1, 1, &[reserved()])).unwrap();
        assert_eq!(m.devices().count(), 0);
        assert_eq!(m.encode().len(), 8 + 104);
    }

    #[test]
    fn encode_round_trips_exactly() {
        let mut raw = valid();
        // Tender-owned fields a guest left non-zero survive the round trip too.
        raw[8 + 104 + 72] = 0xaa;
        raw[8 + 104 + 100] = 0x55;
        let m = Manifest::parse(&raw).unwrap();
        assert_eq!(m.encode(), raw);
        assert_eq!(m.encoded_len(), raw.len());
    }

    #[test]
    fn encode_puts_attached_fields_at_solo5_offsets() {
        let mut m = Manifest::parse(&valid()).unwrap();
        m.entries_mut()[1].set_block(1 << 22, 512);
        m.entries_mut()[1].attach(7);
        let bytes = m.encode();
        let e = &bytes[8 + 104..8 + 208];
        assert_eq!(e[72..80], (1u64 << 22).to_le_bytes());
        assert_eq!(e[80..82], 512u16.to_le_bytes());
        assert_eq!(e[88..92], 7i32.to_le_bytes());
        assert_eq!(e[96], 1);
    }

    #[test]
    fn header_rules() {
        assert_eq!(Manifest::parse(&[1, 0, 0]), Err(ManifestError::TooShort { len: 3 }));
        assert_eq!(Manifest::parse(&payload(2, 1, &[reserved()])), Err(ManifestError::Version(2)));
        assert_eq!(Manifest::parse(&payload(1, 0, &[])), Err(ManifestError::EntryCount(0)));
        let many = vec![reserved(); 65];
        assert_eq!(Manifest::parse(&payload(1, 65, &many)), Err(ManifestError::EntryCount(65)));
        assert_eq!(Manifest::parse(&payload(1, u32::MAX, &[reserved()])), Err(ManifestError::EntryCount(u32::MAX)));
        let mut short = payload(1, 1, &[reserved()]);
        short.pop();
        assert_eq!(Manifest::parse(&short), Err(ManifestError::Size { len: 111, entries: 1, expected: 112 }));
        assert_eq!(
            Manifest::parse(&payload(1, 1, &[reserved(), reserved()])),
            Err(ManifestError::Size { len: 216, entries: 1, expected: 112 })
        );
    }

    #[test]
    fn sixty_four_entries_is_the_limit() {
        let mut entries = vec![reserved()];
        let names: Vec<String> = (0..63).map(|i| format!("storage{i}")).collect();
        entries.extend(names.iter().map(|n| raw_entry(n.as_bytes(), 1)));
        let m = Manifest::parse(&payload(1, 64, &entries)).unwrap();
        assert_eq!(m.devices().last().map(|(h, e)| (h, name(e).to_string())), Some((63, "storage62".into())));
    }

    #[test]
    fn reserved_entry_rules() {
        let p = payload(1, 1, &[raw_entry(b"", 1)]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::ReservedType(1)));
        let p = payload(1, 1, &[raw_entry(b"x", 0x4000_0000)]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::ReservedName("x".into())));
    }

    #[test]
    fn entry_rules() {
        let mut unterminated = raw_entry(b"storage", 1);
        unterminated[67] = b'z';
        let p = payload(1, 2, &[reserved(), unterminated]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::NameNotTerminated { index: 1, byte: b'z' }));

        let mut attached = raw_entry(b"storage", 1);
        attached[96] = 1;
        let p = payload(1, 2, &[reserved(), attached]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::Attached { index: 1, name: "storage".into(), value: 1 }));
        let mut attached0 = reserved();
        attached0[96] = 2;
        assert!(matches!(Manifest::parse(&payload(1, 1, &[attached0])), Err(ManifestError::Attached { index: 0, .. })));

        let p = payload(1, 2, &[reserved(), raw_entry(b"weird", 3)]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::UnknownType { index: 1, name: "weird".into(), raw: 3 }));
        let p = payload(1, 2, &[reserved(), raw_entry(b"again", 0x4000_0000)]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::MisplacedReserved { index: 1, name: "again".into() }));
        let p = payload(1, 2, &[reserved(), raw_entry(b"", 2)]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::EmptyName(1)));
        // Unique across types too: the guest looks devices up by name.
        let p = payload(1, 4, &[reserved(), raw_entry(b"a", 1), raw_entry(b"dev", 1), raw_entry(b"dev", 2)]);
        assert_eq!(Manifest::parse(&p), Err(ManifestError::DuplicateName { index: 3, name: "dev".into(), first: 2 }));
    }

    #[test]
    fn messages_keep_solo5_phrase_and_escape_names() {
        let mut hostile = raw_entry(b"ev\x1bil\xff", 1);
        hostile[96] = 1;
        let err = Manifest::parse(&payload(1, 2, &[reserved(), hostile])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Solo5 manifest is invalid: entry 1 ('ev\\x1bil\\xff') is already marked attached (1)"
        );
    }
}
