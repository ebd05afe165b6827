//! The 3-2-1 check: is the newest artifact held in 3 copies, on 2 media, 1 of them offsite, and
//! do the copies agree? (doctrine 026 R3 "Storage Model (3-2-1)"; design "compliance status").

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactName;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::replicate::{artifacts, hash_object, read_sidecar};
use crate::sink::{Medium, Sink};

/// Options of [`check_3_2_1`]: the thresholds of the rule and how deep to check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreeTwoOneOptions {
    /// Copies required (default 3). An operator whose third copy lives outside wst (doctrine
    /// R3 layer 1: the cloud provider's point-in-time restore) may lower this to 2 and say so
    /// in the compliance record.
    pub min_copies: usize,
    /// Distinct media required among the copies (default 2).
    pub min_media: usize,
    /// Offsite copies required (default 1).
    pub min_offsite: usize,
    /// Stream every copy and recompute its SHA-256 (default `false`: compare the sidecars'
    /// recorded hashes and the objects' sizes only). Deep checking reads every copy in full.
    pub verify_hashes: bool,
    /// Only artifacts whose name starts with this prefix (empty: all). Default: empty.
    pub prefix: String,
}

impl Default for ThreeTwoOneOptions {
    fn default() -> Self {
        Self {
            min_copies: 3,
            min_media: 2,
            min_offsite: 1,
            verify_hashes: false,
            prefix: String::new(),
        }
    }
}

/// What one sink holds of the checked artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyStatus {
    /// The sink's name.
    pub sink: String,
    /// The sink's medium.
    pub medium: Medium,
    /// Whether the sink is offsite.
    pub offsite: bool,
    /// Whether the sink holds a complete copy (artifact object and sidecar) that agrees with
    /// the reference hash; only such copies count.
    pub counts: bool,
    /// Ciphertext size in bytes of the artifact object on this sink, when present.
    pub size: Option<u64>,
    /// The ciphertext SHA-256 recorded in this sink's sidecar, when readable.
    pub sidecar_sha256: Option<String>,
    /// The SHA-256 recomputed from this sink's copy, with
    /// [`ThreeTwoOneOptions::verify_hashes`].
    pub computed_sha256: Option<String>,
    /// Why the copy does not count, when it does not.
    pub problem: Option<String>,
}

/// One broken rule, naming exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Violation {
    /// No sink holds any complete artifact.
    NoArtifact,
    /// Fewer good copies than required ("3 copies").
    TooFewCopies {
        /// Good copies found.
        found: usize,
        /// Copies required.
        required: usize,
    },
    /// Fewer distinct media than required among the good copies ("2 media").
    TooFewMedia {
        /// The media of the good copies.
        found: Vec<Medium>,
        /// Media required.
        required: usize,
    },
    /// Fewer offsite good copies than required ("1 offsite").
    TooFewOffsite {
        /// Offsite good copies found.
        found: usize,
        /// Offsite copies required.
        required: usize,
    },
    /// A sink's copy disagrees with the others (different recorded or computed SHA-256, or a
    /// size different from its sidecar).
    CopyMismatch {
        /// The sink holding the disagreeing copy.
        sink: String,
        /// What differs.
        detail: String,
    },
    /// A sink could not be asked (unreachable, listing failed); it counts as holding nothing.
    SinkUnavailable {
        /// The sink's name.
        sink: String,
        /// The error.
        error: String,
    },
    /// A copy that is present and agrees with the others but is not verified: its last
    /// verification failed, or its sidecar does not authenticate under the repository key
    /// (design invariant 8: such a copy is not a copy).
    CopyUnverified {
        /// The sink's name.
        sink: String,
        /// Why it does not count.
        detail: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoArtifact => f.write_str("3-2-1: no sink holds a complete artifact"),
            Self::TooFewCopies { found, required } => write!(
                f,
                "3-2-1 rule \"{required} copies\" violated: {found} good cop{} of the newest artifact",
                if *found == 1 { "y" } else { "ies" }
            ),
            Self::TooFewMedia { found, required } => {
                let media: Vec<String> = found.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "3-2-1 rule \"{required} media\" violated: the good copies are on {} medi{} ({})",
                    found.len(),
                    if found.len() == 1 { "um" } else { "a" },
                    media.join(", ")
                )
            }
            Self::TooFewOffsite { found, required } => write!(
                f,
                "3-2-1 rule \"{required} offsite\" violated: {found} good offsite cop{}",
                if *found == 1 { "y" } else { "ies" }
            ),
            Self::CopyMismatch { sink, detail } => {
                write!(f, "copies disagree: sink `{sink}`: {detail}")
            }
            Self::SinkUnavailable { sink, error } => {
                write!(f, "sink `{sink}` could not be checked: {error}")
            }
            Self::CopyUnverified { sink, detail } => {
                write!(f, "the copy on sink `{sink}` does not count: {detail}")
            }
        }
    }
}

