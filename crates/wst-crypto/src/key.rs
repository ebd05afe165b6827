//! Raw keys, key files, passphrases and Argon2id parameters.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use wst_core::KeyFingerprint;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::{self, Secret};

/// The prefix of the single line of a key file.
pub const KEY_FILE_PREFIX: &str = "wst-key-v1:";

/// Key files larger than this are rejected without being read whole.
const MAX_SECRET_FILE: u64 = 4096;

/// A raw 256-bit key, as stored in a key file. Zeroized on drop; `Debug` prints only its
/// fingerprint and `[REDACTED]` (design invariant 7).
///
/// Key file encoding (one ASCII line): `wst-key-v1:` followed by 64 hex digits (the 32 key
/// bytes) and an optional `\n` or `\r\n`. Nothing else is accepted.
#[derive(Clone)]
pub struct Key {
    bytes: Secret,
    fingerprint: KeyFingerprint,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("fingerprint", &self.fingerprint)
            .field("material", &format_args!("[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Generates a new key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`Error::Random`] if the random generator fails.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        format::random_bytes(bytes.as_mut())?;
        Ok(Self::from_secret(bytes))
    }

    /// Wraps 32 key bytes held elsewhere (a secret manager, an HSM export, a test vector).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut b = bytes;
        let key = Self::from_secret(Zeroizing::new(b));
        zeroize::Zeroize::zeroize(&mut b);
        key
    }

    fn from_secret(bytes: Secret) -> Self {
        let fingerprint = format::raw_fingerprint(&bytes);
        Self { bytes, fingerprint }
    }

    /// The key's fingerprint: HKDF-SHA-256 of the key with info `wst-aead-v1 fingerprint
    /// raw-key`, 16 bytes (docs/FORMAT.md §Fingerprints). Not secret.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key file line, `wst-key-v1:<64 hex digits>\n`. Handle with care: it is the key.
    pub fn to_key_file_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(KEY_FILE_PREFIX.len() + 65));
        s.push_str(KEY_FILE_PREFIX);
        s.push_str(&Zeroizing::new(hex::encode(self.bytes.as_ref())));
        s.push('\n');
        s
    }

    /// Parses the content of a key file (see the type's documentation for the encoding).
    ///
    /// # Errors
    /// [`Error::KeyFileFormat`] naming `path` (used only in the message) when the content is not
    /// exactly one key line.
    pub fn parse(content: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::KeyFileFormat {
            path: path.to_path_buf(),
            reason,
        };
        let line = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        let Some(hexpart) = line.strip_prefix(KEY_FILE_PREFIX.as_bytes()) else {
            return Err(bad(format!(
                "it must be one line `{KEY_FILE_PREFIX}` followed by 64 hex digits (the file does not start with `{KEY_FILE_PREFIX}`)"
            )));
        };
        if hexpart.len() != 64 {
            return Err(bad(format!(
                "the key must be 64 hex digits (32 bytes) after `{KEY_FILE_PREFIX}`, found {} characters{}",
                hexpart.len(),
                if hexpart.contains(&b'\n') {
                    " and more than one line"
                } else {
                    ""
                }
            )));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hexpart, bytes.as_mut()).map_err(|_| {
            bad(format!(
                "the 64 characters after `{KEY_FILE_PREFIX}` are not all hex digits"
            ))
        })?;
        Ok(Self::from_secret(bytes))
    }

    /// Writes the key file at `path`: created new (never overwriting), mode 0600 on Unix, and
    /// synced to disk before returning.
    ///
    /// On Windows the file inherits the directory's ACL: put key files in a directory only the
    /// operator account can read.
    ///
    /// # Errors
    /// [`Error::KeyFileExists`] if `path` exists; [`Error::KeyFileIo`] on any I/O failure.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io_err = |operation, source| Error::KeyFileIo {
            path: path.to_path_buf(),
            operation,
            source,
        };
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::KeyFileExists {
                    path: path.to_path_buf(),
                }
            } else {
                io_err("creating", e)
            }
        })?;
        f.write_all(self.to_key_file_text().as_bytes())
            .map_err(|e| io_err("writing", e))?;
        f.sync_all().map_err(|e| io_err("syncing", e))?;
        Ok(())
    }

    /// Loads a key file.
    ///
    /// On Unix the file must not be accessible by group or others (`mode & 0o077 == 0`,
    /// doctrine 026 R6); on Windows the ACL is not checked.
    ///
    /// # Errors
    /// [`Error::KeyFileMissing`], [`Error::KeyFilePermissions`] (naming the path and mode),
    /// [`Error::KeyFileFormat`] (wrong prefix, length or encoding; not a regular file),
    /// [`Error::KeyFileIo`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let content = read_secret_file(path)?;
        Self::parse(&content, path)
    }
}

