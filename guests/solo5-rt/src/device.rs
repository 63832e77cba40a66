//! Block and network devices, found by name in the manifest copy
//! (`solo5_block_*`, `solo5_net_*`; docs/solo5-abi.md §2.4, §5.4).

use hypercall_abi::Handle;
use hypercall_abi::mft::{MftEntry, MftType, net_features};

use crate::platform::imp as platform;
use crate::{Error, start::manifest};

/// Looks `name` up among the manifest entries of type `ty`, like Solo5's
/// `mft_get_by_name`. A declared device is always attached (the tender refuses
/// to start otherwise), so an unattached one means a broken tender: abort.
fn acquire(name: &str, ty: MftType) -> Result<(Handle, &'static MftEntry), Error> {
    let (index, entry) = manifest()
        .iter()
        .enumerate()
        .find(|(_, e)| e.device_type == ty as u32 && e.name_bytes() == name.as_bytes())
        .ok_or(Error::Einval)?;
    assert!(entry.attached != 0, "{} '{name}' is not attached", ty.name());
    Ok((index as Handle, entry))
}

/// Size and block size of a block device (`struct solo5_block_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Capacity in bytes, a multiple of `block_size`.
    pub capacity: u64,
    /// Smallest unit of I/O in bytes: 512 unless the tender was told otherwise.
    pub block_size: u64,
}

/// A block device (`BLOCK_BASIC` manifest entry).
#[derive(Debug)]
pub struct Block {
    handle: Handle,
    fd: i32,
    info: BlockInfo,
}

impl Block {
    /// Finds the block device declared as `name`; [`Error::Einval`] if there is none.
    pub fn acquire(name: &str) -> Result<Self, Error> {
        let (handle, e) = acquire(name, MftType::BlockBasic)?;
        let info = BlockInfo { capacity: e.block_capacity(), block_size: u64::from(e.block_size()) };
        Ok(Self { handle, fd: e.hostfd(), info })
    }

    /// The device handle (manifest index).
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Capacity and block size.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// Solo5's guest-side checks: exactly one block, at a block-aligned offset
    /// inside the device. They must run before the host call: on spt the
    /// tender's filter kills a `pread64`/`pwrite64` with another length or a
    /// larger offset; on hvt the tender checks only the capacity.
    fn check(&self, offset: u64, len: usize) -> Result<(), Error> {
        let BlockInfo { capacity, block_size } = self.info;
        let last_block = capacity.checked_sub(block_size).ok_or(Error::Einval)?;
        if block_size == 0 || len as u64 != block_size || !offset.is_multiple_of(block_size) || offset > last_block {
            return Err(Error::Einval);
        }
        Ok(())
    }

    /// Reads the block at byte `offset` into `buf` (`buf.len()` must be the block size).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        platform::block_read(self.handle, self.fd, offset, buf)
    }

    /// Writes `buf` (one block) at byte `offset`.
    pub fn write(&self, offset: u64, buf: &[u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        platform::block_write(self.handle, self.fd, offset, buf)
    }
}

/// MAC address and MTU of a network device (`struct solo5_net_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// Largest payload, without the 14-byte Ethernet header.
    pub mtu: u16,
    /// Granted `net NAME with vnet_hdr`: every frame read and written starts with a
    /// 10-byte `struct virtio_net_hdr` and may be a TCP segment of up to 64 KiB
    /// (docs/solo5-abi.md §2.5). Always false on Solo5's own tenders.
    pub vnet_hdr: bool,
}

/// A network device (`NET_BASIC` manifest entry): Ethernet frames on a tap.
#[derive(Debug)]
pub struct Net {
    handle: Handle,
    fd: i32,
    info: NetInfo,
}

impl Net {
    /// Finds the network device declared as `name`; [`Error::Einval`] if there is none.
    pub fn acquire(name: &str) -> Result<Self, Error> {
        let (handle, e) = acquire(name, MftType::NetBasic)?;
        let vnet_hdr = e.net_features_granted() & net_features::VNET_HDR != 0;
        Ok(Self { handle, fd: e.hostfd(), info: NetInfo { mac: e.net_mac(), mtu: e.net_mtu(), vnet_hdr } })
    }

    /// The device handle (manifest index): its bit in [`yield_until`](crate::yield_until)'s result.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// MAC address and MTU.
    pub fn info(&self) -> NetInfo {
        self.info
    }

    /// Reads one frame into `buf`; its length on success, [`Error::Again`] if no
    /// frame is waiting. A frame longer than `buf` is truncated (tap semantics).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        platform::net_read(self.handle, self.fd, buf)
    }

    /// Sends one frame; all of it or [`Error::Eunspec`].
    pub fn write(&self, frame: &[u8]) -> Result<(), Error> {
        platform::net_write(self.handle, self.fd, frame)
    }
}
