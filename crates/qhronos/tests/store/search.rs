//! Full-text search: prefixes of words of the name, description, tags and metadata values,
//! ranked, kept in step with every write, deleted events never found, any text a valid query.

use std::collections::HashSet;

use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

crate::conformance!(
    words_are_found_by_prefix_in_every_field_and_ranked,
    the_index_follows_updates_and_deletes,
    pages_by_the_rank_cursor_without_gaps_or_repeats,
    past_the_rank_window_older_matches_follow_newest_first,
    any_text_is_a_valid_query,
);

fn named(name: &str, extra: serde_json::Value) -> qhronos::domain::event::Event {
    let mut b = body(T0 + HOUR);
    b["name"] = json!(name);
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    event(b)
}

fn all(limit: i64) -> EventFilter {
    EventFilter {
        limit,
        ..Default::default()
    }
}

async fn names(s: &dyn Store, q: &str) -> Vec<String> {
    s.search_events(q, &all(100), None)
        .await
        .expect("search")
        .into_iter()
        .map(|f| f.event.name)
        .collect()
}

async fn words_are_found_by_prefix_in_every_field_and_ranked(s: &dyn Store) {
    let events = vec![
        (named("Nightly backup", json!({})), vec![]),
        (
            named("report", json!({"description": "after the backup job"})),
            vec![],
        ),
        (named("tagged", json!({"tags": ["backups", "ops"]})), vec![]),
        (
            named(
                "meta",
                json!({"metadata": {"kind": "backup-db", "n": 4711}}),
            ),
            vec![],
        ),
        (
            named("other", json!({"description": "nothing here"})),
            vec![],
        ),
    ];
    s.create_events(&events, BY).await.expect("create");
    let found = names(s, "back").await;
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        found[0], "Nightly backup",
        "the name weighs most: {found:?}"
    );
    assert!(!found.contains(&"other".to_string()));
    assert_eq!(names(s, "NIGHT").await, vec!["Nightly backup"]);
    assert_eq!(names(s, "4711").await, vec!["meta"]);
    assert_eq!(names(s, "ops").await, vec!["tagged"]);
    // Every word must match.
    assert_eq!(names(s, "back job").await, vec!["report"]);
    assert!(names(s, "backup zebra").await.is_empty());
    // The other filters apply.
    let f = EventFilter {
        tags: vec!["ops".into()],
        limit: 10,
        ..Default::default()
    };
    let hits = s.search_events("back", &f, None).await.expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event.name, "tagged");
    s.search_ready().await.expect("the index answers");
}

async fn the_index_follows_updates_and_deletes(s: &dyn Store) {
    let mut e = named("alpha", json!({}));
    create(s, &e, &[]).await;
    assert_eq!(names(s, "alp").await, vec!["alpha"]);
    e.name = "omega".into();
    e.metadata = json!({"owner": "zed"});
    assert!(s.update_event(&e, None, &[], BY).await.expect("update"));
    assert!(names(s, "alp").await.is_empty());
    assert_eq!(names(s, "omeg").await, vec!["omega"]);
    assert_eq!(names(s, "zed").await, vec!["omega"]);
    assert!(s
        .set_paused(e.id, true, None, &[], T0, BY)
        .await
        .expect("pause"));
    assert_eq!(
        names(s, "omega").await,
        vec!["omega"],
        "paused events are found"
    );
    assert!(s.delete_event(e.id, T0 + SEC, BY).await.expect("delete"));
    assert!(names(s, "omega").await.is_empty(), "deleted events are not");
}