/// The result of [`check_3_2_1`]; serializable for the compliance record and audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreeTwoOneReport {
    /// The newest complete artifact on any sink (the one checked), if any.
    pub artifact: Option<ArtifactName>,
    /// The reference ciphertext SHA-256 (the one most sinks' sidecars record).
    pub sha256: Option<String>,
    /// One entry per sink, in the order given.
    pub copies: Vec<CopyStatus>,
    /// Every broken rule; empty when compliant.
    pub violations: Vec<Violation>,
}

impl ThreeTwoOneReport {
    /// Whether no rule is broken.
    pub fn is_compliant(&self) -> bool {
        self.violations.is_empty()
    }

    /// Good copies (complete and agreeing).
    pub fn good_copies(&self) -> usize {
        self.copies.iter().filter(|c| c.counts).count()
    }
}

/// Checks the 3-2-1 rule for the newest complete artifact across `sinks`.
///
/// The newest artifact is the latest-named one whose sidecar exists on at least one sink (an
/// artifact without a sidecar is incomplete). For every sink the check reads its sidecar of that
/// artifact and the artifact object's size (and, with [`ThreeTwoOneOptions::verify_hashes`],
/// streams the object and recomputes its SHA-256). The reference hash is the one recorded by most
/// sidecars (ties: the first sink's). A copy counts when its artifact and sidecar are present,
/// its sidecar records the reference hash and the object has the recorded size (and, when
/// verifying, the recomputed hash matches). Then, counting good copies only: at least
/// `min_copies` copies, `min_media` distinct [`Medium`]s, and `min_offsite` offsite sinks.
///
/// The check never fails as a whole because of one sink: an unreachable sink becomes a
/// [`Violation::SinkUnavailable`] and holds nothing.
///
/// # Errors
/// None in the current implementation; the `Result` is kept for future checks that can fail as
/// a whole.
pub async fn check_3_2_1(
    sinks: &[&dyn Sink],
    options: &ThreeTwoOneOptions,
) -> Result<ThreeTwoOneReport> {
    let mut views = Vec::with_capacity(sinks.len());
    for sink in sinks {
        views.push(match sink.list(&options.prefix).await {
            Ok(l) => View::Listing(l),
            Err(e) => View::Unavailable(e.to_string()),
        });
    }
    evaluate(sinks, &views, options).await
}

/// [`check_3_2_1`] over catalogs already read (`None`: the sink could not be listed): the
/// repository's status uses the one catalog rule for "complete" and the sidecars it read, so
/// no sidecar is read twice and none outside the catalog.
pub(crate) async fn check_3_2_1_catalogued(
    sinks: &[&dyn Sink],
    catalogs: &[Option<Catalog>],
    options: &ThreeTwoOneOptions,
) -> Result<ThreeTwoOneReport> {
    let views: Vec<View<'_>> = catalogs
        .iter()
        .map(|c| match c {
            Some(c) => View::Catalog(c),
            None => View::Unavailable("the sink cannot be listed".to_owned()),
        })
        .collect();
    evaluate(sinks, &views, options).await
}

/// What the 3-2-1 check knows of one sink.
enum View<'a> {
    /// A raw listing (the offline check): sidecars are read as needed, unauthenticated.
    Listing(Vec<crate::sink::ObjectMeta>),
    /// The repository's catalog of the sink.
    Catalog(&'a Catalog),
    /// The sink could not be listed.
    Unavailable(String),
}

