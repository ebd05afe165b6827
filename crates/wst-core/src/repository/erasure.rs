//! The erasure register (issue 18; seeds/003 GDPR mode: "Erased data must not be restored
//! unintentionally"): an append-only, encrypted and authenticated list of erasure requests kept
//! in the repository on every sink, re-applied by every restore and drill.
//!
//! Each entry is one object per sink, `{prefix}.erasure.{seq:08}-{id}.wst`, written
//! create-if-absent: the entry's JSON, sealed with an HMAC under the evidence key (domain
//! `wst erasure entry v1`) and then encrypted with the repository cipher (`wst-aead-v1`). The
//! object format is specified in `docs/ERASURE.md`. Reading the register unions the authentic
//! entries of every sink by id; a copy that does not open, does not authenticate or does not
//! match its object name is an [`ErasureAnomaly`] naming the sink and object, never used.
//!
//! An entry records what erasing meant when it was recorded (the SQL statements, object key
//! prefixes and path globs resolved for its subject), so a later configuration change does not
//! change an old entry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Repository;
use crate::audit::AuditEvent;
use crate::cipher::Cipher;
use crate::error::{Error, Result};
use crate::evidence::EvidenceKey;
use crate::selection::Selection;
use crate::sink::{Sink, SinkExt};

/// The entry's `format`.
pub const ERASURE_FORMAT: &str = "wst-erasure/1";

/// MAC domain of erasure entries.
const ERASURE_DOMAIN: &str = "wst erasure entry v1";

/// Largest erasure object read from a sink, bytes (ciphertext); a larger one is an anomaly and
/// is not read into memory (design invariant 10).
pub const ERASURE_OBJECT_MAX_BYTES: u64 = 256 * 1024;

/// Most register objects read per sink; beyond it the register is refused as an anomaly.
pub const ERASURE_MAX_OBJECTS: usize = 100_000;

/// Longest subject or tenant id, bytes.
pub const SUBJECT_MAX_BYTES: usize = 128;

/// Longest `requested_by` or `reason`, bytes.
pub const ERASURE_TEXT_MAX_BYTES: usize = 1024;

/// Most SQL statements, object prefixes or path globs per entry (each kind).
pub const ERASURE_MAX_ITEMS: usize = 64;

/// Longest SQL statement, prefix or glob, bytes.
pub const ERASURE_ITEM_MAX_BYTES: usize = 4096;

/// The placeholder for the subject id in object prefix and path templates.
pub const SUBJECT_PLACEHOLDER: &str = "{subject}";

/// The name prefix of every register object of repository prefix `prefix`:
/// `{prefix}.erasure.` (outside the `{prefix}-` namespace of artifacts).
pub fn erasure_object_prefix(prefix: &str) -> String {
    format!("{prefix}.erasure.")
}

/// The object name of entry `seq` with id `id`: `{prefix}.erasure.{seq:08}-{id}.wst`.
pub fn erasure_object(prefix: &str, seq: u64, id: &str) -> String {
    format!("{prefix}.erasure.{seq:08}-{id}.wst")
}

/// `(seq, id)` from a register object's name, `None` when it is not one of `prefix`.
fn parse_object(prefix: &str, name: &str) -> Option<(u64, String)> {
    let rest = name.strip_prefix(&erasure_object_prefix(prefix))?;
    let rest = rest.strip_suffix(".wst")?;
    let (seq, id) = rest.split_once('-')?;
    if seq.len() < 8 || !seq.bytes().all(|b| b.is_ascii_digit()) || !valid_id(id) {
        return None;
    }
    Some((seq.parse().ok()?, id.to_owned()))
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a subject or tenant id: 1 to [`SUBJECT_MAX_BYTES`] bytes of ASCII letters, digits
/// and `.`, `_`, `-`, `@`, `+`, `:`, not starting with `.`. The id is substituted into object
/// prefixes and path globs, so it can hold no `/`, glob character or `..` (a subject id must
/// never widen what an entry erases). SQL receives it as a bound parameter (`$1`), never
/// interpolated.
///
/// # Errors
/// [`Error::Config`] naming the rule broken.
pub fn validate_subject(subject: &str) -> Result<()> {
    if subject.is_empty() || subject.len() > SUBJECT_MAX_BYTES {
        return Err(Error::Config(format!(
            "a subject id must be 1 to {SUBJECT_MAX_BYTES} bytes long"
        )));
    }
    if subject.starts_with('.')
        || !subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+:".contains(&b))
    {
        return Err(Error::Config(
            "a subject id may hold only ASCII letters, digits and `._-@+:` and must not start with `.` \
             (it is substituted into object prefixes and path globs)"
                .into(),
        ));
    }
    Ok(())
}

/// Whether the subject is a data subject (a person) or a tenant (every row, object and file
/// of one customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureScope {
    /// One data subject (GDPR Art. 17).
    Subject,
    /// One tenant.
    Tenant,
}

