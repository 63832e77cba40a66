//! Hypercall latency per call kind, measured inside a guest (`hcbench`) over
//! many iterations, next to the same raw syscalls made by a native process
//! (`native-hypercall`) with no filter, with an allow-all filter (seccomp's fixed
//! cost: the floor, docs/baselines.md), with a two-instruction filter that
//! the kernel must run (what any argument check costs), and with the tender's own
//! spt filter. Target: every spt hypercall at most 3% above the allow-all floor.
//! The hvt column (if this tender runs hvt guests) uses 1/20 of the calls.
//!
//! Needs root (a tap in a private network namespace). Each sample is one
//! process that times N calls itself; process start-up is not in the figures.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use benches::Netns;
use criterion::Criterion;

const KINDS: [&str; 7] = ["walltime", "monotonic", "console", "yield0", "block_read", "block_write", "net_write"];
const TAP: &str = "hc0";
/// The native rows (`native-hypercall` FILTER).
const FILTERS: [&str; 4] = ["none", "allow-all", "one-load", "spt"];
/// 16 blocks: block 0 holds each run's result, 1..=8 are read and written.
const BLOCK_FILE_LEN: u64 = 16 * 512;

/// Reads `KIND NS_X1000` from block 0 of `file`, as `hcbench` and
/// `native-hypercall` leave it.
fn result_ns(file: &Path, kind: &str) -> f64 {
    let text = fs::read(file).expect("result file");
    let text = String::from_utf8_lossy(&text[..512]);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (k, v) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    assert_eq!(k, kind, "unexpected result block: {text:?}");
    v.parse::<f64>().expect("a number") / 1000.0
}

/// One measured configuration: runs ITERS calls of a kind, returns the total time.
type Case<'a> = Box<dyn Fn(&str) -> Duration + 'a>;

struct Bench {
    ns: Netns,
    file: PathBuf,
}

impl Bench {
    fn reset_file(&self) {
        fs::write(&self.file, vec![0u8; usize::try_from(BLOCK_FILE_LEN).expect("16 blocks fit in memory")])
            .expect("block file");
    }

    /// One guest run: `iters` calls of `kind`; the total time they took.
    fn guest(&self, guest: &Path, kind: &str, iters: u64) -> Duration {
        self.reset_file();
        let status = self
            .ns
            .command(benches::release_bin("tender"))
            .args(["--mem=8", &format!("--block:storage={}", self.file.display()), &format!("--net:service0={TAP}")])
            .arg(guest)
            .args(["--solo5:quiet", kind, &iters.to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("tender");
        assert!(status.success(), "hcbench {kind} {iters}: {status}");
        from_ns(result_ns(&self.file, kind) * iters as f64)
    }

    /// One native run with `filter` (none, allow-all, spt).
    fn native(&self, filter: &str, kind: &str, iters: u64) -> Duration {
        self.reset_file();
        let status = self
            .ns
            .command(benches::release_bin("native-hypercall"))
            .args([kind, &iters.to_string(), filter])
            .arg(&self.file)
            .arg(TAP)
            .stdout(Stdio::null())
            .status()
            .expect("native-hypercall");
        assert!(status.success(), "native-hypercall {kind} {iters} {filter}: {status}");
        from_ns(result_ns(&self.file, kind) * iters as f64)
    }
}

/// A measured time in ns as a Duration, whole nanoseconds as before.
// cast: a measured time is non-negative and far below 2^64 ns; f64 `as` u64
// saturates (NaN → 0), it never wraps.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn from_ns(ns: f64) -> Duration {
    Duration::from_nanos(ns as u64)
}

fn main() {
    if !benches::is_root() {
        println!("hypercalls: SKIPPED: needs root (a tap in a private network namespace)");
        return;
    }
    benches::build_all();
    let ns = Netns::new("hc").expect("network namespace");
    ns.add_tap(TAP, None).expect("tap");
    let file = std::env::temp_dir().join(format!("tender-bench-hc-{}.img", std::process::id()));
    let bench = Bench { ns, file };
    let spt = benches::guest("hcbench", "spt");
    let hvt = benches::hvt_available("hcbench");
    if let Err(why) = &hvt {
        println!("hypercalls: SKIPPED tender_hvt rows: {why}");
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for kind in KINDS {
        let mut group = c.benchmark_group(format!("hypercall_{kind}"));
        for filter in FILTERS {
            group.bench_function(format!("native_{filter}"), |b| b.iter_custom(|n| bench.native(filter, kind, n)));
        }
        group.bench_function("tender_spt", |b| b.iter_custom(|n| bench.guest(&spt, kind, n)));
        if let Ok(hvt) = &hvt {
            group.bench_function("tender_hvt", |b| b.iter_custom(|n| bench.guest(hvt, kind, n)));
        }
        group.finish();
    }
    c.final_summary();

    // The ratio table: criterion measures one case after another, so load from
    // other processes drifts between cases. Here every case runs once per round,
    // rounds interleaved, and each case keeps its best round (as docs/baselines.md's
    // "best of 6"): interference only ever adds time.
    const ROUNDS: usize = 7;
    const ITERS: u64 = 200_000;
    let bench = &bench;
    let mut cases: Vec<(String, Case<'_>)> = Vec::new();
    for filter in FILTERS {
        cases.push((format!("native_{filter}"), Box::new(move |kind| bench.native(filter, kind, ITERS))));
    }
    let spt = &spt;
    cases.push(("tender_spt".into(), Box::new(move |kind| bench.guest(spt, kind, ITERS))));
    if let Ok(hvt) = &hvt {
        // hvt hypercalls cost ≈ 10 µs here (nested KVM, docs/solo5-abi.md §11): fewer calls.
        let n = ITERS / 20;
        cases.push(("tender_hvt".into(), Box::new(move |kind| bench.guest(hvt, kind, n) * 20)));
    }
    println!("\nhypercall latency, ns per call: best of {ROUNDS} interleaved rounds of {ITERS} calls");
    println!("(floor = a native process with an allow-all filter; target: tender spt at most 3% above it;");
    println!(" one-load = a 2-instruction filter the kernel must run: the cost of any argument check)");
    println!(
        "| kind | native, no filter | floor: allow-all | one-load BPF | native + spt filter | tender spt | spt vs floor | spt vs one-load | tender hvt |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for kind in KINDS {
        let mut best = vec![f64::INFINITY; cases.len()];
        for _ in 0..ROUNDS {
            for (i, (_, run)) in cases.iter().enumerate() {
                let per_call = run(kind).as_nanos() as f64 / ITERS as f64;
                best[i] = best[i].min(per_call);
            }
        }
        let get = |id: &str| cases.iter().position(|(n, _)| n == id).map(|i| best[i]);
        let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:+.1}%", (a / b - 1.0) * 100.0),
            _ => "–".into(),
        };
        println!(
            "| {kind} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(get("native_none")),
            fmt(get("native_allow-all")),
            fmt(get("native_one-load")),
            fmt(get("native_spt")),
            fmt(get("tender_spt")),
            pct(get("tender_spt"), get("native_allow-all")),
            pct(get("tender_spt"), get("native_one-load")),
            fmt(get("tender_hvt"))
        );
    }
    let _ = fs::remove_file(&bench.file);
}
