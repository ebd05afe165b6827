//! The archive writer: entries → tar, hashing every entry for the manifest (blocking).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The archive's output. A compressing output can take an entry's content as ready-made zstd
/// frames ([`EntryWriter::add_zstd`]); a plain one cannot, and the archive then decompresses.
pub(crate) trait FrameSink: Write {
    /// Whether [`FrameSink::splice`] is supported.
    fn can_splice(&self) -> bool;

    /// Ends the current zstd frame, then copies `frames` (complete zstd frames decoding to
    /// `plain` bytes) verbatim into the compressed stream. Returns the compressed bytes copied.
    fn splice(&mut self, frames: &mut dyn Read, plain: u64) -> io::Result<u64>;
}

impl FrameSink for Vec<u8> {
    fn can_splice(&self) -> bool {
        false
    }

    fn splice(&mut self, _frames: &mut dyn Read, _plain: u64) -> io::Result<u64> {
        Err(io::Error::other(
            "a plain archive cannot take compressed frames",
        ))
    }
}

/// Writes entries into a tar stream and records the manifest.
pub(crate) struct ArchiveWriter<W: FrameSink> {
    tar: tar::Builder<W>,
    entries: Vec<ManifestEntry>,
    seen: HashSet<String>,
    warnings: Vec<String>,
    bytes_read: u64,
    progress: Arc<dyn Progress>,
    buf: Vec<u8>,
    /// Set by the pipeline when another source failed: the entry being read stops early.
    abort: Arc<AtomicBool>,
    /// Written into the manifest.
    audit_head: Option<crate::audit::AuditHead>,
}

impl<W: FrameSink> ArchiveWriter<W> {
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
            abort: Arc::new(AtomicBool::new(false)),
            audit_head: None,
        }
    }

    /// Records the audit chain's head at the start of the run in the manifest.
    pub(crate) fn audit_head(&mut self, head: Option<crate::audit::AuditHead>) {
        self.audit_head = head;
    }

    /// Stops the archive at the next read once `abort` is set (another source failed; there is
    /// no point reading the rest of a large tree for an artifact that will not be published).
    pub(crate) fn abort_on(&mut self, abort: Arc<AtomicBool>) {
        self.abort = abort;
    }

    fn check_abort(&self) -> Result<()> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(Error::Config(
                "the archive stopped because another source failed".into(),
            ));
        }
        Ok(())
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
        (started, finished): (jiff::Timestamp, jiff::Timestamp),
        sources: Vec<SourceDescription>,
        timings: std::collections::BTreeMap<String, f64>,
    ) -> Result<(W, Manifest)> {
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            artifact,
            tool: format!("wst {}", env!("CARGO_PKG_VERSION")),
            started,
            finished,
            sources,
            entries: std::mem::take(&mut self.entries),
            timings,
            warnings: std::mem::take(&mut self.warnings),
            audit_head: self.audit_head.take(),
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

impl<W: FrameSink> ArchiveWriter<W> {
    /// Checks an entry's path (safe, not seen before), announces it, and returns its tar
    /// header with mode, mtime and owner set.
    fn begin(&mut self, meta: &EntryMeta) -> Result<tar::Header> {
        self.check_abort()?;
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
        Ok(header)
    }

    /// Records a written entry in the manifest (and a warning when it changed while read).
    fn record(&mut self, meta: &EntryMeta, outcome: &EntryOutcome) {
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
    }
}

impl<W: FrameSink> EntryWriter for ArchiveWriter<W> {
    fn add(&mut self, meta: &EntryMeta, content: &mut dyn Read) -> Result<EntryOutcome> {
        let mut header = self.begin(meta)?;
        let io_err = |e: io::Error| Error::io(format!("archiving `{}`", meta.path), e);
        let mut outcome = EntryOutcome {
            sha256: Sha256::digest([]).into(),
            changed: false,
        };
        match &meta.kind {
            EntryKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.size);
                // The header (with a GNU long-name record when the path needs one) alone, then
                // the content in large blocks: tar's own copy loop reads and compresses 8 KiB
                // at a time, which costs a system call and a zstd call per 8 KiB.
                self.tar
                    .append_data(&mut header, &meta.path, io::empty())
                    .map_err(io_err)?;
                let mut reader = ExactReader {
                    inner: content,
                    remaining: meta.size,
                    hasher: Sha256::new(),
                    short: false,
                    error: None,
                    progress: &*self.progress,
                    abort: &self.abort,
                };
                let out = self.tar.get_mut();
                let mut copied = Ok(());
                loop {
                    match reader.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Err(e) = out.write_all(&self.buf[..n]) {
                                copied = Err(e);
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            copied = Err(e);
                            break;
                        }
                    }
                }
                if let Some(e) = reader.error.take() {
                    return Err(Error::SourceRead {
                        path: meta.path.clone().into(),
                        source: e,
                    });
                }
                copied.map_err(io_err)?;
                write_padding(out, meta.size).map_err(io_err)?;
                // Grown since its size was taken? One more byte means the file changed.
                let mut probe = [0u8; 1];
                let grew = !reader.short && matches!(reader.inner.read(&mut probe), Ok(1));
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
        self.record(meta, &outcome);
        Ok(outcome)
    }

    fn add_zstd(
        &mut self,
        meta: &EntryMeta,
        frames: &mut dyn Read,
        sha256: [u8; 32],
    ) -> Result<EntryOutcome> {
        if meta.kind != EntryKind::File {
            return Err(Error::Config(format!(
                "`{}`: only a file entry can arrive compressed",
                meta.path
            )));
        }
        if !self.tar.get_ref().can_splice() {
            return crate::source::add_decompressed(self, meta, frames, sha256);
        }
        let mut header = self.begin(meta)?;
        let io_err = |e: io::Error| Error::io(format!("archiving `{}`", meta.path), e);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.size);
        // The header (with a GNU long-name record when the path needs one) and no content: the
        // tar crate writes no padding for an empty reader. The content follows as frames.
        self.tar
            .append_data(&mut header, &meta.path, io::empty())
            .map_err(io_err)?;
        let mut tracked = TrackedReader {
            inner: frames,
            error: None,
        };
        let spliced = self.tar.get_mut().splice(&mut tracked, meta.size);
        if let Some(e) = tracked.error.take() {
            return Err(Error::SourceRead {
                path: meta.path.clone().into(),
                source: e,
            });
        }
        spliced.map_err(io_err)?;
        write_padding(self.tar.get_mut(), meta.size).map_err(io_err)?;
        self.bytes_read += meta.size;
        self.progress.bytes(meta.size);
        let outcome = EntryOutcome {
            sha256,
            changed: false,
        };
        self.record(meta, &outcome);
        Ok(outcome)
    }

    fn warn(&mut self, message: String) {
        tracing::warn!(%message, "archive warning");
        self.warnings.push(message);
    }
}