/// Objects of one `[[bucket]]` to erase: every object whose key (relative to the bucket's
/// configured source prefix, as archived under `root`) starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectErasure {
    /// The `[[bucket]]` name.
    pub bucket: String,
    /// The bucket's archive root when the entry was recorded, e.g. `buckets/proofs/`.
    pub root: String,
    /// The key prefix, relative to the bucket's source prefix, e.g. `uploads/user-42/`.
    pub prefix: String,
}

/// What erasing a subject means, as templates (from the configuration's `[erasure]`):
/// SQL statements that take the subject as `$1`, object key prefixes and path globs with
/// `{subject}`. [`ErasureTemplate::resolve`] turns them into an entry's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureTemplate {
    /// SQL statements for the database, each taking the subject id as `$1` (bound as `text`:
    /// cast it where the column is not text, `WHERE id = $1::bigint`).
    pub sql: Vec<String>,
    /// Object prefixes per bucket; `prefix` may hold `{subject}`.
    pub objects: Vec<ObjectErasure>,
    /// Archive path globs (e.g. `wst-api/uploads/{subject}/**`) of `[[files]]` trees.
    pub paths: Vec<String>,
}

impl ErasureTemplate {
    /// Whether it erases nothing.
    pub fn is_empty(&self) -> bool {
        self.sql.is_empty() && self.objects.is_empty() && self.paths.is_empty()
    }

    /// Checks the templates: each SQL statement refers to `$1`, each prefix and glob is
    /// relative, without `..`, and holds `{subject}` (a template without it would erase every
    /// subject's data), and the limits hold.
    ///
    /// # Errors
    /// [`Error::Config`] naming every problem.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        for (what, n) in [
            ("sql statements", self.sql.len()),
            ("object prefixes", self.objects.len()),
            ("paths", self.paths.len()),
        ] {
            if n > ERASURE_MAX_ITEMS {
                problems.push(format!("{n} {what}: at most {ERASURE_MAX_ITEMS}"));
            }
        }
        for s in &self.sql {
            if !s.contains("$1") {
                problems.push(format!(
                    "sql `{}` does not use $1 (the subject id): it would not depend on the subject",
                    cut(s)
                ));
            }
            if s.len() > ERASURE_ITEM_MAX_BYTES || s.trim().is_empty() {
                problems.push(format!(
                    "sql `{}` is empty or longer than {ERASURE_ITEM_MAX_BYTES} bytes",
                    cut(s)
                ));
            }
        }
        let relative = |p: &str| {
            !p.is_empty()
                && p.len() <= ERASURE_ITEM_MAX_BYTES
                && !p.starts_with('/')
                && !p.contains('\\')
                && !p.split('/').any(|c| c == "..")
                && p.contains(SUBJECT_PLACEHOLDER)
        };
        for o in &self.objects {
            if !relative(&o.prefix) {
                problems.push(format!(
                    "bucket `{}` prefix `{}` must be relative, without `..`, and hold {SUBJECT_PLACEHOLDER}",
                    o.bucket,
                    cut(&o.prefix)
                ));
            }
        }
        for p in &self.paths {
            if !relative(p) {
                problems.push(format!(
                    "path `{}` must be relative, without `..`, and hold {SUBJECT_PLACEHOLDER}",
                    cut(p)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!("[erasure]: {}", problems.join("; "))))
        }
    }

    /// The entry contents for `subject`: the SQL unchanged (the subject is bound as `$1`), the
    /// prefixes and globs with `{subject}` replaced; every glob compiles.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid subject ([`validate_subject`]) or template.
    pub fn resolve(&self, subject: &str) -> Result<ErasureTemplate> {
        validate_subject(subject)?;
        self.validate()?;
        let out = ErasureTemplate {
            sql: self.sql.clone(),
            objects: self
                .objects
                .iter()
                .map(|o| ObjectErasure {
                    bucket: o.bucket.clone(),
                    root: o.root.clone(),
                    prefix: o.prefix.replace(SUBJECT_PLACEHOLDER, subject),
                })
                .collect(),
            paths: self
                .paths
                .iter()
                .map(|p| p.replace(SUBJECT_PLACEHOLDER, subject))
                .collect(),
        };
        if !out.paths.is_empty() {
            Selection::new(&out.paths)?;
        }
        Ok(out)
    }
}

