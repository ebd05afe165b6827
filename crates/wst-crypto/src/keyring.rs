//! The keys an opener may use, and the slot-opening algorithm.

use std::fmt;
use std::sync::Mutex;

use wst_core::KeyFingerprint;

use crate::error::{Error, Result};
use crate::format::{self, CoreHeader, Secret, Slot, SlotKind};
use crate::key::{KdfParams, Key, Passphrase};

/// How many Argon2id results a keyring remembers (so that opening many artifacts sealed by the
/// same process costs one derivation, not one per artifact).
const KDF_CACHE_ENTRIES: usize = 32;

struct CacheEntry {
    passphrase: usize,
    argon_salt: [u8; 16],
    params: KdfParams,
    kek: Secret,
}

/// Every key and passphrase that may open an artifact. Key rotation: keep the old keys here so
/// old artifacts still open while new artifacts are sealed for the new key only.
///
/// Raw keys are tried first, only on slots naming their fingerprint (cheap); passphrases are
/// tried on passphrase slots (one Argon2id run per passphrase and slot, cached).
///
/// `Debug` shows fingerprints and counts only.
pub struct Keyring {
    keys: Vec<Key>,
    passphrases: Vec<Passphrase>,
    kdf_limit: KdfParams,
    cache: Mutex<Vec<CacheEntry>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.fingerprints())
            .field(
                "passphrases",
                &format_args!("{} [REDACTED]", self.passphrases.len()),
            )
            .field("kdf_limit", &self.kdf_limit)
            .finish_non_exhaustive()
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Keyring {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            passphrases: self.passphrases.clone(),
            kdf_limit: self.kdf_limit,
            cache: Mutex::new(Vec::new()),
        }
    }
}

/// The result of opening a header: everything needed to authenticate the payload.
pub(crate) struct OpenedHeader {
    pub(crate) core: CoreHeader,
    pub(crate) data_key: Secret,
    pub(crate) opened_with: KeyFingerprint,
    pub(crate) slots: Vec<Slot>,
}

impl Keyring {
    /// An empty keyring, with the format's Argon2id caps as its limit.
    pub fn new() -> Self {
        Self {
            keys: Vec::new(),
            passphrases: Vec::new(),
            kdf_limit: KdfParams::new(
                KdfParams::MAX_MEMORY_KIB,
                KdfParams::MAX_ITERATIONS,
                KdfParams::MAX_PARALLELISM,
            )
            .expect("the caps are valid parameters"),
            cache: Mutex::new(Vec::new()),
        }
    }

    /// Adds a raw key (duplicates by fingerprint are ignored).
    #[must_use]
    pub fn with_key(mut self, key: Key) -> Self {
        self.add_key(key);
        self
    }

