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

/// Where a page of search results ends: the score and id of its last event. The next page
/// holds the events ranked after it (lower score, or the same score and a lower id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchCursor {
    /// The score of the last event of the previous page.
    pub score: f64,
    /// Its id (ties are broken by id).
    pub id: Uuid,
}

/// An event found by a search, with its relevance (higher is better).
#[derive(Debug, Clone)]
pub struct Found {
    /// The event.
    pub event: Event,
    /// Its relevance (higher is better).
    pub score: f64,
}

/// Ranked full-text search over events.
#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// The live events matching every word of `text` as a word prefix (`back` finds "Nightly
    /// backup"), best first (ties: newest first), at most `f.limit`, after `after`; the other
    /// filters of `f` apply as in `list_events` (`f.before_id` is ignored). A score depends
    /// on the event and the query (on SQLite also on the index's statistics, which writes
    /// move a little): paging by [`SearchCursor`] has no gaps or repeats while the matching
    /// events do not change.
    async fn search_events(
        &self,
        text: &str,
        f: &EventFilter,
        after: Option<SearchCursor>,
    ) -> Result<Vec<Found>>;
    /// Whether the full-text index answers a query (for `/health`).
    async fn search_ready(&self) -> Result<()>;
}

#[async_trait]
impl<B: Backend> SearchStore for B {
    async fn search_events(
        &self,
        text: &str,
        f: &EventFilter,
        after: Option<SearchCursor>,
    ) -> Result<Vec<Found>> {
        let terms = terms(text);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = query::<B::D>(format!("SELECT {EVENT_COLS}, score FROM "));
        B::D::push_search_source(&mut q, &terms);
        q.push(" WHERE status != 'deleted'");
        if let Some(s) = f.status {
            q.push(" AND status = ").val(s.as_str());
        }
        if let Some(a) = after {
            q.push(" AND (score < ")
                .val_f64(a.score)
                .push(" OR (score = ")
                .val_f64(a.score)
                .push(" AND id < ")
                .val(a.id)
                .push("))");
        }
        push_tags(&mut q, "id", &f.tags);
        q.push(" ORDER BY score DESC, id DESC LIMIT ").val(f.limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| {
                Ok(Found {
                    event: r.event()?,
                    score: r.float("score")?,
                })
            })
            .collect()
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