/// `s` cut to at most 120 bytes at a character boundary, for messages.
fn cut(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_owned();
    }
    let mut end = 120;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A request to record: who and what, and what erasing means ([`ErasureTemplate`], the
/// configuration's `[erasure]`).
#[derive(Debug, Clone)]
pub struct ErasureRequest {
    /// Subject or tenant.
    pub scope: ErasureScope,
    /// The subject or tenant id ([`validate_subject`]).
    pub subject: String,
    /// Who requested the erasure (the actor accountable, e.g. `dpo@example.com`).
    pub requested_by: String,
    /// Why: the request's reference (ticket, Art. 17 request number).
    pub reason: String,
    /// What erasing means (templates, resolved for the subject when recorded).
    pub template: ErasureTemplate,
}

/// One register entry, as stored (plaintext before encryption; `docs/ERASURE.md` §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureEntry {
    /// Always [`ERASURE_FORMAT`].
    pub format: String,
    /// The repository's artifact prefix.
    pub prefix: String,
    /// The sequence number in the object name (1-based; order of recording, not unique across
    /// hosts: the id is).
    pub seq: u64,
    /// 32 lower-case hex digits, unique.
    pub id: String,
    /// Subject or tenant.
    pub scope: ErasureScope,
    /// The subject or tenant id.
    pub subject: String,
    /// When it was recorded (UTC, the repository clock).
    pub recorded: jiff::Timestamp,
    /// Who requested it.
    pub requested_by: String,
    /// The request's reference.
    pub reason: String,
    /// The audit actor that recorded it.
    pub recorded_by: String,
    /// SQL statements, each run with the subject bound as `$1` (text).
    pub sql: Vec<String>,
    /// Object prefixes per bucket (resolved).
    pub objects: Vec<ObjectErasure>,
    /// Archive path globs (resolved).
    pub paths: Vec<String>,
    /// The fingerprint of the repository key whose evidence key made `mac`.
    pub key: String,
    /// HMAC-SHA256 (hex) in domain `wst erasure entry v1` over the compact JSON of this entry
    /// with `mac` empty.
    pub mac: String,
}

impl ErasureEntry {
    fn body(&self) -> Vec<u8> {
        let mut plain = self.clone();
        plain.mac = String::new();
        serde_json::to_vec(&plain).expect("an erasure entry serialises")
    }

    fn seal(mut self, key: &EvidenceKey) -> Self {
        self.key = key.id().to_string();
        self.mac = String::new();
        self.mac = hex::encode(key.mac(ERASURE_DOMAIN, &self.body()));
        self
    }

    /// Whether the MAC verifies under one of `keys`.
    pub fn authentic(&self, keys: &[EvidenceKey]) -> bool {
        let Ok(tag) = hex::decode(&self.mac) else {
            return false;
        };
        keys.iter()
            .filter(|k| k.id().to_string() == self.key)
            .any(|k| k.verify(ERASURE_DOMAIN, &self.body(), &tag))
    }

    /// The object name on every sink.
    pub fn object(&self) -> String {
        erasure_object(&self.prefix, self.seq, &self.id)
    }

    /// The entry's SQL, object prefixes and globs as a template (already resolved).
    pub fn contents(&self) -> ErasureTemplate {
        ErasureTemplate {
            sql: self.sql.clone(),
            objects: self.objects.clone(),
            paths: self.paths.clone(),
        }
    }

    /// Whether everything in it is within the limits and well-formed (checked after
    /// authentication: an entry written by a wst with other limits is still refused here
    /// rather than trusted blindly).
    fn well_formed(&self) -> std::result::Result<(), String> {
        validate_subject(&self.subject).map_err(|e| e.to_string())?;
        if self.requested_by.len() > ERASURE_TEXT_MAX_BYTES
            || self.reason.len() > ERASURE_TEXT_MAX_BYTES
        {
            return Err("requested_by or reason too long".into());
        }
        if self.sql.len() > ERASURE_MAX_ITEMS
            || self.objects.len() > ERASURE_MAX_ITEMS
            || self.paths.len() > ERASURE_MAX_ITEMS
        {
            return Err("too many statements, prefixes or paths".into());
        }
        if !self.paths.is_empty() {
            Selection::new(&self.paths).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Encrypts a sealed entry with `cipher` (`wst-aead-v1`).
fn encrypt(cipher: &dyn Cipher, entry: &ErasureEntry) -> Result<Vec<u8>> {
    let plain = serde_json::to_vec(entry)
        .map_err(|e| Error::Config(format!("erasure entry serialisation failed: {e}")))?;
    let mut sealer = cipher.seal()?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    sealer.update(&plain, &mut out)?;
    sealer.finish(&mut out)?;
    Ok(out)
}

/// Decrypts, authenticates and checks one register object named `name` (already size-capped).
fn open(
    cipher: &dyn Cipher,
    keys: &[EvidenceKey],
    prefix: &str,
    name: &str,
    bytes: &[u8],
) -> std::result::Result<ErasureEntry, String> {
    let (seq, id) = parse_object(prefix, name).ok_or("not a register object name")?;
    let mut opener = cipher.open().map_err(|e| e.to_string())?;
    let mut plain = Vec::with_capacity(bytes.len());
    opener
        .update(bytes, &mut plain)
        .and_then(|()| opener.finish(&mut plain))
        .map_err(|e| format!("does not decrypt under the repository key: {e}"))?;
    let entry: ErasureEntry =
        serde_json::from_slice(&plain).map_err(|e| format!("does not parse: {e}"))?;
    if !entry.authentic(keys) {
        return Err(format!(
            "its MAC does not verify under the repository's evidence keys (it names key {})",
            entry.key
        ));
    }
    if entry.format != ERASURE_FORMAT {
        return Err(format!("unknown format `{}`", entry.format));
    }
    if entry.prefix != prefix || entry.seq != seq || entry.id != id {
        return Err(format!(
            "it holds entry {}-{} of prefix `{}`, not the one its name says (moved or copied)",
            entry.seq, entry.id, entry.prefix
        ));
    }
    entry.well_formed()?;
    Ok(entry)
}

/// A register object that cannot be used: unreadable, too large, not decrypting under the
/// repository key, not authenticating, or not matching its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureAnomaly {
    /// The sink.
    pub sink: String,
    /// The object name (empty when the sink could not be listed).
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// Whether an authentic copy of the entry its name claims was read from another sink
    /// (then nothing is unknown; the copy should be replaced). `false` when the entry may be
    /// unknown: a restore then refuses without break-glass.
    pub covered: bool,
}

impl std::fmt::Display for ErasureAnomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.object.is_empty() {
            write!(f, "sink `{}`: {}", self.sink, self.problem)
        } else {
            write!(
                f,
                "{} on sink `{}`: {}{}",
                self.object,
                self.sink,
                self.problem,
                if self.covered {
                    " (an authentic copy exists on another sink)"
                } else {
                    ""
                }
            )
        }
    }
}

