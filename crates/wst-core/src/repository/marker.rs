//! Sink identity: the repository marker `wst init` writes on each sink (`docs/EVIDENCE.md` §6).
//!
//! An external mirror disk that is not mounted is the most common way a 3-2-1 setup fails
//! silently: the sink's path then names an empty directory on the root filesystem. A sink
//! without its marker is refused (never silently initialised), and two configured sinks that
//! read the same marker are one location, not two copies.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::evidence::EvidenceKey;
use crate::sink::{Sink, SinkExt};

/// The marker object's name on every sink.
pub const MARKER_OBJECT: &str = "wst-repository.json";

/// The marker's `format`.
pub const MARKER_FORMAT: &str = "wst-repository/1";

/// MAC domain of markers.
const MARKER_DOMAIN: &str = "wst repository marker v1";

/// What `init` writes on a sink: which repository this is and which configured sink it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryMarker {
    /// Always [`MARKER_FORMAT`].
    pub format: String,
    /// The repository id, 32 hex digits, the same on every sink of one repository.
    pub repository_id: String,
    /// The configured name of the sink it was written on.
    pub sink: String,
    /// The artifact prefix of the repository.
    pub prefix: String,
    /// When `init` wrote it (UTC).
    pub created: jiff::Timestamp,
    /// HMAC-SHA256 (hex) under the evidence key with fingerprint `key`, over the JSON of the
    /// other members with `mac` empty (compact, in this order).
    pub mac: String,
    /// The fingerprint of the repository key whose evidence key made `mac`.
    pub key: String,
}

impl RepositoryMarker {
    /// A new marker for sink `sink`, sealed with `key`.
    pub(crate) fn new(
        repository_id: &str,
        sink: &str,
        prefix: &str,
        created: jiff::Timestamp,
        key: &EvidenceKey,
    ) -> Self {
        let mut m = Self {
            format: MARKER_FORMAT.to_owned(),
            repository_id: repository_id.to_owned(),
            sink: sink.to_owned(),
            prefix: prefix.to_owned(),
            created,
            mac: String::new(),
            key: key.id().to_string(),
        };
        m.mac = hex::encode(key.mac(MARKER_DOMAIN, &m.body()));
        m
    }

    fn body(&self) -> Vec<u8> {
        let mut plain = self.clone();
        plain.mac = String::new();
        serde_json::to_vec(&plain).expect("a marker serialises")
    }

    /// Whether the MAC verifies under one of `keys`.
    pub fn authentic(&self, keys: &[EvidenceKey]) -> bool {
        let Ok(tag) = hex::decode(&self.mac) else {
            return false;
        };
        keys.iter()
            .filter(|k| k.id().to_string() == self.key)
            .any(|k| k.verify(MARKER_DOMAIN, &self.body(), &tag))
    }
}

/// A new repository id: 32 hex digits from SHA-256 over the time, the process, the prefix
/// and the key id (unique, not secret).
pub(crate) fn new_repository_id(now: jiff::Timestamp, prefix: &str, key: &EvidenceKey) -> String {
    let mut h = Sha256::new();
    h.update(now.as_nanosecond().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(prefix.as_bytes());
    h.update(key.id().0);
    h.update(key.mac("wst repository id", &now.as_nanosecond().to_le_bytes()));
    hex::encode(&h.finalize()[..16])
}

/// Reads the marker of `sink`: `Ok(None)` when it has none.
///
/// # Errors
/// The sink's error; [`Error::Malformed`] for a marker that does not parse.
pub(crate) async fn read_marker(sink: &dyn Sink) -> Result<Option<RepositoryMarker>> {
    match sink.get_bytes(MARKER_OBJECT, 64 * 1024).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Malformed {
                artifact: format!("{} on sink `{}`", MARKER_OBJECT, sink.info().name),
                detail: format!("the repository marker does not parse: {e}"),
            }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `marker` on `sink`.
pub(crate) async fn write_marker(sink: &dyn Sink, marker: &RepositoryMarker) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(marker)
        .map_err(|e| Error::Config(format!("marker serialisation failed: {e}")))?;
    sink.put_bytes(MARKER_OBJECT, Bytes::from(bytes)).await?;
    Ok(())
}

/// The state of one sink's identity, from [`Repository::check_sinks`](crate::Repository::check_sinks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkIdentity {
    /// The configured sink name.
    pub sink: String,
    /// Whether the sink may be used: its marker is authentic, names this sink and this
    /// repository, and no other configured sink reads the same marker.
    pub ok: bool,
    /// The repository id read, if any.
    pub repository_id: Option<String>,
    /// What is wrong and what to do, when not ok.
    pub problem: Option<String>,
}
