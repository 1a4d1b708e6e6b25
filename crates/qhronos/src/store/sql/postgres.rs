//! PostgreSQL's spelling of the store's statements: sets of rows go as one typed array per
//! column through `UNNEST`, so a statement's text (and its prepared plan) is the same whatever
//! the number of rows.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{Col, Dialect, Kind, Push, Rows, Val};
use crate::store::Result;
use uuid::Uuid;

/// `UNNEST($1::text[], $2::bigint[], …)` of the rows' columns.
fn push_unnest(q: &mut QueryBuilder<Postgres>, cols: &[Col], rows: Rows) {
    let mut texts: Vec<Vec<Option<String>>> = Vec::new();
    let mut ints: Vec<Vec<Option<i64>>> = Vec::new();
    // Column i is the slot[i]-th array of its kind.
    let slot: Vec<usize> = cols
        .iter()
        .map(|c| match c.1 {
            Kind::Text => {
                texts.push(Vec::with_capacity(rows.len()));
                texts.len() - 1
            }
            Kind::Int => {
                ints.push(Vec::with_capacity(rows.len()));
                ints.len() - 1
            }
        })
        .collect();
    for row in rows {
        for (i, v) in row.into_iter().enumerate().take(cols.len()) {
            match (cols[i].1, v) {
                (Kind::Text, Val::Text(t)) => texts[slot[i]].push(t),
                (Kind::Int, Val::Int(n)) => ints[slot[i]].push(n),
                (Kind::Int, Val::Bool(b)) => ints[slot[i]].push(Some(i64::from(b))),
                // The store's own column lists say each column's type: a mismatch is a bug.
                (kind, v) => {
                    debug_assert!(false, "{v:?} in a {kind:?} column");
                    match kind {
                        Kind::Text => texts[slot[i]].push(None),
                        Kind::Int => ints[slot[i]].push(None),
                    }
                }
            }
        }
    }
    let (mut texts, mut ints) = (texts.into_iter(), ints.into_iter());
    q.push("UNNEST(");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        match c.1 {
            Kind::Text => {
                q.push_bind(texts.next().unwrap_or_default());
                q.push("::text[]");
            }
            Kind::Int => {
                q.push_bind(ints.next().unwrap_or_default());
                q.push("::bigint[]");
            }
        }
    }
    q.push(")");
}

#[async_trait]
impl Dialect for Postgres {
    type Rec = PgRow;

