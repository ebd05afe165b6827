//! Selective database restore: a `pg_restore --use-list` list built from the dump's table of
//! contents (`pg_restore --list --verbose`, which prints each item's dependencies).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::{Error, Result};

/// One item of a custom-format dump's table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TocItem {
    /// The dump id (first field).
    pub(crate) id: u32,
    /// The item type, e.g. `TABLE`, `TABLE DATA`, `FK CONSTRAINT`.
    pub(crate) desc: String,
    /// The schema, `None` for `-`.
    pub(crate) namespace: Option<String>,
    /// The tag: the object name (a table's name; `table constraint` for constraints).
    pub(crate) tag: String,
    /// The item's line as `pg_restore --list` printed it (what `--use-list` reads).
    pub(crate) line: String,
    /// Dump ids this item depends on.
    pub(crate) deps: Vec<u32>,
}

/// Item types of more than one word, longest first, so the type is split off the line
/// unambiguously (`pg_dump`'s `pg_backup_archiver.c` / `pg_dump.c` descriptions).
const MULTI_WORD: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "TEXT SEARCH PARSER",
    "PROCEDURAL LANGUAGE",
    "SEQUENCE OWNED BY",
    "MATERIALIZED VIEW",
    "PUBLICATION TABLE",
    "CHECK CONSTRAINT",
    "OPERATOR FAMILY",
    "OPERATOR CLASS",
    "BLOB METADATA",
    "ACCESS METHOD",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "USER MAPPING",
    "DEFAULT ACL",
    "SHELL TYPE",
    "TABLE DATA",
];

/// Relations: never pulled in as a dependency (that would restore an unselected table); an
/// item that needs an unselected one is left out.
const RELATIONS: &[&str] = &[
    "TABLE",
    "FOREIGN TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "TABLE DATA",
    "MATERIALIZED VIEW DATA",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX",
];

/// Items that belong to a selected table: its partitions and inheritance children (a parent's
/// `count(*)` includes their rows), its data, constraints, indexes, defaults, owned sequences
/// and their values, triggers, policies, rules, comments, statistics — what a whole-database
/// restore would create for it.
const ATTACHED: &[&str] = &[
    "TABLE",
    "TABLE ATTACH",
    "TABLE DATA",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "DEFAULT",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX",
    "INDEX ATTACH",
    "TRIGGER",
    "POLICY",
    "ROW SECURITY",
    "RULE",
    "COMMENT",
    "STATISTICS",
    "ACL",
];

/// Session settings every restore needs.
const ALWAYS: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

/// Parses `pg_restore --list --verbose` output: `ID; CATALOG OID TYPE SCHEMA TAG OWNER` lines,
/// each optionally followed by `;\tdepends on: ID ID …`.
///
/// The list format does not quote names: a schema name containing a space cannot be told apart
/// and such items are matched by their first word only (documented limitation).
pub(crate) fn parse_list(text: &str) -> Vec<TocItem> {
    let mut items: Vec<TocItem> = Vec::new();
    for line in text.lines() {
        if let Some(deps) = line.strip_prefix(";\tdepends on:") {
            if let Some(last) = items.last_mut() {
                last.deps.extend(
                    deps.split_whitespace()
                        .filter_map(|d| d.parse::<u32>().ok()),
                );
            }
            continue;
        }
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        if let Some(item) = parse_item(line) {
            items.push(item);
        }
    }
    items
}

