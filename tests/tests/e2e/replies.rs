//! Jobs over the worker stream and the reply on WhatsApp: at least once, answered once.
//! Everything is real (gateway, ingest-svc, worker-svc, PostgreSQL, Redis) but Graph.

use std::time::Duration;

use e2e_tests::{
    Answer, FakeGraph, TestDb, TestGateway, TestIngest, TestSystem, TestWorker, eventually,
};
use proto::ingest::{GetMessageRequest, MessageRecord};
use proto::jobs::job_service_client::JobServiceClient;
use proto::jobs::{
    Hello, ListDeadJobsRequest, RetryJobRequest, WorkerMessage, server_message, worker_message,
};

use crate::support::{new_wamid, status_webhook, text_webhook, text_webhook_from};

const WAIT: Duration = Duration::from_secs(20);

/// ingest-svc (short leases, 3 attempts), a gateway, a fake Graph and one worker.
struct Pipeline {
    sys: TestSystem,
    graph: FakeGraph,
    workers: Vec<TestWorker>,
}

impl Pipeline {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(worker: impl FnOnce(&mut worker_svc::config::Settings)) -> Self {
        let sys = system().await;
        let graph = FakeGraph::start().await;
        let w = TestWorker::start_with(&sys.ingest.url(), &graph.base_url(), worker).await;
        Self {
            sys,
            graph,
            workers: vec![w],
        }
    }

    /// Posts a signed text message from the usual customer; Meta must get its 200.
    async fn post_text(&self, wamid: &str, text: &str) {
        self.sys.post_ok(&text_webhook(wamid, text)).await;
    }

    async fn job_state(&self, wamid: &str) -> (String, String) {
        let job = self.sys.message(wamid).await.job.expect("a job");
        (job.state, job.outcome)
    }

    async fn until_job(&self, wamid: &str, state: &str) -> MessageRecord {
        self.sys.until_job(wamid, state).await
    }
}

/// Short leases and 3 attempts, so retries and dead letters happen within a test.
async fn system() -> TestSystem {
    TestSystem::start_with(|s| {
        s.job_lease = Duration::from_secs(2);
        s.max_attempts = 3;
    })
    .await
}

async fn get(sys: &TestSystem, wamid: &str) -> Option<MessageRecord> {
    let mut client = sys.ingest.client().await;
    client
        .get_message(GetMessageRequest {
            wamid: wamid.to_owned(),
        })
        .await
        .ok()?
        .into_inner()
        .message
}

#[tokio::test]
async fn an_inbound_text_gets_one_reply_marked_read_recorded_and_tracked_by_status() {
    let p = Pipeline::start().await;
    let wamid = new_wamid();

    p.post_text(&wamid, "Do you open on Sunday?").await;

    let inbound = p.until_job(&wamid, "done").await;
    let sends = p.graph.sends();
    assert_eq!(sends.len(), 1, "exactly one reply");
    let send = &sends[0];
    assert_eq!(send.phone_number_id, "106540352242922");
    assert_eq!(send.authorization, "Bearer test-access-token");
    assert_eq!(send.body["to"], "16505551234");
    assert_eq!(send.body["context"]["message_id"], wamid.as_str());
    assert_eq!(send.body["messaging_product"], "whatsapp");
    assert!(
        send.body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .starts_with("job=")
    );
    let reads: Vec<_> = p
        .graph
        .requests()
        .into_iter()
        .filter(|r| r.body["status"] == "read")
        .collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].body["message_id"], wamid.as_str());

    assert_eq!(inbound.replies.len(), 1, "{inbound:?}");
    let outbound_wamid = inbound.replies[0].clone();
    let outbound = p.sys.message(&outbound_wamid).await;
    assert_eq!(outbound.direction, "outbound");
    assert_eq!(outbound.in_reply_to, wamid);

    p.sys
        .post_ok(&status_webhook(
            &outbound_wamid,
            "delivered",
            1_764_770_100,
            "",
        ))
        .await;
    assert_eq!(
        p.sys.message(&outbound_wamid).await.current_status,
        "delivered"
    );
}

