//! Reading a header's public facts without any key.

use wst_core::KeyFingerprint;

use crate::error::{Error, Result};
use crate::format::{self, FIXED_LEN, SlotKind};
use crate::key::KdfParams;

/// What kind of key a slot is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotInfo {
    /// A raw 256-bit key (key file).
    RawKey {
        /// The key's fingerprint.
        fingerprint: KeyFingerprint,
    },
    /// A passphrase through Argon2id.
    Passphrase {
        /// The passphrase's fingerprint under this slot's salt and parameters.
        fingerprint: KeyFingerprint,
        /// The recorded Argon2id parameters (already checked against the caps).
        kdf: KdfParams,
    },
}

impl SlotInfo {
    /// The slot's fingerprint.
    pub fn fingerprint(&self) -> KeyFingerprint {
        match self {
            Self::RawKey { fingerprint } | Self::Passphrase { fingerprint, .. } => *fingerprint,
        }
    }
}

/// The public facts of an artifact header, read without any key: which keys can open it, its
/// chunk size and identifier. For operators ("which key do I need?") and for comparing a
/// sidecar's fingerprints with the artifact's.
///
/// # Warning
/// Nothing here is authenticated (the header MAC needs the data key): use it for display and
/// diagnosis, never for a security decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderInfo {
    /// Format version (1).
    pub version: u8,
    /// Suite (1 = AES-256-GCM STREAM).
    pub suite: u8,
    /// Plaintext bytes per non-final chunk.
    pub chunk_size: u32,
    /// The random artifact identifier.
    pub artifact_id: [u8; 16],
    /// Header length in bytes (where the payload starts).
    pub header_len: u64,
    /// The key slots, in order.
    pub slots: Vec<SlotInfo>,
}

impl HeaderInfo {
    /// Parses the header at the start of `bytes` (at least the whole header; more is ignored).
    /// Applies every cap the opener applies.
    ///
    /// # Errors
    /// The opener's header errors ([`Error::NotAnArtifact`], [`Error::UnsupportedVersion`],
    /// [`Error::HeaderLimit`], [`Error::KdfLimit`], [`Error::MalformedHeader`] …), or
    /// [`Error::Truncated`] when `bytes` ends inside the header.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        format::check_prefix(bytes)?;
        let truncated = || Error::Truncated {
            offset: bytes.len() as u64,
            chunks: 0,
            detail: "inside the header",
        };
        if bytes.len() < FIXED_LEN {
            return Err(truncated());
        }
        let (core, slot_count, header_len) = format::parse_fixed(bytes)?;
        let header = bytes.get(..header_len).ok_or_else(truncated)?;
        let slots = format::parse_slots(header, slot_count)?;
        Ok(Self {
            version: format::FORMAT_VERSION,
            suite: format::SUITE_AES256GCM_STREAM,
            chunk_size: core.chunk_size,
            artifact_id: core.artifact_id,
            header_len: header_len as u64,
            slots: slots
                .iter()
                .map(|s| match s.kind {
                    SlotKind::RawKey => SlotInfo::RawKey {
                        fingerprint: s.fingerprint,
                    },
                    SlotKind::Passphrase { params, .. } => SlotInfo::Passphrase {
                        fingerprint: s.fingerprint,
                        kdf: params,
                    },
                })
                .collect(),
        })
    }

    /// The fingerprints of all slots, in order.
    pub fn fingerprints(&self) -> Vec<KeyFingerprint> {
        self.slots.iter().map(SlotInfo::fingerprint).collect()
    }
}
