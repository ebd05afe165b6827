//! `pg_restore --list` verification of a dump entry (doctrine 026 R5).

use std::collections::BTreeSet;
use std::path::Path;

use wst_core::{Check, EntryCheck};

use crate::facts::{DatabaseFacts, table_key};
use crate::tools::{PgTools, clean_stderr};

/// Verifies the dump entry of an artifact: the entry is more than 0 bytes (doctrine 026 R5 "DB
/// backup file exists and > 0 KB"), `pg_restore --list` reads its table of contents, and every
/// expected table has its `TABLE DATA` item (and large objects their `BLOBS` item).
///
/// Checks reported: `dump_non_empty`, `pg_restore_list`, `dump_tables`, and `dump_large_objects`
/// when large objects are expected.
#[derive(Debug, Clone)]
pub struct PgRestoreListCheck {
    entry: String,
    expected_tables: Vec<String>,
    expect_large_objects: bool,
    tools: PgTools,
}

impl PgRestoreListCheck {
    /// A check of archive entry `entry` expecting `expected_tables` (keys as in
    /// [`DatabaseFacts::row_counts`], e.g. `public.pgbench_accounts`).
    pub fn new(entry: impl Into<String>, expected_tables: Vec<String>) -> Self {
        Self {
            entry: entry.into(),
            expected_tables,
            expect_large_objects: false,
            tools: PgTools::discover(),
        }
    }

    /// A check expecting every table and the large objects recorded in `facts` (as read back
    /// from the manifest).
    pub fn from_facts(entry: impl Into<String>, facts: &DatabaseFacts) -> Self {
        let mut check = Self::new(entry, facts.row_counts.keys().cloned().collect());
        check.expect_large_objects = facts.large_object_count > 0;
        check
    }

    /// Uses the PostgreSQL programs in `tools`.
    #[must_use]
    pub fn with_tools(mut self, tools: PgTools) -> Self {
        self.tools = tools;
        self
    }

    /// Runs the checks on a dump file outside an artifact (e.g. a freshly spooled dump).
    pub fn check_file(&self, file: &Path) -> Vec<Check> {
        let mut checks = Vec::new();
        let size = std::fs::metadata(file).map(|m| m.len());
        match size {
            Ok(n) if n > 0 => checks.push(Check::pass("dump_non_empty", format!("{n} bytes"))),
            Ok(_) => {
                checks.push(Check::fail(
                    "dump_non_empty",
                    "the dump is 0 bytes (doctrine F3)",
                ));
                return checks;
            }
            Err(e) => {
                checks.push(Check::fail(
                    "dump_non_empty",
                    format!("cannot read the dump: {e}"),
                ));
                return checks;
            }
        }
        let out = std::process::Command::new(self.tools.program("pg_restore"))
            .arg("--list")
            .arg(file)
            .stdin(std::process::Stdio::null())
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                checks.push(Check::fail(
                    "pg_restore_list",
                    format!(
                        "cannot run `{}`: {e} (apt-get install postgresql-client)",
                        self.tools.program("pg_restore").display()
                    ),
                ));
                return checks;
            }
        };
        if !out.status.success() {
            checks.push(Check::fail(
                "pg_restore_list",
                format!(
                    "pg_restore --list failed ({}): {}",
                    out.status,
                    clean_stderr(&out.stderr, None)
                ),
            ));
            return checks;
        }
        let toc = String::from_utf8_lossy(&out.stdout);
        let items = toc
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .count();
        checks.push(Check::pass(
            "pg_restore_list",
            format!("table of contents readable, {items} items"),
        ));
        let data = toc_table_data(&toc);
        let missing: Vec<&String> = self
            .expected_tables
            .iter()
            .filter(|t| !data.contains(t.as_str()))
            .collect();
        if missing.is_empty() {
            checks.push(Check::pass(
                "dump_tables",
                format!(
                    "all {} expected tables have TABLE DATA",
                    self.expected_tables.len()
                ),
            ));
        } else {
            checks.push(Check::fail(
                "dump_tables",
                format!(
                    "{} of {} expected tables missing, first: {}",
                    missing.len(),
                    self.expected_tables.len(),
                    missing
                        .iter()
                        .take(5)
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if self.expect_large_objects {
            if toc
                .lines()
                .any(|l| !l.starts_with(';') && l.contains(" BLOBS "))
            {
                checks.push(Check::pass("dump_large_objects", "BLOBS item present"));
            } else {
                checks.push(Check::fail(
                    "dump_large_objects",
                    "large objects expected but the dump has no BLOBS item",
                ));
            }
        }
        checks
    }
}

/// Table keys of the `TABLE DATA` items of a `pg_restore --list` output. An item line reads
/// `3371; 0 16390 TABLE DATA public pgbench_accounts postgres`; names are printed unquoted, so
/// a name containing a space is matched as printed up to the last word (the owner).
fn toc_table_data(toc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in toc.lines() {
        if line.starts_with(';') {
            continue;
        }
        let Some((_, rest)) = line.split_once(" TABLE DATA ") else {
            continue;
        };
        let Some((schema, rest)) = rest.split_once(' ') else {
            continue;
        };
        let table = match rest.rsplit_once(' ') {
            Some((table, _owner)) => table,
            None => rest,
        };
        out.insert(table_key(schema, table));
    }
    out
}

impl EntryCheck for PgRestoreListCheck {
    fn applies_to(&self, path: &str) -> bool {
        path == self.entry
    }

    fn check(&self, _path: &str, file: &Path) -> Vec<Check> {
        self.check_file(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toc_table_data() {
        let toc = ";\n; Archive created at 2026-11-21\n;\n\
            215; 1259 16389 TABLE public pgbench_accounts postgres\n\
            3371; 0 16390 TABLE DATA public pgbench_accounts postgres\n\
            3372; 0 16400 TABLE DATA lager Lagerbestand_ü postgres\n\
            3373; 0 0 BLOBS - BLOBS \n";
        let set = toc_table_data(toc);
        assert_eq!(
            set,
            BTreeSet::from([
                "public.pgbench_accounts".to_owned(),
                "lager.Lagerbestand_ü".to_owned()
            ])
        );
    }

    #[test]
    fn empty_file_fails_without_running_pg_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.backup");
        std::fs::write(&path, b"").unwrap();
        let check = PgRestoreListCheck::new("wst_dev_database.backup", vec![])
            .with_tools(PgTools::in_dir("/nonexistent"));
        let checks = check.check_file(&path);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "dump_non_empty");
        assert!(!checks[0].passed);
        assert!(check.applies_to("wst_dev_database.backup"));
        assert!(!check.applies_to("wst/x"));
    }
}
