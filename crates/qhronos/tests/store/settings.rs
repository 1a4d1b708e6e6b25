//! Settings: a small key-value table (the JWT key, the master token's hash…).

use qhronos::store::*;

crate::conformance!(setting_or_insert_keeps_the_first_value_and_set_overwrites);

async fn setting_or_insert_keeps_the_first_value_and_set_overwrites(s: &dyn Store) {
    assert_eq!(s.get_setting("k").await.expect("get"), None);
    assert_eq!(
        s.setting_or_insert("k", "first").await.expect("insert"),
        "first"
    );
    assert_eq!(
        s.setting_or_insert("k", "second").await.expect("insert"),
        "first"
    );
    assert_eq!(
        s.get_setting("k").await.expect("get").as_deref(),
        Some("first")
    );
    // Racing first starts agree on one value.
    let (a, b) = tokio::join!(
        s.setting_or_insert("race", "a"),
        s.setting_or_insert("race", "b")
    );
    let (a, b) = (a.expect("insert"), b.expect("insert"));
    assert_eq!(a, b);
    assert_eq!(s.get_setting("race").await.expect("get"), Some(a));

    s.set_setting("k", "third").await.expect("set");
    assert_eq!(
        s.get_setting("k").await.expect("get").as_deref(),
        Some("third")
    );
    s.set_setting("new", "v").await.expect("set");
    assert_eq!(
        s.get_setting("new").await.expect("get").as_deref(),
        Some("v")
    );
    assert_eq!(
        s.get_setting("K").await.expect("get"),
        None,
        "keys are exact"
    );
}
