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

/// A private libpq password file (`*:*:*:*:password`, mode 0600 on Unix) that exists only while
/// a child process runs: the way the password reaches `pg_dump/pg_restore` without argv or the
/// environment (design invariant 7). Deleted on drop.
#[derive(Debug)]
pub(crate) struct PassFile {
    file: tempfile::NamedTempFile,
}

impl PassFile {
    /// Writes a passfile for `password` in the system temporary directory.
    pub(crate) fn create(password: &Password) -> Result<Self> {
        let mut file = tempfile::Builder::new()
            .prefix(".wst-pgpass-")
            .tempfile()
            .map_err(|e| Error::io("creating a private passfile", e))?;
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
        let pf = PassFile::create(&Password::new("a:b\\c")).unwrap();
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
