//! The job stream's lease rules, seen by a hand-written worker speaking the protocol.

use std::time::Duration;

use e2e_tests::{FakeGraph, TestIngest, TestSystem, TestWorker, eventually};
use proto::jobs::job_service_client::JobServiceClient;
use proto::jobs::server_message::Kind as ServerKind;
use proto::jobs::worker_message::Kind as WorkerKind;
use proto::jobs::{Ack, Hello, JobLease, ServerMessage, WorkerMessage};
use tokio::sync::mpsc;
use tonic::Streaming;

use crate::support::{new_wamid, text_webhook};

/// A worker that does only what the test tells it to.
struct ManualWorker {
    tx: mpsc::Sender<WorkerMessage>,
    rx: Streaming<ServerMessage>,
}

impl ManualWorker {
    async fn connect(ingest: &TestIngest) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let hello = Hello {
            worker_id: "manual".into(),
            capacity: 1,
        };
        tx.send(WorkerMessage {
            kind: Some(WorkerKind::Hello(hello)),
        })
        .await
        .unwrap();
        let mut client = JobServiceClient::connect(ingest.url()).await.unwrap();
        let rx = client
            .stream_jobs(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    /// The next message that is not a heartbeat.
    async fn next(&mut self) -> ServerKind {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.rx.message())
                .await
                .expect("ingest-svc speaks within 20 s")
                .expect("stream open")
                .expect("a message");
            match msg.kind {
                Some(ServerKind::Heartbeat(_)) | None => continue,
                Some(kind) => return kind,
            }
        }
    }

    async fn lease(&mut self) -> JobLease {
        match self.next().await {
            ServerKind::Job(lease) => lease,
            other => panic!("expected a lease, got {other:?}"),
        }
    }

    async fn ack(&self, job_id: i64, token: &str) {
        let ack = Ack {
            job_id,
            lease_token: token.to_owned(),
            outcome: "skipped".into(),
            ..Default::default()
        };
        self.tx
            .send(WorkerMessage {
                kind: Some(WorkerKind::Ack(ack)),
            })
            .await
            .unwrap();
    }
}

async fn system(lease: Duration) -> TestSystem {
    TestSystem::start_with(|s| s.job_lease = lease).await
}

#[tokio::test]
async fn an_ack_with_a_wrong_lease_token_is_refused_and_the_right_one_applies() {
    let sys = system(Duration::from_secs(30)).await;
    let wamid = new_wamid();
    sys.post_ok(&text_webhook(&wamid, "hi")).await;
    let mut worker = ManualWorker::connect(&sys.ingest).await;
    let lease = worker.lease().await;

    worker.ack(lease.job_id, "not-the-token").await;

    match worker.next().await {
        ServerKind::Refused(r) => assert_eq!(r.job_id, lease.job_id),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(sys.message(&wamid).await.job.unwrap().state, "leased");

    worker.ack(lease.job_id, &lease.lease_token).await;

    eventually(
        "the right token's ack applied",
        Duration::from_secs(10),
        || async {
            let job = sys.message(&wamid).await.job?;
            (job.state == "done" && job.outcome == "skipped").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_lease_that_runs_out_under_a_silent_worker_goes_to_another_and_the_late_ack_is_refused() {
    let sys = system(Duration::from_secs(1)).await;
    let graph = FakeGraph::start().await;
    let wamid = new_wamid();
    sys.post_ok(&text_webhook(&wamid, "hi")).await;
    let mut silent = ManualWorker::connect(&sys.ingest).await;
    let stale = silent.lease().await;

    let _live = TestWorker::start_with(&sys.ingest.url(), &graph.base_url(), |_| {}).await;
    let m = sys.until_job(&wamid, "done").await;
    assert_eq!(m.job.unwrap().attempts, 2);
    assert_eq!(graph.sends().len(), 1);

    silent.ack(stale.job_id, &stale.lease_token).await;
    match silent.next().await {
        ServerKind::Refused(r) => assert_eq!(r.job_id, stale.job_id),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        sys.message(&wamid).await.job.unwrap().outcome,
        "sent",
        "the late ack changed nothing"
    );
}

#[tokio::test]
async fn a_stream_that_does_not_open_with_hello_is_rejected() {
    let sys = system(Duration::from_secs(30)).await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(WorkerMessage {
        kind: Some(WorkerKind::Heartbeat(Default::default())),
    })
    .await
    .unwrap();
    let mut client = JobServiceClient::connect(sys.ingest.url()).await.unwrap();

    let res = client
        .stream_jobs(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;

    assert_eq!(res.unwrap_err().code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_job_dead_lettered_by_its_last_expired_lease_lets_the_next_of_its_conversation_run() {
    let sys = TestSystem::start_with(|s| {
        s.job_lease = Duration::from_secs(1);
        s.max_attempts = 1;
    })
    .await;
    let graph = FakeGraph::start().await;
    let (first, second) = (new_wamid(), new_wamid());
    sys.post_ok(&text_webhook(&first, "one")).await;
    let mut silent = ManualWorker::connect(&sys.ingest).await;
    assert_eq!(silent.lease().await.message.unwrap().wamid, first);
    sys.post_ok(&text_webhook(&second, "two")).await;

    let _live = TestWorker::start_with(&sys.ingest.url(), &graph.base_url(), |_| {}).await;

    let m = sys.until_job(&second, "done").await;
    assert_eq!(m.job.unwrap().outcome, "sent");
    assert_eq!(sys.message(&first).await.job.unwrap().state, "dead");
    let sends = graph.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].body["context"]["message_id"], second.as_str());
}
