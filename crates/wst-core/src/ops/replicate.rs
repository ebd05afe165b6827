//! Replication: copy the complete artifacts one sink holds and another lacks, checking hashes
//! (design "Operations on top": replicate; doctrine 026 R3, the D: mirror of the C: artifacts).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::{ARTIFACT_EXTENSION, ArtifactName, SIDECAR_EXTENSION, Sidecar};
use crate::error::{Error, Result};
use crate::sink::{ObjectMeta, Sink, SinkExt, for_each_chunk};

/// Largest sidecar read into memory, in bytes (a sidecar is a few hundred bytes of JSON).
pub(crate) const SIDECAR_MAX_BYTES: u64 = 1024 * 1024;

/// Options of [`replicate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicateOptions {
    /// After each copy, read the artifact back from the target and check its SHA-256 and size
    /// against the sidecar before writing the sidecar. Default: `true`. Costs one extra read of
    /// each copied artifact (egress, for a cloud target); the copy itself is always checked
    /// while streaming, before it is published.
    pub verify_after_copy: bool,
    /// Only artifacts whose name starts with this prefix (empty: all). Default: empty.
    pub prefix: String,
    /// Set by the repository: only these source copies are good enough to copy (complete,
    /// authentic, not demoted by a failed verification); `None`: every complete copy.
    pub(crate) usable: Option<std::collections::BTreeSet<ArtifactName>>,
    /// Set by the repository: target copies that are demoted or incomplete, replaced from a
    /// good source copy even though the target holds an object of the same size.
    pub(crate) replace: std::collections::BTreeSet<ArtifactName>,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        Self {
            verify_after_copy: true,
            prefix: String::new(),
            usable: None,
            replace: std::collections::BTreeSet::new(),
        }
    }
}

/// One artifact copied by [`replicate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedArtifact {
    /// The artifact name.
    pub name: ArtifactName,
    /// Ciphertext bytes copied.
    pub bytes: u64,
    /// The ciphertext SHA-256 (lowercase hex) that the copy was checked against.
    pub sha256: String,
    /// Whether the copy was read back from the target and matched.
    pub verified_after_copy: bool,
}

/// One artifact [`replicate`] could not copy. Nothing was published under its name on the
/// target unless stated in `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationFailure {
    /// The artifact name.
    pub name: ArtifactName,
    /// What went wrong and what to do.
    pub detail: String,
}

/// What [`replicate`] did; serializable for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationReport {
    /// The source sink's name.
    pub from: String,
    /// The target sink's name.
    pub to: String,
    /// Artifacts copied (artifact and sidecar), oldest first.
    pub copied: Vec<CopiedArtifact>,
    /// Complete artifacts the target already held (sidecar and artifact object of the source's
    /// size present), oldest first.
    pub already_present: Vec<ArtifactName>,
    /// Artifacts on the source without a sidecar (incomplete: a crashed or running backup),
    /// not copied.
    pub incomplete_on_source: Vec<ArtifactName>,
    /// Artifacts that could not be copied.
    pub failed: Vec<ReplicationFailure>,
    /// Source copies not copied because they are not good copies (their verification failed,
    /// or their sidecar does not authenticate): another sink's copy is used instead
    /// ([`Repository::replicate`](crate::Repository::replicate) only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_good_on_source: Vec<ArtifactName>,
}

