//! HTTP-level tests: the router driven with `oneshot`, and a fake ingest-svc
//! (tonic server with health) on 127.0.0.1:0 standing in for the real one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use proto::ingest::ingest_service_server::{IngestService, IngestServiceServer};
use proto::ingest::{
    GetMessageRequest, GetMessageResponse, GetStatsRequest, GetStatsResponse, IngestWebhookRequest,
    IngestWebhookResponse, ListMessagesRequest, ListMessagesResponse,
};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::metadata::MetadataMap;
use tower::ServiceExt as _;

use super::*;
use crate::webhook::signature::sign;

const SECRET: &str = "s3cret";
const TOKEN: &str = "api-token";

fn settings(ingest_url: &str) -> Settings {
    Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        ingest_url: ingest_url.to_owned(),
        ingest_timeout: Duration::from_millis(500),
        api_token: Some(SecretString::from(TOKEN)),
        app_secrets: vec![SecretString::from("old"), SecretString::from(SECRET)],
        insecure_skip_signature: false,
        verify_token: Some(SecretString::from("verify-me")),
        body_limit: 2048,
    }
}

/// Nothing listens on port 1: calls fail at once with `Unavailable`.
const DEAD_INGEST: &str = "http://127.0.0.1:1";

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Store,
    Reject,
    Hang,
}

#[derive(Debug, Clone)]
struct FakeIngest {
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<(MetadataMap, IngestWebhookRequest)>>>,
}

#[tonic::async_trait]
impl IngestService for FakeIngest {
    async fn ingest_webhook(
        &self,
        request: tonic::Request<IngestWebhookRequest>,
    ) -> Result<tonic::Response<IngestWebhookResponse>, tonic::Status> {
        let (metadata, _, message) = request.into_parts();
        self.seen.lock().unwrap().push((metadata, message));
        match self.behaviour {
            Behaviour::Store => Ok(tonic::Response::new(IngestWebhookResponse {
                event_id: 1,
                ..Default::default()
            })),
            Behaviour::Reject => Err(tonic::Status::invalid_argument("bad item")),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Err(tonic::Status::internal("too late"))
            }
        }
    }
    async fn get_message(
        &self,
        _: tonic::Request<GetMessageRequest>,
    ) -> Result<tonic::Response<GetMessageResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn list_messages(
        &self,
        _: tonic::Request<ListMessagesRequest>,
    ) -> Result<tonic::Response<ListMessagesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn get_stats(
        &self,
        _: tonic::Request<GetStatsRequest>,
    ) -> Result<tonic::Response<GetStatsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn replay_webhook_event(
        &self,
        _: tonic::Request<proto::ingest::ReplayWebhookEventRequest>,
    ) -> Result<tonic::Response<IngestWebhookResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
}

/// Starts a fake ingest-svc; returns its URL and the calls it received.
async fn spawn_ingest(
    behaviour: Behaviour,
) -> (String, Arc<Mutex<Vec<(MetadataMap, IngestWebhookRequest)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeIngest {
        behaviour,
        seen: seen.clone(),
    };
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(IngestServiceServer::new(fake))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, seen)
}

async fn send(settings: &Settings, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let app = router(AppState::new(settings).unwrap());
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body)
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON error body");
    v["error"]["code"].as_str().unwrap().to_owned()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(body: &[u8], signature: Option<String>) -> Request<Body> {
    let mut builder =
        Request::post(crate::webhook::PATH).header(header::CONTENT_TYPE, "application/json");
    if let Some(sig) = signature {
        builder = builder.header("X-Hub-Signature-256", sig);
    }
    builder.body(Body::from(body.to_vec())).unwrap()
}

const VALID: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"wamid.1","from":"1","type":"text","text":{"body":"caf\u00e9 \/ \u0040"}}]}}]}]}"#;

