//! Placement rules (issue 17; seeds/002 anti-patterns 5 and 6): where the production system
//! and every copy live. The offsite copy must be in another region than production ("Am I
//! backing up to the same physical location? NEVER — offsite required"), and every copy in
//! an allowed jurisdiction ("Am I storing backups outside EU? NEVER — data sovereignty").
//!
//! The sinks do not know their region: the operator declares it (`wst.toml`: `region` and
//! `jurisdiction` on each `[[sinks]]`, `production_region`, `production_jurisdiction` and
//! `allowed_jurisdictions` in `[compliance]`), and [`placement_rules`] judges the
//! declarations. A rule that is not configured adds nothing to the status.

use std::collections::BTreeMap;

use crate::compliance::RuleStatus;
use crate::sink::SinkInfo;

/// The rule name of seeds/002 anti-pattern 5.
pub const OFFSITE_REGION_RULE: &str = "offsite in another region";
/// The rule name of seeds/002 anti-pattern 6.
pub const JURISDICTION_RULE: &str = "copies in allowed jurisdictions";

/// Where one sink's data lives, as the operator declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkPlacement {
    /// The region or data center, e.g. `nl-ams1`, `de-fra1`, `eu-central-1`, `office-basement`.
    pub region: Option<String>,
    /// The jurisdiction whose law governs the data there, e.g. `EU`.
    pub jurisdiction: Option<String>,
}

/// The placement the status judges (issue 17). The default configures no rule.
///
/// Regions and jurisdictions are compared without regard to ASCII case and surrounding
/// whitespace (`nl-ams1` = `NL-AMS1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The production system's region. When set, the rule [`OFFSITE_REGION_RULE`] is judged:
    /// at least one sink is offsite, and every offsite sink declares a region other than this.
    pub production_region: Option<String>,
    /// The production system's jurisdiction (the first of the three copies, seeds/002).
    /// Judged with the sinks' when [`Placement::allowed_jurisdictions`] is set.
    pub production_jurisdiction: Option<String>,
    /// The jurisdictions copies may be in, e.g. `["EU"]`. When non-empty, the rule
    /// [`JURISDICTION_RULE`] is judged: production and every sink declare a jurisdiction in
    /// this list.
    pub allowed_jurisdictions: Vec<String>,
    /// Each sink's declared placement, by sink name. A sink without an entry declares nothing.
    pub sinks: BTreeMap<String, SinkPlacement>,
}

