//! `FileTreeSource`: a directory tree archived under a configured root, with exclusions,
//! `one_file_system` and guards against silent emptiness (issue 15).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::archive::validate_archive_path;
use crate::artifact::{ArtifactName, SourceCounts};
use crate::error::{Error, Result};
use crate::source::{EntryKind, EntryMeta, EntryWriter, PreparedSource, Source, SourceDescription};

/// Archives the directory `path` under the archive root `root` (e.g. `C:\wst\wst-api` under
/// `wst-api/`).
///
/// Behaviour:
/// - Symlinks are stored as links and never followed; hard links (Unix) are stored once and
///   then as links to the first path.
/// - Mode bits and modification times are kept (on Windows: `0o444`/`0o644` from the read-only
///   attribute, `0o755` for directories).
/// - Entries are archived in file-name order, so the same tree gives the same archive.
/// - A missing root is [`Error::SourceMissing`] (doctrine 026 F2); an unreadable file or
///   directory fails the run with [`Error::SourceRead`] naming it — nothing is skipped silently
///   (exclude it with [`FileTreeSource::exclude`] if it must not be backed up).
/// - A file whose size or modification time changes while it is read is stored as read and
///   reported as a warning (run report and manifest flag `changed`).
/// - Sockets, FIFOs and device nodes are not archived; each is reported as a warning.
/// - File names must be valid UTF-8 (archive paths are UTF-8); another name fails the run.
/// - Guards against silent emptiness (issue 15): a tree with nothing under its root is archived
///   with a warning in the run report (an unmounted volume looks like an empty mount point);
///   [`FileTreeSource::min_entries`] and [`FileTreeSource::max_shrink`] turn such a tree into
///   a failed run ([`Error::SourceGuard`]) that publishes nothing.
#[derive(Debug, Clone)]
pub struct FileTreeSource {
    path: PathBuf,
    root: String,
    name: String,
    exclude: Exclusions,
    one_file_system: bool,
    min_entries: u64,
    max_shrink: Option<f64>,
    previous: Option<(ArtifactName, SourceCounts)>,
}

/// The compiled `exclude` globs of a tree.
#[derive(Debug, Clone, Default)]
struct Exclusions {
    /// The patterns as given, for the manifest description.
    patterns: Vec<String>,
    /// Matched against the path relative to the tree (`cache/tmp`) and the archive path
    /// (`wst/cache/tmp`).
    paths: GlobSet,
    /// Patterns without `/`, matched against the file name at any depth (`node_modules`,
    /// `*.log`).
    names: GlobSet,
}

impl Exclusions {
    fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    fn matches(&self, relative: &str, archive: &str, file_name: &str) -> bool {
        !self.is_empty()
            && (self.paths.is_match(relative)
                || self.paths.is_match(archive)
                || self.names.is_match(file_name))
    }
}

fn glob(pattern: &str) -> Result<Glob> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| Error::Config(format!("exclude pattern `{pattern}`: {e}")))
}

impl FileTreeSource {
    /// Archives `path` under `root` (written without trailing slash, e.g. `wst-api`).
    ///
    /// # Errors
    /// [`Error::Config`] when `root` is not a plain relative archive path.
    pub fn new(path: impl Into<PathBuf>, root: &str) -> Result<Self> {
        let root = root.trim_end_matches('/').to_owned();
        validate_archive_path(&root, false)
            .map_err(|r| Error::Config(format!("archive root `{root}`: {r}")))?;
        Ok(Self {
            path: path.into(),
            name: root.clone(),
            root,
            exclude: Exclusions::default(),
            one_file_system: false,
            min_entries: 0,
            max_shrink: None,
            previous: None,
        })
    }

