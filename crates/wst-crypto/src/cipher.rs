//! `AeadCipher`, the `wst_core::Cipher` of wst, its builder, and header rewrapping.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use wst_core::{Cipher, KeyFingerprint, Opener, Sealer};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::{
    self, CoreHeader, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_PASSPHRASE_SLOTS, MAX_SLOTS,
    MIN_CHUNK_SIZE, Secret, Slot,
};
use crate::key::{KdfParams, Key, Passphrase};
use crate::keyring::Keyring;
use crate::stream::{AeadOpener, AeadSealer, HeaderReader};

/// A recipient new artifacts are sealed for (one key slot each).
#[derive(Clone)]
enum Recipient {
    Key(Key),
    Passphrase {
        /// Argon2id output for `argon_salt` and `params`, derived once at build time.
        kek: Secret,
        params: KdfParams,
        argon_salt: [u8; 16],
        fingerprint: KeyFingerprint,
    },
}

impl Recipient {
    fn fingerprint(&self) -> KeyFingerprint {
        match self {
            Self::Key(k) => k.fingerprint(),
            Self::Passphrase { fingerprint, .. } => *fingerprint,
        }
    }

    fn wrap(&self, data_key: &[u8; 32]) -> Result<Slot> {
        match self {
            Self::Key(k) => Slot::wrap_raw(k.secret(), k.fingerprint(), data_key),
            Self::Passphrase {
                kek,
                params,
                argon_salt,
                ..
            } => Slot::wrap_passphrase(kek, *params, *argon_salt, data_key),
        }
    }
}

enum RecipientSpec {
    Key(Key),
    Passphrase(Passphrase, KdfParams, Option<[u8; 16]>),
}

/// Builds an [`AeadCipher`]: the recipients each new artifact is sealed for (one key slot
/// each, in order; the first is the operational key) and the keyring artifacts are opened with.
///
/// Every recipient key and passphrase is also added to the opening keyring.
pub struct AeadCipherBuilder {
    recipients: Vec<RecipientSpec>,
    keyring: Keyring,
    chunk_size: u32,
}

impl fmt::Debug for AeadCipherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadCipherBuilder")
            .field("recipients", &self.recipients.len())
            .field("keyring", &self.keyring)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

impl AeadCipherBuilder {
    /// Seals new artifacts for this raw key too (a raw-key slot).
    #[must_use]
    pub fn recipient_key(mut self, key: Key) -> Self {
        self.recipients.push(RecipientSpec::Key(key));
        self
    }

    /// Seals new artifacts for this passphrase too (an Argon2id slot with `params`). Argon2id
    /// runs once, in [`build`](Self::build), with a random salt kept for the cipher's life; each
    /// artifact's slot still gets its own wrap key.
    ///
    /// The slot's fingerprint depends on that salt, so it differs between cipher instances
    /// (process runs) for the same passphrase; use
    /// [`recipient_passphrase_with_salt`](Self::recipient_passphrase_with_salt) for a stable one.
    #[must_use]
    pub fn recipient_passphrase(mut self, passphrase: Passphrase, params: KdfParams) -> Self {
        self.recipients
            .push(RecipientSpec::Passphrase(passphrase, params, None));
        self
    }

    /// As [`recipient_passphrase`](Self::recipient_passphrase), with a fixed Argon2id salt so the
    /// passphrase's fingerprint is the same across runs (sidecars and audit logs then name the
    /// recovery passphrase consistently). The salt is not secret: keep it in configuration, and
    /// use a random one per installation (not a constant shared with others).
    #[must_use]
    pub fn recipient_passphrase_with_salt(
        mut self,
        passphrase: Passphrase,
        params: KdfParams,
        argon_salt: [u8; 16],
    ) -> Self {
        self.recipients.push(RecipientSpec::Passphrase(
            passphrase,
            params,
            Some(argon_salt),
        ));
        self
    }

    /// Lets the cipher open artifacts sealed for this key (e.g. the key before a rotation).
    #[must_use]
    pub fn opening_key(mut self, key: Key) -> Self {
        self.keyring.add_key(key);
        self
    }

