//! 63 block devices, storage0 … storage62 (the most a manifest holds): acquires
//! the first and the last and reads a block from each.
#![no_std]
#![no_main]

use solo5_rt::{Block, Checks, Cmdline, manifest};

solo5_rt::manifest! {
    block storage[63];
}
solo5_rt::main!(main);

fn main(_: &Cmdline) -> i32 {
    let mut checks = Checks::new();
    checks.check_with("manifest has 64 entries", manifest().len() == 64, format_args!("{}", manifest().len()));
    for (name, handle) in [("storage0", 1), ("storage62", 63)] {
        match Block::acquire(name) {
            Ok(blk) => {
                checks.check_with(name, blk.handle() == handle, format_args!("handle {}", blk.handle()));
                let mut buf = [0u8; 32 * 1024];
                let bs = (blk.info().block_size as usize).min(buf.len());
                let r = blk.read(0, &mut buf[..bs]);
                checks.check_with("read block 0", r.is_ok(), format_args!("{name}: {r:?}"));
            }
            Err(e) => checks.fail(name, format_args!("acquire: {e}")),
        }
    }
    checks.finish()
}
