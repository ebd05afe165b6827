//! Audit anchors on the sinks (`docs/EVIDENCE.md`, "Audit anchors").
//!
//! After each audited operation the repository writes the audit chain's head (the last
//! record's `seq` and `hash`), sealed under the evidence key, into the object
//! `{prefix}.audit-head.json` on every identified sink. Whoever can rewrite the host's audit log
//! cannot also rewrite these (without the key), so a log that was cut short, replaced by an
//! older copy or rewritten is detected against them (issue 14). Each artifact's manifest and
//! sidecar carry the head at the start of its run as well.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::audit::AuditHead;
use crate::error::{Error, Result};
use crate::evidence::EvidenceKey;
use crate::sink::{Sink, SinkExt};

/// The head object's `format`.
pub const AUDIT_HEAD_FORMAT: &str = "wst-audit-head/1";

/// MAC domain of head objects.
const HEAD_DOMAIN: &str = "wst audit head v1";

/// Largest head object read, bytes.
const HEAD_MAX_BYTES: u64 = 16 * 1024;

/// The head object's name for artifact prefix `prefix`: `{prefix}.audit-head.json` (outside the
/// `{prefix}-` namespace of artifacts).
pub fn audit_head_object(prefix: &str) -> String {
    format!("{prefix}.audit-head.json")
}

/// What the head object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHeadObject {
    /// Always [`AUDIT_HEAD_FORMAT`].
    pub format: String,
    /// The artifact prefix of the repository.
    pub prefix: String,
    /// The head: the audit log held at least this record when it was written.
    pub head: AuditHead,
    /// When it was written (UTC).
    pub written: jiff::Timestamp,
    /// HMAC-SHA256 (hex) under the evidence key with fingerprint `key`, over the compact JSON
    /// of the other members with `mac` empty, in this order.
    pub mac: String,
    /// The fingerprint of the repository key whose evidence key made `mac`.
    pub key: String,
}

impl AuditHeadObject {
    fn new(prefix: &str, head: AuditHead, written: jiff::Timestamp, key: &EvidenceKey) -> Self {
        let mut h = Self {
            format: AUDIT_HEAD_FORMAT.to_owned(),
            prefix: prefix.to_owned(),
            head,
            written,
            mac: String::new(),
            key: key.id().to_string(),
        };
        h.mac = hex::encode(key.mac(HEAD_DOMAIN, &h.body()));
        h
    }

    fn body(&self) -> Vec<u8> {
        let mut plain = self.clone();
        plain.mac = String::new();
        serde_json::to_vec(&plain).expect("a head object serialises")
    }

    /// Whether the MAC verifies under one of `keys`.
    pub fn authentic(&self, keys: &[EvidenceKey]) -> bool {
        let Ok(tag) = hex::decode(&self.mac) else {
            return false;
        };
        keys.iter()
            .filter(|k| k.id().to_string() == self.key)
            .any(|k| k.verify(HEAD_DOMAIN, &self.body(), &tag))
    }
}

/// Writes `head` on `sink`, unless the sink already holds a later authentic head (two
/// processes appending to one log: the later head wins).
pub(crate) async fn write_head(
    sink: &dyn Sink,
    prefix: &str,
    head: &AuditHead,
    now: jiff::Timestamp,
    key: &EvidenceKey,
) -> Result<()> {
    if let Ok(Some(old)) = read_head(sink, prefix).await
        && old.prefix == prefix
        && old.head.seq > head.seq
        && old.authentic(std::slice::from_ref(key))
    {
        return Ok(());
    }
    let object = AuditHeadObject::new(prefix, head.clone(), now, key);
    let bytes = serde_json::to_vec_pretty(&object)
        .map_err(|e| Error::Config(format!("audit head serialisation failed: {e}")))?;
    sink.put_bytes(&audit_head_object(prefix), Bytes::from(bytes))
        .await?;
    Ok(())
}

/// Reads the head object of `prefix` on `sink`: `Ok(None)` when there is none.
///
/// # Errors
/// The sink's error; [`Error::Malformed`] when it does not parse.
pub(crate) async fn read_head(sink: &dyn Sink, prefix: &str) -> Result<Option<AuditHeadObject>> {
    let name = audit_head_object(prefix);
    match sink.get_bytes(&name, HEAD_MAX_BYTES).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Malformed {
                artifact: format!("{name} on sink `{}`", sink.info().name),
                detail: format!("the audit head does not parse: {e}"),
            }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The result of [`Repository::check_audit`](crate::Repository::check_audit): the chain and
/// every anchor compared with the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheck {
    /// The chain's own verification (SHA-256 links and, keyed, MACs).
    pub chain: crate::audit::ChainReport,
    /// Anchors compared: one per sink head object and per sink's newest sealed sidecar.
    pub anchors_checked: u64,
    /// Every disagreement: an anchor the log does not hold, a head object that does not
    /// authenticate. Empty when the log is consistent with every anchor.
    pub problems: Vec<String>,
}

impl AuditCheck {
    /// Whether the chain is intact and every anchor is in the log.
    pub fn trustworthy(&self) -> bool {
        self.chain.intact() && self.problems.is_empty()
    }
}
