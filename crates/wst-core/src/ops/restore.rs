//! Isolated restore: decrypt, authenticate and extract an artifact into an empty target
//! directory, staging first and promoting only after the whole stream authenticated;
//! optionally only the entries an include [`Selection`] selects.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactName;
use crate::cipher::{Cipher, KeyFingerprint};
use crate::clock::Clock;
use crate::error::{Error, Result, quote_name};
use crate::reader::{ReadEntry, ReadFailure, ReadLimits, Visitor, read_artifact};
use crate::selection::Selection;
use crate::sink::Sink;
use crate::source::{EntryKind, SourceDescription};
use crate::verify::{Check, compare_manifest};

/// An explicit authorization to restore into a production path or over existing data
/// (doctrine 026 "L6 (Breakglass): full restore authorization (destructive allowed)").
/// It is recorded in the restore report and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// Who authorized it (a person or role, e.g. `alice (L6)`).
    pub authorized_by: String,
    /// Why (an incident or change number).
    pub reason: String,
}

/// Where and how to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The target directory. It must not exist or be empty, unless [`Self::allow_non_empty`].
    pub target: PathBuf,
    /// Allow restoring into a non-empty directory (existing files of the same path are
    /// replaced). Requires [`Self::break_glass`].
    pub allow_non_empty: bool,
    /// Production paths (e.g. the configured source directories): a target that is, contains or
    /// lies inside one is refused without [`Self::break_glass`].
    pub protected_paths: Vec<PathBuf>,
    /// The break-glass authorization, if any.
    pub break_glass: Option<BreakGlass>,
    /// Caps on entries and sizes.
    pub limits: ReadLimits,
    /// Include patterns for a selective restore (see [`Selection`] for the forms: roots such as
    /// `wst-api/`, exact paths, globs such as `wst-api/config/**` or `**/*.json`). Empty:
    /// restore every entry not excluded.
    pub include: Vec<String>,
    /// Exclude patterns (the same forms): matching entries and their subtrees are not
    /// written, even when an include pattern matches them.
    pub exclude: Vec<String>,
    /// The clock that stamps the report's `started` and `finished` (UTC); the duration is
    /// measured with a monotonic clock. Default [`Clock::system`].
    pub clock: Clock,
    /// The copy's `(ciphertext size in bytes, SHA-256 hex)` from its sidecar: when given, a
    /// ciphertext that differs fails the restore before anything is promoted
    /// ([`Error::Substituted`]). The repository always sets it. Default `None`.
    pub expected_ciphertext: Option<(u64, String)>,
    /// The erasure register's entries re-applied to the staged tree before promotion (issue
    /// 18; seeds/003 "Erased data must not be restored unintentionally"): path globs and
    /// bucket object prefixes, as [`erase_tree`](crate::erase_tree). `None` (the default):
    /// [`Repository::restore`](crate::Repository::restore) reads the repository's register
    /// and applies all of it; the free [`restore`] function applies nothing. `Some(entries)`:
    /// exactly these (`Some(vec![])`: none, for a caller that applies the register itself).
    /// Outcomes are in [`RestoreReport::re_erasures`]. An entry that cannot be applied, or an
    /// [`erasure_anomalies`](Self::erasure_anomalies) item, fails the restore before
    /// promotion with [`Error::ErasureNotApplied`] unless [`break_glass`](Self::break_glass)
    /// is set (then the report's [`erasure_failures`](RestoreReport::erasure_failures) says
    /// what was let through).
    pub erasures: Option<Vec<crate::erasure::ErasureEntry>>,
    /// Register copies that could not be used and whose entry is known from no other sink
    /// ([`ErasureRegister::uncovered`](crate::ErasureRegister::uncovered)): an erasure may be
    /// missing, so each fails the restore as an entry that cannot be applied. Filled by
    /// [`Repository::restore`](crate::Repository::restore). Default none.
    pub erasure_anomalies: Vec<String>,
    /// Let include patterns match nothing (a tenant restore's templates: a tenant without
    /// files under one of them is not an error; issue 18). Default `false`: an include pattern
    /// that selects no entry fails the restore ([`Error::SelectionUnmatched`]).
    pub allow_unmatched: bool,
}