#[tokio::test]
async fn five_redeliveries_some_concurrent_get_one_reply() {
    let p = Pipeline::start().await;
    let wamid = new_wamid();
    let body = text_webhook(&wamid, "hello?");

    let first = p.sys.gateway.post_signed(&body).await.status();
    let burst = futures::future::join_all((0..3).map(|_| p.sys.gateway.post_signed(&body))).await;
    p.until_job(&wamid, "done").await;
    let last = p.sys.gateway.post_signed(&body).await.status();

    assert_eq!(first, 200);
    assert!(burst.iter().all(|r| r.status() == 200));
    assert_eq!(last, 200);
    assert_eq!(p.graph.sends().len(), 1);
    assert_eq!(p.sys.ingest.stats().await.outbound_messages, 1);
}

#[tokio::test]
async fn a_worker_that_dies_holding_a_job_loses_it_and_the_job_is_answered_once() {
    // A worker that takes a lease and dies without answering (a raw stream client).
    let sys = system().await;
    let graph = FakeGraph::start().await;
    let wamid = new_wamid();
    sys.post_ok(&text_webhook(&wamid, "anyone?")).await;

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WorkerMessage {
        kind: Some(worker_message::Kind::Hello(Hello {
            worker_id: "doomed".into(),
            capacity: 1,
        })),
    })
    .await
    .unwrap();
    let mut doomed = JobServiceClient::connect(sys.ingest.url()).await.unwrap();
    let mut leases = doomed
        .stream_jobs(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let lease = loop {
        match leases.message().await.unwrap().expect("a lease").kind {
            Some(server_message::Kind::Job(l)) => break l,
            _ => continue,
        }
    };
    assert_eq!(lease.message.unwrap().wamid, wamid);
    assert_eq!(p_state(&sys, &wamid).await, "leased");
    drop(leases);
    drop(tx);

    let _worker = TestWorker::start_with(&sys.ingest.url(), &graph.base_url(), |_| {}).await;
    let m = sys.until_job(&wamid, "done").await;
    assert_eq!(graph.sends().len(), 1, "answered once");
    assert_eq!(m.job.unwrap().attempts, 2, "delivered twice");
}

async fn p_state(sys: &TestSystem, wamid: &str) -> String {
    sys.message(wamid).await.job.expect("job").state
}

#[tokio::test]
async fn a_worker_killed_during_the_send_never_causes_a_second_answer_and_the_status_records_the_reply()
 {
    let mut p = Pipeline::start().await;
    p.graph.script([Answer::Delay(Duration::from_secs(1))]);
    let wamid = new_wamid();
    p.post_text(&wamid, "quick question").await;
    eventually("the send reaching Graph", WAIT, || async {
        (!p.graph.sends().is_empty()).then_some(())
    })
    .await;

    p.workers[0].kill().await;
    let _second = TestWorker::start_with(&p.sys.ingest.url(), &p.graph.base_url(), |_| {}).await;

    let m = p.until_job(&wamid, "done").await;
    assert_eq!(m.job.unwrap().outcome, "sent_unconfirmed");
    assert_eq!(
        p.graph.sends().len(),
        1,
        "the customer is not answered twice"
    );

    // Graph did accept it; its first status webhook carries our job id back.
    let (outbound, callback) = eventually("Graph's answer", WAIT, || async {
        p.graph.accepted().into_iter().next()
    })
    .await;
    p.sys
        .post_ok(&status_webhook(&outbound, "sent", 1_764_770_100, &callback))
        .await;

    let m = p.sys.message(&wamid).await;
    assert_eq!(
        m.replies,
        vec![outbound.clone()],
        "the reply is recorded from its status"
    );
    assert_eq!(m.job.unwrap().outcome, "sent");
    assert_eq!(p.sys.message(&outbound).await.current_status, "sent");
}

