//! Authenticated evidence: the key that MACs a repository's plaintext evidence (sidecars and
//! their verification records), and the sealed sidecar encoding (`docs/FORMAT.md`, "Sidecar
//! MAC").
//!
//! Sidecars stay plaintext so copies can be counted and hashed without the key (an auditor's
//! offline 3-2-1 check), but anyone who can write a sink can also write a sidecar. A sealed
//! sidecar carries an HMAC-SHA256 under an [`EvidenceKey`] derived from the repository key, so a
//! sidecar (or a verification claim in it) that does not authenticate counts as unverified
//! (design invariant 8).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::artifact::Sidecar;
use crate::cipher::KeyFingerprint;
use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// The MAC algorithm name written in sealed evidence.
pub const EVIDENCE_MAC: &str = "hmac-sha256";

/// A 32-byte key for authenticating evidence, derived one-way from a repository (encryption)
/// key; identified by the fingerprint of the key it derives from.
///
/// wst-crypto derives it with HKDF-SHA256 (no salt, info `"wst evidence key v1"`) from a raw
/// key, so it changes when the repository key changes and reveals nothing about it.
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct EvidenceKey {
    id: KeyFingerprint,
    key: Zeroizing<[u8; 32]>,
}

impl EvidenceKey {
    /// An evidence key `key` derived from the repository key with fingerprint `id`.
    pub fn new(id: KeyFingerprint, key: [u8; 32]) -> Self {
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    /// The fingerprint of the repository key it derives from.
    pub fn id(&self) -> KeyFingerprint {
        self.id
    }

    /// HMAC-SHA256 of `data` in the domain `domain` (e.g. `"wst sidecar v1"`): the MAC input is
    /// `domain ‖ 0x00 ‖ data`, so evidence of one kind never authenticates as another.
    pub fn mac(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        let mut m = <HmacSha256 as Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes any key length");
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `data` in `domain` (constant-time comparison).
    pub fn verify(&self, domain: &str, data: &[u8], tag: &[u8]) -> bool {
        let mut m = <HmacSha256 as Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes any key length");
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(data);
        m.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for EvidenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvidenceKey({}, [REDACTED])", self.id)
    }
}

/// The MAC domain of sidecars.
const SIDECAR_DOMAIN: &str = "wst sidecar v1";

/// The JSON member a sealed sidecar ends with, before the closing `}`.
const MAC_MEMBER: &str = ",\n  \"mac\": \"";

/// Largest sidecar read from a sink, bytes (a sidecar is about 1 KiB).
pub const SIDECAR_MAX_BYTES: u64 = 64 * 1024;

/// How far a sidecar read from a sink can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SidecarTrust {
    /// Its MAC verified under one of the repository's evidence keys.
    Authentic,
    /// It carries no MAC (written by wst before sealed sidecars, or by someone else): its
    /// facts are shown, but its verification claim does not count.
    Unsealed,
    /// Its MAC does not verify under any evidence key held (forged, altered, or sealed under a
    /// key this repository does not hold): its verification claim does not count.
    Forged,
    /// No evidence key was available to check it (e.g. an offline count without the key).
    Unchecked,
}

impl SidecarTrust {
    /// Whether the sidecar's verification claim may be believed.
    pub fn is_authentic(self) -> bool {
        self == Self::Authentic
    }
}

impl fmt::Display for SidecarTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Authentic => "authentic",
            Self::Unsealed => "unsealed (no MAC)",
            Self::Forged => "MAC does not verify",
            Self::Unchecked => "not checked (no key)",
        })
    }
}

/// Serialises `sidecar` (pretty JSON) and, with `key`, appends its MAC as the last member:
/// `…,\n  "mac": "hmac-sha256 <key fingerprint> <64 hex>"\n}`. The MAC covers every byte
/// before the `,` of that member, followed by `\n}` — exactly the unsealed encoding.
///
/// # Errors
/// [`Error::Config`] if serialisation fails (it does not for well-formed sidecars).
pub fn seal_sidecar(sidecar: &Sidecar, key: Option<&EvidenceKey>) -> Result<Vec<u8>> {
    let mut plain = sidecar.clone();
    plain.mac = None;
    let body = serde_json::to_vec_pretty(&plain)
        .map_err(|e| Error::Config(format!("sidecar serialisation failed: {e}")))?;
    let Some(key) = key else {
        return Ok(body);
    };
    let tag = key.mac(SIDECAR_DOMAIN, &body);
    let mut out = body;
    // Pretty JSON of a struct ends with "\n}".
    out.truncate(out.len() - 2);
    out.extend_from_slice(MAC_MEMBER.as_bytes());
    out.extend_from_slice(
        format!("{EVIDENCE_MAC} {} {}\"\n}}", key.id(), hex::encode(tag)).as_bytes(),
    );
    Ok(out)
}