impl RestoreOptions {
    /// Options for an isolated restore into `target` (which must not exist or be empty).
    pub fn isolated(target: impl Into<PathBuf>) -> Self {
        Self {
            target: target.into(),
            allow_non_empty: false,
            protected_paths: Vec::new(),
            break_glass: None,
            limits: ReadLimits::default(),
            include: Vec::new(),
            exclude: Vec::new(),
            clock: Clock::system(),
            expected_ciphertext: None,
            erasures: None,
            erasure_anomalies: Vec::new(),
            allow_unmatched: false,
        }
    }

    /// Stamps the report with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Restores only the entries the include `patterns` select (added to any given before).
    #[must_use]
    pub fn include<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.include.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Leaves out the entries the exclude `patterns` match (added to any given before).
    #[must_use]
    pub fn exclude<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Adds production paths the restore must not touch without break-glass.
    #[must_use]
    pub fn protect(mut self, paths: impl IntoIterator<Item = PathBuf>) -> Self {
        self.protected_paths.extend(paths);
        self
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The artifact restored.
    pub artifact: ArtifactName,
    /// The sink it was read from.
    pub sink: String,
    /// The target directory.
    pub target: PathBuf,
    /// Start (UTC).
    pub started: jiff::Timestamp,
    /// End (UTC).
    pub finished: jiff::Timestamp,
    /// Seconds from start to the promoted, verified restore.
    pub duration_seconds: f64,
    /// Entries restored (for a selective restore: the selected entries; parent directories
    /// created for them are not counted).
    pub entries: u64,
    /// Content bytes restored.
    pub bytes: u64,
    /// The include patterns of a selective restore, as given; empty when every entry (not
    /// excluded) was restored.
    #[serde(default)]
    pub selection: Vec<String>,
    /// The exclude patterns, as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Entries outside the selection: authenticated and compared with the manifest, not
    /// written (0 for a full restore).
    #[serde(default)]
    pub skipped: u64,
    /// The key that opened the artifact.
    pub opened_with: Option<KeyFingerprint>,
    /// The manifest's source descriptions (database facts for a restore proof).
    pub sources: Vec<SourceDescription>,
    /// The checks done (authentication, manifest comparison).
    pub checks: Vec<Check>,
    /// The break-glass authorization used, if any.
    pub break_glass: Option<BreakGlass>,
    /// What the restore changed or left out, for the operator: e.g. setuid/setgid/sticky bits
    /// dropped (at most [`MAX_RESTORE_WARNINGS`] entries named, then a count). Empty when the
    /// tree was restored exactly as archived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Copies tried before this one and rejected (`sink: error`), when
    /// [`Repository::restore`](crate::Repository::restore) fell back to another sink's copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_copies: Vec<String>,
    /// The erasure register's entries re-applied to the staged tree before promotion, one per
    /// entry with paths or bucket objects ([`RestoreOptions::erasures`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub re_erasures: Vec<crate::erasure::ReErasure>,
    /// What of the register could not be applied and break-glass let through (`#SEQ ID:
    /// error`, anomalies). Empty without break-glass: the restore fails instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erasure_failures: Vec<String>,
}

/// Most warnings a [`RestoreReport`] names one by one; the rest are counted in a last line.
pub const MAX_RESTORE_WARNINGS: usize = 100;

/// Restores artifact `name` from `sink` into `options.target`.
///
/// Nothing becomes visible in the target until the whole stream authenticated and every entry
/// matched the manifest: entries are extracted into a private staging directory beside the
/// target, which is then renamed into place (design invariants 4, 5, 6).
///
/// # What is accepted
/// Exactly what verification accepts: the reader applies one entry-acceptance rule for both
/// (`docs/ARCHIVE.md`), so an artifact that verifies restores into an empty target (design
/// invariant 9). In short: no absolute paths, `..`, drive prefixes, backslashes or duplicate
/// paths; only files, directories, symlinks and hard links (device nodes and FIFOs are refused,
/// as at verification); hard links point to earlier regular files of the archive; nothing lies
/// below a symlink; caps of [`ReadLimits`] on metadata, entry count and sizes.
///
/// - **Symlinks** are restored as links with their text verbatim, absolute or pointing outside
///   the target included: a link is never followed, and nothing is ever written through one
///   (every parent directory is checked with `symlink_metadata` as it is created; files are
///   created with create-new semantics). On Windows a symlink is created as a directory link
///   when its target is an existing directory at that moment, else as a file link; creating
///   either needs the `SeCreateSymbolicLinkPrivilege` (or developer mode), and without it the
///   restore fails with the operating system's error (verification cannot know that).
/// - **setuid/setgid/sticky bits** are dropped, with a warning per entry in
///   [`RestoreReport::warnings`]; a restore with [`RestoreOptions::break_glass`] (a production
///   restore) keeps them.
///
/// # Selective restore
/// With [`RestoreOptions::include`] / [`RestoreOptions::exclude`], only the selected entries
/// (an entry whose path or a parent directory matches an include pattern and no exclude
/// pattern, see [`Selection`]) are written, with the parent directories
/// they need (created with their archived mode and mtime). Every other entry is still read,
/// authenticated and compared with the manifest but not written: the artifact has no index,
/// so a selective restore costs one full read of the stream, like a full one, and promotion
/// still waits for the whole stream to authenticate. The report's `manifest_entries` check
/// covers the selected entries; the integrity of the rest gates promotion. Rules:
/// - an include pattern that selects no entry fails the restore with
///   [`Error::SelectionUnmatched`] naming it (never a silent empty restore), unless
///   [`RestoreOptions::allow_unmatched`]; an exclude pattern may match nothing;
/// - a selected hard link whose target is not selected fails with
///   [`Error::SelectionIncomplete`] naming both: the target's content passed earlier in the
///   stream and was not kept, so the link can be neither made nor copied (GNU `tar -x member`
///   fails the same way); select the target or its directory too;
/// - a selected symlink is restored as is, even when what it points to is not selected.
///
/// # Errors
/// [`Error::RestoreTarget`] for a refused target (before anything is read); [`Error::Config`]
/// for an invalid include pattern (before anything is read); [`Error::Cipher`] for a wrong key
/// or tampering; [`Error::UnsafeEntry`]; [`Error::Malformed`]; [`Error::LimitExceeded`];
/// [`Error::SelectionUnmatched`]; [`Error::SelectionIncomplete`]; [`Error::Io`]. On any error
/// the target is unchanged and the staging directory is removed.
pub async fn restore(
    sink: &dyn Sink,
    name: &ArtifactName,
    cipher: &dyn Cipher,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let started = options.clock.now();
    let clock = std::time::Instant::now();
    let selection = if options.include.is_empty() && options.exclude.is_empty() {
        None
    } else if options.include.is_empty() {
        Some(Selection::all().exclude(&options.exclude)?)
    } else {
        Some(Selection::new(&options.include)?.exclude(&options.exclude)?)
    };
    check_target(options)?;
    let parent = absolute_parent(&options.target)?;
    fs::create_dir_all(&parent)
        .map_err(|e| Error::io(format!("creating `{}`", parent.display()), e))?;
    let file_name = options
        .target
        .file_name()
        .map_or_else(|| "restore".into(), |n| n.to_string_lossy().into_owned());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.wst-staging-"))
        .tempdir_in(&parent)
        .map_err(|e| {
            Error::io(
                format!("creating a staging directory in `{}`", parent.display()),
                e,
            )
        })?;
    let root = fs::canonicalize(staging.path())
        .map_err(|e| Error::io(format!("resolving `{}`", staging.path().display()), e))?;
    let visitor = Extract {
        root,
        keep_special_bits: options.break_glass.is_some(),
        warnings: Vec::new(),
        dropped_bits: 0,
        files: HashSet::new(),
        dirs: Vec::new(),
        bytes: 0,
        hit: vec![false; selection.as_ref().map_or(0, |s| s.patterns().len())],
        selection,
        selected: HashSet::new(),
        skipped_dirs: HashMap::new(),
        made_dirs: HashSet::new(),
    };
    let out = read_artifact(sink, name, cipher, visitor, options.limits).await?;
    if let Some(failure) = out.error {
        tracing::error!(artifact = %name, error = %failure, "restore failed; target untouched");
        return Err(failure_to_error(failure, name));
    }
    let manifest = out.manifest.ok_or_else(|| Error::Malformed {
        artifact: name.to_string(),
        detail: "no manifest entry".into(),
    })?;
    // Bind content to name (design invariant 9) before anything is promoted.
    bind_to_name(
        sink,
        name,
        &manifest.artifact,
        options.expected_ciphertext.as_ref(),
        out.ciphertext.as_ref(),
    )?;
    let manifest_check = compare_manifest(&manifest, &out.entries);
    if !manifest_check.passed {
        return Err(Error::Malformed {
            artifact: name.to_string(),
            detail: manifest_check.detail,
        });
    }
    let extract = out.visitor;
    let (manifest_check, restored, skipped) = match &extract.selection {
        None => (manifest_check, out.entries.len() as u64, 0),
        Some(sel) => {
            let unmatched = sel.unmatched_of(&extract.hit);
            if !unmatched.is_empty() && !options.allow_unmatched {
                return Err(Error::SelectionUnmatched {
                    artifact: name.to_string(),
                    patterns: unmatched,
                });
            }
            let mut sub = manifest.clone();
            sub.entries.retain(|e| extract.selected.contains(&e.path));
            let read: Vec<_> = out
                .entries
                .iter()
                .filter(|(e, _)| extract.selected.contains(&e.path))
                .cloned()
                .collect();
            let mut check = compare_manifest(&sub, &read);
            let n = read.len() as u64;
            let skipped = out.entries.len() as u64 - n;
            if check.passed {
                check.detail = format!(
                    "{n} selected entries match the manifest (size and SHA-256); {skipped} \
                     other entries authenticated and matched it, not written"
                );
            }
            (check, n, skipped)
        }
    };
    let (selection_patterns, exclude_patterns) = extract
        .selection
        .as_ref()
        .map(|s| (s.patterns().to_vec(), s.excludes().to_vec()))
        .unwrap_or_default();
    let bytes = extract.bytes;
    let mut warnings = extract.warnings.clone();
    if extract.dropped_bits > warnings.len() as u64 {
        warnings.push(format!(
            "… and {} more entries had their setuid/setgid/sticky bits dropped",
            extract.dropped_bits - warnings.len() as u64
        ));
    }
    // The erasure register, on the staged tree: erased data never reaches the target.
    let (re_erasures, erasure_failures) =
        if options.erasures.is_some() || !options.erasure_anomalies.is_empty() {
            let root = staging.path().to_path_buf();
            let entries = options.erasures.clone().unwrap_or_default();
            let done =
                tokio::task::spawn_blocking(move || crate::erasure::erase_tree(&root, &entries))
                    .await
                    .map_err(|e| crate::bridge::join_error(&e))?;
            let (done, mut failures) = match done {
                Ok(mut d) => {
                    // Named after the target the tree is promoted to, not its staging.
                    for r in &mut d {
                        r.target = format!("files {}", options.target.display());
                    }
                    let f: Vec<String> = d
                        .iter()
                        .filter_map(|r| {
                            r.error
                                .as_ref()
                                .map(|e| format!("#{} {}: {e}", r.seq, r.id))
                        })
                        .collect();
                    (d, f)
                }
                Err(e) => (Vec::new(), vec![e.to_string()]),
            };
            failures.extend(
                options.erasure_anomalies.iter().map(|a| {
                    format!("a register copy is not usable and its entry is unknown: {a}")
                }),
            );
            if !failures.is_empty() && options.break_glass.is_none() {
                return Err(Error::ErasureNotApplied {
                    artifact: name.to_string(),
                    detail: failures.join("; "),
                });
            }
            (done, failures)
        } else {
            (Vec::new(), Vec::new())
        };
    let staged = staging.keep();
    let promote = tokio::task::spawn_blocking({
        let target = options.target.clone();
        move || -> Result<()> {
            extract.finish_dirs()?;
            promote(&staged, &target)
        }
    })
    .await
    .map_err(|e| crate::bridge::join_error(&e))?;
    promote?;
    let checks = vec![
        Check::pass(
            "authenticated",
            "every chunk and the end of stream authenticated before promotion",
        ),
        manifest_check,
    ];
    let report = RestoreReport {
        artifact: name.clone(),
        sink: sink.info().name.clone(),
        target: options.target.clone(),
        started,
        finished: options.clock.now(),
        duration_seconds: clock.elapsed().as_secs_f64(),
        entries: restored,
        bytes,
        selection: selection_patterns,
        exclude: exclude_patterns,
        skipped,
        opened_with: out.opened_with,
        sources: manifest.sources,
        checks,
        break_glass: options.break_glass.clone(),
        warnings,
        rejected_copies: Vec::new(),
        re_erasures,
        erasure_failures,
    };
    tracing::info!(artifact = %name, target = %options.target.display(), entries = report.entries, "restore complete");
    Ok(report)
}

fn failure_to_error(failure: ReadFailure, name: &ArtifactName) -> Error {
    failure.into_error(name)
}

fn absolute_parent(target: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(target)
        .map_err(|e| Error::io(format!("resolving `{}`", target.display()), e))?;
    abs.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::RestoreTarget {
            path: target.to_path_buf(),
            reason: "a filesystem root cannot be a restore target".into(),
        })
}