async fn pages_by_the_rank_cursor_without_gaps_or_repeats(s: &dyn Store) {
    let mut batch = Vec::new();
    for i in 0..23 {
        // Scores differ (name, description, or both) and tie (many alike).
        let extra = match i % 3 {
            0 => json!({"description": "deploy deploy"}),
            1 => json!({"metadata": {"what": "deploy"}}),
            _ => json!({}),
        };
        batch.push((named(&format!("deploy {i}"), extra), vec![]));
    }
    batch.push((named("unrelated", json!({})), vec![]));
    s.create_events(&batch, BY).await.expect("create");
    let expected: HashSet<_> = batch.iter().take(23).map(|(e, _)| e.id).collect();
    for limit in [1, 4, 50] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut last_score = f64::INFINITY;
        loop {
            let page = s
                .search_events("deploy", &all(limit), after)
                .await
                .expect("search");
            for f in &page {
                let score = f.score.expect("every match is in the window");
                assert!(score <= last_score, "best first");
                last_score = score;
                seen.push(f.event.id);
            }
            match page.last() {
                Some(l) if page.len() as i64 == limit => after = Some(l.cursor),
                _ => break,
            }
        }
        assert_eq!(seen.len(), 23, "pages of {limit}: each once");
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), expected);
    }
}

async fn any_text_is_a_valid_query(s: &dyn Store) {
    create(s, &named("quote \"me\" OR NOT", json!({})), &[]).await;
    for q in [
        "\"",
        "\"me",
        "OR",
        "NOT",
        "a AND",
        "*",
        "-x",
        "(",
        ")",
        ":",
        "'",
        "\\",
        "NEAR(a b)",
        "col:me",
        "me^",
        "!&|",
        "'; DROP TABLE events; --",
        "",
        "   ",
        "😀",
        "ü",
    ] {
        s.search_events(q, &all(10), None)
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
    }
    assert_eq!(names(s, "\"me\"").await, vec!["quote \"me\" OR NOT"]);
    assert_eq!(names(s, "or").await, vec!["quote \"me\" OR NOT"]);
    assert!(names(s, "*:&").await.is_empty());
}

async fn past_the_rank_window_older_matches_follow_newest_first(s: &dyn Store) {
    // 12 matches, created oldest first, one by one (so ids and index order agree); the best
    // match by rank is the oldest ("sync sync sync" in the name).
    let mut ids = Vec::new();
    for i in 0..12 {
        let name = if i == 0 {
            "sync sync sync".to_string()
        } else {
            format!("sync job {i}")
        };
        let e = named(&name, json!({}));
        ids.push(e.id);
        create(s, &e, &[]).await;
    }
    create(s, &named("unrelated", json!({})), &[]).await;
    // A window of 5: the 5 newest are ranked, the 7 older follow newest first.
    for limit in [1, 3, 5, 50] {
        let mut seen = Vec::new();
        let mut ranked = 0;
        let mut after = None;
        loop {
            let page = s
                .search_events_ranking("sync", &all(limit), after, 5)
                .await
                .expect("search");
            for f in &page {
                if f.score.is_some() {
                    assert_eq!(seen.len(), ranked, "ranked ones come first");
                    ranked += 1;
                }
                seen.push(f.event.id);
            }
            match page.last() {
                Some(l) if page.len() as i64 == limit => after = Some(l.cursor),
                _ => break,
            }
        }
        assert_eq!(ranked, 5, "pages of {limit}");
        let newest: HashSet<_> = ids[7..].iter().copied().collect();
        assert_eq!(
            seen[..5].iter().copied().collect::<HashSet<_>>(),
            newest,
            "the window is the newest matches"
        );
        let older: Vec<_> = ids[..7].iter().rev().copied().collect();
        assert_eq!(seen[5..], older[..], "then the older, newest first");
    }
    // Every match fits a large window: all ranked, the best first.
    let all_ranked = s
        .search_events("sync", &all(50), None)
        .await
        .expect("search");
    assert_eq!(all_ranked.len(), 12);
    assert!(all_ranked.iter().all(|f| f.score.is_some()));
    assert_eq!(all_ranked[0].event.id, ids[0], "the best match first");
    // Filters apply to both parts.
    let f = EventFilter {
        status: Some(qhronos::domain::event::EventStatus::Paused),
        limit: 50,
        ..Default::default()
    };
    assert!(s
        .set_paused(ids[1], true, None, &[], T0, BY)
        .await
        .expect("pause"));
    let paused = s
        .search_events_ranking("sync", &f, None, 5)
        .await
        .expect("search");
    assert_eq!(
        paused.iter().map(|f| f.event.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert!(paused[0].score.is_none(), "it is older than the window");
}