#[tokio::test]
async fn handshake_echoes_the_challenge_for_the_right_token() {
    let s = settings(DEAD_INGEST);
    let (status, headers, body) = send(
        &s,
        get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "1158201444");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn handshake_refuses_wrong_token_mode_or_unconfigured_token() {
    let s = settings(DEAD_INGEST);
    for uri in [
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=c",
        "/webhooks/whatsapp?hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=c",
    ] {
        let (status, _, body) = send(&s, get(uri)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(error_code(&body), "verification_failed");
    }
    let mut no_token = settings(DEAD_INGEST);
    no_token.verify_token = None;
    let (status, _, _) = send(
        &no_token,
        get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=&hub.challenge=c"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn handshake_without_a_parameter_is_a_json_400() {
    let s = settings(DEAD_INGEST);
    for uri in [
        "/webhooks/whatsapp",
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me",
        "/webhooks/whatsapp?hub.verify_token=verify-me&hub.challenge=c",
    ] {
        let (status, _, body) = send(&s, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(error_code(&body), "missing_parameter");
    }
}

#[tokio::test]
async fn unsigned_post_is_401_and_carries_a_request_id() {
    let (status, headers, body) = send(&settings(DEAD_INGEST), post(VALID, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "missing_signature");
    assert_eq!(headers["x-request-id"].to_str().unwrap().len(), 36);
}

#[tokio::test]
async fn bad_or_malformed_signature_is_403() {
    for sig in [
        sign(b"wrong", VALID),
        "sha256=xyz".to_owned(),
        "garbage".to_owned(),
    ] {
        let (status, _, body) = send(&settings(DEAD_INGEST), post(VALID, Some(sig))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_code(&body), "invalid_signature");
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = settings(DEAD_INGEST);
    let big = vec![b' '; 4096];
    let (status, _, body) = send(&s, post(&big, Some(sign(SECRET.as_bytes(), &big)))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "payload_too_large");

    let announced = Request::post(crate::webhook::PATH)
        .header(header::CONTENT_LENGTH, "999999")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&s, announced).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn signed_but_unusable_bodies_are_400_with_their_code() {
    for (raw, code) in [
        (&b"not json"[..], "invalid_json"),
        (b"[1]", "not_an_object"),
        (
            b"{\"object\":\"whatsapp_business_account\"}",
            "missing_entry",
        ),
    ] {
        let (status, _, body) = send(
            &settings(DEAD_INGEST),
            post(raw, Some(sign(SECRET.as_bytes(), raw))),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&body), code);
    }
}

#[tokio::test]
async fn unreachable_ingest_is_503_never_200() {
    let (status, _, body) = send(
        &settings(DEAD_INGEST),
        post(VALID, Some(sign(SECRET.as_bytes(), VALID))),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "ingest_unavailable");
}

#[tokio::test]
async fn stored_webhook_is_200_with_raw_bytes_request_id_and_token_forwarded() {
    let (url, seen) = spawn_ingest(Behaviour::Store).await;
    let s = settings(&url);
    // Signed with the second configured secret (rotation).
    let (status, headers, body) = send(&s, post(VALID, Some(sign(SECRET.as_bytes(), VALID)))).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(body, r#"{"status":"ok"}"#);
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();

    let calls = seen.lock().unwrap();
    assert_eq!(calls.len(), 1);
    let (metadata, request) = &calls[0];
    assert_eq!(request.raw_body, VALID);
    assert_eq!(request.request_id, request_id);
    assert!(request.received_at_ms > 0);
    assert_eq!(request.messages.len(), 1);
    assert_eq!(metadata.get("x-request-id").unwrap(), request_id.as_str());
    assert_eq!(metadata.get("authorization").unwrap(), "Bearer api-token");
    assert!(metadata.get("grpc-timeout").is_some());
}

#[tokio::test]
async fn invalid_argument_from_ingest_is_400_rejected() {
    let (url, _) = spawn_ingest(Behaviour::Reject).await;
    let (status, _, body) = send(
        &settings(&url),
        post(VALID, Some(sign(SECRET.as_bytes(), VALID))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "rejected");
}

#[tokio::test]
async fn slow_ingest_is_503_after_the_deadline() {
    let (url, _) = spawn_ingest(Behaviour::Hang).await;
    let started = std::time::Instant::now();
    let (status, _, body) = send(
        &settings(&url),
        post(VALID, Some(sign(SECRET.as_bytes(), VALID))),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "ingest_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn insecure_mode_accepts_unsigned_posts() {
    let (url, seen) = spawn_ingest(Behaviour::Store).await;
    let mut s = settings(&url);
    s.app_secrets.clear();
    s.insecure_skip_signature = true;
    let (status, _, _) = send(&s, post(VALID, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn readiness_follows_ingest_health() {
    let (url, _) = spawn_ingest(Behaviour::Store).await;
    let (status, _, _) = send(&settings(&url), get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(&settings(DEAD_INGEST), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "not_ready");
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let s = settings(DEAD_INGEST);
    let (status, _, body) = send(&s, get("/healthz")).await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"ok"[..]));
    let (status, _, body) = send(&s, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&body).contains("gateway_webhook_requests_total{outcome=\"ok\"} 0")
    );
    let (status, _, body) = send(&s, get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, _, body) = send(
        &s,
        Request::delete("/webhooks/whatsapp")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "method_not_allowed");
}

#[tokio::test]
async fn application_binds_before_build_returns_and_stops_on_shutdown() {
    let app = Application::build(settings(DEAD_INGEST)).await.unwrap();
    let addr = app.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}
