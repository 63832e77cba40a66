//! `kvd`: the `kv` server made durable: every acknowledged write is in an
//! append-only log on the block device `storage` before its reply leaves, and
//! the log is replayed at start (`apps::journal` describes the format; a torn
//! last record is dropped with a console message).
//!
//! `tender --block:storage=FILE --net:service0=TAP kvd.spt --ipv4=ADDR/PREFIX
//! [--ipv4-gateway=GW] [PORT]`. A fresh (zeroed) FILE is an empty log.
#![no_std]
#![no_main]

extern crate alloc;

use apps::journal::BlockLog;
use protocols::resp::{Kv, KvConfig};
use solo5_net::heap;
use solo5_rt::{Block, println};

solo5_rt::manifest! {
    net service0;
    block storage;
}
solo5_rt::main!(main);

fn clock_ms() -> u64 {
    solo5_rt::clock_wall() / 1_000_000
}

fn used_memory() -> usize {
    heap::stats().used
}

fn main(args: &solo5_rt::Cmdline) -> i32 {
    let total = heap::stats().total;
    let maxmemory = total / 4 * 3;
    let config = KvConfig { clock_ms, used_memory: Some(used_memory), maxmemory, total_memory: total };
    let mut kv = Kv::with_config(config);
    let block = match Block::acquire("storage") {
        Ok(block) => block,
        Err(e) => {
            println!("kvd: storage: {e}");
            return 1;
        }
    };
    let mut bad = 0u32;
    let opened = BlockLog::open(block, |record| {
        if kv.replay(record).is_err() {
            bad += 1;
        }
    });
    let (log, replayed) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            println!("kvd: storage: {e}");
            return 1;
        }
    };
    println!(
        "kvd: storage: replayed {} records ({} bytes){}, {} keys; maxmemory {maxmemory} bytes",
        replayed.records,
        replayed.bytes,
        if bad > 0 { " (some malformed)" } else { "" },
        kv.len()
    );
    kv.set_journal(alloc::boxed::Box::new(log));
    apps::run_server("kvd", args, 6379, apps::Timeouts::default(), &mut kv)
}