fn parse_item(line: &str) -> Option<TocItem> {
    let (id, rest) = line.split_once("; ")?;
    let id = id.trim().parse::<u32>().ok()?;
    let mut parts = rest.splitn(3, ' ');
    let _catalog = parts.next()?;
    let _oid = parts.next()?;
    let rest = parts.next()?;
    let desc = MULTI_WORD
        .iter()
        .find(|d| rest.starts_with(*d) && rest.as_bytes().get(d.len()) == Some(&b' '))
        .map_or_else(|| rest.split(' ').next().unwrap_or(""), |d| *d);
    let rest = rest.get(desc.len() + 1..).unwrap_or("");
    let (namespace, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    // The owner is the last word (empty for items without one: the line ends with a space).
    let tag = rest.rsplit_once(' ').map_or(rest, |(tag, _owner)| tag);
    Some(TocItem {
        id,
        desc: desc.to_owned(),
        namespace: (namespace != "-").then(|| namespace.to_owned()),
        tag: tag.to_owned(),
        line: line.to_owned(),
        deps: Vec::new(),
    })
}

/// Splits a `schema.table` selector into its parts: `public.users`, `"my.schema".users`,
/// `app."odd name"` (double quotes for names containing `.` or `"`, with `""` for `"`; the
/// same form as [`crate::table_key`]).
///
/// # Errors
/// [`Error::Config`] when it is not `schema.table`.
pub(crate) fn parse_table(selector: &str) -> Result<(String, String)> {
    let bad = || {
        Error::Config(format!(
            "table `{selector}`: expected `schema.table` (double-quote a name containing `.`)"
        ))
    };
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = selector.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '.' if !quoted => {
                parts.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(bad());
    }
    parts.push(cur);
    match <[String; 2]>::try_from(parts) {
        Ok([schema, table]) if !schema.is_empty() && !table.is_empty() => Ok((schema, table)),
        _ => Err(bad()),
    }
}

/// What [`plan`] selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The `--use-list` file's content: the selected item lines in the dump's order.
    pub(crate) list: String,
    /// Table keys ([`crate::table_key`]) whose table definition is restored.
    pub(crate) tables: BTreeSet<String>,
    /// Items selected, of items in the dump.
    pub(crate) items: (usize, usize),
}

