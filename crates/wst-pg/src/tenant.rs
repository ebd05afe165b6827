//! Tenant restore (issue 18; seeds/003 restore scenarios: "a single tenant, a single service,
//! an entire environment", "Partial restores must be supported where feasible"): a restored
//! scratch database reduced to one tenant's rows ([`keep_tenant`]), and those rows copied into
//! the production database without touching any other tenant ([`copy_tenant`]).
//!
//! The tenant id is always a bound parameter (`$1`, typed `text`), compared with the tenant
//! column's text form (`column::text = $1`), never spliced into SQL; table and column names
//! come from the configuration and the catalog and are quoted as identifiers.

use std::collections::{BTreeMap, BTreeSet};

use futures::{SinkExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use crate::config::{ConnectionConfig, Password};
use crate::connect::{Session, connect, query_error, quote_ident as quote};
use crate::error::{Error, Result};

/// One table of a tenant restore and its row counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantTable {
    /// `schema.table`.
    pub table: String,
    /// `true` for a shared table (reference data: it has no tenant column, or is not in the
    /// configured `tables`): kept whole in the scratch database, never copied to production.
    pub shared: bool,
    /// Rows in the table after the restore: for a tenant-owned table the tenant's rows (in the
    /// scratch database, or copied into production); for a shared table every row.
    pub kept: u64,
    /// Rows removed: in the scratch database, the rows of every other tenant (and rows whose
    /// tenant column is NULL); in production, the tenant's rows that were there before the
    /// copy replaced them. 0 for a shared table.
    pub removed: u64,
}

/// What [`keep_tenant`] or [`copy_tenant`] did, table by table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantRestore {
    /// The database changed (the scratch database, or the production database).
    pub database: String,
    /// The tenant column.
    pub column: String,
    /// Tenant-owned tables in the order their rows were deleted (children before the tables
    /// their foreign keys reference), then the shared tables by name.
    pub tables: Vec<TenantTable>,
}

impl TenantRestore {
    /// The sum of `kept` over the tenant-owned tables.
    pub fn tenant_rows(&self) -> u64 {
        self.tables
            .iter()
            .filter(|t| !t.shared)
            .map(|t| t.kept)
            .sum()
    }
}

/// `e` with `note` added to what it says (a query error keeps its variant).
fn with_context(e: Error, note: &str) -> Error {
    match e {
        Error::Query { context, detail } => Error::Query {
            context: format!("{context} ({note})"),
            detail,
        },
        Error::Config(m) => Error::Config(format!("{m} ({note})")),
        other => other,
    }
}

/// `schema.table` split and quoted: `"schema"."table"`.
fn qualified(table: &str) -> String {
    match table.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote(s), quote(t)),
        None => quote(table),
    }
}

/// A session and the password, for error redaction.
struct Db {
    session: Session,
    password: Option<Password>,
}

impl Db {
    async fn open(conn: &ConnectionConfig) -> Result<Self> {
        let password = conn.password.load()?;
        let session = connect(conn, password.as_ref()).await?;
        Ok(Self { session, password })
    }

    fn client(&self) -> &tokio_postgres::Client {
        &self.session.client
    }

    fn err(&self, context: impl Into<String>, e: &tokio_postgres::Error) -> Error {
        query_error(context, e, self.password.as_ref())
    }

    async fn batch(&self, sql: &str) -> Result<()> {
        self.client()
            .batch_execute(sql)
            .await
            .map_err(|e| self.err(format!("`{sql}`"), &e))
    }

