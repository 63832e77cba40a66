//! `native-hypercall KIND ITERATIONS FILTER BLOCK_FILE TAP`: the host syscalls
//! behind one Solo5 call kind, made ITERATIONS times by an ordinary process;
//! records the mean in ns × 1000 per call. The baseline rows of the hypercall
//! benchmark (benches/benches/hypercalls.rs), next to the `hcbench` guest doing
//! the same calls under the tender.
//!
//! FILTER: `none`; `allow-all` (one `SECCOMP_RET_ALLOW` instruction: seccomp's
//! fixed cost, the floor under any spt hypercall, docs/baselines.md);
//! `one-load` (load argument 0, allow: the cost of running any BPF program at
//! all, which every filter that checks arguments pays); or `spt` (the tender's
//! own filter for these fds, without the tender).
//!
//! KIND is one of `hcbench`'s: walltime, monotonic, console, yield0, block_read,
//! block_write, net_write. Run inside the network namespace that holds TAP. The
//! result is written as `KIND NS_X1000` into block 0 of BLOCK_FILE, where the
//! `hcbench` guest writes its own.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};

use benches::tap;

/// A `syscall` instruction, exactly as the guests make it (solo5-rt's
/// `raw_syscall`). Not libc's `syscall()`: its wrapper measured ≈ 70 ns more per
/// call here than the bare instruction, which would flatter the guest.
///
/// # Safety
/// The caller vouches for the syscall's effects on memory (the arguments are
/// raw pointers and fds).
#[inline(always)]
unsafe fn raw(nr: libc::c_long, args: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the caller's contract; the asm touches only the syscall registers.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// An `int` argument as its syscall register: sign-extended, as C passes it.
fn reg(v: libc::c_int) -> u64 {
    i64::from(v).cast_unsigned()
}

/// One `clock_gettime(CLOCK_MONOTONIC)` in ns (a raw syscall, as the guest makes).
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the kernel writes one timespec into `ts`.
    unsafe { raw(libc::SYS_clock_gettime, [libc::CLOCK_MONOTONIC as u64, &raw mut ts as u64, 0, 0, 0, 0]) };
    // The monotonic clock is never negative: the reinterpretations are lossless.
    ts.tv_sec.cast_unsigned() * 1_000_000_000 + ts.tv_nsec.cast_unsigned()
}

