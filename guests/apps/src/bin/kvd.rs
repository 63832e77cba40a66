//! `kvd`: the `kv` server made durable: every acknowledged write is in an
//! append-only log on the block device `storage` before its reply leaves, and
//! the log is replayed at start (`apps::journal` describes the format; a torn
//! last record is dropped with a console message). The log is compacted into
//! the device's other half when it outgrows the live data; a write whose
//! record does not fit even then is answered `-MISCONF …` and changes nothing.
//!
//! `tender --block:storage=FILE --net:service0=TAP kvd.spt --ipv4=ADDR/PREFIX
//! [--ipv4-gateway=GW] [PORT]`. A fresh (zeroed) FILE is an empty log.
#![no_std]
#![no_main]

extern crate alloc;

use apps::journal::{BlockLog, Storage};
use solo5_rt::{Block, println};

solo5_rt::manifest! {
    net service0 with vnet_hdr;
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
    // The first record that did not replay: serving (and later compacting)
    // without it would lose acknowledged writes, so kvd stops instead.
    let mut failed: Option<(u32, &'static str)> = None;
    let mut n = 0u32;
    let opened = BlockLog::open(Storage(block), |record| {
        if let (Err(e), None) = (kv.replay(record), failed) {
            failed = Some((n, e));
        }
        n += 1;
    });
    let (log, replayed) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            println!("kvd: storage: {e}");
            return 1;
        }
    };
    if let Some((record, e)) = failed {
        println!("kvd: storage: record #{record} of the log does not replay: {e}; stopping (the log is unchanged)");
        return 1;
    }
    println!(
        "kvd: storage: replayed {} records ({} bytes at byte {}, generation {}), {} keys",
        replayed.records,
        replayed.bytes,
        replayed.start,
        replayed.generation,
        kv.len()
    );
    kv.set_journal(alloc::boxed::Box::new(log));
    apps::run_server("kvd", args, 6379, apps::Timeouts::default(), &mut kv)
}
