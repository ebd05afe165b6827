//! The archive writer: entries → tar, hashing every entry for the manifest (blocking).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FORMAT, MANIFEST_PATH, Manifest, ManifestEntry};
use crate::progress::Progress;
use crate::source::{EntryKind, EntryMeta, EntryOutcome, EntryWriter, SourceDescription};

/// Checks an archive path: relative, `/`-separated, non-empty components, no `.`/`..`, no
/// backslash, no NUL, not under the reserved `.wst/` directory (unless `reserved_ok`).
pub(crate) fn validate_archive_path(
    path: &str,
    reserved_ok: bool,
) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.contains('\\') || path.contains('\0') {
        return Err("backslash or NUL in path".into());
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err("empty path component".into()),
            "." | ".." => return Err(format!("`{comp}` component")),
            c if c.len() >= 2 && c.as_bytes()[1] == b':' => {
                return Err("drive prefix in path".into());
            }
            _ => {}
        }
    }
    if !reserved_ok && (path == ".wst" || path.starts_with(".wst/")) {
        return Err("`.wst/` is reserved for the manifest".into());
    }
    Ok(())
}

/// Writes entries into a tar stream and records the manifest.
pub(crate) struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    entries: Vec<ManifestEntry>,
    seen: HashSet<String>,
    warnings: Vec<String>,
    bytes_read: u64,
    progress: Arc<dyn Progress>,
    buf: Vec<u8>,
}

impl<W: Write> ArchiveWriter<W> {
    pub(crate) fn new(inner: W, progress: Arc<dyn Progress>) -> Self {
        let mut tar = tar::Builder::new(inner);
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        Self {
            tar,
            entries: Vec::new(),
            seen: HashSet::new(),
            warnings: Vec::new(),
            bytes_read: 0,
            progress,
            buf: vec![0; 256 * 1024],
        }
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Appends the manifest as the last entry and returns the inner writer and the manifest.
    pub(crate) fn finish(
        mut self,
        artifact: String,
        started: jiff::Timestamp,
        sources: Vec<SourceDescription>,
        timings: std::collections::BTreeMap<String, f64>,
    ) -> Result<(W, Manifest)> {
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            artifact,
            tool: format!("wst {}", env!("CARGO_PKG_VERSION")),
            started,
            finished: jiff::Timestamp::now(),
            sources,
            entries: std::mem::take(&mut self.entries),
            timings,
            warnings: std::mem::take(&mut self.warnings),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::Config(format!("manifest serialisation failed: {e}")))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(manifest.finished.as_second().max(0) as u64);
        self.tar
            .append_data(&mut header, MANIFEST_PATH, json.as_slice())
            .map_err(|e| Error::io("writing the manifest", e))?;
        let inner = self
            .tar
            .into_inner()
            .map_err(|e| Error::io("finishing the tar stream", e))?;
        Ok((inner, manifest))
    }
}

impl<W: Write> EntryWriter for ArchiveWriter<W> {
    fn add(&mut self, meta: &EntryMeta, content: &mut dyn Read) -> Result<EntryOutcome> {
        validate_archive_path(&meta.path, false).map_err(|reason| Error::UnsafeEntry {
            path: meta.path.clone(),
            reason,
        })?;
        if !self.seen.insert(meta.path.clone()) {
            return Err(Error::Config(format!(
                "two entries have the archive path `{}`: give each source its own root",
                meta.path
            )));
        }
        self.progress.entry(&meta.path, meta.size);
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode & 0o7777);
        header.set_mtime(meta.mtime.max(0) as u64);
        header.set_uid(0);
        header.set_gid(0);
        let io_err = |e: io::Error| Error::io(format!("archiving `{}`", meta.path), e);
        let mut outcome = EntryOutcome {
            sha256: Sha256::digest([]).into(),
            changed: false,
        };
        match &meta.kind {
            EntryKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.size);
                let mut reader = ExactReader {
                    inner: content,
                    remaining: meta.size,
                    hasher: Sha256::new(),
                    short: false,
                    error: None,
                    progress: &*self.progress,
                };
                let res = self.tar.append_data(&mut header, &meta.path, &mut reader);
                if let Some(e) = reader.error.take() {
                    return Err(Error::SourceRead {
                        path: meta.path.clone().into(),
                        source: e,
                    });
                }
                res.map_err(io_err)?;
                // Grown since its size was taken? One more byte means the file changed.
                let grew = !reader.short && matches!(reader.inner.read(&mut self.buf[..1]), Ok(1));
                outcome.changed = reader.short || grew;
                outcome.sha256 = reader.hasher.finalize().into();
                self.bytes_read += meta.size;
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                self.tar
                    .append_data(&mut header, &meta.path, io::empty())
                    .map_err(io_err)?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                self.tar
                    .append_link(&mut header, &meta.path, target)
                    .map_err(io_err)?;
            }
            EntryKind::Hardlink { target } => {
                if !self.seen.contains(target) {
                    return Err(Error::Config(format!(
                        "hard link `{}` points to `{target}`, which is not an earlier entry",
                        meta.path
                    )));
                }
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                self.tar
                    .append_link(&mut header, &meta.path, target)
                    .map_err(io_err)?;
            }
        }
        if outcome.changed {
            self.warnings.push(format!(
                "`{}` changed while it was read; the stored copy may be inconsistent",
                meta.path
            ));
        }
        self.entries.push(ManifestEntry {
            path: meta.path.clone(),
            kind: meta.kind.clone(),
            size: if meta.kind == EntryKind::File {
                meta.size
            } else {
                0
            },
            mode: meta.mode & 0o7777,
            mtime: meta.mtime,
            sha256: hex::encode(outcome.sha256),
            changed: outcome.changed,
        });
        Ok(outcome)
    }

    fn warn(&mut self, message: String) {
        tracing::warn!(%message, "archive warning");
        self.warnings.push(message);
    }
}