/// The register as read from every sink: the authentic entries (union by id), which sinks hold
/// each, and every anomaly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErasureRegister {
    /// Every authentic entry, ordered by (recorded, seq, id).
    pub entries: Vec<ErasureEntry>,
    /// Per entry id, the sinks holding an authentic copy.
    pub holders: BTreeMap<String, Vec<String>>,
    /// The sinks read (listed).
    pub sinks_read: Vec<String>,
    /// Objects (or sinks) that could not be used.
    pub anomalies: Vec<ErasureAnomaly>,
    /// One authentic ciphertext per id, for catch-up.
    #[serde(skip)]
    raw: BTreeMap<String, Bytes>,
}

impl ErasureRegister {
    /// The anomalies that may hide an entry (not covered by an authentic copy elsewhere).
    pub fn uncovered(&self) -> impl Iterator<Item = &ErasureAnomaly> {
        self.anomalies.iter().filter(|a| !a.covered)
    }

    /// The highest sequence number seen (authentic or not), 0 for an empty register.
    fn max_seq(&self, seen: u64) -> u64 {
        self.entries
            .iter()
            .map(|e| e.seq)
            .max()
            .unwrap_or(0)
            .max(seen)
    }
}

/// What [`Repository::record_erasure`] wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasureRecordReport {
    /// The entry recorded.
    pub entry: ErasureEntry,
    /// Sinks it was written on.
    pub written: Vec<String>,
    /// Sinks it could not be written on, `sink: error` (catch it up later: `wst replicate`).
    pub failed: Vec<String>,
}

/// What [`Repository::erasure_catch_up`] copied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErasureCatchUp {
    /// `(sink, object)` copied.
    pub copied: Vec<(String, String)>,
    /// `sink: object: error`.
    pub failed: Vec<String>,
}

/// Outcome of re-applying one register entry to one restored target (issue 18): what was
/// re-erased, with counts. The subject id is not repeated here (reports are plaintext files);
/// the entry id names it in the encrypted register.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReErasure {
    /// The entry id.
    pub id: String,
    /// The entry's sequence number.
    pub seq: u64,
    /// When the entry was recorded (UTC).
    pub recorded: Option<jiff::Timestamp>,
    /// What it was applied to: `files <dir>`, `database <name>`, `bucket <url>`.
    pub target: String,
    /// Per SQL statement, the rows it deleted or changed, in order.
    pub statements: Vec<StatementCount>,
    /// Rows deleted or changed (the sum of `statements`).
    pub rows: u64,
    /// Bucket objects removed.
    pub objects: u64,
    /// Files (and other non-directory entries) removed.
    pub files: u64,
    /// Why it could not be applied, when it could not (then nothing of this entry was
    /// applied to a database: its statements run in one transaction).
    pub error: Option<String>,
}

/// Rows one SQL statement of an entry affected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementCount {
    /// The statement, as recorded (with `$1`, never the subject).
    pub statement: String,
    /// Rows affected.
    pub rows: u64,
}

