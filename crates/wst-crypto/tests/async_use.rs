//! The sans-I/O sealer and opener in async code: boxed, `Send + 'static`, moved into tasks and
//! fed from an async byte pipe, with back-pressure from a bounded duplex.

mod common;

use common::{cipher, data};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wst_core::Cipher;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_and_open_across_tasks_through_an_async_pipe() {
    let c = cipher(4096);
    let pt = data(1_000_003, 11);
    let (mut tx, mut rx) = tokio::io::duplex(8 * 1024);

    let mut sealer = c.seal().unwrap();
    let input = pt.clone();
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        for piece in input.chunks(10_007) {
            sealer.update(piece, &mut out).unwrap();
            tx.write_all(&out).await.unwrap();
            out.clear();
        }
        sealer.finish(&mut out).unwrap();
        tx.write_all(&out).await.unwrap();
        tx.shutdown().await.unwrap();
    });

    let mut opener = c.open().unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 3000];
        let mut plain = Vec::new();
        loop {
            let n = rx.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            opener.update(&buf[..n], &mut plain).unwrap();
        }
        let fp = opener.opened_with();
        opener.finish(&mut plain).unwrap();
        (plain, fp)
    });

    writer.await.unwrap();
    let (plain, fp) = reader.await.unwrap();
    assert_eq!(plain, pt);
    assert_eq!(fp, Some(common::key(1).fingerprint()));
}
