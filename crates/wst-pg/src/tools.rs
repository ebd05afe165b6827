//! Locating and running the PostgreSQL client programs (`pg_dump`, `pg_restore`, `psql`, …).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{ConnectionConfig, Password};
use crate::error::{Error, Result};

/// Longest stderr kept in an error, in bytes.
const STDERR_LIMIT: usize = 4000;

/// Where the PostgreSQL programs live.
///
/// [`PgTools::discover`] searches, in order: the `WST_PG_BINDIR` environment variable,
/// `pg_config --bindir`, the newest `/usr/lib/postgresql/<major>/bin` (Debian/Ubuntu layout)
/// or `C:\Program Files\PostgreSQL\<major>\bin` (Windows installer layout), then `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTools {
    bindir: Option<PathBuf>,
}

/// A PostgreSQL program's version, e.g. `15.18`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ToolVersion {
    /// Major version (15 for 15.18; 9 for 9.6).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl std::fmt::Display for ToolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl ToolVersion {
    /// Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` or `16beta1`-style output.
    pub fn parse(output: &str) -> Option<Self> {
        let word = output
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
        let digits: Vec<u32> = word
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        Some(Self {
            major: *digits.first()?,
            minor: digits.get(1).copied().unwrap_or(0),
        })
    }

    /// From a server's `server_version_num` (e.g. 150018 → 15.18, 90624 → 9.6).
    pub fn from_server_num(num: i32) -> Self {
        let num = num.max(0) as u32;
        if num >= 100_000 {
            Self {
                major: num / 10_000,
                minor: num % 10_000,
            }
        } else {
            Self {
                major: num / 10_000,
                minor: (num / 100) % 100,
            }
        }
    }
}

impl PgTools {
    /// Tools in `bindir`.
    pub fn in_dir(bindir: impl Into<PathBuf>) -> Self {
        Self {
            bindir: Some(bindir.into()),
        }
    }

    /// Finds the PostgreSQL bin directory (see the type's documentation for the order).
    /// Falls back to `PATH` lookup when no directory is found.
    pub fn discover() -> Self {
        if let Some(dir) = std::env::var_os("WST_PG_BINDIR") {
            return Self::in_dir(dir);
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if exe(&dir, "pg_dump").is_file() {
                return Self::in_dir(dir);
            }
        }
        let roots: &[&str] = if cfg!(windows) {
            &[r"C:\Program Files\PostgreSQL"]
        } else {
            &["/usr/lib/postgresql"]
        };
        let mut best: Option<(u32, PathBuf)> = None;
        for root in roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                let Some(major) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.split('.').next()?.parse::<u32>().ok())
                else {
                    continue;
                };
                let bin = entry.path().join("bin");
                if exe(&bin, "pg_dump").is_file() && best.as_ref().is_none_or(|(m, _)| major > *m) {
                    best = Some((major, bin));
                }
            }
        }
        Self {
            bindir: best.map(|(_, dir)| dir),
        }
    }

    /// The bin directory, if one was found or configured (`None`: programs come from `PATH`).
    pub fn bindir(&self) -> Option<&Path> {
        self.bindir.as_deref()
    }

    /// The path (or bare name for `PATH` lookup) of program `name`.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.bindir {
            Some(dir) => exe(dir, name),
            None => PathBuf::from(name),
        }
    }

    fn searched(&self) -> String {
        match &self.bindir {
            Some(dir) => format!("`{}`", dir.display()),
            None => "PATH, pg_config --bindir, /usr/lib/postgresql/*/bin".to_owned(),
        }
    }

    /// Runs `<name> --version` and parses it.
    ///
    /// # Errors
    /// [`Error::ToolMissing`] when the program cannot be run or prints no version.
    pub fn version(&self, name: &str) -> Result<ToolVersion> {
        let missing = || Error::ToolMissing {
            tool: name.to_owned(),
            searched: self.searched(),
        };
        let out = Command::new(self.program(name))
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|_| missing())?;
        if !out.status.success() {
            return Err(missing());
        }
        ToolVersion::parse(&String::from_utf8_lossy(&out.stdout)).ok_or_else(missing)
    }

    /// A command for program `name` prepared to reach `conn`: a scrubbed libpq environment,
    /// `PGPASSFILE` pointing at `passfile` (if any), `PGSSLMODE`, no stdin.
    pub(crate) fn command(
        &self,
        name: &str,
        conn: &ConnectionConfig,
        passfile: Option<&PassFile>,
    ) -> Command {
        let mut cmd = Command::new(self.program(name));
        for var in [
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PGSSLMODE", conn.sslmode.as_str())
            .env("PGCONNECT_TIMEOUT", conn.connect_timeout_secs.to_string())
            .stdin(std::process::Stdio::null());
        if let Some(root) = &conn.sslrootcert {
            cmd.env("PGSSLROOTCERT", root);
        }
        if let Some(pf) = passfile {
            cmd.env("PGPASSFILE", pf.path());
        }
        cmd
    }
}