/// Resolves symlinks in the longest existing prefix of `p`, keeping the rest as is.
fn resolve(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(std::ffi::OsStr::to_os_string),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
}

fn check_target(options: &RestoreOptions) -> Result<()> {
    let target = &options.target;
    let refuse = |reason: String| Error::RestoreTarget {
        path: target.clone(),
        reason,
    };
    let resolved = resolve(target);
    for p in &options.protected_paths {
        let rp = resolve(p);
        if (resolved.starts_with(&rp) || rp.starts_with(&resolved)) && options.break_glass.is_none()
        {
            return Err(refuse(format!(
                "it overlaps the production path `{}`; restore to an isolated path, or pass an \
                 explicit break-glass authorization (doctrine 026 L6)",
                p.display()
            )));
        }
    }
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("inspecting `{}`", target.display()), e)),
        Ok(md) if !md.is_dir() => Err(refuse("it exists and is not a directory".into())),
        Ok(_) => {
            let non_empty = fs::read_dir(target)
                .map_err(|e| Error::io(format!("listing `{}`", target.display()), e))?
                .next()
                .is_some();
            if non_empty && !options.allow_non_empty {
                return Err(refuse(
                    "it is not empty; restore into a new or empty directory".into(),
                ));
            }
            if non_empty && options.break_glass.is_none() {
                return Err(refuse(
                    "restoring over existing data needs a break-glass authorization".into(),
                ));
            }
            Ok(())
        }
    }
}

