//! SQLite as the embedded backend; Redis outages and the outbox relay.

use std::time::Duration;

use fred::interfaces::{KeysInterface, StreamsInterface};
use ingest_svc::db::entities::job;
use proto::ingest::GetMessageRequest;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{
    eventually, spawn_app, spawn_app_with, spawn_sqlite_app, status, text_message, webhook,
};

#[tokio::test]
async fn the_sqlite_backend_stores_dedupes_and_reads_back() {
    let mut app = spawn_sqlite_app().await;
    let req = webhook(
        vec![text_message("wamid.S1", "16505551234", "hi \0 there")],
        vec![status("wamid.S1", "read", 2), status("wamid.S1", "sent", 1)],
    );

    let first = app.ingest(req.clone()).await;
    // Concurrent redeliveries serialise on the single SQLite connection.
    let calls = (0..5).map(|_| {
        let mut c = app.client.clone();
        let r = req.clone();
        async move { c.ingest_webhook(r).await.unwrap().into_inner() }
    });
    let again = futures::future::join_all(calls).await;

    assert_eq!(
        (
            first.messages_created,
            first.jobs_created,
            first.statuses_created
        ),
        (1, 1, 2)
    );
    assert!(
        again
            .iter()
            .all(|r| r.messages_created == 0 && r.jobs_created == 0)
    );
    let record = app
        .client
        .get_message(GetMessageRequest {
            wamid: "wamid.S1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(record.current_status, "read");
    assert_eq!(record.job.unwrap().state, "pending");
    let stats = app.stats().await;
    assert_eq!(
        (stats.webhook_events, stats.messages, stats.jobs["pending"]),
        (6, 1, 1)
    );
    app.until_published(1).await;
    app.teardown().await;
}

#[tokio::test]
async fn with_redis_unreachable_ingest_succeeds_and_the_job_waits_in_the_outbox() {
    let mut app = spawn_app_with(|s| s.redis_url = "redis://127.0.0.1:1".into()).await;

    let started = std::time::Instant::now();
    let res = app
        .client
        .ingest_webhook(webhook(
            vec![text_message("wamid.NR", "16505551234", "hi")],
            vec![],
        ))
        .await
        .expect("Redis is not needed to accept a webhook")
        .into_inner();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no hanging on Redis"
    );
    assert_eq!(res.jobs_created, 1);
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, "pending");
    assert!(jobs[0].queued_at.is_none(), "not on the stream");
    app.teardown().await;
}

#[tokio::test]
async fn the_relay_puts_unqueued_jobs_on_the_stream_and_recreates_the_group() {
    // Arrange: a job that went through, then Redis "lost" it (stream gone, job unqueued).
    let mut app = spawn_app().await;
    app.client
        .ingest_webhook(webhook(
            vec![text_message("wamid.RL", "16505551234", "hi")],
            vec![],
        ))
        .await
        .unwrap();
    app.until_published(1).await;
    let _: i64 = app.redis.del(app.stream_key()).await.unwrap();
    job::Entity::update_many()
        .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
        .filter(job::Column::MessageWamid.eq("wamid.RL"))
        .exec(&app.db)
        .await
        .unwrap();

    // Act + Assert: the relay re-publishes within a deadline.
    eventually(
        Duration::from_secs(10),
        "relay to re-queue the job",
        || async {
            let jobs = app.jobs().await;
            (jobs[0].queued_at.is_some() && app.stream_len().await == 1).then_some(())
        },
    )
    .await;
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = app
        .redis
        .xrange(app.stream_key(), "-", "+", None)
        .await
        .unwrap();
    let job_id = app.jobs().await[0].id.to_string();
    assert_eq!(entries[0].1["job_id"], job_id);
    assert_eq!(entries[0].1["wamid"], "wamid.RL");
    let groups: Vec<std::collections::HashMap<String, fred::types::Value>> =
        app.redis.xinfo_groups(app.stream_key()).await.unwrap();
    assert_eq!(groups.len(), 1, "consumer group re-created");
    app.teardown().await;
}
