//! Attaching host resources to the guest's manifest: block = file or block device,
//! net = tap (docs/solo5-abi.md §2.4). Shared by both backends.
//!
//! Every option must name a manifest device of its type and every declared device must
//! be attached; both are checked before anything is opened, so a bad command line opens
//! nothing. Opened files close on drop if a later step fails.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

use hypercall_abi::mft::{net_features, MftType, VIRTIO_NET_HDR_SIZE};

use crate::loader::Manifest;
use crate::spec::{RunSpec, TapSpec};

/// Linux `IFNAMSIZ`: interface names are shorter than this.
const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// Errors attaching devices. Each names the device and the fix.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An option names a device the guest does not declare (with that type).
    #[error("Resource not declared in manifest: '{name}' ({option} needs a {kind} device of that name; the guest declares: {declared})")]
    NotDeclared {
        /// The name given.
        name: String,
        /// `--block` or `--net`.
        option: &'static str,
        /// Expected type.
        kind: &'static str,
        /// What the manifest has.
        declared: String,
    },
    /// A declared device has no option attaching it.
    #[error("Device '{name}' of type {kind} declared but not attached: add {option}:{name}=... (all declared devices must be attached)")]
    NotAttached {
        /// Device name.
        name: String,
        /// Its type.
        kind: &'static str,
        /// The option that attaches it.
        option: &'static str,
    },
    /// Opening the block backing failed.
    #[error("could not open block device '{name}': {path}: {source}")]
    OpenBlock {
        /// Device name.
        name: String,
        /// Path given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The block backing is neither a regular file nor a block device.
    #[error("block device '{name}': {path} is not a regular file or block device")]
    NotBlockBacking {
        /// Device name.
        name: String,
        /// Path given.
        path: PathBuf,
    },
    /// Capacity is not a multiple of the block size.
    #[error("{name}: Backing storage size must be block aligned ({capacity} bytes is not a multiple of the {block_size}-byte block size)")]
    Unaligned {
        /// Device name.
        name: String,
        /// Size of the backing.
        capacity: u64,
        /// Block size.
        block_size: u16,
    },
    /// Capacity below one block.
    #[error("{name}: Backing storage must be at least 1 block ({block_size} bytes) in size, {path} has {capacity}")]
    TooSmall {
        /// Device name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Size of the backing.
        capacity: u64,
        /// Block size.
        block_size: u16,
    },
    /// Tap attach failed.
    #[error("could not attach interface: {iface}: {reason}")]
    Tap {
        /// Interface name.
        iface: String,
        /// What went wrong and how to fix it.
        reason: String,
    },
    /// Reading random bytes for a MAC failed.
    #[error("could not generate a MAC address for '{name}': {source}")]
    Random {
        /// Device name.
        name: String,
        /// Why.
        source: io::Error,
    },
}

/// An attached block device.
#[derive(Debug)]
pub struct AttachedBlock {
    /// Manifest index (the guest's handle).
    pub handle: usize,
    /// The open backing, read-write.
    pub file: File,
    /// Block size in bytes.
    pub block_size: u16,
    /// Capacity in bytes.
    pub capacity: u64,
}

/// An attached net device.
#[derive(Debug)]
pub struct AttachedNet {
    /// Manifest index (the guest's handle).
    pub handle: usize,
    /// The tap, non-blocking.
    pub tap: OwnedFd,
    /// Interface name.
    pub iface: String,
    /// Guest MAC.
    pub mac: [u8; 6],
    /// Interface MTU.
    pub mtu: u16,
}

/// All devices of a run, and the manifest edited to describe them.
#[derive(Debug)]
pub struct AttachedDevices {
    /// The manifest with properties, host fds and `attached` filled in.
    pub manifest: Manifest,
    /// Block devices, in manifest order.
    pub blocks: Vec<AttachedBlock>,
    /// Net devices, in manifest order.
    pub nets: Vec<AttachedNet>,
}

fn declared(manifest: &Manifest) -> String {
    let list: Vec<String> = manifest
        .entries()
        .iter()
        .skip(1)
        .map(|e| {
            let kind = MftType::from_raw(e.device_type).map_or("?", |t| t.name());
            format!("{} ({kind})", String::from_utf8_lossy(e.name_bytes()))
        })
        .collect();
    if list.is_empty() {
        "no devices".to_owned()
    } else {
        list.join(", ")
    }
}