impl ReErasure {
    /// A new outcome for `entry` on `target`, nothing applied yet.
    pub fn new(entry: &ErasureEntry, target: impl Into<String>) -> Self {
        Self {
            id: entry.id.clone(),
            seq: entry.seq,
            recorded: Some(entry.recorded),
            target: target.into(),
            ..Self::default()
        }
    }

    /// Whether it applied.
    pub fn applied(&self) -> bool {
        self.error.is_none()
    }
}

/// Removes one non-directory entry of a tree (a file or a symlink, never its target). On
/// Windows a symlink to a directory (or a junction) is a directory entry that `remove_file`
/// refuses: it is removed with `remove_dir`, which removes the link, not the directory it
/// points to.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        #[cfg(windows)]
        Err(e) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            std::fs::remove_dir(path).map_err(|_| e)
        }
        r => r,
    }
}

/// Re-applies the path globs and bucket object prefixes of `entries` to a restored tree
/// `dir` (a drill's restore target, an isolated restore's target, a staging directory before
/// promotion): every non-directory entry whose archive path (relative to `dir`, `/`-separated)
/// a glob matches (or one of its parent directories does), or which lies under a bucket root
/// followed by a recorded key prefix, is removed; directories a glob matches are removed once
/// empty. Symlinks are removed, never followed. Idempotent: an entry whose data is not in the
/// tree removes nothing. One [`ReErasure`] per entry that has paths or objects.
///
/// # Errors
/// [`Error::Io`] when the tree cannot be walked or a file cannot be removed (the caller must
/// not hand over or promote the tree then).
pub fn erase_tree(dir: &Path, entries: &[ErasureEntry]) -> Result<Vec<ReErasure>> {
    let mut out = Vec::new();
    let relevant: Vec<(&ErasureEntry, Option<Selection>)> = entries
        .iter()
        .filter(|e| !e.paths.is_empty() || !e.objects.is_empty())
        .map(|e| {
            let sel = if e.paths.is_empty() {
                None
            } else {
                Some(Selection::new(&e.paths)?)
            };
            Ok((e, sel))
        })
        .collect::<Result<_>>()?;
    if relevant.is_empty() {
        return Ok(out);
    }
    let mut files: Vec<(std::path::PathBuf, String)> = Vec::new();
    let mut dirs: Vec<(std::path::PathBuf, String)> = Vec::new();
    for item in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let item = item.map_err(|e| {
            Error::io(
                format!("walking `{}` for erasure", dir.display()),
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk error")),
            )
        })?;
        let rel = item
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under its root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if item.file_type().is_dir() {
            dirs.push((item.path().to_path_buf(), rel));
        } else {
            files.push((item.path().to_path_buf(), rel));
        }
    }
    let mut removed: BTreeSet<String> = BTreeSet::new();
    for (entry, sel) in &relevant {
        let mut r = ReErasure::new(entry, format!("files {}", dir.display()));
        for (path, rel) in &files {
            if removed.contains(rel) {
                continue;
            }
            let by_object = entry.objects.iter().any(|o| {
                let root = o.root.trim_end_matches('/');
                rel.strip_prefix(root)
                    .and_then(|k| k.strip_prefix('/'))
                    .is_some_and(|k| k.starts_with(&o.prefix))
            });
            let by_path = sel.as_ref().is_some_and(|s| s.matches(rel));
            if !(by_object || by_path) {
                continue;
            }
            remove_entry(path)
                .map_err(|e| Error::io(format!("erasing `{}`", path.display()), e))?;
            removed.insert(rel.clone());
            if by_object {
                r.objects += 1;
            } else {
                r.files += 1;
            }
        }
        // Directories in the erased scope go once empty, deepest first: one a glob matches,
        // or whose children it would match (`uploads/u-1` for `uploads/u-1/**`), or under a
        // bucket root whose key prefix it lies in. A directory still holding something not
        // erased stays.
        for (path, rel) in dirs.iter().rev() {
            let child = format!("{rel}/x");
            let by_path = sel
                .as_ref()
                .is_some_and(|s| s.matches(rel) || s.matches(&child));
            let by_object = entry.objects.iter().any(|o| {
                let root = o.root.trim_end_matches('/');
                rel.strip_prefix(root)
                    .and_then(|k| k.strip_prefix('/'))
                    .is_some_and(|k| format!("{k}/").starts_with(&o.prefix))
            });
            if by_path || by_object {
                std::fs::remove_dir(path).ok();
            }
        }
        out.push(r);
    }
    Ok(out)
}

