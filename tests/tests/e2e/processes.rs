//! The real binaries, as an operator runs them: SIGTERM during load drains and exits 0.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{
    APP_SECRET, Answer, FakeGraph, TestDb, TestWorker, eventually, sign, workspace_root,
};

use crate::support::{new_wamid, text_webhook_from};

/// A workspace binary built by `make test` (`cargo build --bins` runs first).
fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is not built (run `cargo build --bins`)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(name: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(binary(name));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"))
}

/// SIGTERM, then asserts the process drained and exited 0 (within 20 s).
async fn stop_cleanly(mut child: Child, name: &'static str) {
    let status = tokio::task::spawn_blocking(move || terminate(&mut child, name))
        .await
        .expect("waiting for the process");
    assert!(status.success(), "{name} exit status {status:?}");
}

/// Sends SIGTERM and waits (bounded) for the exit status.
fn terminate(child: &mut Child, name: &str) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {name}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not exit within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_for_port(port: u16) {
    eventually(
        &format!("port {port} accepting"),
        Duration::from_secs(30),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

#[tokio::test]
async fn sigterm_during_load_drains_every_service_and_nothing_is_lost_or_answered_twice() {
    let db = TestDb::postgres().await;
    let graph = FakeGraph::start().await;
    graph.always(Answer::Delay(Duration::from_millis(200)));
    let (ingest_port, gateway_port) = (free_port(), free_port());
    let ingest_url = format!("http://127.0.0.1:{ingest_port}");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ingest = spawn(
        "ingest-svc",
        &[
            ("INGEST_ADDR", format!("127.0.0.1:{ingest_port}")),
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", redis),
            ("REDIS_PREFIX", prefix),
            ("INGEST_RELAY_INTERVAL_MS", "200".into()),
        ],
    );
    let gateway = spawn(
        "gateway",
        &[
            ("GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("INGEST_URL", ingest_url.clone()),
            ("WHATSAPP_APP_SECRET", APP_SECRET.into()),
        ],
    );
    let worker = spawn(
        "worker-svc",
        &[
            ("INGEST_URL", ingest_url.clone()),
            ("WHATSAPP_API_BASE_URL", graph.base_url()),
            ("WHATSAPP_ACCESS_TOKEN", "test-access-token".into()),
            ("WORKER_CAPACITY", "4".into()),
        ],
    );
    wait_for_port(ingest_port).await;
    wait_for_port(gateway_port).await;
    let http = reqwest::Client::new();
    let wamids: Vec<String> = (0..16).map(|_| new_wamid()).collect();
    for (i, w) in wamids.iter().enumerate() {
        let body = text_webhook_from(w, "hi", &format!("1650555{:04}", 6000 + i));
        let res = http
            .post(format!("http://127.0.0.1:{gateway_port}/webhooks/whatsapp"))
            .header("x-hub-signature-256", sign(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    eventually("replies under way", Duration::from_secs(20), || async {
        (graph.sends().len() >= 2).then_some(())
    })
    .await;

    stop_cleanly(worker, "worker-svc").await;

    let _replacement = TestWorker::start_with(&ingest_url, &graph.base_url(), |_| {}).await;
    let done = || async {
        let n = db
            .count("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
            .await;
        (n == wamids.len() as i64).then_some(())
    };
    eventually("every job done", Duration::from_secs(30), done).await;

    stop_cleanly(gateway, "gateway").await;
    stop_cleanly(ingest, "ingest-svc").await;

    let mut replied: Vec<String> = graph
        .sends()
        .into_iter()
        .map(|r| r.body["context"]["message_id"].as_str().unwrap().to_owned())
        .collect();
    replied.sort();
    let total = replied.len();
    replied.dedup();
    assert_eq!(total, replied.len(), "no customer answered twice");
    assert_eq!(replied.len(), wamids.len(), "every customer answered");
}

/// Kills with SIGKILL (no drain, no goodbye) and reaps the process.
fn kill_hard(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn ingest_svc_killed_mid_load_loses_nothing_acknowledged_and_answers_everyone_once() {
    let db = TestDb::postgres().await;
    let graph = FakeGraph::start().await;
    let ingest_port = free_port();
    let ingest_url = format!("http://127.0.0.1:{ingest_port}");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ingest_env = [
        ("INGEST_ADDR", format!("127.0.0.1:{ingest_port}")),
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis),
        ("REDIS_PREFIX", prefix),
        ("INGEST_RELAY_INTERVAL_MS", "200".into()),
        ("JOB_LEASE_MS", "2000".into()),
    ];
    let mut ingest = spawn("ingest-svc", &ingest_env);
    wait_for_port(ingest_port).await;
    let gateway = e2e_tests::TestGateway::start_with(&ingest_url, |s| {
        s.ingest_timeout = Duration::from_secs(2)
    })
    .await;
    let _worker = TestWorker::start_with(&ingest_url, &graph.base_url(), |_| {}).await;

    // Meta's side: every message is retried until it gets a 200.
    let wamids: Vec<String> = (0..30).map(|_| new_wamid()).collect();
    let bodies: Vec<Vec<u8>> = wamids
        .iter()
        .enumerate()
        .map(|(i, w)| text_webhook_from(w, "hi", &format!("1650555{:04}", 5000 + i)))
        .collect();
    let mut refused = 0;
    for (i, body) in bodies.iter().enumerate() {
        if i == 10 {
            kill_hard(&mut ingest);
        }
        if i == 20 {
            ingest = spawn("ingest-svc", &ingest_env);
            wait_for_port(ingest_port).await;
        }
        if gateway.post_signed(body).await.status() != 200 {
            refused += 1;
        }
    }
    assert!(
        refused >= 10,
        "while ingest-svc was dead the gateway refused ({refused}), never acknowledged"
    );
    for body in &bodies {
        eventually("a 200 on Meta's retry", Duration::from_secs(20), || async {
            (gateway.post_signed(body).await.status() == 200).then_some(())
        })
        .await;
    }

    eventually("every job done", Duration::from_secs(30), || async {
        let n = db
            .count("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
            .await;
        (n == wamids.len() as i64).then_some(())
    })
    .await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM messages WHERE direction = 'inbound'")
            .await,
        30
    );
    let mut replied: Vec<String> = graph
        .sends()
        .into_iter()
        .map(|r| r.body["context"]["message_id"].as_str().unwrap().to_owned())
        .collect();
    replied.sort();
    replied.dedup();
    assert_eq!(replied.len(), wamids.len(), "every customer answered");
    assert_eq!(graph.sends().len(), wamids.len(), "nobody answered twice");
    kill_hard(&mut ingest);
}
