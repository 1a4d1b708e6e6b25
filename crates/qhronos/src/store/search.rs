//! Full-text search over events: name, description, tags and the scalar values of metadata.
//!
//! The index is kept in step with every write by the database itself (SQLite: an FTS5 table
//! filled by triggers on `events`; PostgreSQL: a weighted `tsvector` column set by a trigger,
//! under a GIN index — see the `templates_search` migrations), so every path that writes an
//! event (one, a batch, an update, a delete, the engine's 410 pause) is covered. Deleted events
//! are never found.

use async_trait::async_trait;
use uuid::Uuid;

use super::events::{push_tags, EventFilter};
use super::sql::rows::{RowExt, EVENT_COLS};
use super::sql::{query, Dialect, Push};
use super::{Backend, Result};
use crate::domain::event::Event;

/// Most terms of a query taken (the rest are ignored), and the longest term.
const MAX_TERMS: usize = 16;
const MAX_TERM: usize = 64;

/// The words of a user's query: runs of letters and digits, lowercased, at most 16 of 64
/// characters. Everything else (quotes, operators, punctuation) separates words, so any text
/// is a valid query; a text without a letter or digit has no terms and matches nothing.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(MAX_TERM).collect::<String>().to_lowercase())
        .take(MAX_TERMS)
        .collect()
}

/// How many of the newest matching events a search ranks. A word prefix can match a large
/// part of a big table (`q=ba` over a million events), and ranking costs in proportion to
/// what is ranked: the newest `RANK_WINDOW` matches are ranked, best first, and any older
/// matches follow them newest first. Below this many matches, every match is ranked.
pub const RANK_WINDOW: i64 = 2_000;

/// Where a page of search results ends, so that the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchCursor {
    /// Within the ranked window: the score and id of the last event shown. The next page holds
    /// the events ranked after it (lower score, or the same score and a lower id), then the
    /// older matches.
    Ranked {
        /// The score of the last event of the previous page.
        score: f64,
        /// Its id (ties are broken by id).
        id: Uuid,
    },
    /// Past the ranked window: the id of the last event shown; the next page holds the older
    /// matches, newest first.
    Older {
        /// The last event shown.
        id: Uuid,
    },
}

/// An event found by a search, with its relevance and the cursor that resumes after it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The event.
    pub event: Event,
    /// Its relevance (higher is better); `None` past the ranked window.
    pub score: Option<f64>,
    /// The cursor of a page that ends with this event.
    pub cursor: SearchCursor,
}

/// Ranked full-text search over events.
#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// The live events matching every word of `text` as a word prefix (`back` finds "Nightly
    /// backup"), at most `f.limit`, after `after`; the other filters of `f` apply as in
    /// `list_events` (`f.before_id` is ignored). Of the newest [`RANK_WINDOW`] matches (of
    /// `text`, before the other filters) the best come first (ties: newest first); older
    /// matches follow, newest first. A score depends on the event and the query (on SQLite
    /// also on the index's statistics, which writes move a little): paging by the cursor has no
    /// gaps or repeats while the matching events do not change.
    async fn search_events(
        &self,
        text: &str,
        f: &EventFilter,
        after: Option<SearchCursor>,
    ) -> Result<Vec<Found>> {
        self.search_events_ranking(text, f, after, RANK_WINDOW)
            .await
    }
    /// [`SearchStore::search_events`] ranking the newest `window` matches (tests use a small one).
    async fn search_events_ranking(
        &self,
        text: &str,
        f: &EventFilter,
        after: Option<SearchCursor>,
        window: i64,
    ) -> Result<Vec<Found>>;
    /// Whether the full-text index answers a query (for `/health`).
    async fn search_ready(&self) -> Result<()>;
}

/// Joins the hits `x` (key `k`, chosen and maybe cut to a page before) to their events and
/// applies the filters, for `SELECT {EVENT_COLS} FROM (…) AS x`.
fn push_join_events<D: Dialect>(q: &mut sqlx::QueryBuilder<D>, f: &EventFilter) {
    q.push(format!(
        ") AS x {} events ON events.{} = x.k WHERE events.status != 'deleted'",
        D::JOIN_IN_ORDER,
        D::SEARCH_KEY
    ));
    if let Some(s) = f.status {
        q.push(" AND events.status = ").val(s.as_str());
    }
    push_tags(q, "events.id", &f.tags);
}

