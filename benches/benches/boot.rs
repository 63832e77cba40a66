//! Boot: `tender --mem=2 hello.spt` (and `.hvt` when this tender runs hvt guests)
//! against a static native binary that writes one line and exits: the floor
//! (docs/baselines.md). Target: spt ≤ 1.3× native. The tender is the
//! shipped build: static (`.cargo/config.toml`).
//!
//! `cargo bench -p benches --bench boot`; every case spawns the program and
//! waits for it, output to /dev/null.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use criterion::Criterion;

const GROUP: &str = "boot";

fn run(program: &Path, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{} {args:?}: {status}", program.display());
}

fn main() {
    benches::build_all();
    let native = PathBuf::from(env!("OUT_DIR")).join("native-hello");
    let tender = benches::release_bin("tender");
    let hello = benches::guest("hello", "spt");
    let hello = hello.to_str().expect("utf-8 path").to_owned();
    let tender: PathBuf = tender;

    // (id, what, program, args)
    let mut cases: Vec<(&str, &str, PathBuf, Vec<String>)> = Vec::new();
    if native.is_file() {
        cases.push(("native_static", "static C binary writing one line (the floor)", native, vec![]));
    } else {
        println!("boot: SKIPPED native_static: benches/build.rs could not build native/hello.c statically");
    }
    cases.push(("tender_spt", "tender --mem=2 hello.spt", tender.clone(), vec!["--mem=2".into(), hello]));
    match benches::hvt_available("hello") {
        Ok(hvt) => {
            let hvt = hvt.to_str().expect("utf-8 path").to_owned();
            cases.push(("tender_hvt", "tender --mem=2 hello.hvt", tender.clone(), vec!["--mem=2".into(), hvt]));
        }
        Err(why) => println!("boot: SKIPPED tender_hvt: {why}"),
    }
    let mut c = Criterion::default().sample_size(100).configure_from_args();
    let mut group = c.benchmark_group(GROUP);
    for (id, _, program, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        group.bench_function(*id, |b| b.iter(|| run(program, &args)));
    }
    group.finish();
    c.final_summary();

    // The ratio table: cases interleaved, each round the mean of RUNS spawns,
    // each case's best round (load from other processes only adds time). Many short
    // rounds: on these virtualised hosts the noise comes in bursts longer than a
    // spawn, so a short round is more often clean; 7 rounds of 50 spread ±10% run to run.
    const ROUNDS: usize = 100;
    const RUNS: u32 = 5;
    let mut best = vec![f64::INFINITY; cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, _, program, args)) in cases.iter().enumerate() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let start = Instant::now();
            for _ in 0..RUNS {
                run(program, &args);
            }
            best[i] = best[i].min(start.elapsed().as_secs_f64() * 1e3 / f64::from(RUNS));
        }
    }
    let floor = cases.iter().position(|c| c.0 == "native_static").map(|i| best[i]);
    println!("\nboot: best of {ROUNDS} interleaved rounds, each the mean of {RUNS} runs (spawn to exit)");
    println!("(target: tender_spt ≤ 1.30× native_static)");
    println!("| case | what | ms | × native static |");
    println!("|---|---|---|---|");
    for (i, (id, what, _, _)) in cases.iter().enumerate() {
        let ratio = floor.map_or("–".into(), |f| format!("{:.2}×", best[i] / f));
        println!("| {id} | {what} | {:.3} | {ratio} |", best[i]);
    }
}
