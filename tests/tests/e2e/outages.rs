//! When ingest-svc cannot store a delivery the gateway answers 503, so Meta retries.

use std::time::Duration;

use e2e_tests::{TestGateway, TestIngest, eventually};

use crate::support::{new_wamid, text_webhook};

#[tokio::test]
async fn ingest_down_means_503_and_the_retry_after_it_returns_is_recorded_once() {
    let mut ingest = TestIngest::start().await;
    let gw =
        TestGateway::start_with(&ingest.url(), |s| s.ingest_timeout = Duration::from_secs(2)).await;
    let wamid = new_wamid();
    let body = text_webhook(&wamid, "is anyone there?");
    ingest.stop().await;

    let while_down = gw.post_signed(&body).await;

    assert_eq!(while_down.status(), 503);
    let err: serde_json::Value = while_down.json().await.unwrap();
    assert!(err["error"]["code"].is_string(), "{err}");

    ingest.restart().await;
    // Meta retries until it gets a 200; so do we, with a deadline.
    eventually(
        "a 200 once ingest-svc is back",
        Duration::from_secs(15),
        || async { (gw.post_signed(&body).await.status() == 200).then_some(()) },
    )
    .await;

    let stats = ingest.stats().await;
    assert_eq!(stats.messages, 1);
    assert_eq!(
        stats.webhook_events, 1,
        "the refused delivery left nothing behind"
    );
    assert_eq!(ingest.db.count("SELECT COUNT(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn an_ingest_that_never_answers_is_cut_off_by_the_deadline_with_503() {
    // A socket that accepts connections but never speaks HTTP/2.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let gw = TestGateway::start_with(&url, |s| s.ingest_timeout = Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    let res = gw.post_signed(&text_webhook(&new_wamid(), "hello")).await;

    assert_eq!(res.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn readiness_follows_ingest_availability() {
    let mut ingest = TestIngest::start().await;
    let gw = TestGateway::start_with(&ingest.url(), |_| {}).await;

    let ready = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    let live = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (ready.status().as_u16(), live.status().as_u16()),
        (200, 200)
    );

    ingest.stop().await;
    let not_ready = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    let still_live = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (not_ready.status().as_u16(), still_live.status().as_u16()),
        (503, 200)
    );
}