impl Repository {
    /// Reads the erasure register from every configured sink: every object named
    /// `{prefix}.erasure.*` is read (at most [`ERASURE_OBJECT_MAX_BYTES`], at most
    /// [`ERASURE_MAX_OBJECTS`] per sink), decrypted, authenticated and checked against its
    /// name; the authentic entries are united by id. Anything else is an [`ErasureAnomaly`].
    /// Not audited by itself (restore and drill, which read it, are; `wst erasure list` calls
    /// [`Repository::list_erasures`]).
    ///
    /// # Errors
    /// [`Error::Sink`] (the last sink's) when no sink could be listed at all.
    pub async fn erasure_register(&self) -> Result<ErasureRegister> {
        let mut reg = ErasureRegister::default();
        let mut by_id: BTreeMap<String, ErasureEntry> = BTreeMap::new();
        let mut suspects: Vec<(ErasureAnomaly, Option<String>)> = Vec::new();
        let mut last_error = None;
        let list_prefix = erasure_object_prefix(&self.prefix);
        for sink in &self.sinks {
            let sink_name = sink.info().name.clone();
            let listing = match sink.list(&list_prefix).await {
                Ok(l) => l,
                Err(e) => {
                    reg.anomalies.push(ErasureAnomaly {
                        sink: sink_name,
                        object: String::new(),
                        problem: format!("cannot be listed: {e}"),
                        covered: true,
                    });
                    last_error = Some(e);
                    continue;
                }
            };
            reg.sinks_read.push(sink_name.clone());
            if listing.len() > ERASURE_MAX_OBJECTS {
                reg.anomalies.push(ErasureAnomaly {
                    sink: sink_name,
                    object: String::new(),
                    problem: format!(
                        "holds {} register objects, more than the {ERASURE_MAX_OBJECTS} wst reads",
                        listing.len()
                    ),
                    covered: false,
                });
                continue;
            }
            for meta in listing {
                if !meta.name.starts_with(&list_prefix) {
                    continue;
                }
                let claimed = parse_object(&self.prefix, &meta.name).map(|(_, id)| id);
                let anomaly = |problem: String| ErasureAnomaly {
                    sink: sink_name.clone(),
                    object: meta.name.clone(),
                    problem,
                    covered: false,
                };
                if meta.size > ERASURE_OBJECT_MAX_BYTES {
                    suspects.push((
                        anomaly(format!(
                            "{} bytes, more than the {ERASURE_OBJECT_MAX_BYTES} a register object may have",
                            meta.size
                        )),
                        claimed,
                    ));
                    continue;
                }
                let bytes = match sink.get_bytes(&meta.name, ERASURE_OBJECT_MAX_BYTES).await {
                    Ok(b) => b,
                    Err(e) => {
                        suspects.push((anomaly(format!("cannot be read: {e}")), claimed));
                        continue;
                    }
                };
                match open(&*self.cipher, &self.keys, &self.prefix, &meta.name, &bytes) {
                    Ok(entry) => {
                        reg.holders
                            .entry(entry.id.clone())
                            .or_default()
                            .push(sink_name.clone());
                        reg.raw.entry(entry.id.clone()).or_insert(bytes);
                        match by_id.get(&entry.id) {
                            Some(known) if *known != entry => suspects.push((
                                anomaly(format!(
                                    "authentic, but differs from the copy of entry {} read from another sink",
                                    entry.id
                                )),
                                None,
                            )),
                            Some(_) => {}
                            None => {
                                by_id.insert(entry.id.clone(), entry);
                            }
                        }
                    }
                    Err(problem) => suspects.push((anomaly(problem), claimed)),
                }
            }
        }
        if reg.sinks_read.is_empty()
            && let Some(e) = last_error
        {
            return Err(e);
        }
        for (mut a, claimed) in suspects {
            a.covered = claimed.is_some_and(|id| by_id.contains_key(&id));
            tracing::error!(anomaly = %a, "erasure register: a copy is not used");
            reg.anomalies.push(a);
        }
        reg.entries = by_id.into_values().collect();
        reg.entries
            .sort_by(|a, b| (a.recorded, a.seq, &a.id).cmp(&(b.recorded, b.seq, &b.id)));
        Ok(reg)
    }

    /// [`Repository::erasure_register`], audited (`erasure_listed`: entries and anomalies),
    /// for `wst erasure list`.
    ///
    /// # Errors
    /// As [`Repository::erasure_register`]; the audit log's error.
    pub async fn list_erasures(&self) -> Result<ErasureRegister> {
        let reg = self.erasure_register().await?;
        self.record(AuditEvent::ErasureListed {
            entries: reg.entries.len() as u64,
            anomalies: reg.anomalies.iter().map(ToString::to_string).collect(),
        })
        .await?;
        Ok(reg)
    }

