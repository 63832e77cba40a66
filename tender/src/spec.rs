//! What one run is: the typed seam between every front end and the tender.
//!
//! `tender`'s command line ([`crate::cli::parse`]) produces a [`RunSpec`]; `tender-oci`
//! builds one directly from the OCI bundle, with taps it has already opened. The device
//! layer ([`crate::devices`]) and both backends take a `RunSpec`, never text. The rules a
//! spec must follow live here once: the CLI checks them with its own (Solo5-compatible)
//! messages while parsing, [`RunSpec::validate`] checks a spec however it was built.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use hypercall_abi::mft::MFT_NAME_MAX;
use hypercall_abi::CMDLINE_SIZE;

/// Default guest memory, as in Solo5.
pub const DEFAULT_MEM_MIB: u64 = 512;
/// Largest guest memory. spt maps the guest at low addresses of the tender's own address
/// space, below where Linux places the tender (PIE at 0x55.., mmaps at 0x7f..); 64 GiB
/// leaves a wide margin and is far beyond what a unikernel uses (hvt caps at 4 GiB).
pub const MAX_MEM_MIB: u64 = 64 * 1024;
/// Default block size.
pub const DEFAULT_BLOCK_SIZE: u16 = 512;

/// One run of a guest.
#[derive(Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The guest ELF.
    pub guest: PathBuf,
    /// Guest memory in bytes (a whole number of MiB, 1 MiB to [`MAX_MEM_MIB`]).
    pub mem_bytes: u64,
    /// Block devices by manifest name.
    pub blocks: BTreeMap<String, BlockSpec>,
    /// Net devices by manifest name.
    pub nets: BTreeMap<String, NetSpec>,
    /// Map guest memory executable (spt only; unsafe, for JITs).
    pub x_exec_heap: bool,
    /// hvt only (solo5-hvt-debug's `--dumpcore=DIR`): when the guest aborts (HALT with
    /// status 255), write an ELF core of it into this directory.
    pub dumpcore: Option<PathBuf>,
    /// The guest's command line: its words joined by single spaces (< 8192 bytes).
    pub cmdline: String,
    /// What `ps` shows for the guest's process on spt (`/proc/PID/cmdline`), as words;
    /// `None`: the tender's own arguments.
    pub title: Option<Vec<String>>,
}

/// A block device: a file or host block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    /// The backing file.
    pub path: PathBuf,
    /// Block size: a power of two, at least 512.
    pub block_size: u16,
}

/// A net device: a tap.
#[derive(Debug, PartialEq, Eq)]
pub struct NetSpec {
    /// Which tap.
    pub tap: TapSpec,
    /// The guest's MAC; random (locally administered) if `None`.
    pub mac: Option<[u8; 6]>,
}

/// Where a net device's tap comes from.
#[derive(Debug)]
pub enum TapSpec {
    /// An existing tap, opened by name (`--net:NAME=IFACE`).
    Named(String),
    /// A tap the front end already opened (tender-oci creates it in the container's
    /// network namespace, so it vanishes with the process that holds it).
    Open {
        /// The tap's file descriptor (`/dev/net/tun` after `TUNSETIFF`, non-blocking).
        fd: OwnedFd,
        /// Its interface name (for messages and the manifest).
        iface: String,
        /// Its MTU.
        mtu: u16,
        /// Opened with `IFF_VNET_HDR` and offloads ([`crate::devices::create_tap`]), for a
        /// guest that asks for them; the feature is granted only if it does.
        vnet_hdr: bool,
    },
}

impl PartialEq for TapSpec {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Named(a), Self::Named(b)) => a == b,
            (
                Self::Open { fd: a, iface: ai, mtu: am, vnet_hdr: av },
                Self::Open { fd: b, iface: bi, mtu: bm, vnet_hdr: bv },
            ) => a.as_raw_fd() == b.as_raw_fd() && ai == bi && am == bm && av == bv,
            _ => false,
        }
    }
}

impl Eq for TapSpec {}

impl TapSpec {
    /// The interface name.
    pub fn iface(&self) -> &str {
        match self {
            Self::Named(name) | Self::Open { iface: name, .. } => name,
        }
    }
}

/// A spec that breaks a rule. Front ends that parse text report these with their own
/// wording (the CLI's are Solo5's); this is for specs built in code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Memory out of range.
    #[error("guest memory of {0} bytes: give a whole number of MiB from 1 to {MAX_MEM_MIB}")]
    Memory(u64),
    /// Bad device name.
    #[error("invalid device name `{0}`: names are 1 to {MFT_NAME_MAX} characters of [A-Za-z0-9], as in the guest's manifest")]
    DeviceName(String),
    /// Bad block size.
    #[error("block device `{name}`: block size {size} is not a power of two of at least 512")]
    BlockSize {
        /// Device.
        name: String,
        /// Size given.
        size: u16,
    },
    /// Bad MAC.
    #[error("net device `{0}`: the MAC must be unicast and not all zero")]
    Mac(String),
    /// Command line too long.
    #[error("guest command line too long (max={max} characters, got {0})", max = CMDLINE_SIZE - 1)]
    CmdlineTooLong(usize),
}

