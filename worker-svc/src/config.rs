//! Settings read from the contract's environment variables.

use std::time::Duration;

use secrecy::SecretString;

/// A missing or malformed setting; `Display` is one line naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Everything worker-svc needs; built by [`Settings::from_env`] or by tests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// ingest-svc's gRPC endpoint.
    pub ingest_url: String,
    /// Bearer token for ingest-svc, when it requires one.
    pub api_token: Option<SecretString>,
    /// Graph API base, e.g. `https://graph.facebook.com/v25.0`.
    pub api_base_url: String,
    /// Graph access token; `None` means dry-run.
    pub access_token: Option<SecretString>,
    /// Business numbers to answer for; empty means every number.
    pub phone_number_ids: Vec<String>,
    /// The reply sent to customers.
    pub reply_text: String,
    /// Messages older than this get no reply.
    pub reply_window: Duration,
    /// Announced to ingest-svc; shows up in logs and job records.
    pub worker_id: String,
    /// Jobs processed at once (`WORKER_CAPACITY`).
    pub capacity: u32,
    /// Time given to in-flight jobs on shutdown before they are handed back.
    pub shutdown_grace: Duration,
    /// Deadline of one Graph call; keep it well under the lease.
    pub graph_timeout: Duration,
    /// First retry delay; doubles per attempt up to five minutes.
    pub retry_base: Duration,
}

/// Default reply prompt.
pub const DEFAULT_REPLY_TEXT: &str =
    "Thanks for your message! We have received it and will get back to you shortly.";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (unit-testable).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let ingest_url =
            non_empty("INGEST_URL").unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
        if !(ingest_url.starts_with("http://") || ingest_url.starts_with("https://")) {
            return Err(ConfigError {
                var: "INGEST_URL",
                reason: format!("expected an http:// or https:// URL, got {ingest_url:?}"),
            });
        }
        let api_base_url = non_empty("WHATSAPP_API_BASE_URL")
            .unwrap_or_else(|| "https://graph.facebook.com/v25.0".to_owned());
        if !(api_base_url.starts_with("http://") || api_base_url.starts_with("https://")) {
            return Err(ConfigError {
                var: "WHATSAPP_API_BASE_URL",
                reason: format!("expected an http:// or https:// URL, got {api_base_url:?}"),
            });
        }
        Ok(Self {
            ingest_url,
            api_token: non_empty("INGEST_API_TOKEN").map(SecretString::from),
            api_base_url: api_base_url.trim_end_matches('/').to_owned(),
            access_token: non_empty("WHATSAPP_ACCESS_TOKEN").map(SecretString::from),
            phone_number_ids: non_empty("WHATSAPP_PHONE_NUMBER_IDS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            reply_text: non_empty("REPLY_TEXT").unwrap_or_else(|| DEFAULT_REPLY_TEXT.to_owned()),
            reply_window: Duration::from_secs(24 * 3600),
            worker_id: non_empty("WORKER_ID")
                .unwrap_or_else(|| format!("worker-{}", std::process::id())),
            capacity: match non_empty("WORKER_CAPACITY") {
                None => 8,
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(ConfigError {
                        var: "WORKER_CAPACITY",
                        reason: format!("expected a whole number >= 1, got {v:?}"),
                    })?,
            },
            shutdown_grace: Duration::from_secs(10),
            graph_timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(2),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_environment() {
        let s = Settings::from_lookup(|_| None).expect("defaults are valid");
        assert_eq!(s.ingest_url, "http://127.0.0.1:50051");
        assert!(s.access_token.is_none(), "no token means dry-run");
        assert!(s.phone_number_ids.is_empty());
    }

    #[test]
    fn malformed_ingest_url_names_the_variable() {
        let err = Settings::from_lookup(|n| (n == "INGEST_URL").then(|| "localhost:1".into()))
            .unwrap_err();
        assert!(err.to_string().starts_with("INGEST_URL: "), "{err}");
    }

    #[test]
    fn phone_number_ids_are_split_and_trimmed() {
        let s = Settings::from_lookup(|n| {
            (n == "WHATSAPP_PHONE_NUMBER_IDS").then(|| " 1, 2 ,,3".into())
        })
        .unwrap();
        assert_eq!(s.phone_number_ids, ["1", "2", "3"]);
    }
}
