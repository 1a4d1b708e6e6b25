//! Issued tokens: create, read, page by jti, revoke, the `within` scope filter.

use std::collections::HashSet;

use qhronos::domain::access::Access;
use qhronos::store::*;

use crate::fixtures::*;

crate::conformance!(tokens_are_stored_paged_by_jti_and_revoked_once);

fn token(jti: &str, scope: &[&str]) -> TokenRecord {
    TokenRecord {
        jti: jti.to_string(),
        sub: format!("sub of {jti}"),
        access: Access::ReadWrite,
        scope: scope.iter().map(|s| s.to_string()).collect(),
        expires_at: T0 + DAY,
        created_at: T0,
        revoked_at: None,
    }
}

async fn tokens_are_stored_paged_by_jti_and_revoked_once(s: &dyn Store) {
    let scopes: [&[&str]; 7] = [&[], &["a"], &["a", "b"], &["c"], &["b"], &["a", "c"], &[]];
    let all: Vec<TokenRecord> = scopes
        .iter()
        .enumerate()
        .map(|(i, sc)| token(&format!("jti-{i:02}"), sc))
        .collect();
    for t in &all {
        s.create_token(t).await.expect("create_token");
    }
    let got = s.get_token("jti-02").await.expect("get").expect("token");
    assert_eq!(
        (got.sub.as_str(), got.access, got.scope.clone()),
        (
            "sub of jti-02",
            Access::ReadWrite,
            vec!["a".to_string(), "b".to_string()]
        )
    );
    assert_eq!(
        (got.expires_at, got.created_at, got.revoked_at),
        (T0 + DAY, T0, None)
    );
    assert!(s.get_token("nope").await.expect("get").is_none());

    let page_all = |within: Option<Vec<String>>| async move {
        let mut seen = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page = s
                .list_tokens(3, before.as_deref(), within.as_deref())
                .await
                .expect("list_tokens");
            seen.extend(page.iter().map(|t| t.jti.clone()));
            match page.last() {
                Some(last) if page.len() == 3 => before = Some(last.jti.clone()),
                _ => break,
            }
        }
        seen
    };
    let seen = page_all(None).await;
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "by jti, descending: {seen:?}"
    );
    let expected: HashSet<String> = all.iter().map(|t| t.jti.clone()).collect();
    assert_each_once(&seen, &expected, "tokens");
    // `within`: a non-empty scope inside the given one.
    let seen = page_all(Some(vec!["a".into(), "b".into()])).await;
    let expected: HashSet<String> = ["jti-01", "jti-02", "jti-04"].map(String::from).into();
    assert_each_once(&seen, &expected, "tokens within [a, b]");

    assert!(s.revoke_token("jti-03", T0 + HOUR).await.expect("revoke"));
    assert!(s
        .revoke_token("jti-03", T0 + 2 * HOUR)
        .await
        .expect("revoke twice"));
    assert!(!s.revoke_token("nope", T0).await.expect("revoke unknown"));
    let t = s.get_token("jti-03").await.expect("get").expect("token");
    assert_eq!(
        t.revoked_at,
        Some(T0 + HOUR),
        "the first revocation's time stays"
    );
    assert!(s.revoke_token("jti-05", T0 + HOUR).await.expect("revoke"));
    let mut revoked = s.revoked_jtis().await.expect("revoked");
    revoked.sort();
    assert_eq!(revoked, vec!["jti-03".to_string(), "jti-05".to_string()]);
    // Revoked tokens stay listed (with the time).
    assert_eq!(page_all(None).await.len(), 7);
}