    /// Records an erasure request (`wst erasure record`; issue 18): resolves the request's
    /// templates for its subject, seals the entry (evidence key) and encrypts it (repository
    /// cipher), and writes it create-if-absent as `{prefix}.erasure.{seq:08}-{id}.wst` on every
    /// identified sink ([`Repository::check_sinks`]), `seq` one above the highest in the
    /// register. Audited (`erasure_recorded`: id, seq, requested by, reason, sinks; not the
    /// subject id, which stays in the encrypted register). The caller should hold the
    /// repository lock. Then catches up sinks that lack older entries
    /// ([`Repository::erasure_catch_up`]).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid subject, empty texts or template (nothing written),
    /// and when no sink took the entry (after auditing the failure); the register's read
    /// error; the cipher's error; the audit log's error.
    pub async fn record_erasure(&self, request: &ErasureRequest) -> Result<ErasureRecordReport> {
        validate_subject(&request.subject)?;
        for (what, text) in [
            ("requested by", &request.requested_by),
            ("reason", &request.reason),
        ] {
            if text.trim().is_empty() || text.len() > ERASURE_TEXT_MAX_BYTES {
                return Err(Error::Config(format!(
                    "an erasure needs a {what} of 1 to {ERASURE_TEXT_MAX_BYTES} bytes"
                )));
            }
        }
        if request.template.is_empty() {
            return Err(Error::Config(
                "the configuration's [erasure] section says nothing to erase (no sql, bucket_prefixes or paths)"
                    .into(),
            ));
        }
        let resolved = request.template.resolve(&request.subject)?;
        let reg = self.erasure_register().await?;
        let seen = reg
            .anomalies
            .iter()
            .filter_map(|a| parse_object(&self.prefix, &a.object).map(|(s, _)| s))
            .max()
            .unwrap_or(0);
        let key = self.keys.first().expect("a repository has an evidence key");
        let now = self.clock.now();
        let ids = self.check_sinks().await;
        let mut entry = ErasureEntry {
            format: ERASURE_FORMAT.to_owned(),
            prefix: self.prefix.clone(),
            seq: reg.max_seq(seen) + 1,
            id: new_entry_id(now, &request.subject, key),
            scope: request.scope,
            subject: request.subject.clone(),
            recorded: now,
            requested_by: request.requested_by.clone(),
            reason: request.reason.clone(),
            recorded_by: self.audit.actor().to_owned(),
            sql: resolved.sql,
            objects: resolved.objects,
            paths: resolved.paths,
            key: String::new(),
            mac: String::new(),
        }
        .seal(key);
        let mut written = Vec::new();
        let mut failed = Vec::new();
        for (sink, id) in self.sinks.iter().zip(&ids) {
            let name = sink.info().name.clone();
            if let Some(p) = &id.problem {
                failed.push(format!("{name}: not identified: {p}"));
                continue;
            }
            // Another host may have taken this sequence number: take the next (the id is
            // unique; the number only orders).
            let mut attempt = 0;
            loop {
                let bytes = Bytes::from(encrypt(&*self.cipher, &entry)?);
                match sink.create(&entry.object(), bytes).await {
                    Ok(_) => {
                        written.push(name.clone());
                        break;
                    }
                    Err(Error::AlreadyExists { .. }) if written.is_empty() && attempt < 16 => {
                        attempt += 1;
                        entry.seq += 1;
                        entry = entry.seal(key);
                    }
                    Err(e) => {
                        failed.push(format!("{name}: {e}"));
                        break;
                    }
                }
            }
        }
        self.audit.append(AuditEvent::ErasureRecorded {
            id: entry.id.clone(),
            seq: entry.seq,
            scope: format!("{:?}", entry.scope).to_lowercase(),
            requested_by: entry.requested_by.clone(),
            reason: entry.reason.clone(),
            sql_statements: entry.sql.len() as u64,
            object_prefixes: entry.objects.len() as u64,
            paths: entry.paths.len() as u64,
            sinks: written.clone(),
            failed: failed.clone(),
        })?;
        self.anchor().await;
        if written.is_empty() {
            return Err(Error::Config(format!(
                "the erasure was written on no sink ({}); nothing is recorded",
                failed.join("; ")
            )));
        }
        if let Err(e) = self.erasure_catch_up().await {
            tracing::warn!(error = %e, "erasure register catch-up failed");
        }
        Ok(ErasureRecordReport {
            entry,
            written,
            failed,
        })
    }

    /// Copies every authentic register entry to each identified sink that lacks it (under the
    /// same object name, create-if-absent; the ciphertext of an authentic copy). Audited when
    /// something was copied or failed (`erasure_replicated`).
    ///
    /// # Errors
    /// As [`Repository::erasure_register`]; the audit log's error.
    pub async fn erasure_catch_up(&self) -> Result<ErasureCatchUp> {
        let reg = self.erasure_register().await?;
        let ids = self.check_sinks().await;
        let mut out = ErasureCatchUp::default();
        for (sink, id) in self.sinks.iter().zip(&ids) {
            let name = &sink.info().name;
            if !id.ok || !reg.sinks_read.contains(name) {
                continue;
            }
            for entry in &reg.entries {
                if reg.holders.get(&entry.id).is_some_and(|h| h.contains(name)) {
                    continue;
                }
                let Some(bytes) = reg.raw.get(&entry.id) else {
                    continue;
                };
                match sink.create(&entry.object(), bytes.clone()).await {
                    Ok(_) => out.copied.push((name.clone(), entry.object())),
                    Err(e) => out.failed.push(format!("{name}: {}: {e}", entry.object())),
                }
            }
        }
        if !out.copied.is_empty() || !out.failed.is_empty() {
            self.record(AuditEvent::ErasureReplicated {
                copied: out
                    .copied
                    .iter()
                    .map(|(s, o)| format!("{s}: {o}"))
                    .collect(),
                failed: out.failed.clone(),
            })
            .await?;
        }
        Ok(out)
    }
}