    /// Lets the cipher open artifacts sealed for this passphrase.
    #[must_use]
    pub fn opening_passphrase(mut self, passphrase: Passphrase) -> Self {
        self.keyring = self.keyring.with_passphrase(passphrase);
        self
    }

    /// Replaces the opening keyring (recipients are still added to it by `build`).
    #[must_use]
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = keyring;
        self
    }

    /// Plaintext bytes per non-final chunk, recorded in the header. Default 64 KiB; range
    /// [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`]. Memory per sealer/opener is about twice this.
    #[must_use]
    pub fn chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Builds the cipher. Runs Argon2id once per passphrase recipient (about 0.1–0.5 s each at
    /// the default parameters).
    ///
    /// # Errors
    /// [`Error::InvalidChunkSize`]; [`Error::RecipientCount`] with more than [`MAX_SLOTS`]
    /// recipients, or with none and an empty keyring; [`Error::PassphraseCount`] with more than
    /// [`MAX_PASSPHRASE_SLOTS`] passphrases; [`Error::Random`]; [`Error::Kdf`].
    pub fn build(self) -> Result<AeadCipher> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(Error::InvalidChunkSize {
                value: self.chunk_size.into(),
                min: MIN_CHUNK_SIZE.into(),
                max: MAX_CHUNK_SIZE.into(),
            });
        }
        let n = self.recipients.len();
        if n > MAX_SLOTS || (n == 0 && self.keyring.is_empty()) {
            return Err(Error::RecipientCount {
                count: n,
                max: MAX_SLOTS,
            });
        }
        let passphrases = self
            .recipients
            .iter()
            .filter(|r| matches!(r, RecipientSpec::Passphrase(..)))
            .count();
        if passphrases > MAX_PASSPHRASE_SLOTS {
            return Err(Error::PassphraseCount {
                count: passphrases,
                max: MAX_PASSPHRASE_SLOTS,
            });
        }
        let mut keyring = self.keyring;
        let mut recipients = Vec::with_capacity(n);
        for spec in self.recipients {
            match spec {
                RecipientSpec::Key(k) => {
                    keyring.add_key(k.clone());
                    recipients.push(Recipient::Key(k));
                }
                RecipientSpec::Passphrase(p, params, salt) => {
                    let argon_salt = if let Some(s) = salt {
                        s
                    } else {
                        let mut s = [0u8; 16];
                        format::random_bytes(&mut s)?;
                        s
                    };
                    let kek = format::argon2id(p.bytes(), &argon_salt, params)?;
                    let fingerprint = format::passphrase_fingerprint(&kek);
                    keyring.add_passphrase_with_kek(p, argon_salt, params, kek.clone());
                    recipients.push(Recipient::Passphrase {
                        kek,
                        params,
                        argon_salt,
                        fingerprint,
                    });
                }
            }
        }
        Ok(AeadCipher {
            recipients: Arc::new(recipients),
            keyring: Arc::new(keyring),
            chunk_size: self.chunk_size,
        })
    }
}

/// The wst [`Cipher`]: AES-256-GCM in the STREAM construction, per-artifact random data key
/// wrapped in one key slot per recipient, header MAC, format `wst-aead-v1` (docs/FORMAT.md).
///
/// Cheap to clone (shared state). `Debug` shows fingerprints only.
#[derive(Clone)]
pub struct AeadCipher {
    recipients: Arc<Vec<Recipient>>,
    keyring: Arc<Keyring>,
    chunk_size: u32,
}

impl fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadCipher")
            .field("suite", &format::SUITE_NAME)
            .field("recipients", &self.recipients())
            .field("keyring", &self.keyring)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

