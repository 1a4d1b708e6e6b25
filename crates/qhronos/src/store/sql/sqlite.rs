//! SQLite's spelling of the store's statements.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{Col, Dialect, Push, Rows, Val};
use crate::store::Result;
use uuid::Uuid;

/// Values per statement a caller sends at most (it chunks its rows by [`Dialect::max_rows`]);
/// the rows travel as one JSON parameter, so this bounds a statement's memory, not SQLite's
/// variable limit.
const MAX_VARS: usize = 32_000;

/// Rows to insert as one JSON array of arrays (`[["id", 3, null], …]`), bound as a single
/// parameter and unpacked with `json_each`: the statement's text depends on its columns only,
/// not on the number of rows. With a `VALUES` list of placeholders every row count was another
/// statement, prepared anew and kept in the connection's statement cache (a group commit of 512
/// creates is a program of tens of thousands of instructions): up to megabytes each, a hundred
/// of them on the write connection.
fn rows_json(rows: Rows) -> String {
    let mut out = String::with_capacity(rows.len() * 64);
    out.push('[');
    for (i, row) in rows.into_iter().enumerate() {
        out.push_str(if i == 0 { "[" } else { ",[" });
        for (k, v) in row.into_iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            push_json(&mut out, v);
        }
        out.push(']');
    }
    out.push(']');
    out
}

/// One value as JSON: `->>` gives it back as TEXT, INTEGER or NULL (a boolean as 0 or 1, as
/// a bound `bool` is stored).
fn push_json(out: &mut String, v: Val) {
    use std::fmt::Write as _;
    match v {
        Val::Text(Some(t)) => match serde_json::to_string(&t) {
            Ok(quoted) => out.push_str(&quoted),
            // A `String` always serialises; keep the statement well-formed regardless.
            Err(_) => out.push_str("null"),
        },
        Val::Text(None) | Val::Int(None) => out.push_str("null"),
        Val::Int(Some(i)) => {
            let _ = write!(out, "{i}");
        }
        Val::Bool(b) => out.push(if b { '1' } else { '0' }),
    }
}

