//! Database facts recorded in the manifest: row counts and schema fingerprint from one snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Password;
use crate::connect::{query_error, quote_ident};
use crate::error::{Error, Result};

/// The facts of one database at one snapshot, stored as the `details` of the manifest's
/// `postgresql` [`wst_core::SourceDescription`]; a restore drill parses them back with
/// [`DatabaseFacts::from_description`] and proves the restored database against them.
///
/// Never contains credentials: no password, no connection string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatabaseFacts {
    /// The server's `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// The server's `server_version_num`, e.g. `150018`.
    pub server_version_num: i32,
    /// The cluster's `system_identifier` (from `pg_control_system()`), when the user may read
    /// it; used to refuse restoring over the source database itself.
    #[serde(default)]
    pub system_identifier: Option<String>,
    /// The database name.
    pub database: String,
    /// The database encoding, e.g. `UTF8`.
    pub encoding: String,
    /// `pg_database_size()` at the snapshot, in bytes.
    pub database_size_bytes: u64,
    /// The exported snapshot id the dump was taken from (`None` for facts of a restored
    /// database).
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// The snapshot's time: the exporting transaction's start (`now()`), UTC.
    pub snapshot_time: jiff::Timestamp,
    /// Exact row count (`count(*)`) of every ordinary table in every schema except
    /// `pg_catalog`, `information_schema`, `pg_toast*` and temporary schemas, tables owned by
    /// extensions excluded (their data is recreated by the extension). Partitions are counted
    /// as their own tables, partitioned parents not at all. Keys are `schema.table`; a part
    /// containing `.` or `"` is double-quoted SQL-style ([`table_key`]).
    pub row_counts: BTreeMap<String, u64>,
    /// Number of large objects (`pg_largeobject_metadata`).
    pub large_object_count: u64,
    /// SHA-256 (lowercase hex) of the canonical schema description: schemas, relations,
    /// columns and types, constraints, indexes, sequences (definition, not current value),
    /// functions, views, triggers, enums, domains, extensions; owners and privileges excluded so
    /// that a `--no-owner --no-privileges` restore matches. Comparable between servers of the
    /// same major version (catalog deparsing may change between majors).
    pub schema_fingerprint: String,
    /// Number of schema objects per kind (`relation`, `column`, `index`, …) in the
    /// fingerprint, to say where a mismatch lies.
    pub schema_objects: BTreeMap<String, u64>,
    /// Version of the `pg_dump` that wrote the dump, e.g. `15.18`.
    #[serde(default)]
    pub pg_dump_version: Option<String>,
    /// `pg_dump`'s own compression (`--compress`), e.g. `0`.
    #[serde(default)]
    pub pg_dump_compression: Option<String>,
    /// Size of the dump file in bytes.
    #[serde(default)]
    pub dump_bytes: Option<u64>,
    /// Seconds `pg_dump` ran.
    #[serde(default)]
    pub dump_seconds: Option<f64>,
}

impl DatabaseFacts {
    /// Parses the facts back from a manifest source description of kind `postgresql`.
    ///
    /// # Errors
    /// [`Error::Config`] when the description is of another kind or its details do not parse.
    pub fn from_description(description: &wst_core::SourceDescription) -> Result<Self> {
        if description.kind != crate::SOURCE_KIND {
            return Err(Error::Config(format!(
                "source `{}` is of kind `{}`, not `{}`",
                description.name,
                description.kind,
                crate::SOURCE_KIND
            )));
        }
        serde_json::from_value(description.details.clone()).map_err(|e| {
            Error::Config(format!(
                "the database facts of source `{}` do not parse: {e}",
                description.name
            ))
        })
    }

    /// Total rows over every counted table.
    pub fn total_rows(&self) -> u64 {
        self.row_counts.values().sum()
    }
}

/// The key of a table in [`DatabaseFacts::row_counts`]: `schema.table`, a part double-quoted
/// (with `"` doubled) only when it contains `.` or `"`, so that keys are unambiguous.
pub fn table_key(schema: &str, table: &str) -> String {
    let part = |s: &str| {
        if s.contains('.') || s.contains('"') {
            quote_ident(s)
        } else {
            s.to_owned()
        }
    };
    format!("{}.{}", part(schema), part(table))
}

