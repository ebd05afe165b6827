//! Writes the WAL test vector of `docs/WAL.md` §7 into DIR (default `docs/test-vectors`):
//! `wal-00000002.history.{plain,wst,json}`, sealed for `DIR/raw-key.key` with chunk size 1024.
//!
//! `cargo run -p wst-pg --example write_wal_vector -- docs/test-vectors`
//!
//! Each run draws a new data key, salts and `archived` time, so the object changes; the plain
//! text and the JSON do not.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wst_core::{Cipher, Sink};
use wst_crypto::{AeadCipher, Key};
use wst_objstore::LocalDiskSink;
use wst_pg::wal::{WalArchive, WalFileName};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "docs/test-vectors".into()),
    );
    // The public test key; its file is world-readable in git, so parse it rather than load it.
    let key_path = dir.join("raw-key.key");
    let key = Key::parse(&std::fs::read(&key_path)?, &key_path)?;
    let cipher: Arc<dyn Cipher> = Arc::new(
        AeadCipher::builder()
            .recipient_key(key)
            .chunk_size(1024)
            .build()?,
    );
    // A timeline history file as PostgreSQL writes it at promotion.
    let plain = b"1\t0/3000060\tbefore 2026-12-01 12:00:00+00\n";
    let work = tempfile::tempdir()?;
    let name = WalFileName::parse("00000002.history")?;
    let path = work.path().join(name.as_str());
    std::fs::write(&path, plain)?;
    let sink_dir = work.path().join("sink");
    std::fs::create_dir(&sink_dir)?;
    let sink = Arc::new(LocalDiskSink::open("vector", &sink_dir).await?);
    let archive = WalArchive::builder(cipher)
        .prefix("wst-backup")
        .sync_sink(sink.clone() as Arc<dyn Sink>)
        .require_sink_markers(false)
        .build()?;
    let report = archive.push(&path).await?;
    std::fs::copy(
        sink_dir.join(&report.object),
        dir.join("wal-00000002.history.wst"),
    )?;
    std::fs::write(dir.join("wal-00000002.history.plain"), plain)?;
    let json = serde_json::json!({
        "name": name.as_str(),
        "object_name": report.object,
        "size": plain.len(),
        "sha256": hex::encode(Sha256::digest(plain)),
        "key_file": "raw-key.key",
        "chunk_size": 1024,
    });
    std::fs::write(
        dir.join("wal-00000002.history.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    println!(
        "wrote wal-00000002.history.{{wst,plain,json}} into {}",
        dir.display()
    );
    Ok(())
}
