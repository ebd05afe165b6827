//! End-to-end file-tree backups (issue 3): round trip, doctrine F2, unreadable files, a sink
//! failing mid-write, kill -9 during a backup, and malicious archives at restore.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::{assert_same_tree, cipher, local_sink, set_mtime};
use wst::core::{
    ArtifactName, ArtifactVerifier, BackupJob, BreakGlass, ByteStream, Cipher, Error,
    FileTreeSource, ObjectMeta, RestoreOptions, RunOutcome, SealWriter, Sink, SinkExt, SinkInfo,
    SinkUpload, Verifier, restore,
};

/// Builds the awkward tree of the issue: empty files and dirs, a > 1 GiB sparse file, unicode
/// and 200+ byte names, symlinks, hard links, modes, old mtimes.
fn awkward_tree(root: &Path) {
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("nested/deeper/deepest")).unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(
        root.join("nested/deeper/deepest/leaf.json"),
        br#"{"k": [1, 2, 3]}"#,
    )
    .unwrap();
    let long = "é".repeat(105) + ".txt"; // 214 bytes
    assert!(long.len() > 200);
    fs::write(root.join(&long), "long name").unwrap();
    fs::write(root.join("Ünïcødé — 日本語 🚀.md"), "unicode").unwrap();
    let mut text = String::new();
    for i in 0..20_000 {
        writeln!(
            text,
            "line {i}: the quick brown fox jumps over the lazy dog"
        )
        .unwrap();
    }
    fs::write(root.join("nested/app.log"), &text).unwrap();
    // > 1 GiB sparse file with data at both ends.
    let big = root.join("nested/sparse.bin");
    let mut f = fs::File::create(&big).unwrap();
    f.write_all(b"head").unwrap();
    f.set_len((1 << 30) + 4096).unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new().write(true).open(&big).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::End(-4)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{PermissionsExt, symlink};
        fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("secret.conf"), "x=1\n").unwrap();
        fs::set_permissions(root.join("secret.conf"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(root.join("readonly.txt"), "ro\n").unwrap();
        fs::set_permissions(root.join("readonly.txt"), fs::Permissions::from_mode(0o444)).unwrap();
        symlink("nested/app.log", root.join("link-to-log")).unwrap();
        symlink("../empty.txt", root.join("nested/up-link")).unwrap();
        symlink("does-not-exist", root.join("dangling")).unwrap();
        fs::hard_link(root.join("nested/app.log"), root.join("hardlink.log")).unwrap();
    }
    for p in [
        "empty.txt",
        "nested/app.log",
        "nested/deeper/deepest/leaf.json",
        "empty-dir",
        "nested/deeper/deepest",
        "nested/deeper",
    ] {
        set_mtime(&root.join(p), 1_600_000_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_of_an_awkward_tree_to_two_local_sinks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    awkward_tree(&src);
    let c = local_sink("local-c", &tmp.path().join("C")).await;
    let d = local_sink("mirror-d", &tmp.path().join("D")).await;
    let cipher = cipher();
    let job = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d))
        .verifier(ArtifactVerifier::new().require("wst/"))
        .build()
        .unwrap();
    let report = job.run().await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Success, "{report:#?}");
    assert!(report.verification.as_ref().unwrap().passed());
    assert_eq!(report.written_sinks().count(), 2);
    assert!(report.bytes_read > 1 << 30);
    assert_eq!(report.sources.len(), 1);
    assert_eq!(
        (
            report.sources[0].name.as_str(),
            report.sources[0].kind.as_str()
        ),
        ("wst", "files")
    );
    assert!(
        report.compression_ratio > 100.0,
        "sparse data compresses: {}",
        report.compression_ratio
    );
    // Both copies are identical and carry a verified sidecar.
    for sink in [&c, &d] {
        let names: Vec<String> = sink
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            names,
            vec![
                report.artifact.sidecar_object(),
                report.artifact.artifact_object()
            ],
            "listed sorted by name"
        );
        let sidecar: wst::core::Sidecar = serde_json::from_slice(
            &sink
                .get_bytes(&report.artifact.sidecar_object(), 1 << 20)
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(sidecar.is_verified());
        assert_eq!(sidecar.ciphertext_sha256, report.ciphertext_sha256);
        assert_eq!(sidecar.key_fingerprints, cipher.recipients());
    }
    // No plaintext in the stored artifact.
    let stored = fs::read(tmp.path().join("C").join(report.artifact.artifact_object())).unwrap();
    assert!(!stored.windows(18).any(|w| w == b"the quick brown fo"));

    // Restore from the mirror into an isolated directory and compare byte for byte.
    let target = tmp.path().join("restore");
    let rr = restore(
        &*d,
        &report.artifact,
        &*cipher,
        &RestoreOptions::isolated(&target),
    )
    .await
    .unwrap();
    assert!(rr.checks.iter().all(|c| c.passed));
    assert_eq!(rr.entries, report.entries);
    assert_same_tree(&src, &target.join("wst"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(target.join("wst/nested/app.log")).unwrap();
        let b = fs::metadata(target.join("wst/hardlink.log")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hard link restored as a link");
    }
}

#[tokio::test]
async fn missing_root_is_doctrine_f2_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("wst-api");
    let c = local_sink("local-c", &tmp.path().join("C")).await;
    let job = BackupJob::builder(cipher())
        .source(Arc::new(FileTreeSource::new(&missing, "wst-api").unwrap()))
        .sink(Arc::clone(&c))
        .build()
        .unwrap();
    let err = job.run().await.unwrap_err();
    match &err {
        Error::SourceMissing { path } => assert_eq!(path, &missing),
        other => panic!("expected SourceMissing, got {other:?}"),
    }
    assert!(err.to_string().contains("F2"));
    assert!(err.to_string().contains(&missing.display().to_string()));
    assert!(c.list("").await.unwrap().is_empty(), "nothing published");
}