/// What one pass over a snapshot collects.
pub(crate) struct Collected {
    pub(crate) row_counts: BTreeMap<String, u64>,
    pub(crate) large_object_count: u64,
    pub(crate) schema_fingerprint: String,
    pub(crate) schema_objects: BTreeMap<String, u64>,
}

const USER_NS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

fn not_ext(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.{catalog}'::pg_catalog.regclass AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// The queries whose rows (one JSON array each) make up the schema fingerprint.
fn fingerprint_queries() -> Vec<String> {
    let rel_ext = not_ext("pg_class", "c.oid");
    vec![
        format!(
            "SELECT json_build_array('schema', n.nspname)::text FROM pg_namespace n WHERE {USER_NS} AND {}",
            not_ext("pg_namespace", "n.oid")
        ),
        format!(
            "SELECT json_build_array('relation', n.nspname, c.relname, c.relkind, c.relpersistence)::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','v','m','S','f','c') AND {USER_NS} AND {rel_ext}"
        ),
        format!(
            "SELECT json_build_array('column', n.nspname, c.relname, \
                row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname, \
                format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), \
                a.attidentity, a.attgenerated)::text \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f','c') \
             AND {USER_NS} AND {rel_ext}"
        ),
        format!(
            "SELECT json_build_array('constraint', \
                CASE WHEN co.conrelid <> 0 THEN co.conrelid::regclass::text ELSE co.contypid::regtype::text END, \
                co.conname, co.contype, pg_get_constraintdef(co.oid))::text \
             FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace \
             WHERE {USER_NS} AND {}",
            not_ext("pg_class", "co.conrelid")
        ),
        format!(
            "SELECT json_build_array('index', pg_get_indexdef(i.indexrelid))::text \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NS} AND {rel_ext}"
        ),
        format!(
            "SELECT json_build_array('sequence', s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), \
                s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)::text \
             FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NS} AND {rel_ext}"
        ),
        format!(
            "SELECT json_build_array('function', p.oid::regprocedure::text, p.prokind, \
                pg_get_function_result(p.oid), \
                CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END)::text \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_NS} AND {}",
            not_ext("pg_proc", "p.oid")
        ),
        format!(
            "SELECT json_build_array('view', c.oid::regclass::text, pg_get_viewdef(c.oid))::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {USER_NS} AND {rel_ext}"
        ),
        format!(
            "SELECT json_build_array('trigger', pg_get_triggerdef(t.oid))::text \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND {USER_NS} AND {rel_ext}"
        ),
        format!(
            "SELECT json_build_array('type', t.oid::regtype::text, t.typtype, \
                format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault, \
                (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))::text \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('e', 'd', 'r') AND {USER_NS} AND {}",
            not_ext("pg_type", "t.oid")
        ),
        "SELECT json_build_array('extension', e.extname, e.extversion, n.nspname)::text \
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            .to_owned(),
    ]
}

/// Collects row counts, the large-object count and the schema fingerprint inside the caller's
/// (repeatable read) transaction. The session's `search_path` must be `pg_catalog` so that
/// every deparsed name is schema-qualified.
pub(crate) async fn collect(
    client: &tokio_postgres::Client,
    password: Option<&Password>,
) -> Result<Collected> {
    let tables = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {USER_NS} AND {} ORDER BY 1, 2",
                not_ext("pg_class", "c.oid")
            ),
            &[],
        )
        .await
        .map_err(|e| query_error("listing tables", &e, password))?;
    let mut row_counts = BTreeMap::new();
    for row in tables {
        let schema: String = row.get(0);
        let table: String = row.get(1);
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let n: i64 = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| query_error(format!("counting rows of {schema}.{table}"), &e, password))?
            .get(0);
        row_counts.insert(table_key(&schema, &table), n.max(0) as u64);
    }
    let large_object_count: i64 = client
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .await
        .map_err(|e| query_error("counting large objects", &e, password))?
        .get(0);
    let mut lines = Vec::new();
    for sql in fingerprint_queries() {
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(|e| query_error("reading the schema for its fingerprint", &e, password))?;
        lines.extend(rows.into_iter().map(|r| r.get::<_, String>(0)));
    }
    let (schema_fingerprint, schema_objects) = fingerprint(lines);
    Ok(Collected {
        row_counts,
        large_object_count: large_object_count.max(0) as u64,
        schema_fingerprint,
        schema_objects,
    })
}

