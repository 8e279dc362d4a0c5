//! Meta delivers at least once: redeliveries never create a second record or job.

use std::time::Duration;

use e2e_tests::{TestSystem, eventually, fixture};

use crate::support::message_ids;

#[tokio::test]
async fn the_same_post_twice_records_one_message_and_one_job() {
    let sys = TestSystem::start().await;
    let body = fixture("text.json");

    let first = sys.gateway.post_signed(&body).await;
    let second = sys.gateway.post_signed(&body).await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let stats = sys.ingest.stats().await;
    assert_eq!(stats.webhook_events, 2, "each delivery is kept");
    assert_eq!(stats.messages, 1);
    assert_eq!(sys.ingest.db.count("SELECT COUNT(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn twenty_concurrent_copies_of_one_post_all_get_200_and_record_once() {
    let sys = TestSystem::start().await;
    let body = fixture("text.json");
    let wamid = message_ids(&body).remove(0);

    let answers = futures::future::join_all((0..20).map(|_| sys.gateway.post_signed(&body))).await;

    assert!(
        answers.iter().all(|r| r.status() == 200),
        "{:?}",
        answers.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let stats = sys.ingest.stats().await;
    assert_eq!(stats.webhook_events, 20);
    assert_eq!(stats.messages, 1);
    assert_eq!(sys.ingest.db.count("SELECT COUNT(*) FROM jobs").await, 1);
    assert_eq!(
        sys.ingest
            .db
            .count(&format!(
                "SELECT COUNT(*) FROM messages WHERE wamid = '{wamid}'"
            ))
            .await,
        1
    );
    eventually("one job on the stream", Duration::from_secs(10), || async {
        (sys.ingest.stream_len().await == 1).then_some(())
    })
    .await;
}
