//! Replaying a stored webhook event re-parses its raw bytes and records what is new.

use e2e_tests::TestSystem;
use proto::ingest::ReplayWebhookEventRequest;

use crate::support::{new_wamid, text_webhook};

#[tokio::test]
async fn replaying_a_stored_event_records_only_what_is_missing() {
    let sys = TestSystem::start().await;
    let (kept, lost) = (new_wamid(), new_wamid());
    let mut body: serde_json::Value =
        serde_json::from_slice(&text_webhook(&kept, "first")).unwrap();
    let mut second = body["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    second["id"] = lost.clone().into();
    body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap()
        .push(second);
    assert_eq!(
        sys.gateway
            .post_signed(body.to_string().as_bytes())
            .await
            .status(),
        200
    );
    let event_id = sys.message(&kept).await.event_id;
    // An item an older version failed to record: gone from the tables, still in the raw bytes.
    let conn = sys.ingest.db.connect().await;
    use sea_orm::ConnectionTrait;
    conn.execute_unprepared(&format!("DELETE FROM jobs WHERE message_wamid = '{lost}'"))
        .await
        .unwrap();
    conn.execute_unprepared(&format!("DELETE FROM messages WHERE wamid = '{lost}'"))
        .await
        .unwrap();
    let mut client = sys.ingest.client().await;

    let replay = client
        .replay_webhook_event(ReplayWebhookEventRequest { event_id })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        (
            replay.messages_created,
            replay.messages_duplicate,
            replay.jobs_created
        ),
        (1, 1, 1)
    );
    assert_eq!(
        sys.message(&lost).await.job.expect("job recreated").state,
        "pending"
    );
    let stats = sys.ingest.stats().await;
    assert_eq!(
        (stats.webhook_events, stats.messages),
        (1, 2),
        "no new event, nothing doubled"
    );

    let again = client
        .replay_webhook_event(ReplayWebhookEventRequest { event_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.messages_created, again.jobs_created), (0, 0));

    let missing = client
        .replay_webhook_event(ReplayWebhookEventRequest {
            event_id: event_id + 1000,
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
}
