//! The error type of wst-pg.

use std::path::PathBuf;

/// Everything that can go wrong in wst-pg.
///
/// Every message names what to check (the user, host, key file, tool, database) and never
/// contains the database password (design invariant 7): text that comes from a child process or
/// the server passes through redaction before it is stored here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The password key file could not be read (missing, permission denied).
    #[error("cannot read password key file `{path}`: {source} (doctrine 026 R6)")]
    KeyFileUnreadable {
        /// The key file path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The password key file is accessible by group or others (doctrine 026 R6: "file
    /// permissions restricted to operator account").
    #[error(
        "password key file `{path}` has mode {mode:04o}, which gives group/others access: run `chmod 600 {path}` (doctrine 026 R6)"
    )]
    KeyFileInsecure {
        /// The key file path.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// The password key file does not hold exactly one password (doctrine 026 R6: "contains
    /// only DB password (no quotes/whitespace)").
    #[error(
        "password key file `{path}` is malformed: {problem} (doctrine 026 R6: the file holds only the password, no quotes or whitespace, at most one trailing newline)"
    )]
    KeyFileFormat {
        /// The key file path.
        path: PathBuf,
        /// What is wrong (never the password itself).
        problem: String,
    },
    /// The environment variable configured to hold the password is not set or not UTF-8.
    #[error("password environment variable `{var}` is not set (or not valid UTF-8)")]
    PasswordEnvMissing {
        /// The variable name.
        var: String,
    },
    /// Invalid connection or restore configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server rejected the credentials (doctrine 026 F1: reset the password, update the key
    /// file, re-test connectivity).
    #[error(
        "authentication failed for user `{user}` at {host}:{port} using {credential}: {detail} (doctrine F1: reset the password, update the key file, re-test with psql)"
    )]
    AuthenticationFailed {
        /// The database user.
        user: String,
        /// The server host (name, address or socket directory).
        host: String,
        /// The server port.
        port: u16,
        /// Where the password came from, e.g. ``key file `/etc/wst/db.key` ``.
        credential: String,
        /// The server's message.
        detail: String,
    },
    /// The server could not be reached (refused, timed out, name not resolved). Retrying later
    /// may succeed.
    #[error("PostgreSQL server {host}:{port} is unreachable: {detail}")]
    ServerUnreachable {
        /// The server host.
        host: String,
        /// The server port.
        port: u16,
        /// The network error.
        detail: String,
    },
    /// The configured database does not exist on the server.
    #[error("database `{database}` does not exist on {host}:{port}")]
    DatabaseMissing {
        /// The database name.
        database: String,
        /// The server host.
        host: String,
        /// The server port.
        port: u16,
    },
    /// The TLS handshake failed: the server does not offer TLS although `sslmode` requires it,
    /// or its certificate failed verification (`verify-ca`, `verify-full`).
    #[error(
        "TLS with {host}:{port} failed (sslmode={mode}): {detail}; check the server's ssl setting and certificate, and sslrootcert"
    )]
    TlsFailed {
        /// The server host.
        host: String,
        /// The server port.
        port: u16,
        /// The configured `sslmode`.
        mode: String,
        /// The TLS error.
        detail: String,
    },
    /// A PostgreSQL client program was not found.
    #[error(
        "`{tool}` not found (searched {searched}): install the PostgreSQL client programs (Debian: `apt-get install postgresql-client`, or `postgresql` for a server)"
    )]
    ToolMissing {
        /// The program, e.g. `pg_dump`.
        tool: String,
        /// Where it was looked for.
        searched: String,
    },
    /// A PostgreSQL client program is older than the server (or archive) it must handle.
    #[error(
        "`{tool}` is version {tool_version} but the server is {server_version}: {tool} must be at least the server's major version; install a newer client or point the tools at its bin directory"
    )]
    ToolTooOld {
        /// The program.
        tool: String,
        /// The program's version.
        tool_version: String,
        /// The server's (or the dump's) version.
        server_version: String,
    },
    /// A PostgreSQL client program exited unsuccessfully.
    #[error("`{tool}` failed ({status}): {stderr}")]
    ToolFailed {
        /// The program.
        tool: String,
        /// Its exit status.
        status: String,
        /// Its standard error, redacted and truncated.
        stderr: String,
    },
    /// `pg_dump` succeeded but wrote nothing (doctrine 026 F3: a backup without its database is
    /// a failed backup).
    #[error(
        "pg_dump of database `{database}` produced an empty dump (doctrine F3): nothing is published"
    )]
    EmptyDump {
        /// The database name.
        database: String,
    },
    /// A query failed (collecting facts, creating the scratch database).
    #[error("{context}: {detail}")]
    Query {
        /// What was being done.
        context: String,
        /// The server's message.
        detail: String,
    },
    /// A restore target was refused (design invariant 4).
    #[error("restore target database `{database}` refused: {reason}")]
    RestoreTargetRefused {
        /// The requested database.
        database: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A selective restore named tables or schemas the dump does not contain: refused rather
    /// than an empty restore that looks like success. Nothing was restored.
    #[error(
        "not in the dump: {}; nothing was restored (see `pg_restore --list` or the manifest's row counts)",
        .missing.join(", ")
    )]
    SelectionUnmatched {
        /// Each missing table key (`schema.table`) or `schema NAME`.
        missing: Vec<String>,
    },
    /// A physical base backup could not be taken or read (issue 16): `pg_basebackup`'s
    /// output was not what wst accepts, or the server is not set up for it.
    #[error("base backup: {reason}")]
    BaseBackup {
        /// What went wrong and what to do.
        reason: String,
    },
    /// A point-in-time recovery could not be planned or did not reach its target (issue 16).
    #[error("point-in-time recovery: {reason}")]
    Recovery {
        /// What went wrong and what to do.
        reason: String,
    },
    /// The archive refused or failed an entry while a source of this crate wrote it (a sink
    /// failed, the run was stopped): the pipeline's own error, passed through unchanged.
    #[error(transparent)]
    Core(wst_core::Error),
    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The throwaway cluster could not be created, started or loaded.
    #[cfg(feature = "cluster")]
    #[error("test cluster: {0}")]
    Cluster(String),
}

impl Error {
    /// Whether retrying later may succeed (the server was unreachable). A backup daemon retries
    /// these and alerts on the others.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ServerUnreachable { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Converts into a [`wst_core::Error::Source`] for the source named `name`.
    pub fn into_core(self, name: impl Into<String>) -> wst_core::Error {
        match self {
            Self::Core(e) => e,
            other => wst_core::Error::Source {
                name: name.into(),
                source: Box::new(other),
            },
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
