//! Reading a copy: restore, drill and `ls`, each from the first good copy with fallback.

use super::{
    Arc, ArtifactName, AuditEvent, Catalog, Check, Error, Repository, RestoreOptions,
    RestoreReport, Result, Sink, Trust, VerificationReport,
};

impl Repository {
    /// Restores `name` from the first sink whose copy is complete and passes, trying the
    /// sinks in configured order (or only `from`, when given): each copy's ciphertext must have
    /// its sidecar's size and SHA-256 and its manifest must name `name`, or that copy is
    /// rejected before anything is promoted and the next is tried (design invariant 9). A
    /// rejected copy's failure is recorded on it (it no longer counts as verified). The report
    /// names the copies rejected; the restore is audited.
    ///
    /// The erasure register (issue 18) is read and re-applied to the staged tree before
    /// promotion, unless [`RestoreOptions::erasures`] is given: the outcomes are in
    /// [`RestoreReport::re_erasures`] and audited (`erasure_applied`); an entry that cannot be
    /// applied fails the restore with [`Error::ErasureNotApplied`], target untouched, unless
    /// break-glass is given.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no sink holds a complete copy; otherwise the last copy's error
    /// (restore target refused, every copy rejected, …), after auditing it.
    pub async fn restore(
        &self,
        name: &ArtifactName,
        options: &RestoreOptions,
        from: Option<&str>,
    ) -> Result<RestoreReport> {
        let mut rejected = Vec::new();
        let mut last_error = None;
        // The erasure register, re-applied to the staged tree before promotion (issue 18).
        let mut base = options.clone();
        if base.erasures.is_none() {
            let register = self.erasure_register().await?;
            base.erasure_anomalies = register.uncovered().map(ToString::to_string).collect();
            base.erasures = Some(register.entries);
        }
        for sink in &self.sinks {
            if from.is_some_and(|f| f != sink.info().name) {
                continue;
            }
            let (copy, anomaly) =
                match Catalog::read_one(&**sink, name, Trust::Authenticated(&self.keys)).await {
                    Ok(Some(c)) => c,
                    Ok(None) => continue,
                    Err(e) => {
                        rejected.push(format!("{}: cannot be read: {e}", sink.info().name));
                        continue;
                    }
                };
            if !copy.complete {
                let why = anomaly.map_or_else(|| "it has no sidecar".to_owned(), |a| a.to_string());
                rejected.push(format!("{}: incomplete copy: {why}", sink.info().name));
                continue;
            }
            let mut opts = base.clone();
            opts.clock = self.clock.clone();
            opts.expected_ciphertext = copy.expected();
            match crate::restore::restore(&**sink, name, &*self.cipher, &opts).await {
                Ok(mut report) => {
                    report.rejected_copies = rejected;
                    self.audit_erasures(name, &base, &report)?;
                    self.audit_restore(
                        name,
                        &sink.info().name,
                        options,
                        report.duration_seconds,
                        None,
                    )
                    .await?;
                    return Ok(report);
                }
                Err(e) if copy_is_bad(&e) || copy_unreachable(&e) => {
                    tracing::error!(artifact = %name, sink = %sink.info().name, error = %e, "restore: copy rejected; trying the next sink");
                    if copy_is_bad(&e) {
                        // The content is not what the copy's evidence says: that copy fails
                        // verification (an unreachable sink says nothing about its copy).
                        let failed = VerificationReport {
                            artifact: name.clone(),
                            sink: sink.info().name.clone(),
                            started: self.clock.now(),
                            finished: self.clock.now(),
                            checks: vec![Check::fail("restore", e.to_string())],
                        };
                        if let Err(re) = self.record_verification(&**sink, name, &failed).await {
                            tracing::error!(error = %re, "restore: cannot record the rejected copy");
                        }
                    }
                    rejected.push(format!("{}: {e}", sink.info().name));
                    last_error = Some(e);
                }
                Err(e) => {
                    self.audit_restore(name, &sink.info().name, options, 0.0, Some(&e))
                        .await?;
                    return Err(e);
                }
            }
        }
        let e = last_error.unwrap_or_else(|| Error::NotFound {
            sink: from.unwrap_or("any sink").to_owned(),
            name: format!("a complete copy of {name}"),
        });
        self.audit_restore(name, from.unwrap_or("(every sink)"), options, 0.0, Some(&e))
            .await?;
        Err(e)
    }