/// Checks the devices `spec` names against `manifest` without opening anything: every
/// device named must be declared with that type, every declared device attached. The one
/// check for every front end (tender-oci words its advice from these variants).
pub fn check_names(manifest: &Manifest, spec: &RunSpec) -> Result<(), DeviceError> {
    let not_declared = |name: &str, option, kind| DeviceError::NotDeclared {
        name: name.to_owned(),
        option,
        kind,
        declared: declared(manifest),
    };
    for name in spec.blocks.keys() {
        manifest.find(name, MftType::BlockBasic).ok_or_else(|| not_declared(name, "--block", "BLOCK_BASIC"))?;
    }
    for name in spec.nets.keys() {
        manifest.find(name, MftType::NetBasic).ok_or_else(|| not_declared(name, "--net", "NET_BASIC"))?;
    }
    for entry in manifest.entries().iter().skip(1) {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let (attached, kind, option) = match MftType::from_raw(entry.device_type) {
            Some(MftType::BlockBasic) => (spec.blocks.contains_key(&name), "BLOCK_BASIC", "--block"),
            Some(MftType::NetBasic) => (spec.nets.contains_key(&name), "NET_BASIC", "--net"),
            // The loader admits only block and net entries after entry 0.
            _ => continue,
        };
        if !attached {
            return Err(DeviceError::NotAttached { name, kind, option });
        }
    }
    Ok(())
}

/// Opens every device `spec` names and edits a copy of the manifest to describe them.
/// A tap the front end opened is duplicated: the caller closes its own descriptor
/// before the guest runs.
pub fn attach(manifest: &Manifest, spec: &RunSpec) -> Result<AttachedDevices, DeviceError> {
    check_names(manifest, spec)?;
    let mut manifest = manifest.clone();
    let mut blocks = Vec::new();
    for (name, opt) in &spec.blocks {
        let handle = manifest.find(name, MftType::BlockBasic).expect("checked by check_names");
        let block = open_block(name, &opt.path, opt.block_size, handle)?;
        let entry = &mut manifest.entries_mut()[handle];
        entry.set_block(block.capacity, block.block_size);
        entry.attach(block.file.as_raw_fd());
        blocks.push(block);
    }
    let mut nets = Vec::new();
    for (name, opt) in &spec.nets {
        let handle = manifest.find(name, MftType::NetBasic).expect("checked by check_names");
        let mac = match opt.mac {
            Some(mac) => mac,
            None => random_mac().map_err(|source| DeviceError::Random { name: name.clone(), source })?,
        };
        let asked = manifest.entries()[handle].net_asks_for(net_features::VNET_HDR);
        let (tap, mtu, vnet_hdr) = match &opt.tap {
            TapSpec::Named(iface) => {
                let (fd, mtu) = tap::open(iface, asked)?;
                (fd, mtu, asked)
            }
            TapSpec::Open { fd, iface, mtu, vnet_hdr } => {
                let fd = fd
                    .try_clone()
                    .map_err(|e| DeviceError::Tap { iface: iface.clone(), reason: format!("dup: {e}") })?;
                if *vnet_hdr && !asked {
                    // Its frames would be read as headers: a front end's bug, refused.
                    return Err(DeviceError::Tap {
                        iface: iface.clone(),
                        reason: "opened with IFF_VNET_HDR for a guest that did not ask for vnet_hdr".into(),
                    });
                }
                (fd, *mtu, *vnet_hdr)
            }
        };
        let granted = if vnet_hdr { net_features::VNET_HDR } else { 0 };
        let entry = &mut manifest.entries_mut()[handle];
        entry.set_net(mac, mtu, granted);
        entry.attach(tap.as_raw_fd());
        nets.push(AttachedNet { handle, tap, iface: opt.tap.iface().to_owned(), mac, mtu });
    }
    blocks.sort_by_key(|b| b.handle);
    nets.sort_by_key(|n| n.handle);
    Ok(AttachedDevices { manifest, blocks, nets })
}

fn open_block(
    name: &str,
    path: &std::path::Path,
    block_size: u16,
    handle: usize,
) -> Result<AttachedBlock, DeviceError> {
    let open_err = |source| DeviceError::OpenBlock { name: name.to_owned(), path: path.to_owned(), source };
    let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(open_err)?;
    let file_type = file.metadata().map_err(open_err)?.file_type();
    if !(file_type.is_file() || file_type.is_block_device()) {
        return Err(DeviceError::NotBlockBacking { name: name.to_owned(), path: path.to_owned() });
    }
    // SEEK_END gives the size of both regular files and block devices.
    let capacity = file.seek(SeekFrom::End(0)).map_err(open_err)?;
    if capacity % u64::from(block_size) != 0 {
        return Err(DeviceError::Unaligned { name: name.to_owned(), capacity, block_size });
    }
    if capacity < u64::from(block_size) {
        return Err(DeviceError::TooSmall { name: name.to_owned(), path: path.to_owned(), capacity, block_size });
    }
    Ok(AttachedBlock { handle, file, block_size, capacity })
}

