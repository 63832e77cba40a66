//! The epoll set both backends wait in: a deadline timerfd and every tap, as solo5-spt
//! and solo5-hvt build it. spt hands its fds to the guest (yield), hvt waits in it for
//! the POLL hypercall; both pin their filters to these fds.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use hypercall_abi::spt::TIMER_EPOLL_DATA;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
use seccomp_profiles::{BlockParams, RunParams};

use crate::devices::AttachedDevices;

/// Creating the set failed.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {source}")]
pub struct YieldSetError {
    /// Which call.
    pub what: &'static str,
    /// Why.
    pub source: nix::Error,
}

/// The timer (data [`TIMER_EPOLL_DATA`]) and each tap (data = its handle) in one epoll set.
#[derive(Debug)]
pub struct YieldSet {
    epoll: Epoll,
    timer: TimerFd,
    nets: usize,
}

impl YieldSet {
    /// Builds the set for `taps` (handle, fd).
    pub fn new<'a>(taps: impl IntoIterator<Item = (usize, BorrowedFd<'a>)>) -> Result<Self, YieldSetError> {
        let fail = |what| move |source| YieldSetError { what, source };
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(fail("epoll_create1"))?;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
            .map_err(fail("timerfd_create"))?;
        epoll
            .add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, TIMER_EPOLL_DATA))
            .map_err(fail("epoll_ctl(timerfd)"))?;
        let mut nets = 0;
        for (handle, tap) in taps {
            epoll.add(tap, EpollEvent::new(EpollFlags::EPOLLIN, handle as u64)).map_err(fail("epoll_ctl(tap)"))?;
            nets += 1;
        }
        Ok(Self { epoll, timer, nets })
    }

    /// The set for every tap of `devices`.
    pub fn for_devices(devices: &AttachedDevices) -> Result<Self, YieldSetError> {
        Self::new(devices.nets.iter().map(|n| (n.handle, n.tap.as_fd())))
    }

    /// The epoll set.
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }

    /// The deadline timer.
    pub fn timer(&self) -> &TimerFd {
        &self.timer
    }

    /// How many taps are in the set.
    pub fn nets(&self) -> usize {
        self.nets
    }

    /// What a seccomp profile is resolved with: these fds and `devices`' fds and sizes.
    pub fn filter_params(&self, devices: &AttachedDevices) -> RunParams {
        RunParams {
            epoll_fd: self.epoll.0.as_raw_fd(),
            timer_fd: self.timer.as_fd().as_raw_fd(),
            blocks: devices
                .blocks
                .iter()
                .map(|b| BlockParams {
                    fd: b.file.as_raw_fd(),
                    block_size: u64::from(b.block_size),
                    capacity: b.capacity,
                })
                .collect(),
            nets: devices.nets.iter().map(|n| n.tap.as_raw_fd()).collect(),
            dumpcore: None,
        }
    }
}