/// Moves the staged tree into place.
fn promote(staged: &Path, target: &Path) -> Result<()> {
    let io_err = |what: &str, p: &Path, e| Error::io(format!("{what} `{}`", p.display()), e);
    match fs::symlink_metadata(target) {
        Err(_) => {
            fs::rename(staged, target).map_err(|e| io_err("promoting into", target, e))?;
        }
        Ok(_) => {
            if fs::remove_dir(target).is_ok() {
                fs::rename(staged, target).map_err(|e| io_err("promoting into", target, e))?;
            } else {
                merge(staged, target)?;
                let _ = fs::remove_dir_all(staged);
            }
        }
    }
    Ok(())
}

/// Moves every entry of `src` into `dst`, replacing what is there (break-glass restore).
fn merge(src: &Path, dst: &Path) -> Result<()> {
    for child in
        fs::read_dir(src).map_err(|e| Error::io(format!("listing `{}`", src.display()), e))?
    {
        let child = child.map_err(|e| Error::io(format!("listing `{}`", src.display()), e))?;
        let from = child.path();
        let to = dst.join(child.file_name());
        let from_is_dir = child.file_type().is_ok_and(|t| t.is_dir());
        let to_md = fs::symlink_metadata(&to).ok();
        if from_is_dir && to_md.as_ref().is_some_and(fs::Metadata::is_dir) {
            merge(&from, &to)?;
            continue;
        }
        if let Some(md) = to_md {
            let r = if md.is_dir() {
                fs::remove_dir_all(&to)
            } else {
                fs::remove_file(&to)
            };
            r.map_err(|e| Error::io(format!("replacing `{}`", to.display()), e))?;
        }
        fs::rename(&from, &to)
            .map_err(|e| Error::io(format!("moving into `{}`", to.display()), e))?;
    }
    Ok(())
}

