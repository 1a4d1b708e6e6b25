//! Calendars: rows read back as written; an import is one transaction (creates, updates,
//! removals and the calendar's state together, or nothing); an occurrence's end is kept and
//! moves with it; feeds come due by `next_fetch_at`.

use qhronos::domain::occurrence::NewOccurrence;
use qhronos::store::*;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::*;

crate::conformance!(
    calendars_read_back_as_written,
    an_import_writes_everything_in_one_transaction,
    a_failed_import_writes_nothing,
    an_occurrence_keeps_its_end_and_a_move_carries_it,
    feeds_come_due_by_their_next_fetch,
    every_write_to_a_calendars_events_moves_its_events_gen,
    calendars_are_listed_after_a_cursor,
);

fn calendar(url: Option<&str>, next: Option<i64>) -> Calendar {
    Calendar {
        id: Uuid::now_v7(),
        name: "team".into(),
        mode: "free".into(),
        defaults: json!({"tags": ["cal"]}),
        tags: vec!["cal".into()],
        url: url.map(str::to_string),
        refresh: url.map(|_| 15 * MIN),
        etag: None,
        last_modified: None,
        last_fetch_at: None,
        last_result: None,
        next_fetch_at: next,
        counts: None,
        created_at: T0,
        updated_at: T0,
        events_gen: 0,
    }
}

fn member(cal: &Calendar, uid: &str, at: i64) -> qhronos::domain::event::Event {
    let mut b = body(at);
    b["duration"] = json!("30m");
    let mut e = event(b);
    e.calendar_id = Some(cal.id);
    e.external_id = Some(uid.to_string());
    e
}

async fn calendars_read_back_as_written(s: &dyn Store) {
    let mut c = calendar(Some("https://example.com/feed.ics"), Some(T0));
    s.create_calendar(&c).await.unwrap();
    assert_eq!(s.get_calendar(c.id).await.unwrap(), Some(c.clone()));
    c.etag = Some("\"v1\"".into());
    c.counts = Some(json!({"created": 2}));
    c.last_result = Some("ok".into());
    assert!(s.update_calendar(&c).await.unwrap());
    assert_eq!(s.list_calendars(None, 10).await.unwrap(), vec![c.clone()]);
    assert!(s.delete_calendar(c.id, T0).await.unwrap());
    assert_eq!(s.get_calendar(c.id).await.unwrap(), None);
    assert!(!s.delete_calendar(c.id, T0).await.unwrap());
}

async fn an_import_writes_everything_in_one_transaction(s: &dyn Store) {
    let mut cal = calendar(None, None);
    let a = member(&cal, "a", T0 + HOUR);
    let b = member(&cal, "b", T0 + 2 * HOUR);
    let occ = NewOccurrence::of(&a, a.start_time, LIMIT);
    let w = ImportWrite {
        creates: vec![(a.clone(), vec![occ]), (b.clone(), vec![])],
        ..Default::default()
    };
    // The calendar does not exist yet: it is written with the import.
    s.apply_import(&cal, &w, T0, BY).await.unwrap();
    assert!(s.get_calendar(cal.id).await.unwrap().is_some());
    let got = s.calendar_events(cal.id).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].external_id.as_deref(), Some("a"));
    assert_eq!(got[0].duration, Some(30 * MIN));
    // Update one, remove the other, in one go.
    let mut a2 = a.clone();
    a2.name = "renamed".into();
    a2.updated_at = T0 + MIN;
    cal.counts = Some(json!({"updated": 1, "removed": 1}));
    let w = ImportWrite {
        updates: vec![(a2, None, vec![])],
        removes: vec![b.id],
        ..Default::default()
    };
    s.apply_import(&cal, &w, T0 + MIN, BY).await.unwrap();
    let got = s.calendar_events(cal.id).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "renamed");
    assert_eq!(s.get_event(b.id).await.unwrap(), None);
    assert_eq!(
        s.get_calendar(cal.id).await.unwrap().unwrap().counts,
        cal.counts
    );
}

async fn a_failed_import_writes_nothing(s: &dyn Store) {
    let cal = calendar(None, None);
    let a = member(&cal, "a", T0 + HOUR);
    // The same event twice: the second insert fails on its primary key.
    let w = ImportWrite {
        creates: vec![(a.clone(), vec![]), (a.clone(), vec![])],
        ..Default::default()
    };
    assert!(s.apply_import(&cal, &w, T0, BY).await.is_err());
    assert_eq!(s.get_calendar(cal.id).await.unwrap(), None);
    assert_eq!(s.get_event(a.id).await.unwrap(), None);
}