/// Wraps a real sink and fails every write after `fail_after` bytes (a disk that fills up, a
/// network that drops), to prove the other sinks complete and no artifact appears here.
#[derive(Debug)]
struct FailingSink {
    inner: Arc<dyn Sink>,
    fail_after: u64,
}

struct FailingUpload {
    inner: Box<dyn SinkUpload>,
    written: u64,
    fail_after: u64,
}

#[async_trait]
impl SinkUpload for FailingUpload {
    async fn write(&mut self, data: Bytes) -> wst::core::Result<()> {
        self.written += data.len() as u64;
        if self.written > self.fail_after {
            return Err(Error::Sink {
                sink: "failing".into(),
                operation: "put",
                name: "artifact".into(),
                retryable: true,
                source: "No space left on device (injected)".into(),
            });
        }
        self.inner.write(data).await
    }
    async fn complete(self: Box<Self>) -> wst::core::Result<ObjectMeta> {
        self.inner.complete().await
    }
    async fn abort(self: Box<Self>) -> wst::core::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl Sink for FailingSink {
    fn info(&self) -> &SinkInfo {
        self.inner.info()
    }
    async fn put(&self, name: &str) -> wst::core::Result<Box<dyn SinkUpload>> {
        Ok(Box::new(FailingUpload {
            inner: self.inner.put(name).await?,
            written: 0,
            fail_after: self.fail_after,
        }))
    }
    async fn get(&self, name: &str) -> wst::core::Result<ByteStream> {
        self.inner.get(name).await
    }
    async fn head(&self, name: &str) -> wst::core::Result<ObjectMeta> {
        self.inner.head(name).await
    }
    async fn list(&self, prefix: &str) -> wst::core::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, name: &str) -> wst::core::Result<()> {
        self.inner.delete(name).await
    }
}

