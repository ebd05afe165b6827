//! The catalog: the one place that lists a sink and reads sidecars, with one rule for "this
//! sidecar belongs to this artifact" and one for "this copy is verified".
//!
//! Everything that asks which artifacts a sink holds and what state each copy is in (prune,
//! compliance status, the repository's verify and drill choices) reads a [`Catalog`]; nothing
//! else interprets sidecars.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::artifact::{ARTIFACT_EXTENSION, ArtifactName, SIDECAR_EXTENSION, Sidecar};
use crate::error::{Error, Result};
use crate::evidence::{EvidenceKey, SIDECAR_MAX_BYTES, SidecarTrust, open_sidecar};
use crate::sink::{ObjectMeta, Sink, SinkExt};

/// The extension of name claims, `{name}.claim` (`docs/EVIDENCE.md` §7).
pub const CLAIM_EXTENSION: &str = ".claim";

/// Sidecars read concurrently while cataloguing one sink.
const SIDECAR_READS_IN_FLIGHT: usize = 8;

/// How a catalog judges sidecars' verification claims.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Only a sidecar whose MAC verifies under one of these evidence keys
    /// ([`Cipher::evidence_keys`](crate::Cipher::evidence_keys)) can make a copy verified
    /// (design invariant 8). What a [`Repository`](crate::Repository) always uses.
    Authenticated(&'a [EvidenceKey]),
    /// Sidecars are believed as they are (no key at hand: an offline count of copies). A copy
    /// counts as verified on its sidecar's word alone. The low-level
    /// [`prune`](crate::prune) and [`compliance_status`](crate::compliance_status) read
    /// catalogs this way; the [`Repository`](crate::Repository) never does.
    Unauthenticated,
}

/// Something odd found while cataloguing a sink, reported for the operator; the operations on
/// top stay safe (the copy concerned counts as incomplete or unverified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "anomaly", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Anomaly {
    /// A sidecar whose artifact is missing (deleted by hand, or a crash of another tool).
    /// Prune does not delete it; remove it after checking.
    OrphanSidecar {
        /// The sidecar object name.
        object: String,
    },
    /// A sidecar that cannot be read as a wst sidecar; its artifact is treated as incomplete.
    UnreadableSidecar {
        /// The artifact name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A sidecar that describes another object or another size; its artifact is treated as
    /// incomplete (it counts for nothing and justifies no deletion).
    SidecarMismatch {
        /// The artifact name.
        name: String,
        /// What disagrees.
        detail: String,
    },
    /// A sidecar whose MAC does not authenticate under the repository's keys, or that has no
    /// MAC: its verification claim does not count (the copy is unverified until `wst verify`
    /// verifies it again and seals a new sidecar).
    UnauthenticatedSidecar {
        /// The artifact name.
        name: String,
        /// Why, e.g. `MAC does not verify`.
        detail: String,
    },
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OrphanSidecar { object } => write!(
                f,
                "sidecar `{object}` has no artifact; check and remove it by hand"
            ),
            Self::UnreadableSidecar { name, detail } => write!(
                f,
                "the sidecar of `{name}` is unreadable ({detail}); the artifact counts as incomplete"
            ),
            Self::SidecarMismatch { name, detail } => write!(
                f,
                "the sidecar of `{name}` does not match it ({detail}); the artifact counts as \
                 incomplete"
            ),
            Self::UnauthenticatedSidecar { name, detail } => write!(
                f,
                "the sidecar of `{name}` is not authentic ({detail}); its verification does not \
                 count: run `wst verify {name}`"
            ),
        }
    }
}

/// One copy of one artifact on one sink, as the catalog found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogCopy {
    /// The artifact name.
    pub name: ArtifactName,
    /// The artifact object as listed (name, size in bytes, last modified).
    pub object: ObjectMeta,
    /// Whether a sidecar object exists for it (readable or not).
    pub has_sidecar: bool,
    /// The sidecar, when it was read and parsed.
    pub sidecar: Option<Sidecar>,
    /// How far the sidecar can be trusted (`None` without a parsed sidecar).
    pub trust: Option<SidecarTrust>,
    /// Complete: a parsed sidecar that names this artifact and object and records the listed
    /// size.
    pub complete: bool,
    /// Verified: complete, its last recorded verification passed, and (under
    /// [`Trust::Authenticated`]) the sidecar authenticated. Only such copies count for
    /// retention, 3-2-1 and compliance, and justify a deletion.
    pub verified: bool,
}

