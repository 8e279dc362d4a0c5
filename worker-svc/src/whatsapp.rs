//! The Cloud API (Graph) calls the worker makes: send a text reply, mark read.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Graph error codes worth retrying (Meta's error-code reference: rate limits and
/// transient service errors); everything else is permanent.
const RETRYABLE_CODES: &[i64] = &[1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004];
/// Pair rate limit: back off per recipient for at least this long.
pub const PAIR_RATE_LIMIT_CODE: i64 = 131056;

/// Why a Graph call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error object (or a non-2xx status without one).
    #[error("graph error {code} (http {http_status}): {message}")]
    Api {
        /// `error.code`, or 0 when the body had none.
        code: i64,
        /// HTTP status of the answer.
        http_status: u16,
        /// `error.message` (never the customer's text).
        message: String,
    },
    /// No answer: connection failure or timeout. The send may or may not have happened.
    #[error("graph unreachable: {0}")]
    Transport(String),
}

impl GraphError {
    /// Retry with backoff (rate limits, transient codes, 5xx, timeouts) or give up.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api {
                code, http_status, ..
            } => {
                RETRYABLE_CODES.contains(code)
                    || (*code == 0 && *http_status >= 500)
                    || (*http_status >= 500 && !is_known_permanent(*code))
            }
        }
    }

    /// The Graph error code, 0 when there is none.
    pub fn code(&self) -> i64 {
        match self {
            Self::Api { code, .. } => *code,
            Self::Transport(_) => 0,
        }
    }
}

fn is_known_permanent(code: i64) -> bool {
    code != 0 && !RETRYABLE_CODES.contains(&code)
}

/// Who a reply goes to: the phone-based `wa_id`, or the business-scoped user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// `to`
    WaId(String),
    /// `recipient` (BSUID), for users without a `wa_id`.
    UserId(String),
}

/// A reqwest client bound to one Graph base URL and token.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.base_url)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl GraphClient {
    /// A client for `base_url` (e.g. `https://graph.facebook.com/v25.0`).
    pub fn new(base_url: &str, token: SecretString, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("whatsapp-ingest-worker")
            .build()
            .expect("a TLS backend is compiled in");
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Sends `body` as a text reply quoting `context_message_id`; returns the new wamid.
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        to: &Recipient,
        body: &str,
        context_message_id: &str,
        callback_data: &str,
    ) -> Result<String, GraphError> {
        let mut payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "context": { "message_id": context_message_id },
            "type": "text",
            "text": { "preview_url": false, "body": body },
            "biz_opaque_callback_data": callback_data,
        });
        match to {
            Recipient::WaId(id) => payload["to"] = json!(id),
            Recipient::UserId(id) => payload["recipient"] = json!(id),
        }
        let answer = self.post(phone_number_id, &payload).await?;
        answer["messages"][0]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| GraphError::Api {
                code: 0,
                http_status: 200,
                message: "send answer without messages[0].id".to_owned(),
            })
    }

    /// Marks `message_id` read (and shows a typing indicator until the reply lands).
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        message_id: &str,
    ) -> Result<(), GraphError> {
        let payload = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        });
        self.post(phone_number_id, &payload).await.map(|_| ())
    }

    async fn post(&self, phone_number_id: &str, payload: &Value) -> Result<Value, GraphError> {
        let url = format!("{}/{}/messages", self.base_url, phone_number_id);
        let res = self
            .http
            .post(url)
            .bearer_auth(self.token.expose_secret())
            .json(payload)
            .send()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let err = &body["error"];
        if let Some(trace) = err["fbtrace_id"].as_str() {
            tracing::info!(
                fbtrace_id = trace,
                code = err["code"].as_i64(),
                "graph error"
            );
        }
        Err(GraphError::Api {
            code: err["code"].as_i64().unwrap_or(0),
            http_status: status.as_u16(),
            message: err["message"]
                .as_str()
                .unwrap_or("no error message")
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64, http_status: u16) -> GraphError {
        GraphError::Api {
            code,
            http_status,
            message: String::new(),
        }
    }

    #[test]
    fn rate_limits_and_transient_codes_are_retried() {
        for code in [4, 80007, 130429, 131056, 131000, 131016, 1, 2, 133004] {
            assert!(api(code, 400).is_retryable(), "{code}");
        }
        assert!(api(0, 502).is_retryable());
        assert!(GraphError::Transport("timeout".into()).is_retryable());
    }

    #[test]
    fn permanent_codes_are_not_retried_even_with_a_5xx() {
        for code in [131047, 131026, 190, 100, 131051, 368] {
            assert!(!api(code, 400).is_retryable(), "{code}");
        }
        assert!(!api(131047, 500).is_retryable());
        assert!(!api(0, 404).is_retryable());
    }
}