/// Chooses the items for a restore of only `tables` (`(schema, table)`) and every object of
/// `schemas`:
/// 1. seeds: the `TABLE` items of the tables; every item in the schemas (and the schemas);
/// 2. attached: items of the kinds in `ATTACHED` that depend on an item of 1 or 2 — the
///    table's partitions and inheritance children, data, constraints, indexes, defaults, owned
///    sequences and their values, triggers …;
/// 3. dependencies: what those depend on (schemas, types, functions, sequences and their
///    values), recursively — but never another relation, and nothing that merely belongs to a
///    dependency (a table typed by a pulled type is not restored). An item that needs an
///    unselected table (a foreign key to it, a view over it) is left out; a selected table
///    itself is always created (a partition standalone; an inheritance child without its
///    parent fails in `pg_restore`, naming the parent);
///
/// repeated until nothing changes; plus the session settings (`ENCODING`, `STDSTRINGS`,
/// `SEARCHPATH`). Large objects and the `DATABASE` item are never selected. `pg_restore`
/// then restores the list in dependency order (also with `--jobs`).
///
/// # Errors
/// [`Error::SelectionUnmatched`] naming every table or schema not in the dump.
pub(crate) fn plan(
    items: &[TocItem],
    tables: &[(String, String)],
    schemas: &[String],
) -> Result<Plan> {
    let by_id: HashMap<u32, &TocItem> = items.iter().map(|i| (i.id, i)).collect();
    let is_relation = |id: &u32| {
        by_id
            .get(id)
            .is_some_and(|i| RELATIONS.contains(&i.desc.as_str()))
    };
    let in_schemas = |i: &TocItem| {
        i.namespace.as_ref().is_some_and(|n| schemas.contains(n))
            || (i.desc == "SCHEMA" && schemas.contains(&i.tag))
    };
    let mut missing = Vec::new();
    let mut seeds: HashSet<u32> = HashSet::new();
    for (schema, table) in tables {
        let found: Vec<u32> = items
            .iter()
            .filter(|i| {
                matches!(i.desc.as_str(), "TABLE" | "FOREIGN TABLE")
                    && i.namespace.as_deref() == Some(schema)
                    && i.tag == *table
            })
            .map(|i| i.id)
            .collect();
        if found.is_empty() {
            missing.push(crate::facts::table_key(schema, table));
        }
        seeds.extend(found);
    }
    for s in schemas {
        let found: Vec<u32> = items
            .iter()
            .filter(|i| in_schemas(i) && (i.namespace.as_ref() == Some(s) || i.tag == *s))
            .map(|i| i.id)
            .collect();
        if found.is_empty() {
            missing.push(format!("schema {s}"));
        }
        seeds.extend(found);
    }
    if !missing.is_empty() {
        return Err(Error::SelectionUnmatched { missing });
    }
    let excluded = |i: &TocItem| {
        matches!(
            i.desc.as_str(),
            "DATABASE" | "BLOB" | "BLOBS" | "BLOB METADATA" | "LARGE OBJECT"
        ) || (i.desc == "COMMENT" && i.namespace.is_none() && i.tag.starts_with("DATABASE "))
    };
    // `full`: the selection proper (seeds and what belongs to them); `pulled`: definitions
    // they need (schemas, types, functions, sequences), without what belongs to those.
    let mut full: HashSet<u32> = HashSet::new();
    let mut pulled: HashSet<u32> = HashSet::new();
    loop {
        let before = (full.len(), pulled.len());
        for i in items {
            if full.contains(&i.id) || excluded(i) {
                continue;
            }
            let seed = seeds.contains(&i.id);
            let candidate = seed
                || (ATTACHED.contains(&i.desc.as_str()) && i.deps.iter().any(|d| full.contains(d)))
                || (i.desc == "SEQUENCE SET" && i.deps.iter().any(|d| pulled.contains(d)));
            // A selected table is created even when it depends on an unselected one (a
            // partition is created standalone; an inheritance child then fails loudly).
            let table_seed = seed && i.desc == "TABLE";
            let needs_unselected_relation = i
                .deps
                .iter()
                .any(|d| is_relation(d) && !full.contains(d) && !pulled.contains(d));
            if candidate && (table_seed || !needs_unselected_relation) {
                full.insert(i.id);
                pulled.remove(&i.id);
            }
        }
        // Dependencies (not relations), recursively.
        let mut stack: Vec<u32> = full.iter().chain(&pulled).copied().collect();
        while let Some(id) = stack.pop() {
            let Some(item) = by_id.get(&id) else { continue };
            for d in &item.deps {
                if full.contains(d) || pulled.contains(d) || is_relation(d) {
                    continue;
                }
                if let Some(dep) = by_id.get(d)
                    && !excluded(dep)
                {
                    pulled.insert(*d);
                    stack.push(*d);
                }
            }
        }
        if (full.len(), pulled.len()) == before {
            break;
        }
    }
    let selected: HashSet<u32> = full.union(&pulled).copied().collect();
    let mut list = String::new();
    let mut restored = BTreeSet::new();
    let mut count = 0;
    for i in items {
        if selected.contains(&i.id) || (ALWAYS.contains(&i.desc.as_str()) && i.namespace.is_none())
        {
            list.push_str(&i.line);
            list.push('\n');
            count += 1;
            if i.desc == "TABLE" && selected.contains(&i.id) {
                restored.insert(crate::facts::table_key(
                    i.namespace.as_deref().unwrap_or(""),
                    &i.tag,
                ));
            }
        }
    }
    Ok(Plan {
        list,
        tables: restored,
        items: (count, items.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore --list --verbose` of a two-schema database (PostgreSQL 15): serial and
    /// identity keys, an enum, an index, a trigger with its function, a view, foreign keys
    /// across tables and schemas, a table name with a space.
    const TOC: &str = "\
;
; Selected TOC Entries:
;
3385; 0 0 ENCODING - ENCODING 
3386; 0 0 STDSTRINGS - STDSTRINGS 
3387; 0 0 SEARCHPATH - SEARCHPATH 
3388; 1262 5 DATABASE - postgres postgres
3389; 0 0 COMMENT - DATABASE postgres postgres
;\tdepends on: 3388
7; 2615 16385 SCHEMA - app postgres
6; 2615 16384 SCHEMA - billing postgres
847; 1247 16387 TYPE app mood postgres
;\tdepends on: 7
224; 1255 16431 FUNCTION app trg() postgres
;\tdepends on: 7
219; 1259 16402 TABLE app orders postgres
;\tdepends on: 7
218; 1259 16401 SEQUENCE app orders_id_seq postgres
;\tdepends on: 219 7
217; 1259 16392 TABLE app users postgres
;\tdepends on: 7 847
3390; 0 0 COMMENT app TABLE users postgres
;\tdepends on: 217
216; 1259 16391 SEQUENCE app users_id_seq postgres
;\tdepends on: 7 217
3391; 0 0 SEQUENCE OWNED BY app users_id_seq postgres
;\tdepends on: 216
223; 1259 16433 VIEW app v postgres
;\tdepends on: 217 217 217 847 7
221; 1259 16415 TABLE billing invoices postgres
;\tdepends on: 6
220; 1259 16414 SEQUENCE billing invoices_id_seq postgres
;\tdepends on: 221 6
3392; 0 0 SEQUENCE OWNED BY billing invoices_id_seq postgres
;\tdepends on: 220
222; 1259 16428 TABLE public odd name postgres
3221; 2604 16395 DEFAULT app users id postgres
;\tdepends on: 216 217 217
3222; 2604 16418 DEFAULT billing invoices id postgres
;\tdepends on: 221 220 221
3379; 0 16402 TABLE DATA app orders postgres
;\tdepends on: 219
3377; 0 16392 TABLE DATA app users postgres
;\tdepends on: 217
3381; 0 16415 TABLE DATA billing invoices postgres
;\tdepends on: 221
3382; 0 16428 TABLE DATA public odd name postgres
;\tdepends on: 222
3393; 0 0 SEQUENCE SET app orders_id_seq postgres
;\tdepends on: 218
3394; 0 0 SEQUENCE SET app users_id_seq postgres
;\tdepends on: 216
3395; 0 0 SEQUENCE SET billing invoices_id_seq postgres
;\tdepends on: 220
3227; 2606 16408 CONSTRAINT app orders orders_pkey postgres
;\tdepends on: 219
3225; 2606 16399 CONSTRAINT app users users_pkey postgres
;\tdepends on: 217
3229; 2606 16422 CONSTRAINT billing invoices invoices_pkey postgres
;\tdepends on: 221
3223; 1259 16400 INDEX app users_name_idx postgres
;\tdepends on: 217
3232; 2620 16432 TRIGGER app users t postgres
;\tdepends on: 224 217
3230; 2606 16409 FK CONSTRAINT app orders orders_user_id_fkey postgres
;\tdepends on: 217 3225 219
3231; 2606 16423 FK CONSTRAINT billing invoices invoices_order_id_fkey postgres
;\tdepends on: 3227 221 219
";

    fn ids(plan: &Plan) -> Vec<u32> {
        plan.list
            .lines()
            .map(|l| l.split(';').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn parses_items_types_and_dependencies() {
        let items = parse_list(TOC);
        assert_eq!(items.len(), 36);
        let fk = items.iter().find(|i| i.id == 3230).unwrap();
        assert_eq!(fk.desc, "FK CONSTRAINT");
        assert_eq!(fk.namespace.as_deref(), Some("app"));
        assert_eq!(fk.tag, "orders orders_user_id_fkey");
        assert_eq!(fk.deps, [217, 3225, 219]);
        let odd = items.iter().find(|i| i.id == 3382).unwrap();
        assert_eq!(
            (odd.desc.as_str(), odd.tag.as_str()),
            ("TABLE DATA", "odd name")
        );
        let enc = items.iter().find(|i| i.id == 3385).unwrap();
        assert_eq!(
            (enc.namespace.as_deref(), enc.tag.as_str()),
            (None, "ENCODING")
        );
        let owned = items.iter().find(|i| i.id == 3391).unwrap();
        assert_eq!(owned.desc, "SEQUENCE OWNED BY");
    }

    #[test]
    fn one_table_brings_its_own_objects_and_no_other_table() {
        let items = parse_list(TOC);
        let plan = plan(&items, &[("app".into(), "users".into())], &[]).unwrap();
        assert_eq!(
            ids(&plan),
            [
                3385, 3386, 3387, // session settings
                7, 847, 224, // schema, enum type, trigger function (dependencies)
                217, 3390, 216, 3391, // table, comment, serial sequence, owned by
                3221, 3377, 3394, 3225, 3223,
                3232, // default, data, seq value, pk, index, trigger
            ]
        );
        assert_eq!(plan.tables, BTreeSet::from(["app.users".to_owned()]));
        assert_eq!(plan.items, (16, 36));
    }

    #[test]
    fn foreign_keys_and_views_need_every_relation_selected() {
        let items = parse_list(TOC);
        let only_orders = plan(&items, &[("app".into(), "orders".into())], &[]).unwrap();
        let got = ids(&only_orders);
        assert!(got.contains(&218) && got.contains(&3379) && got.contains(&3227));
        assert!(!got.contains(&3230), "the FK to app.users is left out");
        assert!(
            !got.contains(&217) && !got.contains(&3377),
            "app.users is not pulled in"
        );
        let both = plan(
            &items,
            &[
                ("app".into(), "orders".into()),
                ("app".into(), "users".into()),
            ],
            &[],
        )
        .unwrap();
        assert!(
            ids(&both).contains(&3230),
            "the FK between selected tables is kept"
        );
        assert!(
            !ids(&both).contains(&223),
            "a view is not part of a table selection"
        );
        let schema = plan(&items, &[], &["app".into()]).unwrap();
        let got = ids(&schema);
        assert!(got.contains(&223) && got.contains(&3230) && got.contains(&3379));
        assert!(!got.contains(&221) && !got.contains(&3231) && !got.contains(&6));
        assert_eq!(
            schema.tables,
            BTreeSet::from(["app.orders".to_owned(), "app.users".to_owned()])
        );
    }

    /// Partitions, an inheritance child and a table typed by a composite type.
    const FAMILY: &str = "\
3385; 0 0 ENCODING - ENCODING 
7; 2615 16385 SCHEMA - app postgres
850; 1247 16500 TYPE app pair postgres
;\tdepends on: 7
217; 1259 16392 TABLE app users postgres
;\tdepends on: 7 850
226; 1259 16449 TABLE app kid postgres
;\tdepends on: 7 217
230; 1259 16460 TABLE app typed postgres
;\tdepends on: 7 850
224; 1259 16441 TABLE app events postgres
;\tdepends on: 7
225; 1259 16444 TABLE app events_2025 postgres
;\tdepends on: 7 224
3233; 0 0 TABLE ATTACH app events_2025 postgres
;\tdepends on: 225 224
3377; 0 16392 TABLE DATA app users postgres
;\tdepends on: 217
3398; 0 16449 TABLE DATA app kid postgres
;\tdepends on: 226
3399; 0 16460 TABLE DATA app typed postgres
;\tdepends on: 230
3397; 0 16444 TABLE DATA app events_2025 postgres
;\tdepends on: 225
";

    #[test]
    fn parents_bring_children_and_pulled_types_bring_nothing_else() {
        let items = parse_list(FAMILY);
        let t = |s: &str| vec![("app".to_owned(), s.to_owned())];
        let users = plan(&items, &t("users"), &[]).unwrap();
        assert_eq!(ids(&users), [3385, 7, 850, 217, 226, 3377, 3398]);
        assert_eq!(
            users.tables,
            BTreeSet::from(["app.kid".to_owned(), "app.users".to_owned()]),
            "an inheritance child (counted in the parent's count(*)) comes along; \
             the table typed by the pulled type does not"
        );
        let events = plan(&items, &t("events"), &[]).unwrap();
        assert_eq!(ids(&events), [3385, 7, 224, 225, 3233, 3397]);
        let partition = plan(&items, &t("events_2025"), &[]).unwrap();
        assert_eq!(
            ids(&partition),
            [3385, 7, 225, 3397],
            "standalone, not attached"
        );
    }

    #[test]
    fn unknown_tables_and_schemas_are_named() {
        let items = parse_list(TOC);
        let err = plan(
            &items,
            &[
                ("app".into(), "nope".into()),
                ("public".into(), "odd name".into()),
            ],
            &["ghost".into()],
        )
        .unwrap_err();
        match err {
            Error::SelectionUnmatched { missing } => {
                assert_eq!(missing, ["app.nope", "schema ghost"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn table_selectors_parse_like_table_keys() {
        assert_eq!(
            parse_table("public.users").unwrap(),
            ("public".into(), "users".into())
        );
        assert_eq!(
            parse_table("\"a.b\".c").unwrap(),
            ("a.b".into(), "c".into())
        );
        assert_eq!(
            parse_table("x.\"say \"\"hi\"\"\"").unwrap(),
            ("x".into(), "say \"hi\"".into())
        );
        for bad in ["users", "a.b.c", ".t", "s.", "\"a.b"] {
            assert!(matches!(parse_table(bad), Err(Error::Config(_))), "{bad}");
        }
    }
}
