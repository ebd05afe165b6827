//! `ls`: an artifact's entries, its manifest, or its newest drill report.

use std::path::PathBuf;

use wst::core::{ArtifactName, ListedEntry};

use super::{Ops, selection};
use crate::output::print_json;
use crate::output::say;
use crate::{Out, failed, usage};

impl Ops {
    /// `ls`: the entries (or the manifest, or the newest drill report) of an artifact.
    pub(crate) async fn ls(
        &self,
        sink: Option<&str>,
        artifact: Option<&str>,
        include: &[String],
        exclude: &[String],
        manifest: bool,
        report: bool,
    ) -> Out<u8> {
        let from = sink;
        let sink = self.sink(sink)?;
        let name = self.artifact(&*sink, artifact).await?;
        if report {
            return self.print_drill_report(&name);
        }
        // The repository reads the first good copy (the named sink's only, with --sink): the
        // content must be the artifact its name and sidecar say.
        let listing = self.repo.list(&name, from).await?;
        // Access audit (issue 18; seeds/003 "Access is logged and auditable"): the read is
        // recorded before anything of it is shown; a read that cannot be recorded shows nothing.
        self.audit
            .append(wst::core::AuditEvent::ContentRead {
                artifact: listing.artifact.to_string(),
                sink: listing.sink.clone(),
                purpose: if manifest { "ls --manifest" } else { "ls" }.to_owned(),
            })
            .map_err(|e| {
                failed(format!(
                    "cannot audit the read of {name}, nothing shown: {e}"
                ))
            })?;
        if manifest {
            print_json(&listing.manifest)?;
            return Ok(0);
        }
        let selection = selection(include, exclude)?;
        let entries: Vec<&ListedEntry> = match &selection {
            Some(sel) => listing.select(sel),
            None => listing.entries.iter().collect(),
        };
        if self.json {
            let mut value = serde_json::to_value(&listing)?;
            value["entries"] = serde_json::to_value(&entries)?;
            print_json(&value)?;
            return Ok(0);
        }
        let created = listing.sidecar.as_ref().map_or_else(
            || "no sidecar: incomplete".to_owned(),
            |s| s.created.to_string(),
        );
        let verified = match listing
            .sidecar
            .as_ref()
            .and_then(|s| s.verification.as_ref())
        {
            Some(v) if v.passed => format!("verified PASS ({} checks)", v.checks_passed),
            Some(v) => format!("verified FAIL ({} checks failed)", v.checks_failed),
            None => "not verified".to_owned(),
        };
        say!(
            "{} on {}: created {created}, {} bytes, {verified}, {} entries, {} content bytes",
            listing.artifact,
            listing.sink,
            listing.ciphertext_bytes,
            listing.entries.len(),
            listing.content_bytes()
        );
        say!("sources:");
        for s in &listing.manifest.sources {
            let facts = match wst::pg::DatabaseFacts::from_description(s) {
                Ok(f) => format!(
                    "  ({} tables, {} rows, database {})",
                    f.row_counts.len(),
                    f.total_rows(),
                    f.database
                ),
                Err(_) if s.kind == "object_store" => format!(
                    "  ({} objects, {} bytes, from {})",
                    s.details["object_count"],
                    s.details["total_bytes"],
                    s.details["url"].as_str().unwrap_or("?")
                ),
                Err(_) => String::new(),
            };
            say!("  {:<12} {:<16} {}{facts}", s.kind, s.name, s.root);
        }
        for w in &listing.manifest.warnings {
            say!("warning: {w}");
        }
        say!("entries:");
        for e in &entries {
            say!("{e}");
        }
        if let Some(sel) = &selection {
            let unmatched = sel.unmatched(&listing.manifest);
            if !unmatched.is_empty() {
                return Err(failed(format!(
                    "no entry matches `{}`",
                    unmatched.join("`, `")
                )));
            }
        }
        Ok(0)
    }

    /// Prints the newest drill report of `name` found in the drill's `scratch_dir`.
    fn print_drill_report(&self, name: &ArtifactName) -> Out<u8> {
        let cfg =
            self.config.drill.as_ref().ok_or_else(|| {
                usage("the configuration has no [drill] section (where reports are)")
            })?;
        let wanted = name.to_string();
        let mut found: Option<(String, PathBuf, serde_json::Value)> = None;
        for item in std::fs::read_dir(&cfg.scratch_dir).map_err(|e| {
            failed(format!(
                "no drill report for {wanted}: cannot list `{}`: {e}",
                cfg.scratch_dir.display()
            ))
        })? {
            let path = item?.path();
            let is_report = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("restore-test-"));
            if !is_report {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path)?)
            else {
                continue;
            };
            if value["artifact"] != wanted.as_str() {
                continue;
            }
            let date = value["date"].as_str().unwrap_or_default().to_owned();
            if found.as_ref().is_none_or(|(d, _, _)| date > *d) {
                found = Some((date, path, value));
            }
        }
        let Some((_, path, value)) = found else {
            return Err(failed(format!(
                "no drill report for {wanted} in `{}` (run `drill`)",
                cfg.scratch_dir.display()
            )));
        };
        if self.json {
            print_json(&value)?;
        } else {
            match std::fs::read_to_string(path.with_extension("md")) {
                Ok(md) => crate::output::out(&crate::output::escape_lines(&md)),
                Err(_) => print_json(&value)?,
            }
            say!("report: {}", path.display());
        }
        Ok(u8::from(value["passed"] != true))
    }
}
