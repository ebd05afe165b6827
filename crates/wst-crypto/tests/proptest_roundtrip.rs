//! Property: whatever the plaintext length and however reads and writes are split, opening
//! what was sealed gives the plaintext back — through `Sealer`/`Opener` directly and through
//! `SealWriter`/`OpenReader`.

mod common;

use std::io::{self, Read, Write};

use common::{cipher, data, key};
use proptest::prelude::*;
use wst_core::{Cipher, OpenReader, SealWriter};
use wst_crypto::{AeadCipher, DEFAULT_CHUNK_SIZE};

const CS: usize = 1024;

/// Lengths around chunk boundaries plus arbitrary ones.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(CS - 1),
        Just(CS),
        Just(CS + 1),
        Just(2 * CS),
        Just(3 * CS - 1),
        0..8 * CS,
    ]
}

/// Piece sizes used cyclically to split the input (1 byte up to a few chunks).
fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![1..17usize, 1..3 * CS, Just(CS), Just(CS + 16)],
        1..8,
    )
}

fn pieces<'a>(bytes: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut at = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        i += 1;
        let p = &bytes[at..at + n];
        at += n;
        Some(p)
    })
}

fn seal_split(c: &dyn Cipher, pt: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = c.seal().unwrap();
    s.update(&[], &mut out).unwrap();
    for p in pieces(pt, sizes) {
        s.update(p, &mut out).unwrap();
    }
    s.finish(&mut out).unwrap();
    out
}

fn open_split(c: &dyn Cipher, ct: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut o = c.open().unwrap();
    for p in pieces(ct, sizes) {
        o.update(p, &mut out).unwrap();
    }
    o.finish(&mut out).unwrap();
    out
}

/// A reader that returns at most the next split size per `read` call.
struct Choppy<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sizes[self.i % self.sizes.len()]
            .min(buf.len())
            .min(self.data.len());
        self.i += 1;
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sealer_opener_round_trip(len in length(), seed: u64, ws in splits(), rs in splits()) {
        let c = cipher(CS as u32);
        let pt = data(len, seed);
        let ct = seal_split(&c, &pt, &ws);
        // Ciphertext length is a function of the plaintext length only.
        prop_assert_eq!(ct.len(), 207 + len + 16 * (len / CS + 1));
        prop_assert_eq!(open_split(&c, &ct, &rs), pt);
    }

    #[test]
    fn io_adapters_round_trip(len in length(), seed: u64, ws in splits(), rs in splits(), rbuf in 1..5000usize) {
        let c = cipher(CS as u32);
        let pt = data(len, seed);
        let mut w = SealWriter::new(&c, Vec::new()).unwrap();
        for p in pieces(&pt, &ws) {
            w.write_all(p).unwrap();
        }
        let ct = w.finish().unwrap();
        let mut r = OpenReader::new(&c, Choppy { data: &ct, sizes: rs, i: 0 }).unwrap();
        let mut back = Vec::new();
        let mut buf = vec![0u8; rbuf];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        prop_assert_eq!(back, pt);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Multi-MiB artifacts at the default 64 KiB chunk size, with arbitrary splits.
    #[test]
    fn multi_mib_round_trip(extra in 0..200_000usize, ws in splits(), rs in splits()) {
        let c = AeadCipher::builder().recipient_key(key(1)).build().unwrap();
        let len = 3 * 1024 * 1024 + extra;
        let pt = data(len, extra as u64);
        let ct = seal_split(&c, &pt, &ws);
        let cs = DEFAULT_CHUNK_SIZE as usize;
        prop_assert_eq!(ct.len(), 207 + len + 16 * (len / cs + 1));
        let big: Vec<usize> = rs.iter().map(|s| s * 97).collect();
        prop_assert_eq!(open_split(&c, &ct, &big), pt);
    }
}