/// Sorts the description lines, hashes them (one per line) and counts them per kind.
fn fingerprint(mut lines: Vec<String>) -> (String, BTreeMap<String, u64>) {
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    let mut kinds = BTreeMap::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
        let kind = serde_json::from_str::<Vec<serde_json::Value>>(line)
            .ok()
            .and_then(|v| v.first().and_then(|k| k.as_str().map(str::to_owned)))
            .unwrap_or_else(|| "unknown".to_owned());
        *kinds.entry(kind).or_insert(0) += 1;
    }
    (hex::encode(hasher.finalize()), kinds)
}

/// The cluster's system identifier (`pg_control_system()`, decimal), which every WAL segment
/// of the cluster carries; `None` when the role may not call the function or the query fails
/// (it never aborts the caller's transaction: run it outside one).
pub(crate) async fn system_identifier(client: &tokio_postgres::Client) -> Option<String> {
    client
        .query_one(
            "SELECT CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') \
             THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.get::<_, Option<String>>(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keys_are_unambiguous() {
        assert_eq!(
            table_key("public", "pgbench_accounts"),
            "public.pgbench_accounts"
        );
        assert_eq!(table_key("a.b", "c"), "\"a.b\".c");
        assert_eq!(table_key("a", "b.c"), "a.\"b.c\"");
        assert_eq!(table_key("x", "say \"hi\""), "x.\"say \"\"hi\"\"\"");
        assert_eq!(table_key("lager", "größe_名前"), "lager.größe_名前");
    }

    #[test]
    fn fingerprint_ignores_order_and_counts_kinds() {
        let a = vec![
            r#"["relation","public","t","r","p"]"#.to_owned(),
            r#"["column","public","t",1,"id","integer",true,null,"",""]"#.to_owned(),
        ];
        let mut b = a.clone();
        b.reverse();
        let (fa, ka) = fingerprint(a);
        let (fb, _) = fingerprint(b);
        assert_eq!(fa, fb);
        assert_eq!(fa.len(), 64);
        assert_eq!(ka.get("relation"), Some(&1));
        assert_eq!(ka.get("column"), Some(&1));
    }

    #[test]
    fn facts_round_trip_through_description() {
        let facts = DatabaseFacts {
            server_version: "15.18".into(),
            server_version_num: 150_018,
            system_identifier: Some("7".into()),
            database: "wst_dev".into(),
            encoding: "UTF8".into(),
            database_size_bytes: 8_000_000,
            snapshot_id: Some("00000003-00000002-1".into()),
            snapshot_time: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            row_counts: BTreeMap::from([("public.t".to_owned(), 3)]),
            large_object_count: 2,
            schema_fingerprint: "ab".repeat(32),
            schema_objects: BTreeMap::new(),
            pg_dump_version: Some("15.18".into()),
            pg_dump_compression: Some("0".into()),
            dump_bytes: Some(10),
            dump_seconds: Some(0.5),
        };
        let desc = wst_core::SourceDescription {
            kind: crate::SOURCE_KIND.into(),
            name: "db".into(),
            root: "wst_dev_database.backup".into(),
            details: serde_json::to_value(&facts).unwrap(),
            listing: std::collections::BTreeMap::new(),
        };
        assert_eq!(DatabaseFacts::from_description(&desc).unwrap(), facts);
        let wrong = wst_core::SourceDescription {
            kind: "files".into(),
            ..desc
        };
        assert!(matches!(
            DatabaseFacts::from_description(&wrong),
            Err(Error::Config(_))
        ));
    }
}