    /// Leaves out every entry matching one of `patterns` (globs; issue 15; `[[files]] exclude`
    /// and `wst backup --exclude` in the CLI), adding to the patterns given before. An excluded
    /// directory is not entered: nothing under it is read, so an unreadable cache cannot fail
    /// the run.
    ///
    /// A pattern matches an entry when it matches
    /// - the path relative to the tree (`cache/**`, `logs/*.log`; a leading `/` or `./` is
    ///   ignored), or
    /// - its archive path (`wst/cache/**`, as `ls` and `restore --exclude` write it), or,
    /// - for a pattern without `/` (`node_modules`, `*.tmp`), its file name at any depth.
    ///
    /// `*` and `?` do not cross `/`; `**` does; `[abc]` and `{a,b}` work as in the `globset`
    /// crate; a trailing `/` is ignored (a directory match excludes its subtree anyway). The
    /// tree's root itself is never excluded.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty or malformed pattern.
    pub fn exclude<I, S>(mut self, patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = std::mem::take(&mut self.exclude.patterns);
        all.extend(patterns.into_iter().map(|p| p.as_ref().to_owned()));
        let mut paths = GlobSetBuilder::new();
        let mut names = GlobSetBuilder::new();
        for p in &all {
            let trimmed = p.trim_start_matches("./").trim_start_matches('/');
            let trimmed = trimmed.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(Error::Config(format!(
                    "exclude pattern `{p}` is empty: it would exclude nothing (or everything)"
                )));
            }
            paths.add(glob(trimmed)?);
            if !trimmed.contains('/') {
                names.add(glob(trimmed)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Config(format!("exclude patterns: {e}")))
        };
        self.exclude = Exclusions {
            paths: build(paths)?,
            names: build(names)?,
            patterns: all,
        };
        Ok(self)
    }

    /// Stays on the file system of `path` (issue 15; like `tar --one-file-system`): a
    /// directory on another file system (a mount point) is archived as an empty directory and
    /// not entered. On Unix the device id (`st_dev`) decides; on Windows the volume serial
    /// number (walkdir's `same_file_system`). Default: off (mounted file systems are archived).
    #[must_use]
    pub fn one_file_system(mut self, yes: bool) -> Self {
        self.one_file_system = yes;
        self
    }

    /// Fails the run ([`Error::SourceGuard`], nothing published) when fewer than `n` entries
    /// (directories, files, links) are found under the root, after exclusions (issue 15: an
    /// unmounted volume leaves an empty mount point that would otherwise back up as a
    /// success). Checked before anything of this tree is archived (a walk that stops after `n`
    /// entries), and again after the walk. 0 (the default) switches the guard off.
    #[must_use]
    pub fn min_entries(mut self, n: u64) -> Self {
        self.min_entries = n;
        self
    }

