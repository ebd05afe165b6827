//! Byte layout of the `wst-aead-v1` format and its key derivations. `docs/FORMAT.md` is the
//! normative description; this module implements it and the two must agree byte for byte
//! (checked by the test vectors in `docs/test-vectors/`).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use wst_core::KeyFingerprint;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::KdfParams;

/// The 8 magic bytes every artifact starts with.
pub const MAGIC: [u8; 8] = *b"wst-aead";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Suite 1: AES-256-GCM in STREAM-BE32, HKDF-SHA-256, HMAC-SHA-256, Argon2id v0x13.
pub const SUITE_AES256GCM_STREAM: u8 = 1;
/// The suite name recorded in sidecars.
pub const SUITE_NAME: &str = "wst-aead-v1/aes-256-gcm-stream";

/// Length of the core header (magic … nonce prefix), which is bound into the payload key.
pub(crate) const CORE_LEN: usize = 72;
/// Core header + slot count (u16) + header length (u32).
pub(crate) const FIXED_LEN: usize = 78;
/// Length of the header MAC (HMAC-SHA-256).
pub(crate) const MAC_LEN: usize = 32;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a raw-key slot.
pub(crate) const RAW_SLOT_LEN: usize = 97;
/// Length of a passphrase slot.
pub(crate) const PASS_SLOT_LEN: usize = 125;
/// Slot type byte of a raw-key slot.
pub(crate) const SLOT_RAW: u8 = 1;
/// Slot type byte of a passphrase (Argon2id) slot.
pub(crate) const SLOT_PASSPHRASE: u8 = 2;

/// Smallest chunk size (plaintext bytes per non-final chunk) the format accepts.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk size the format accepts (bounds the opener's buffer to 16 MiB + 16 bytes).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// The default chunk size: 64 KiB, as age.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest number of key slots in one header.
pub const MAX_SLOTS: usize = 16;
/// Largest number of passphrase (Argon2id) slots in one header: bounds the Argon2id work one
/// header can demand per passphrase tried.
pub const MAX_PASSPHRASE_SLOTS: usize = 4;
/// Largest header the opener buffers before authentication, in bytes (16 slots, 4 of them
/// passphrase slots).
pub const MAX_HEADER_LEN: usize = max_header_len(MAX_SLOTS);

/// The largest header length with `slot_count` slots: as many passphrase slots as allowed.
const fn max_header_len(slot_count: usize) -> usize {
    let pass = if slot_count < MAX_PASSPHRASE_SLOTS {
        slot_count
    } else {
        MAX_PASSPHRASE_SLOTS
    };
    FIXED_LEN + pass * PASS_SLOT_LEN + (slot_count - pass) * RAW_SLOT_LEN + MAC_LEN
}

const INFO_FP_RAW: &[u8] = b"wst-aead-v1 fingerprint raw-key";
const INFO_FP_PASS: &[u8] = b"wst-aead-v1 fingerprint passphrase";
const INFO_SLOT_RAW: &[u8] = b"wst-aead-v1 slot raw-key";
const INFO_SLOT_PASS: &[u8] = b"wst-aead-v1 slot passphrase";
const INFO_PAYLOAD: &[u8] = b"wst-aead-v1 payload";
const INFO_MAC: &[u8] = b"wst-aead-v1 header-mac";

/// A 256-bit secret that zeroizes on drop.
pub(crate) type Secret = Zeroizing<[u8; 32]>;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::Random {
            detail: e.to_string(),
        })
}

fn hkdf(salt: Option<&[u8]>, ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    // Output lengths here are 16 or 32 bytes, far below HKDF's 255 * 32 limit.
    hk.expand_multi_info(info, out)
        .expect("HKDF output length is at most 32 bytes");
}

/// Fingerprint of a raw key: HKDF-SHA-256(salt = none, ikm = key, info = "wst-aead-v1
/// fingerprint raw-key"), 16 bytes.
pub(crate) fn raw_fingerprint(key: &[u8; 32]) -> KeyFingerprint {
    let mut fp = [0u8; 16];
    hkdf(None, key, &[INFO_FP_RAW], &mut fp);
    KeyFingerprint(fp)
}

/// The evidence key of a raw key or a passphrase's Argon2id output (MACs sidecars and
/// verification records; `docs/FORMAT.md` "Sidecar MAC"): HKDF-SHA-256(salt = none, ikm = key,
/// info = "wst evidence key v1"), 32 bytes. One-way: it reveals nothing about the key.
pub(crate) fn evidence_key(key: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf(None, key, &[b"wst evidence key v1"], &mut out);
    out
}