impl AeadCipher {
    /// A builder with no recipient, an empty keyring and 64 KiB chunks.
    pub fn builder() -> AeadCipherBuilder {
        AeadCipherBuilder {
            recipients: Vec::new(),
            keyring: Keyring::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// The common case: seal for, and open with, the key in one key file.
    ///
    /// # Errors
    /// As [`Key::load`].
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().recipient_key(Key::load(path)?).build()
    }

    /// The chunk size new artifacts are sealed with, in plaintext bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The keyring artifacts are opened with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn seal_inner(&self) -> Result<AeadSealer> {
        if self.recipients.is_empty() {
            return Err(Error::RecipientCount {
                count: 0,
                max: MAX_SLOTS,
            });
        }
        let mut data_key: Secret = Zeroizing::new([0u8; 32]);
        format::random_bytes(data_key.as_mut())?;
        let core = CoreHeader::random(self.chunk_size)?;
        let slots = self
            .recipients
            .iter()
            .map(|r| r.wrap(&data_key))
            .collect::<Result<Vec<_>>>()?;
        let header = format::encode_header(&core, &slots, &data_key);
        Ok(AeadSealer::new(header, &core, &data_key))
    }

    /// Starts a sans-I/O header rewrap: the output is the artifact with a new header (same data
    /// key and payload key, slots for this cipher's recipients) followed by the untouched payload
    /// bytes. The old header must open with this cipher's keyring and pass its MAC; the payload
    /// is copied, not decrypted (verify the result with an opener if wanted).
    ///
    /// Use it to add or remove a slot or rotate keys: build the cipher with the new recipients
    /// and a keyring holding a key that opens the old artifact.
    ///
    /// # Warning
    /// A rewrap changes who can open the artifact from now on. Anyone who held a removed key
    /// *and* a copy of the old header can still recover the data key: after a key compromise,
    /// re-encrypt instead.
    ///
    /// # Errors
    /// [`Error::RecipientCount`] if the cipher has no recipient.
    pub fn rewrapper(&self) -> Result<Rewrapper> {
        if self.recipients.is_empty() {
            return Err(Error::RecipientCount {
                count: 0,
                max: MAX_SLOTS,
            });
        }
        Ok(Rewrapper {
            cipher: self.clone(),
            state: RewrapState::Header(HeaderReader::new()),
            summary: RewrapSummary::default(),
        })
    }

    /// Rewraps the artifact read from `input` into `output` (see [`rewrapper`](Self::rewrapper)),
    /// streaming with a 64 KiB buffer.
    ///
    /// # Errors
    /// Any header error of the opener ([`Error::WrongKey`], [`Error::HeaderAuthentication`],
    /// …), [`Error::Truncated`] for an input that ends inside the header, [`Error::Io`].
    pub fn rewrap<R: Read, W: Write>(&self, mut input: R, mut output: W) -> Result<RewrapSummary> {
        let mut rw = self.rewrapper()?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::with_capacity(64 * 1024);
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        context: "reading the artifact to rewrap",
                        source: e,
                    });
                }
            };
            rw.update(&buf[..n], &mut out)?;
            output.write_all(&out).map_err(|e| Error::Io {
                context: "writing the rewrapped artifact",
                source: e,
            })?;
            out.clear();
        }
        let summary = rw.finish()?;
        output.flush().map_err(|e| Error::Io {
            context: "flushing the rewrapped artifact",
            source: e,
        })?;
        Ok(summary)
    }
}

impl Cipher for AeadCipher {
    fn suite(&self) -> String {
        format::SUITE_NAME.to_owned()
    }

    fn recipients(&self) -> Vec<KeyFingerprint> {
        self.recipients.iter().map(Recipient::fingerprint).collect()
    }

    fn seal(&self) -> wst_core::Result<Box<dyn Sealer>> {
        Ok(Box::new(self.seal_inner()?))
    }

    fn open(&self) -> wst_core::Result<Box<dyn Opener>> {
        if self.keyring.is_empty() {
            return Err(Error::EmptyKeyring.into());
        }
        Ok(Box::new(AeadOpener::new(Arc::clone(&self.keyring))))
    }