async fn an_occurrence_keeps_its_end_and_a_move_carries_it(s: &dyn Store) {
    let cal = calendar(None, None);
    let a = member(&cal, "a", T0 + HOUR);
    let occ = NewOccurrence::of(&a, a.start_time, LIMIT);
    assert_eq!(occ.ends_at, Some(T0 + HOUR + 30 * MIN));
    s.create_events(&[(a.clone(), vec![occ])], BY)
        .await
        .unwrap();
    let got = s.get_occurrence(occ.id).await.unwrap().unwrap().0;
    assert_eq!(got.ends_at, Some(T0 + HOUR + 30 * MIN));
    s.move_occurrence(occ.id, T0 + 3 * HOUR, T0).await.unwrap();
    let got = s.get_occurrence(occ.id).await.unwrap().unwrap().0;
    assert_eq!(got.scheduled_at, T0 + 3 * HOUR);
    assert_eq!(got.ends_at, Some(T0 + 3 * HOUR + 30 * MIN));
}

async fn feeds_come_due_by_their_next_fetch(s: &dyn Store) {
    let due = calendar(Some("https://example.com/a.ics"), Some(T0 - MIN));
    let later = calendar(Some("https://example.com/b.ics"), Some(T0 + HOUR));
    let import_only = calendar(None, None);
    for c in [&due, &later, &import_only] {
        s.create_calendar(c).await.unwrap();
    }
    let got: Vec<Uuid> = s
        .due_feeds(T0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, vec![due.id]);
    let got = s.due_feeds(T0 + 2 * HOUR, 10).await.unwrap();
    assert_eq!(got.len(), 2);
}

async fn gen(s: &dyn Store, c: &Calendar) -> i64 {
    s.get_calendar(c.id).await.unwrap().unwrap().events_gen
}

async fn every_write_to_a_calendars_events_moves_its_events_gen(s: &dyn Store) {
    let cal = calendar(None, None);
    let other = calendar(None, None);
    s.create_calendar(&cal).await.unwrap();
    s.create_calendar(&other).await.unwrap();
    assert_eq!(gen(s, &cal).await, 0);
    let a = member(&cal, "a", T0 + HOUR);
    s.create_event(&a, &[], None, BY).await.unwrap();
    assert_eq!(gen(s, &cal).await, 1);
    let mut a2 = a.clone();
    a2.name = "renamed".into();
    assert!(s.update_event(&a2, None, &[], BY).await.unwrap());
    assert_eq!(gen(s, &cal).await, 2, "an update in place: once");
    // Moving to another calendar moves both.
    a2.calendar_id = Some(other.id);
    assert!(s.update_event(&a2, None, &[], BY).await.unwrap());
    assert_eq!((gen(s, &cal).await, gen(s, &other).await), (3, 1));
    assert!(s.delete_event(a.id, T0, BY).await.unwrap());
    assert_eq!((gen(s, &cal).await, gen(s, &other).await), (3, 2));
    // A batch: once per calendar; an event without a calendar moves none.
    let b = member(&cal, "b", T0 + HOUR);
    let c = member(&cal, "c", T0 + HOUR);
    let mut free = member(&cal, "d", T0 + HOUR);
    free.calendar_id = None;
    s.create_events(&[(b, vec![]), (c, vec![]), (free, vec![])], BY)
        .await
        .unwrap();
    assert_eq!((gen(s, &cal).await, gen(s, &other).await), (4, 2));
    // Writing the calendar itself leaves the counter alone.
    let mut renamed = s.get_calendar(cal.id).await.unwrap().unwrap();
    renamed.name = "renamed".into();
    renamed.events_gen = 0;
    assert!(s.update_calendar(&renamed).await.unwrap());
    assert_eq!(gen(s, &cal).await, 4);
}

async fn calendars_are_listed_after_a_cursor(s: &dyn Store) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let c = calendar(None, None);
        s.create_calendar(&c).await.unwrap();
        ids.push(c.id);
    }
    let page: Vec<Uuid> = s
        .list_calendars(None, 2)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(page, ids[..2]);
    let page: Vec<Uuid> = s
        .list_calendars(Some(ids[1]), 2)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(page, ids[2..]);
}