/// Parses a sidecar read from a sink and says how far it can be trusted under `keys` (the
/// repository's evidence keys; empty: [`SidecarTrust::Unchecked`]).
///
/// # Errors
/// [`Error::Malformed`] when the bytes are not a sidecar (`artifact` names the object in the
/// message).
pub fn open_sidecar(
    bytes: &[u8],
    keys: &[EvidenceKey],
    object: &str,
) -> Result<(Sidecar, SidecarTrust)> {
    let sidecar: Sidecar = serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
        artifact: object.to_owned(),
        detail: format!("the sidecar does not parse: {e}"),
    })?;
    let Some(mac) = sidecar.mac.as_deref() else {
        return Ok((sidecar, SidecarTrust::Unsealed));
    };
    if keys.is_empty() {
        return Ok((sidecar, SidecarTrust::Unchecked));
    }
    let trust = match (split_mac(mac), body_of(bytes)) {
        (Some((fp, tag)), Some(body)) => {
            let ok = keys
                .iter()
                .filter(|k| k.id() == fp)
                .any(|k| k.verify(SIDECAR_DOMAIN, &body, &tag));
            if ok {
                SidecarTrust::Authentic
            } else {
                SidecarTrust::Forged
            }
        }
        _ => SidecarTrust::Forged,
    };
    Ok((sidecar, trust))
}

/// `"hmac-sha256 <fp> <hex>"` → (fingerprint, tag).
pub(crate) fn split_mac(mac: &str) -> Option<(KeyFingerprint, Vec<u8>)> {
    let mut parts = mac.split(' ');
    if parts.next()? != EVIDENCE_MAC {
        return None;
    }
    let fp: KeyFingerprint = parts.next()?.parse().ok()?;
    let tag = hex::decode(parts.next()?).ok()?;
    if parts.next().is_some() || tag.len() != 32 {
        return None;
    }
    Some((fp, tag))
}

/// The bytes a sealed sidecar's MAC covers: everything before the last `MAC_MEMBER`, then
/// `\n}`. `None` when the stored bytes do not end with the MAC member as [`seal_sidecar`]
/// writes it.
fn body_of(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_suffix("\"\n}")?;
    let cut = text.rfind(MAC_MEMBER)?;
    if text[cut + MAC_MEMBER.len()..].contains(['"', '\n']) {
        return None;
    }
    let mut body = text.as_bytes()[..cut].to_vec();
    body.extend_from_slice(b"\n}");
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{ArtifactName, SIDECAR_FORMAT, SidecarVerification};

    fn sidecar() -> Sidecar {
        let name = ArtifactName::parse("wst-backup-20261121-010000").unwrap();
        Sidecar {
            audit_head: None,
            format: SIDECAR_FORMAT.to_owned(),
            object: name.artifact_object(),
            name,
            created: "2026-11-21T01:00:00Z".parse().unwrap(),
            completed: "2026-11-21T01:00:09Z".parse().unwrap(),
            cipher_suite: "wst-aead-v1/aes-256-gcm-stream".into(),
            key_fingerprints: vec![KeyFingerprint([7; 16])],
            ciphertext_size: 1234,
            ciphertext_sha256: "ab".repeat(32),
            tool_version: "0.1.0".into(),
            sources: Vec::new(),
            verification: Some(SidecarVerification {
                at: "2026-11-21T01:00:09Z".parse().unwrap(),
                passed: true,
                checks_passed: 9,
                checks_failed: 0,
            }),
            mac: None,
        }
    }

    fn key(b: u8) -> EvidenceKey {
        EvidenceKey::new(KeyFingerprint([b; 16]), [b; 32])
    }

    #[test]
    fn sealed_sidecar_authenticates_and_any_change_is_caught() {
        let k = key(1);
        let bytes = seal_sidecar(&sidecar(), Some(&k)).unwrap();
        let (s, trust) = open_sidecar(&bytes, &[key(9), k.clone()], "x").unwrap();
        assert_eq!(trust, SidecarTrust::Authentic);
        assert_eq!(s.ciphertext_size, 1234);
        assert!(s.mac.is_some());

        // Flip the verification claim: parses, does not authenticate.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let forged = text.replace("\"passed\": true", "\"passed\": false");
        assert_ne!(forged, text);
        assert_eq!(
            open_sidecar(forged.as_bytes(), std::slice::from_ref(&k), "x")
                .unwrap()
                .1,
            SidecarTrust::Forged
        );
        // Another key, or the right key id with other key bytes.
        assert_eq!(
            open_sidecar(&bytes, &[key(2)], "x").unwrap().1,
            SidecarTrust::Forged
        );
        let impostor = EvidenceKey::new(k.id(), [3; 32]);
        assert_eq!(
            open_sidecar(&bytes, &[impostor], "x").unwrap().1,
            SidecarTrust::Forged
        );
        // Without keys: readable, unchecked.
        assert_eq!(
            open_sidecar(&bytes, &[], "x").unwrap().1,
            SidecarTrust::Unchecked
        );
        // The unsealed encoding parses and says so.
        let plain = seal_sidecar(&sidecar(), None).unwrap();
        assert_eq!(
            open_sidecar(&plain, &[k], "x").unwrap().1,
            SidecarTrust::Unsealed
        );
        // Garbage is malformed, not a panic.
        assert!(matches!(
            open_sidecar(b"\x00{", &[], "x"),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn a_mac_member_moved_or_duplicated_does_not_authenticate() {
        let k = key(1);
        let bytes = seal_sidecar(&sidecar(), Some(&k)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        // Appending a second member after the MAC changes where the body ends.
        let moved = text.replacen("\n}", ",\n  \"x\": 1\n}", 1);
        let got = open_sidecar(moved.as_bytes(), std::slice::from_ref(&k), "x");
        assert!(got.is_err() || got.unwrap().1 == SidecarTrust::Forged);
        assert_eq!(
            format!("{k:?}"),
            format!("EvidenceKey({}, [REDACTED])", k.id())
        );
    }
}
