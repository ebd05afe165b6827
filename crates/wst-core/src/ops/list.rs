//! Browsing an artifact without restoring it: every entry, the manifest and the sidecar
//! (`restic ls -l` / `borg list`).

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactName, Sidecar};
use crate::cipher::{Cipher, KeyFingerprint};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::reader::{ReadEntry, ReadLimits, Visitor, read_artifact};
use crate::selection::Selection;
use crate::sink::{Sink, SinkExt};
use crate::source::EntryKind;
use crate::verify::compare_manifest;

/// Largest sidecar object read, bytes (sidecars are a few hundred bytes).
const SIDECAR_MAX_BYTES: u64 = 1 << 20;

/// One entry of a listed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedEntry {
    /// Archive path (relative, `/`-separated), e.g. `wst-api/config/app.json`.
    pub path: String,
    /// The kind (and link target for links).
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Content size in bytes (0 for everything but files).
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time (UTC, whole seconds).
    pub mtime: jiff::Timestamp,
    /// SHA-256 of the content, lowercase hex, as read and as in the manifest.
    pub sha256: String,
    /// True when the file changed while it was backed up (flagged in the manifest).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

impl fmt::Display for ListedEntry {
    /// One `restic ls -l` / `tar -tv` style line: type and permission bits, size in bytes,
    /// modification time (UTC), path, and `-> target` for links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EntryKind::File => '-',
            EntryKind::Dir => 'd',
            EntryKind::Symlink { .. } => 'l',
            EntryKind::Hardlink { .. } => 'h',
        };
        let mut perms = String::with_capacity(10);
        perms.push(kind);
        for shift in [6u32, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            perms.push(if bits & 4 != 0 { 'r' } else { '-' });
            perms.push(if bits & 2 != 0 { 'w' } else { '-' });
            perms.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        let time = self.mtime.strftime("%Y-%m-%d %H:%M:%S");
        write!(f, "{perms} {:>12} {time} {}", self.size, self.path)?;
        match &self.kind {
            EntryKind::Symlink { target } => write!(f, " -> {target}"),
            EntryKind::Hardlink { target } => write!(f, " link to {target}"),
            _ => Ok(()),
        }
    }
}

/// What [`list_artifact`] found: every entry, the manifest, the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactListing {
    /// The artifact listed.
    pub artifact: ArtifactName,
    /// The sink it was read from.
    pub sink: String,
    /// The plaintext sidecar (created, size, verification summary); `None` when the sink holds
    /// none, i.e. the artifact is incomplete (a crashed run).
    pub sidecar: Option<Sidecar>,
    /// The key that opened the artifact.
    pub opened_with: Option<KeyFingerprint>,
    /// Ciphertext bytes read from the sink.
    pub ciphertext_bytes: u64,
    /// Every entry in archive order (the manifest itself excluded).
    pub entries: Vec<ListedEntry>,
    /// The manifest (sources with their facts, timings, warnings, entries).
    pub manifest: Manifest,
}

impl ArtifactListing {
    /// The entries `selection` selects (an entry whose path or parent directory matches).
    pub fn select<'l>(&'l self, selection: &Selection) -> Vec<&'l ListedEntry> {
        self.entries
            .iter()
            .filter(|e| selection.matches(&e.path))
            .collect()
    }

    /// Total content bytes of the files.
    pub fn content_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Reads nothing itself: the reader hashes and discards every entry's content.
struct Skip;

impl Visitor for Skip {
    fn entry(&mut self, _entry: &ReadEntry, _content: &mut dyn Read) -> Result<()> {
        Ok(())
    }
}

