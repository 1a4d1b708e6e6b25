//! Workflows: saved definitions, and the follow-ups the outcome path writes in the cause's
//! own transaction (`record_outcomes`, `settle_claim`, the pull-claim expiry), once per
//! (workflow, cause).

use qhronos::domain::occurrence::OccStatus;
use qhronos::store::workflows::{CauseState, EventTemplate, Then, When, RUNTIME_KEY};
use qhronos::store::*;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::*;

crate::conformance!(
    workflows_read_back_as_saved,
    a_completed_cause_gets_one_follow_up_with_its_snapshot,
    a_fenced_out_outcome_writes_no_follow_up,
    only_matching_states_events_and_tags_cause_follow_ups,
    a_create_follow_up_is_a_new_one_time_event,
    a_follow_up_past_the_depth_limit_is_missed_with_the_reason,
    a_settled_pull_claim_causes_its_follow_up_once,
    an_expired_pull_claim_that_fails_causes_its_follow_up,
);

fn workflow(when: When, then: Then, delay_ms: i64) -> Workflow {
    Workflow {
        id: Uuid::now_v7(),
        name: "wf".into(),
        when,
        then,
        delay_ms,
        body: None,
        enabled: true,
        tags: vec![],
        scope: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn on_event(id: Uuid, on: &[CauseState]) -> When {
    When {
        event_id: Some(id),
        tags: vec![],
        on: on.to_vec(),
    }
}

/// The follow-ups of an event (occurrences with a `caused_by`).
async fn follow_ups(s: &dyn Store, event_id: Uuid) -> Vec<qhronos::domain::occurrence::Occurrence> {
    of_event(s, event_id)
        .await
        .into_iter()
        .filter(|o| o.caused_by.is_some())
        .collect()
}

/// Claims the one due occurrence of `e` at `now` and records it completed (HTTP 200).
async fn complete_one(s: &dyn Store, owner: &str, token: i64, now: i64) -> Uuid {
    let c = claim(s, Claim::at(owner, token, now)).await;
    assert_eq!(c.len(), 1, "one due occurrence");
    record(
        s,
        owner,
        &[attempted(&c[0], 200, Next::Completed, now)],
        now,
    )
    .await;
    c[0].occ.id
}

async fn workflows_read_back_as_saved(s: &dyn Store) {
    let mut w = workflow(
        When {
            event_id: None,
            tags: vec!["a".into()],
            on: vec![CauseState::Failed, CauseState::Missed],
        },
        Then::Trigger(Uuid::now_v7()),
        30 * SEC,
    );
    w.tags = vec!["a".into()];
    w.scope = Some(vec!["a".into(), "b".into()]);
    s.create_workflow(&w).await.expect("create");
    assert_eq!(s.get_workflow(w.id).await.expect("get"), Some(w.clone()));
    let mut w2 = workflow(
        on_event(Uuid::now_v7(), &[CauseState::Completed]),
        w.then.clone(),
        0,
    );
    w2.enabled = false;
    s.create_workflow(&w2).await.expect("create");
    let page = s.list_workflows(None, 1).await.expect("list");
    assert_eq!(page, vec![w.clone()]);
    let page = s.list_workflows(Some(w.id), 10).await.expect("list");
    assert_eq!(page, vec![w2.clone()]);
    w.name = "renamed".into();
    w.enabled = false;
    assert!(s.update_workflow(&w).await.expect("update"));
    assert_eq!(s.get_workflow(w.id).await.expect("get"), Some(w.clone()));
    assert!(s.delete_workflow(w.id).await.expect("delete"));
    assert!(!s.delete_workflow(w.id).await.expect("delete again"));
    assert_eq!(s.get_workflow(w.id).await.expect("get"), None);
    assert_eq!(s.all_workflows().await.expect("all"), vec![w2]);
}

/// A completed cause gets exactly one follow-up, due `delay` after the outcome, naming its
/// cause and keeping the snapshot templates see; the cause lists it.
async fn a_completed_cause_gets_one_follow_up_with_its_snapshot(s: &dyn Store) {
    let mut ab = body(T0);
    ab["name"] = json!("nightly backup");
    ab["metadata"] = json!({"x": "42"});
    let a = event(ab);
    let b = one_time(T0 + DAY);
    create(s, &a, &[occ(&a, T0)]).await;
    create(s, &b, &[occ(&b, T0 + DAY)]).await;
    let w = workflow(
        on_event(a.id, &[CauseState::Completed]),
        Then::Trigger(b.id),
        30 * SEC,
    );
    s.create_workflow(&w).await.expect("create");

    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    let outcome = attempted(&c[0], 200, Next::Completed, T0);
    record(s, "node-a", std::slice::from_ref(&outcome), T0).await;
    let cause = c[0].occ.id;
    let f = follow_ups(s, b.id).await;
    assert_eq!(f.len(), 1, "one follow-up: {f:?}");
    let f = &f[0];
    assert_eq!(f.status, OccStatus::Pending);
    assert_eq!(f.scheduled_at, T0 + 30 * SEC);
    let by = f.caused_by.clone().expect("caused_by");
    assert_eq!((by.workflow_id, by.occurrence_id), (w.id, cause));
    let snap = f.cause.clone().expect("cause snapshot");
    assert_eq!(snap["event"]["name"], "nightly backup");
    assert_eq!(snap["occurrence"]["status"], "completed");
    assert_eq!(snap["attempt"]["status_code"], 200);
    assert_eq!(snap["metadata"]["x"], "42");
    assert_eq!(s.caused(cause).await.expect("caused"), vec![f.id]);

    // Recording the same outcome again (a retried write) makes nothing more.
    record(s, "node-a", &[outcome], T0 + SEC).await;
    assert_eq!(follow_ups(s, b.id).await.len(), 1, "still one follow-up");
}

/// A stale claim's outcome is fenced out, and so are the follow-ups it would cause: the
/// follow-up belongs to the outcome's transaction.
async fn a_fenced_out_outcome_writes_no_follow_up(s: &dyn Store) {
    let a = one_time(T0);
    let b = one_time(T0 + DAY);
    create(s, &a, &[occ(&a, T0)]).await;
    create(s, &b, &[]).await;
    let w = workflow(
        on_event(a.id, &[CauseState::Completed, CauseState::Failed]),
        Then::Trigger(b.id),
        0,
    );
    s.create_workflow(&w).await.expect("create");
    let old = claim(s, Claim::at("node-a", 1, T0).lease(SEC)).await;
    assert_eq!(old.len(), 1);
    // node-a stalls; node-b takes the row over after the lease.
    let new = claim(s, Claim::at("node-b", 2, T0 + 2 * SEC).taking_over()).await;
    assert_eq!(new.len(), 1);
    record(
        s,
        "node-a",
        &[attempted(&old[0], 200, Next::Completed, T0)],
        T0 + 3 * SEC,
    )
    .await;
    assert!(
        follow_ups(s, b.id).await.is_empty(),
        "the stale outcome caused a follow-up"
    );
    record(
        s,
        "node-b",
        &[attempted(&new[0], 500, Next::Failed, T0 + 3 * SEC)],
        T0 + 3 * SEC,
    )
    .await;
    let f = follow_ups(s, b.id).await;
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].cause.as_ref().expect("cause")["occurrence"]["status"],
        "failed"
    );
    assert_eq!(
        f[0].cause.as_ref().expect("cause")["attempt"]["status_code"],
        500
    );
}