/// ` ORDER BY {order} LIMIT n` inside the hits when no filter needs the events' rows, so that
/// only a page of events is read.
fn push_page_of_hits<D: Dialect>(q: &mut sqlx::QueryBuilder<D>, f: &EventFilter, order: &str) {
    if f.status.is_none() && f.tags.is_empty() {
        q.push(format!(" ORDER BY {order} LIMIT ")).val(f.limit);
    }
}

#[async_trait]
impl<B: Backend> SearchStore for B {
    async fn search_events_ranking(
        &self,
        text: &str,
        f: &EventFilter,
        after: Option<SearchCursor>,
        window: i64,
    ) -> Result<Vec<Found>> {
        let terms = terms(text);
        if terms.is_empty() || f.limit <= 0 {
            return Ok(Vec::new());
        }
        let window = window.max(1);
        let mut c = self.reads().acquire().await?;
        let mut found = Vec::new();
        let older_after = match after {
            Some(SearchCursor::Older { id }) => Some(id),
            ranked => {
                // Best first; ties by the search key (newest first).
                let mut q = query::<B::D>(format!(
                    "SELECT {EVENT_COLS}, x.score FROM (SELECT h.k, h.score FROM "
                ));
                B::D::push_search_hits(&mut q, &terms, window);
                if let Some(SearchCursor::Ranked { score, id }) = ranked {
                    q.push(" WHERE h.score < ")
                        .val_f64(score)
                        .push(" OR (h.score = ")
                        .val_f64(score)
                        .push(" AND h.k < ");
                    B::D::push_search_key_of(&mut q, id);
                    q.push(")");
                }
                push_page_of_hits(&mut q, f, "h.score DESC, h.k DESC");
                push_join_events(&mut q, f);
                q.push(" ORDER BY x.score DESC, x.k DESC LIMIT ")
                    .val(f.limit);
                for r in B::D::fetch(q, &mut c).await? {
                    let (event, score) = (r.event()?, r.float("score")?);
                    let cursor = SearchCursor::Ranked {
                        score,
                        id: event.id,
                    };
                    found.push(Found {
                        event,
                        score: Some(score),
                        cursor,
                    });
                }
                None
            }
        };
        let rest = f.limit - found.len() as i64;
        if rest > 0 {
            let page = EventFilter {
                limit: rest,
                ..f.clone()
            };
            let mut q = query::<B::D>(format!("SELECT {EVENT_COLS} FROM (SELECT h.k FROM "));
            B::D::push_search_older(&mut q, &terms, window, older_after);
            push_page_of_hits(&mut q, &page, "h.k DESC");
            push_join_events(&mut q, &page);
            q.push(" ORDER BY x.k DESC LIMIT ").val(rest);
            for r in B::D::fetch(q, &mut c).await? {
                let event = r.event()?;
                let cursor = SearchCursor::Older { id: event.id };
                found.push(Found {
                    event,
                    score: None,
                    cursor,
                });
            }
        }
        Ok(found)
    }

    async fn search_ready(&self) -> Result<()> {
        let mut c = self.reads().acquire().await?;
        B::D::fetch(query::<B::D>(B::D::SEARCH_PROBE), &mut c).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::terms;

    #[test]
    fn any_text_makes_safe_terms() {
        assert_eq!(terms("Nightly back"), vec!["nightly", "back"]);
        assert_eq!(
            terms("\"a\" OR b* NEAR(c) -d:e ^f"),
            vec!["a", "or", "b", "near", "c", "d", "e", "f"]
        );
        assert_eq!(
            terms("'; DROP TABLE events; --"),
            vec!["drop", "table", "events"]
        );
        assert!(terms("\"*:&|!()").is_empty());
        assert_eq!(terms("Café-Ω"), vec!["café", "ω"]);
        assert_eq!(terms(&"x ".repeat(100)).len(), 16);
    }
}
