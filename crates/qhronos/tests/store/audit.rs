//! The audit log: append, newest first, paged by id, filtered by action and by scope.

use std::collections::HashSet;

use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

crate::conformance!(
    audit_lists_newest_first_pages_without_gaps_and_filters_by_scope,
    an_audited_create_writes_its_line_once_and_only_when_new,
);

/// `create_event_audited` keeps the audit line with the event: one line for a new event, many
/// creates at once (the embedded store's group commit) each with its own, none for an
/// idempotent repeat.
async fn an_audited_create_writes_its_line_once_and_only_when_new(s: &dyn Store) {
    let line = |e: &qhronos::domain::event::Event| AuditEntry {
        id: -1,
        at: T0,
        actor: "alice".into(),
        action: "event.create".into(),
        target: Some(e.id.to_string()),
        ip: None,
        summary: json!({"name": e.name}),
        tags: Some(vec!["t".into()]),
    };
    let events: Vec<_> = (0..20)
        .map(|i| (one_time(T0 + i * SEC), T0 + i * SEC))
        .collect();
    let results = futures::future::join_all(events.iter().map(|(e, at)| {
        let a = line(e);
        async move {
            s.create_event_audited(e, &[occ(e, *at)], None, By::actor("alice"), &a)
                .await
        }
    }))
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(Created::New))));
    let keyed = one_time(T0 + HOUR);
    for _ in 0..2 {
        let c = s
            .create_event_audited(
                &keyed,
                &[occ(&keyed, T0 + HOUR)],
                Some(("key-1", "hash-1")),
                By::actor("alice"),
                &line(&keyed),
            )
            .await
            .expect("create");
        assert!(matches!(c, Created::New | Created::Existing { .. }));
    }
    let all = s
        .list_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("list_audit");
    let mut targets: Vec<String> = all.iter().filter_map(|e| e.target.clone()).collect();
    targets.sort();
    let mut want: Vec<String> = events
        .iter()
        .map(|(e, _)| e)
        .chain([&keyed])
        .map(|e| e.id.to_string())
        .collect();
    want.sort();
    assert_eq!(targets, want, "one line per new event, none for the repeat");
}

async fn audit_lists_newest_first_pages_without_gaps_and_filters_by_scope(s: &dyn Store) {
    let tags: [Option<&[&str]>; 4] = [None, Some(&["a"]), Some(&["a", "b"]), Some(&[])];
    for i in 0..13i64 {
        let entry = AuditEntry {
            id: -1,
            at: T0 + i * SEC,
            actor: format!("actor-{}", i % 2),
            action: if i % 3 == 0 {
                "event.delete"
            } else {
                "event.create"
            }
            .to_string(),
            target: Some(format!("target-{i}")),
            ip: Some("127.0.0.1".into()),
            summary: json!({"n": i}),
            tags: tags[i as usize % 4].map(|t| t.iter().map(|s| s.to_string()).collect()),
        };
        s.append_audit(&entry).await.expect("append_audit");
    }
    let list = |f: AuditFilter| async move {
        let mut seen = Vec::new();
        let mut f = AuditFilter { limit: 4, ..f };
        loop {
            let page = s.list_audit(&f).await.expect("list_audit");
            seen.extend(page.iter().cloned());
            match page.last() {
                Some(last) if page.len() == 4 => f.before_id = Some(last.id),
                _ => break,
            }
        }
        seen
    };
    let all = list(AuditFilter::default()).await;
    assert_eq!(all.len(), 13);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let ns: Vec<i64> = all
        .iter()
        .map(|e| e.summary["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(
        ns,
        (0..13).rev().collect::<Vec<_>>(),
        "numbered in append order, every entry once"
    );
    let newest = &all[0];
    assert_eq!(
        (newest.at, newest.actor.as_str(), newest.action.as_str()),
        (T0 + 12 * SEC, "actor-0", "event.delete")
    );
    assert_eq!(
        (newest.target.as_deref(), newest.ip.as_deref()),
        (Some("target-12"), Some("127.0.0.1"))
    );

    let deletes = list(AuditFilter {
        action: Some("event.delete".into()),
        ..Default::default()
    })
    .await;
    let got: HashSet<i64> = deletes
        .iter()
        .map(|e| e.summary["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(got, HashSet::from([0, 3, 6, 9, 12]));

    // A scoped admin of [a] sees the entries whose tags are all in [a], not untagged ones.
    let within_a = list(AuditFilter {
        within: Some(vec!["a".into()]),
        ..Default::default()
    })
    .await;
    let got: HashSet<i64> = within_a
        .iter()
        .map(|e| e.summary["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(got, HashSet::from([1, 5, 9]));
    let within_ab = list(AuditFilter {
        within: Some(vec!["a".into(), "b".into()]),
        ..Default::default()
    })
    .await;
    let got: HashSet<i64> = within_ab
        .iter()
        .map(|e| e.summary["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(got, HashSet::from([1, 2, 5, 6, 9, 10]));
}