/// Incompressible pseudo-random bytes (xorshift), cheap to generate.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_failing_mid_write_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("noise.bin"), noise(24 << 20, 7)).unwrap();
    let c = local_sink("local-c", &tmp.path().join("C")).await;
    let d_inner = local_sink("mirror-d", &tmp.path().join("D")).await;
    let d: Arc<dyn Sink> = Arc::new(FailingSink {
        inner: d_inner,
        fail_after: 5 << 20,
    });
    let cipher = cipher();
    let job = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d))
        .build()
        .unwrap();
    let report = job.run().await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Degraded);
    let (ok, failed) = (&report.sinks[0], &report.sinks[1]);
    assert!(ok.written && ok.error.is_none());
    assert!(!failed.written);
    assert!(
        failed.error.as_deref().unwrap().contains("No space left"),
        "{failed:?}"
    );
    assert!(report.verification.as_ref().unwrap().passed());
    assert_eq!(
        c.list("").await.unwrap().len(),
        2,
        "artifact and sidecar on C:"
    );
    assert!(
        d.list("").await.unwrap().is_empty(),
        "nothing under a final name on D:"
    );
    let leftovers: Vec<_> = fs::read_dir(tmp.path().join("D")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "the aborted upload's temporary file was removed"
    );
    let err = wst::core::ArtifactVerifier::new()
        .verify(&*d, &report.artifact, &*cipher)
        .await
        .unwrap();
    assert!(!err.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_failing_is_an_error_and_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("noise.bin"), noise(8 << 20, 3)).unwrap();
    let sinks: Vec<Arc<dyn Sink>> = vec![
        Arc::new(FailingSink {
            inner: local_sink("a", &tmp.path().join("A")).await,
            fail_after: 1 << 20,
        }),
        Arc::new(FailingSink {
            inner: local_sink("b", &tmp.path().join("B")).await,
            fail_after: 2 << 20,
        }),
    ];
    let mut b =
        BackupJob::builder(cipher()).source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()));
    for s in &sinks {
        b = b.sink(Arc::clone(s));
    }
    let err = b.build().unwrap().run().await.unwrap_err();
    assert!(matches!(err, Error::AllSinksFailed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("a: ") && err.to_string().contains("b: "),
        "{err}"
    );
    for s in &sinks {
        assert!(s.list("").await.unwrap().is_empty());
    }
}

/// Environment of the child process used by the crash and permission tests.
const CHILD_ENV: &str = "WST_TEST_CHILD_BACKUP";

/// Runs one backup from `WST_TEST_CHILD_BACKUP=src|sink|keyfile` and prints the outcome. It is
/// the body of a child process started by the tests below, not a test of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child-process entry point for kill_9_during_a_backup and unreadable_file; not a test by itself"]
async fn child_backup_process() {
    let spec = std::env::var(CHILD_ENV).expect("run by the parent test only");
    let parts: Vec<&str> = spec.split('|').collect();
    let cipher: Arc<dyn Cipher> =
        Arc::new(wst::crypto::AeadCipher::from_key_file(parts[2]).unwrap());
    let sink = local_sink("child", Path::new(parts[1])).await;
    let job = BackupJob::builder(cipher)
        .source(Arc::new(FileTreeSource::new(parts[0], "wst").unwrap()))
        .sink(sink)
        .build()
        .unwrap();
    match job.run().await {
        Ok(r) => println!("CHILD-RESULT ok {:?}", r.outcome),
        Err(e) => println!("CHILD-RESULT err {e}"),
    }
}

fn child_command(src: &Path, sink: &Path, key: &Path) -> std::process::Command {
    child_command_with(&std::env::current_exe().unwrap(), src, sink, key)
}

fn child_command_with(exe: &Path, src: &Path, sink: &Path, key: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "child_backup_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(
        CHILD_ENV,
        format!("{}|{}|{}", src.display(), sink.display(), key.display()),
    );
    cmd
}