/// Fingerprint of a passphrase under given Argon2id salt and parameters.
pub(crate) fn passphrase_fingerprint(kek: &[u8; 32]) -> KeyFingerprint {
    let mut fp = [0u8; 16];
    hkdf(None, kek, &[INFO_FP_PASS], &mut fp);
    KeyFingerprint(fp)
}

/// Argon2id v0x13 with 32 bytes of output.
pub(crate) fn argon2id(passphrase: &[u8], salt: &[u8; 16], params: KdfParams) -> Result<Secret> {
    let p = argon2::Params::new(
        params.memory_kib(),
        params.iterations(),
        params.parallelism(),
        Some(32),
    )
    .map_err(|e| Error::Kdf {
        detail: e.to_string(),
    })?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| Error::Kdf {
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// The fixed part of the header that the payload key is bound to. It never changes for the
/// life of an artifact (a rewrap keeps it).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CoreHeader {
    pub(crate) chunk_size: u32,
    pub(crate) artifact_id: [u8; 16],
    pub(crate) payload_salt: [u8; 32],
    pub(crate) nonce_prefix: [u8; 7],
}

impl CoreHeader {
    pub(crate) fn random(chunk_size: u32) -> Result<Self> {
        let mut h = Self {
            chunk_size,
            artifact_id: [0; 16],
            payload_salt: [0; 32],
            nonce_prefix: [0; 7],
        };
        random_bytes(&mut h.artifact_id)?;
        random_bytes(&mut h.payload_salt)?;
        random_bytes(&mut h.nonce_prefix)?;
        Ok(h)
    }

    pub(crate) fn encode(&self) -> [u8; CORE_LEN] {
        let mut b = [0u8; CORE_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8] = FORMAT_VERSION;
        b[9] = SUITE_AES256GCM_STREAM;
        // b[10..12] reserved, zero
        b[12..16].copy_from_slice(&self.chunk_size.to_be_bytes());
        b[16..32].copy_from_slice(&self.artifact_id);
        b[32..64].copy_from_slice(&self.payload_salt);
        b[64..71].copy_from_slice(&self.nonce_prefix);
        // b[71] reserved, zero
        b
    }

    /// The AES-256-GCM payload key: HKDF-SHA-256(salt = payload salt, ikm = data key,
    /// info = "wst-aead-v1 payload" ‖ core header).
    pub(crate) fn payload_key(&self, data_key: &[u8; 32]) -> Secret {
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf(
            Some(&self.payload_salt),
            data_key,
            &[INFO_PAYLOAD, &self.encode()],
            k.as_mut(),
        );
        k
    }

    /// The header MAC key: HKDF-SHA-256(salt = payload salt, ikm = data key,
    /// info = "wst-aead-v1 header-mac").
    pub(crate) fn mac_key(&self, data_key: &[u8; 32]) -> Secret {
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf(Some(&self.payload_salt), data_key, &[INFO_MAC], k.as_mut());
        k
    }
}

/// What kind of key a slot is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SlotKind {
    RawKey,
    Passphrase {
        params: KdfParams,
        argon_salt: [u8; 16],
    },
}

/// One key slot as stored in the header.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) kind: SlotKind,
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) salt: [u8; 32],
    pub(crate) wrapped: [u8; 48],
    /// Offset of the slot's first byte in the header (set by the parser).
    pub(crate) offset: usize,
}

