//! `[tenant]` (issue 18, "Tenant restore"): how one tenant's rows, objects and files are told
//! apart from the others', so that `wst restore --tenant ID` brings back only that tenant
//! (seeds/003 restore scenarios: "a single tenant, a single service, an entire environment";
//! "Partial restores must be supported where feasible"). Checks in
//! [`Config::problems`](super::Config::problems). `docs/TENANTS.md` describes the restore.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Config, ConfigError, Problem};

/// The placeholder for the tenant id in `bucket_prefixes` and `paths` templates.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// The `bucket_prefixes` key that applies to every `[[bucket]]`.
pub const ALL_BUCKETS: &str = "*";

/// `[tenant]`: the tenant key per source. Every key is optional, but the section must say at
/// least one of `column`, `bucket_prefixes`, `paths`.
///
/// ```toml
/// [tenant]
/// column = "tenant_id"                       # on every tenant-owned table
/// tables = ["app.customers", "app.orders"]   # optional: default every table with the column
/// paths = ["wst-api/uploads/{tenant}/**"]    # archive path globs of [[files]] trees
/// [tenant.bucket_prefixes]
/// proofs = ["tenants/{tenant}/"]             # per [[bucket]] name, or "*" for every bucket
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TenantConfig {
    /// The column naming the tenant on tenant-owned tables (compared as `column::text = $1`,
    /// the tenant id bound as a parameter, so any column type with a text form works).
    /// Absent: `restore --tenant` restores no database.
    pub column: Option<String>,
    /// The tenant-owned tables as `schema.table`. Empty (default): every table of the
    /// restored database that has `column`; every other table is shared reference data,
    /// kept whole.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Object key prefixes per `[[bucket]]` name (or `"*"` for every bucket), relative to the
    /// bucket's prefix, each holding `{tenant}` and ending in `/` (a folder), with no glob
    /// character: e.g. `proofs = ["tenants/{tenant}/"]`.
    #[serde(default)]
    pub bucket_prefixes: BTreeMap<String, Vec<String>>,
    /// Archive path globs of `[[files]]` trees (the `restore --include` syntax), each holding
    /// `{tenant}`, e.g. `"wst-api/uploads/{tenant}/**"`.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// The `[tenant]` templates resolved for one tenant id: what `restore --tenant ID` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantSelection {
    /// The tenant id (checked with [`crate::core::validate_subject`]).
    pub tenant: String,
    /// The tenant column, when the database is tenant-keyed.
    pub column: Option<String>,
    /// The explicit tenant-owned tables (`schema.table`); empty: discovered by the column.
    pub tables: Vec<String>,
    /// Archive include patterns: the resolved `paths` and, per bucket, `ROOT/PREFIX` for each
    /// resolved object prefix (a folder: the pattern covers its subtree).
    pub include: Vec<String>,
    /// The resolved object key prefixes per `[[bucket]]` name (relative to the bucket's
    /// prefix), for `restore --tenant ID --bucket NAME --to-bucket URL`.
    pub bucket_prefixes: BTreeMap<String, Vec<String>>,
}

impl Config {
    /// The `[tenant]` templates resolved for `tenant`; `Ok(None)` without a `[tenant]`
    /// section. The id is substituted into prefixes and globs only after
    /// [`crate::core::validate_subject`] accepted it (no `/`, glob character or `..`: an id
    /// can never widen the selection), and it is never put into SQL text (issue 18).
    ///
    /// # Errors
    /// [`ConfigError::TenantId`] (without the id, which may be personal) when the id breaks
    /// the subject-id rule; [`ConfigError::UnknownBucket`] for a `bucket_prefixes` key that
    /// names no `[[bucket]]` (a configuration that passed [`Config::problems`] has none).
    pub fn tenant_selection(&self, tenant: &str) -> Result<Option<TenantSelection>, ConfigError> {
        let Some(t) = &self.tenant else {
            return Ok(None);
        };
        crate::core::validate_subject(tenant).map_err(|e| ConfigError::TenantId {
            reason: e.to_string().replace("subject id", "tenant id"),
        })?;
        let mut include: Vec<String> = t
            .paths
            .iter()
            .map(|p| p.replace(TENANT_PLACEHOLDER, tenant))
            .collect();
        let mut bucket_prefixes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, prefixes) in &t.bucket_prefixes {
            let buckets: Vec<&super::BucketConfig> = if key == ALL_BUCKETS {
                self.buckets.iter().collect()
            } else {
                vec![self.bucket(key)?]
            };
            for b in buckets {
                for p in prefixes {
                    let p = p.replace(TENANT_PLACEHOLDER, tenant);
                    include.push(format!("{}/{}", b.root(), p.trim_end_matches('/')));
                    bucket_prefixes.entry(b.name.clone()).or_default().push(p);
                }
            }
        }
        include.sort();
        include.dedup();
        Ok(Some(TenantSelection {
            tenant: tenant.to_owned(),
            column: t.column.clone(),
            tables: t.tables.clone(),
            include,
            bucket_prefixes,
        }))
    }
}

/// Whether `name` is a plain SQL identifier wst accepts for the tenant column: 1–63 bytes,
/// no NUL and no `"` (it is quoted as an identifier, never spliced raw).
fn valid_identifier(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && !name.contains(['\0', '"'])
}