/// States not in `on`, other events, events lacking a tag, disabled workflows and events outside
/// the creator's scope cause nothing; a retry (not finished) causes nothing yet.
async fn only_matching_states_events_and_tags_cause_follow_ups(s: &dyn Store) {
    let mut tb = body(T0);
    tb["tags"] = json!(["ops", "db"]);
    let tagged = event(tb);
    let mut ob = body(T0);
    ob["tags"] = json!(["ops"]);
    let other = event(ob);
    let target = one_time(T0 + DAY);
    create(s, &tagged, &[occ(&tagged, T0)]).await;
    create(s, &other, &[occ(&other, T0)]).await;
    create(s, &target, &[]).await;
    let tags = |t: &[&str], on: &[CauseState]| When {
        event_id: None,
        tags: t.iter().map(|x| x.to_string()).collect(),
        on: on.to_vec(),
    };
    let hits = workflow(
        tags(&["ops", "db"], &[CauseState::Completed]),
        Then::Trigger(target.id),
        0,
    );
    let wrong_state = workflow(
        tags(&["ops"], &[CauseState::Failed]),
        Then::Trigger(target.id),
        0,
    );
    let mut disabled = workflow(
        tags(&["ops"], &[CauseState::Completed]),
        Then::Trigger(target.id),
        0,
    );
    disabled.enabled = false;
    let mut out_of_scope = workflow(
        tags(&["ops"], &[CauseState::Completed]),
        Then::Trigger(target.id),
        0,
    );
    out_of_scope.scope = Some(vec!["elsewhere".into()]);
    for w in [&hits, &wrong_state, &disabled, &out_of_scope] {
        s.create_workflow(w).await.expect("create");
    }
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    assert_eq!(c.len(), 2);
    // First a retry: not finished, no follow-up.
    let outs: Vec<Outcome> = c
        .iter()
        .map(|c| attempted(c, 503, Next::Retry(T0 + SEC), T0))
        .collect();
    record(s, "node-a", &outs, T0).await;
    assert!(follow_ups(s, target.id).await.is_empty());
    let c = claim(s, Claim::at("node-a", 2, T0 + SEC)).await;
    let outs: Vec<Outcome> = c
        .iter()
        .map(|c| attempted(c, 200, Next::Completed, T0 + SEC))
        .collect();
    record(s, "node-a", &outs, T0 + SEC).await;
    let f = follow_ups(s, target.id).await;
    assert_eq!(
        f.len(),
        1,
        "only the tagged event through the matching workflow: {f:?}"
    );
    let by = f[0].caused_by.clone().expect("caused_by");
    assert_eq!(by.workflow_id, hits.id);
    let tagged_occ = at(s, tagged.id, T0).await;
    assert_eq!(by.occurrence_id, tagged_occ.id);
}