struct Extract {
    root: PathBuf,
    /// Keep setuid/setgid/sticky bits (break-glass restore); otherwise drop them with a warning.
    keep_special_bits: bool,
    /// Warnings for the report (at most [`MAX_RESTORE_WARNINGS`]).
    warnings: Vec<String>,
    /// Entries whose setuid/setgid/sticky bits were dropped.
    dropped_bits: u64,
    files: HashSet<String>,
    dirs: Vec<(PathBuf, u32, i64)>,
    bytes: u64,
    /// The include selection, if any, and which of its patterns matched so far.
    selection: Option<Selection>,
    hit: Vec<bool>,
    /// Paths of the entries written (selective restore only).
    selected: HashSet<String>,
    /// Mode and mtime of directories outside the selection, for parents created on demand.
    skipped_dirs: HashMap<String, (u32, i64)>,
    /// Parent directories created for selected entries.
    made_dirs: HashSet<String>,
}

impl Extract {
    fn unsafe_entry(path: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            path: quote_name(path.as_bytes()),
            reason: reason.into(),
        }
    }

    /// The destination of `path`. Its missing parent directories are created one component
    /// at a time; a parent that exists must be a real directory, checked with
    /// `symlink_metadata` (never followed), so nothing is written through a symlink.
    fn dest(&self, path: &str) -> Result<PathBuf> {
        let mut dir = self.root.clone();
        let mut comps = path.split('/').peekable();
        while let Some(comp) = comps.next() {
            if comps.peek().is_none() {
                dir.push(comp);
                break;
            }
            dir.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(Self::unsafe_entry(
                        path,
                        "a parent directory is a symlink; nothing is written through a link",
                    ));
                }
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(Self::unsafe_entry(
                        path,
                        "a parent directory is not a directory",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir).map_err(|e| {
                        Error::io(format!("creating the parent of `{}`", shown(path)), e)
                    })?;
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("inspecting the parent of `{}`", shown(path)),
                        e,
                    ));
                }
            }
        }
        Ok(dir)
    }

    /// The permission bits to set for `entry`: setuid/setgid/sticky dropped (and a warning
    /// recorded) unless break-glass keeps them.
    fn mode_of(&mut self, entry: &ReadEntry) -> u32 {
        self.mode_for(&entry.path, entry.mode)
    }

    fn mode_for(&mut self, path: &str, mode: u32) -> u32 {
        let special = mode & 0o7000;
        if special == 0 || self.keep_special_bits {
            return mode & 0o7777;
        }
        self.dropped_bits += 1;
        if self.warnings.len() < MAX_RESTORE_WARNINGS {
            self.warnings.push(format!(
                "`{}`: setuid/setgid/sticky bits {special:#o} dropped (a break-glass restore \
                 keeps them)",
                shown(path)
            ));
        }
        mode & 0o777
    }

    /// Creates the parent directories of a selected entry that were not selected themselves,
    /// with their archived mode and mtime (applied at the end, like selected directories).
    fn make_parents(&mut self, path: &str) -> Result<()> {
        for (i, _) in path.match_indices('/') {
            let parent = &path[..i];
            if self.made_dirs.contains(parent) || self.selected.contains(parent) {
                continue;
            }
            let dest = self.dest(parent)?;
            match fs::symlink_metadata(&dest) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(Self::unsafe_entry(
                        path,
                        "a parent directory is not a directory",
                    ));
                }
                Err(_) => fs::create_dir(&dest)
                    .map_err(|e| Error::io(format!("creating `{}`", shown(parent)), e))?,
            }
            if let Some((mode, mtime)) = self.skipped_dirs.get(parent).copied() {
                let mode = self.mode_for(parent, mode);
                self.dirs.push((dest, mode, mtime));
            }
            self.made_dirs.insert(parent.to_owned());
        }
        Ok(())
    }

    fn finish_dirs(mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is not undone by its children.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
        for (dir, mode, mtime) in &self.dirs {
            // A directory the erasure register removed (issue 18) is not restored.
            if fs::symlink_metadata(dir).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
                continue;
            }
            set_mode(dir, *mode)?;
            let t = filetime::FileTime::from_unix_time(*mtime, 0);
            filetime::set_file_mtime(dir, t)
                .map_err(|e| Error::io(format!("setting the time of `{}`", dir.display()), e))?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::io(format!("setting the mode of `{}`", path.display()), e))
}