fn exe(dir: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        dir.join(format!("{name}.exe"))
    } else {
        dir.join(name)
    }
}

/// Passfiles older than this, in the private directory, whose owner holds no lock on them are
/// stale (their run was killed) and removed by the next run (issue 15). The age keeps a
/// cleaner from taking a file in the instant between its creation and its owner's lock.
pub(crate) const STALE_PASSFILE_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The name prefix of passfiles in [`passfile_dir`].
const PASSFILE_PREFIX: &str = "pgpass-";

/// The private per-user directory where wst-pg keeps libpq password files while `pg_dump`,
/// `pg_restore` and `psql` run (issue 15: no password outlives a killed run).
///
/// `$XDG_RUNTIME_DIR/wst-pgpass` when that variable names an absolute directory (a per-user
/// tmpfs, emptied at logout and reboot); otherwise, on Unix,
/// `<temp dir>/wst-pgpass-<uid>`; on Windows `<temp dir>\wst-pgpass` (the temp directory is
/// per user there). The directory is created mode 0700 and refused when another user owns it
/// or it is a symlink.
///
/// Every passfile is locked (shared) by the process that wrote it for as long as it exists,
/// and deleted when its child finishes. A `kill -9` leaves the file behind but releases the
/// lock; each later run removes, before it writes its own, every passfile in the directory
/// that is older than a minute and unlocked.
pub fn passfile_dir() -> PathBuf {
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && run.is_absolute()
        && run.is_dir()
    {
        return run.join("wst-pgpass");
    }
    #[cfg(unix)]
    {
        std::env::temp_dir().join(format!("wst-pgpass-{}", rustix::process::getuid().as_raw()))
    }
    #[cfg(not(unix))]
    {
        std::env::temp_dir().join("wst-pgpass")
    }
}

/// Creates `dir` owner-only, or checks that the existing one is a directory (not a symlink)
/// owned by this user, tightening its mode to 0700 if needed.
fn private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    match b.create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::io(
                format!(
                    "creating the private passfile directory `{}`",
                    dir.display()
                ),
                e,
            ));
        }
    }
    let refuse = |why: String| {
        Error::io(
            format!(
                "the private passfile directory `{}` {why}; remove it (wst recreates it \
                 owner-only)",
                dir.display()
            ),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        )
    };
    let md = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io(format!("inspecting `{}`", dir.display()), e))?;
    if !md.is_dir() {
        return Err(refuse(
            "is not a directory (a symlink or a file)".to_owned(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let me = rustix::process::getuid().as_raw();
        if md.uid() != me {
            return Err(refuse(format!(
                "is owned by uid {}, not by this user (uid {me})",
                md.uid()
            )));
        }
        if md.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("making `{}` owner-only", dir.display()), e))?;
        }
    }
    Ok(())
}

/// Removes the stale passfiles in `dir`: older than [`STALE_PASSFILE_AGE`] and not locked by
/// a live process (its owner was killed). Returns how many were removed; failures to remove
/// one are logged and skipped (the next run tries again).
pub(crate) fn remove_stale_passfiles(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_passfile = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PASSFILE_PREFIX));
        let old = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_PASSFILE_AGE);
        if !is_passfile || !old {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        // A live owner holds a shared lock for as long as the file exists.
        if file.try_lock().is_err() {
            continue;
        }
        drop(file);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                removed += 1;
                tracing::warn!(
                    passfile = %path.display(),
                    "removed a stale passfile left by a killed run"
                );
            }
            Err(e) => {
                tracing::warn!(
                    passfile = %path.display(),
                    error = %e,
                    "cannot remove a stale passfile"
                );
            }
        }
    }
    removed
}

/// A private libpq password file (`*:*:*:*:password`, mode 0600 on Unix) that exists only while
/// a child process runs: the way the password reaches `pg_dump/pg_restore` without argv or the
/// environment (design invariant 7). It lives in [`passfile_dir`] (owner-only), is locked
/// (shared) by this process while it exists, and is deleted on drop; a run killed before the
/// drop leaves it for the next run to remove (issue 15).
#[derive(Debug)]
pub(crate) struct PassFile {
    file: tempfile::NamedTempFile,
}

impl PassFile {
    /// Writes a passfile for `password` in the private passfile directory, after removing the
    /// stale passfiles of killed runs there.
    pub(crate) fn create(password: &Password) -> Result<Self> {
        Self::create_in(&passfile_dir(), password)
    }