#[cfg(unix)]
#[test]
fn kill_9_during_a_backup_leaves_no_complete_looking_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        fs::write(src.join(format!("noise-{i}.bin")), noise(64 << 20, i + 1)).unwrap();
    }
    let key = tmp.path().join("backup.key");
    wst::crypto::Key::generate()
        .unwrap()
        .write_to(&key)
        .unwrap();
    let sink_dir = tmp.path().join("C");
    fs::create_dir_all(&sink_dir).unwrap();
    let mut child = child_command(&src, &sink_dir, &key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the upload is under way (a temporary file with data), then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let busy = fs::read_dir(&sink_dir).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with('.')
                && e.metadata().is_ok_and(|m| m.len() > 4 << 20)
        });
        if busy {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child finished before it could be killed"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let visible: Vec<String> = fs::read_dir(&sink_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    // Only the run's name claim is left (status reports it; the repository's prune removes
    // it after an hour): no artifact, no sidecar.
    assert!(
        visible.len() == 1 && visible[0].ends_with(wst::core::CLAIM_EXTENSION),
        "complete-looking objects after kill -9: {visible:?}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sink = local_sink("after-crash", &sink_dir).await;
        assert!(
            sink.list("")
                .await
                .unwrap()
                .iter()
                .all(|m| m.name.ends_with(wst::core::CLAIM_EXTENSION))
        );
        // And the next run works on the same sink.
        let cipher: Arc<dyn Cipher> =
            Arc::new(wst::crypto::AeadCipher::from_key_file(&key).unwrap());
        fs::remove_dir_all(&src).unwrap();
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("small.txt"), "ok").unwrap();
        let report = BackupJob::builder(cipher)
            .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
            .sink(sink)
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
        assert_eq!(report.outcome, RunOutcome::Success);
    });
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_fails_the_run_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(src.join("conf")).unwrap();
    fs::write(src.join("conf/readable.txt"), "fine").unwrap();
    let locked = src.join("conf/locked.txt");
    fs::write(&locked, "no").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let key = tmp.path().join("backup.key");
    wst::crypto::Key::generate()
        .unwrap()
        .write_to(&key)
        .unwrap();
    let sink_dir = tmp.path().join("C");
    fs::create_dir_all(&sink_dir).unwrap();
    // As root, the child runs as `nobody`, who may not be able to reach the test binary where
    // the checkout lives: run a copy from this test's world-readable directory.
    let exe = tmp.path().join("child-test-binary");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = child_command_with(&exe, &src, &sink_dir, &key);
    if common::is_root() {
        // Root reads any file: run the backup as `nobody`, who cannot read the locked file.
        let nobody = 65534;
        std::os::unix::fs::chown(&key, Some(nobody), Some(nobody)).unwrap();
        std::os::unix::fs::chown(&sink_dir, Some(nobody), Some(nobody)).unwrap();
        cmd.uid(nobody).gid(nobody);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("CHILD-RESULT").map(|i| &l[i..]))
        .unwrap_or_else(|| {
            panic!(
                "no result from the child: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(line.starts_with("CHILD-RESULT err cannot read"), "{line}");
    assert!(line.contains("locked.txt"), "{line}");
    let visible = fs::read_dir(&sink_dir)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(visible, 0, "nothing published after a failed run");
}

// ---- malicious archives ----------------------------------------------------------------

/// Writes a tar whose entries come from `build` as a sealed artifact on `sink`.
async fn plant_artifact(
    sink: &Arc<dyn Sink>,
    cipher: &Arc<dyn Cipher>,
    build: impl FnOnce(&mut tar::Builder<Vec<u8>>),
) -> ArtifactName {
    let mut tar = tar::Builder::new(Vec::new());
    build(&mut tar);
    let tar = tar.into_inner().unwrap();
    let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let mut w = SealWriter::new(&**cipher, Vec::new()).unwrap();
    w.write_all(&zst).unwrap();
    let sealed = w.finish().unwrap();
    let name = ArtifactName::new("wst-backup", jiff::Timestamp::now()).unwrap();
    sink.put_bytes(&name.artifact_object(), Bytes::from(sealed))
        .await
        .unwrap();
    name
}

fn raw_header(path: &[u8], kind: tar::EntryType, size: u64, link: Option<&[u8]>) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

async fn assert_refused(build: impl FnOnce(&mut tar::Builder<Vec<u8>>), outside: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local_sink("c", &tmp.path().join("C")).await;
    let cipher = cipher();
    let name = plant_artifact(&sink, &cipher, build).await;
    let target = tmp.path().join("jail/restore");
    let err = restore(&*sink, &name, &*cipher, &RestoreOptions::isolated(&target))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err:?}");
    assert!(!target.exists(), "nothing promoted into the target");
    for p in [
        tmp.path().join(outside),
        tmp.path().join("jail").join(outside),
    ] {
        assert!(
            !p.exists(),
            "{} was written outside the target",
            p.display()
        );
    }
    let jail: Vec<PathBuf> = fs::read_dir(tmp.path().join("jail"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(jail.is_empty(), "staging cleaned up: {jail:?}");
}

#[tokio::test]
async fn restore_refuses_dot_dot_paths() {
    assert_refused(
        |t| {
            let h = raw_header(b"wst/../../evil.txt", tar::EntryType::Regular, 4, None);
            t.append(&h, &b"evil"[..]).unwrap();
        },
        "evil.txt",
    )
    .await;
}

#[tokio::test]
async fn restore_refuses_absolute_paths() {
    let abs = std::env::temp_dir().join(format!("wst-evil-{}", std::process::id()));
    let abs_s = abs.to_string_lossy().into_owned();
    assert_refused(
        |t| {
            let h = raw_header(abs_s.as_bytes(), tar::EntryType::Regular, 4, None);
            t.append(&h, &b"evil"[..]).unwrap();
        },
        "evil.txt",
    )
    .await;
    assert!(!abs.exists());
}

#[tokio::test]
async fn restore_refuses_symlink_escapes() {
    assert_refused(
        |t| {
            let h = raw_header(b"wst/link", tar::EntryType::Symlink, 0, Some(b"../../.."));
            t.append(&h, std::io::empty()).unwrap();
            let h = raw_header(b"wst/link/evil.txt", tar::EntryType::Regular, 4, None);
            t.append(&h, &b"evil"[..]).unwrap();
        },
        "evil.txt",
    )
    .await;
}

/// Device nodes and FIFOs are refused (at verification too: one entry-acceptance rule).
/// setuid/setgid bits are no longer refused: restore drops them with a warning (wst-core's
/// `tests/reader_bounds.rs` covers that, with a manifest the planted artifacts here lack).
#[tokio::test]
async fn restore_refuses_device_nodes_and_fifos() {
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        assert_refused(
            |t| {
                let h = raw_header(b"wst/null", kind, 0, None);
                t.append(&h, std::io::empty()).unwrap();
            },
            "null",
        )
        .await;
    }
}

#[tokio::test]
async fn restore_refuses_non_empty_and_production_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("prod/wst");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.html"), "<h1>live</h1>").unwrap();
    let sink = local_sink("c", &tmp.path().join("C")).await;
    let cipher = cipher();
    let report = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&sink))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let name = report.artifact;
    // Non-empty target.
    let busy = tmp.path().join("busy");
    fs::create_dir_all(&busy).unwrap();
    fs::write(busy.join("keep.txt"), "keep").unwrap();
    let err = restore(&*sink, &name, &*cipher, &RestoreOptions::isolated(&busy))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RestoreTarget { .. }) && err.to_string().contains("not empty"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(busy.join("keep.txt")).unwrap(), "keep");
    // The production path itself, and a path inside it.
    for target in [tmp.path().join("prod"), src.join("restored")] {
        let opts = RestoreOptions::isolated(&target).protect([tmp.path().join("prod")]);
        let err = restore(&*sink, &name, &*cipher, &opts).await.unwrap_err();
        assert!(err.to_string().contains("break-glass"), "{err}");
    }
    assert_eq!(
        fs::read_to_string(src.join("index.html")).unwrap(),
        "<h1>live</h1>"
    );
    // With an explicit break-glass authorization the production restore proceeds and is recorded.
    fs::write(src.join("index.html"), "<h1>defaced</h1>").unwrap();
    let mut opts =
        RestoreOptions::isolated(tmp.path().join("prod")).protect([tmp.path().join("prod")]);
    opts.allow_non_empty = true;
    opts.break_glass = Some(BreakGlass {
        authorized_by: "alice (L6)".into(),
        reason: "INC-42 defacement".into(),
    });
    let rr = restore(&*sink, &name, &*cipher, &opts).await.unwrap();
    assert_eq!(rr.break_glass.as_ref().unwrap().authorized_by, "alice (L6)");
    assert_eq!(
        fs::read_to_string(src.join("index.html")).unwrap(),
        "<h1>live</h1>"
    );
}

#[tokio::test]
async fn a_truncated_artifact_restores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data.bin"), noise(3 << 20, 11)).unwrap();
    let sink = local_sink("c", &tmp.path().join("C")).await;
    let cipher = cipher();
    let report = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&sink))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let path = tmp.path().join("C").join(report.artifact.artifact_object());
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let target = tmp.path().join("restore");
    let err = restore(
        &*sink,
        &report.artifact,
        &*cipher,
        &RestoreOptions::isolated(&target),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Cipher { .. }), "{err:?}");
    assert!(!target.exists());
    let v = ArtifactVerifier::new()
        .verify(&*sink, &report.artifact, &*cipher)
        .await
        .unwrap();
    assert!(!v.passed());
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    assert!(
        failed.contains(&"authenticated") && failed.contains(&"artifact_present"),
        "{v:#?}"
    );
}