/// On Windows only the read-only attribute is restored (owner write bit clear).
#[cfg(not(unix))]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    let mut perms = fs::metadata(path)
        .map_err(|e| Error::io(format!("reading `{}`", path.display()), e))?
        .permissions();
    perms.set_readonly(mode & 0o200 == 0);
    fs::set_permissions(path, perms)
        .map_err(|e| Error::io(format!("setting the mode of `{}`", path.display()), e))
}

impl Visitor for Extract {
    fn entry(&mut self, entry: &ReadEntry, content: &mut dyn Read) -> Result<()> {
        if let Some(sel) = &self.selection {
            if !sel.mark(&entry.path, &mut self.hit) {
                // Outside the selection: the reader hashes and discards the content.
                if entry.kind == EntryKind::Dir {
                    self.skipped_dirs
                        .insert(entry.path.clone(), (entry.mode, entry.mtime));
                }
                return Ok(());
            }
            if let EntryKind::Hardlink { target } = &entry.kind
                && !self.files.contains(target)
                && !sel.matches(target)
            {
                return Err(Error::SelectionIncomplete {
                    path: shown(&entry.path),
                    target: shown(target),
                });
            }
            self.make_parents(&entry.path)?;
            self.selected.insert(entry.path.clone());
        }
        let mode = self.mode_of(entry);
        let dest = self.dest(&entry.path)?;
        match &entry.kind {
            EntryKind::Dir => {
                match fs::symlink_metadata(&dest) {
                    Ok(md) if md.is_dir() => {}
                    Ok(_) => {
                        return Err(Self::unsafe_entry(
                            &entry.path,
                            "a directory replaces an earlier entry",
                        ));
                    }
                    Err(_) => fs::create_dir(&dest)
                        .map_err(|e| Error::io(format!("creating `{}`", shown(&entry.path)), e))?,
                }
                self.dirs.push((dest, mode, entry.mtime));
            }
            EntryKind::File => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(|e| Error::io(format!("creating `{}`", shown(&entry.path)), e))?;
                let n = crate::reader::copy_blocks(content, &mut f)
                    .map_err(|e| Error::io(format!("writing `{}`", shown(&entry.path)), e))?;
                drop(f);
                self.bytes += n;
                set_mode(&dest, mode)?;
                let t = filetime::FileTime::from_unix_time(entry.mtime, 0);
                filetime::set_file_mtime(&dest, t).map_err(|e| {
                    Error::io(format!("setting the time of `{}`", shown(&entry.path)), e)
                })?;
                self.files.insert(entry.path.clone());
            }
            EntryKind::Symlink { target } => {
                // The text is kept verbatim and never followed (the reader's rule refuses any
                // entry below a symlink).
                make_symlink(target, &dest, &entry.path)?;
            }
            EntryKind::Hardlink { target } => {
                if !self.files.contains(target) {
                    return Err(Self::unsafe_entry(
                        &entry.path,
                        format!(
                            "hard link target `{}` is not an earlier regular file",
                            shown(target)
                        ),
                    ));
                }
                fs::hard_link(self.root.join(target), &dest)
                    .map_err(|e| Error::io(format!("linking `{}`", shown(&entry.path)), e))?;
                self.files.insert(entry.path.clone());
            }
        }
        Ok(())
    }
}