    /// Runs a restore drill (doctrine 026 R7) of the artifact `options.selection` picks among
    /// this repository's complete copies whose sealed evidence does not record a failed
    /// verification, on every sink (or only `from`): the copy is verified against its sidecar,
    /// restored into an isolated directory and proven ([`restore_drill`](crate::restore_drill)
    /// describes the steps). When a copy fails verification (substituted, tampered, corrupt),
    /// the failure is recorded on that copy and the next sink's copy of the same artifact is
    /// drilled; the report names the copies rejected, and its RTO counts the time they took. A
    /// drill that fails for another reason (the database proof, a post-restore check, the RTO)
    /// is the artifact's failure and is reported as it is. Audited, dated by the repository's
    /// clock.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no sink holds a usable copy in the selection window; the
    /// audit log's error.
    pub async fn drill(
        &self,
        restorers: &[Arc<dyn crate::drill::EntryRestorer>],
        options: &crate::drill::DrillOptions,
        from: Option<&str>,
    ) -> Result<crate::drill::DrillReport> {
        let mut options = options.clone();
        options.clock = self.clock.clone();
        // The erasure register is re-applied to whatever the drill restores (issue 18).
        let register = self.erasure_register().await?;
        options.erasure_anomalies = register.uncovered().map(ToString::to_string).collect();
        options.erasures = register.entries;
        let date = self.clock.now();
        let started = std::time::Instant::now();
        let mut copies: Vec<(&Arc<dyn Sink>, Catalog)> = Vec::new();
        for sink in &self.sinks {
            if from.is_some_and(|f| f != sink.info().name) {
                continue;
            }
            match self.catalog(&**sink).await {
                Ok(c) => copies.push((sink, c)),
                Err(e) => {
                    tracing::warn!(sink = %sink.info().name, error = %e, "drill: sink not catalogued");
                }
            }
        }
        let usable = |c: &crate::catalog::CatalogCopy| {
            c.complete
                && !(c
                    .trust
                    .is_some_and(crate::evidence::SidecarTrust::is_authentic)
                    && c.sidecar
                        .as_ref()
                        .and_then(|s| s.verification.as_ref())
                        .is_some_and(|v| !v.passed))
        };
        let mut names: Vec<ArtifactName> = copies
            .iter()
            .flat_map(|(_, c)| {
                c.copies
                    .iter()
                    .filter(|c| usable(c))
                    .map(|c| c.name.clone())
            })
            .collect();
        names.sort();
        names.dedup();
        let name = crate::drill::select(&names, options.selection, date).ok_or_else(|| {
            Error::NotFound {
                sink: from.unwrap_or("any sink").to_owned(),
                name: "a complete, not demoted artifact to drill (none in the selection window)"
                    .into(),
            }
        })?;
        let mut rejected = Vec::new();
        let mut last = None;
        for (sink, catalog) in &copies {
            let Some(copy) = catalog.get(&name).filter(|c| usable(c)) else {
                continue;
            };
            let (mut report, verification) = crate::drill::drill_artifact(
                &***sink,
                &name,
                copy.expected(),
                &*self.cipher,
                &self.verifier,
                restorers,
                &options,
                (date, started),
            )
            .await?;
            report.rejected_copies.clone_from(&rejected);
            if verification.passed() {
                last = Some(report);
                break;
            }
            // This copy is not the artifact its evidence describes: demote it, try the next.
            self.record_verification(&***sink, &name, &verification)
                .await?;
            rejected.push(format!(
                "{}: {}",
                sink.info().name,
                verification
                    .failures()
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            last = Some(report);
        }
        let report = last.ok_or_else(|| Error::NotFound {
            sink: from.unwrap_or("any sink").to_owned(),
            name: format!("a usable copy of {name}"),
        })?;
        crate::drill::audit_drill(&self.audit, &report, &options)?;
        if !options.erasures.is_empty() || !options.erasure_anomalies.is_empty() {
            self.audit.append(AuditEvent::ErasureApplied {
                artifact: report.artifact.clone(),
                target: format!("drill {}", report.restore_target.display()),
                entries: options.erasures.len() as u64,
                rows: report.re_erasures.iter().map(|r| r.rows).sum(),
                objects: report.re_erasures.iter().map(|r| r.objects).sum(),
                files: report.re_erasures.iter().map(|r| r.files).sum(),
                failed: report
                    .re_erasures
                    .iter()
                    .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.id)))
                    .chain(options.erasure_anomalies.iter().cloned())
                    .collect(),
                break_glass: None,
            })?;
        }
        self.anchor().await;
        Ok(report)
    }

    /// Lists `name` (entries, manifest, sidecar) without restoring it, from the first sink
    /// whose copy is complete and is the artifact its evidence describes (or only `from`): the
    /// ciphertext must have the copy's authenticated size and SHA-256 and the manifest must name
    /// `name`, or that copy is rejected ([`Error::Substituted`]) and the next sink's is read.
    /// The listing's `sidecar` is the copy's, parsed under the catalog's rule.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no sink holds a complete copy; otherwise the last copy's error.
    pub async fn list(
        &self,
        name: &ArtifactName,
        from: Option<&str>,
    ) -> Result<crate::list::ArtifactListing> {
        let mut last_error = None;
        for sink in &self.sinks {
            if from.is_some_and(|f| f != sink.info().name) {
                continue;
            }
            let copy =
                match Catalog::read_one(&**sink, name, Trust::Authenticated(&self.keys)).await {
                    Ok(Some((c, _))) if c.complete => c,
                    Ok(_) => continue,
                    Err(e) => {
                        last_error = Some(e);
                        continue;
                    }
                };
            match crate::list::list_expecting(
                &**sink,
                name,
                &*self.cipher,
                crate::reader::ReadLimits::default(),
                copy.expected(),
            )
            .await
            {
                Ok(mut listing) => {
                    listing.sidecar.clone_from(&copy.sidecar);
                    return Ok(listing);
                }
                Err(e) if copy_is_bad(&e) || copy_unreachable(&e) => {
                    tracing::error!(artifact = %name, sink = %sink.info().name, error = %e, "ls: copy rejected; trying the next sink");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::NotFound {
            sink: from.unwrap_or("any sink").to_owned(),
            name: format!("a complete copy of {name}"),
        }))
    }

    /// Audits the register's re-application to a restored tree (`erasure_applied`), when
    /// the register has entries with paths or bucket objects or something was let through.
    fn audit_erasures(
        &self,
        name: &ArtifactName,
        options: &RestoreOptions,
        report: &RestoreReport,
    ) -> Result<()> {
        let entries = options.erasures.as_deref().unwrap_or_default();
        let relevant = entries
            .iter()
            .filter(|e| !e.paths.is_empty() || !e.objects.is_empty())
            .count();
        if relevant == 0 && report.erasure_failures.is_empty() {
            return Ok(());
        }
        self.audit.append(AuditEvent::ErasureApplied {
            artifact: name.to_string(),
            target: format!("files {}", options.target.display()),
            entries: relevant as u64,
            rows: 0,
            objects: report.re_erasures.iter().map(|r| r.objects).sum(),
            files: report.re_erasures.iter().map(|r| r.files).sum(),
            failed: report.erasure_failures.clone(),
            break_glass: options.break_glass.clone(),
        })?;
        Ok(())
    }

    async fn audit_restore(
        &self,
        name: &ArtifactName,
        sink: &str,
        options: &RestoreOptions,
        seconds: f64,
        error: Option<&Error>,
    ) -> Result<()> {
        self.audit.append(AuditEvent::Restore {
            artifact: name.to_string(),
            sink: sink.to_owned(),
            target: options.target.display().to_string(),
            passed: error.is_none(),
            duration_seconds: seconds,
            break_glass: options.break_glass.clone(),
            error: error.map(ToString::to_string),
        })?;
        self.anchor().await;
        Ok(())
    }
}

/// Whether a restore error condemns the copy's content (substituted, tampered, truncated,
/// malformed): that copy is recorded as failing verification and the next is tried. A wrong
/// key also shows as a cipher error; it cannot demote a good copy, because a failed
/// verification is sealed only into a sidecar that authenticates under the configured key.
fn copy_is_bad(e: &Error) -> bool {
    matches!(
        e,
        Error::Substituted { .. } | Error::Cipher { .. } | Error::Malformed { .. }
    )
}

/// Whether a restore error is the sink's (unreachable, object gone): the next copy is tried,
/// and nothing is recorded against this one.
fn copy_unreachable(e: &Error) -> bool {
    matches!(e, Error::Sink { .. } | Error::NotFound { .. })
}