/// Reads a small secret file after checking its permissions.
fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let io_err = |source| Error::KeyFileIo {
        path: path.to_path_buf(),
        operation: "reading",
        source,
    };
    let not_found = |e: io::Error| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::KeyFileMissing {
                path: path.to_path_buf(),
            }
        } else {
            io_err(e)
        }
    };
    let not_regular = || Error::KeyFileFormat {
        path: path.to_path_buf(),
        reason: "it is not a regular file (a directory, device or pipe)".to_owned(),
    };
    // Checked before opening: opening a FIFO would block.
    if !std::fs::metadata(path).map_err(not_found)?.is_file() {
        return Err(not_regular());
    }
    let f = File::open(path).map_err(not_found)?;
    let meta = f.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    check_permissions(path, &meta)?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(Error::KeyFileFormat {
            path: path.to_path_buf(),
            reason: format!(
                "it is {} bytes long; a key or passphrase file is at most {MAX_SECRET_FILE} bytes",
                meta.len()
            ),
        });
    }
    let mut content = Zeroizing::new(Vec::with_capacity(128));
    f.take(MAX_SECRET_FILE)
        .read_to_end(&mut content)
        .map_err(io_err)?;
    Ok(content)
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Windows: the ACL is not checked (documented on [`Key::load`]).
#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

/// A passphrase, turned into a key-encryption key with Argon2id. Zeroized on drop; `Debug`
/// prints `[REDACTED]`.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([REDACTED])")
    }
}

impl Passphrase {
    /// A passphrase from a string, used exactly as given (no trimming).
    ///
    /// # Errors
    /// [`Error::EmptyPassphrase`] when it is empty.
    pub fn new(passphrase: impl Into<String>) -> Result<Self> {
        let s = Zeroizing::new(passphrase.into());
        if s.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        Ok(Self(Zeroizing::new(s.as_bytes().to_vec())))
    }

    /// Loads a passphrase file: its bytes, less one trailing `\n` or `\r\n`. Same permission
    /// rule as [`Key::load`] (Unix: no group/other access; Windows: ACL not checked).
    ///
    /// # Errors
    /// [`Error::KeyFileMissing`], [`Error::KeyFilePermissions`], [`Error::KeyFileIo`], and
    /// [`Error::KeyFileFormat`] when the passphrase is empty or the file exceeds 4096 bytes.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let content = read_secret_file(path)?;
        let line = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(&content);
        if line.is_empty() {
            return Err(Error::KeyFileFormat {
                path: PathBuf::from(path),
                reason: "the passphrase file is empty".to_owned(),
            });
        }
        Ok(Self(Zeroizing::new(line.to_vec())))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Argon2id cost parameters of a passphrase slot, recorded in the slot and bounded by hard caps
/// that the opener checks before deriving anything (CRYPTO-NOTES: caps on everything parsed
/// before authentication).
///
/// Default: 64 MiB, 3 iterations, 1 lane (above OWASP's minimum of 19 MiB / 2 iterations).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KdfParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Largest memory cost accepted anywhere: 1 GiB (in KiB).
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// Largest iteration count accepted anywhere.
    pub const MAX_ITERATIONS: u32 = 10;
    /// Largest number of lanes accepted anywhere.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checked constructor. `memory_kib` is in KiB and must be at least `8 * parallelism`
    /// (Argon2's rule); small values are accepted (tests use them) but weaken the passphrase.
    ///
    /// # Errors
    /// [`Error::InvalidKdfParams`] when a parameter is outside its range.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self> {
        let check = |what, value: u32, min: u32, max: u32| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(Error::InvalidKdfParams {
                    what,
                    value: value.into(),
                    min: min.into(),
                    max: max.into(),
                })
            }
        };
        check("parallelism", parallelism, 1, Self::MAX_PARALLELISM)?;
        check("iterations", iterations, 1, Self::MAX_ITERATIONS)?;
        check(
            "memory_kib",
            memory_kib,
            8 * parallelism,
            Self::MAX_MEMORY_KIB,
        )?;
        Ok(Self {
            memory_kib,
            iterations,
            parallelism,
        })
    }

    /// Memory cost in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Number of passes.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Number of lanes.
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    /// The first parameter above `limit`'s, as (name, value, smallest valid, limit); `None` when
    /// every parameter is within it.
    pub(crate) fn exceeded_by(self, limit: KdfParams) -> Option<(&'static str, u32, u32, u32)> {
        if self.memory_kib > limit.memory_kib {
            Some((
                "memory_kib",
                self.memory_kib,
                8 * self.parallelism,
                limit.memory_kib,
            ))
        } else if self.iterations > limit.iterations {
            Some(("iterations", self.iterations, 1, limit.iterations))
        } else if self.parallelism > limit.parallelism {
            Some(("parallelism", self.parallelism, 1, limit.parallelism))
        } else {
            None
        }
    }

    /// Validates parameters read from slot `slot` at header offset `at` against the caps.
    pub(crate) fn from_header(slot: usize, at: usize, m: u32, t: u32, p: u32) -> Result<Self> {
        let limit = |what, field: usize, value: u32, min: u32, max: u32| Error::KdfLimit {
            slot,
            offset: (at + field) as u64,
            what,
            value: value.into(),
            min: min.into(),
            max: max.into(),
        };
        if !(1..=Self::MAX_PARALLELISM).contains(&p) {
            return Err(limit("parallelism", 57, p, 1, Self::MAX_PARALLELISM));
        }
        if !(1..=Self::MAX_ITERATIONS).contains(&t) {
            return Err(limit("iterations", 53, t, 1, Self::MAX_ITERATIONS));
        }
        if !(8 * p..=Self::MAX_MEMORY_KIB).contains(&m) {
            return Err(limit("memory_kib", 49, m, 8 * p, Self::MAX_MEMORY_KIB));
        }
        Ok(Self {
            memory_kib: m,
            iterations: t,
            parallelism: p,
        })
    }
}