    fn indexed_by(_: &str) -> String {
        String::new()
    }
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    fn skip_locked(of: &str) -> String {
        format!(" FOR UPDATE OF {of} SKIP LOCKED")
    }
    const PARTITIONED: bool = true;
    const KEYED_PLANS: Option<[&'static str; 2]> = Some([
        "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)",
        "SELECT set_config('enable_seqscan', 'on', true), set_config('enable_bitmapscan', 'on', true)",
    ]);
    const GREATEST: &'static str = "GREATEST";
    fn sum_json_counts(a: &str, b: &str) -> String {
        format!(
            "COALESCE((SELECT jsonb_object_agg(k, s) FROM (SELECT key AS k, SUM(value::bigint) AS s FROM \
             (SELECT key, value FROM jsonb_each_text({a}::jsonb) UNION ALL \
             SELECT key, value FROM jsonb_each_text({b}::jsonb)) AS x GROUP BY key) AS y)::text, '{{}}')"
        )
    }
    fn latest_in_group(value: &str, by: &str) -> String {
        format!("(array_agg({value} ORDER BY {by} DESC))[1] AS {value}")
    }
    fn concat_agg(column: &str) -> String {
        format!("string_agg({column}, '')")
    }
    const JOIN_IN_ORDER: &'static str = "JOIN";
    const RECEIPT: &'static str = "replace(gen_random_uuid()::text, '-', '')";

    fn max_rows(_: usize) -> usize {
        // Arrays: one statement for any number of rows; bounded only to keep statements short.
        10_000
    }

    fn bind(q: &mut QueryBuilder<Postgres>, v: Val) {
        match v {
            Val::Text(t) => q.push_bind(t),
            Val::Int(i) => q.push_bind(i),
            Val::Bool(b) => q.push_bind(b),
        };
    }

    fn push_insert_rows(q: &mut QueryBuilder<Postgres>, cols: &[Col], rows: Rows) {
        q.push(" SELECT * FROM ");
        push_unnest(q, cols, rows);
    }

    fn push_relation(q: &mut QueryBuilder<Postgres>, alias: &str, cols: &[Col], rows: Rows) {
        push_unnest(q, cols, rows);
        q.push(format!(" AS {alias}({})", super::names(cols)));
    }

    fn bind_f64(q: &mut QueryBuilder<Postgres>, v: f64) {
        q.push_bind(v);
    }

    fn push_search_hits(q: &mut QueryBuilder<Postgres>, terms: &[String], window: i64) {
        // The newest `window` live matches (GIN finds them, or the primary key walked backwards
        // when most rows match), ranked by ts_rank, which weighs name (A) over tags (B),
        // description (C) and metadata (D), and depends on the row and the query only.
        q.push(
            "(SELECT x.id AS k, ts_rank(x.search, tq.q)::float8 AS score FROM events x, \
             to_tsquery('simple', ",
        );
        q.push_bind(ts_expr(terms));
        q.push(format!(
            ") AS tq(q) WHERE x.search @@ tq.q AND x.status != 'deleted' \
             ORDER BY x.id DESC LIMIT {window}) AS h"
        ));
    }

    fn push_search_older(
        q: &mut QueryBuilder<Postgres>,
        terms: &[String],
        window: i64,
        after: Option<Uuid>,
    ) {
        let expr = ts_expr(terms);
        q.push(
            "(SELECT ev.id AS k FROM events ev WHERE ev.status != 'deleted' \
             AND ev.search @@ to_tsquery('simple', ",
        );
        q.push_bind(expr.clone());
        // Older than the window's oldest match (none when the window holds every match); the
        // query is bound again so that this is computed once, not per row.
        q.push(
            ") AND ev.id < (SELECT w.id FROM (SELECT id FROM events WHERE status != 'deleted' \
             AND search @@ to_tsquery('simple', ",
        );
        q.push_bind(expr);
        q.push(format!(
            ") ORDER BY id DESC LIMIT {window}) AS w ORDER BY w.id LIMIT 1)"
        ));
        if let Some(id) = after {
            q.push(" AND ev.id < ").val(id);
        }
        q.push(") AS h");
    }

    const SEARCH_KEY: &'static str = "id";

    fn push_search_key_of(q: &mut QueryBuilder<Postgres>, id: Uuid) {
        q.val(id);
    }

    const SEARCH_PROBE: &'static str =
        "SELECT 1 FROM events WHERE search @@ to_tsquery('simple', 'qhronosprobe:*') LIMIT 1";

    fn push_in(q: &mut QueryBuilder<Postgres>, expr: &str, vals: Vec<String>) {
        q.push(format!("{expr} = ANY("));
        q.push_bind(vals);
        q.push(")");
    }

    fn push_within(q: &mut QueryBuilder<Postgres>, column: &str, scope: &[String]) {
        q.push(format!(
            " AND {column} IS NOT NULL AND {column}::jsonb <> '[]'::jsonb AND {column}::jsonb <@ "
        ));
        q.push_bind(super::rows::to_json(&scope));
        q.push("::jsonb");
    }

    fn json_text(column: &str, path: &[&str]) -> String {
        let mut s = format!("{column}::jsonb");
        for (i, p) in path.iter().enumerate() {
            let op = if i + 1 == path.len() { "->>" } else { "->" };
            s.push_str(&format!("{op}'{p}'"));
        }
        s
    }

    async fn exec(mut q: QueryBuilder<Postgres>, c: &mut PgConnection) -> Result<u64> {
        Ok(q.build().execute(&mut *c).await?.rows_affected())
    }

    async fn fetch(mut q: QueryBuilder<Postgres>, c: &mut PgConnection) -> Result<Vec<PgRow>> {
        Ok(q.build().fetch_all(&mut *c).await?)
    }

    async fn fetch_pruned(
        mut q: QueryBuilder<Postgres>,
        c: &mut PgConnection,
    ) -> Result<Vec<PgRow>> {
        Ok(q.build().persistent(false).fetch_all(&mut *c).await?)
    }
}

/// The tsquery for `terms`: each as a quoted prefix (`'term':*`), ANDed.
fn ts_expr(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("'{}':*", t.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" & ")
}