#[tokio::test]
async fn two_graph_500s_then_success_give_exactly_one_reply() {
    let p = Pipeline::start().await;
    p.graph
        .script([Answer::Error(500, 0), Answer::Error(500, 0)]);
    let wamid = new_wamid();

    p.post_text(&wamid, "hi").await;

    let m = p.until_job(&wamid, "done").await;
    let job = m.job.unwrap();
    assert_eq!((job.outcome.as_str(), job.attempts), ("sent", 3));
    assert_eq!(p.graph.sends().len(), 3);
    assert_eq!(p.graph.successful_sends(), 1);
    assert_eq!(m.replies.len(), 1);
}

#[tokio::test]
async fn a_permanent_graph_error_is_not_retried_and_is_recorded() {
    let p = Pipeline::start().await;
    p.graph.script([Answer::Error(400, 131047)]);
    let wamid = new_wamid();

    p.post_text(&wamid, "hi").await;

    let m = p.until_job(&wamid, "failed").await;
    let job = m.job.unwrap();
    assert_eq!(job.attempts, 1, "no retry");
    assert!(job.last_error.contains("131047"), "{}", job.last_error);
    assert_eq!(p.graph.sends().len(), 1);
    let code = p
        .sys
        .ingest
        .db
        .count(&format!(
            "SELECT error_code FROM jobs WHERE message_wamid = '{wamid}'"
        ))
        .await;
    assert_eq!(code, 131047);
}

#[tokio::test]
async fn a_job_failing_every_time_is_dead_lettered_then_answered_after_an_admin_retry() {
    let p = Pipeline::start().await;
    p.graph.always(Answer::Error(503, 131016));
    let wamid = new_wamid();

    p.post_text(&wamid, "hi").await;

    let m = p.until_job(&wamid, "dead").await;
    let job = m.job.unwrap();
    assert_eq!(job.attempts, 3);
    assert_eq!(p.graph.sends().len(), 3);
    let mut admin = JobServiceClient::connect(p.sys.ingest.url()).await.unwrap();
    let dead = admin
        .list_dead_jobs(ListDeadJobsRequest { limit: 10 })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].wamid, wamid);
    assert!(p.sys.ingest.stats().await.jobs["dead"] == 1);

    p.graph.heal();
    admin
        .retry_job(RetryJobRequest { job_id: job.id })
        .await
        .unwrap();

    let m = p.until_job(&wamid, "done").await;
    assert_eq!(m.job.unwrap().outcome, "sent");
    assert_eq!(p.graph.successful_sends(), 1);
    let again = admin.retry_job(RetryJobRequest { job_id: job.id }).await;
    assert_eq!(
        again.unwrap_err().code(),
        tonic::Code::NotFound,
        "a sent job cannot be retried"
    );
}

#[tokio::test]
async fn jobs_whose_stream_entries_vanished_are_still_answered() {
    // Redis restarted empty, for this test's keys: the stream and its group are gone.
    let p = Pipeline::start().await;
    let wamids: Vec<String> = (0..3).map(|_| new_wamid()).collect();
    for w in &wamids {
        p.post_text(w, "hi").await;
    }
    for w in &wamids {
        p.until_job(w, "done").await;
    }
    delete_stream(&p.sys.ingest).await;
    let later: Vec<String> = (0..3).map(|_| new_wamid()).collect();
    for w in &later {
        p.post_text(w, "again").await;
    }
    delete_stream(&p.sys.ingest).await;

    for w in &later {
        p.until_job(w, "done").await;
    }
    assert_eq!(p.graph.successful_sends(), 6, "every message answered once");
}

async fn delete_stream(ingest: &TestIngest) {
    use fred::prelude::*;
    let client = Client::new(
        Config::from_url(&ingest.settings.redis_url).unwrap(),
        None,
        None,
        None,
    );
    client.init().await.unwrap();
    let _: i64 = client
        .del(format!("{}jobs", ingest.redis_prefix))
        .await
        .unwrap();
    let _ = client.quit().await;
}