    /// Every ordinary or partitioned table outside the system schemas (partitions left out:
    /// their parent covers them), as `schema.table`, with whether it has `column`.
    async fn tables(&self, column: &str) -> Result<BTreeMap<String, bool>> {
        let rows = self
            .client()
            .query(
                "SELECT n.nspname || '.' || c.relname, \
                        EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                                AND a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
                &[&column],
            )
            .await
            .map_err(|e| self.err("listing the tables", &e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
            .collect())
    }

    /// Foreign keys between distinct tables: `(referencing, referenced, on-delete action)`,
    /// each as `schema.table` (the action is `pg_constraint.confdeltype`).
    async fn foreign_keys(&self) -> Result<Vec<(String, String, String)>> {
        let rows = self
            .client()
            .query(
                "SELECT cn.nspname || '.' || c.relname, fn.nspname || '.' || f.relname, \
                        con.confdeltype::text \
                 FROM pg_constraint con \
                 JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
                 JOIN pg_class f ON f.oid = con.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace \
                 WHERE con.contype = 'f' AND con.conrelid <> con.confrelid",
                &[],
            )
            .await
            .map_err(|e| self.err("listing the foreign keys", &e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn count(&self, sql: &str, tenant: Option<&str>) -> Result<u64> {
        let row = match tenant {
            Some(t) => {
                let stmt = self
                    .client()
                    .prepare_typed(sql, &[Type::TEXT])
                    .await
                    .map_err(|e| self.err(format!("`{sql}`"), &e))?;
                self.client().query_one(&stmt, &[&t]).await
            }
            None => self.client().query_one(sql, &[]).await,
        }
        .map_err(|e| self.err(format!("`{sql}`"), &e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn execute(&self, sql: &str, tenant: &str) -> Result<u64> {
        let stmt = self
            .client()
            .prepare_typed(sql, &[Type::TEXT])
            .await
            .map_err(|e| self.err(format!("`{sql}`"), &e))?;
        self.client()
            .execute(&stmt, &[&tenant])
            .await
            .map_err(|e| self.err(format!("`{sql}`"), &e))
    }
}

/// The tenant-owned tables (`configured`, each checked to exist with `column`; or every table
/// with `column`) and the shared ones.
fn split_tables(
    all: &BTreeMap<String, bool>,
    configured: &[String],
    column: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let owned: BTreeSet<String> = if configured.is_empty() {
        all.iter()
            .filter(|(_, has)| **has)
            .map(|(t, _)| t.clone())
            .collect()
    } else {
        for t in configured {
            match all.get(t) {
                Some(true) => {}
                Some(false) => {
                    return Err(Error::Config(format!(
                        "[tenant] tables: `{t}` has no column `{column}` in the restored database"
                    )));
                }
                None => {
                    return Err(Error::Config(format!(
                        "[tenant] tables: `{t}` is not a table of the restored database"
                    )));
                }
            }
        }
        configured.iter().cloned().collect()
    };
    if owned.is_empty() {
        return Err(Error::Config(format!(
            "no table of the restored database has the tenant column `{column}` ([tenant] column)"
        )));
    }
    let shared = all
        .keys()
        .filter(|t| !owned.contains(*t))
        .cloned()
        .collect();
    Ok((owned.into_iter().collect(), shared))
}

/// `owned` ordered so that a table comes before every table it references by a foreign key
/// (children first: the order rows can be deleted in). Tables in a reference cycle keep their
/// name order at the end (their delete then fails on the foreign key, named by the server).
fn delete_order(owned: &[String], fks: &[(String, String, String)]) -> Vec<String> {
    let set: BTreeSet<&String> = owned.iter().collect();
    // referenced → referencing tables still to be deleted
    let mut referenced_by: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for (child, parent, _) in fks {
        if let (Some(c), Some(p)) = (set.get(child), set.get(parent)) {
            referenced_by.entry(*p).or_default().insert(*c);
        }
    }
    let mut left: BTreeSet<&String> = set.clone();
    let mut out = Vec::new();
    loop {
        let ready: Vec<&String> = left
            .iter()
            .filter(|t| {
                referenced_by
                    .get(*t)
                    .is_none_or(|children| children.iter().all(|c| !left.contains(c)))
            })
            .copied()
            .collect();
        if ready.is_empty() {
            break;
        }
        for t in ready {
            left.remove(t);
            out.push(t.clone());
        }
    }
    out.extend(left.into_iter().cloned());
    out
}

/// Reduces the restored scratch database `conn` names to the rows of `tenant`: in one
/// transaction, from every tenant-owned table (the `tables` given as `schema.table`, or, when
/// empty, every table that has `column`, found in `pg_class`/`pg_attribute`), the rows whose
/// `column::text` is not `tenant` (NULL included) are deleted, children before the tables
/// their foreign keys reference (`ON DELETE CASCADE` keys then remove the dependants of other
/// tenants in tables without the column). Tables without the column are shared reference data
/// and kept whole. Returns the per-table counts (rows kept, rows removed).
///
/// Chosen over `session_replication_role = replica` (which needs superuser and skips the
/// foreign keys' checks and cascades): the deletes run with every constraint enforced, so the
/// result is a consistent database. Tables that reference each other in a cycle fail on their
/// foreign key (nothing is deleted then).
///
/// # Warning
/// It deletes rows: give it a scratch database, never production.
///
/// # Errors
/// The connection errors of [`crate::erase_database`]; [`Error::Config`] when a configured
/// table is missing or lacks the column, or no table has it; [`Error::Query`] when a delete or
/// count fails (the transaction is rolled back: nothing is deleted).
pub async fn keep_tenant(
    conn: &ConnectionConfig,
    column: &str,
    tables: &[String],
    tenant: &str,
) -> Result<TenantRestore> {
    let db = Db::open(conn).await?;
    let all = db.tables(column).await?;
    let (owned, shared) = split_tables(&all, tables, column)?;
    let order = delete_order(&owned, &db.foreign_keys().await?);
    db.batch("BEGIN").await?;
    let done = async {
        let mut out = Vec::new();
        for t in &order {
            let removed = db
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE {}::text IS DISTINCT FROM $1",
                        qualified(t),
                        quote(column)
                    ),
                    tenant,
                )
                .await?;
            out.push((t.clone(), removed));
        }
        Ok::<_, Error>(out)
    }
    .await;
    let removed = match done {
        Ok(r) => {
            db.batch("COMMIT").await?;
            r
        }
        Err(e) => {
            db.batch("ROLLBACK").await.ok();
            return Err(e);
        }
    };
    let mut out = Vec::new();
    for (t, removed) in removed {
        let kept = db
            .count(&format!("SELECT count(*) FROM {}", qualified(&t)), None)
            .await?;
        out.push(TenantTable {
            table: t,
            shared: false,
            kept,
            removed,
        });
    }
    for t in shared {
        let kept = db
            .count(&format!("SELECT count(*) FROM {}", qualified(&t)), None)
            .await?;
        out.push(TenantTable {
            table: t,
            shared: true,
            kept,
            removed: 0,
        });
    }
    Ok(TenantRestore {
        database: conn.database.clone(),
        column: column.to_owned(),
        tables: out,
    })
}

/// The columns of `table` a `COPY` carries (not dropped, not generated), in their order.
async fn copy_columns(db: &Db, table: &str) -> Result<Vec<String>> {
    let rows = db
        .client()
        .query(
            "SELECT a.attname FROM pg_attribute a \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attgenerated = '' ORDER BY a.attnum",
            &[&qualified(table)],
        )
        .await
        .map_err(|e| db.err(format!("reading the columns of `{table}`"), &e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Copies the rows of `tenant` from the scratch database `scratch` (already reduced to that
/// tenant by [`keep_tenant`]) into the production database `production`, in ONE transaction
/// there: for every tenant-owned table of `restored` (its `tables` that are not shared, in
/// their delete order) the tenant's current rows (`column::text = $1`) are deleted, children
/// first; then each table's restored rows are streamed in, parents first (`COPY (SELECT cols
/// FROM t) TO STDOUT` from the scratch database into `COPY t (cols) FROM STDIN`, text format,
/// the columns named, generated columns left out). Rows of other tenants and shared tables are
/// never touched. Sequences are not changed (restored rows keep their ids, which the
/// production sequences have already passed).
///
/// Refused before anything is written: a scratch table that still holds a row of another
/// tenant; a tenant-owned table missing in production; a foreign key from a table that is not
/// tenant-owned onto a tenant-owned one with `ON DELETE CASCADE`, `SET NULL` or `SET DEFAULT`
/// (deleting the tenant's rows would change rows the copy does not put back).
///
/// # Warning
/// It writes into production: the caller must hold (and have audited) a break-glass
/// authorization (doctrine 026 L6).
///
/// # Errors
/// The connection errors of [`crate::erase_database`] for either database; [`Error::Config`]
/// for a refusal above, or when the deletes changed other tenants' rows (rolled back);
/// [`Error::Query`] when a delete or copy fails (the production transaction is rolled back:
/// nothing changed, and the message says so) or when `COMMIT` fails (the outcome is unknown,
/// and the message says so).
pub async fn copy_tenant(
    scratch: &ConnectionConfig,
    production: &ConnectionConfig,
    restored: &TenantRestore,
    tenant: &str,
) -> Result<TenantRestore> {
    let from = Db::open(scratch).await?;
    let into = Db::open(production).await?;
    let column = restored.column.as_str();
    let owned: Vec<&str> = restored
        .tables
        .iter()
        .filter(|t| !t.shared)
        .map(|t| t.table.as_str())
        .collect();
    for t in &owned {
        let others = from
            .count(
                &format!(
                    "SELECT count(*) FROM {} WHERE {}::text IS DISTINCT FROM $1",
                    qualified(t),
                    quote(column)
                ),
                Some(tenant),
            )
            .await?;
        if others > 0 {
            return Err(Error::Config(format!(
                "the scratch database's `{t}` holds {others} rows of other tenants; nothing copied"
            )));
        }
    }
    let prod_tables = into.tables(column).await?;
    for t in &owned {
        if prod_tables.get(*t) != Some(&true) {
            return Err(Error::Config(format!(
                "`{t}` with column `{column}` is not in the production database; nothing copied"
            )));
        }
    }
    let owned_set: BTreeSet<&str> = owned.iter().copied().collect();
    for (child, parent, action) in into.foreign_keys().await? {
        // A cascade from a shared table, or SET NULL / SET DEFAULT anywhere, would change rows
        // the tenant does not own; a cascade between tenant-owned tables is checked by the
        // counts below.
        let refused = owned_set.contains(parent.as_str())
            && (matches!(action.as_str(), "n" | "d")
                || (action == "c" && !owned_set.contains(child.as_str())));
        if refused {
            return Err(Error::Config(format!(
                "`{child}` references `{parent}` with an ON DELETE action that replacing the \
                 tenant's rows would apply to rows it does not own; add `{child}` to [tenant] \
                 tables (with the tenant column) or restore it by hand; nothing copied"
            )));
        }
    }
    let others_sql = |t: &str| {
        format!(
            "SELECT count(*) FROM {} WHERE {}::text IS DISTINCT FROM $1",
            qualified(t),
            quote(column)
        )
    };
    into.batch("BEGIN").await?;
    let done = async {
        // Other tenants' rows per table, before and after: an ON DELETE CASCADE between
        // tenants' rows must not go unnoticed.
        let mut others = BTreeMap::new();
        for t in &owned {
            others.insert(*t, into.count(&others_sql(t), Some(tenant)).await?);
        }
        let mut removed = BTreeMap::new();
        for t in &owned {
            let n = into
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE {}::text = $1",
                        qualified(t),
                        quote(column)
                    ),
                    tenant,
                )
                .await?;
            removed.insert(*t, n);
        }
        let mut copied = BTreeMap::new();
        for t in owned.iter().rev() {
            let cols = copy_columns(&from, t).await?;
            let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            let out_sql = format!("COPY (SELECT {list} FROM {}) TO STDOUT", qualified(t));
            let in_sql = format!("COPY {} ({list}) FROM STDIN", qualified(t));
            let stream = from
                .client()
                .copy_out(out_sql.as_str())
                .await
                .map_err(|e| from.err(format!("reading `{t}` from the scratch database"), &e))?;
            let sink = into
                .client()
                .copy_in::<_, bytes::Bytes>(in_sql.as_str())
                .await
                .map_err(|e| into.err(format!("writing `{t}` into production"), &e))?;
            futures::pin_mut!(stream);
            futures::pin_mut!(sink);
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| from.err(format!("reading `{t}` from the scratch database"), &e))?
            {
                sink.send(chunk)
                    .await
                    .map_err(|e| into.err(format!("writing `{t}` into production"), &e))?;
            }
            let n = sink
                .finish()
                .await
                .map_err(|e| into.err(format!("writing `{t}` into production"), &e))?;
            copied.insert(*t, n);
        }
        for t in &owned {
            let after = into.count(&others_sql(t), Some(tenant)).await?;
            if after != others[t] {
                return Err(Error::Config(format!(
                    "replacing the tenant's rows changed other tenants' rows in `{t}` ({} \
                     before, {after} after: an ON DELETE CASCADE across tenants); rolled back, \
                     nothing changed",
                    others[t]
                )));
            }
        }
        Ok::<_, Error>((removed, copied))
    }
    .await;
    let (removed, copied) = match done {
        Ok(r) => {
            if let Err(e) = into.batch("COMMIT").await {
                return Err(with_context(
                    e,
                    "COMMIT of the tenant's rows into production failed, so its outcome is \
                     unknown: check the production tables before anything else",
                ));
            }
            r
        }
        Err(e) => {
            if let Err(re) = into.batch("ROLLBACK").await {
                tracing::error!(error = %re, "ROLLBACK of the tenant copy failed; the server rolls back when the session ends");
            }
            return Err(with_context(
                e,
                "the production transaction was rolled back: nothing changed there",
            ));
        }
    };
    Ok(TenantRestore {
        database: production.database.clone(),
        column: column.to_owned(),
        tables: owned
            .iter()
            .map(|t| TenantTable {
                table: (*t).to_owned(),
                shared: false,
                kept: copied.get(t).copied().unwrap_or(0),
                removed: removed.get(t).copied().unwrap_or(0),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(c: &str, p: &str) -> (String, String, String) {
        (c.into(), p.into(), "a".into())
    }

    /// Children before the tables they reference; unrelated and outside tables ignored.
    #[test]
    fn delete_order_puts_children_first() {
        let owned = [
            "app.customers",
            "app.orders",
            "billing.invoices",
            "app.lines",
        ]
        .map(String::from)
        .to_vec();
        let fks = [
            fk("app.orders", "app.customers"),
            fk("billing.invoices", "app.orders"),
            fk("app.lines", "app.orders"),
            fk("app.orders", "ref.countries"),
        ];
        let order = delete_order(&owned, &fks);
        let pos = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert_eq!(order.len(), 4);
        assert!(pos("billing.invoices") < pos("app.orders"));
        assert!(pos("app.lines") < pos("app.orders"));
        assert!(pos("app.orders") < pos("app.customers"));
        // A cycle keeps its tables, at the end.
        let order = delete_order(
            &["a.x", "a.y", "a.z"].map(String::from),
            &[fk("a.x", "a.y"), fk("a.y", "a.x")],
        );
        assert_eq!(order, ["a.z", "a.x", "a.y"]);
    }

    /// Identifiers are quoted with `"` doubled.
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(qualified("app.orders"), "\"app\".\"orders\"");
        assert_eq!(quote("te\"nant"), "\"te\"\"nant\"");
    }

    /// Configured tables must exist with the column; default: every table with the column.
    #[test]
    fn tables_split_into_owned_and_shared() {
        let all: BTreeMap<String, bool> = [
            ("app.orders".to_owned(), true),
            ("app.customers".to_owned(), true),
            ("ref.countries".to_owned(), false),
        ]
        .into();
        let (owned, shared) = split_tables(&all, &[], "tenant_id").unwrap();
        assert_eq!(owned, ["app.customers", "app.orders"]);
        assert_eq!(shared, ["ref.countries"]);
        let (owned, shared) = split_tables(&all, &["app.orders".into()], "tenant_id").unwrap();
        assert_eq!(owned, ["app.orders"]);
        assert_eq!(shared, ["app.customers", "ref.countries"]);
        let e = split_tables(&all, &["ref.countries".into()], "tenant_id").unwrap_err();
        assert!(e.to_string().contains("has no column `tenant_id`"), "{e}");
        let e = split_tables(&all, &["app.nope".into()], "tenant_id").unwrap_err();
        assert!(e.to_string().contains("not a table"), "{e}");
        let none: BTreeMap<String, bool> = [("ref.countries".to_owned(), false)].into();
        assert!(split_tables(&none, &[], "tenant_id").is_err());
    }
}