impl ReplicationReport {
    /// Whether every complete source artifact is now on the target.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Copies every complete artifact (artifact object and sidecar) that `from` holds and `to`
/// lacks, streaming, and returns what was done.
///
/// An artifact counts as complete on a sink when its sidecar is there (the pipeline writes the
/// sidecar last); the target's sidecar is likewise written only after the target's artifact is
/// complete and checked, so an interrupted replication never leaves a target copy that looks
/// complete and the next run redoes it (idempotent). For each artifact:
/// 1. read and parse the source sidecar;
/// 2. stream the artifact from `from` into an atomic upload on `to`, hashing on the way; if the
///    SHA-256 or size differs from the sidecar the upload is aborted (a corrupt source copy is
///    never propagated) and the failure reported;
/// 3. with [`ReplicateOptions::verify_after_copy`], read the target copy back and check it;
/// 4. write the sidecar (the source's bytes, unchanged) to `to`.
///
/// Failures of single artifacts are collected in [`ReplicationReport::failed`]; the others are
/// still copied. Memory use is one chunk of each stream. Copies one direction only: call it
/// twice with the sinks swapped to reconcile both ways.
///
/// # Errors
/// [`Error::Sink`] when either sink cannot be listed.
pub async fn replicate(
    from: &dyn Sink,
    to: &dyn Sink,
    options: &ReplicateOptions,
) -> Result<ReplicationReport> {
    let source = from.list(&options.prefix).await?;
    let target = to.list(&options.prefix).await?;
    let on_target = |object: &str| target.iter().any(|m| m.name == object);

    let mut report = ReplicationReport {
        from: from.info().name.clone(),
        to: to.info().name.clone(),
        ..ReplicationReport::default()
    };
    for artifact in artifacts(&source) {
        let has_sidecar = source.iter().any(|m| m.name == artifact.sidecar_object());
        if !has_sidecar {
            report.incomplete_on_source.push(artifact);
            continue;
        }
        // Present only when the target holds the sidecar and the artifact object with the
        // source's size: a sidecar whose artifact was lost (deleted, a failed disk sector
        // replaced by an empty file) is repaired, not counted as a copy.
        let source_size = source
            .iter()
            .find(|m| m.name == artifact.artifact_object())
            .map(|m| m.size);
        let target_size = target
            .iter()
            .find(|m| m.name == artifact.artifact_object())
            .map(|m| m.size);
        if options
            .usable
            .as_ref()
            .is_some_and(|u| !u.contains(&artifact))
        {
            report.not_good_on_source.push(artifact);
            continue;
        }
        if on_target(&artifact.sidecar_object())
            && target_size.is_some()
            && target_size == source_size
            && !options.replace.contains(&artifact)
        {
            report.already_present.push(artifact);
            continue;
        }
        match copy_one(from, to, &artifact, options.verify_after_copy).await {
            Ok(copied) => {
                tracing::info!(
                    from = %report.from, to = %report.to, artifact = %artifact,
                    bytes = copied.bytes, "artifact replicated"
                );
                report.copied.push(copied);
            }
            Err(detail) => {
                tracing::error!(
                    from = %report.from, to = %report.to, artifact = %artifact,
                    %detail, "artifact replication failed"
                );
                report.failed.push(ReplicationFailure {
                    name: artifact,
                    detail,
                });
            }
        }
    }
    Ok(report)
}

/// The artifact names found in a listing (from artifact objects and sidecars), sorted, unique.
pub(crate) fn artifacts(listing: &[ObjectMeta]) -> Vec<ArtifactName> {
    let mut names: Vec<ArtifactName> = listing
        .iter()
        .filter(|m| m.name.ends_with(ARTIFACT_EXTENSION) || m.name.ends_with(SIDECAR_EXTENSION))
        .filter_map(|m| ArtifactName::parse(&m.name).ok())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Reads and parses the sidecar of `artifact` on `sink`, checking it describes that artifact.
pub(crate) async fn read_sidecar(
    sink: &dyn Sink,
    artifact: &ArtifactName,
) -> Result<(Sidecar, bytes::Bytes)> {
    let object = artifact.sidecar_object();
    let raw = sink.get_bytes(&object, SIDECAR_MAX_BYTES).await?;
    let sidecar: Sidecar = serde_json::from_slice(&raw).map_err(|e| Error::Malformed {
        artifact: object.clone(),
        detail: format!("sidecar is not valid JSON of the expected shape: {e}"),
    })?;
    if sidecar.name != *artifact || sidecar.object != artifact.artifact_object() {
        return Err(Error::Malformed {
            artifact: object,
            detail: format!(
                "sidecar describes `{}` (object `{}`), not this artifact",
                sidecar.name, sidecar.object
            ),
        });
    }
    Ok((sidecar, raw))
}

/// Streams `sink`'s copy of the artifact and returns its size and SHA-256 (lowercase hex).
pub(crate) async fn hash_object(sink: &dyn Sink, object: &str) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let n = for_each_chunk(sink.get(object).await?, |c| hasher.update(c)).await?;
    Ok((n, hex::encode(hasher.finalize())))
}

/// Copies one artifact; the error is the report's detail sentence.
async fn copy_one(
    from: &dyn Sink,
    to: &dyn Sink,
    artifact: &ArtifactName,
    verify_after_copy: bool,
) -> std::result::Result<CopiedArtifact, String> {
    let object = artifact.artifact_object();
    let (sidecar, sidecar_raw) = read_sidecar(from, artifact)
        .await
        .map_err(|e| format!("cannot read the source sidecar: {e}"))?;

    let mut stream = from
        .get(&object)
        .await
        .map_err(|e| format!("cannot read the source artifact: {e}"))?;
    let mut upload = to
        .put(&object)
        .await
        .map_err(|e| format!("cannot start the upload: {e}"))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let streamed: Result<()> = async {
        use futures::TryStreamExt;
        while let Some(chunk) = stream.try_next().await? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            upload.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        let _ = upload.abort().await;
        return Err(format!(
            "copy interrupted, nothing published on the target: {e}"
        ));
    }
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != sidecar.ciphertext_sha256 || bytes != sidecar.ciphertext_size {
        let _ = upload.abort().await;
        return Err(format!(
            "the source copy does not match its sidecar (SHA-256 {sha256}, {bytes} bytes; sidecar \
             says {}, {} bytes): the source artifact is corrupt, nothing was copied; restore it \
             from another sink",
            sidecar.ciphertext_sha256, sidecar.ciphertext_size
        ));
    }
    upload
        .complete()
        .await
        .map_err(|e| format!("cannot complete the upload: {e}"))?;

    if verify_after_copy {
        let (n, h) = hash_object(to, &object)
            .await
            .map_err(|e| format!("cannot read the copy back for verification: {e}"))?;
        if h != sidecar.ciphertext_sha256 || n != sidecar.ciphertext_size {
            // Leave no copy that looks complete: the sidecar is not written, and the bad
            // artifact object is removed.
            let _ = to.delete(&object).await;
            return Err(format!(
                "the target copy read back differs from the sidecar (SHA-256 {h}, {n} bytes): the \
                 target stored corrupt data; the copy was deleted and no sidecar written"
            ));
        }
    }
    to.put_bytes(&artifact.sidecar_object(), sidecar_raw)
        .await
        .map_err(|e| format!("artifact copied but its sidecar could not be written: {e}"))?;
    Ok(CopiedArtifact {
        name: artifact.clone(),
        bytes,
        sha256,
        verified_after_copy: verify_after_copy,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::artifact::{SIDECAR_FORMAT, SidecarVerification};
    use crate::memory::MemorySink;

    fn name(t: &str) -> ArtifactName {
        ArtifactName::new("wst-backup", t.parse().unwrap()).unwrap()
    }

    /// Stores an artifact with `data` and, when `sidecar`, its sidecar on `sink`.
    pub(crate) async fn store(sink: &dyn Sink, n: &ArtifactName, data: &[u8], sidecar: bool) {
        sink.put_bytes(&n.artifact_object(), Bytes::copy_from_slice(data))
            .await
            .unwrap();
        if sidecar {
            let s = Sidecar {
                audit_head: None,
                format: SIDECAR_FORMAT.into(),
                name: n.clone(),
                object: n.artifact_object(),
                created: n.time(),
                completed: n.time(),
                cipher_suite: "test".into(),
                key_fingerprints: vec![],
                ciphertext_size: data.len() as u64,
                ciphertext_sha256: hex::encode(Sha256::digest(data)),
                tool_version: "test".into(),
                sources: Vec::new(),
                mac: None,
                verification: Some(SidecarVerification {
                    at: n.time(),
                    passed: true,
                    checks_passed: 1,
                    checks_failed: 0,
                }),
            };
            sink.put_bytes(
                &n.sidecar_object(),
                Bytes::from(serde_json::to_vec(&s).unwrap()),
            )
            .await
            .unwrap();
        }
    }

    #[tokio::test]
    async fn copies_missing_artifacts_with_sidecars_and_is_idempotent() {
        let c = MemorySink::new("local-c");
        let d = MemorySink::new("mirror-d");
        let (a, b, partial) = (
            name("2026-11-20T01:00:00Z"),
            name("2026-11-21T01:00:00Z"),
            name("2026-11-21T02:00:00Z"),
        );
        store(&c, &a, b"artifact a", true).await;
        store(&c, &b, &vec![9u8; 300_000], true).await;
        store(&c, &partial, b"still being written", false).await;
        store(&d, &a, b"artifact a", true).await;

        let report = replicate(&c, &d, &ReplicateOptions::default())
            .await
            .unwrap();
        assert_eq!(report.from, "local-c");
        assert_eq!(report.to, "mirror-d");
        assert_eq!(report.already_present, std::slice::from_ref(&a));
        assert_eq!(report.incomplete_on_source, std::slice::from_ref(&partial));
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.copied.len(), 1);
        assert_eq!(report.copied[0].name, b);
        assert_eq!(report.copied[0].bytes, 300_000);
        assert_eq!(
            report.copied[0].sha256,
            hex::encode(Sha256::digest(vec![9u8; 300_000]))
        );
        assert!(report.copied[0].verified_after_copy);
        assert_eq!(
            d.get_bytes(&b.artifact_object(), u64::MAX).await.unwrap(),
            Bytes::from(vec![9u8; 300_000])
        );
        assert_eq!(
            d.get_bytes(&b.sidecar_object(), 1 << 20).await.unwrap(),
            c.get_bytes(&b.sidecar_object(), 1 << 20).await.unwrap()
        );
        assert!(!d.exists(&partial.artifact_object()).await.unwrap());

        let again = replicate(&c, &d, &ReplicateOptions::default())
            .await
            .unwrap();
        assert!(again.copied.is_empty());
        assert_eq!(again.already_present, [a, b]);
        assert!(again.is_complete());
    }

    #[tokio::test]
    async fn corrupt_source_is_not_propagated() {
        let c = MemorySink::new("local-c");
        let d = MemorySink::new("mirror-d");
        let a = name("2026-11-21T01:00:00Z");
        store(&c, &a, b"good ciphertext", true).await;
        c.tamper(&a.artifact_object(), |v| v[0] ^= 1).unwrap();

        let report = replicate(&c, &d, &ReplicateOptions::default())
            .await
            .unwrap();
        assert!(report.copied.is_empty());
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].name, a);
        assert!(
            report.failed[0]
                .detail
                .contains("does not match its sidecar"),
            "{}",
            report.failed[0].detail
        );
        assert!(!report.is_complete());
        assert!(
            d.list("").await.unwrap().is_empty(),
            "nothing published on the target"
        );
    }

