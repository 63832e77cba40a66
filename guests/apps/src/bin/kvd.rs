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
use solo5_rt::{Block, println};

solo5_rt::manifest! {
    net service0;
    block storage;
}
solo5_rt::main!(main);

fn main(args: &solo5_rt::Cmdline) -> i32 {
    let mut kv = apps::kv_store("kvd");
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
        "kvd: storage: replayed {} records ({} bytes){}, {} keys",
        replayed.records,
        replayed.bytes,
        if bad > 0 { " (some malformed)" } else { "" },
        kv.len()
    );
    kv.set_journal(alloc::boxed::Box::new(log));
    apps::run_server("kvd", args, 6379, apps::Timeouts::default(), &mut kv)
}