/// `create` makes a new active one-time event from the template, due at the follow-up's time.
async fn a_create_follow_up_is_a_new_one_time_event(s: &dyn Store) {
    let a = one_time(T0);
    create(s, &a, &[occ(&a, T0)]).await;
    let mut tb = body(T0);
    tb["name"] = json!("alert");
    tb["tags"] = json!(["alerts"]);
    let template = EventTemplate::of(&event(tb));
    let w = workflow(
        on_event(a.id, &[CauseState::Missed]),
        Then::Create(Box::new(template)),
        5 * SEC,
    );
    s.create_workflow(&w).await.expect("create");
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    let missed = Outcome::Missed {
        occurrence_id: c[0].occ.id,
        event_id: a.id,
        scheduled_at: c[0].occ.scheduled_at,
        token: 1,
    };
    record(s, "node-a", &[missed], T0 + SEC).await;
    let caused = s.caused(c[0].occ.id).await.expect("caused");
    assert_eq!(caused.len(), 1);
    let (f, _) = get(s, caused[0]).await;
    let e = s
        .get_event(f.event_id)
        .await
        .expect("get")
        .expect("created event");
    assert_eq!(e.name, "alert");
    assert_eq!(e.tags, vec!["alerts".to_string()]);
    assert_eq!(e.schedule, None);
    assert_eq!(e.start_time, T0 + 6 * SEC);
    assert_eq!(f.scheduled_at, T0 + 6 * SEC);
    assert_eq!(f.status, OccStatus::Pending);
}