    #[tokio::test]
    async fn half_replicated_artifact_is_redone() {
        let c = MemorySink::new("local-c");
        let d = MemorySink::new("mirror-d");
        let a = name("2026-11-21T01:00:00Z");
        store(&c, &a, b"ciphertext", true).await;
        // A previous run copied the artifact object but died before the sidecar.
        store(&d, &a, b"ciphertext", false).await;
        let report = replicate(&c, &d, &ReplicateOptions::default())
            .await
            .unwrap();
        assert_eq!(report.copied.len(), 1);
        assert!(d.exists(&a.sidecar_object()).await.unwrap());
    }

    #[tokio::test]
    async fn sidecar_naming_another_artifact_is_refused() {
        let c = MemorySink::new("local-c");
        let d = MemorySink::new("mirror-d");
        let a = name("2026-11-21T01:00:00Z");
        let other = name("2026-11-21T03:00:00Z");
        store(&c, &other, b"x", true).await;
        // a's sidecar is a copy of other's.
        c.put_bytes(&a.artifact_object(), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let raw = c.get_bytes(&other.sidecar_object(), 1 << 20).await.unwrap();
        c.put_bytes(&a.sidecar_object(), raw).await.unwrap();
        let report = replicate(&c, &d, &ReplicateOptions::default())
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].name, a);
        assert!(
            report.failed[0].detail.contains("not this artifact"),
            "{}",
            report.failed[0].detail
        );
        assert_eq!(report.copied.len(), 1);
        assert_eq!(report.copied[0].name, other);
    }
}