/// `[tenant]`: a column that is an identifier, tables as `schema.table`, known buckets,
/// `{tenant}` in every prefix and glob, prefixes as folders without glob characters, globs
/// that compile, and at least one key.
pub(super) fn check_tenant(c: &Config, p: &mut Vec<Problem>) {
    let Some(t) = &c.tenant else {
        return;
    };
    if t.column.is_none() && t.bucket_prefixes.is_empty() && t.paths.is_empty() {
        p.push(Problem::new(
            "tenant",
            "says nothing about what a tenant owns: give column, bucket_prefixes or paths",
        ));
    }
    if let Some(col) = &t.column
        && !valid_identifier(col)
    {
        p.push(Problem::new(
            "tenant.column",
            "must be a column name of 1 to 63 bytes without `\"` or NUL",
        ));
    }
    if !t.tables.is_empty() && t.column.is_none() {
        p.push(Problem::new(
            "tenant.tables",
            "needs tenant.column (the column that names the tenant in these tables)",
        ));
    }
    for (i, table) in t.tables.iter().enumerate() {
        let ok = table
            .split_once('.')
            .is_some_and(|(s, n)| valid_identifier(s) && valid_identifier(n) && !n.contains('.'));
        if !ok {
            p.push(Problem::new(
                format!("tenant.tables[{i}]"),
                format!("`{table}` is not `schema.table`"),
            ));
        }
    }
    for (key, prefixes) in &t.bucket_prefixes {
        if key != ALL_BUCKETS && c.bucket(key).is_err() {
            p.push(Problem::new(
                format!("tenant.bucket_prefixes.{key}"),
                "names no [[bucket]] (use \"*\" for every bucket)",
            ));
        }
        for prefix in prefixes {
            let why = if !prefix.contains(TENANT_PLACEHOLDER) {
                Some("does not hold {tenant}")
            } else if !prefix.ends_with('/') {
                Some("must end in `/` (a folder of object keys)")
            } else if prefix.starts_with('/') || prefix.split('/').any(|s| s == "..") {
                Some("must be relative and hold no `..`")
            } else if prefix
                .replace(TENANT_PLACEHOLDER, "")
                .contains(['*', '?', '[', ']', '{', '}', '\\'])
            {
                Some("must hold no glob character besides {tenant}")
            } else {
                None
            };
            if let Some(why) = why {
                p.push(Problem::new(
                    format!("tenant.bucket_prefixes.{key}"),
                    format!("prefix `{prefix}` {why}"),
                ));
            }
        }
    }
    for (i, path) in t.paths.iter().enumerate() {
        let key = format!("tenant.paths[{i}]");
        if !path.contains(TENANT_PLACEHOLDER) {
            p.push(Problem::new(
                key,
                format!("`{path}` does not hold {{tenant}}"),
            ));
        } else if let Err(e) =
            crate::core::Selection::new([path.replace(TENANT_PLACEHOLDER, "tenant")])
        {
            p.push(Problem::new(key, e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                        [[sinks]]\nname = \"c\"\nurl = \"/c\"\n\
                        [[bucket]]\nname = \"proofs\"\nurl = \"s3://p\"\n\
                        [[bucket]]\nname = \"media\"\nurl = \"s3://m\"\nroot = \"objects/media\"\n";

    /// Issue 18: the templates resolve into include patterns (paths, and each bucket's
    /// archive root + prefix, `"*"` for every bucket) and per-bucket prefixes.
    #[test]
    fn tenant_templates_resolve_per_bucket_and_path() {
        let c = Config::from_toml_str(&format!(
            "{BASE}[tenant]\ncolumn = \"tenant_id\"\npaths = [\"api/uploads/{{tenant}}/**\"]\n\
             [tenant.bucket_prefixes]\nproofs = [\"tenants/{{tenant}}/\"]\n\"*\" = [\"t/{{tenant}}/\"]\n"
        ))
        .unwrap();
        let s = c.tenant_selection("globex").unwrap().unwrap();
        assert_eq!(
            s.include,
            [
                "api/uploads/globex/**",
                "buckets/proofs/t/globex",
                "buckets/proofs/tenants/globex",
                "objects/media/t/globex",
            ]
        );
        assert_eq!(
            s.bucket_prefixes["proofs"],
            ["t/globex/", "tenants/globex/"]
        );
        assert_eq!(s.bucket_prefixes["media"], ["t/globex/"]);
        assert_eq!(s.column.as_deref(), Some("tenant_id"));
        // An id that could widen a glob or a prefix is refused, and not echoed.
        for bad in ["*", "a/b", "..", ".x", "", "a b"] {
            let e = c.tenant_selection(bad).unwrap_err().to_string();
            assert!(
                e.contains("tenant id") && !e.contains(&format!("`{bad}`")),
                "{e}"
            );
        }
        // Without [tenant]: None.
        let c = Config::from_toml_str(BASE).unwrap();
        assert!(c.tenant_selection("globex").unwrap().is_none());
    }

    /// Every rule of `check_tenant` is a problem naming its key.
    #[test]
    fn tenant_section_problems_name_their_keys() {
        let e = Config::from_toml_str(&format!(
            "{BASE}[tenant]\ncolumn = 'te\"nant'\ntables = [\"orders\"]\n\
             paths = [\"api/uploads/**\", \"/abs/{{tenant}}\"]\n\
             [tenant.bucket_prefixes]\nnope = [\"t/{{tenant}}/\"]\n\
             proofs = [\"t/{{tenant}}\", \"t/*/{{tenant}}/\", \"../{{tenant}}/\", \"x/\"]\n"
        ))
        .unwrap_err()
        .to_string();
        for needle in [
            "tenant.column",
            "tenant.tables[0]: `orders` is not `schema.table`",
            "tenant.paths[0]",
            "tenant.paths[1]",
            "tenant.bucket_prefixes.nope: names no [[bucket]]",
            "must end in `/`",
            "no glob character",
            "hold no `..`",
            "`x/` does not hold {tenant}",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = Config::from_toml_str(&format!("{BASE}[tenant]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant: says nothing"), "{e}");
    }
}