    /// As [`PassFile::create`], in `dir`.
    pub(crate) fn create_in(dir: &Path, password: &Password) -> Result<Self> {
        private_dir(dir)?;
        remove_stale_passfiles(dir);
        let mut file = tempfile::Builder::new()
            .prefix(PASSFILE_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating a private passfile", e))?;
        file.as_file()
            .lock_shared()
            .map_err(|e| Error::io("locking a private passfile", e))?;
        let mut line = String::from("*:*:*:*:");
        for c in password.expose().chars() {
            if c == ':' || c == '\\' {
                line.push('\\');
            }
            line.push(c);
        }
        line.push('\n');
        let line = zeroize::Zeroizing::new(line);
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| Error::io("writing a private passfile", e))?;
        Ok(Self { file })
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Creates a passfile when there is a password.
pub(crate) fn passfile_for(password: Option<&Password>) -> Result<Option<PassFile>> {
    password.map(PassFile::create).transpose()
}

/// Redacts the password and truncates a child's stderr for an error message.
pub(crate) fn clean_stderr(stderr: &[u8], password: Option<&Password>) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = match password {
        Some(p) => p.redact(&text),
        None => text.into_owned(),
    };
    let text = text.trim();
    if text.len() > STDERR_LIMIT {
        let mut cut = STDERR_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}… (truncated)", &text[..cut])
    } else if text.is_empty() {
        "(no error output)".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            ToolVersion::parse("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(ToolVersion {
                major: 15,
                minor: 18
            })
        );
        assert_eq!(
            ToolVersion::parse("pg_restore (PostgreSQL) 17beta1"),
            Some(ToolVersion {
                major: 17,
                minor: 1
            })
        );
        assert_eq!(ToolVersion::parse("nothing"), None);
        assert_eq!(
            ToolVersion::from_server_num(150_018),
            ToolVersion {
                major: 15,
                minor: 18
            }
        );
        assert_eq!(
            ToolVersion::from_server_num(90_624),
            ToolVersion { major: 9, minor: 6 }
        );
    }

    #[test]
    fn passfile_escapes_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("pgpass");
        let pf = PassFile::create_in(&private, &Password::new("a:b\\c")).unwrap();
        assert!(pf.path().starts_with(&private));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "the directory is owner-only");
        }
        let text = std::fs::read_to_string(pf.path()).unwrap();
        assert_eq!(text, "*:*:*:*:a\\:b\\\\c\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(pf.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let path = pf.path().to_owned();
        drop(pf);
        assert!(!path.exists());
    }

    /// Issue 15: a passfile left by a killed run (old, unlocked) is removed by the next run;
    /// a live run's passfile (locked) and a fresh one are left alone.
    #[test]
    fn stale_passfiles_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("pgpass");
        let live = PassFile::create_in(&private, &Password::new("live")).unwrap();
        let stale = private.join("pgpass-killedrun");
        let fresh = private.join("pgpass-justwritten");
        let other = private.join("notes.txt");
        for f in [&stale, &fresh, &other] {
            std::fs::write(f, "*:*:*:*:hunter2\n").unwrap();
        }
        let hour_ago = filetime::FileTime::from_system_time(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
        );
        for f in [&stale, &other, &live.path().to_owned()] {
            filetime::set_file_mtime(f, hour_ago).unwrap();
        }
        // "Just written" on this process's clock (the clock-shift check moves it, not the
        // file system's).
        filetime::set_file_mtime(
            &fresh,
            filetime::FileTime::from_system_time(std::time::SystemTime::now()),
        )
        .unwrap();
        let next = PassFile::create_in(&private, &Password::new("next")).unwrap();
        assert!(!stale.exists(), "the killed run's passfile is gone");
        assert!(
            live.path().exists(),
            "a live run's passfile is kept (locked)"
        );
        assert!(fresh.exists(), "a passfile younger than a minute is kept");
        assert!(other.exists(), "only passfiles are touched");
        drop((live, next));
    }

    /// A directory of another user, or a symlink in its place, is refused.
    #[cfg(unix)]
    #[test]
    fn a_foreign_or_linked_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        let link = dir.path().join("pgpass");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = PassFile::create_in(&link, &Password::new("x")).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        // A group-readable directory of ours is tightened to 0700.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pf = PassFile::create_in(&target, &Password::new("x")).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(pf);
    }

    #[test]
    fn stderr_is_redacted_and_truncated() {
        let p = Password::new("s3cret");
        assert_eq!(
            clean_stderr(b"error: s3cret bad\n", Some(&p)),
            "error: [REDACTED] bad"
        );
        let long = vec![b'x'; 10_000];
        assert!(clean_stderr(&long, None).ends_with("(truncated)"));
    }
}