    /// Adds a passphrase.
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: Passphrase) -> Self {
        self.passphrases.push(passphrase);
        self
    }

    /// Lowers the Argon2id cost this host accepts when opening passphrase slots (each
    /// parameter is a maximum). A slot above it is refused with [`Error::KdfLimit`] before any
    /// derivation. The default is the format's caps ([`KdfParams::MAX_MEMORY_KIB`] etc.).
    #[must_use]
    pub fn with_kdf_limit(mut self, limit: KdfParams) -> Self {
        self.kdf_limit = limit;
        self
    }

    pub(crate) fn add_key(&mut self, key: Key) {
        if !self
            .keys
            .iter()
            .any(|k| k.fingerprint() == key.fingerprint())
        {
            self.keys.push(key);
        }
    }

    pub(crate) fn add_passphrase_with_kek(
        &mut self,
        passphrase: Passphrase,
        argon_salt: [u8; 16],
        params: KdfParams,
        kek: Secret,
    ) {
        let idx = self.passphrases.len();
        self.passphrases.push(passphrase);
        self.remember(idx, argon_salt, params, kek);
    }

    /// The raw keys, in the order added.
    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Fingerprints of the raw keys held (passphrases have no fingerprint of their own: theirs
    /// depends on each slot's salt and parameters).
    pub fn fingerprints(&self) -> Vec<KeyFingerprint> {
        self.keys.iter().map(Key::fingerprint).collect()
    }

    /// Number of passphrases held.
    pub fn passphrase_count(&self) -> usize {
        self.passphrases.len()
    }

    /// Whether the keyring holds nothing that could open an artifact.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrases.is_empty()
    }

    fn remember(&self, passphrase: usize, argon_salt: [u8; 16], params: KdfParams, kek: Secret) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= KDF_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push(CacheEntry {
            passphrase,
            argon_salt,
            params,
            kek,
        });
    }

    fn derive(
        &self,
        passphrase: usize,
        argon_salt: &[u8; 16],
        params: KdfParams,
    ) -> Result<Secret> {
        {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = cache.iter().find(|e| {
                e.passphrase == passphrase && &e.argon_salt == argon_salt && e.params == params
            }) {
                return Ok(e.kek.clone());
            }
        }
        let kek = format::argon2id(self.passphrases[passphrase].bytes(), argon_salt, params)?;
        self.remember(passphrase, *argon_salt, params, kek.clone());
        Ok(kek)
    }

    /// Opens a complete, parsed header: finds a slot that opens, then checks the header MAC.
    ///
    /// Order (docs/FORMAT.md §Opening): raw keys on the slots naming them; raw keys on the other
    /// raw-key slots (a damaged fingerprint); passphrases on passphrase slots within the KDF
    /// limit. A slot that names a held key but does not open is reported as tampered, not as a
    /// wrong key.
    pub(crate) fn open_header(
        &self,
        core: CoreHeader,
        header: &[u8],
        slots: Vec<Slot>,
    ) -> Result<OpenedHeader> {
        let slot_range = |s: &Slot| (s.offset as u64, (s.offset + s.len()) as u64);
        let mut tampered: Option<usize> = None;
        let mut over_limit: Option<Error> = None;
        // (slot index, data key, fingerprint of the key that opened it)
        let mut opened: Option<(usize, Secret, KeyFingerprint)> = None;

        // 1. Raw keys on the slots that name them.
        'outer: for (i, s) in slots.iter().enumerate() {
            if s.kind != SlotKind::RawKey {
                continue;
            }
            for k in self
                .keys
                .iter()
                .filter(|k| k.fingerprint() == s.fingerprint)
            {
                if let Some(dk) = s.unwrap_raw(k.secret()) {
                    opened = Some((i, dk, k.fingerprint()));
                    break 'outer;
                }
                tampered.get_or_insert(i);
            }
        }
        // 2. Raw keys on raw slots whose fingerprint does not match (a damaged fingerprint).
        if opened.is_none() {
            'outer2: for (i, s) in slots.iter().enumerate() {
                if s.kind != SlotKind::RawKey {
                    continue;
                }
                for k in self
                    .keys
                    .iter()
                    .filter(|k| k.fingerprint() != s.fingerprint)
                {
                    if let Some(dk) = s.unwrap_raw(k.secret()) {
                        opened = Some((i, dk, k.fingerprint()));
                        break 'outer2;
                    }
                }
            }
        }
        // 3. Passphrases on passphrase slots.
        if opened.is_none() && !self.passphrases.is_empty() {
            'outer3: for (i, s) in slots.iter().enumerate() {
                let SlotKind::Passphrase { params, argon_salt } = s.kind else {
                    continue;
                };
                if let Some((what, value, min, max)) = params.exceeded_by(self.kdf_limit) {
                    let field = match what {
                        "memory_kib" => 49,
                        "iterations" => 53,
                        _ => 57,
                    };
                    over_limit.get_or_insert(Error::KdfLimit {
                        slot: i,
                        offset: (s.offset + field) as u64,
                        what,
                        value: value.into(),
                        min: min.into(),
                        max: max.into(),
                    });
                    continue;
                }
                for p in 0..self.passphrases.len() {
                    let kek = self.derive(p, &argon_salt, params)?;
                    let fp = format::passphrase_fingerprint(&kek);
                    if let Some(dk) = s.unwrap_passphrase(&kek) {
                        opened = Some((i, dk, fp));
                        break 'outer3;
                    }
                    if fp == s.fingerprint {
                        tampered.get_or_insert(i);
                    }
                }
            }
        }

        let Some((i, data_key, opened_with)) = opened else {
            if let Some(i) = tampered {
                let (start, end) = slot_range(&slots[i]);
                return Err(Error::SlotAuthentication {
                    slot: i,
                    start,
                    end,
                    fingerprint: slots[i].fingerprint,
                });
            }
            if let Some(e) = over_limit {
                return Err(e);
            }
            return Err(Error::WrongKey {
                expected: slots.iter().map(|s| s.fingerprint).collect(),
                supplied: self.fingerprints(),
                passphrases: self.passphrases.len(),
            });
        };

        let mac_ok = format::verify_header_mac(&core, header, &data_key);
        let s = &slots[i];
        if s.fingerprint != opened_with {
            let start = (s.offset + 1) as u64;
            return Err(Error::HeaderAuthentication {
                start,
                end: start + 16,
                detail: format!(
                    "key slot {i} opened with key {opened_with}, but its fingerprint field reads {}: the field was modified",
                    s.fingerprint
                ),
            });
        }
        if !mac_ok {
            return Err(Error::HeaderAuthentication {
                start: 0,
                end: (header.len() - format::MAC_LEN) as u64,
                detail: format!(
                    "key slot {i} opened with key {opened_with}, but the header MAC does not match: a header byte in this range (or the MAC itself) was modified"
                ),
            });
        }
        Ok(OpenedHeader {
            core,
            data_key,
            opened_with,
            slots,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stream::HeaderReader;

    fn vectors() -> &'static Path {
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/test-vectors"
        ))
    }

    /// The derived values the reference decryptor recorded for each vector (data key, payload
    /// key, header MAC key, nonce prefix, fingerprints) are exactly what this implementation
    /// derives: the two implementations agree step by step, not only on the plaintext.
    #[test]
    fn derived_values_match_the_reference_decryptor() {
        let key_path = vectors().join("raw-key.key");
        let key = Key::parse(&std::fs::read(&key_path).unwrap(), &key_path).unwrap();
        let pass = std::fs::read_to_string(vectors().join("passphrase.txt")).unwrap();
        let pass = Passphrase::new(pass.trim_end_matches('\n')).unwrap();
        for (artifact, json, keyring) in [
            ("raw-key", "raw-key", Keyring::new().with_key(key.clone())),
            ("empty", "empty", Keyring::new().with_key(key.clone())),
            (
                "passphrase",
                "passphrase",
                Keyring::new().with_passphrase(pass.clone()),
            ),
            (
                "two-slots",
                "two-slots.key",
                Keyring::new().with_key(key.clone()),
            ),
            (
                "two-slots",
                "two-slots.passphrase",
                Keyring::new().with_passphrase(pass.clone()),
            ),
        ] {
            let ct = std::fs::read(vectors().join(format!("{artifact}.wst"))).unwrap();
            let e: serde_json::Value = serde_json::from_slice(
                &std::fs::read(vectors().join(format!("{json}.json"))).unwrap(),
            )
            .unwrap();
            let (raw, _) = HeaderReader::new().feed(&ct).unwrap().unwrap();
            let opened = keyring
                .open_header(raw.core, &raw.bytes, raw.slots)
                .unwrap();
            let hexs = |b: &[u8]| serde_json::Value::String(hex::encode(b));
            assert_eq!(e["data_key"], hexs(opened.data_key.as_ref()), "{json}");
            assert_eq!(
                e["payload_key"],
                hexs(opened.core.payload_key(&opened.data_key).as_ref()),
                "{json}"
            );
            assert_eq!(
                e["mac_key"],
                hexs(opened.core.mac_key(&opened.data_key).as_ref()),
                "{json}"
            );
            assert_eq!(e["nonce_prefix"], hexs(&opened.core.nonce_prefix), "{json}");
            assert_eq!(e["chunk_size"], opened.core.chunk_size, "{json}");
            assert_eq!(e["opened_with"], opened.opened_with.to_string(), "{json}");
            let fps: Vec<String> = opened
                .slots
                .iter()
                .map(|s| s.fingerprint.to_string())
                .collect();
            assert_eq!(e["slot_fingerprints"], serde_json::json!(fps), "{json}");
        }
    }
}