/// Writes the zeros that pad `size` bytes of entry content to tar's 512-byte blocks (the
/// content was written past the tar crate, which pads only what it copies itself).
fn write_padding(out: &mut impl Write, size: u64) -> io::Result<()> {
    let padding = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..padding as usize])
}

/// Keeps a read error of the spliced frames apart from write errors of the archive.
struct TrackedReader<'a> {
    inner: &'a mut dyn Read,
    error: Option<io::Error>,
}

impl Read for TrackedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let kind = e.kind();
                self.error = Some(e);
                Err(io::Error::new(kind, "source read failed"))
            }
            other => other,
        }
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
    abort: &'a AtomicBool,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        if self.abort.load(Ordering::Relaxed) {
            return Err(io::Error::other(
                "the archive stopped because another source failed",
            ));
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
                (jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::UNIX_EPOCH),
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
    fn a_plain_archive_decodes_compressed_entries_and_checks_their_digest() {
        let data = b"custom-format dump bytes".repeat(100);
        let frames = zstd::stream::encode_all(data.as_slice(), 3).unwrap();
        let sha: [u8; 32] = Sha256::digest(&data).into();
        let mut w = ArchiveWriter::new(Vec::new(), Arc::new(NoProgress));
        let out = w
            .add_zstd(
                &file("db/dump", data.len() as u64),
                &mut frames.as_slice(),
                sha,
            )
            .unwrap();
        assert_eq!(out.sha256, sha);
        let mut wrong = sha;
        wrong[0] ^= 1;
        let err = w
            .add_zstd(
                &file("db/other", data.len() as u64),
                &mut frames.as_slice(),
                wrong,
            )
            .unwrap_err();
        assert!(matches!(err, Error::SourceRead { .. }), "{err}");
        let (tar, _) = w
            .finish(
                "a".into(),
                (jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::UNIX_EPOCH),
                Vec::new(),
                std::collections::BTreeMap::default(),
            )
            .unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut first = ar.entries().unwrap().next().unwrap().unwrap();
        let mut content = Vec::new();
        first.read_to_end(&mut content).unwrap();
        assert_eq!(content, data);
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
