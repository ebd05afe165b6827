//! Connection configuration and credentials (doctrine 026 R6).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A database password. Its `Debug` prints `[REDACTED]`; the memory is zeroed on drop.
///
/// The password only leaves this type through a private passfile handed to a child process
/// and through the connection handshake (design invariant 7).
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password string.
    pub fn new(password: impl Into<String>) -> Self {
        Self(Zeroizing::new(password.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the password in `text` with `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(self.0.as_str(), "[REDACTED]")
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// Where the password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordSource {
    /// No password (peer, trust or certificate authentication).
    None,
    /// A key file holding only the password (doctrine 026 R6), read at every connection.
    KeyFile(PathBuf),
    /// An environment variable holding the password, read at every connection.
    Env(String),
}

impl PasswordSource {
    /// Reads the password.
    ///
    /// # Errors
    /// Those of [`read_key_file`]; [`Error::PasswordEnvMissing`] for an unset variable.
    pub fn load(&self) -> Result<Option<Password>> {
        match self {
            Self::None => Ok(None),
            Self::KeyFile(path) => read_key_file(path).map(Some),
            Self::Env(var) => std::env::var(var)
                .map(|v| Some(Password::new(v)))
                .map_err(|_| Error::PasswordEnvMissing { var: var.clone() }),
        }
    }

    /// A description for error messages, e.g. ``key file `/etc/wst/db.key` ``; never the
    /// password.
    pub fn describe(&self) -> String {
        match self {
            Self::None => "no password".to_owned(),
            Self::KeyFile(path) => format!("key file `{}`", path.display()),
            Self::Env(var) => format!("environment variable `{var}`"),
        }
    }
}

/// Reads and validates a password key file (doctrine 026 R6).
///
/// The file must hold only the password: UTF-8, no whitespace, no quotes (`'`, `"`, `` ` ``), no
/// control characters, optionally followed by one trailing newline (`\n`, or `\r\n` as written
/// by Windows editors). On Unix the file must grant no permission to group or others (mode
/// `0600` or stricter). On Windows ACLs are not inspected; restrict the file to the operator
/// account with `icacls`.
///
/// # Errors
/// [`Error::KeyFileUnreadable`], [`Error::KeyFileInsecure`] (with the mode found),
/// [`Error::KeyFileFormat`] (saying what is wrong, never the content).
pub fn read_key_file(path: &Path) -> Result<Password> {
    let unreadable = |source| Error::KeyFileUnreadable {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFileInsecure {
                path: path.to_owned(),
                mode,
            });
        }
    }
    if !meta.is_file() {
        return Err(Error::KeyFileFormat {
            path: path.to_owned(),
            problem: "not a regular file".to_owned(),
        });
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(unreadable)?);
    let format = |problem: String| Error::KeyFileFormat {
        path: path.to_owned(),
        problem,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| format("not valid UTF-8".to_owned()))?;
    let body = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if body.is_empty() {
        return Err(format("empty (no password)".to_owned()));
    }
    for (offset, c) in body.char_indices() {
        let problem = if c == '\n' || c == '\r' {
            Some("a newline other than one trailing newline")
        } else if c.is_whitespace() {
            Some("whitespace")
        } else if matches!(c, '\'' | '"' | '`') {
            Some("a quote character")
        } else if c.is_control() {
            Some("a control character")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format(format!(
                "contains {problem} at byte offset {offset}"
            )));
        }
    }
    Ok(Password::new(body))
}

/// libpq's `sslmode`, applied both to wst-pg's own session (rustls) and to `pg_dump` and
/// `pg_restore` (passed as `PGSSLMODE`).
///
/// `prefer` and `require` encrypt without verifying the certificate (libpq's behaviour without
/// a root certificate: protects against eavesdropping, not against an active attacker);
/// `verify-ca` verifies the chain against [`ConnectionConfig::sslrootcert`] (or, for wst-pg's
/// own session, the system trust store when unset); `verify-full` also verifies the host name
/// or IP address. TLS is not used over Unix sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it (libpq's default).
    #[default]
    Prefer,
    /// TLS required, certificate not verified.
    Require,
    /// TLS required, certificate chain verified.
    VerifyCa,
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(Error::Config(format!("unknown sslmode `{other}`"))),
        })
    }
}

