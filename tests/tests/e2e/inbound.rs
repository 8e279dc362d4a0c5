//! Signed webhooks are recorded exactly once, with their raw bytes, typed content and job.

use std::time::Duration;

use e2e_tests::{TestDb, TestSystem, eventually, fixture};
use proto::ingest::inbound_message::Content;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;

use crate::support::{message_ids, status_ids};

async fn stored_raw_bodies(db: &TestDb) -> Vec<Vec<u8>> {
    let conn = db.connect().await;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT raw_body FROM webhook_events ORDER BY id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<Vec<u8>>(0).unwrap())
        .collect()
}

#[tokio::test]
async fn a_signed_text_message_is_stored_typed_with_its_raw_bytes_and_one_job() {
    let sys = TestSystem::start().await;
    let body = fixture("text.json");
    let json: Value = serde_json::from_slice(&body).unwrap();
    let value = &json["entry"][0]["changes"][0]["value"];
    let sent = &value["messages"][0];

    let res = sys.gateway.post_signed(&body).await;

    assert_eq!(res.status(), 200);
    assert_eq!(
        stored_raw_bodies(&sys.ingest.db).await,
        vec![body.clone()],
        "raw bytes, byte for byte"
    );
    let record = sys.message(sent["id"].as_str().unwrap()).await;
    assert_eq!(record.direction, "inbound");
    let msg = record.message.expect("typed message");
    let sender = msg.sender.expect("sender");
    assert_eq!(sender.wa_id, sent["from"].as_str().unwrap());
    assert_eq!(
        sender.name,
        value["contacts"][0]["profile"]["name"].as_str().unwrap()
    );
    assert_eq!(msg.r#type, "text");
    assert_eq!(
        msg.timestamp.to_string(),
        sent["timestamp"].as_str().unwrap()
    );
    assert_eq!(
        msg.business.expect("business").phone_number_id,
        value["metadata"]["phone_number_id"].as_str().unwrap()
    );
    match msg.content {
        Some(Content::Text(t)) => assert_eq!(t.body, sent["text"]["body"].as_str().unwrap()),
        other => panic!("expected text content, got {other:?}"),
    }
    assert_eq!(record.job.expect("a reply job").state, "pending");
    let stats = sys.ingest.stats().await;
    assert_eq!((stats.webhook_events, stats.messages), (1, 1));
    assert_eq!(sys.ingest.db.count("SELECT COUNT(*) FROM jobs").await, 1);
    let len = eventually(
        "the job on the Redis stream",
        Duration::from_secs(10),
        || async {
            let n = sys.ingest.stream_len().await;
            (n > 0).then_some(n)
        },
    )
    .await;
    assert_eq!(len, 1);
}

#[tokio::test]
async fn a_status_update_is_recorded_and_creates_no_job() {
    let sys = TestSystem::start().await;
    let body = fixture("status_delivered.json");
    let wamid = status_ids(&body).remove(0);

    let res = sys.gateway.post_signed(&body).await;

    assert_eq!(res.status(), 200);
    let stats = sys.ingest.stats().await;
    assert_eq!((stats.statuses, stats.messages), (1, 0));
    assert_eq!(sys.ingest.db.count("SELECT COUNT(*) FROM jobs").await, 0);
    let count = sys
        .ingest
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM statuses WHERE wamid = '{wamid}' AND status = 'delivered'"
        ))
        .await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn every_item_of_a_batch_with_several_entries_is_recorded() {
    let sys = TestSystem::start().await;
    let body = fixture("batch_mixed.json");
    let wamids = message_ids(&body);
    let statuses = status_ids(&body);
    assert!(
        wamids.len() >= 3 && statuses.len() >= 2,
        "the fixture is a real batch"
    );

    let res = sys.gateway.post_signed(&body).await;

    assert_eq!(res.status(), 200);
    let stats = sys.ingest.stats().await;
    assert_eq!(stats.messages, wamids.len() as u64);
    assert_eq!(stats.statuses, statuses.len() as u64);
    assert!(stats.webhook_errors >= 1, "{stats:?}");
    for wamid in &wamids {
        assert_eq!(&sys.message(wamid).await.message.unwrap().wamid, wamid);
    }
}

#[tokio::test]
async fn non_ascii_text_escaped_by_meta_verifies_and_is_stored_decoded() {
    let sys = TestSystem::start().await;
    let body = fixture("text_non_ascii.json");
    assert!(
        body.windows(6).any(|w| w == br"\u00e9"),
        "the fixture carries escapes"
    );
    let expected: Value = serde_json::from_slice(&body).unwrap();
    let sent = &expected["entry"][0]["changes"][0]["value"]["messages"][0];

    let res = sys.gateway.post_signed(&body).await;

    assert_eq!(res.status(), 200);
    let msg = sys
        .message(sent["id"].as_str().unwrap())
        .await
        .message
        .unwrap();
    match msg.content {
        Some(Content::Text(t)) => {
            assert_eq!(t.body, sent["text"]["body"].as_str().unwrap());
            assert!(t.body.contains('é'), "decoded, not escaped: {:?}", t.body);
        }
        other => panic!("expected text, got {other:?}"),
    }
    assert_eq!(stored_raw_bodies(&sys.ingest.db).await, vec![body]);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let sys = TestSystem::start().await;
    let mut body = br#"{"object":"whatsapp_business_account","entry":[],"pad":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024 + 1));
    body.extend_from_slice(b"\"}");

    let res = sys.gateway.post_signed(&body).await;

    assert_eq!(res.status(), 413);
    assert_eq!(sys.ingest.stats().await.webhook_events, 0);
}

#[tokio::test]
async fn unusable_bodies_get_400_with_a_json_error_and_store_nothing() {
    let sys = TestSystem::start().await;

    for (name, code) in [
        ("not_json.txt", "invalid_json"),
        ("not_object.json", "not_an_object"),
        ("no_entry.json", "missing_entry"),
    ] {
        let res = sys.gateway.post_signed(&fixture(name)).await;

        assert_eq!(res.status(), 400, "{name}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{name}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    assert_eq!(sys.ingest.stats().await.webhook_events, 0);
}

#[tokio::test]
async fn the_same_flow_works_on_sqlite() {
    let sys = TestSystem::on(TestDb::sqlite()).await;
    let body = fixture("text.json");
    let wamid = message_ids(&body).remove(0);

    let first = sys.gateway.post_signed(&body).await;
    let second = sys.gateway.post_signed(&body).await;

    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let stats = sys.ingest.stats().await;
    assert_eq!((stats.webhook_events, stats.messages), (2, 1));
    assert_eq!(sys.message(&wamid).await.job.expect("job").state, "pending");
    assert_eq!(sys.ingest.db.count("SELECT COUNT(*) FROM jobs").await, 1);
    eventually(
        "the job on the Redis stream",
        Duration::from_secs(10),
        || async { (sys.ingest.stream_len().await == 1).then_some(()) },
    )
    .await;
}
