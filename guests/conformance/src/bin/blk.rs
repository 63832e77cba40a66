//! Block device `storage`: every block written with its own pattern and read
//! back, then the requests Solo5 must refuse before any syscall (the tender's
//! filter would kill the guest for any of them).
#![no_std]
#![no_main]

use solo5_rt::{Block, Checks, Cmdline, Error, Net, println};

solo5_rt::manifest! {
    block storage;
}
solo5_rt::main!(main);

/// Largest block size a tender can set (u16, power of two).
const MAX_BLOCK: usize = 32 * 1024;

fn main(_: &Cmdline) -> i32 {
    let mut checks = Checks::new();
    checks.check("unknown block name is EINVAL", Block::acquire("nosuchdevice").err() == Some(Error::Einval));
    checks.check("block name as a net device is EINVAL", Net::acquire("storage").err() == Some(Error::Einval));
    let blk = match Block::acquire("storage") {
        Ok(b) => b,
        Err(e) => {
            checks.fail("acquire storage", format_args!("{e}"));
            return checks.finish();
        }
    };
    let info = blk.info();
    println!("storage: handle {}, capacity {} bytes, block size {}", blk.handle(), info.capacity, info.block_size);
    let bs = info.block_size as usize;
    if !checks.check_with("block size supported", (512..=MAX_BLOCK).contains(&bs), format_args!("{bs}")) {
        return checks.finish();
    }
    let blocks = info.capacity / info.block_size;

    let mut buf = [0u8; MAX_BLOCK];
    let mut back = [0u8; MAX_BLOCK];
    let (buf, back) = (&mut buf[..bs], &mut back[..bs]);

    let mut write_errors = 0u64;
    for n in 0..blocks {
        fill(buf, n);
        if blk.write(n * info.block_size, buf).is_err() {
            write_errors += 1;
        }
    }
    checks.check_with("write every block", write_errors == 0, format_args!("{write_errors} of {blocks} failed"));

    let (mut read_errors, mut mismatches) = (0u64, 0u64);
    for n in 0..blocks {
        fill(buf, n);
        back.fill(0);
        match blk.read(n * info.block_size, back) {
            Ok(()) if buf == back => {}
            Ok(()) => mismatches += 1,
            Err(_) => read_errors += 1,
        }
    }
    checks.check_with(
        "read every block back",
        read_errors == 0 && mismatches == 0,
        format_args!("{blocks} blocks, {read_errors} read errors, {mismatches} mismatches"),
    );

    // Each must be refused with EINVAL, for reads and writes alike.
    let big = &mut [0u8; MAX_BLOCK + 1][..bs + 1];
    let bad: [(&'static str, u64, usize); 7] = [
        ("unaligned offset", 1, bs),
        ("offset half a block in", info.block_size / 2, bs),
        ("length too small", 0, bs - 1),
        ("length too big", 0, bs + 1),
        ("offset == capacity", info.capacity, bs),
        ("offset past capacity", info.capacity + info.block_size, bs),
        ("offset u64::MAX", u64::MAX, bs),
    ];
    for (name, offset, len) in bad {
        let r = blk.read(offset, &mut big[..len]);
        let w = blk.write(offset, &big[..len]);
        checks.check_with(
            name,
            r == Err(Error::Einval) && w == Err(Error::Einval),
            format_args!("read {r:?}, write {w:?}"),
        );
    }

    checks.finish()
}

/// A pattern that differs between any two blocks: the block number, then bytes
/// that depend on both the block number and the position.
fn fill(buf: &mut [u8], block: u64) {
    buf[..8].copy_from_slice(&block.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (i as u64).wrapping_mul(31).wrapping_add(block.wrapping_mul(7)) as u8 ^ 0xA5;
    }
}