/// Where and as whom to connect. Holds no password, only where to find it.
///
/// Build it from parts with [`ConnectionConfig::new`] and the `with_*` methods, or from a
/// `postgresql://` URL or `key=value` connection string with [`ConnectionConfig::from_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Host name, IP address, or (Unix) the directory of the server's socket (starts with `/`).
    pub host: String,
    /// TCP port (also names the Unix socket file). Default 5432.
    pub port: u16,
    /// Database user.
    pub user: String,
    /// Database name.
    pub database: String,
    /// Where the password comes from.
    pub password: PasswordSource,
    /// TLS mode.
    pub sslmode: SslMode,
    /// PEM file of the certificate authorities trusted for `verify-ca`/`verify-full`
    /// (libpq's `sslrootcert`, handed to child programs as `PGSSLROOTCERT`).
    pub sslrootcert: Option<PathBuf>,
    /// Seconds to wait for the connection to be established. Default 10.
    pub connect_timeout_secs: u64,
    /// `application_name` reported to the server. Default `wst`.
    pub application_name: String,
}

impl ConnectionConfig {
    /// A configuration for `user@host:5432/database` with no password, `sslmode=prefer`.
    pub fn new(
        host: impl Into<String>,
        user: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port: 5432,
            user: user.into(),
            database: database.into(),
            password: PasswordSource::None,
            sslmode: SslMode::default(),
            sslrootcert: None,
            connect_timeout_secs: 10,
            application_name: "wst".to_owned(),
        }
    }

    /// Parses a `postgresql://user@host:port/db?sslmode=…` URL or a libpq `key=value` string
    /// (`sslrootcert` is not read from the string: use [`ConnectionConfig::with_sslrootcert`]).
    ///
    /// # Errors
    /// [`Error::Config`] for an unparsable string, several hosts, or a password inside the
    /// string: doctrine 026 R6 forbids hard-coded credentials, so the password must come from a
    /// key file or the environment ([`ConnectionConfig::with_password`]).
    pub fn from_url(url: &str) -> Result<Self> {
        // tokio-postgres does not know verify-ca/verify-full; parse them as `require` and
        // restore the mode below.
        let verify = if url.contains("sslmode=verify-full") {
            Some(SslMode::VerifyFull)
        } else if url.contains("sslmode=verify-ca") {
            Some(SslMode::VerifyCa)
        } else {
            None
        };
        let normalized = url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let parsed = tokio_postgres::Config::from_str(&normalized).map_err(|_| {
            Error::Config("cannot parse the PostgreSQL connection URL/string".to_owned())
        })?;
        if parsed.get_password().is_some() {
            return Err(Error::Config(
                "the connection URL contains a password; doctrine 026 R6 forbids hard-coded credentials: put it in a key file or an environment variable".to_owned(),
            ));
        }
        let host = match parsed.get_hosts() {
            [] => "localhost".to_owned(),
            [tokio_postgres::config::Host::Tcp(h)] => h.clone(),
            #[cfg(unix)]
            [tokio_postgres::config::Host::Unix(p)] => p.display().to_string(),
            _ => return Err(Error::Config("exactly one host is supported".to_owned())),
        };
        let port = match parsed.get_ports() {
            [] => 5432,
            [p] => *p,
            _ => return Err(Error::Config("exactly one port is supported".to_owned())),
        };
        let user = parsed
            .get_user()
            .ok_or_else(|| Error::Config("the connection URL names no user".to_owned()))?
            .to_owned();
        let database = parsed.get_dbname().unwrap_or(&user).to_owned();
        let sslmode = match parsed.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        let sslmode = verify.unwrap_or(sslmode);
        let mut config = Self::new(host, user, database);
        config.port = port;
        config.sslmode = sslmode;
        if let Some(t) = parsed.get_connect_timeout() {
            config.connect_timeout_secs = t.as_secs().max(1);
        }
        Ok(config)
    }

    /// Sets the port.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets where the password comes from.
    #[must_use]
    pub fn with_password(mut self, source: PasswordSource) -> Self {
        self.password = source;
        self
    }

    /// Sets the TLS mode.
    #[must_use]
    pub fn with_sslmode(mut self, mode: SslMode) -> Self {
        self.sslmode = mode;
        self
    }

    /// Sets the trusted certificate authorities for `verify-ca`/`verify-full`.
    #[must_use]
    pub fn with_sslrootcert(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.sslrootcert = Some(pem_file.into());
        self
    }

    /// The same server and credentials, another database.
    #[must_use]
    pub fn with_database(&self, database: impl Into<String>) -> Self {
        let mut c = self.clone();
        c.database = database.into();
        c
    }

    /// `user@host:port/database`, for reports (no password).
    pub fn display_target(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// The libpq connection string handed to `pg_dump/pg_restore` as `--dbname` (no password).
    pub(crate) fn conninfo(&self) -> String {
        let sslmode = match self.sslmode {
            SslMode::Disable => "disable",
            _ => self.sslmode.as_str(),
        };
        format!(
            "host={} port={} user={} dbname={} sslmode={} application_name={} connect_timeout={}",
            conninfo_quote(&self.host),
            self.port,
            conninfo_quote(&self.user),
            conninfo_quote(&self.database),
            sslmode,
            conninfo_quote(&self.application_name),
            self.connect_timeout_secs
        )
    }
}

