//! `FileTreeSource`: a directory tree archived under a configured root.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::archive::validate_archive_path;
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
///   directory fails the run with [`Error::SourceRead`] naming it — nothing is skipped silently.
/// - A file whose size or modification time changes while it is read is stored as read and
///   reported as a warning (run report and manifest flag `changed`).
/// - Sockets, FIFOs and device nodes are not archived; each is reported as a warning.
/// - File names must be valid UTF-8 (archive paths are UTF-8); another name fails the run.
#[derive(Debug, Clone)]
pub struct FileTreeSource {
    path: PathBuf,
    root: String,
    name: String,
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
        })
    }

    /// The directory archived.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive root.
    pub fn root(&self) -> &str {
        &self.root
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
        Ok(Box::new(PreparedTree {
            source: self.clone(),
            stats: Stats::default(),
        }))
    }
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Stats {
    files: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    bytes: u64,
    changed: u64,
    skipped_special: u64,
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

impl PreparedSource for PreparedTree {
    fn description(&self) -> SourceDescription {
        SourceDescription {
            kind: "files".into(),
            name: self.source.name.clone(),
            root: format!("{}/", self.source.root),
            details: serde_json::json!({
                "path": self.source.path.display().to_string(),
                "stats": self.stats,
            }),
        }
    }

    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> Result<()> {
        let base = &self.source.path;
        let mut links: HashMap<(u64, u64), String> = HashMap::new();
        let walker = walkdir::WalkDir::new(base)
            .follow_links(false)
            .sort_by_file_name();
        for item in walker {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(base).to_path_buf();
                Error::SourceRead {
                    path,
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("directory walk failed")),
                }
            })?;
            let rel = item.path().strip_prefix(base).unwrap_or(item.path());
            let mut archive_path = self.source.root.clone();
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
            } else if ft.is_file() {
                if let Some(key) = hardlink_key(&md) {
                    if let Some(first) = links.get(&key) {
                        meta.kind = EntryKind::Hardlink {
                            target: first.clone(),
                        };
                        out.add(&meta, &mut io::empty())?;
                        self.stats.hardlinks += 1;
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
                self.stats.bytes += meta.size;
            } else {
                out.warn(format!(
                    "`{}` is a socket, FIFO or device node and was not archived",
                    item.path().display()
                ));
                self.stats.skipped_special += 1;
            }
        }
        Ok(())
    }
}
