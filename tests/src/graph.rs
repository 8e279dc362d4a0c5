//! A stand-in for Meta's Graph API on 127.0.0.1:0: records every request and
//! answers from a script (default: success with a fresh outbound wamid).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct GraphRequest {
    /// `{phone_number_id}` of the path.
    pub phone_number_id: String,
    /// The `authorization` header.
    pub authorization: String,
    /// The JSON body.
    pub body: Value,
}

impl GraphRequest {
    /// A send (not a mark-read).
    pub fn is_send(&self) -> bool {
        self.body["type"] == "text"
    }
}

/// A scripted answer to the next send.
#[derive(Debug, Clone)]
pub enum Answer {
    /// HTTP status and Graph error code.
    Error(u16, i64),
    /// Accept the send, but answer only after this long.
    Delay(Duration),
}

#[derive(Debug, Default)]
struct Inner {
    requests: Vec<GraphRequest>,
    script: VecDeque<Answer>,
    always: Option<Answer>,
    sent: u64,
    /// (wamid answered, the send's `biz_opaque_callback_data`)
    accepted: Vec<(String, String)>,
}

/// The fake Graph API.
#[derive(Debug)]
pub struct FakeGraph {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl FakeGraph {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/v25.0/{phone_number_id}/messages", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake graph");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Self { addr, inner, stop }
    }

    /// `WHATSAPP_API_BASE_URL` for workers.
    pub fn base_url(&self) -> String {
        format!("http://{}/v25.0", self.addr)
    }

    /// Answers the next sends with these, in order, then succeeds again.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().expect("lock").script.extend(answers);
    }

    /// Answers every send with this until [`FakeGraph::heal`].
    pub fn always(&self, answer: Answer) {
        self.inner.lock().expect("lock").always = Some(answer);
    }

    /// Stops [`FakeGraph::always`].
    pub fn heal(&self) {
        self.inner.lock().expect("lock").always = None;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GraphRequest> {
        self.inner.lock().expect("lock").requests.clone()
    }

    /// The send requests so far.
    pub fn sends(&self) -> Vec<GraphRequest> {
        self.requests()
            .into_iter()
            .filter(GraphRequest::is_send)
            .collect()
    }

    /// Send requests that were answered with success.
    pub fn successful_sends(&self) -> u64 {
        self.inner.lock().expect("lock").sent
    }

    /// The wamids it answered sends with, each with the send's callback data.
    pub fn accepted(&self) -> Vec<(String, String)> {
        self.inner.lock().expect("lock").accepted.clone()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request = GraphRequest {
        phone_number_id,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body,
    };
    let is_send = request.is_send();
    let callback = request.body["biz_opaque_callback_data"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let answer = {
        let mut inner = inner.lock().expect("lock");
        inner.requests.push(request);
        if !is_send {
            return Json(json!({"success": true})).into_response();
        }
        inner.always.clone().or_else(|| inner.script.pop_front())
    };
    match answer {
        Some(Answer::Error(status, code)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let err = json!({"error": {"message": format!("(#{code}) scripted failure"), "type": "OAuthException",
                "code": code, "error_data": {"messaging_product": "whatsapp", "details": "scripted"}, "fbtrace_id": "AbCdEf"}});
            (status, Json(err)).into_response()
        }
        Some(Answer::Delay(d)) => {
            // Graph takes the message at once and answers late; a caller that gives up
            // (or dies) meanwhile does not undo the send.
            let answer = success(&inner, callback);
            tokio::time::sleep(d).await;
            answer
        }
        None => success(&inner, callback),
    }
}

fn success(inner: &Arc<Mutex<Inner>>, callback: String) -> Response {
    let mut inner = inner.lock().expect("lock");
    inner.sent += 1;
    let wamid = format!(
        "wamid.OUT{:06}{}",
        inner.sent,
        uuid::Uuid::new_v4().simple()
    );
    inner.accepted.push((wamid.clone(), callback));
    drop(inner);
    Json(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": "x", "wa_id": "x"}],
        "messages": [{"id": wamid, "message_status": "accepted"}]}),
    )
    .into_response()
}
