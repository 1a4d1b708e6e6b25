//! What the two databases do differently, and nothing else.
//!
//! Both schemas store ids as text, instants as integer milliseconds and documents as JSON
//! text, so one statement text serves both nearly everywhere: [`QueryBuilder`] numbers the
//! placeholders (`?` or `$n`). What differs is in [`Dialect`]: how a set of rows is sent (on
//! SQLite rows to insert as one JSON parameter unpacked by `json_each`, rows to join as a
//! `VALUES` list; typed arrays through `UNNEST` on PostgreSQL), a few spellings (`max` / `GREATEST`, JSON access, full-text search),
//! planner hints and row locks, and the calls that run a statement. The store's logic above
//! it (events, occurrences, claims, queues, …) is written once, generic over the dialect.

pub(crate) mod postgres;
pub mod rows;
pub(crate) mod sqlite;

use async_trait::async_trait;
use sqlx::{Database, QueryBuilder};
use uuid::Uuid;

use super::Result;
use rows::RowExt;

/// A value bound into a statement: the only three types either schema stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(Some(v.to_string()))
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(Some(v))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        Val::Text(v)
    }
}
impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Val {
        Val::Text(v.map(str::to_string))
    }
}
impl From<Uuid> for Val {
    fn from(v: Uuid) -> Val {
        Val::Text(Some(v.to_string()))
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Val {
        Val::Int(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Bool(v)
    }
}

/// The type of a column sent as a set of rows (PostgreSQL's arrays are typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
}

/// A column of a set of rows: its name and type.
pub type Col = (&'static str, Kind);

/// Rows of values, one `Vec` per row, in the order of their columns.
pub type Rows = Vec<Vec<Val>>;

/// One database's SQL: fragments that differ, how rows are sent, and how statements run.
/// Implemented for `sqlx::Sqlite` and `sqlx::Postgres` (see `sqlite.rs`, `postgres.rs`).
#[async_trait]
pub trait Dialect: Database + Sized {
    /// Rows as this database returns them.
    type Rec: RowExt + Send + Sync;

    /// `" INDEXED BY <index>"` where the planner needs the hint (SQLite), else nothing.
    fn indexed_by(index: &str) -> String;
    /// Appended to a `SELECT` whose rows the transaction goes on to change: `" FOR UPDATE"`
    /// where rows are locked (PostgreSQL); nothing on SQLite, whose one writer serialises.
    const FOR_UPDATE: &'static str;
    /// `FOR UPDATE … SKIP LOCKED` for a claim's inner select (`of`: the table alias), so
    /// that concurrent claimers on other nodes take other rows instead of waiting.
    fn skip_locked(of: &str) -> String;
    /// `occurrences` and `attempts` are partitioned by `scheduled_at` (PostgreSQL): statements
    /// on known rows name `(id, scheduled_at)` so that each probes one partition.
    const PARTITIONED: bool;
    /// Run first in the transactions of the engine's keyed statements (the claim, the
    /// outcome writer): the planner is to reach rows through their indexes, whatever the
    /// statistics say. On PostgreSQL a table or partition filled moments ago (a burst just
    /// created, not yet analysed) is estimated from default selectivities at a few hundred
    /// rows. The planner then chose, at each claim, a bitmap scan that read and sorted every
    /// due row (tens of thousands) instead of walking the due index up to the claim's limit,
    /// and for the outcome's `events` update a scan of the whole table. With sequential and
    /// bitmap scans off for these statements, the indexes are walked. The second statement
    /// turns them back on: the foreign-key checks of an `attempts` insert, planned under it,
    /// were re-planned for every row (three times the cost). Nothing on SQLite (`INDEXED BY`
    /// names the index where its planner needs it).
    const KEYED_PLANS: Option<[&'static str; 2]>;
    /// The larger of two values: `max(a, b)` / `GREATEST(a, b)`.
    const GREATEST: &'static str;
    /// Two JSON objects of name → count (text columns) as one, the counts of a name added.
    fn sum_json_counts(a: &str, b: &str) -> String;
    /// Select-list items giving, as a column named `value`, the `value` of the group's row
    /// with the largest `by` (SQLite: a bare column beside `max`; PostgreSQL: an ordered
    /// `array_agg`).
    fn latest_in_group(value: &str, by: &str) -> String;
    /// The aggregate that joins a text column's values of a group, nothing between them.
    fn concat_agg(column: &str) -> String;
    /// An SQL expression for a new random pull-claim receipt (at least 122 random bits, hex).
    const RECEIPT: &'static str;
    /// Most rows of `cols` columns one statement may carry.
    fn max_rows(cols: usize) -> usize;

    /// Binds one value.
    fn bind(q: &mut QueryBuilder<Self>, v: Val);
    /// Binds a float (a search score; no column stores one).
    fn bind_f64(q: &mut QueryBuilder<Self>, v: f64);
    /// ` SELECT … FROM json_each(?)` on SQLite, ` SELECT * FROM UNNEST(…)` on PostgreSQL: the rows of an
    /// `INSERT INTO t (cols)`; at most [`Dialect::max_rows`] of them.
    fn push_insert_rows(q: &mut QueryBuilder<Self>, cols: &[Col], rows: Rows);
    /// The rows as a relation named `alias` with the columns' names, for `FROM` or `IN`.
    fn push_relation(q: &mut QueryBuilder<Self>, alias: &str, cols: &[Col], rows: Rows);
    /// `<expr> IN (…)` for a list of text values (`= ANY($n)` on PostgreSQL); never empty.
    fn push_in(q: &mut QueryBuilder<Self>, expr: &str, vals: Vec<String>);
    /// ` AND` the JSON text array in `column` is not empty and all its items are in `scope`.
    fn push_within(q: &mut QueryBuilder<Self>, column: &str, scope: &[String]);
    /// The text at `path` (`["params", "client_name"]`) of the JSON document in `column`.
    fn json_text(column: &str, path: &[&str]) -> String;

    /// A relation named `h` of the newest `window` live events whose full-text index matches
    /// every one of `terms` as a word prefix (terms: non-empty, letters and digits only): their
    /// key `k` (the events' [`Dialect::SEARCH_KEY`]) and `score`, the relevance (higher is
    /// better; name weighs most, then tags, description, metadata values). For `FROM`; it reads
    /// no `events` row on SQLite.
    fn push_search_hits(q: &mut QueryBuilder<Self>, terms: &[String], window: i64);
    /// A relation named `h` of the live events matching `terms` that are older than the newest
    /// `window` matches (and than the event `after`): their key `k`, higher is newer. For
    /// `FROM`, ordered by `k DESC`.
    fn push_search_older(
        q: &mut QueryBuilder<Self>,
        terms: &[String],
        window: i64,
        after: Option<Uuid>,
    );
    /// The `events` column search hits are keyed and ordered by (`rowid`: the full-text
    /// index's order on SQLite; `id` on PostgreSQL). Higher is newer.
    const SEARCH_KEY: &'static str;
    /// The [`Dialect::SEARCH_KEY`] of the event `id`, as an SQL expression.
    fn push_search_key_of(q: &mut QueryBuilder<Self>, id: Uuid);
    /// A join that keeps the order the tables are written in (SQLite's `CROSS JOIN`).
    const JOIN_IN_ORDER: &'static str;
    /// A statement that runs a search on the full-text index and fails when it is not usable.
    const SEARCH_PROBE: &'static str;

    /// Runs a statement; the number of rows it changed.
    async fn exec(q: QueryBuilder<Self>, c: &mut Self::Connection) -> Result<u64>;
    /// Runs a statement and returns its rows.
    async fn fetch(q: QueryBuilder<Self>, c: &mut Self::Connection) -> Result<Vec<Self::Rec>>;
    /// Runs a statement whose bounds on `scheduled_at` select the partitions it touches, and
    /// returns its rows. PostgreSQL plans it with its parameters' values at every run (an
    /// unnamed statement), so that the partitions outside the bounds are pruned before they
    /// are locked: a cached generic plan keeps every partition, and each run then locks all
    /// of them and every index of each (more locks than the lock manager's fast path holds).
    async fn fetch_pruned(
        q: QueryBuilder<Self>,
        c: &mut Self::Connection,
    ) -> Result<Vec<Self::Rec>> {
        Self::fetch(q, c).await
    }
}

/// `QueryBuilder` with the dialect's binds, so that statements read the same on both stores.
pub trait Push {
    /// Binds a value (`?` / `$n`).
    fn val(&mut self, v: impl Into<Val>) -> &mut Self;
    /// Binds values separated by commas.
    fn vals<V: Into<Val>>(&mut self, vs: impl IntoIterator<Item = V>) -> &mut Self;
    /// Binds a float.
    fn val_f64(&mut self, v: f64) -> &mut Self;
}

impl<D: Dialect> Push for QueryBuilder<D> {
    fn val(&mut self, v: impl Into<Val>) -> &mut Self {
        D::bind(self, v.into());
        self
    }

    fn val_f64(&mut self, v: f64) -> &mut Self {
        D::bind_f64(self, v);
        self
    }

    fn vals<V: Into<Val>>(&mut self, vs: impl IntoIterator<Item = V>) -> &mut Self {
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            D::bind(self, v.into());
        }
        self
    }
}

/// A statement starting with `sql`.
pub fn query<D: Dialect>(sql: impl Into<String>) -> QueryBuilder<D> {
    QueryBuilder::new(sql)
}

/// Runs `q` and returns its first row, if any.
pub async fn fetch_one<D: Dialect>(
    q: QueryBuilder<D>,
    c: &mut D::Connection,
) -> Result<Option<D::Rec>> {
    Ok(D::fetch(q, c).await?.into_iter().next())
}

/// The column names of `cols`, comma-separated.
pub fn names(cols: &[Col]) -> String {
    cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
}