    /// Fails the run ([`Error::SourceGuard`], nothing published) when the tree's entry count or
    /// content bytes fell by more than `fraction` (e.g. `0.5`: to less than half) since the
    /// previous artifact given with [`FileTreeSource::previous`] (issue 15). Checked when the
    /// walk ends, before the artifact is complete: the uploads are aborted and no sink holds
    /// it. Without previous counts (the first backup, or a previous sidecar written before
    /// wst recorded them) there is nothing to compare and the guard does not fire.
    ///
    /// # Errors
    /// [`Error::Config`] when `fraction` is not strictly between 0 and 1.
    pub fn max_shrink(mut self, fraction: f64) -> Result<Self> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Config(format!(
                "max_shrink = {fraction} must be a fraction strictly between 0 and 1 (0.5: fail \
                 when the tree lost more than half of its entries or bytes)"
            )));
        }
        self.max_shrink = Some(fraction);
        Ok(self)
    }

    /// The counts of this tree in the previous artifact `artifact` (from its authenticated
    /// sidecar, [`Sidecar::source`](crate::Sidecar::source)), for [`FileTreeSource::max_shrink`].
    #[must_use]
    pub fn previous(mut self, artifact: ArtifactName, counts: SourceCounts) -> Self {
        self.previous = Some((artifact, counts));
        self
    }

    /// The directory archived.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive root.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The walk over the tree: exclusions applied, one file system when asked, in file-name
    /// order. `excluded` counts the entries left out (a directory counts once).
    fn walk<'a>(
        &'a self,
        excluded: &'a mut u64,
    ) -> walkdir::FilterEntry<walkdir::IntoIter, impl FnMut(&walkdir::DirEntry) -> bool + 'a> {
        let base = &self.path;
        let exclude = &self.exclude;
        let root = &self.root;
        walkdir::WalkDir::new(base)
            .follow_links(false)
            .same_file_system(self.one_file_system)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(move |e| {
                if e.depth() == 0 || exclude.is_empty() {
                    return true;
                }
                let rel = e.path().strip_prefix(base).unwrap_or(e.path());
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let archive = format!("{root}/{rel}");
                let name = e.file_name().to_string_lossy();
                let keep = !exclude.matches(&rel, &archive, &name);
                if !keep {
                    *excluded += 1;
                }
                keep
            })
    }

    /// Entries under the root that a walk would archive, counting no further than `limit`.
    fn count_entries(&self, limit: u64) -> Result<u64> {
        let mut excluded = 0;
        let mut n = 0;
        for item in self.walk(&mut excluded) {
            let item = item.map_err(|e| walk_error(e, &self.path))?;
            let ft = item.file_type();
            if item.depth() > 0 && (ft.is_dir() || ft.is_file() || ft.is_symlink()) {
                n += 1;
                if n >= limit {
                    break;
                }
            }
        }
        Ok(n)
    }
}

fn walk_error(e: walkdir::Error, base: &Path) -> Error {
    let path = e.path().unwrap_or(base).to_path_buf();
    Error::SourceRead {
        path,
        source: e
            .into_io_error()
            .unwrap_or_else(|| io::Error::other("directory walk failed")),
    }
}

#[async_trait]
impl Source for FileTreeSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn prepare(&self) -> Result<Box<dyn PreparedSource>> {
        match fs::metadata(&self.path) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(Error::SourceRead {
                    path: self.path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::SourceMissing {
                    path: self.path.clone(),
                });
            }
            Err(e) => {
                return Err(Error::SourceRead {
                    path: self.path.clone(),
                    source: e,
                });
            }
        }
        if self.min_entries > 0 {
            // Before anything of this tree is archived: an empty mount point fails here.
            let source = self.clone();
            let found =
                tokio::task::spawn_blocking(move || source.count_entries(source.min_entries))
                    .await
                    .map_err(|e| Error::io("counting a tree's entries", io::Error::other(e)))??;
            if found < self.min_entries {
                return Err(self.too_few(found));
            }
        }
        Ok(Box::new(PreparedTree {
            source: self.clone(),
            stats: Stats::default(),
        }))
    }
}

impl FileTreeSource {
    fn too_few(&self, found: u64) -> Error {
        Error::SourceGuard {
            name: self.name.clone(),
            reason: format!(
                "found {found} entries under `{}`, fewer than its min_entries = {} (an \
                 unmounted volume or a wrong path looks like this: check that the volume is \
                 mounted; lower min_entries if the tree really is this small)",
                self.path.display(),
                self.min_entries
            ),
        }
    }