impl Placement {
    /// Whether any placement rule is configured.
    pub fn is_configured(&self) -> bool {
        self.production_region.is_some() || !self.allowed_jurisdictions.is_empty()
    }
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn declared(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The placement rules for `sinks` (each sink's medium and offsite flag from its
/// [`SinkInfo`], its region and jurisdiction from `placement.sinks`), in order
/// [`OFFSITE_REGION_RULE`], [`JURISDICTION_RULE`]; a rule that is not configured is left out
/// (an empty vector when none is). A sink or the production system that does not declare
/// what a configured rule needs fails it, and the detail names the key to add. Pure: no I/O.
///
/// Rules (seeds/002 `BACKUP:ANTI_PATTERNS` 5 and 6, `ONE OFFSITE`: "offsite must be in a
/// different physical data center than production", "EU only — data sovereignty"):
/// - **offsite in another region** (when `production_region` is set): at least one sink is
///   offsite, and every offsite sink declares a `region` different from production's;
/// - **copies in allowed jurisdictions** (when `allowed_jurisdictions` is non-empty):
///   production and every sink declare a `jurisdiction` in the list.
pub fn placement_rules(placement: &Placement, sinks: &[&SinkInfo]) -> Vec<RuleStatus> {
    let mut rules = Vec::new();
    let of = |name: &str| placement.sinks.get(name).cloned().unwrap_or_default();
    if let Some(production) = declared(placement.production_region.as_ref()) {
        let mut problems = Vec::new();
        let mut evidence = Vec::new();
        let offsite: Vec<&&SinkInfo> = sinks.iter().filter(|s| s.offsite).collect();
        for s in &offsite {
            match declared(of(&s.name).region.as_ref()) {
                None => problems.push(format!(
                    "offsite sink `{}` declares no region: add region = \"…\" (its data \
                     center or cloud region, e.g. \"de-fra1\") to its [[sinks]] section",
                    s.name
                )),
                Some(r) if same(r, production) => problems.push(format!(
                    "offsite sink `{}` is in region `{r}`, the production region: an offsite \
                     copy must be in another physical location (seeds/002 anti-pattern 5); \
                     move it to another region",
                    s.name
                )),
                Some(r) => evidence.push(format!("{}: {r}", s.name)),
            }
        }
        if offsite.is_empty() {
            problems.push(
                "no sink is offsite (offsite = true): the copies are all in the production \
                 location (seeds/002 anti-pattern 5); add an offsite sink in another region"
                    .to_owned(),
            );
        }
        rules.push(RuleStatus {
            rule: OFFSITE_REGION_RULE.into(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() {
                format!(
                    "production is in `{production}`; the offsite copies are elsewhere ({})",
                    evidence.join(", ")
                )
            } else {
                format!("production is in `{production}`: {}", problems.join("; "))
            },
            evidence: if problems.is_empty() {
                evidence
            } else {
                problems
            },
        });
    }
    if !placement.allowed_jurisdictions.is_empty() {
        let allowed = &placement.allowed_jurisdictions;
        let ok = |j: &str| allowed.iter().any(|a| same(a, j));
        let mut problems = Vec::new();
        let mut evidence = Vec::new();
        match declared(placement.production_jurisdiction.as_ref()) {
            None => problems.push(
                "production declares no jurisdiction: add production_jurisdiction = \"…\" \
                 (e.g. \"EU\") to [compliance]"
                    .to_owned(),
            ),
            Some(j) if !ok(j) => problems.push(format!(
                "production is in jurisdiction `{j}`, not an allowed one"
            )),
            Some(j) => evidence.push(format!("production: {j}")),
        }
        for s in sinks {
            match declared(of(&s.name).jurisdiction.as_ref()) {
                None => problems.push(format!(
                    "sink `{}` declares no jurisdiction: add jurisdiction = \"…\" (e.g. \"EU\") \
                     to its [[sinks]] section",
                    s.name
                )),
                Some(j) if !ok(j) => problems.push(format!(
                    "sink `{}` is in jurisdiction `{j}`, outside the allowed ones (seeds/002 \
                     anti-pattern 6: data sovereignty); move the copy or change the sink",
                    s.name
                )),
                Some(j) => evidence.push(format!("{}: {j}", s.name)),
            }
        }
        rules.push(RuleStatus {
            rule: JURISDICTION_RULE.into(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() {
                format!(
                    "production and {} sinks are in allowed jurisdictions ({})",
                    sinks.len(),
                    allowed.join(", ")
                )
            } else {
                format!(
                    "{} placement problem(s) against the allowed jurisdictions ({}): {}",
                    problems.len(),
                    allowed.join(", "),
                    problems.join("; ")
                )
            },
            evidence: if problems.is_empty() {
                evidence
            } else {
                problems
            },
        });
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Medium;

    fn info(name: &str, medium: Medium, offsite: bool) -> SinkInfo {
        SinkInfo {
            name: name.into(),
            medium,
            offsite,
            location: format!("/{name}"),
        }
    }

    fn placed(region: Option<&str>, jurisdiction: Option<&str>) -> SinkPlacement {
        SinkPlacement {
            region: region.map(str::to_owned),
            jurisdiction: jurisdiction.map(str::to_owned),
        }
    }

    fn rule<'a>(rules: &'a [RuleStatus], name: &str) -> &'a RuleStatus {
        rules.iter().find(|r| r.rule == name).expect(name)
    }

    #[test]
    fn nothing_configured_adds_no_rule() {
        let c = info("local-c", Medium::Disk, false);
        assert!(placement_rules(&Placement::default(), &[&c]).is_empty());
        assert!(!Placement::default().is_configured());
    }

    #[test]
    fn offsite_region_and_jurisdiction_pass_and_fail_as_declared() {
        let c = info("local-c", Medium::Disk, false);
        let s3 = info("offsite-s3", Medium::ObjectStorage, true);
        let mut p = Placement {
            production_region: Some("de-fra1".into()),
            production_jurisdiction: Some("EU".into()),
            allowed_jurisdictions: vec!["EU".into()],
            sinks: BTreeMap::from([
                ("local-c".into(), placed(Some("de-fra1"), Some("EU"))),
                ("offsite-s3".into(), placed(Some("nl-ams1"), Some("eu"))),
            ]),
        };
        let rules = placement_rules(&p, &[&c, &s3]);
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| r.passed), "{rules:#?}");
        assert_eq!(
            rule(&rules, OFFSITE_REGION_RULE).evidence,
            ["offsite-s3: nl-ams1"]
        );

        // Anti-pattern 5: the offsite copy in the production region (case does not matter).
        p.sinks.get_mut("offsite-s3").unwrap().region = Some("DE-FRA1".into());
        let r = placement_rules(&p, &[&c, &s3]);
        let r5 = rule(&r, OFFSITE_REGION_RULE);
        assert!(!r5.passed);
        assert!(r5.detail.contains("the production region"), "{r5:?}");

        // A missing declaration fails and says what to add.
        p.sinks.get_mut("offsite-s3").unwrap().region = None;
        let r = placement_rules(&p, &[&c, &s3]);
        let r5 = rule(&r, OFFSITE_REGION_RULE);
        assert!(!r5.passed && r5.detail.contains("add region = "), "{r5:?}");

        // No offsite sink at all.
        let r = placement_rules(&p, &[&c]);
        assert!(
            rule(&r, OFFSITE_REGION_RULE)
                .detail
                .contains("no sink is offsite")
        );

        // Anti-pattern 6: a copy outside the EU, a sink and production without declaration.
        p.sinks.get_mut("offsite-s3").unwrap().jurisdiction = Some("US".into());
        p.sinks.get_mut("local-c").unwrap().jurisdiction = None;
        p.production_jurisdiction = None;
        let r = placement_rules(&p, &[&c, &s3]);
        let r6 = rule(&r, JURISDICTION_RULE);
        assert!(!r6.passed);
        assert_eq!(r6.evidence.len(), 3, "{r6:#?}");
        assert!(
            r6.detail
                .contains("sink `offsite-s3` is in jurisdiction `US`")
        );
        assert!(r6.detail.contains("add jurisdiction = "));
        assert!(r6.detail.contains("add production_jurisdiction = "));

        // Only the jurisdiction rule configured: one rule.
        p.production_region = None;
        assert_eq!(placement_rules(&p, &[&c, &s3]).len(), 1);
    }
}