/// A new entry id: 32 hex digits of SHA-256 over the time, the process, a counter and a MAC
/// of the subject (unique; reveals nothing about the subject without the key).
fn new_entry_id(now: jiff::Timestamp, subject: &str, key: &EvidenceKey) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(now.as_nanosecond().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(n.to_le_bytes());
    h.update(key.mac("wst erasure id", subject.as_bytes()));
    // Uniqueness across hosts: 128 random bits (not the wall clock; `now` is the caller's).
    h.update(rand::random::<[u8; 16]>());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> ErasureTemplate {
        ErasureTemplate {
            sql: vec!["DELETE FROM app.users WHERE id = $1".into()],
            objects: vec![ObjectErasure {
                bucket: "proofs".into(),
                root: "buckets/proofs/".into(),
                prefix: "uploads/{subject}/".into(),
            }],
            paths: vec!["wst-api/uploads/{subject}/**".into()],
        }
    }

    #[test]
    fn subjects_and_templates_are_checked() {
        for bad in ["", "../x", "a/b", "*", "a b", ".hidden", &"x".repeat(129)] {
            assert!(validate_subject(bad).is_err(), "{bad:?}");
        }
        validate_subject("user-42@example.com").unwrap();
        let r = template().resolve("u-1").unwrap();
        assert_eq!(r.objects[0].prefix, "uploads/u-1/");
        assert_eq!(r.paths, ["wst-api/uploads/u-1/**"]);
        assert_eq!(r.sql, ["DELETE FROM app.users WHERE id = $1"]);
        let mut t = template();
        t.sql.push("DELETE FROM app.users".into());
        t.paths.push("/etc/**".into());
        let e = t.validate().unwrap_err().to_string();
        assert!(
            e.contains("does not use $1") && e.contains("/etc/**"),
            "{e}"
        );
    }

    #[test]
    fn object_names_round_trip() {
        let id = "0123456789abcdef0123456789abcdef";
        let n = erasure_object("wst-backup", 7, id);
        assert_eq!(n, format!("wst-backup.erasure.00000007-{id}.wst"));
        assert_eq!(parse_object("wst-backup", &n), Some((7, id.to_owned())));
        assert_eq!(parse_object("other", &n), None);
        assert_eq!(
            parse_object("wst-backup", "wst-backup.erasure.7-x.wst"),
            None
        );
        crate::sink::validate_object_name(&n).unwrap();
    }

    #[test]
    fn erase_tree_removes_matching_files_and_objects_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "wst-api/uploads/u-1/a.txt",
            "wst-api/uploads/u-1/sub/b.txt",
            "wst-api/uploads/u-10/c.txt",
            "buckets/proofs/uploads/u-1/p.pdf",
            "buckets/proofs/uploads/u-2/p.pdf",
            "wst/keep.txt",
        ] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let r = template().resolve("u-1").unwrap();
        let entry = ErasureEntry {
            format: ERASURE_FORMAT.into(),
            prefix: "wst-backup".into(),
            seq: 1,
            id: "0".repeat(32),
            scope: ErasureScope::Subject,
            subject: "u-1".into(),
            recorded: jiff::Timestamp::UNIX_EPOCH,
            requested_by: "dpo".into(),
            reason: "r".into(),
            recorded_by: "t".into(),
            sql: r.sql,
            objects: r.objects,
            paths: r.paths,
            key: String::new(),
            mac: String::new(),
        };
        let out = erase_tree(d, std::slice::from_ref(&entry)).unwrap();
        assert_eq!((out[0].files, out[0].objects), (2, 1));
        assert!(!d.join("wst-api/uploads/u-1").exists());
        assert!(!d.join("buckets/proofs/uploads/u-1").exists());
        assert!(d.join("buckets/proofs/uploads").exists());
        assert!(d.join("wst-api/uploads/u-10/c.txt").exists());
        assert!(d.join("buckets/proofs/uploads/u-2/p.pdf").exists());
        assert!(d.join("wst/keep.txt").exists());
        // Idempotent.
        let again = erase_tree(d, &[entry]).unwrap();
        assert_eq!((again[0].files, again[0].objects), (0, 0));
    }
}
