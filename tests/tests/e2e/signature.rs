//! Unsigned or wrongly signed POSTs are refused and leave no trace.

use e2e_tests::{TestSystem, fixture, sign_with};

async fn assert_nothing_stored(sys: &TestSystem) {
    let stats = sys.ingest.stats().await;
    assert_eq!(stats.webhook_events, 0, "{stats:?}");
    assert_eq!(stats.messages, 0, "{stats:?}");
    assert_eq!(
        sys.ingest
            .db
            .count("SELECT COUNT(*) FROM webhook_events")
            .await,
        0
    );
    assert_eq!(sys.ingest.db.count("SELECT COUNT(*) FROM jobs").await, 0);
}

#[tokio::test]
async fn a_post_without_signature_is_unauthorized_and_stores_nothing() {
    let sys = TestSystem::start().await;

    let res = sys
        .gateway
        .post_with_signature(&fixture("text.json"), None)
        .await;

    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_signature");
    assert_nothing_stored(&sys).await;
}

#[tokio::test]
async fn a_post_signed_with_another_secret_is_refused_and_stores_nothing() {
    let sys = TestSystem::start().await;
    let body = fixture("text.json");

    let wrong_secret = sys
        .gateway
        .post_with_signature(&body, Some(&sign_with("not-our-secret", &body)))
        .await;
    let garbage = sys
        .gateway
        .post_with_signature(&body, Some("sha256=zz"))
        .await;
    let tampered = {
        let mut other = body.clone();
        other.extend_from_slice(b" ");
        sys.gateway
            .post_with_signature(&other, Some(&e2e_tests::sign(&body)))
            .await
    };

    for res in [wrong_secret, garbage, tampered] {
        assert!(
            matches!(res.status().as_u16(), 401 | 403),
            "{}",
            res.status()
        );
    }
    assert_nothing_stored(&sys).await;
}

#[tokio::test]
async fn a_rotated_second_secret_is_accepted() {
    let ingest = e2e_tests::TestIngest::start().await;
    let gw = e2e_tests::TestGateway::start_with(&ingest.url(), |s| {
        s.app_secrets.push(e2e_tests::system::secret("new-secret"));
    })
    .await;
    let body = fixture("text.json");

    let res = gw
        .post_with_signature(&body, Some(&sign_with("new-secret", &body)))
        .await;

    assert_eq!(res.status(), 200);
    assert_eq!(ingest.stats().await.messages, 1);
}