/// Whether `name` can name a manifest device.
pub fn valid_device_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MFT_NAME_MAX && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `size` is a block size Solo5 accepts.
pub fn valid_block_size(size: u16) -> bool {
    size >= 512 && size.is_power_of_two()
}

/// Whether `mac` can be a guest NIC's address: a multicast MAC breaks ARP and the host
/// bridge, all-zero means "none" to Solo5.
pub fn valid_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 0 && *mac != [0; 6]
}

/// Whether `mem_bytes` is a memory size a spec may ask for.
pub fn valid_mem_bytes(mem_bytes: u64) -> bool {
    mem_bytes.is_multiple_of(1 << 20) && (1 << 20..=MAX_MEM_MIB << 20).contains(&mem_bytes)
}

/// Whether a command line of `len` bytes fits the guest's buffer (with its NUL).
pub fn cmdline_fits(len: usize) -> bool {
    len < CMDLINE_SIZE
}

impl RunSpec {
    /// A spec for `guest` with Solo5's defaults: 512 MiB, no devices, empty command line.
    pub fn new(guest: impl Into<PathBuf>) -> Self {
        Self {
            guest: guest.into(),
            mem_bytes: DEFAULT_MEM_MIB << 20,
            blocks: BTreeMap::new(),
            nets: BTreeMap::new(),
            x_exec_heap: false,
            dumpcore: None,
            cmdline: String::new(),
            title: None,
        }
    }

    /// Sets the command line from the guest's words (joined by single spaces).
    pub fn with_args<S: AsRef<str>>(mut self, words: &[S]) -> Self {
        self.cmdline = words.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ");
        self
    }

    /// Checks every rule of this module; the device layer checks names against the
    /// guest's manifest later.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !valid_mem_bytes(self.mem_bytes) {
            return Err(SpecError::Memory(self.mem_bytes));
        }
        for (name, block) in &self.blocks {
            if !valid_device_name(name) {
                return Err(SpecError::DeviceName(name.clone()));
            }
            if !valid_block_size(block.block_size) {
                return Err(SpecError::BlockSize { name: name.clone(), size: block.block_size });
            }
        }
        for (name, net) in &self.nets {
            if !valid_device_name(name) {
                return Err(SpecError::DeviceName(name.clone()));
            }
            if net.mac.is_some_and(|mac| !valid_mac(&mac)) {
                return Err(SpecError::Mac(name.clone()));
            }
        }
        if !cmdline_fits(self.cmdline.len()) {
            return Err(SpecError::CmdlineTooLong(self.cmdline.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_solo5s_and_valid() {
        let spec = RunSpec::new("/g.spt").with_args(&["a", "b"]);
        assert_eq!(spec.mem_bytes, 512 << 20);
        assert_eq!(spec.cmdline, "a b");
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn every_rule_is_checked() {
        let bad = |edit: &dyn Fn(&mut RunSpec)| {
            let mut spec = RunSpec::new("/g");
            edit(&mut spec);
            spec.validate().unwrap_err()
        };
        assert_eq!(bad(&|s| s.mem_bytes = 0), SpecError::Memory(0));
        assert_eq!(bad(&|s| s.mem_bytes = (2 << 20) + 1), SpecError::Memory((2 << 20) + 1));
        assert_eq!(bad(&|s| s.mem_bytes = (MAX_MEM_MIB + 1) << 20), SpecError::Memory((MAX_MEM_MIB + 1) << 20));
        let block = |size| BlockSpec { path: "/d".into(), block_size: size };
        assert!(matches!(
            bad(&|s| {
                s.blocks.insert("st-x".into(), block(512));
            }),
            SpecError::DeviceName(_)
        ));
        assert!(matches!(
            bad(&|s| {
                s.blocks.insert("st".into(), block(520));
            }),
            SpecError::BlockSize { .. }
        ));
        let net = |mac| NetSpec { tap: TapSpec::Named("tap0".into()), mac: Some(mac) };
        assert!(matches!(
            bad(&|s| {
                s.nets.insert("n".into(), net([1, 0, 0, 0, 0, 1]));
            }),
            SpecError::Mac(_)
        ));
        assert!(matches!(
            bad(&|s| {
                s.nets.insert("n".into(), net([0; 6]));
            }),
            SpecError::Mac(_)
        ));
        assert!(matches!(
            bad(&|s| {
                s.nets.insert(String::new(), net([2, 0, 0, 0, 0, 1]));
            }),
            SpecError::DeviceName(_)
        ));
        assert_eq!(bad(&|s| s.cmdline = "x".repeat(CMDLINE_SIZE)), SpecError::CmdlineTooLong(CMDLINE_SIZE));
    }
}
