//! `[[job]]` (issue 18, "Services"): which job's repository a command works on.
//!
//! `--job NAME` selects one job for every command. Without it, a configuration with jobs runs
//! `init`, `backup`, `verify`, `prune`, `replicate`, `status`, `report`, `audit verify` and
//! `config check` for every job in turn (each with its own `== job NAME ==` section, or its
//! own JSON document with `--json`; the exit status is the worst of theirs), and refuses the
//! commands that need one repository (`restore`, `ls`, `drill`, `wal-*`, `base-backup`,
//! `erasure`, `keygen` without `--out`) with a usage error naming the jobs. A configuration
//! without `[[job]]` is one implicit job, as before.

use wst::config::Config;

use crate::config::config_error;
use crate::{Command, Out, usage};

impl Command {
    /// Whether the command runs for every job when no `--job` is given.
    pub(crate) fn for_every_job(&self) -> bool {
        matches!(
            self,
            Command::Init
                | Command::Backup { .. }
                | Command::Verify { .. }
                | Command::Prune { .. }
                | Command::Replicate
                | Command::Status
                | Command::Report { .. }
                | Command::Audit { .. }
                | Command::Config { .. }
        )
    }

    /// The command's name in messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Keygen { .. } => "keygen",
            Command::Restore { .. } => "restore",
            Command::Ls { .. } => "ls",
            Command::Drill { .. } => "drill",
            Command::WalPush { .. } => "wal-push",
            Command::WalFetch { .. } => "wal-fetch",
            Command::WalDrain => "wal-drain",
            Command::BaseBackup => "base-backup",
            Command::Erasure { .. } => "erasure",
            Command::Daemon => "daemon",
            Command::Schedule { .. } => "schedule",
            _ => "this command",
        }
    }
}

/// The configurations `command` runs on: the `--job` one, every job's (for
/// [`Command::for_every_job`]), or the configuration itself when it has no `[[job]]`.
///
/// # Errors
/// Usage (exit 2): an unknown `--job` (the message lists the jobs), or several jobs and no
/// `--job` for a command that needs one repository.
pub(crate) fn select(job: Option<&str>, command: &Command, config: Config) -> Out<Vec<Config>> {
    if let Some(name) = job {
        return Ok(vec![config.into_job(name).map_err(|e| config_error(&e))?]);
    }
    if config.jobs.is_empty() || command.for_every_job() {
        return Ok(config.into_jobs());
    }
    Err(usage(format!(
        "several jobs: pass --job NAME (one of {}); `{}` works on one job's repository",
        config.job_names().join(", "),
        command.name()
    )))
}

/// The worse of two exit codes: failure and bad usage over lock contention over degraded
/// over success (`2 > 1 > 4 > 3 > 0`; anything else counts as a failure).
pub(crate) fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        3 => 1,
        4 => 2,
        1 => 3,
        2 => 5,
        _ => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::worse;

    #[test]
    fn the_worst_exit_code_wins() {
        assert_eq!(worse(0, 3), 3);
        assert_eq!(worse(3, 0), 3);
        assert_eq!(worse(3, 1), 1);
        assert_eq!(worse(1, 4), 1);
        assert_eq!(worse(4, 3), 4);
        assert_eq!(worse(1, 2), 2);
        assert_eq!(worse(0, 0), 0);
    }
}