impl Slot {
    pub(crate) fn len(&self) -> usize {
        match self.kind {
            SlotKind::RawKey => RAW_SLOT_LEN,
            SlotKind::Passphrase { .. } => PASS_SLOT_LEN,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self.kind {
            SlotKind::RawKey => {
                out.push(SLOT_RAW);
                out.extend_from_slice(&self.fingerprint.0);
                out.extend_from_slice(&self.salt);
            }
            SlotKind::Passphrase { params, argon_salt } => {
                out.push(SLOT_PASSPHRASE);
                out.extend_from_slice(&self.fingerprint.0);
                out.extend_from_slice(&self.salt);
                out.extend_from_slice(&params.memory_kib().to_be_bytes());
                out.extend_from_slice(&params.iterations().to_be_bytes());
                out.extend_from_slice(&params.parallelism().to_be_bytes());
                out.extend_from_slice(&argon_salt);
            }
        }
        out.extend_from_slice(&self.wrapped);
    }

    /// Wraps `data_key` for a raw key.
    pub(crate) fn wrap_raw(
        key: &[u8; 32],
        fp: KeyFingerprint,
        data_key: &[u8; 32],
    ) -> Result<Self> {
        let mut salt = [0u8; 32];
        random_bytes(&mut salt)?;
        let wrapped = wrap(&wrap_key(key, &salt, INFO_SLOT_RAW), data_key);
        Ok(Self {
            kind: SlotKind::RawKey,
            fingerprint: fp,
            salt,
            wrapped,
            offset: 0,
        })
    }

    /// Wraps `data_key` for a passphrase whose Argon2id output (`kek`) was derived with
    /// `params` and `argon_salt`.
    pub(crate) fn wrap_passphrase(
        kek: &[u8; 32],
        params: KdfParams,
        argon_salt: [u8; 16],
        data_key: &[u8; 32],
    ) -> Result<Self> {
        let mut salt = [0u8; 32];
        random_bytes(&mut salt)?;
        let wrapped = wrap(&wrap_key(kek, &salt, INFO_SLOT_PASS), data_key);
        Ok(Self {
            kind: SlotKind::Passphrase { params, argon_salt },
            fingerprint: passphrase_fingerprint(kek),
            salt,
            wrapped,
            offset: 0,
        })
    }

    /// Unwraps with a raw key; `None` if the key does not open this slot.
    pub(crate) fn unwrap_raw(&self, key: &[u8; 32]) -> Option<Secret> {
        unwrap(&wrap_key(key, &self.salt, INFO_SLOT_RAW), &self.wrapped)
    }

    /// Unwraps with a passphrase's Argon2id output; `None` if it does not open this slot.
    pub(crate) fn unwrap_passphrase(&self, kek: &[u8; 32]) -> Option<Secret> {
        unwrap(&wrap_key(kek, &self.salt, INFO_SLOT_PASS), &self.wrapped)
    }
}

fn wrap_key(ikm: &[u8; 32], salt: &[u8; 32], info: &[u8]) -> Secret {
    let mut k = Zeroizing::new([0u8; 32]);
    hkdf(Some(salt), ikm, &[info], k.as_mut());
    k
}

/// AES-256-GCM with an all-zero nonce: safe because every wrap key is used exactly once (it is
/// derived from a fresh random 32-byte slot salt).
fn wrap(wrap_key: &[u8; 32], data_key: &[u8; 32]) -> [u8; 48] {
    let aead = Aes256Gcm::new(wrap_key.into());
    let ct = aead
        .encrypt(Nonce::from_slice(&[0u8; 12]), data_key.as_slice())
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    let mut out = [0u8; 48];
    out.copy_from_slice(&ct);
    out
}

fn unwrap(wrap_key: &[u8; 32], wrapped: &[u8; 48]) -> Option<Secret> {
    let aead = Aes256Gcm::new(wrap_key.into());
    let pt = Zeroizing::new(
        aead.decrypt(Nonce::from_slice(&[0u8; 12]), wrapped.as_slice())
            .ok()?,
    );
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&pt);
    Some(k)
}

/// Serializes a complete header: core, slot count, header length, slots, MAC.
pub(crate) fn encode_header(core: &CoreHeader, slots: &[Slot], data_key: &[u8; 32]) -> Vec<u8> {
    let len = FIXED_LEN + slots.iter().map(Slot::len).sum::<usize>() + MAC_LEN;
    let mut h = Vec::with_capacity(len);
    h.extend_from_slice(&core.encode());
    h.extend_from_slice(&(slots.len() as u16).to_be_bytes());
    h.extend_from_slice(&(len as u32).to_be_bytes());
    for s in slots {
        s.encode_into(&mut h);
    }
    let tag = header_mac(&core.mac_key(data_key), &h);
    h.extend_from_slice(&tag);
    debug_assert_eq!(h.len(), len);
    h
}

fn header_mac(mac_key: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(mac_key).expect("HMAC takes any key length");
    m.update(bytes);
    m.finalize().into_bytes().into()
}

/// Constant-time check of the header MAC (the last 32 bytes of `header`).
pub(crate) fn verify_header_mac(core: &CoreHeader, header: &[u8], data_key: &[u8; 32]) -> bool {
    let (body, tag) = header.split_at(header.len() - MAC_LEN);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(core.mac_key(data_key).as_ref())
        .expect("any key length");
    m.update(body);
    m.verify_slice(tag).is_ok()
}

