//! Shared helpers of the wst-pg integration tests (real PostgreSQL server).
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use wst_core::{EntryMeta, EntryOutcome, EntryWriter};
use wst_pg::{PgTools, TestCluster};

/// Starts a throwaway cluster, or returns `None` with a loud notice when the server programs
/// are missing. Under `CI=true` a missing server is a failure, never a silent skip.
pub fn cluster() -> Option<TestCluster> {
    TestCluster::start_or_skip()
}

/// A cluster with database `wst_dev` holding the demo data at pgbench scale `scale`.
pub fn demo_cluster(scale: u32) -> Option<TestCluster> {
    let cluster = cluster()?;
    cluster.create_database("wst_dev").expect("create wst_dev");
    cluster.load_demo("wst_dev", scale).expect("load demo data");
    Some(cluster)
}

/// An `EntryWriter` that records what a source wrote.
#[derive(Default)]
pub struct RecordingWriter {
    pub entries: Vec<(EntryMeta, [u8; 32], u64)>,
    pub warnings: Vec<String>,
}

impl EntryWriter for RecordingWriter {
    fn add(&mut self, meta: &EntryMeta, content: &mut dyn Read) -> wst_core::Result<EntryOutcome> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = content.read(&mut buf).expect("read entry content");
            if n == 0 {
                break;
            }
            total += n as u64;
            hasher.update(&buf[..n]);
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        self.entries.push((meta.clone(), sha256, total));
        Ok(EntryOutcome {
            sha256,
            changed: total != meta.size,
        })
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

/// A directory holding a stub `pg_dump` shell script (Unix), as tools.
#[cfg(unix)]
pub fn stub_pg_dump(script: &str) -> (tempfile::TempDir, PgTools) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg_dump");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tools = PgTools::in_dir(dir.path());
    (dir, tools)
}

/// Writes a key file with `content` and `mode`.
pub fn key_file(dir: &Path, content: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join("db.key");
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    path
}

/// `pg_dump --schema-only` of `database`, without the lines that differ between any two runs
/// (version header comments, `\restrict` keys).
pub fn schema_only(cluster: &TestCluster, database: &str) -> String {
    let out = cluster
        .client_command("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            database,
        ])
        .output()
        .expect("run pg_dump --schema-only");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("-- Dumped ")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The uncompressed custom-format dump of `dump` in a temporary file (deleted on drop).
pub fn plain_dump(dump: &wst_pg::PreparedDump) -> tempfile::TempPath {
    let path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    dump.write_dump(&path).expect("decompress the spooled dump");
    path
}