/// Lists artifact `name` on `sink`: every entry (path, kind, size in bytes, mode, mtime UTC,
/// SHA-256), the manifest and the sidecar, the way `restic ls -l` and `borg list` do — without
/// writing anything to disk.
///
/// # Cost
/// An artifact has no separate index: the manifest is the last entry of the encrypted,
/// compressed tar stream. Listing therefore downloads, decrypts and decompresses the **whole**
/// artifact once (about the time of a verification: ciphertext size ÷ the slower of download
/// and ~1 GB/s decryption/decompression per core), skipping content without writing it, memory
/// bounded by the entry list. Every entry read is hashed and compared with the manifest.
///
/// # Authentication
/// A listing is only returned when the whole stream authenticated (every chunk and its end),
/// the archive was well formed and every entry's kind, size and SHA-256 matched the manifest:
/// a tampered or truncated artifact is an error, never a partial list.
///
/// # Errors
/// [`Error::NotFound`] / [`Error::Sink`] when the artifact cannot be read;
/// [`Error::Cipher`] for a wrong key, tampering or truncation; [`Error::Malformed`] for a
/// malformed archive, a missing manifest, entries that differ from the manifest, or an
/// unparsable sidecar; [`Error::LimitExceeded`] / [`Error::UnsafeEntry`] as for a restore.
pub async fn list_artifact(
    sink: &dyn Sink,
    name: &ArtifactName,
    cipher: &dyn Cipher,
    limits: ReadLimits,
) -> Result<ArtifactListing> {
    list_expecting(sink, name, cipher, limits, None).await
}

/// [`list_artifact`], requiring the ciphertext to have `expected` `(size, SHA-256 hex)` (the
/// copy's authenticated sidecar) and the manifest to name `name` ([`Error::Substituted`]).
pub(crate) async fn list_expecting(
    sink: &dyn Sink,
    name: &ArtifactName,
    cipher: &dyn Cipher,
    limits: ReadLimits,
    expected: Option<(u64, String)>,
) -> Result<ArtifactListing> {
    let malformed = |detail: String| Error::Malformed {
        artifact: name.to_string(),
        detail,
    };
    let sidecar = match sink
        .get_bytes(&name.sidecar_object(), SIDECAR_MAX_BYTES)
        .await
    {
        Ok(bytes) => Some(
            serde_json::from_slice::<Sidecar>(&bytes)
                .map_err(|e| malformed(format!("sidecar: {e}")))?,
        ),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let out = read_artifact(sink, name, cipher, Skip, limits).await?;
    if let Some(failure) = out.error {
        return Err(failure.into_error(name));
    }
    if !out.authenticated {
        return Err(malformed(
            "the stream did not authenticate to its end".into(),
        ));
    }
    let manifest = out
        .manifest
        .ok_or_else(|| malformed("no manifest entry".into()))?;
    crate::restore::bind_to_name(
        sink,
        name,
        &manifest.artifact,
        expected.as_ref(),
        out.ciphertext.as_ref(),
    )?;
    let check = compare_manifest(&manifest, &out.entries);
    if !check.passed {
        return Err(malformed(check.detail));
    }
    let mut entries = Vec::with_capacity(manifest.entries.len());
    for m in &manifest.entries {
        let mtime = jiff::Timestamp::from_second(m.mtime).map_err(|e| {
            malformed(format!(
                "`{}`: modification time: {e}",
                crate::error::quote_name(m.path.as_bytes())
            ))
        })?;
        entries.push(ListedEntry {
            path: m.path.clone(),
            kind: m.kind.clone(),
            size: m.size,
            mode: m.mode,
            mtime,
            sha256: m.sha256.clone(),
            changed: m.changed,
        });
    }
    Ok(ArtifactListing {
        artifact: name.clone(),
        sink: sink.info().name.clone(),
        sidecar,
        opened_with: out.opened_with,
        ciphertext_bytes: out.ciphertext.map_or(0, |p| p.bytes),
        entries,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines_look_like_restic_ls_l() {
        let t = jiff::Timestamp::from_second(1_763_703_484).unwrap();
        let e = ListedEntry {
            path: "wst-api/config/app.json".into(),
            kind: EntryKind::File,
            size: 1234,
            mode: 0o644,
            mtime: t,
            sha256: String::new(),
            changed: false,
        };
        assert_eq!(
            e.to_string(),
            "-rw-r--r--         1234 2025-11-21 05:38:04 wst-api/config/app.json"
        );
        let l = ListedEntry {
            path: "wst/link".into(),
            kind: EntryKind::Symlink {
                target: "../wst-api".into(),
            },
            mode: 0o777,
            size: 0,
            ..e.clone()
        };
        assert_eq!(
            l.to_string(),
            "lrwxrwxrwx            0 2025-11-21 05:38:04 wst/link -> ../wst-api"
        );
        let d = ListedEntry {
            path: "wst".into(),
            kind: EntryKind::Dir,
            mode: 0o750,
            size: 0,
            ..e
        };
        assert!(d.to_string().starts_with("drwxr-x--- "));
    }
}