    /// The `max_shrink` guard against the previous artifact's counts: `entries` includes the
    /// root directory, as the sidecar's counts do.
    fn check_shrink(&self, entries: u64, bytes: u64) -> Result<()> {
        let (Some(fraction), Some((artifact, prev))) = (self.max_shrink, &self.previous) else {
            return Ok(());
        };
        let fell =
            |now: u64, before: u64| before > 0 && (now as f64) < before as f64 * (1.0 - fraction);
        let pct = |now: u64, before: u64| 100.0 * (1.0 - now as f64 / before as f64);
        let mut what = Vec::new();
        if fell(entries, prev.entries) {
            what.push(format!(
                "entries fell from {} to {entries} (-{:.1} %)",
                prev.entries,
                pct(entries, prev.entries)
            ));
        }
        if fell(bytes, prev.bytes) {
            what.push(format!(
                "bytes fell from {} to {bytes} (-{:.1} %)",
                prev.bytes,
                pct(bytes, prev.bytes)
            ));
        }
        if what.is_empty() {
            return Ok(());
        }
        Err(Error::SourceGuard {
            name: self.name.clone(),
            reason: format!(
                "`{}`: {} since {artifact}, more than its max_shrink = {} allows (an unmounted \
                 volume, a wrong path or a mass deletion looks like this: check the tree; if \
                 the shrink is intended, raise max_shrink for one run)",
                self.path.display(),
                what.join(", "),
                fraction
            ),
        })
    }
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Stats {
    /// Entries written, the root directory included.
    entries: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    bytes: u64,
    changed: u64,
    skipped_special: u64,
    /// Entries left out by `exclude` (an excluded directory counts once).
    excluded: u64,
    /// Directories on another file system, archived empty (`one_file_system`).
    other_file_systems: u64,
}

struct PreparedTree {
    source: FileTreeSource,
    stats: Stats,
}

fn mtime_of(md: &fs::Metadata) -> i64 {
    match md.modified() {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        },
        Err(_) => 0,
    }
}

