//! `[[job]]`: several backup jobs (services) in one configuration (issue 18, "Services";
//! seeds/003 "No shared database backups across services": backup-per-domain).
//!
//! A `[[job]]` table has a `name` and any of the keys of [`JOB_KEYS`]; each key it sets
//! replaces the top-level key of the same name (whole sections, no deep merge), and every
//! other top-level key (`actor`, `[alerts]`, `[[schedule]]`, …) is shared. Each job is a
//! repository of its own: its own key, sinks, prefix, markers and audit log, so no job can
//! read another job's artifacts. A file without `[[job]]` is one implicit job, exactly as
//! before.
//!
//! The audit log is keyed under the repository key (issue 14), so two repositories cannot
//! share one: a job without its own `audit_log` gets the top-level one in a directory named
//! after the job (`/var/lib/wst/audit.jsonl` → `/var/lib/wst/billing/audit.jsonl`), and the
//! state kept beside the log (prune state, signal state `wst-signals.json`, the WAL queue
//! `wal-queue`) is the job's own.
//!
//! Checked across jobs ([`Config::problems`]): names unique and made of ASCII letters, digits,
//! `-` and `_`; no two jobs with one sink location (a sink holds one repository marker,
//! `wst-repository.json`, so two jobs on one URL — whatever their prefixes — would make
//! one job's `init` refuse the other's marker, and one job's listing see the other's
//! objects); no sink URL inside another job's; no key file (nor old key, nor recovery
//! passphrase file) used by two jobs (refused: one key would open both jobs' artifacts); no
//! two audit logs in one directory (the state beside them would be shared).

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, Problem};

/// The keys a `[[job]]` may set besides `name`: its sources (`files`, `database`, `bucket`),
/// key (`encryption`), `prefix`, `sinks`, `retention`, and the rules and state it may hold
/// apart (`verify`, `drill`, `wal`, `erasure`, `tenant`, `compliance`, `zstd_level`,
/// `audit_log`, `metrics`, `project`).
pub const JOB_KEYS: [&str; 17] = [
    "files",
    "database",
    "bucket",
    "encryption",
    "prefix",
    "sinks",
    "retention",
    "verify",
    "drill",
    "wal",
    "erasure",
    "tenant",
    "compliance",
    "zstd_level",
    "audit_log",
    "metrics",
    "project",
];

fn parse_error(path: Option<&Path>, message: String) -> ConfigError {
    ConfigError::Parse {
        path: path.map(Path::to_owned),
        message,
    }
}

/// The default audit log of job `job`: the top-level `audit_log`'s file in a directory named
/// after the job beside it (`/var/lib/wst/audit.jsonl` → `/var/lib/wst/billing/audit.jsonl`),
/// so the state files kept beside the log are the job's own.
pub fn job_audit_log(shared: &Path, job: &str) -> PathBuf {
    let file = shared.file_name().unwrap_or(shared.as_os_str());
    shared.with_file_name(job).join(file)
}

/// One job's merged table: the top-level table without `job`, each key the job sets
/// replacing the top-level one, and the derived `audit_log` when the job sets none.
fn merged(
    top: &toml::Table,
    job: &toml::Table,
    index: usize,
    path: Option<&Path>,
) -> Result<(String, toml::Table, Vec<String>), ConfigError> {
    let name = match job.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(parse_error(
                path,
                format!("job[{index}].name must be a string"),
            ));
        }
        None => {
            return Err(parse_error(
                path,
                format!("job[{index}] has no `name`: every [[job]] needs one"),
            ));
        }
    };
    let mut out = top.clone();
    let mut keys = Vec::new();
    for (k, v) in job {
        if k == "name" {
            continue;
        }
        if !JOB_KEYS.contains(&k.as_str()) {
            return Err(parse_error(
                path,
                format!(
                    "job[{index}] (`{name}`): unknown or shared key `{k}`; a [[job]] may set \
                     name, {}",
                    JOB_KEYS.join(", ")
                ),
            ));
        }
        out.insert(k.clone(), v.clone());
        keys.push(k.clone());
    }
    if !job.contains_key("audit_log")
        && let Some(toml::Value::String(shared)) = top.get("audit_log")
    {
        let derived = job_audit_log(Path::new(shared), &name);
        out.insert(
            "audit_log".into(),
            toml::Value::String(derived.to_string_lossy().into_owned()),
        );
    }
    Ok((name, out, keys))
}

