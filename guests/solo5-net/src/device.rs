//! smoltcp's view of a Solo5 net device: one Ethernet frame per
//! `solo5_net_read`/`solo5_net_write` (a `read`/`write` on the tap on spt).

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use solo5_rt::{Error, Net};

const ETH_HDR: usize = 14;

/// A Solo5 net device with one receive and one transmit buffer of a frame each.
#[derive(Debug)]
pub struct TapDevice {
    net: Net,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Set when a read found no frame (`SOLO5_R_AGAIN`): time to yield.
    drained: bool,
    /// Frames received and sent, for the guest's statistics line.
    pub frames: (u64, u64),
}

impl TapDevice {
    /// Wraps `net`; buffers are sized for its MTU.
    pub fn new(net: Net) -> Self {
        let frame = usize::from(net.info().mtu) + ETH_HDR;
        TapDevice { net, rx: vec![0; frame], tx: vec![0; frame], drained: false, frames: (0, 0) }
    }

    /// The device.
    pub fn net(&self) -> &Net {
        &self.net
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
    sent: &'a mut u64,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp never asks for more than the MTU we announced; clamp anyway.
        let len = len.min(self.buf.len());
        let frame = &mut self.buf[..len];
        let result = f(frame);
        // A failed send is a lost frame, as on a wire: TCP retransmits.
        if self.net.write(frame).is_ok() {
            *self.sent += 1;
        }
        result
    }
}

impl phy::Device for TapDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        match self.net.read(&mut self.rx) {
            Ok(n) => {
                self.frames.0 += 1;
                let rx = RxToken { frame: &self.rx[..n] };
                Some((rx, TxToken { net: &self.net, buf: &mut self.tx, sent: &mut self.frames.1 }))
            }
            Err(Error::Again) => {
                self.drained = true;
                None
            }
            // EUNSPEC: the host read failed; report no frame and let the caller yield.
            Err(_) => {
                self.drained = true;
                None
            }
        }
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken { net: &self.net, buf: &mut self.tx, sent: &mut self.frames.1 })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp's MTU for Ethernet counts the header.
        caps.max_transmission_unit = self.tx.len();
        caps
    }
}