impl CatalogCopy {
    /// The sidecar's `(size, SHA-256 hex)` of the ciphertext, when the copy is complete.
    pub fn expected(&self) -> Option<(u64, String)> {
        self.sidecar
            .as_ref()
            .filter(|_| self.complete)
            .map(|s| (s.ciphertext_size, s.ciphertext_sha256.clone()))
    }
}

/// The artifacts of one prefix on one sink, oldest first, with the odd objects found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The sink's configured name.
    pub sink: String,
    /// The artifact prefix catalogued (other prefixes on the sink are not listed).
    pub prefix: String,
    /// Every artifact object `{prefix}-YYYYMMDD-HHMMSS.tar.zst.wst`, oldest first.
    pub copies: Vec<CatalogCopy>,
    /// Odd objects: orphan, unreadable, mismatched or unauthenticated sidecars.
    pub anomalies: Vec<Anomaly>,
    /// Name claims `{name}.claim` of runs writing now, or of runs that were killed (a claim
    /// outlives its run only when the process died).
    #[serde(default)]
    pub claims: Vec<ObjectMeta>,
}

impl Catalog {
    /// Lists `sink` for artifacts named `{prefix}-…` and reads every sidecar (at most
    /// [`SIDECAR_MAX_BYTES`] each, 8 at a time), judging verification claims by `trust`.
    ///
    /// # Errors
    /// The sink's error when it cannot be listed, or a sidecar cannot be read for another
    /// reason than having vanished or being too large (those are anomalies).
    pub async fn read(sink: &dyn Sink, prefix: &str, trust: Trust<'_>) -> Result<Self> {
        let sink_name = sink.info().name.clone();
        let objects = sink.list(&format!("{prefix}-")).await?;
        let mut artifacts: BTreeMap<ArtifactName, ObjectMeta> = BTreeMap::new();
        let mut sidecars: BTreeSet<ArtifactName> = BTreeSet::new();
        let mut claims = Vec::new();
        for meta in objects {
            if let Some(stem) = meta.name.strip_suffix(CLAIM_EXTENSION) {
                // Only this prefix's claims: `{prefix}-base-…` (issue 16) lists under `{prefix}-`.
                if ArtifactName::parse(stem).is_ok_and(|n| n.prefix() == prefix) {
                    claims.push(meta);
                }
                continue;
            }
            let Ok(name) = ArtifactName::parse(&meta.name) else {
                continue;
            };
            if name.prefix() != prefix {
                continue;
            }
            if meta.name.ends_with(ARTIFACT_EXTENSION) {
                artifacts.insert(name, meta);
            } else if meta.name.ends_with(SIDECAR_EXTENSION) {
                sidecars.insert(name);
            }
        }
        let mut anomalies: Vec<Anomaly> = sidecars
            .iter()
            .filter(|n| !artifacts.contains_key(*n))
            .map(|n| Anomaly::OrphanSidecar {
                object: n.sidecar_object(),
            })
            .collect();
        let read: Vec<(CatalogCopy, Option<Anomaly>)> = futures::stream::iter(artifacts)
            .map(|(name, meta)| {
                let has_sidecar = sidecars.contains(&name);
                async move { read_copy(sink, name, meta, has_sidecar, trust).await }
            })
            .buffered(SIDECAR_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut copies = Vec::with_capacity(read.len());
        for (c, a) in read {
            anomalies.extend(a);
            copies.push(c);
        }
        Ok(Self {
            sink: sink_name,
            prefix: prefix.to_owned(),
            copies,
            anomalies,
            claims,
        })
    }

    /// The copy of `name`, if the sink holds its artifact object.
    pub fn get(&self, name: &ArtifactName) -> Option<&CatalogCopy> {
        self.copies.iter().find(|c| &c.name == name)
    }

    /// Complete copies, oldest first.
    pub fn complete(&self) -> impl DoubleEndedIterator<Item = &CatalogCopy> {
        self.copies.iter().filter(|c| c.complete)
    }

    /// Verified copies, oldest first.
    pub fn verified(&self) -> impl DoubleEndedIterator<Item = &CatalogCopy> {
        self.copies.iter().filter(|c| c.verified)
    }

    /// The copy of one artifact on `sink` under the same rule as [`Catalog::read`], without
    /// listing the sink: one `head` of the artifact and one read of its sidecar. `Ok(None)`
    /// when the sink has no artifact object of that name; the anomaly, if any, comes with it.
    ///
    /// # Errors
    /// The sink's error when the artifact cannot be looked up or its sidecar read (other
    /// than missing or too large).
    pub async fn read_one(
        sink: &dyn Sink,
        name: &ArtifactName,
        trust: Trust<'_>,
    ) -> Result<Option<(CatalogCopy, Option<Anomaly>)>> {
        let meta = match sink.head(&name.artifact_object()).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        read_copy(sink, name.clone(), meta, true, trust)
            .await
            .map(Some)
    }
}

/// Reads the sidecar of one artifact and decides whether the copy is complete and verified.
async fn read_copy(
    sink: &dyn Sink,
    name: ArtifactName,
    meta: ObjectMeta,
    has_sidecar: bool,
    trust: Trust<'_>,
) -> Result<(CatalogCopy, Option<Anomaly>)> {
    let mut copy = CatalogCopy {
        name,
        object: meta,
        has_sidecar,
        sidecar: None,
        trust: None,
        complete: false,
        verified: false,
    };
    if !has_sidecar {
        return Ok((copy, None));
    }
    let label = copy.name.to_string();
    let object = copy.name.sidecar_object();
    let keys: &[EvidenceKey] = match trust {
        Trust::Authenticated(k) => k,
        Trust::Unauthenticated => &[],
    };
    let anomaly = match sink.get_bytes(&object, SIDECAR_MAX_BYTES).await {
        Ok(bytes) => match open_sidecar(&bytes, keys, &object) {
            Ok((sidecar, t)) => {
                let anomaly =
                    check_sidecar(&copy, &sidecar).map(|detail| Anomaly::SidecarMismatch {
                        name: label.clone(),
                        detail,
                    });
                copy.complete = anomaly.is_none();
                let believed = match trust {
                    Trust::Authenticated(_) => t.is_authentic(),
                    Trust::Unauthenticated => true,
                };
                copy.verified = copy.complete && believed && sidecar.is_verified();
                let unauthentic =
                    matches!(trust, Trust::Authenticated(_)) && copy.complete && !t.is_authentic();
                copy.trust = Some(t);
                copy.sidecar = Some(sidecar);
                anomaly.or_else(|| {
                    unauthentic.then(|| Anomaly::UnauthenticatedSidecar {
                        name: label.clone(),
                        detail: t.to_string(),
                    })
                })
            }
            Err(e) => Some(Anomaly::UnreadableSidecar {
                name: label,
                detail: match e {
                    Error::Malformed { detail, .. } => detail,
                    other => other.to_string(),
                },
            }),
        },
        // No sidecar (or deleted between list and get): the artifact is incomplete.
        Err(Error::NotFound { .. }) => {
            copy.has_sidecar = false;
            None
        }
        Err(Error::LimitExceeded { value, limit, .. }) => Some(Anomaly::UnreadableSidecar {
            name: label,
            detail: format!("larger than {limit} bytes ({value} read)"),
        }),
        Err(e) => return Err(e),
    };
    Ok((copy, anomaly))
}

/// Why `sidecar` does not describe `copy`, if it does not.
fn check_sidecar(copy: &CatalogCopy, sidecar: &Sidecar) -> Option<String> {
    if sidecar.name != copy.name {
        Some(format!("the sidecar names `{}`", sidecar.name))
    } else if sidecar.object != copy.object.name {
        Some(format!("the sidecar describes object `{}`", sidecar.object))
    } else if sidecar.ciphertext_size != copy.object.size {
        Some(format!(
            "the sidecar records {} bytes, the sink holds {} bytes",
            sidecar.ciphertext_size, copy.object.size
        ))
    } else {
        None
    }
}
