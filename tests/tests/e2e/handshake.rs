//! The GET verification handshake Meta performs when the callback URL is set.

use e2e_tests::{TestGateway, VERIFY_TOKEN};

async fn gateway() -> TestGateway {
    // The handshake never reaches ingest-svc; nothing needs to listen there.
    TestGateway::start_with("http://127.0.0.1:1", |_| {}).await
}

#[tokio::test]
async fn the_right_verify_token_gets_the_challenge_back_verbatim() {
    let gw = gateway().await;

    let res = gw
        .http
        .get(gw.url("/webhooks/whatsapp"))
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", VERIFY_TOKEN),
            ("hub.challenge", "1158201444"),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(res.text().await.unwrap(), "1158201444");
}

#[tokio::test]
async fn a_wrong_verify_token_is_forbidden() {
    let gw = gateway().await;

    let res = gw
        .http
        .get(gw.url("/webhooks/whatsapp"))
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "guess"),
            ("hub.challenge", "42"),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 403);
    assert_ne!(
        res.text().await.unwrap(),
        "42",
        "the challenge must not be echoed"
    );
}

#[tokio::test]
async fn a_missing_parameter_is_a_bad_request_with_a_json_error() {
    let gw = gateway().await;

    for missing in ["hub.mode", "hub.verify_token", "hub.challenge"] {
        let params: Vec<(&str, &str)> = [
            ("hub.mode", "subscribe"),
            ("hub.verify_token", VERIFY_TOKEN),
            ("hub.challenge", "7"),
        ]
        .into_iter()
        .filter(|(k, _)| *k != missing)
        .collect();
        let res = gw
            .http
            .get(gw.url("/webhooks/whatsapp"))
            .query(&params)
            .send()
            .await
            .unwrap();

        assert_eq!(res.status(), 400, "without {missing}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["error"]["code"].is_string(),
            "without {missing}: {body}"
        );
    }
}