fn die(msg: &str) -> ! {
    eprintln!("native-hypercall: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, iters, filter, block_file, tap_name] = args.as_slice() else {
        die("usage: native-hypercall KIND ITERATIONS none|allow-all|one-load|spt BLOCK_FILE TAP")
    };
    let iters: u64 = iters.parse().ok().filter(|n| *n > 0).unwrap_or_else(|| die("bad ITERATIONS"));
    let block = OpenOptions::new()
        .read(true)
        .write(true)
        .open(block_file)
        .unwrap_or_else(|e| die(&format!("{block_file}: {e}")));
    let tap: OwnedFd = tap::open(tap_name).unwrap_or_else(|e| die(&format!("{tap_name}: {e}")));
    let yielder = Yielder::new();

    let bpf = match filter.as_str() {
        "none" => None,
        "allow-all" => Some(benches::allow_all_filter()),
        "one-load" => Some(benches::one_load_filter()),
        "spt" => {
            let run = seccomp_profiles::RunParams {
                epoll_fd: yielder.epoll.as_raw_fd(),
                timer_fd: yielder.timer.as_raw_fd(),
                blocks: vec![seccomp_profiles::BlockParams {
                    fd: block.as_raw_fd(),
                    block_size: 512,
                    capacity: block.metadata().map(|m| m.len()).unwrap_or(0) / 512 * 512,
                }],
                nets: vec![tap.as_raw_fd()],
                dumpcore: None,
            };
            let profile = seccomp_profiles::Profile::spt();
            let filter = profile.resolve(&run).unwrap_or_else(|e| die(&e.to_string()));
            Some(filter.compile().unwrap_or_else(|e| die(&e.to_string())))
        }
        other => die(&format!("unknown filter {other}")),
    };
    let (bfd, tfd) = (block.as_raw_fd(), tap.as_raw_fd());
    let mut buf = [0u8; 512];
    let frame = benches::DROPPED_FRAME;
    let line = b"0123456789abcde\n";
    // Everything is allocated; from here on only the calls the spt filter allows.
    if let Some(bpf) = &bpf {
        seccompiler::apply_filter(bpf).unwrap_or_else(|e| die(&e.to_string()));
    }
    let mut sink = 0i64;
    let start = now_ns();
    // SAFETY (all arms): raw syscalls on fds this process owns, with buffers that
    // live on this stack frame for the whole loop and are as long as the counts.
    match kind.as_str() {
        "walltime" | "monotonic" => {
            let clock = if kind == "walltime" { libc::CLOCK_REALTIME } else { libc::CLOCK_MONOTONIC };
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            for _ in 0..iters {
                // SAFETY: see above.
                sink ^=
                    unsafe { raw(libc::SYS_clock_gettime, [reg(clock), &raw mut ts as u64, 0, 0, 0, 0]) } ^ ts.tv_nsec;
            }
        }
        "console" => {
            for _ in 0..iters {
                // SAFETY: see above.
                sink ^= unsafe { raw(libc::SYS_write, [1, line.as_ptr() as u64, line.len() as u64, 0, 0, 0]) };
            }
        }
        "yield0" => {
            for _ in 0..iters {
                sink ^= yielder.yield_now();
            }
        }
        "block_read" => {
            for i in 0..iters {
                let off = 512 * (1 + i % 8);
                // SAFETY: see above.
                sink ^= unsafe { raw(libc::SYS_pread64, [reg(bfd), buf.as_mut_ptr() as u64, 512, off, 0, 0]) };
            }
        }
        "block_write" => {
            for i in 0..iters {
                let off = 512 * (1 + i % 8);
                // SAFETY: see above.
                sink ^= unsafe { raw(libc::SYS_pwrite64, [reg(bfd), buf.as_ptr() as u64, 512, off, 0, 0]) };
            }
        }
        "net_write" => {
            for _ in 0..iters {
                // SAFETY: see above.
                sink ^= unsafe { raw(libc::SYS_write, [reg(tfd), frame.as_ptr() as u64, frame.len() as u64, 0, 0, 0]) };
            }
        }
        _ => {
            // SAFETY: exit_group is always allowed and never returns.
            unsafe { raw(libc::SYS_exit_group, [2, 0, 0, 0, 0, 0]) };
        }
    }
    let ns_x1000 = (now_ns() - start) * 1000 / iters;
    // The result goes where `hcbench` puts its own: block 0 of the block file, as
    // `KIND NS_X1000` (stdout is one of the measured calls). Formatted without
    // allocating: the spt filter would kill an mmap/brk.
    let mut block0 = [b' '; 512];
    block0[..kind.len()].copy_from_slice(kind.as_bytes());
    block0[kind.len()] = b' ';
    let mut digits = [0u8; 48];
    let n = benches::format_u64(&mut digits, ns_x1000, u8::from(sink & 1 == 1));
    block0[kind.len() + 1..kind.len() + 1 + n].copy_from_slice(&digits[..n]);
    // SAFETY: writes one 512-byte block from a stack buffer at offset 0 of our file.
    unsafe { raw(libc::SYS_pwrite64, [reg(bfd), block0.as_ptr() as u64, 512, 0, 0, 0]) };
    // SAFETY: ends the process; nothing needs dropping.
    unsafe { raw(libc::SYS_exit_group, [0; 6]) };
}

/// The epoll set and timerfd of a Solo5 spt yield, as the tender makes them.
struct Yielder {
    epoll: OwnedFd,
    timer: OwnedFd,
}

impl Yielder {
    fn new() -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: plain fd-creating syscalls; results checked before use.
        let (ep, tm) =
            unsafe { (libc::epoll_create1(0), libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK)) };
        if ep < 0 || tm < 0 {
            die("epoll/timerfd");
        }
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0xFFFF_FFFE };
        // SAFETY: `ev` is valid for the call; both fds are ours.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, tm, &mut ev) } < 0 {
            die("epoll_ctl");
        }
        // SAFETY: both fds were just created and are owned by nothing else.
        unsafe { Yielder { epoll: OwnedFd::from_raw_fd(ep), timer: OwnedFd::from_raw_fd(tm) } }
    }

    /// `solo5_yield(0)` on spt: arm the timer in the past, collect the event.
    fn yield_now(&self) -> i64 {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: 0, tv_nsec: 1 },
        };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `spec` and `events` live across the calls; the counts match.
        unsafe {
            let timer = reg(self.timer.as_raw_fd());
            raw(libc::SYS_timerfd_settime, [timer, libc::TFD_TIMER_ABSTIME as u64, &raw const spec as u64, 0, 0, 0]);
            raw(libc::SYS_epoll_pwait, [reg(self.epoll.as_raw_fd()), events.as_mut_ptr() as u64, 2, u64::MAX, 0, 0])
        }
    }
}
