//! Helpers shared by the integration tests: keys, trees, tree comparison, child processes.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wst::core::{Cipher, Sink};
use wst::crypto::{AeadCipher, Key};
use wst::objstore::LocalDiskSink;

/// A cipher sealing for a fresh random key.
pub fn cipher() -> Arc<dyn Cipher> {
    Arc::new(
        AeadCipher::builder()
            .recipient_key(Key::generate().expect("key"))
            .build()
            .expect("cipher"),
    )
}

/// A local disk sink named `name` in `dir` (created).
pub async fn local_sink(name: &str, dir: &Path) -> Arc<dyn Sink> {
    Arc::new(
        LocalDiskSink::builder(name, dir)
            .create_dir(true)
            .open()
            .await
            .expect("local sink"),
    )
}

/// What a tree entry is, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        mtime: i64,
    },
    File {
        mode: u32,
        mtime: i64,
        sha256: String,
        size: u64,
    },
    Symlink {
        target: PathBuf,
    },
}

#[cfg(unix)]
fn mode(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(md: &fs::Metadata) -> u32 {
    u32::from(md.permissions().readonly())
}

fn mtime(md: &fs::Metadata) -> i64 {
    filetime::FileTime::from_last_modification_time(md).unix_seconds()
}

/// Every entry below `root` by relative path: kind, mode, mtime (s), content SHA-256.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = e.path().symlink_metadata().expect("lstat");
        let node = if md.file_type().is_symlink() {
            Node::Symlink {
                target: fs::read_link(e.path()).unwrap(),
            }
        } else if md.is_dir() {
            Node::Dir {
                mode: mode(&md),
                mtime: mtime(&md),
            }
        } else {
            let mut h = Sha256::new();
            let mut f = fs::File::open(e.path()).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Node::File {
                mode: mode(&md),
                mtime: mtime(&md),
                sha256: hex::encode(h.finalize()),
                size: md.len(),
            }
        };
        out.insert(rel, node);
    }
    out
}

/// Asserts two trees are identical (kinds, modes, mtimes, contents, link targets).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let sa = snapshot(a);
    let sb = snapshot(b);
    let ka: Vec<_> = sa.keys().collect();
    let kb: Vec<_> = sb.keys().collect();
    assert_eq!(ka, kb, "the trees have different paths");
    for (k, va) in &sa {
        assert_eq!(va, &sb[k], "`{k}` differs");
    }
}

/// Sets a path's mtime (seconds).
pub fn set_mtime(p: &Path, secs: i64) {
    filetime::set_symlink_file_times(
        p,
        filetime::FileTime::from_unix_time(secs, 0),
        filetime::FileTime::from_unix_time(secs, 0),
    )
    .unwrap();
}

/// Whether the test runs as root (permission checks do not apply to root).
#[cfg(unix)]
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
