//! Constant memory whatever the artifact size: sealing and opening a 64 MiB stream piece by
//! piece (as the pipeline does) keeps the heap within a few buffers. The global allocator of
//! this test binary counts every byte.

mod common;

use std::alloc::System;

use cap::Cap;
use common::key;
use wst_core::Cipher;
use wst_crypto::AeadCipher;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const PIECE: usize = 1024 * 1024;
const TOTAL: usize = 64 * PIECE;

#[test]
fn sealing_and_opening_64_mib_stays_within_a_few_buffers() {
    let c = AeadCipher::builder().recipient_key(key(1)).build().unwrap();
    let plain: Vec<u8> = (0..PIECE).map(|i| (i % 253) as u8).collect();
    let mut ct = Vec::with_capacity(2 * PIECE);
    let mut pt = Vec::with_capacity(2 * PIECE);
    let baseline = ALLOC.allocated();
    // Anything beyond this aborts the test binary: a failure, never a pass.
    ALLOC.set_limit(baseline + 64 * 1024 * 1024).unwrap();

    let mut sealer = c.seal().unwrap();
    let mut opener = c.open().unwrap();
    let mut opened = 0usize;
    for _ in 0..TOTAL / PIECE {
        sealer.update(&plain, &mut ct).unwrap();
        opener.update(&ct, &mut pt).unwrap();
        opened += pt.len();
        ct.clear();
        pt.clear();
    }
    sealer.finish(&mut ct).unwrap();
    opener.update(&ct, &mut pt).unwrap();
    opener.finish(&mut pt).unwrap();
    opened += pt.len();
    assert_eq!(opened, TOTAL);

    let growth = ALLOC.max_allocated().saturating_sub(baseline);
    // Two 64 KiB chunk buffers, the header, and slack for `ct`/`pt` growing past 2 MiB once.
    assert!(
        growth < 4 * 1024 * 1024,
        "heap grew by {growth} bytes for a {TOTAL}-byte stream"
    );
}