/// Reads exactly `remaining` bytes from `inner`, zero-padding if it ends early (flagged as
/// `short`), hashing what it yields. A read error is kept in `error` so the caller can report
/// it as a source error rather than an archive error.
struct ExactReader<'a> {
    inner: &'a mut dyn Read,
    remaining: u64,
    hasher: Sha256,
    short: bool,
    error: Option<io::Error>,
    progress: &'a dyn Progress,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = if self.short {
            buf[..want].fill(0);
            want
        } else {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    self.short = true;
                    buf[..want].fill(0);
                    want
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    let kind = e.kind();
                    self.error = Some(e);
                    return Err(io::Error::new(kind, "source read failed"));
                }
            }
        };
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::validate_archive_path;

    #[test]
    fn archive_paths_are_checked() {
        assert!(validate_archive_path("wst/a/b.txt", false).is_ok());
        assert!(validate_archive_path("wst_dev_database.backup", false).is_ok());
        for bad in [
            "",
            "/etc/x",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a\\b",
            "C:/x",
            ".wst/manifest.json",
        ] {
            assert!(validate_archive_path(bad, false).is_err(), "{bad}");
        }
        assert!(validate_archive_path(".wst/manifest.json", true).is_ok());
    }
}

#[cfg(test)]
mod writer_tests {
    use std::sync::Arc;

    use super::*;
    use crate::progress::NoProgress;

    fn file(path: &str, size: u64) -> EntryMeta {
        EntryMeta {
            path: path.into(),
            kind: EntryKind::File,
            size,
            mode: 0o644,
            mtime: 1_700_000_000,
        }
    }

    #[test]
    fn a_file_that_shrinks_or_grows_while_read_is_flagged() {
        let mut w = ArchiveWriter::new(Vec::new(), Arc::new(NoProgress));
        let steady = w.add(&file("wst/steady", 5), &mut &b"hello"[..]).unwrap();
        assert!(!steady.changed);
        let shrunk = w.add(&file("wst/shrunk", 10), &mut &b"hello"[..]).unwrap();
        assert!(shrunk.changed, "short read is flagged");
        let grown = w.add(&file("wst/grown", 3), &mut &b"hello"[..]).unwrap();
        assert!(grown.changed, "extra bytes are flagged");
        assert_eq!(w.warnings().len(), 2);
        let (tar, manifest) = w
            .finish(
                "a".into(),
                jiff::Timestamp::UNIX_EPOCH,
                Vec::new(),
                std::collections::BTreeMap::default(),
            )
            .unwrap();
        let flagged: Vec<&str> = manifest
            .entries
            .iter()
            .filter(|e| e.changed)
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(flagged, ["wst/shrunk", "wst/grown"]);
        // The stored sizes are the declared sizes: the tar stays well-formed.
        let mut ar = tar::Archive::new(tar.as_slice());
        let sizes: Vec<(String, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        assert_eq!(sizes[1], ("wst/shrunk".into(), 10));
        assert_eq!(sizes[2], ("wst/grown".into(), 3));
        assert_eq!(sizes.last().unwrap().0, MANIFEST_PATH);
    }

    #[test]
    fn duplicate_and_reserved_paths_are_refused() {
        let mut w = ArchiveWriter::new(Vec::new(), Arc::new(NoProgress));
        w.add(&file("wst/a", 1), &mut &b"x"[..]).unwrap();
        assert!(matches!(
            w.add(&file("wst/a", 1), &mut &b"x"[..]),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            w.add(&file(".wst/manifest.json", 1), &mut &b"x"[..]),
            Err(Error::UnsafeEntry { .. })
        ));
        let link = EntryMeta {
            path: "wst/link".into(),
            kind: EntryKind::Hardlink {
                target: "wst/missing".into(),
            },
            size: 0,
            mode: 0o644,
            mtime: 0,
        };
        assert!(w.add(&link, &mut std::io::empty()).is_err());
    }
}
