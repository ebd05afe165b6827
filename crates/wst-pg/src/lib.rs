//! wst-pg: PostgreSQL logical dumps for wst — a consistent `pg_dump` as a backup
//! [`wst_core::Source`], `pg_restore --list` verification, and restore into a scratch database
//! with proof against the manifest.
//!
//! ```no_run
//! use wst_pg::{ConnectionConfig, DatabaseFacts, PasswordSource, PgDumpSource, RestoreOptions};
//!
//! # async fn demo() -> Result<(), wst_pg::Error> {
//! // Doctrine 026 R6: the password lives in a 0600 key file that holds only the password.
//! let conn = ConnectionConfig::from_url("postgresql://wst@db.internal:5432/wst_dev?sslmode=prefer")?
//!     .with_password(PasswordSource::KeyFile("/etc/wst/db.key".into()));
//! let source = PgDumpSource::new(conn.clone()); // entry `wst_dev_database.backup`
//!
//! // The pipeline calls `Source::prepare`; here we take the dump directly.
//! let dump = source.dump().await?;
//! let facts: &DatabaseFacts = dump.facts();
//! println!("{} tables, {} rows", facts.row_counts.len(), facts.total_rows());
//!
//! // Restore drill: a new scratch database on a test server, proven against the facts.
//! let server = conn.with_database("postgres");
//! dump.write_dump("/var/tmp/drill.backup".as_ref())?; // the spool is zstd-compressed
//! let proof = wst_pg::restore_dump("/var/tmp/drill.backup".as_ref(), facts, &RestoreOptions::new(server).with_jobs(2)).await?;
//! assert!(proof.passed());
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//!
//! - **Consistency.** The facts (row counts, schema fingerprint, large objects, database size)
//!   are read inside a `REPEATABLE READ` transaction whose snapshot `pg_dump` imports
//!   (`--snapshot`), so they describe exactly the dumped data, even under concurrent writes.
//! - **Format.** `pg_dump --format=custom` (doctrine 026 R2) written to a pipe and
//!   zstd-compressed as it arrives into a private temporary spool (a tar entry needs its size
//!   first); the compressed frames are spliced into the artifact unchanged, so the dump is
//!   compressed once and overlapped with `pg_dump`, as in `pg_dump | zstd`. `pg_dump`'s own
//!   compression is off by default ([`DumpCompression`]).
//! - **Credentials.** The password comes from a key file ([`read_key_file`], doctrine 026 R6)
//!   or an environment variable, reaches child programs through a private passfile (never
//!   argv, never the environment), and is redacted from every error; [`Password`]'s `Debug`
//!   prints `[REDACTED]`. Passfiles live in an owner-only directory ([`passfile_dir`]) and
//!   each run removes the ones a killed run left behind (issue 15).
//! - **Failures** are specific [`Error`] variants: authentication (F1, naming user, host and
//!   key file), unreachable server, missing database, `pg_dump` missing or older than the
//!   server, `pg_dump` failing (redacted stderr), empty dump (F3).
//! - **Restore** ([`restore_dump`]) refuses the source database's own name on its server
//!   without a [`BreakGlass`] authorization (design invariant 4), and an existing non-empty
//!   database without break-glass and [`RestoreOptions::clean`]. With break-glass it is the
//!   disaster restore into production (doctrine 026 L6, seeds/002 §4a, issue 15), proven as a
//!   drill is.
//! - **Selective restore** ([`RestoreOptions::with_tables`], [`RestoreOptions::with_schemas`]):
//!   a `pg_restore --use-list` built from the dump's table of contents restores only those
//!   tables (with their data, constraints, indexes, owned sequences, partitions) or schemas;
//!   the proof then covers only them ([`DatabaseSelection`]).
//! - **Restore drill** ([`PgDrillRestorer`]): a fresh scratch database per drill, proven
//!   against the manifest, then open to post-restore checks — [`SqlAssertion`],
//!   [`ObjectKeyCrossCheck`] (read-only, through a cursor) and `wst_core::SmokeTest` (libpq
//!   environment with a private passfile) — and dropped only after them.
//!
//! # Features
//!
//! | feature | what |
//! |---|---|
//! | `cluster` | `TestCluster`: a throwaway cluster (`initdb` in a temp dir) for tests, examples, benchmarks |
//! | `zstdmt` | compress the dump with zstd worker threads while `pg_dump` writes it ([`PgDumpSource::with_zstd`]) |
//!
//! # WAL archiving
//!
//! [`wal`] holds continuous WAL archiving for point-in-time recovery (issue 16):
//! [`wal::WalArchive`] behind `wst wal-push` (`archive_command`) and `wst wal-fetch`
//! (`restore_command`), the object format of `docs/WAL.md`, and the bounded queue of the
//! asynchronous sinks.
//!
//! TLS: rustls (ring) with libpq `sslmode` semantics for wst-pg's own session, `PGSSLMODE` /
//! `PGSSLROOTCERT` for `pg_dump`/`pg_restore`; see [`SslMode`].
#![deny(rustdoc::broken_intra_doc_links)]

mod basebackup;
mod checks;
#[cfg(feature = "cluster")]
mod cluster;
mod config;
mod connect;
mod drill;
mod erasure;
mod error;
mod facts;
mod lsn;
mod pitr;
mod restore;
mod source;
mod tenant;
mod tls;
mod toc;
mod tools;
mod verify;
pub mod wal;

pub use basebackup::{
    BASE_ROOT, BASE_SOURCE_KIND, BaseBackupFacts, BaseBackupRange, BaseBackupSource,
    PreparedBaseBackup, base_prefix, restored_pgdata,
};
pub use checks::{Expectation, ObjectKeyCrossCheck, ObjectLocation, ObjectLookup, SqlAssertion};
#[cfg(feature = "cluster")]
pub use cluster::{DEMO_SQL, TestCluster};
pub use config::{ConnectionConfig, Password, PasswordSource, SslMode, read_key_file};
pub use drill::PgDrillRestorer;
pub use erasure::erase_database;
pub use error::{Error, Result};
pub use facts::{DatabaseFacts, table_key};
pub use lsn::{Lsn, segment_file_name, segment_number};
pub use pitr::{
    RecoveredServer, RecoveryConfig, RecoveryOutcome, RecoveryTarget, TargetAction,
    archive_timeout_seconds, choose_base_backup, configure_recovery, probe_tables, run_recovery,
    wal_fetch_command,
};
pub use restore::{DatabaseSelection, RestoreOptions, RestoreProof, compare, restore_dump};
pub use source::{DEFAULT_ENTRY, DumpCompression, PgDumpSource, PreparedDump, SOURCE_KIND};
pub use tenant::{TenantRestore, TenantTable, copy_tenant, keep_tenant};
pub use tools::{PgTools, ToolVersion, passfile_dir};
pub use verify::PgRestoreListCheck;
/// The break-glass authorization record (doctrine 026 L6), shared with wst-core's restore.
pub use wst_core::BreakGlass;
