//! IngestWebhook: storage, idempotency, jobs and the stream.

use std::time::Duration;

use futures::future::join_all;
use ingest_svc::db::entities::{message, webhook_event};
use proto::ingest::inbound_message::Content;
use proto::ingest::{
    Business, ErrorDetail, GetMessageRequest, GetStatsRequest, OtherEvent, QuarantinedItem,
    Reaction, WebhookError,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tonic::Code;

use crate::helpers::{spawn_app, spawn_sqlite_app, status, text_message, webhook};

#[tokio::test]
async fn a_text_message_is_stored_gets_one_job_and_one_stream_entry() {
    // Arrange
    let mut app = spawn_app().await;
    let req = webhook(
        vec![text_message("wamid.T1", "16505551234", "Hello")],
        vec![],
    );
    let raw_body = req.raw_body.clone();

    // Act
    let res = app.ingest(req).await;

    // Assert
    assert_eq!(res.messages_created, 1);
    assert_eq!(res.messages_duplicate, 0);
    assert_eq!(res.jobs_created, 1);
    let record = app
        .client
        .get_message(GetMessageRequest {
            wamid: "wamid.T1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(record.direction, "inbound");
    assert_eq!(record.event_id, res.event_id);
    let msg = record.message.unwrap();
    assert_eq!(msg.sender.unwrap().wa_id, "16505551234");
    assert!(matches!(msg.content, Some(Content::Text(t)) if t.body == "Hello"));
    assert!(msg.raw_json.contains("wamid.T1"));
    let job = record.job.expect("job");
    assert_eq!(job.state, "pending");

    let event = webhook_event::Entity::find_by_id(res.event_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.raw_body, raw_body, "raw bytes kept exactly");

    app.until_published(1).await;
    assert_eq!(app.jobs().await.len(), 1);
    app.teardown().await;
}

#[tokio::test]
async fn the_same_request_twice_creates_one_message_and_one_job() {
    let mut app = spawn_app().await;
    let req = webhook(vec![text_message("wamid.D1", "16505551234", "Hi")], vec![]);

    let first = app.ingest(req.clone()).await;
    let second = app.ingest(req).await;

    assert_eq!((first.messages_created, first.jobs_created), (1, 1));
    assert_eq!(
        (
            second.messages_created,
            second.messages_duplicate,
            second.jobs_created
        ),
        (0, 1, 0)
    );
    assert_ne!(
        first.event_id, second.event_id,
        "every POST is kept as an event"
    );
    assert_eq!(message::Entity::find().count(&app.db).await.unwrap(), 1);
    assert_eq!(app.jobs().await.len(), 1);
    app.until_published(1).await;
    app.teardown().await;
}

#[tokio::test]
async fn twenty_concurrent_identical_requests_create_one_message_and_one_job() {
    let app = spawn_app().await;
    let req = webhook(
        vec![
            text_message("wamid.C1", "16505551234", "Hi"),
            text_message("wamid.C2", "16505550000", "Yo"),
        ],
        vec![status("wamid.OUT", "sent", 10)],
    );

    let calls = (0..20).map(|_| {
        let mut client = app.client.clone();
        let req = req.clone();
        async move { client.ingest_webhook(req).await }
    });
    let results = join_all(calls).await;

    let mut created = 0;
    let mut jobs = 0;
    let mut statuses = 0;
    for r in results {
        let r = r.expect("every call succeeds").into_inner();
        created += r.messages_created;
        jobs += r.jobs_created;
        statuses += r.statuses_created;
    }
    assert_eq!((created, jobs, statuses), (2, 2, 1));
    assert_eq!(message::Entity::find().count(&app.db).await.unwrap(), 2);
    assert_eq!(app.jobs().await.len(), 2);
    app.until_published(2).await;
    app.teardown().await;
}

#[tokio::test]
async fn duplicates_inside_one_request_are_counted_not_rejected() {
    let mut app = spawn_app().await;
    let m = text_message("wamid.DUP", "16505551234", "Hi");
    let res = app
        .ingest(webhook(
            vec![m.clone(), m],
            vec![status("wamid.X", "read", 1), status("wamid.X", "read", 1)],
        ))
        .await;
    assert_eq!(
        (
            res.messages_created,
            res.messages_duplicate,
            res.jobs_created
        ),
        (1, 1, 1)
    );
    assert_eq!((res.statuses_created, res.statuses_duplicate), (1, 1));
    app.teardown().await;
}

#[tokio::test]
async fn statuses_and_reactions_create_no_job() {
    let mut app = spawn_app().await;
    let mut reaction = text_message("wamid.R1", "16505551234", "");
    reaction.r#type = "reaction".into();
    reaction.content = Some(Content::Reaction(Reaction {
        message_id: "wamid.OUT".into(),
        emoji: "\u{1F44D}".into(),
        removed: false,
    }));
    let mut sample = text_message("ABGGFlA5Fpa", "16315551181", "this is a text message");
    sample.business = Some(Business {
        phone_number_id: "123456123".into(),
        display_phone_number: "16505551111".into(),
        waba_id: "0".into(),
    });

    let res = app
        .ingest(webhook(
            vec![reaction, sample],
            vec![status("wamid.OUT", "delivered", 5)],
        ))
        .await;

    assert_eq!(res.messages_created, 2);
    assert_eq!(res.statuses_created, 1);
    assert_eq!(res.jobs_created, 0);
    assert!(app.jobs().await.is_empty());
    assert_eq!(app.stream_len().await, 0);
    app.teardown().await;
}

#[tokio::test]
async fn quarantined_items_errors_and_other_events_are_counted() {
    let mut app = spawn_app().await;
    let mut req = webhook(vec![text_message("wamid.Q1", "16505551234", "ok")], vec![]);
    req.quarantined = vec![
        QuarantinedItem {
            kind: "message".into(),
            reason: "missing id".into(),
            raw_json: r#"{"type":"text"}"#.into(),
            path: "entry[0].changes[0].value.messages[1]".into(),
        },
        QuarantinedItem {
            kind: "status".into(),
            reason: "missing status".into(),
            raw_json: "{}".into(),
            path: "entry[0].changes[0].value.statuses[0]".into(),
        },
    ];
    req.errors = vec![WebhookError {
        business: None,
        error: Some(ErrorDetail {
            code: 131000,
            title: "Something went wrong".into(),
            ..Default::default()
        }),
        raw_json: "{}".into(),
        path: "entry[0].changes[0].value.errors[0]".into(),
    }];
    req.other_events = vec![OtherEvent {
        object: "whatsapp_business_account".into(),
        field: "account_update".into(),
        entry_id: "1".into(),
        entry_time: 1,
        raw_json: "{}".into(),
        path: "entry[1].changes[0]".into(),
    }];

    let res = app.ingest(req).await;
    let stats = app.stats().await;

    assert_eq!(
        (res.quarantined, res.webhook_errors, res.other_events),
        (2, 1, 1)
    );
    assert_eq!(stats.webhook_events, 1);
    assert_eq!(stats.messages, 1);
    assert_eq!(stats.quarantined, 2);
    assert_eq!(stats.webhook_errors, 1);
    assert_eq!(stats.other_events, 1);
    assert_eq!(stats.outbound_messages, 0);
    for state in ["pending", "leased", "done", "failed", "dead"] {
        assert!(stats.jobs.contains_key(state), "jobs[{state}] present");
    }
    assert_eq!(stats.jobs["pending"], 1);
    app.teardown().await;
}

/// A request whose items have no WhatsApp id: two webhook errors, one other
/// event and two quarantined items, each with its path in the POST.
fn request_with_keyless_items(raw_body: &[u8]) -> proto::ingest::IngestWebhookRequest {
    let mut req = webhook(vec![text_message("wamid.K1", "16505551234", "ok")], vec![]);
    req.raw_body = raw_body.to_vec();
    let error = |k: usize, code: i64| WebhookError {
        error: Some(ErrorDetail {
            code,
            title: "Rate limit hit".into(),
            ..Default::default()
        }),
        raw_json: format!(r#"{{"code":{code}}}"#),
        path: format!("entry[0].changes[0].value.errors[{k}]"),
        ..Default::default()
    };
    req.errors = vec![error(0, 130429), error(1, 131000)];
    req.other_events = vec![OtherEvent {
        object: "whatsapp_business_account".into(),
        field: "account_update".into(),
        entry_id: "1".into(),
        entry_time: 1,
        raw_json: "{}".into(),
        path: "entry[1].changes[0]".into(),
    }];
    req.quarantined = (0..2)
        .map(|k| QuarantinedItem {
            kind: "message".into(),
            reason: "message has no `id`".into(),
            raw_json: r#"{"type":"text"}"#.into(),
            path: format!("entry[0].changes[0].value.messages[{}]", k + 1),
        })
        .collect();
    req
}

fn keyless_counts(res: &proto::ingest::IngestWebhookResponse) -> (u32, u32, u32) {
    (res.webhook_errors, res.other_events, res.quarantined)
}

#[tokio::test]
async fn the_same_request_twice_records_errors_other_events_and_quarantined_items_once() {
    let mut app = spawn_app().await;
    let req = request_with_keyless_items(br#"{"object":"whatsapp_business_account","entry":[1]}"#);

    let first = app.ingest(req.clone()).await;
    let second = app.ingest(req.clone()).await;

    assert_eq!(keyless_counts(&first), (2, 1, 2));
    assert_eq!(
        keyless_counts(&second),
        (0, 0, 0),
        "a redelivery creates none"
    );
    let stats = app.stats().await;
    assert_eq!(stats.webhook_events, 2, "every POST is kept as an event");
    assert_eq!(
        (stats.webhook_errors, stats.other_events, stats.quarantined),
        (2, 1, 2)
    );

    // Another body with items at the same paths is another POST: recorded again.
    let mut other = req;
    other.raw_body.extend_from_slice(b" ");
    let third = app.ingest(other).await;
    assert_eq!(keyless_counts(&third), (2, 1, 2));
    app.teardown().await;
}

#[tokio::test]
async fn keyless_items_are_deduplicated_on_sqlite_too() {
    let mut app = spawn_sqlite_app().await;
    let req = request_with_keyless_items(br#"{"object":"whatsapp_business_account","entry":[3]}"#);

    let first = app.ingest(req.clone()).await;
    let second = app.ingest(req).await;

    assert_eq!(keyless_counts(&first), (2, 1, 2));
    assert_eq!(keyless_counts(&second), (0, 0, 0));
    app.teardown().await;
}

#[tokio::test]
async fn concurrent_redeliveries_record_keyless_items_once() {
    let app = spawn_app().await;
    let req = request_with_keyless_items(br#"{"object":"whatsapp_business_account","entry":[2]}"#);

    let calls = (0..10).map(|_| {
        let mut client = app.client.clone();
        let req = req.clone();
        async move { client.ingest_webhook(req).await }
    });
    let results = join_all(calls).await;

    let mut totals = (0, 0, 0);
    for r in results {
        let counts = keyless_counts(&r.expect("every call succeeds").into_inner());
        totals = (
            totals.0 + counts.0,
            totals.1 + counts.1,
            totals.2 + counts.2,
        );
    }
    assert_eq!(totals, (2, 1, 2));
    let stats = app
        .client
        .clone()
        .get_stats(GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stats.webhook_errors, stats.other_events, stats.quarantined),
        (2, 1, 2)
    );
    app.teardown().await;
}

#[tokio::test]
async fn a_nul_inside_a_text_body_is_stored_on_postgres() {
    let mut app = spawn_app().await;
    let mut m = text_message("wamid.NUL", "16505551234", "a\0b");
    m.raw_json = "{\"body\":\"a\0b\"}".into();
    m.sender.as_mut().unwrap().name = "Nul\0Name".into();

    let res = app.client.ingest_webhook(webhook(vec![m], vec![])).await;

    assert_eq!(
        res.expect("NUL is not an error")
            .into_inner()
            .messages_created,
        1
    );
    let record = app
        .client
        .get_message(GetMessageRequest {
            wamid: "wamid.NUL".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    // The typed content keeps the exact text; the text column has U+FFFD.
    assert!(matches!(record.message.unwrap().content, Some(Content::Text(t)) if t.body == "a\0b"));
    let row = message::Entity::find()
        .filter(message::Column::Wamid.eq("wamid.NUL"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.text_body.as_deref(), Some("a\u{FFFD}b"));
    app.teardown().await;
}

#[tokio::test]
async fn items_without_their_key_are_invalid_arguments() {
    let mut app = spawn_app().await;
    let no_id = webhook(vec![text_message("", "1", "x")], vec![]);
    let no_status = webhook(vec![], vec![status("wamid.S", "", 1)]);

    for req in [no_id, no_status] {
        let err = app.client.ingest_webhook(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    let stats = app.stats().await;
    assert_eq!(stats.webhook_events, 0, "nothing stored");
    app.teardown().await;
}

#[tokio::test]
async fn get_message_validates_and_reports_absence() {
    let mut app = spawn_app().await;
    let empty = app
        .client
        .get_message(GetMessageRequest {
            wamid: String::new(),
        })
        .await
        .unwrap_err();
    let absent = app
        .client
        .get_message(GetMessageRequest {
            wamid: "wamid.none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(absent.code(), Code::NotFound);
    app.teardown().await;
}

#[tokio::test]
async fn a_large_batch_is_inserted_in_chunks() {
    let mut app = spawn_app().await;
    let messages: Vec<_> = (0..450)
        .map(|i| text_message(&format!("wamid.B{i:04}"), &format!("1650555{i:04}"), "hi"))
        .collect();
    let statuses: Vec<_> = (0..450)
        .map(|i| status(&format!("wamid.O{i}"), "sent", i))
        .collect();

    let res = app.ingest(webhook(messages, statuses)).await;

    assert_eq!(
        (res.messages_created, res.statuses_created, res.jobs_created),
        (450, 450, 450)
    );
    crate::helpers::eventually(Duration::from_secs(10), "450 stream entries", || async {
        (app.stream_len().await == 450).then_some(())
    })
    .await;
    app.teardown().await;
}

#[tokio::test]
async fn concurrent_batches_overlapping_in_any_order_neither_deadlock_nor_duplicate() {
    let app = spawn_app().await;
    let ids = ["wamid.P0", "wamid.P1", "wamid.P2", "wamid.P3", "wamid.P4"];
    let calls = (0..10).map(|i| {
        // Every call carries the same wamids, rotated and reversed differently.
        let mut order: Vec<&str> = ids.to_vec();
        order.rotate_left(i % ids.len());
        if i % 2 == 1 {
            order.reverse();
        }
        let msgs = order
            .iter()
            .map(|w| text_message(w, "16505551234", "x"))
            .collect();
        let sts = order.iter().map(|w| status(w, "sent", 1)).collect();
        let mut client = app.client.clone();
        async move { client.ingest_webhook(webhook(msgs, sts)).await }
    });

    let results = join_all(calls).await;

    let created: u32 = results
        .into_iter()
        .map(|r| {
            r.expect("no deadlock, no error")
                .into_inner()
                .messages_created
        })
        .sum();
    assert_eq!(created, 5);
    assert_eq!(app.jobs().await.len(), 5);
    app.teardown().await;
}