/// A random unicast, locally administered MAC (as Solo5 makes one).
fn random_mac() -> io::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    File::open("/dev/urandom")?.read_exact(&mut mac)?;
    mac[0] &= !0x01;
    mac[0] |= 0x02;
    Ok(mac)
}

pub use tap::create as create_tap;

mod tap {
    //! Opening a tap through /dev/net/tun (the only `unsafe` here: three ioctls).
    use super::*;

    /// A zeroed `struct ifreq` naming `iface` (shorter than IFNAMSIZ, checked by callers).
    fn ifreq(iface: &str, flags: i16) -> libc::ifreq {
        let mut name = [0 as libc::c_char; IFNAMSIZ];
        for (dst, src) in name.iter_mut().zip(iface.bytes()) {
            *dst = src as libc::c_char;
        }
        libc::ifreq { ifr_name: name, ifr_ifru: libc::__c_anonymous_ifr_ifru { ifru_flags: flags } }
    }

    /// Issues an `ifreq` ioctl on `fd`.
    fn ioctl_ifreq(fd: RawFd, request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: `req` is a live, writable `struct ifreq` (libc's layout), which is what
        // the kernel reads and writes for SIOCGIFFLAGS, SIOCGIFMTU and TUNSETIFF; it
        // touches nothing beyond it.
        let rc = unsafe { libc::ioctl(fd, request, req as *mut libc::ifreq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// libc's `IFF_*` bits (`c_int`) as `ifr_flags` (a `short`). Used for consts
    /// only, so a flag past 16 bits fails the build.
    const fn ifr_flags(bits: libc::c_int) -> i16 {
        assert!(bits >= 0 && bits <= i16::MAX as libc::c_int);
        // cast: in 0..=i16::MAX, asserted just above (TryFrom is not const).
        #[allow(clippy::cast_possible_truncation)]
        let flags = bits as i16;
        flags
    }

    /// TUNSETIFF's flags: an Ethernet tap without the packet-information header.
    const TAP_FLAGS: i16 = ifr_flags(libc::IFF_TAP | libc::IFF_NO_PI);
    /// The same with a `struct virtio_net_hdr` before each frame.
    const VNET_TAP_FLAGS: i16 = ifr_flags(libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR);
    /// The interface is up, or running.
    const UP_OR_RUNNING: i16 = ifr_flags(libc::IFF_UP | libc::IFF_RUNNING);

    /// Creates tap `iface` (it must not exist) and returns its descriptor, non-blocking
    /// and close-on-exec. The tap is not persistent: it disappears when the last
    /// descriptor closes, so it lives exactly as long as the process holding it.
    /// With `vnet_hdr`, frames carry a `struct virtio_net_hdr` and the tap offloads
    /// segmentation and checksums (for guests that asked, [`net_features::VNET_HDR`]).
    pub fn create(iface: &str, vnet_hdr: bool) -> io::Result<OwnedFd> {
        if iface.is_empty() || iface.len() >= IFNAMSIZ || iface.contains(['/', ' ', '\0', '%']) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface names are 1 to 15 characters"));
        }
        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = ifreq(iface, if vnet_hdr { VNET_TAP_FLAGS } else { TAP_FLAGS });
        ioctl_ifreq(tun.as_raw_fd(), libc::TUNSETIFF, &mut req)?;
        set_offloads(tun.as_raw_fd(), vnet_hdr)?;
        Ok(OwnedFd::from(tun))
    }

    /// With `vnet_hdr`: 10-byte headers, and TCP segmentation and checksum offload in
    /// both directions (docs/solo5-abi.md §2.5). Without: no offload, set explicitly, as
    /// a persistent tap keeps the offloads an earlier user turned on, and the kernel would
    /// hand a guest without headers 64 KiB segments with unfinished checksums.
    fn set_offloads(fd: RawFd, vnet_hdr: bool) -> io::Result<()> {
        if vnet_hdr {
            let size = libc::c_int::try_from(VIRTIO_NET_HDR_SIZE).expect("10 fits");
            // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer; `size` is one
            // and outlives the call.
            if unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &size as *const libc::c_int) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let offloads = if vnet_hdr { libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 } else { 0 };
        // SAFETY: TUNSETOFFLOAD takes its flags by value and touches no memory of ours.
        if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(offloads)) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Attaches to tap `iface`: its descriptor and its MTU; with `vnet_hdr` (the guest
    /// asked for [`net_features::VNET_HDR`]) the tap has headers and offloads.
    pub(super) fn open(iface: &str, vnet_hdr: bool) -> Result<(OwnedFd, u16), DeviceError> {
        let fail = |reason: String| DeviceError::Tap { iface: iface.to_owned(), reason };
        if iface.starts_with('@') {
            return Err(fail(
                "attaching an inherited fd (@FD) is not supported (nor by Solo5 v0.12.1); give the tap's name".into(),
            ));
        }
        if iface.is_empty() || iface.len() >= IFNAMSIZ || iface.contains(['/', ' ', '\0']) {
            return Err(fail(format!("interface names are 1 to {} characters", IFNAMSIZ - 1)));
        }
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| fail(format!("socket: {e}")))?;
        let mut req = ifreq(iface, 0);
        ioctl_ifreq(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENODEV) {
                fail(format!("no such interface (create it: ip tuntap add {iface} mode tap && ip link set {iface} up)"))
            } else {
                fail(e.to_string())
            }
        })?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the union's flags member
        // (a short: any bit pattern is a valid value).
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        if flags & UP_OR_RUNNING == 0 {
            return Err(fail(format!("interface is down (ip link set {iface} up)")));
        }
        let mut req = ifreq(iface, 0);
        ioctl_ifreq(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req).map_err(|e| fail(format!("MTU: {e}")))?;
        // SAFETY: SIOCGIFMTU succeeded, so the kernel wrote the union's MTU member (an
        // int: any bit pattern is a valid value).
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        let mtu = u16::try_from(mtu).map_err(|_| fail(format!("MTU {mtu} out of range")))?;

        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(|e| fail(format!("/dev/net/tun: {e}")))?;
        let mut req = ifreq(iface, if vnet_hdr { VNET_TAP_FLAGS } else { TAP_FLAGS });
        ioctl_ifreq(tun.as_raw_fd(), libc::TUNSETIFF, &mut req).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) => " (another process has it open)",
                Some(libc::EINVAL) => " (is it a tap? create one with: ip tuntap add NAME mode tap)",
                Some(libc::EPERM) => " (needs CAP_NET_ADMIN or a tap owned by this user)",
                _ => "",
            };
            fail(format!("{e}{hint}"))
        })?;
        // The kernel may have created a different device if the name was a pattern.
        if ifreq(iface, 0).ifr_name != req.ifr_name {
            return Err(fail("the kernel attached a different interface".into()));
        }
        set_offloads(tun.as_raw_fd(), vnet_hdr).map_err(|e| fail(format!("offloads: {e}")))?;
        Ok((OwnedFd::from(tun), mtu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::NetSpec;

    /// A manifest with one NET_BASIC entry `service0` asking for `wanted` features.
    fn manifest(wanted: u16) -> Manifest {
        let mut raw = Vec::new();
        raw.extend_from_slice(&1u32.to_le_bytes());
        raw.extend_from_slice(&2u32.to_le_bytes());
        let mut reserved = [0u8; 104];
        reserved[68..72].copy_from_slice(&(MftType::ReservedFirst as u32).to_le_bytes());
        let mut net = [0u8; 104];
        net[..8].copy_from_slice(b"service0");
        net[68..72].copy_from_slice(&(MftType::NetBasic as u32).to_le_bytes());
        net[80..82].copy_from_slice(&wanted.to_le_bytes());
        raw.extend_from_slice(&reserved);
        raw.extend_from_slice(&net);
        Manifest::parse(&raw).expect("a valid manifest")
    }

    /// A spec whose tap a front end opened (any fd will do: attach only duplicates it).
    fn spec(vnet_hdr: bool) -> RunSpec {
        let fd = OwnedFd::from(File::open("/dev/null").unwrap());
        let tap = TapSpec::Open { fd, iface: "tap0".into(), mtu: 1500, vnet_hdr };
        let mut spec = RunSpec::new("guest.spt");
        spec.nets.insert("service0".into(), NetSpec { tap, mac: Some([2, 0, 0, 0, 0, 1]) });
        spec
    }

    #[test]
    fn vnet_hdr_is_granted_only_when_asked_and_offered() {
        let granted = |wanted, offered| {
            let attached = attach(&manifest(wanted), &spec(offered)).map_err(|e| e.to_string())?;
            Ok::<_, String>(attached.manifest.entries()[1].net_features_granted())
        };
        assert_eq!(granted(net_features::VNET_HDR, true), Ok(net_features::VNET_HDR));
        assert_eq!(granted(net_features::VNET_HDR, false), Ok(0), "asked, but the tap has no headers");
        assert_eq!(granted(0, false), Ok(0));
        // Unknown bits are not features: only bit 0 is.
        assert_eq!(granted(0xfffe, false), Ok(0));
        let refused = granted(0, true).unwrap_err();
        assert!(refused.contains("did not ask for vnet_hdr"), "{refused}");
    }
}
