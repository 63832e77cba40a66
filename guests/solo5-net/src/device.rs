//! smoltcp's view of a Solo5 net device: one Ethernet frame per
//! `solo5_net_read`/`solo5_net_write` (a `read`/`write` on the tap on spt).
//!
//! With the tender's `vnet_hdr` feature (docs/solo5-abi.md §2.5) each frame carries
//! a `struct virtio_net_hdr` and may be a TCP segment of up to 64 KiB, which the
//! host kernel cuts to the peer's MSS (TSO) or hands over whole (GRO'd or not yet
//! segmented). smoltcp never sends a segment larger than the peer's MSS, so
//! [`tap_offload`] raises the MSS in the SYNs smoltcp receives and remembers the
//! real one, to tell the kernel where to cut: a 100 KB reply leaves in two writes
//! instead of seventy.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use solo5_rt::{Error, Net};

use tap_offload::ETH_HDR;

/// Frames [`TapDevice::receive`] may drop in one call before it reports none.
const MAX_DROPS_PER_RECEIVE: usize = 64;

/// A Solo5 net device with one receive and one transmit buffer of a frame each.
#[derive(Debug)]
pub struct TapDevice {
    net: Net,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// `Some` when the tender granted `vnet_hdr`.
    offload: Option<tap_offload::Flows>,
    /// Set when a read found no frame (`SOLO5_R_AGAIN`): time to yield.
    drained: bool,
    /// Frames received and sent, for the guest's statistics line.
    pub frames: (u64, u64),
}

impl TapDevice {
    /// Wraps `net`; buffers are sized for its MTU, or for 64 KiB segments and
    /// their headers with `vnet_hdr`.
    pub fn new(net: Net) -> Self {
        let info = net.info();
        let (frame, offload) = if info.vnet_hdr {
            (tap_offload::BUFFER, Some(tap_offload::Flows::new(info.mtu)))
        } else {
            (usize::from(info.mtu) + ETH_HDR, None)
        };
        // Zeroed by the allocator: pages a small frame never reaches stay untouched.
        TapDevice { net, rx: vec![0; frame], tx: vec![0; frame], offload, drained: false, frames: (0, 0) }
    }

    /// The device.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The largest TCP payload one frame moves: what a receive window is counted in.
    pub fn frame_payload(&self) -> usize {
        match self.offload {
            Some(_) => tap_offload::MAX_IP_PACKET,
            None => usize::from(self.net.info().mtu),
        }
    }

    /// Whether the last read found the device empty; clears the flag.
    pub fn take_drained(&mut self) -> bool {
        core::mem::take(&mut self.drained)
    }
}

/// A received frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for one frame to send.
pub struct TxToken<'a> {
    net: &'a Net,
    buf: &'a mut [u8],
    offload: Option<&'a mut tap_offload::Flows>,
    sent: &'a mut u64,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let head = if self.offload.is_some() { tap_offload::VNET_HDR } else { 0 };
        // smoltcp never asks for more than the MTU we announced; clamp anyway.
        let len = len.min(self.buf.len() - head);
        let (hdr, frame) = self.buf[..head + len].split_at_mut(head);
        let result = f(frame);
        let send = match self.offload {
            Some(flows) => flows.outgoing(hdr, frame),
            None => true,
        };
        // A failed send is a lost frame, as on a wire: TCP retransmits.
        if send && self.net.write(&self.buf[..head + len]).is_ok() {
            *self.sent += 1;
        }
        result
    }
}

impl phy::Device for TapDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // Frames dropped here (bad checksums, cut short) are read past, but a flood of
        // them ends this call anyway, so that the round's other work still gets its turn.
        for _ in 0..MAX_DROPS_PER_RECEIVE {
            match self.net.read(&mut self.rx) {
                Ok(n) => {
                    self.frames.0 += 1;
                    let cut = n == self.rx.len();
                    let frame = match &mut self.offload {
                        None => 0..n,
                        Some(flows) => match flows.incoming(&mut self.rx[..n], cut) {
                            Some(frame) => frame,
                            None => continue,
                        },
                    };
                    let rx = RxToken { frame: &self.rx[frame] };
                    let tx = TxToken {
                        net: &self.net,
                        buf: &mut self.tx,
                        offload: self.offload.as_mut(),
                        sent: &mut self.frames.1,
                    };
                    return Some((rx, tx));
                }
                Err(Error::Again) => {
                    self.drained = true;
                    return None;
                }
                // EUNSPEC: the host read failed; report no frame and let the caller yield.
                Err(_) => {
                    self.drained = true;
                    return None;
                }
            }
        }
        None
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken { net: &self.net, buf: &mut self.tx, offload: self.offload.as_mut(), sent: &mut self.frames.1 })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp's MTU for Ethernet counts the header.
        caps.max_transmission_unit = match self.offload {
            Some(_) => tap_offload::MAX_IP_PACKET + ETH_HDR,
            None => self.tx.len(),
        };
        if self.offload.is_some() {
            // TCP checksums: the host finishes ours (NEEDS_CSUM) and [`tap_offload`]
            // checks the host's when it did not vouch for them.
            caps.checksum.tcp = Checksum::None;
        }
        caps
    }
}