impl View<'_> {
    /// Artifacts with an artifact object and a sidecar (complete, for a catalog).
    fn complete(&self) -> Vec<ArtifactName> {
        match self {
            Self::Listing(l) => artifacts(l)
                .into_iter()
                .filter(|a| l.iter().any(|m| m.name == a.sidecar_object()))
                .collect(),
            Self::Catalog(c) => c.complete().map(|c| c.name.clone()).collect(),
            Self::Unavailable(_) => Vec::new(),
        }
    }

    /// The copy of `artifact`: its object size, or the problem.
    async fn copy(&self, sink: &dyn Sink, artifact: &ArtifactName) -> Copy {
        match self {
            Self::Unavailable(_) => Copy::Problem("sink unavailable".to_owned()),
            Self::Listing(l) => {
                let size = l
                    .iter()
                    .find(|m| m.name == artifact.artifact_object())
                    .map(|m| m.size);
                let has_sidecar = l.iter().any(|m| m.name == artifact.sidecar_object());
                match (size, has_sidecar) {
                    (None, _) => Copy::Problem("artifact missing".to_owned()),
                    (Some(size), false) => Copy::Incomplete(size),
                    (Some(size), true) => match read_sidecar(sink, artifact).await {
                        Ok((s, _)) => Copy::Complete {
                            size,
                            recorded: (s.ciphertext_size, s.ciphertext_sha256),
                        },
                        Err(e) => Copy::Unreadable(size, format!("sidecar unreadable: {e}")),
                    },
                }
            }
            Self::Catalog(c) => match c.get(artifact) {
                None => Copy::Problem("artifact missing".to_owned()),
                Some(copy) if !copy.has_sidecar => Copy::Incomplete(copy.object.size),
                Some(copy) => match &copy.sidecar {
                    Some(s) => Copy::Complete {
                        size: copy.object.size,
                        recorded: (s.ciphertext_size, s.ciphertext_sha256.clone()),
                    },
                    None => Copy::Unreadable(
                        copy.object.size,
                        "sidecar unreadable (see the catalog's anomalies)".to_owned(),
                    ),
                },
            },
        }
    }
}

/// One sink's copy of the artifact checked.
enum Copy {
    Problem(String),
    Incomplete(u64),
    Unreadable(u64, String),
    Complete { size: u64, recorded: (u64, String) },
}