/// Parses a configuration whose text has `[[job]]` tables (`table` is the whole document).
/// The result is the first job's configuration with [`Config::jobs`] holding every job's
/// (the first included), each with its [`Config::job_name`].
pub(super) fn parse(mut table: toml::Table, path: Option<&Path>) -> Result<Config, ConfigError> {
    let Some(toml::Value::Array(jobs)) = table.remove("job") else {
        return Err(parse_error(
            path,
            "`job` must be [[job]] tables (an array of tables)".into(),
        ));
    };
    if jobs.is_empty() {
        return Err(parse_error(
            path,
            "`job` is empty: add [[job]] tables".into(),
        ));
    }
    let mut configs = Vec::new();
    let mut first = None;
    for (i, job) in jobs.iter().enumerate() {
        let toml::Value::Table(job) = job else {
            return Err(parse_error(path, format!("job[{i}] must be a table")));
        };
        let (name, merged, keys) = merged(&table, job, i, path)?;
        let one = |t: toml::Table| -> Result<Config, ConfigError> {
            let mut c: Config = toml::Value::Table(t)
                .try_into()
                .map_err(|e| parse_error(path, format!("job[{i}] (`{name}`): {e}")))?;
            c.job_name = Some(name.clone());
            c.job_keys.clone_from(&keys);
            Ok(c)
        };
        if first.is_none() {
            first = Some(one(merged.clone())?);
        }
        configs.push(one(merged)?);
    }
    let mut config = first.expect("at least one job");
    config.jobs = configs;
    let problems = config.problems();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.map(Path::to_owned),
            problems,
        })
    }
}