#[cfg(unix)]
fn mode_of(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(md: &fs::Metadata) -> u32 {
    if md.is_dir() {
        0o755
    } else if md.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

#[cfg(unix)]
fn hardlink_key(md: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    (md.nlink() > 1).then(|| (md.dev(), md.ino()))
}

#[cfg(not(unix))]
fn hardlink_key(_md: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The device id of a directory (Unix), to count the mount points `one_file_system` leaves
/// unentered; `None` elsewhere (Windows: walkdir compares volume serial numbers itself).
#[cfg(unix)]
#[allow(clippy::unnecessary_wraps)] // `None` on the other platforms
fn device_of(md: &fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(md.dev())
}

#[cfg(not(unix))]
fn device_of(_md: &fs::Metadata) -> Option<u64> {
    None
}

impl PreparedSource for PreparedTree {
    fn description(&self) -> SourceDescription {
        SourceDescription {
            kind: "files".into(),
            name: self.source.name.clone(),
            root: format!("{}/", self.source.root),
            details: serde_json::json!({
                "path": self.source.path.display().to_string(),
                "stats": self.stats,
                "exclude": self.source.exclude.patterns,
                "one_file_system": self.source.one_file_system,
                "min_entries": self.source.min_entries,
                "max_shrink": self.source.max_shrink,
            }),
            listing: std::collections::BTreeMap::new(),
        }
    }

    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> Result<()> {
        let source = self.source.clone();
        let base = &source.path;
        let mut links: HashMap<(u64, u64), String> = HashMap::new();
        let mut excluded = 0;
        let mut root_device = None;
        for item in source.walk(&mut excluded) {
            let item = item.map_err(|e| walk_error(e, base))?;
            let rel = item.path().strip_prefix(base).unwrap_or(item.path());
            let mut archive_path = source.root.clone();
            for comp in rel.components() {
                let s = comp.as_os_str().to_str().ok_or_else(|| Error::SourceRead {
                    path: item.path().to_path_buf(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the file name is not valid UTF-8; rename it or exclude it",
                    ),
                })?;
                archive_path.push('/');
                archive_path.push_str(s);
            }
            let md = item.metadata().map_err(|e| Error::SourceRead {
                path: item.path().to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("metadata failed")),
            })?;
            let ft = item.file_type();
            let mut meta = EntryMeta {
                path: archive_path,
                kind: EntryKind::Dir,
                size: 0,
                mode: mode_of(&md),
                mtime: mtime_of(&md),
            };
            if ft.is_dir() {
                out.add(&meta, &mut io::empty())?;
                self.stats.dirs += 1;
                self.stats.entries += 1;
                if source.one_file_system {
                    match (item.depth(), device_of(&md)) {
                        (0, dev) => root_device = dev,
                        (_, Some(dev)) if Some(dev) != root_device => {
                            self.stats.other_file_systems += 1;
                        }
                        _ => {}
                    }
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(item.path()).map_err(|e| Error::SourceRead {
                    path: item.path().to_path_buf(),
                    source: e,
                })?;
                let target = target.to_str().ok_or_else(|| Error::SourceRead {
                    path: item.path().to_path_buf(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the link target is not valid UTF-8",
                    ),
                })?;
                meta.kind = EntryKind::Symlink {
                    target: target.to_owned(),
                };
                meta.mode = 0o777;
                out.add(&meta, &mut io::empty())?;
                self.stats.symlinks += 1;
                self.stats.entries += 1;
            } else if ft.is_file() {
                if let Some(key) = hardlink_key(&md) {
                    if let Some(first) = links.get(&key) {
                        meta.kind = EntryKind::Hardlink {
                            target: first.clone(),
                        };
                        out.add(&meta, &mut io::empty())?;
                        self.stats.hardlinks += 1;
                        self.stats.entries += 1;
                        continue;
                    }
                    links.insert(key, meta.path.clone());
                }
                let mut file = fs::File::open(item.path()).map_err(|e| Error::SourceRead {
                    path: item.path().to_path_buf(),
                    source: e,
                })?;
                let before = file.metadata().map_err(|e| Error::SourceRead {
                    path: item.path().to_path_buf(),
                    source: e,
                })?;
                meta.kind = EntryKind::File;
                meta.size = before.len();
                meta.mode = mode_of(&before);
                meta.mtime = mtime_of(&before);
                let outcome = out.add(&meta, &mut file)?;
                let after = file.metadata().ok();
                let changed_meta =
                    after.is_none_or(|a| a.len() != before.len() || mtime_of(&a) != meta.mtime);
                if changed_meta && !outcome.changed {
                    out.warn(format!(
                        "`{}` was modified while it was read; the stored copy may mix old and new content",
                        meta.path
                    ));
                }
                if changed_meta || outcome.changed {
                    self.stats.changed += 1;
                }
                self.stats.files += 1;
                self.stats.entries += 1;
                self.stats.bytes += meta.size;
            } else {
                out.warn(format!(
                    "`{}` is a socket, FIFO or device node and was not archived",
                    item.path().display()
                ));
                self.stats.skipped_special += 1;
            }
        }
        self.stats.excluded = excluded;
        // Guards against silent emptiness (issue 15), before the artifact is complete.
        let under_root = self.stats.entries.saturating_sub(1);
        if source.min_entries > 0 && under_root < source.min_entries {
            return Err(source.too_few(under_root));
        }
        source.check_shrink(self.stats.entries, self.stats.bytes)?;
        if under_root == 0 {
            out.warn(format!(
                "`{}` (archive root `{}/`) is empty: nothing under it was backed up; if a \
                 volume should be mounted there, it is not (set min_entries in its [[files]] \
                 section to fail such runs)",
                base.display(),
                source.root
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::EntryOutcome;

    /// Collects the entries a source writes (paths, bytes read) and its warnings.
    #[derive(Default)]
    struct Collect {
        paths: Vec<String>,
        warnings: Vec<String>,
    }

    impl EntryWriter for Collect {
        fn add(&mut self, meta: &EntryMeta, content: &mut dyn io::Read) -> Result<EntryOutcome> {
            io::copy(content, &mut io::sink()).unwrap();
            self.paths.push(meta.path.clone());
            Ok(EntryOutcome {
                sha256: [0; 32],
                changed: false,
            })
        }

        fn warn(&mut self, message: String) {
            self.warnings.push(message);
        }
    }

    fn run(source: &FileTreeSource) -> (Result<()>, Collect) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut out = Collect::default();
        let result = rt.block_on(source.prepare()).and_then(|mut p| {
            let r = p.write_entries(&mut out);
            let stats = &p.description().details["stats"];
            if r.is_ok() {
                assert_eq!(stats["entries"], out.paths.len() as u64, "{stats}");
            }
            r
        });
        (result, out)
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f.as_bytes()).unwrap();
        }
        dir
    }

    /// Issue 15: `exclude` globs match the tree-relative path, the archive path, or (without
    /// `/`) the file name; an excluded directory is not entered.
    #[test]
    fn excluded_entries_are_not_archived() {
        let dir = tree(&[
            "app/main.rs",
            "app/node_modules/x/index.js",
            "cache/blob",
            "logs/a.log",
            "logs/keep.txt",
            "web/node_modules/y.js",
        ]);
        let source = FileTreeSource::new(dir.path(), "wst")
            .unwrap()
            .exclude(["cache/", "node_modules"])
            .unwrap()
            .exclude(["wst/logs/*.log"])
            .unwrap();
        let (r, out) = run(&source);
        r.unwrap();
        assert_eq!(
            out.paths,
            [
                "wst",
                "wst/app",
                "wst/app/main.rs",
                "wst/logs",
                "wst/logs/keep.txt",
                "wst/web"
            ]
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let e = FileTreeSource::new(dir.path(), "wst")
            .unwrap()
            .exclude(["a[b"])
            .unwrap_err();
        assert!(e.to_string().contains("exclude pattern `a[b`"), "{e}");
        assert!(
            FileTreeSource::new(dir.path(), "wst")
                .unwrap()
                .exclude(["/"])
                .is_err()
        );
    }

    /// An unreadable directory that is excluded is never read, so it cannot fail the run.
    #[cfg(unix)]
    #[test]
    fn an_excluded_unreadable_directory_is_not_entered() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree(&["ok.txt", "private/secret.txt"]);
        let private = dir.path().join("private");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads everything: only check the failure when permissions bite.
        let bites = fs::read_dir(&private).is_err();
        let plain = FileTreeSource::new(dir.path(), "wst").unwrap();
        let (r, _) = run(&plain);
        if bites {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("exclude = [\"GLOB\"]") && e.contains("wst backup --exclude GLOB"),
                "{e}"
            );
        }
        let (r, out) = run(&plain.clone().exclude(["private"]).unwrap());
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        r.unwrap();
        assert_eq!(out.paths, ["wst", "wst/ok.txt"]);
    }

    /// Issue 15: an empty tree (an empty mount point) warns; with `min_entries` it fails before
    /// anything is archived.
    #[test]
    fn an_empty_tree_warns_and_min_entries_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out) = run(&FileTreeSource::new(dir.path(), "wst").unwrap());
        r.unwrap();
        assert_eq!(out.paths, ["wst"]);
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].contains("is empty"), "{:?}", out.warnings);

        let guarded = FileTreeSource::new(dir.path(), "wst")
            .unwrap()
            .min_entries(3);
        let (r, out) = run(&guarded);
        let e = r.unwrap_err();
        assert!(matches!(e, Error::SourceGuard { .. }), "{e:?}");
        assert!(e.to_string().contains("found 0 entries"), "{e}");
        assert!(
            out.paths.is_empty(),
            "failed before archiving: {:?}",
            out.paths
        );

        // Everything excluded counts as empty too; enough entries pass.
        let full = tree(&["a", "b", "c/d"]);
        let (r, _) = run(&FileTreeSource::new(full.path(), "wst")
            .unwrap()
            .min_entries(4));
        r.unwrap();
        let (r, _) = run(&FileTreeSource::new(full.path(), "wst")
            .unwrap()
            .min_entries(1)
            .exclude(["*"])
            .unwrap());
        assert!(r.unwrap_err().to_string().contains("found 0 entries"));
    }

    /// Issue 15: `max_shrink` compares with the previous artifact's counts.
    #[test]
    fn a_shrunk_tree_fails_max_shrink() {
        let dir = tree(&["a", "b"]);
        let name = ArtifactName::parse("wst-backup-20261120-020000").unwrap();
        let previous = |entries, bytes| SourceCounts {
            name: "wst".into(),
            kind: "files".into(),
            entries,
            bytes,
            listing: std::collections::BTreeMap::new(),
            schema_fingerprint: None,
        };
        let guarded = |prev| {
            FileTreeSource::new(dir.path(), "wst")
                .unwrap()
                .max_shrink(0.5)
                .unwrap()
                .previous(name.clone(), prev)
        };
        // Now: 3 entries (root, a, b), 2 bytes.
        let (r, _) = run(&guarded(previous(5, 3)));
        r.unwrap();
        let (r, _) = run(&guarded(previous(7, 2)));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("entries fell from 7 to 3")
                && e.contains("wst-backup-20261120-020000")
                && e.contains("max_shrink = 0.5"),
            "{e}"
        );
        let (r, _) = run(&guarded(previous(3, 100)));
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("bytes fell from 100 to 2")
        );
        // No previous counts: nothing to compare.
        let (r, _) = run(&FileTreeSource::new(dir.path(), "wst")
            .unwrap()
            .max_shrink(0.5)
            .unwrap());
        r.unwrap();
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(
                FileTreeSource::new(dir.path(), "wst")
                    .unwrap()
                    .max_shrink(bad)
                    .is_err()
            );
        }
    }

    /// Issue 15: `one_file_system` archives a mount point as an empty directory and does not
    /// enter it. A real mount point: `/dev/shm` (tmpfs) inside `/dev` (skipped with a note
    /// where the host does not mount it separately).
    #[cfg(target_os = "linux")]
    #[test]
    fn one_file_system_does_not_enter_a_mount_point() {
        use std::os::unix::fs::MetadataExt;
        let (Ok(dev), Ok(shm)) = (fs::metadata("/dev"), fs::metadata("/dev/shm")) else {
            eprintln!("no /dev/shm: skipped");
            return;
        };
        if dev.dev() == shm.dev() {
            eprintln!("/dev/shm is not a separate file system here: skipped");
            return;
        }
        let Ok(marker) = tempfile::Builder::new()
            .prefix("wst-one-fs-")
            .tempdir_in("/dev/shm")
        else {
            eprintln!("/dev/shm is not writable: skipped");
            return;
        };
        fs::write(marker.path().join("inside.txt"), b"x").unwrap();
        let inside = format!(
            "dev/shm/{}/inside.txt",
            marker.path().file_name().unwrap().to_string_lossy()
        );
        let source = FileTreeSource::new("/dev", "dev")
            .unwrap()
            .one_file_system(true);
        let (r, out) = run(&source);
        r.unwrap();
        assert!(out.paths.iter().any(|p| p == "dev/shm"), "{:?}", out.paths);
        assert!(
            !out.paths.iter().any(|p| p.starts_with("dev/shm/")),
            "entered the mount point: {:?}",
            out.paths
        );
        assert!(!out.paths.contains(&inside));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut prepared = rt.block_on(source.prepare()).unwrap();
        prepared.write_entries(&mut Collect::default()).unwrap();
        let stats = &prepared.description().details["stats"];
        assert!(
            stats["other_file_systems"].as_u64().unwrap() >= 1,
            "{stats}"
        );
    }

    /// `one_file_system` on a tree without mount points archives everything (the device
    /// comparison does not misfire).
    #[test]
    fn one_file_system_keeps_a_single_file_system_tree() {
        let dir = tree(&["a/b/c", "d"]);
        let (r, out) = run(&FileTreeSource::new(dir.path(), "wst")
            .unwrap()
            .one_file_system(true));
        r.unwrap();
        assert_eq!(out.paths, ["wst", "wst/a", "wst/a/b", "wst/a/b/c", "wst/d"]);
    }
}