    /// One evidence key per recipient (in slot order: the operational key's first), then one per
    /// further raw key of the opening keyring. Passphrases that are only in the keyring have no
    /// Argon2id output until an artifact is opened, so they contribute none.
    fn evidence_keys(&self) -> Vec<wst_core::EvidenceKey> {
        let mut out: Vec<wst_core::EvidenceKey> = Vec::new();
        for r in self.recipients.iter() {
            let secret: &[u8; 32] = match r {
                Recipient::Key(k) => k.secret(),
                Recipient::Passphrase { kek, .. } => kek,
            };
            out.push(wst_core::EvidenceKey::new(
                r.fingerprint(),
                format::evidence_key(secret),
            ));
        }
        for k in self.keyring.keys() {
            if !out.iter().any(|e| e.id() == k.fingerprint()) {
                out.push(wst_core::EvidenceKey::new(
                    k.fingerprint(),
                    format::evidence_key(k.secret()),
                ));
            }
        }
        out
    }
}

/// What a rewrap did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapSummary {
    /// Fingerprints of the old header's slots, in order.
    pub old_slots: Vec<KeyFingerprint>,
    /// Fingerprints of the new header's slots, in order.
    pub new_slots: Vec<KeyFingerprint>,
    /// The key that opened the old header.
    pub opened_with: Option<KeyFingerprint>,
    /// Old header length, in bytes.
    pub old_header_len: u64,
    /// New header length, in bytes.
    pub new_header_len: u64,
    /// Payload bytes copied unchanged.
    pub payload_bytes: u64,
}

enum RewrapState {
    Header(HeaderReader),
    Payload,
    Failed,
}

/// Sans-I/O header rewrap, from [`AeadCipher::rewrapper`]. Feed the old artifact's bytes in
/// any pieces; the new artifact's bytes are appended to `out`. Memory: the header only.
pub struct Rewrapper {
    cipher: AeadCipher,
    state: RewrapState,
    summary: RewrapSummary,
}

impl fmt::Debug for Rewrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rewrapper")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Rewrapper {
    /// Feeds bytes of the old artifact.
    ///
    /// # Errors
    /// The opener's header errors; [`Error::AlreadyFailed`] after an error.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let r = self.update_inner(input, out);
        if r.is_err() {
            self.state = RewrapState::Failed;
        }
        r
    }

    fn update_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &mut self.state {
            RewrapState::Failed => Err(Error::AlreadyFailed),
            RewrapState::Payload => {
                out.extend_from_slice(input);
                self.summary.payload_bytes += input.len() as u64;
                Ok(())
            }
            RewrapState::Header(reader) => {
                let Some((raw, used)) = reader.feed(input)? else {
                    return Ok(());
                };
                let old_len = raw.bytes.len() as u64;
                let opened = self
                    .cipher
                    .keyring
                    .open_header(raw.core, &raw.bytes, raw.slots)?;
                let slots = self
                    .cipher
                    .recipients
                    .iter()
                    .map(|r| r.wrap(&opened.data_key))
                    .collect::<Result<Vec<_>>>()?;
                let header = format::encode_header(&opened.core, &slots, &opened.data_key);
                self.summary = RewrapSummary {
                    old_slots: opened.slots.iter().map(|s| s.fingerprint).collect(),
                    new_slots: slots.iter().map(|s| s.fingerprint).collect(),
                    opened_with: Some(opened.opened_with),
                    old_header_len: old_len,
                    new_header_len: header.len() as u64,
                    payload_bytes: 0,
                };
                out.extend_from_slice(&header);
                self.state = RewrapState::Payload;
                self.update_inner(&input[used..], out)
            }
        }
    }

    /// Ends the input.
    ///
    /// # Errors
    /// [`Error::Truncated`] (or the header error) if the input ended inside the header;
    /// [`Error::AlreadyFailed`] after an error.
    pub fn finish(self) -> Result<RewrapSummary> {
        match self.state {
            RewrapState::Failed => Err(Error::AlreadyFailed),
            RewrapState::Header(reader) => Err(reader.truncated()),
            RewrapState::Payload => Ok(self.summary),
        }
    }
}
