//! Named templates: versions numbered from 1 that never change, the newest by default, and a
//! delete that a live event's action refuses.

use qhronos::domain::named_template::{TemplateDef, TemplateKind};
use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

crate::conformance!(
    versions_count_from_one_and_never_change,
    a_taken_name_and_an_unknown_template_write_nothing,
    concurrent_saves_get_distinct_versions,
    templates_list_by_name_with_their_newest_version,
    delete_is_refused_while_a_live_event_names_the_template,
);

fn body_def(text: &str) -> TemplateDef {
    TemplateDef {
        kind: TemplateKind::Body,
        subject: None,
        text: None,
        html: None,
        body: Some(json!({ "msg": text })),
        sample: Some(json!({"event": {"name": "n"}})),
    }
}

async fn versions_count_from_one_and_never_change(s: &dyn Store) {
    let t = s
        .create_template("t", &body_def("one"), "master", T0)
        .await
        .expect("create")
        .expect("created");
    assert_eq!((t.version, t.created_at, t.saved_at), (1, T0, T0));
    assert_eq!(t.actor, "master");
    let t2 = s
        .update_template("t", &body_def("two"), "jti:x", T0 + SEC)
        .await
        .expect("update")
        .expect("updated");
    assert_eq!((t2.version, t2.created_at, t2.saved_at), (2, T0, T0 + SEC));
    let latest = s
        .get_template("t", None)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(latest.version, 2);
    assert_eq!(latest.def.body, Some(json!({"msg": "two"})));
    assert_eq!(latest.def.sample, Some(json!({"event": {"name": "n"}})));
    let v1 = s
        .get_template("t", Some(1))
        .await
        .expect("get")
        .expect("v1");
    assert_eq!(v1.def, body_def("one"));
    assert_eq!(s.get_template("t", Some(3)).await.expect("get"), None);
    let all = s.template_versions("t").await.expect("versions");
    assert_eq!(
        all.iter().map(|t| t.version).collect::<Vec<_>>(),
        vec![2, 1],
        "newest first"
    );
    assert_eq!(all[1], v1);
}

async fn a_taken_name_and_an_unknown_template_write_nothing(s: &dyn Store) {
    s.create_template("t", &body_def("one"), "a", T0)
        .await
        .expect("create")
        .expect("created");
    assert_eq!(
        s.create_template("t", &body_def("other"), "b", T0)
            .await
            .expect("create"),
        None
    );
    assert_eq!(
        s.update_template("nope", &body_def("x"), "b", T0)
            .await
            .expect("update"),
        None
    );
    assert_eq!(s.get_template("nope", None).await.expect("get"), None);
    assert!(s
        .template_versions("nope")
        .await
        .expect("versions")
        .is_empty());
    let t = s
        .get_template("t", None)
        .await
        .expect("get")
        .expect("found");
    assert_eq!((t.version, t.actor.as_str()), (1, "a"));
    assert_eq!(
        s.delete_template("nope").await.expect("delete"),
        TemplateDeleted::NotFound
    );
}

async fn concurrent_saves_get_distinct_versions(s: &dyn Store) {
    s.create_template("t", &body_def("0"), "a", T0)
        .await
        .expect("create");
    let defs: Vec<TemplateDef> = (0..8).map(|i| body_def(&i.to_string())).collect();
    let saves = defs
        .iter()
        .zip(0..)
        .map(|(d, i)| s.update_template("t", d, "a", T0 + i));
    let mut versions: Vec<i64> = futures::future::join_all(saves)
        .await
        .into_iter()
        .map(|r| r.expect("update").expect("updated").version)
        .collect();
    versions.sort();
    assert_eq!(versions, (2..=9).collect::<Vec<_>>());
    assert_eq!(s.template_versions("t").await.expect("versions").len(), 9);
}

async fn templates_list_by_name_with_their_newest_version(s: &dyn Store) {
    for n in ["b", "a", "c"] {
        s.create_template(n, &body_def(n), "a", T0)
            .await
            .expect("create");
    }
    s.update_template("b", &body_def("b2"), "a", T0 + 1)
        .await
        .expect("update");
    let page = s.list_templates(None, 2).await.expect("list");
    assert_eq!(
        page.iter()
            .map(|t| (t.name.as_str(), t.version))
            .collect::<Vec<_>>(),
        vec![("a", 1), ("b", 2)]
    );
    let rest = s.list_templates(Some("b"), 2).await.expect("list");
    assert_eq!(
        rest.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["c"]
    );
}

async fn delete_is_refused_while_a_live_event_names_the_template(s: &dyn Store) {
    s.create_template("t", &body_def("x"), "a", T0)
        .await
        .expect("create");
    let mut b = body(T0 + HOUR);
    b["name"] = json!("uses t");
    b["tags"] = json!(["ops"]);
    b["action"] = json!({"type": "webhook", "params": {"url": "https://example.com/", "template": "t", "template_version": 1}});
    let user = event(b);
    create(s, &user, &[]).await;
    let other = one_time(T0 + HOUR);
    create(s, &other, &[]).await;
    match s.delete_template("t").await.expect("delete") {
        TemplateDeleted::InUse(users) => {
            assert_eq!(users.len(), 1);
            assert_eq!(users[0].id, user.id);
            assert_eq!(users[0].name, "uses t");
            assert_eq!(users[0].tags, vec!["ops".to_string()]);
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(s.get_template("t", None).await.expect("get").is_some());
    // Once the event is deleted, the template may go, with its versions.
    assert!(s.delete_event(user.id, T0 + SEC, BY).await.expect("delete"));
    assert_eq!(
        s.delete_template("t").await.expect("delete"),
        TemplateDeleted::Deleted
    );
    assert_eq!(s.get_template("t", Some(1)).await.expect("get"), None);
    assert!(s.template_versions("t").await.expect("versions").is_empty());
    // The name is free again, from version 1.
    let again = s
        .create_template("t", &body_def("y"), "a", T0 + 2 * SEC)
        .await
        .expect("create")
        .expect("created");
    assert_eq!(again.version, 1);
}