#[tokio::test]
async fn jobs_committed_while_redis_is_down_are_answered_once_it_is_back() {
    let redis = PrivateRedis::start();
    let ingest = TestIngest::start_with(TestDb::postgres().await, |s| {
        s.redis_url = redis.url();
        s.job_lease = Duration::from_secs(2);
    })
    .await;
    let gateway = TestGateway::start_with(&ingest.url(), |_| {}).await;
    let graph = FakeGraph::start().await;
    let _worker = TestWorker::start_with(&ingest.url(), &graph.base_url(), |_| {}).await;
    let sys = TestSystem { ingest, gateway };
    let first = new_wamid();
    sys.post_ok(&text_webhook(&first, "before")).await;
    eventually("the first reply", WAIT, || async {
        (graph.successful_sends() == 1).then_some(())
    })
    .await;

    let mut redis = redis;
    redis.stop();
    let during: Vec<String> = (0..3).map(|_| new_wamid()).collect();
    for w in &during {
        assert_eq!(
            sys.gateway
                .post_signed(&text_webhook(w, "while down"))
                .await
                .status(),
            200,
            "Redis is not needed for a 200"
        );
    }
    redis.restart();

    for w in &during {
        eventually(
            &format!("reply to {w}"),
            Duration::from_secs(30),
            || async { (get(&sys, w).await?.job?.state == "done").then_some(()) },
        )
        .await;
    }
    assert_eq!(graph.successful_sends(), 4);
}

/// A redis-server of this test's own, on a free port, that can be stopped and restarted.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn two_workers_share_conversations_and_keep_each_in_arrival_order() {
    let mut p = Pipeline::start_with(|s| s.capacity = 2).await;
    p.workers.push(
        TestWorker::start_with(&p.sys.ingest.url(), &p.graph.base_url(), |s| s.capacity = 2).await,
    );
    // Replies take a while, so one worker's two slots cannot absorb nine conversations.
    p.graph.always(Answer::Delay(Duration::from_millis(100)));
    let mut ordered = Vec::new();
    for i in 0..4 {
        let w = new_wamid();
        ordered.push(w.clone());
        let body = text_webhook(&w, &format!("message {i}"));
        assert_eq!(p.sys.gateway.post_signed(&body).await.status(), 200);
    }
    let mut others = Vec::new();
    for i in 0..8 {
        let w = new_wamid();
        p.sys
            .post_ok(&text_webhook_from(
                &w,
                "hi",
                &format!("1650555{:04}", 9000 + i),
            ))
            .await;
        others.push(w);
    }

    for w in ordered.iter().chain(&others) {
        p.until_job(w, "done").await;
    }
    let replied_in_order: Vec<String> = p
        .graph
        .sends()
        .into_iter()
        .filter(|r| r.body["to"] == "16505551234")
        .map(|r| r.body["context"]["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        replied_in_order, ordered,
        "one conversation, in arrival order"
    );
    assert_eq!(p.graph.sends().len(), 12);
    let workers = p
        .sys
        .ingest
        .db
        .count("SELECT COUNT(DISTINCT substr(worker_id, 1, 18)) FROM jobs")
        .await;
    assert_eq!(workers, 2, "both workers got work");
}

#[tokio::test]
async fn without_a_token_the_worker_records_a_dry_run_and_sends_nothing() {
    let p = Pipeline::start_with(|s| s.access_token = None).await;
    let wamid = new_wamid();

    p.post_text(&wamid, "hi").await;

    let (state, outcome) = {
        p.until_job(&wamid, "done").await;
        p.job_state(&wamid).await
    };
    assert_eq!((state.as_str(), outcome.as_str()), ("done", "dry_run"));
    assert!(p.graph.requests().is_empty());
    let recorded = p
        .sys
        .ingest
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM jobs WHERE reply_text IS NOT NULL AND message_wamid = '{wamid}'"
        ))
        .await;
    assert_eq!(recorded, 1, "the reply text is recorded");
}