/// `j.value ->> 0 AS a, j.value ->> 1 AS b, …` for the columns of `rows_json`'s rows.
fn unpacked(cols: &[Col]) -> String {
    cols.iter()
        .enumerate()
        .map(|(i, c)| format!("j.value ->> {i} AS {}", c.0))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl Dialect for Sqlite {
    type Rec = SqliteRow;

    fn indexed_by(index: &str) -> String {
        format!(" INDEXED BY {index}")
    }
    const FOR_UPDATE: &'static str = "";
    fn skip_locked(_: &str) -> String {
        String::new()
    }
    const PARTITIONED: bool = false;
    const KEYED_PLANS: Option<[&'static str; 2]> = None;
    const GREATEST: &'static str = "max";
    fn sum_json_counts(a: &str, b: &str) -> String {
        format!(
            "(SELECT json_group_object(k, s) FROM (SELECT key AS k, SUM(value) AS s FROM \
             (SELECT key, value FROM json_each({a}) UNION ALL SELECT key, value FROM json_each({b})) \
             GROUP BY key))"
        )
    }
    fn latest_in_group(value: &str, by: &str) -> String {
        // With one max() and no other min()/max(), a bare column comes from the max's row.
        format!("max({by}) AS latest_{by}, {value}")
    }
    fn concat_agg(column: &str) -> String {
        format!("group_concat({column}, '')")
    }
    // SQLite takes the tables of a CROSS JOIN in the order written.
    const JOIN_IN_ORDER: &'static str = "CROSS JOIN";
    // SQLite's LIKE ignores ASCII case already.
    const RECEIPT: &'static str = "lower(hex(randomblob(16)))";

    fn max_rows(cols: usize) -> usize {
        (MAX_VARS / cols.max(1)).max(1)
    }

    fn bind(q: &mut QueryBuilder<Sqlite>, v: Val) {
        match v {
            Val::Text(t) => q.push_bind(t),
            Val::Int(i) => q.push_bind(i),
            Val::Bool(b) => q.push_bind(b),
        };
    }

    fn push_insert_rows(q: &mut QueryBuilder<Sqlite>, cols: &[Col], rows: Rows) {
        // `WHERE true`: an `INSERT … SELECT` followed by `ON CONFLICT` needs a WHERE clause,
        // or SQLite reads the `ON` as a join constraint.
        q.push(format!(" SELECT {} FROM json_each(", unpacked(cols)))
            .push_bind(rows_json(rows))
            .push(") AS j WHERE true");
    }

    fn push_relation(q: &mut QueryBuilder<Sqlite>, alias: &str, cols: &[Col], rows: Rows) {
        // A VALUES list of placeholders, not `json_each`: a relation is joined, and SQLite's
        // planner knows a VALUES list's row count but guesses a table-valued function's. With
        // `json_each` it drove the outcome update from the `status` index and probed the JSON
        // once per scheduled row (a burst of 100,000 stalled). A VALUES list's columns are
        // column1, column2, …: name them.
        let named: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("column{} AS {}", i + 1, c.0))
            .collect();
        q.push(format!("(SELECT {} FROM (VALUES ", named.join(", ")));
        for (i, row) in rows.into_iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.vals(row);
            q.push(")");
        }
        q.push(format!(")) AS {alias}"));
    }

    fn bind_f64(q: &mut QueryBuilder<Sqlite>, v: f64) {
        q.push_bind(v);
    }

    fn push_search_hits(q: &mut QueryBuilder<Sqlite>, terms: &[String], window: i64) {
        // FTS5 walks the matches newest first (by rowid) and stops after `window`, so bm25 is
        // computed for those only; it is lower for better matches, so it is negated. Weights:
        // name, description, tags, metadata. Deleted events are not indexed.
        q.push(
            "(SELECT rowid AS k, -bm25(events_fts, 10.0, 2.0, 5.0, 1.0) AS score \
             FROM events_fts WHERE events_fts MATCH ",
        );
        q.val(fts_expr(terms));
        q.push(format!(" ORDER BY rowid DESC LIMIT {window}) AS h"));
    }

    fn push_search_older(
        q: &mut QueryBuilder<Sqlite>,
        terms: &[String],
        window: i64,
        after: Option<Uuid>,
    ) {
        let expr = fts_expr(terms);
        q.push("(SELECT rowid AS k FROM events_fts WHERE events_fts MATCH ");
        q.val(expr.clone());
        // Older than the window's oldest match (none when the window holds every match).
        q.push(
            " AND rowid < (SELECT r FROM (SELECT rowid AS r FROM events_fts \
             WHERE events_fts MATCH ",
        );
        q.val(expr);
        q.push(format!(
            " ORDER BY rowid DESC LIMIT {window}) ORDER BY r LIMIT 1)"
        ));
        if let Some(id) = after {
            q.push(" AND rowid < ");
            Self::push_search_key_of(q, id);
        }
        q.push(") AS h");
    }

    const SEARCH_KEY: &'static str = "rowid";

    fn push_search_key_of(q: &mut QueryBuilder<Sqlite>, id: Uuid) {
        q.push("(SELECT rowid FROM events WHERE id = ")
            .val(id)
            .push(")");
    }

    const SEARCH_PROBE: &'static str =
        "SELECT rowid FROM events_fts WHERE events_fts MATCH '\"qhronosprobe\"*' LIMIT 1";

    fn push_in(q: &mut QueryBuilder<Sqlite>, expr: &str, vals: Vec<String>) {
        // Placeholders, for the planner (see `push_relation`).
        q.push(format!("{expr} IN ("));
        q.vals(vals);
        q.push(")");
    }

    fn push_within(q: &mut QueryBuilder<Sqlite>, column: &str, scope: &[String]) {
        q.push(format!(
            " AND {column} IS NOT NULL AND {column} <> '[]' AND NOT EXISTS (SELECT 1 FROM json_each({column}) j WHERE j.value NOT IN ("
        ));
        // An empty scope would make `NOT IN ()`: it is never passed (an empty scope is unscoped).
        q.vals(scope.iter().cloned());
        q.push("))");
    }

    fn json_text(column: &str, path: &[&str]) -> String {
        format!("json_extract({column}, '$.{}')", path.join("."))
    }

    async fn exec(mut q: QueryBuilder<Sqlite>, c: &mut SqliteConnection) -> Result<u64> {
        Ok(q.build().execute(&mut *c).await?.rows_affected())
    }

    async fn fetch(
        mut q: QueryBuilder<Sqlite>,
        c: &mut SqliteConnection,
    ) -> Result<Vec<SqliteRow>> {
        Ok(q.build().fetch_all(&mut *c).await?)
    }
}

/// FTS5's query for `terms`: each as a quoted prefix (`"term"*`), implicitly ANDed.
fn fts_expr(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}
