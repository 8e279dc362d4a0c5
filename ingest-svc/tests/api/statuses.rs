//! Status ranking: late or out-of-order statuses never downgrade a message.

use ingest_svc::db::entities::message;
use proto::ingest::{GetMessageRequest, MessageRecord};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};

use crate::helpers::{TestApp, spawn_app, status, text_message, webhook};

/// Records an outbound reply the way the job stream will (no RPC for it yet).
async fn record_outbound(app: &TestApp, wamid: &str, in_reply_to: &str) {
    message::ActiveModel {
        wamid: Set(wamid.into()),
        direction: Set(message::OUTBOUND.into()),
        event_id: Set(None),
        phone_number_id: Set(crate::helpers::PHONE_NUMBER_ID.into()),
        display_phone_number: Set(String::new()),
        sender_key: Set("16505551234".into()),
        wa_id: Set("16505551234".into()),
        user_id: Set(String::new()),
        contact_name: Set(String::new()),
        msg_type: Set("text".into()),
        text_body: Set(Some("Thanks!".into())),
        timestamp: Set(1),
        context_message_id: Set(Some(in_reply_to.into())),
        in_reply_to: Set(Some(in_reply_to.into())),
        job_id: Set(None),
        content: Set(Vec::new()),
        raw_json: Set("{}".into()),
        request_id: Set("r".into()),
        created_at: Set(1),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap();
}

async fn get(app: &mut TestApp, wamid: &str) -> MessageRecord {
    app.client
        .get_message(GetMessageRequest {
            wamid: wamid.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap()
}

#[tokio::test]
async fn read_then_delivered_then_sent_leaves_the_message_read() {
    let mut app = spawn_app().await;
    app.client
        .ingest_webhook(webhook(
            vec![text_message("wamid.IN", "16505551234", "hi")],
            vec![],
        ))
        .await
        .unwrap();
    record_outbound(&app, "wamid.OUT", "wamid.IN").await;

    for (name, ts) in [("read", 30), ("delivered", 20), ("sent", 10)] {
        let res = app
            .ingest(webhook(vec![], vec![status("wamid.OUT", name, ts)]))
            .await;
        assert_eq!(res.statuses_created, 1);
        assert_eq!(res.jobs_created, 0, "a status never creates a job");
    }

    let out = get(&mut app, "wamid.OUT").await;
    assert_eq!(out.direction, "outbound");
    assert_eq!(out.current_status, "read");
    let order: Vec<_> = out.statuses.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(order, ["sent", "delivered", "read"]);
    assert_eq!(out.in_reply_to, "wamid.IN");

    let inbound = get(&mut app, "wamid.IN").await;
    assert_eq!(inbound.replies, ["wamid.OUT"]);
    let stats = app.stats().await;
    assert_eq!(
        (stats.messages, stats.outbound_messages, stats.statuses),
        (1, 1, 3)
    );
    assert_eq!(
        app.jobs().await.len(),
        1,
        "only the inbound message has a job"
    );
    app.teardown().await;
}

#[tokio::test]
async fn failed_is_terminal_even_when_read_arrives_later() {
    let mut app = spawn_app().await;
    record_outbound(&app, "wamid.F", "wamid.none").await;
    let mut failed = status("wamid.F", "failed", 10);
    failed.errors = vec![proto::ingest::ErrorDetail {
        code: 131026,
        title: "Message undeliverable".into(),
        ..Default::default()
    }];

    for s in [
        status("wamid.F", "sent", 5),
        failed,
        status("wamid.F", "read", 20),
        status("wamid.F", "deleted", 30),
    ] {
        app.client
            .ingest_webhook(webhook(vec![], vec![s]))
            .await
            .unwrap();
    }
    // A redelivery of the same status is a duplicate.
    let dup = app
        .ingest(webhook(vec![], vec![status("wamid.F", "read", 20)]))
        .await;

    assert_eq!((dup.statuses_created, dup.statuses_duplicate), (0, 1));
    let out = get(&mut app, "wamid.F").await;
    assert_eq!(out.current_status, "failed");
    let failed = out.statuses.iter().find(|s| s.status == "failed").unwrap();
    assert_eq!(failed.errors[0].code, 131026);
    assert_eq!(
        out.statuses.first().unwrap().status,
        "deleted",
        "unknown names rank lowest"
    );
    app.teardown().await;
}
