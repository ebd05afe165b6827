//! Browsing an artifact without restoring it (`list_artifact`) and selective restore of file
//! trees (issue 9): listings equal the manifest, a tampered artifact is refused, include roots
//! and globs restore exactly the selected entries (and their parents), a pattern that matches
//! nothing and a hard link outside the selection are refused with the target untouched.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{cipher, local_sink, set_mtime};
use wst::core::{
    ArtifactName, ArtifactVerifier, BackupJob, Cipher, EntryKind, Error, FileTreeSource,
    ReadLimits, RestoreOptions, Selection, Sink, list_artifact, restore,
};

/// Two trees: `wst/` (files, a nested JSON, a symlink, a hard link pair in two directories)
/// and `wst-api/` (config JSON, source).
fn trees(root: &Path) {
    for (path, text) in [
        ("wst/public/index.html", "<h1>wst</h1>"),
        ("wst/public/data/tenants.json", r#"{"tenants": 2}"#),
        ("wst/a/orig.txt", "shared by a hard link"),
        ("wst/notes.txt", "notes"),
        ("wst-api/config/app.json", r#"{"port": 8080}"#),
        ("wst-api/config/secrets/empty.txt", ""),
        ("wst-api/src/main.rs", "fn main() {}"),
    ] {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
    }
    fs::create_dir_all(root.join("wst/b")).unwrap();
    fs::hard_link(root.join("wst/a/orig.txt"), root.join("wst/b/link.txt")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("../notes.txt", root.join("wst/public/notes-link")).unwrap();
    set_mtime(&root.join("wst/public/data"), 1_600_000_000);
    set_mtime(&root.join("wst/public"), 1_600_000_100);
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    sink: Arc<dyn Sink>,
    cipher: Arc<dyn Cipher>,
    name: ArtifactName,
}

async fn backed_up() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    trees(&dir.join("src"));
    let sink = local_sink("local-c", &dir.join("C")).await;
    let cipher = cipher();
    let job = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(
            FileTreeSource::new(dir.join("src/wst"), "wst").unwrap(),
        ))
        .source(Arc::new(
            FileTreeSource::new(dir.join("src/wst-api"), "wst-api").unwrap(),
        ))
        .sink(Arc::clone(&sink))
        .verifier(ArtifactVerifier::new().require("wst/"))
        .build()
        .unwrap();
    let report = job.run().await.unwrap();
    Fixture {
        _tmp: tmp,
        dir,
        sink,
        cipher,
        name: report.artifact,
    }
}

/// Every path under `root`, relative, `/`-separated.
fn tree_paths(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_equals_the_manifest_and_tampering_is_refused() {
    let f = backed_up().await;
    let listing = list_artifact(&*f.sink, &f.name, &*f.cipher, ReadLimits::default())
        .await
        .unwrap();
    assert_eq!(listing.artifact, f.name);
    assert_eq!(listing.sink, "local-c");
    let sidecar = listing
        .sidecar
        .as_ref()
        .expect("a complete artifact has a sidecar");
    assert!(sidecar.is_verified());
    assert_eq!(listing.ciphertext_bytes, sidecar.ciphertext_size);
    assert_eq!(listing.entries.len(), listing.manifest.entries.len());
    for (l, m) in listing.entries.iter().zip(&listing.manifest.entries) {
        assert_eq!(
            (
                &l.path,
                &l.kind,
                l.size,
                l.mode,
                l.mtime.as_second(),
                &l.sha256
            ),
            (&m.path, &m.kind, m.size, m.mode, m.mtime, &m.sha256)
        );
    }
    let paths: BTreeSet<&str> = listing.entries.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "wst",
        "wst/public/data/tenants.json",
        "wst-api/config/app.json",
        "wst-api/src/main.rs",
    ] {
        assert!(paths.contains(p), "{p} listed");
    }
    let app = listing
        .entries
        .iter()
        .find(|e| e.path == "wst-api/config/app.json")
        .unwrap();
    assert_eq!(app.size, 14);
    assert!(
        app.to_string().starts_with("-rw") && app.to_string().ends_with(" wst-api/config/app.json"),
        "{app}"
    );
    assert_eq!(
        listing
            .manifest
            .sources
            .iter()
            .map(|s| s.root.as_str())
            .collect::<Vec<_>>(),
        ["wst/", "wst-api/"]
    );
    let sel = Selection::new(["**/*.json"]).unwrap();
    assert_eq!(
        listing
            .select(&sel)
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
        ["wst/public/data/tenants.json", "wst-api/config/app.json"]
    );

    // A wrong key is refused.
    let other = cipher();
    let err = list_artifact(&*f.sink, &f.name, &*other, ReadLimits::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cipher { .. }), "{err}");

    // One flipped ciphertext byte: an error, never a partial list.
    let object = f.dir.join("C").join(f.name.artifact_object());
    let mut bytes = fs::read(&object).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&object, &bytes).unwrap();
    let err = list_artifact(&*f.sink, &f.name, &*f.cipher, ReadLimits::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cipher { .. }), "{err}");

    // Truncation (the end of the stream missing) is refused too.
    fs::write(&object, &bytes[..mid]).unwrap();
    let err = list_artifact(&*f.sink, &f.name, &*f.cipher, ReadLimits::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cipher { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_restore_writes_exactly_the_selection_and_its_parents() {
    let f = backed_up().await;
    let target = f.dir.join("restore");
    let options = RestoreOptions::isolated(&target).include(["wst-api/config/", "**/*.json"]);
    let report = restore(&*f.sink, &f.name, &*f.cipher, &options)
        .await
        .unwrap();
    let expected: BTreeSet<String> = [
        "wst",
        "wst/public",
        "wst/public/data",
        "wst/public/data/tenants.json",
        "wst-api",
        "wst-api/config",
        "wst-api/config/app.json",
        "wst-api/config/secrets",
        "wst-api/config/secrets/empty.txt",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        tree_paths(&target),
        expected,
        "nothing outside the selection"
    );
    assert_eq!(
        fs::read_to_string(target.join("wst-api/config/app.json")).unwrap(),
        r#"{"port": 8080}"#
    );
    // Selected: wst-api/config, its 2 children + secrets dir, tenants.json = 5 entries.
    assert_eq!(report.entries, 5);
    assert_eq!(report.selection, ["wst-api/config/", "**/*.json"]);
    let listed = list_artifact(&*f.sink, &f.name, &*f.cipher, ReadLimits::default())
        .await
        .unwrap();
    assert_eq!(report.skipped, listed.entries.len() as u64 - 5);
    let m = report
        .checks
        .iter()
        .find(|c| c.name == "manifest_entries")
        .unwrap();
    assert!(
        m.passed && m.detail.starts_with("5 selected entries match"),
        "{}",
        m.detail
    );
    // Parents that were not selected keep their archived mtime.
    let mtime = |p: &str| {
        filetime::FileTime::from_last_modification_time(&fs::metadata(target.join(p)).unwrap())
            .unix_seconds()
    };
    assert_eq!(mtime("wst/public/data"), 1_600_000_000);
    assert_eq!(mtime("wst/public"), 1_600_000_100);

    // A root restores its whole tree, and a symlink comes back as a link.
    let target = f.dir.join("restore-root");
    restore(
        &*f.sink,
        &f.name,
        &*f.cipher,
        &RestoreOptions::isolated(&target).include(["wst"]),
    )
    .await
    .unwrap();
    let got = tree_paths(&target);
    assert!(
        got.iter().all(|p| p == "wst" || p.starts_with("wst/")),
        "{got:?}"
    );
    assert_eq!(
        got,
        tree_paths(&f.dir.join("src"))
            .into_iter()
            .filter(|p| p == "wst" || p.starts_with("wst/"))
            .collect()
    );
    #[cfg(unix)]
    assert_eq!(
        fs::read_link(target.join("wst/public/notes-link")).unwrap(),
        Path::new("../notes.txt")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excludes_leave_subtrees_out() {
    let f = backed_up().await;
    let target = f.dir.join("restore");
    let report = restore(
        &*f.sink,
        &f.name,
        &*f.cipher,
        &RestoreOptions::isolated(&target)
            .include(["wst-api/"])
            .exclude(["wst-api/config/secrets/", "*.md"]),
    )
    .await
    .unwrap();
    assert_eq!(
        tree_paths(&target),
        [
            "wst-api",
            "wst-api/config",
            "wst-api/config/app.json",
            "wst-api/src",
            "wst-api/src/main.rs"
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
    );
    assert_eq!(report.exclude, ["wst-api/config/secrets/", "*.md"]);

    // Excludes alone: everything else.
    let target = f.dir.join("restore-all-but");
    let report = restore(
        &*f.sink,
        &f.name,
        &*f.cipher,
        &RestoreOptions::isolated(&target).exclude(["wst"]),
    )
    .await
    .unwrap();
    assert!(report.selection.is_empty());
    let got = tree_paths(&target);
    assert_eq!(got.len(), 7, "{got:?}");
    assert!(got.iter().all(|p| p.starts_with("wst-api")), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_matching_nothing_is_named_and_nothing_is_restored() {
    let f = backed_up().await;
    let target = f.dir.join("restore");
    let options = RestoreOptions::isolated(&target).include(["wst-api/", "tenants/**", "*.pdf"]);
    let err = restore(&*f.sink, &f.name, &*f.cipher, &options)
        .await
        .unwrap_err();
    match &err {
        Error::SelectionUnmatched { artifact, patterns } => {
            assert_eq!(artifact, &f.name.to_string());
            assert_eq!(patterns, &["tenants/**", "*.pdf"]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("`tenants/**`, `*.pdf`"), "{err}");
    assert!(!target.exists(), "the target is untouched");
    let leftovers: Vec<_> = fs::read_dir(&f.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("wst-staging"))
        .collect();
    assert!(leftovers.is_empty(), "staging removed: {leftovers:?}");

    // An invalid pattern is refused before anything is read.
    let err = restore(
        &*f.sink,
        &f.name,
        &*f.cipher,
        &RestoreOptions::isolated(&target).include(["../etc/**"]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("`../etc/**`")),
        "{err}"
    );
    assert!(!target.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_link_outside_the_selection_is_refused_by_name() {
    let f = backed_up().await;
    let listing = list_artifact(&*f.sink, &f.name, &*f.cipher, ReadLimits::default())
        .await
        .unwrap();
    // The archive stores the first path met as the file and the other as a link to it.
    let (link, target_path) = listing
        .entries
        .iter()
        .find_map(|e| match &e.kind {
            EntryKind::Hardlink { target } => Some((e.path.clone(), target.clone())),
            _ => None,
        })
        .expect("the hard link pair is archived as a link");
    let link_dir = link.rsplit_once('/').unwrap().0.to_owned() + "/";
    let target = f.dir.join("restore");
    let err = restore(
        &*f.sink,
        &f.name,
        &*f.cipher,
        &RestoreOptions::isolated(&target).include([link_dir.as_str()]),
    )
    .await
    .unwrap_err();
    match &err {
        Error::SelectionIncomplete { path, target } => {
            assert_eq!((path, target), (&link, &target_path));
        }
        other => panic!("{other}"),
    }
    assert!(!target.exists(), "the target is untouched");

    // Selecting the link's target too restores the pair as a hard link.
    restore(
        &*f.sink,
        &f.name,
        &*f.cipher,
        &RestoreOptions::isolated(&target).include([link_dir.as_str(), target_path.as_str()]),
    )
    .await
    .unwrap();
    assert_eq!(
        fs::read_to_string(target.join(&link)).unwrap(),
        "shared by a hard link"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(target.join(&link)).unwrap();
        let b = fs::metadata(target.join(&target_path)).unwrap();
        assert_eq!(a.ino(), b.ino(), "restored as a hard link");
    }
}
