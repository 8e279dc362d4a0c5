//! What an operator sees with the real grpcurl binary (reflection, no .proto files).

use std::path::PathBuf;
use std::process::Command;

use e2e_tests::{TestSystem, fixture, workspace_root};

use crate::support::message_ids;

/// The grpcurl binary: `$GRPCURL`, else the one `make tools` installs in `.tools/`.
fn grpcurl_path() -> PathBuf {
    let path = std::env::var_os("GRPCURL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin/grpcurl"));
    assert!(
        path.exists(),
        "grpcurl not found at {} (run `make tools`)",
        path.display()
    );
    path
}

async fn grpcurl(args: Vec<String>) -> (bool, String) {
    let bin = grpcurl_path();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(bin)
            .args(&args)
            .output()
            .expect("grpcurl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

/// `grpcurl -plaintext [flags] ADDR [verb...]`.
fn args(addr: &str, flags: &[&str], verb: &[&str]) -> Vec<String> {
    let mut v = vec!["-plaintext".to_owned()];
    v.extend(flags.iter().map(|s| s.to_string()));
    v.push(addr.to_owned());
    v.extend(verb.iter().map(|s| s.to_string()));
    v
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_the_api_through_reflection() {
    let sys = TestSystem::start().await;
    let body = fixture("text.json");
    assert_eq!(sys.gateway.post_signed(&body).await.status(), 200);
    let wamid = message_ids(&body).remove(0);
    let addr = sys.ingest.addr.to_string();

    let (ok, list) = grpcurl(args(&addr, &[], &["list"])).await;
    assert!(ok, "{list}");
    assert!(list.contains("whatsapp.ingest.v1.IngestService"), "{list}");
    assert!(list.contains("grpc.health.v1.Health"), "{list}");

    let (ok, described) = grpcurl(args(
        &addr,
        &[],
        &["describe", "whatsapp.ingest.v1.IngestService"],
    ))
    .await;
    assert!(ok, "{described}");
    assert!(described.contains("rpc GetMessage"), "{described}");

    let (ok, stats) = grpcurl(args(
        &addr,
        &[],
        &["whatsapp.ingest.v1.IngestService/GetStats"],
    ))
    .await;
    assert!(ok, "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("JSON answer");
    assert_eq!(stats["messages"], "1", "uint64 is a JSON string: {stats}");
    assert_eq!(stats["webhookEvents"], "1", "{stats}");

    let request = format!(r#"{{"wamid":"{wamid}"}}"#);
    let (ok, message) = grpcurl(args(
        &addr,
        &["-d", &request],
        &["whatsapp.ingest.v1.IngestService/GetMessage"],
    ))
    .await;
    assert!(ok, "{message}");
    assert!(message.contains(&wamid), "{message}");
    assert!(
        message.contains("\"text\""),
        "typed content shown: {message}"
    );

    let (ok, health) = grpcurl(args(&addr, &[], &["grpc.health.v1.Health/Check"])).await;
    assert!(ok, "{health}");
    assert!(health.contains("SERVING"), "{health}");
}
