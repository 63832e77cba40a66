//! TCP/IP for `solo5-rt` guests.
//!
//! * [`heap`]: a global allocator over the guest heap (from the end of the image
//!   up to the stack reserve); a guest that links this crate gets `alloc`.
//! * [`NetConfig`]: the guest's IPv4 address, prefix and gateway, taken from the
//!   leading `--ipv4=ADDR/PREFIX` and `--ipv4-gateway=GW` words of its command
//!   line (the form the OCI runtime passes; guests/README.md).
//! * [`Stack`]: smoltcp on a Solo5 net device (Ethernet frames via
//!   `solo5_net_read`/`solo5_net_write`, waiting with `solo5_yield`).
//! * [`serve`]: a TCP server loop for any [`protocols::Protocol`]: accepts as
//!   many connections on one port as the heap has room for and answers each.
//!
//! Nothing here uses floating point: the stack also runs in guests built without
//! SSE (the hvt target).
#![no_std]

extern crate alloc;

mod buffers;
mod config;
mod device;
pub mod heap;
mod server;

pub use config::{ConfigError, NetConfig};
pub use device::TapDevice;
pub use server::{MAX_PENDING_INPUT, ServerConfig, ServerStats, Stack, now, serve};
pub use smoltcp::time::Duration;