/// A follow-up deeper than `max_depth` is recorded `missed` with the reason, and a missed
/// follow-up causes nothing more.
async fn a_follow_up_past_the_depth_limit_is_missed_with_the_reason(s: &dyn Store) {
    s.set_setting(
        RUNTIME_KEY,
        &json!({"max_depth": 2, "retry": {"max_attempts": 3, "initial_delay": "1s", "max_delay": "1m", "timeout": "10s"}})
            .to_string(),
    )
    .await
    .expect("settings");
    // a ⇒ b ⇒ a ⇒ … (a loop the save-time check would refuse; the store cuts it anyway).
    let a = one_time(T0);
    let b = one_time(T0 + DAY);
    create(s, &a, &[occ(&a, T0)]).await;
    create(s, &b, &[]).await;
    let all = [CauseState::Completed, CauseState::Missed];
    s.create_workflow(&workflow(on_event(a.id, &all), Then::Trigger(b.id), 0))
        .await
        .expect("create");
    s.create_workflow(&workflow(on_event(b.id, &all), Then::Trigger(a.id), 0))
        .await
        .expect("create");
    let mut now = T0;
    // depth 0 (a) ⇒ 1 (b) ⇒ 2 (a) ⇒ 3 (b): missed.
    for token in 1..=3 {
        complete_one(s, "node-a", token, now).await;
        now += SEC;
    }
    let f = follow_ups(s, b.id).await;
    let missed: Vec<_> = f.iter().filter(|o| o.status == OccStatus::Missed).collect();
    assert_eq!(missed.len(), 1, "{f:?}");
    let why = missed[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("depth limit 2"), "{why}");
    assert!(claim(s, Claim::at("node-a", 9, now + DAY / 2))
        .await
        .is_empty());
}

async fn a_settled_pull_claim_causes_its_follow_up_once(s: &dyn Store) {
    let a = pull(T0, "jobs");
    let b = one_time(T0 + DAY);
    create(s, &a, &[occ(&a, T0)]).await;
    create(s, &b, &[]).await;
    s.create_workflow(&workflow(
        on_event(a.id, &[CauseState::Completed]),
        Then::Trigger(b.id),
        0,
    ))
    .await
    .expect("create");
    let got = s
        .claim_queue("jobs", &[], 10, T0 + MIN, T0)
        .await
        .expect("claim");
    let (c, receipt) = &got[0];
    assert_eq!(
        s.settle_claim(c.occ.id, receipt, None, Next::Completed, T0 + SEC)
            .await
            .expect("settle"),
        OccChange::Done
    );
    // The same ack again is refused, and makes nothing more.
    let again = s
        .settle_claim(c.occ.id, receipt, None, Next::Completed, T0 + 2 * SEC)
        .await
        .expect("settle again");
    assert_ne!(again, OccChange::Done);
    let f = follow_ups(s, b.id).await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].scheduled_at, T0 + SEC);
}

async fn an_expired_pull_claim_that_fails_causes_its_follow_up(s: &dyn Store) {
    let a = pull(T0, "jobs");
    let b = one_time(T0 + DAY);
    let mut o = occ(&a, T0);
    o.attempt_limit = 1;
    create(s, &a, &[o]).await;
    create(s, &b, &[]).await;
    s.create_workflow(&workflow(
        on_event(a.id, &[CauseState::Failed]),
        Then::Trigger(b.id),
        0,
    ))
    .await
    .expect("create");
    s.claim_queue("jobs", &[], 10, T0 + SEC, T0)
        .await
        .expect("claim");
    assert_eq!(s.expire_claims(T0 + 2 * SEC).await.expect("expire"), 1);
    let f = follow_ups(s, b.id).await;
    assert_eq!(f.len(), 1);
    let cause = f[0].cause.clone().expect("cause");
    assert_eq!(cause["occurrence"]["status"], "failed");
    assert_eq!(cause["attempt"]["error"], "visibility timeout expired");
}