/// Quotes a libpq conninfo value: `'…'` with `\` and `'` backslash-escaped.
fn conninfo_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(content: &[u8], mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        (dir, path)
    }

    #[test]
    fn key_file_accepts_password_with_one_trailing_newline() {
        for content in [&b"s3cr3t-Pa55"[..], b"s3cr3t-Pa55\n", b"s3cr3t-Pa55\r\n"] {
            let (_d, path) = write_key(content, 0o600);
            assert_eq!(read_key_file(&path).unwrap().expose(), "s3cr3t-Pa55");
        }
    }

    #[test]
    fn key_file_rejects_bad_content_with_reason_and_without_secret() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (b"\n", "empty"),
            (b"zq zq", "whitespace"),
            (b"\"zqzq\"", "quote"),
            (b"zqzq\n\n", "newline"),
            (b"zq\tzq", "whitespace"),
            (b"zqzq\nzqzq\n", "newline"),
        ];
        for (content, expect) in cases {
            let (_d, path) = write_key(content, 0o600);
            let err = read_key_file(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::KeyFileFormat { .. }), "{msg}");
            assert!(msg.contains(expect), "{msg} should mention {expect}");
            assert!(msg.contains("db.key"), "{msg} should name the file");
            // The random temporary path may itself contain "zq": look only at the rest.
            let without_path = msg.replace(&path.display().to_string(), "");
            assert!(!without_path.contains("zq"), "{msg} leaks content");
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_group_is_refused() {
        let (_d, path) = write_key(b"secret\n", 0o640);
        let err = read_key_file(&path).unwrap_err();
        assert!(
            matches!(err, Error::KeyFileInsecure { mode: 0o640, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("0640") && msg.contains("chmod 600"), "{msg}");
        let (_d, path) = write_key(b"secret\n", 0o604);
        assert!(matches!(
            read_key_file(&path),
            Err(Error::KeyFileInsecure { mode: 0o604, .. })
        ));
    }

    #[test]
    fn missing_key_file_names_path() {
        let err = read_key_file(Path::new("/nonexistent/wst/db.key")).unwrap_err();
        assert!(matches!(err, Error::KeyFileUnreadable { .. }));
        assert!(err.to_string().contains("/nonexistent/wst/db.key"));
    }

    #[test]
    fn password_debug_and_redact() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "Password([REDACTED])");
        assert_eq!(
            p.redact("FATAL hunter2 and hunter2"),
            "FATAL [REDACTED] and [REDACTED]"
        );
    }

    #[test]
    fn url_parsing() {
        let c =
            ConnectionConfig::from_url("postgresql://wst@db.example:6543/wst_dev?sslmode=disable")
                .unwrap();
        assert_eq!(c.host, "db.example");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "wst");
        assert_eq!(c.database, "wst_dev");
        assert_eq!(c.sslmode, SslMode::Disable);
        let c = ConnectionConfig::from_url("host=h user=u dbname=d sslmode=verify-full").unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.port, 5432);
    }

    #[test]
    fn url_with_password_is_refused_without_echoing_it() {
        let err = ConnectionConfig::from_url("postgresql://wst:Tr0ub4dor@db/wst_dev").unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(!err.to_string().contains("Tr0ub4dor"));
        assert!(!format!("{err:?}").contains("Tr0ub4dor"));
    }

    #[test]
    fn conninfo_quotes_values() {
        let c = ConnectionConfig::new("h", "o'brien", "db name");
        let ci = c.conninfo();
        assert!(ci.contains("user='o\\'brien'"), "{ci}");
        assert!(ci.contains("dbname='db name'"), "{ci}");
    }
}