/// An entry path as quoted in messages (bounded, escaped).
fn shown(path: &str) -> String {
    quote_name(path.as_bytes())
}

#[cfg(unix)]
fn make_symlink(target: &str, dest: &Path, path: &str) -> Result<()> {
    std::os::unix::fs::symlink(target, dest)
        .map_err(|e| Error::io(format!("creating symlink `{}`", shown(path)), e))
}

/// On Windows, a link whose target is an existing directory at this moment becomes a
/// directory symlink, any other a file symlink (`/` turned into `\`). Creating a symlink
/// needs the `SeCreateSymbolicLinkPrivilege` (or developer mode); without it the restore fails
/// with the OS error rather than silently skipping links.
#[cfg(windows)]
fn make_symlink(target: &str, dest: &Path, path: &str) -> Result<()> {
    let native = target.replace('/', "\\");
    let is_dir = dest
        .parent()
        .is_some_and(|parent| parent.join(&native).is_dir());
    let made = if is_dir {
        std::os::windows::fs::symlink_dir(&native, dest)
    } else {
        std::os::windows::fs::symlink_file(&native, dest)
    };
    made.map_err(|e| Error::io(format!("creating symlink `{}`", shown(path)), e))
}

/// Design invariant 9, shared by restore and listing: the manifest must name `name`, and the
/// ciphertext read must have the copy's `expected` `(size, SHA-256 hex)` when known.
///
/// # Errors
/// [`Error::Substituted`] naming what disagrees.
pub(crate) fn bind_to_name(
    sink: &dyn Sink,
    name: &ArtifactName,
    manifest_artifact: &str,
    expected: Option<&(u64, String)>,
    read: Option<&crate::bridge::Pumped>,
) -> Result<()> {
    let substituted = |detail: String| Error::Substituted {
        artifact: name.to_string(),
        sink: sink.info().name.clone(),
        detail,
    };
    if manifest_artifact != name.to_string() {
        return Err(substituted(format!(
            "its manifest names `{}`",
            quote_name(manifest_artifact.as_bytes())
        )));
    }
    if let (Some((size, sha)), Some(read)) = (expected, read) {
        let got = hex::encode(read.sha256);
        if read.bytes != *size || got != *sha {
            return Err(substituted(format!(
                "{} bytes with SHA-256 {got} read, the sidecar records {size} bytes with SHA-256 {sha}",
                read.bytes
            )));
        }
    }
    Ok(())
}