#[tokio::test]
async fn reactions_and_unconfigured_numbers_get_no_reply() {
    let p = Pipeline::start_with(|s| s.phone_number_ids = vec!["999999".into()]).await;
    let text = new_wamid();
    let reaction = new_wamid();
    let mut reaction_body: serde_json::Value =
        serde_json::from_slice(&text_webhook(&reaction, "x")).unwrap();
    let element = &mut reaction_body["entry"][0]["changes"][0]["value"]["messages"][0];
    element["type"] = "reaction".into();
    element["reaction"] = serde_json::json!({"message_id": text, "emoji": "\u{1f44d}"});
    let reaction_body = reaction_body.to_string();

    p.post_text(&text, "hi").await;
    assert_eq!(
        p.sys
            .gateway
            .post_signed(reaction_body.as_bytes())
            .await
            .status(),
        200
    );

    assert_eq!(p.job_state_after_done(&text).await, "skipped");
    assert!(
        p.sys.message(&reaction).await.job.is_none(),
        "a reaction creates no job"
    );
    assert!(p.graph.requests().is_empty());
}

impl Pipeline {
    async fn job_state_after_done(&self, wamid: &str) -> String {
        self.until_job(wamid, "done").await.job.unwrap().outcome
    }
}

#[tokio::test]
async fn a_worker_stopped_during_load_exits_cleanly_and_nothing_is_lost_or_doubled() {
    let mut p = Pipeline::start().await;
    p.graph.always(Answer::Delay(Duration::from_millis(150)));
    let wamids: Vec<String> = (0..12).map(|_| new_wamid()).collect();
    for (i, w) in wamids.iter().enumerate() {
        p.sys
            .post_ok(&text_webhook_from(
                w,
                "hi",
                &format!("1650555{:04}", 7000 + i),
            ))
            .await;
    }
    eventually("some replies under way", WAIT, || async {
        (p.graph.sends().len() >= 2).then_some(())
    })
    .await;

    p.workers[0].shutdown().await; // what SIGTERM does: drain, hand back, exit 0
    let _next = TestWorker::start_with(&p.sys.ingest.url(), &p.graph.base_url(), |_| {}).await;

    for w in &wamids {
        p.until_job(w, "done").await;
    }
    let mut replied: Vec<String> = p
        .graph
        .sends()
        .into_iter()
        .map(|r| r.body["context"]["message_id"].as_str().unwrap().to_owned())
        .collect();
    replied.sort();
    let before = replied.len();
    replied.dedup();
    assert_eq!(before, replied.len(), "no message answered twice");
    assert_eq!(replied.len(), wamids.len(), "every message answered");
}

#[tokio::test]
async fn with_an_api_token_every_service_authenticates_and_strangers_are_refused() {
    let token = "internal-api-token";
    let ingest = TestIngest::start_with(TestDb::postgres().await, |s| {
        s.api_token = Some(e2e_tests::system::secret(token));
    })
    .await;
    let gateway = TestGateway::start_with(&ingest.url(), |s| {
        s.api_token = Some(e2e_tests::system::secret(token))
    })
    .await;
    let graph = FakeGraph::start().await;
    let _worker = TestWorker::start_with(&ingest.url(), &graph.base_url(), |s| {
        s.api_token = Some(e2e_tests::system::secret(token));
    })
    .await;
    let sys = TestSystem { ingest, gateway };
    let wamid = new_wamid();

    sys.post_ok(&text_webhook(&wamid, "hi")).await;

    eventually("the reply", WAIT, || async {
        (graph.successful_sends() == 1).then_some(())
    })
    .await;
    let mut stranger = JobServiceClient::connect(sys.ingest.url()).await.unwrap();
    let refused = stranger
        .list_dead_jobs(ListDeadJobsRequest { limit: 1 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