/// Every problem of a configuration with `[[job]]`: each job's own (a key the job sets is
/// named `job[i].KEY`, a shared one once by its top-level name) and the checks across jobs.
pub(super) fn problems(config: &Config) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    for (i, job) in config.jobs.iter().enumerate() {
        for mut p in job.problems() {
            let section = p.key.split(['.', '[']).next().unwrap_or_default();
            let section = if section == "bucket" || p.key.starts_with("buckets") {
                "bucket"
            } else {
                section
            };
            if job.job_keys.iter().any(|k| k == section) {
                p.key = format!("job[{i}].{}", p.key);
            }
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    across(config, &mut out);
    out
}

/// A sink URL as a location: `file://` and trailing `/` removed.
fn location(url: &str) -> String {
    let u = url.strip_prefix("file://").unwrap_or(url);
    u.trim_end_matches('/').to_owned()
}

/// The checks across jobs.
fn across(config: &Config, p: &mut Vec<Problem>) {
    let jobs = &config.jobs;
    let name_of = |c: &Config| c.job_name.clone().unwrap_or_default();
    for (i, a) in jobs.iter().enumerate() {
        let name = name_of(a);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            p.push(Problem::new(
                format!("job[{i}].name"),
                format!("`{name}`: use ASCII letters, digits, `-` and `_` only"),
            ));
        }
        for (j, b) in jobs.iter().enumerate().skip(i + 1) {
            let other = name_of(b);
            if name == other {
                p.push(Problem::new(
                    format!("job[{j}].name"),
                    format!("`{name}` is also job[{i}]'s name: job names are unique"),
                ));
            }
            for (si, sa) in a.sinks.iter().enumerate() {
                for (sj, sb) in b.sinks.iter().enumerate() {
                    let (la, lb) = (location(&sa.url), location(&sb.url));
                    let nested = |x: &str, y: &str| {
                        y.strip_prefix(x).is_some_and(|rest| rest.starts_with('/'))
                    };
                    if la == lb {
                        p.push(Problem::new(
                            format!("job[{j}].sinks[{sj}].url"),
                            format!(
                                "sink `{}` has the location of job `{name}`'s sink `{}` \
                                 (sinks[{si}]): two jobs must not share a sink location, \
                                 whatever their prefixes (one repository marker per location; \
                                 one job's listing and prune would see the other's artifacts): \
                                 give each job its own directory or bucket path, e.g. ending in \
                                 `/{other}`",
                                sb.name, sa.name
                            ),
                        ));
                    } else if nested(&la, &lb) || nested(&lb, &la) {
                        p.push(Problem::new(
                            format!("job[{j}].sinks[{sj}].url"),
                            format!(
                                "sink `{}` and job `{name}`'s sink `{}` are one inside the \
                                 other: give each job a location of its own, side by side",
                                sb.name, sa.name
                            ),
                        ));
                    }
                }
            }
            let keys = |c: &Config| -> Vec<PathBuf> {
                let e = &c.encryption;
                std::iter::once(e.key_file.clone())
                    .chain(e.old_key_files.iter().cloned())
                    .chain(e.recovery_passphrase_file.iter().cloned())
                    .collect()
            };
            let (ka, kb) = (keys(a), keys(b));
            for k in kb.iter().filter(|k| ka.contains(k)) {
                p.push(Problem::new(
                    format!("job[{j}].encryption"),
                    format!(
                        "`{}` is also a key of job `{name}`: each job has keys of its own, or \
                         one job's key opens the other's artifacts (issue 18: no job can read \
                         another job's artifacts); create one with `wst --job {other} keygen`",
                        k.display()
                    ),
                ));
            }
            // The state a job keeps beside its audit log unless told otherwise: set in the
            // configuration once for every job, it would be shared.
            let state = |c: &Config| -> [(&'static str, Option<PathBuf>); 4] {
                [
                    (
                        "wal.queue_dir",
                        c.wal.as_ref().and_then(|w| w.queue_dir.clone()),
                    ),
                    (
                        "wal.spool_dir",
                        c.wal.as_ref().and_then(|w| w.spool_dir.clone()),
                    ),
                    (
                        "metrics.state_file",
                        c.metrics.as_ref().and_then(|m| m.state_file.clone()),
                    ),
                    (
                        "metrics.textfile",
                        c.metrics.as_ref().and_then(|m| m.textfile.clone()),
                    ),
                ]
            };
            for ((key, pa), (_, pb)) in state(a).into_iter().zip(state(b)) {
                if let (Some(pa), Some(pb)) = (pa, pb)
                    && pa == pb
                {
                    p.push(Problem::new(
                        format!("job[{j}].{key}"),
                        format!(
                            "`{}` is also job `{name}`'s {key}: each job's WAL queue, spool, \
                             signal state and metrics are its own (set it in each [[job]], or \
                             leave it out to get a place beside the job's audit log)",
                            pb.display()
                        ),
                    ));
                }
            }
            if a.audit_log.parent() == b.audit_log.parent() {
                p.push(Problem::new(
                    format!("job[{j}].audit_log"),
                    format!(
                        "`{}` is in the directory of job `{name}`'s audit log `{}`: a log is \
                         keyed under one repository key and the state beside it (signals, WAL \
                         queue) is one repository's, so each job needs its own directory (leave \
                         audit_log out of the [[job]] to get `{}`)",
                        b.audit_log.display(),
                        a.audit_log.display(),
                        job_audit_log(&b.audit_log, &other).display()
                    ),
                ));
            }
        }
    }
}

impl Config {
    /// The `[[job]]` names in file order; empty for a configuration without `[[job]]` (one
    /// implicit job).
    pub fn job_names(&self) -> Vec<&str> {
        self.jobs
            .iter()
            .filter_map(|j| j.job_name.as_deref())
            .collect()
    }

    /// The configuration of the `[[job]]` named `name` (its own keys merged over the shared
    /// top-level ones).
    ///
    /// # Errors
    /// [`ConfigError::UnknownJob`], listing the configured names (none: the file has no
    /// `[[job]]`).
    pub fn into_job(self, name: &str) -> Result<Config, ConfigError> {
        let configured: Vec<String> = self.job_names().into_iter().map(str::to_owned).collect();
        self.jobs
            .into_iter()
            .find(|j| j.job_name.as_deref() == Some(name))
            .ok_or_else(|| ConfigError::UnknownJob {
                name: name.to_owned(),
                configured,
            })
    }

    /// Every job's configuration in file order: the `[[job]]`s, or this configuration alone
    /// when it has none.
    pub fn into_jobs(self) -> Vec<Config> {
        if self.jobs.is_empty() {
            vec![self]
        } else {
            self.jobs
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "audit_log = \"/var/lib/wst/audit.jsonl\"\nactor = \"ops\"\n\
        [retention]\ntime_zone = \"UTC\"\npolicy = { keep_daily = 7 }\n\
        [[job]]\nname = \"billing\"\nprefix = \"billing\"\n\
        encryption = { key_file = \"/k/billing.key\" }\n\
        sinks = [{ name = \"c\", url = \"/srv/wst/billing\" }]\n\
        [[job]]\nname = \"crm\"\nprefix = \"crm\"\n\
        encryption = { key_file = \"/k/crm.key\" }\n\
        sinks = [{ name = \"c\", url = \"/srv/wst/crm\" }]\n";

    fn problems_of(text: &str) -> Vec<String> {
        match Config::from_toml_str(text) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn two_jobs_merge_their_keys_over_the_shared_ones() {
        let c = Config::from_toml_str(TWO).unwrap();
        assert_eq!(c.job_names(), ["billing", "crm"]);
        let jobs = c.into_jobs();
        assert_eq!(jobs.len(), 2);
        let crm = &jobs[1];
        assert_eq!(crm.job_name.as_deref(), Some("crm"));
        assert_eq!(crm.prefix.as_deref(), Some("crm"));
        assert_eq!(crm.encryption.key_file, PathBuf::from("/k/crm.key"));
        assert_eq!(crm.sinks[0].url, "/srv/wst/crm");
        // Shared: actor, retention; derived: the audit log.
        assert_eq!(crm.actor.as_deref(), Some("ops"));
        assert_eq!(crm.retention.as_ref().unwrap().policy.keep_daily, 7);
        assert_eq!(crm.audit_log, PathBuf::from("/var/lib/wst/crm/audit.jsonl"));
        let billing = Config::from_toml_str(TWO)
            .unwrap()
            .into_job("billing")
            .unwrap();
        assert_eq!(billing.encryption.key_file, PathBuf::from("/k/billing.key"));
    }

    #[test]
    fn an_unknown_job_lists_the_configured_ones() {
        let e = Config::from_toml_str(TWO)
            .unwrap()
            .into_job("hr")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no [[job]] named `hr`; configured: billing, crm"
        );
        let single = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                      [[sinks]]\nname = \"c\"\nurl = \"/c\"\n";
        let c = Config::from_toml_str(single).unwrap();
        assert!(c.job_names().is_empty());
        assert_eq!(c.into_jobs().len(), 1, "no [[job]]: one implicit job");
        let e = Config::from_toml_str(single)
            .unwrap()
            .into_job("a")
            .unwrap_err();
        assert!(e.to_string().contains("has no [[job]]"), "{e}");
    }

    #[test]
    fn jobs_sharing_a_sink_a_key_or_a_name_are_refused() {
        let shared_sink = TWO.replace("/srv/wst/crm", "file:///srv/wst/billing/");
        let p = problems_of(&shared_sink);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "job[1].sinks[0].url: sink `c` has the location of job `billing`'s sink `c`"
            ),
            "{p:?}"
        );
        assert!(!p[0].contains("/srv/wst"), "names, never a URL: {p:?}");
        let nested = TWO.replace("/srv/wst/crm", "/srv/wst/billing/crm");
        let p = problems_of(&nested);
        assert!(p[0].contains("one inside the other"), "{p:?}");
        let shared_key = TWO.replace("/k/crm.key", "/k/billing.key");
        let p = problems_of(&shared_key);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("job[1].encryption: `/k/billing.key` is also a key of job `billing`"),
            "{p:?}"
        );
        let same_name = TWO.replace("name = \"crm\"", "name = \"billing\"");
        let p = problems_of(&same_name);
        assert!(
            p.iter()
                .any(|p| p.starts_with("job[1].name: `billing` is also job[0]'s name")),
            "{p:?}"
        );
        let shared_log = TWO.replace(
            "name = \"crm\"\n",
            "name = \"crm\"\naudit_log = \"/var/lib/wst/billing/audit-crm.jsonl\"\n",
        );
        let p = problems_of(&shared_log);
        assert!(p.iter().any(|p| p.starts_with("job[1].audit_log")), "{p:?}");
        // A WAL queue or signal state set once for every job would be shared.
        let shared_state = format!(
            "{TWO}\n[wal]\nqueue_dir = \"/var/lib/wst/wal-queue\"\n\
             [metrics]\nstate_file = \"/var/lib/wst/signals.json\"\n"
        );
        let p = problems_of(&shared_state);
        for key in ["job[1].wal.queue_dir", "job[1].metrics.state_file"] {
            assert!(p.iter().any(|p| p.starts_with(key)), "{key}: {p:?}");
        }
    }

    #[test]
    fn a_job_cannot_set_a_shared_key_and_problems_name_the_job() {
        let e = Config::from_toml_str(
            &TWO.replace("name = \"crm\"\n", "name = \"crm\"\nactor = \"x\"\n"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("unknown or shared key `actor`"),
            "{e}"
        );
        let p = problems_of(&TWO.replace("prefix = \"crm\"", "prefix = \"crm\"\nzstd_level = 40"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("job[1].zstd_level"), "{p:?}");
        // A shared key's problem is named once, by its top-level name.
        let p = problems_of(&TWO.replace("time_zone = \"UTC\"", "time_zone = \"Mars/Base\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("retention.time_zone"), "{p:?}");
    }

    #[test]
    fn the_job_audit_log_is_named_after_the_job() {
        assert_eq!(
            job_audit_log(Path::new("/var/audit.jsonl"), "a"),
            PathBuf::from("/var/a/audit.jsonl")
        );
        assert_eq!(
            job_audit_log(Path::new("audit"), "a"),
            PathBuf::from("a/audit")
        );
    }
}