async fn evaluate(
    sinks: &[&dyn Sink],
    views: &[View<'_>],
    options: &ThreeTwoOneOptions,
) -> Result<ThreeTwoOneReport> {
    let mut violations = Vec::new();
    for (sink, view) in sinks.iter().zip(views) {
        if let View::Unavailable(e) = view {
            violations.push(Violation::SinkUnavailable {
                sink: sink.info().name.clone(),
                error: e.clone(),
            });
        }
    }

    // The newest complete artifact on some sink.
    let newest = views.iter().flat_map(View::complete).max();
    let Some(artifact) = newest else {
        violations.push(Violation::NoArtifact);
        return Ok(ThreeTwoOneReport {
            artifact: None,
            sha256: None,
            copies: sinks
                .iter()
                .map(|s| CopyStatus {
                    sink: s.info().name.clone(),
                    medium: s.info().medium,
                    offsite: s.info().offsite,
                    counts: false,
                    size: None,
                    sidecar_sha256: None,
                    computed_sha256: None,
                    problem: Some("no complete artifact".to_owned()),
                })
                .collect(),
            violations,
        });
    };

    let mut copies = Vec::with_capacity(sinks.len());
    let mut recorded_sizes = Vec::with_capacity(sinks.len());
    for (sink, view) in sinks.iter().zip(views) {
        let info = sink.info();
        let mut status = CopyStatus {
            sink: info.name.clone(),
            medium: info.medium,
            offsite: info.offsite,
            counts: false,
            size: None,
            sidecar_sha256: None,
            computed_sha256: None,
            problem: None,
        };
        let mut recorded_size = None;
        match view.copy(*sink, &artifact).await {
            Copy::Problem(p) => status.problem = Some(p),
            Copy::Incomplete(size) => {
                status.size = Some(size);
                status.problem = Some("sidecar missing (incomplete copy)".to_owned());
            }
            Copy::Unreadable(size, p) => {
                status.size = Some(size);
                status.problem = Some(p);
            }
            Copy::Complete {
                size,
                recorded: (rsize, sha),
            } => {
                status.size = Some(size);
                status.sidecar_sha256 = Some(sha);
                recorded_size = Some(rsize);
                if options.verify_hashes {
                    match hash_object(*sink, &artifact.artifact_object()).await {
                        Ok((_, h)) => status.computed_sha256 = Some(h),
                        Err(e) => status.problem = Some(format!("artifact unreadable: {e}")),
                    }
                }
            }
        }
        copies.push(status);
        recorded_sizes.push(recorded_size);
    }

    let reference = majority(copies.iter().filter_map(|c| c.sidecar_sha256.as_deref()));
    for (c, recorded_size) in copies.iter_mut().zip(recorded_sizes) {
        if c.problem.is_some() {
            continue;
        }
        let mismatch = if c.sidecar_sha256.as_deref() != reference.as_deref() {
            Some(format!(
                "sidecar records SHA-256 {} but the other copies record {}",
                c.sidecar_sha256.as_deref().unwrap_or("-"),
                reference.as_deref().unwrap_or("-")
            ))
        } else if c.size != recorded_size {
            Some(format!(
                "artifact is {} bytes but its sidecar records {} bytes",
                c.size.unwrap_or(0),
                recorded_size.unwrap_or(0)
            ))
        } else if options.verify_hashes && c.computed_sha256 != c.sidecar_sha256 {
            Some(format!(
                "artifact content hashes to {} but its sidecar records {}",
                c.computed_sha256.as_deref().unwrap_or("-"),
                c.sidecar_sha256.as_deref().unwrap_or("-")
            ))
        } else {
            None
        };
        match mismatch {
            Some(detail) => {
                violations.push(Violation::CopyMismatch {
                    sink: c.sink.clone(),
                    detail: detail.clone(),
                });
                c.problem = Some(detail);
            }
            None => c.counts = true,
        }
    }

    violations.extend(thresholds(&copies, options));
    Ok(ThreeTwoOneReport {
        artifact: Some(artifact),
        sha256: reference,
        copies,
        violations,
    })
}

impl ThreeTwoOneReport {
    /// Stops the copy on `sink` from counting (`detail` says why), then recomputes the
    /// copies/media/offsite thresholds of `options`.
    pub(crate) fn demote(&mut self, sink: &str, detail: String, options: &ThreeTwoOneOptions) {
        let Some(c) = self.copies.iter_mut().find(|c| c.sink == sink && c.counts) else {
            return;
        };
        c.counts = false;
        c.problem = Some(detail.clone());
        self.violations.retain(|v| {
            !matches!(
                v,
                Violation::TooFewCopies { .. }
                    | Violation::TooFewMedia { .. }
                    | Violation::TooFewOffsite { .. }
            )
        });
        self.violations.push(Violation::CopyUnverified {
            sink: sink.to_owned(),
            detail,
        });
        let again = thresholds(&self.copies, options);
        self.violations.extend(again);
    }
}

/// The copies/media/offsite violations of the counting copies.
fn thresholds(copies: &[CopyStatus], options: &ThreeTwoOneOptions) -> Vec<Violation> {
    let mut violations = Vec::new();
    let good: Vec<&CopyStatus> = copies.iter().filter(|c| c.counts).collect();
    if good.len() < options.min_copies {
        violations.push(Violation::TooFewCopies {
            found: good.len(),
            required: options.min_copies,
        });
    }
    let media: BTreeSet<Medium> = good.iter().map(|c| c.medium).collect();
    if media.len() < options.min_media {
        violations.push(Violation::TooFewMedia {
            found: media.into_iter().collect(),
            required: options.min_media,
        });
    }
    let offsite = good.iter().filter(|c| c.offsite).count();
    if offsite < options.min_offsite {
        violations.push(Violation::TooFewOffsite {
            found: offsite,
            required: options.min_offsite,
        });
    }
    violations
}

/// The most frequent value; ties go to the value seen first.
fn majority<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (v, n) in counts {
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((v, n));
        }
    }
    best.map(|(v, _)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::artifact::{SIDECAR_FORMAT, Sidecar};
    use crate::memory::MemorySink;
    use crate::sink::{SinkExt, SinkInfo};

    fn sink(name: &str, medium: Medium, offsite: bool) -> MemorySink {
        MemorySink::with_info(SinkInfo {
            name: name.into(),
            medium,
            offsite,
            location: format!("memory://{name}"),
        })
    }

    fn name(t: &str) -> ArtifactName {
        ArtifactName::new("wst-backup", t.parse().unwrap()).unwrap()
    }

    async fn store(sink: &dyn Sink, n: &ArtifactName, data: &[u8]) {
        sink.put_bytes(&n.artifact_object(), Bytes::copy_from_slice(data))
            .await
            .unwrap();
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
            verification: None,
        };
        sink.put_bytes(
            &n.sidecar_object(),
            Bytes::from(serde_json::to_vec(&s).unwrap()),
        )
        .await
        .unwrap();
    }

    /// The doctrine's layout: local C:, mirror D:, offsite object storage.
    fn layout() -> (MemorySink, MemorySink, MemorySink) {
        (
            sink("local-c", Medium::Disk, false),
            sink("mirror-d", Medium::Disk, false),
            sink("offsite-s3", Medium::ObjectStorage, true),
        )
    }

    #[tokio::test]
    async fn compliant_when_three_agreeing_copies_on_two_media_one_offsite() {
        let (c, d, s3) = layout();
        let a = name("2026-11-21T01:00:00Z");
        for s in [&c, &d, &s3] {
            store(s, &a, b"ciphertext").await;
        }
        let opts = ThreeTwoOneOptions {
            verify_hashes: true,
            ..ThreeTwoOneOptions::default()
        };
        let r = check_3_2_1(&[&c, &d, &s3], &opts).await.unwrap();
        assert!(r.is_compliant(), "{:?}", r.violations);
        assert_eq!(r.artifact, Some(a));
        assert_eq!(r.good_copies(), 3);
        assert_eq!(
            r.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"ciphertext")).as_str())
        );
        assert!(r.copies.iter().all(|c| c.computed_sha256 == r.sha256));
    }

    #[tokio::test]
    async fn newest_artifact_only_local_names_each_broken_rule() {
        let (c, d, s3) = layout();
        let old = name("2026-11-20T01:00:00Z");
        let new = name("2026-11-21T01:00:00Z");
        for s in [&c, &d, &s3] {
            store(s, &old, b"old").await;
        }
        store(&c, &new, b"new").await;
        let r = check_3_2_1(&[&c, &d, &s3], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert_eq!(r.artifact, Some(new));
        assert_eq!(
            r.violations,
            [
                Violation::TooFewCopies {
                    found: 1,
                    required: 3
                },
                Violation::TooFewMedia {
                    found: vec![Medium::Disk],
                    required: 2
                },
                Violation::TooFewOffsite {
                    found: 0,
                    required: 1
                },
            ]
        );
        assert_eq!(r.copies[1].problem.as_deref(), Some("artifact missing"));
        assert_eq!(
            r.violations[0].to_string(),
            "3-2-1 rule \"3 copies\" violated: 1 good copy of the newest artifact"
        );
        assert_eq!(
            r.violations[1].to_string(),
            "3-2-1 rule \"2 media\" violated: the good copies are on 1 medium (disk)"
        );
    }

    #[tokio::test]
    async fn two_disks_without_offsite_violate_media_and_offsite_only() {
        let (local, mirror, _) = layout();
        let usb = sink("usb-e", Medium::Disk, false);
        let artifact = name("2026-11-21T01:00:00Z");
        for s in [&local, &mirror, &usb] {
            store(s, &artifact, b"x").await;
        }
        let r = check_3_2_1(&[&local, &mirror, &usb], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert_eq!(
            r.violations,
            [
                Violation::TooFewMedia {
                    found: vec![Medium::Disk],
                    required: 2
                },
                Violation::TooFewOffsite {
                    found: 0,
                    required: 1
                },
            ]
        );
    }

    #[tokio::test]
    async fn tampered_copy_is_detected_by_deep_check_only() {
        let (c, d, s3) = layout();
        let a = name("2026-11-21T01:00:00Z");
        for s in [&c, &d, &s3] {
            store(s, &a, b"ciphertext").await;
        }
        s3.tamper(&a.artifact_object(), |v| v[0] ^= 0xff).unwrap();
        let shallow = check_3_2_1(&[&c, &d, &s3], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert!(
            shallow.is_compliant(),
            "same size, same sidecar: the shallow check passes"
        );

        let deep = check_3_2_1(
            &[&c, &d, &s3],
            &ThreeTwoOneOptions {
                verify_hashes: true,
                ..ThreeTwoOneOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(deep.good_copies(), 2);
        assert!(matches!(
            &deep.violations[0],
            Violation::CopyMismatch { sink, detail } if sink == "offsite-s3" && detail.contains("hashes to")
        ));
        assert!(deep.violations.contains(&Violation::TooFewCopies {
            found: 2,
            required: 3
        }));
        assert!(deep.violations.contains(&Violation::TooFewOffsite {
            found: 0,
            required: 1
        }));
    }

    #[tokio::test]
    async fn disagreeing_sidecar_and_truncated_copy_are_mismatches() {
        let (c, d, s3) = layout();
        let a = name("2026-11-21T01:00:00Z");
        store(&c, &a, b"ciphertext").await;
        store(&d, &a, b"ciphertext").await;
        store(&s3, &a, b"other bytes").await;
        let r = check_3_2_1(&[&c, &d, &s3], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert!(matches!(
            &r.violations[0],
            Violation::CopyMismatch { sink, detail } if sink == "offsite-s3" && detail.contains("sidecar records SHA-256")
        ));

        d.tamper(&a.artifact_object(), |v| v.truncate(3)).unwrap();
        let r = check_3_2_1(&[&c, &d, &s3], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert!(r.violations.iter().any(|v| matches!(
            v,
            Violation::CopyMismatch { sink, detail } if sink == "mirror-d" && detail.contains("3 bytes but its sidecar records 10 bytes")
        )));
        assert_eq!(r.good_copies(), 1);
    }

    #[tokio::test]
    async fn no_artifact_anywhere() {
        let (c, d, s3) = layout();
        c.put_bytes(
            &name("2026-11-21T01:00:00Z").artifact_object(),
            Bytes::from_static(b"partial"),
        )
        .await
        .unwrap();
        let r = check_3_2_1(&[&c, &d, &s3], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert_eq!(r.artifact, None);
        assert_eq!(r.violations, [Violation::NoArtifact]);
    }

    #[tokio::test]
    async fn lowered_thresholds_are_honoured() {
        let (c, _, s3) = layout();
        let a = name("2026-11-21T01:00:00Z");
        store(&c, &a, b"x").await;
        store(&s3, &a, b"x").await;
        let opts = ThreeTwoOneOptions {
            min_copies: 2,
            ..ThreeTwoOneOptions::default()
        };
        let r = check_3_2_1(&[&c, &s3], &opts).await.unwrap();
        assert!(r.is_compliant(), "{:?}", r.violations);
    }

    /// A sink that cannot be reached.
    #[derive(Debug)]
    struct Unreachable(SinkInfo);

    #[async_trait::async_trait]
    impl Sink for Unreachable {
        fn info(&self) -> &SinkInfo {
            &self.0
        }
        async fn put(&self, name: &str) -> crate::Result<Box<dyn crate::sink::SinkUpload>> {
            Err(self.down("put", name))
        }
        async fn get(&self, name: &str) -> crate::Result<crate::sink::ByteStream> {
            Err(self.down("get", name))
        }
        async fn head(&self, name: &str) -> crate::Result<crate::sink::ObjectMeta> {
            Err(self.down("head", name))
        }
        async fn list(&self, _prefix: &str) -> crate::Result<Vec<crate::sink::ObjectMeta>> {
            Err(self.down("list", ""))
        }
        async fn delete(&self, name: &str) -> crate::Result<()> {
            Err(self.down("delete", name))
        }
    }

    impl Unreachable {
        fn down(&self, operation: &'static str, name: &str) -> crate::Error {
            crate::Error::Sink {
                sink: self.0.name.clone(),
                operation,
                name: name.to_owned(),
                retryable: true,
                source: "connection refused".into(),
            }
        }
    }

    #[tokio::test]
    async fn unreachable_sink_is_named_and_holds_nothing() {
        let (c, d, _) = layout();
        let offsite = Unreachable(SinkInfo {
            name: "offsite-s3".into(),
            medium: Medium::ObjectStorage,
            offsite: true,
            location: "s3://bucket".into(),
        });
        let artifact = name("2026-11-21T01:00:00Z");
        store(&c, &artifact, b"x").await;
        store(&d, &artifact, b"x").await;
        let r = check_3_2_1(&[&c, &d, &offsite], &ThreeTwoOneOptions::default())
            .await
            .unwrap();
        assert_eq!(r.artifact, Some(artifact));
        assert_eq!(r.copies[2].problem.as_deref(), Some("sink unavailable"));
        assert!(matches!(
            &r.violations[0],
            Violation::SinkUnavailable { sink, error } if sink == "offsite-s3" && error.contains("connection refused")
        ));
        assert_eq!(
            &r.violations[1..],
            [
                Violation::TooFewCopies {
                    found: 2,
                    required: 3
                },
                Violation::TooFewMedia {
                    found: vec![Medium::Disk],
                    required: 2
                },
                Violation::TooFewOffsite {
                    found: 0,
                    required: 1
                },
            ]
        );
    }

    #[test]
    fn majority_prefers_most_frequent_then_first() {
        assert_eq!(majority(["a", "b", "b"].into_iter()).as_deref(), Some("b"));
        assert_eq!(majority(["a", "b"].into_iter()).as_deref(), Some("a"));
        assert_eq!(majority(std::iter::empty()), None);
    }
}