/// Checks whatever prefix of the fixed header is available: magic, version, suite. Lets a
/// non-artifact fail on its first bytes rather than as "truncated".
pub(crate) fn check_prefix(buf: &[u8]) -> Result<()> {
    let n = buf.len().min(8);
    if buf[..n] != MAGIC[..n] {
        return Err(Error::NotAnArtifact);
    }
    if let Some(&v) = buf.get(8)
        && v != FORMAT_VERSION
    {
        return Err(Error::UnsupportedVersion { version: v });
    }
    if let Some(&s) = buf.get(9)
        && s != SUITE_AES256GCM_STREAM
    {
        return Err(Error::UnsupportedSuite { suite: s });
    }
    Ok(())
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses the fixed 78 bytes; returns the core header, the slot count and the header length.
/// Every field is checked against its cap before anything is allocated.
pub(crate) fn parse_fixed(b: &[u8]) -> Result<(CoreHeader, usize, usize)> {
    debug_assert!(b.len() >= FIXED_LEN);
    check_prefix(b)?;
    if b[10] != 0 || b[11] != 0 {
        return Err(Error::MalformedHeader {
            offset: 10,
            detail: "reserved bytes 10..12 are not zero".to_owned(),
        });
    }
    let chunk_size = be32(b, 12);
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(Error::HeaderLimit {
            what: "chunk_size",
            offset: 12,
            value: chunk_size.into(),
            min: MIN_CHUNK_SIZE.into(),
            max: MAX_CHUNK_SIZE.into(),
        });
    }
    if b[71] != 0 {
        return Err(Error::MalformedHeader {
            offset: 71,
            detail: "reserved byte 71 is not zero".to_owned(),
        });
    }
    let slot_count = usize::from(u16::from_be_bytes([b[72], b[73]]));
    if !(1..=MAX_SLOTS).contains(&slot_count) {
        return Err(Error::HeaderLimit {
            what: "slot_count",
            offset: 72,
            value: slot_count as u64,
            min: 1,
            max: MAX_SLOTS as u64,
        });
    }
    let header_len = be32(b, 74) as usize;
    let min = FIXED_LEN + slot_count * RAW_SLOT_LEN + MAC_LEN;
    let max = max_header_len(slot_count);
    if !(min..=max).contains(&header_len) {
        return Err(Error::HeaderLimit {
            what: "header_len",
            offset: 74,
            value: header_len as u64,
            min: min as u64,
            max: max as u64,
        });
    }
    let mut core = CoreHeader {
        chunk_size,
        artifact_id: [0; 16],
        payload_salt: [0; 32],
        nonce_prefix: [0; 7],
    };
    core.artifact_id.copy_from_slice(&b[16..32]);
    core.payload_salt.copy_from_slice(&b[32..64]);
    core.nonce_prefix.copy_from_slice(&b[64..71]);
    Ok((core, slot_count, header_len))
}

/// Parses the slots of a complete header (`header.len()` is the header length). Argon2id
/// parameters are checked against the format's caps here, before any key work.
pub(crate) fn parse_slots(header: &[u8], slot_count: usize) -> Result<Vec<Slot>> {
    let end = header.len() - MAC_LEN;
    let mut at = FIXED_LEN;
    let mut slots = Vec::with_capacity(slot_count);
    let mut passphrase_slots = 0;
    for i in 0..slot_count {
        let ty = header.get(at).copied().filter(|_| at < end);
        let len = match ty {
            Some(SLOT_RAW) => RAW_SLOT_LEN,
            Some(SLOT_PASSPHRASE) => PASS_SLOT_LEN,
            Some(t) => {
                return Err(Error::MalformedHeader {
                    offset: at as u64,
                    detail: format!(
                        "key slot {i} has unknown type {t} (known: 1 raw key, 2 passphrase)"
                    ),
                });
            }
            None => {
                return Err(Error::MalformedHeader {
                    offset: at as u64,
                    detail: format!("header_len leaves no room for key slot {i}"),
                });
            }
        };
        if len == PASS_SLOT_LEN {
            passphrase_slots += 1;
            if passphrase_slots > MAX_PASSPHRASE_SLOTS {
                return Err(Error::HeaderLimit {
                    what: "passphrase_slots",
                    offset: at as u64,
                    value: passphrase_slots as u64,
                    min: 0,
                    max: MAX_PASSPHRASE_SLOTS as u64,
                });
            }
        }
        if at + len > end {
            return Err(Error::MalformedHeader {
                offset: at as u64,
                detail: format!("key slot {i} runs past the header MAC (header_len inconsistent)"),
            });
        }
        let s = &header[at..at + len];
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&s[1..17]);
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&s[17..49]);
        let kind = if s[0] == SLOT_RAW {
            SlotKind::RawKey
        } else {
            let params = KdfParams::from_header(i, at, be32(s, 49), be32(s, 53), be32(s, 57))?;
            let mut argon_salt = [0u8; 16];
            argon_salt.copy_from_slice(&s[61..77]);
            SlotKind::Passphrase { params, argon_salt }
        };
        let mut wrapped = [0u8; 48];
        wrapped.copy_from_slice(&s[len - 48..]);
        slots.push(Slot {
            kind,
            fingerprint: KeyFingerprint(fp),
            salt,
            wrapped,
            offset: at,
        });
        at += len;
    }
    if at != end {
        return Err(Error::MalformedHeader {
            offset: at as u64,
            detail: format!(
                "{} unexplained bytes between the last key slot and the header MAC",
                end - at
            ),
        });
    }
    Ok(slots)
}
