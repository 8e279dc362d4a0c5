//! Settings from environment variables (see the contract's "Configuration").
//!
//! The loader is hand-written: every variable has a default or a clear,
//! one-line error naming it. [`Settings::from_lookup`] takes the lookup as a
//! closure so it can be unit-tested without touching the process environment.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::Uri;
use secrecy::SecretString;

/// Default listen address (`GATEWAY_ADDR`).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default ingest-svc URL (`INGEST_URL`).
pub const DEFAULT_INGEST_URL: &str = "http://127.0.0.1:50051";
/// Default deadline of the IngestWebhook call (`GATEWAY_INGEST_TIMEOUT_MS`).
pub const DEFAULT_INGEST_TIMEOUT: Duration = Duration::from_millis(5000);
/// Default webhook body limit (`GATEWAY_BODY_LIMIT_BYTES`): 4 MiB, above Meta's 3 MB.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Everything the gateway needs to run. Secrets are [`SecretString`], whose
/// `Debug` output is redacted, so deriving `Debug` here leaks nothing.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (`GATEWAY_ADDR`); port 0 picks a free port.
    pub addr: SocketAddr,
    /// ingest-svc gRPC endpoint (`INGEST_URL`), e.g. `http://127.0.0.1:50051`.
    pub ingest_url: String,
    /// Deadline of one IngestWebhook call (`GATEWAY_INGEST_TIMEOUT_MS`).
    pub ingest_timeout: Duration,
    /// Bearer token sent to ingest-svc on every call (`INGEST_API_TOKEN`).
    pub api_token: Option<SecretString>,
    /// Meta app secrets used to check `X-Hub-Signature-256`
    /// (`WHATSAPP_APP_SECRET`, comma-separated for rotation); any one may match.
    pub app_secrets: Vec<SecretString>,
    /// Accept unsigned webhooks (`WHATSAPP_INSECURE_SKIP_SIGNATURE=true`).
    /// For local experiments only; a loud warning is logged at start.
    pub insecure_skip_signature: bool,
    /// Token expected in the GET verification handshake (`WHATSAPP_VERIFY_TOKEN`);
    /// without it the handshake always answers 403.
    pub verify_token: Option<SecretString>,
    /// Largest accepted webhook body in bytes (`GATEWAY_BODY_LIMIT_BYTES`).
    pub body_limit: usize,
}

/// A missing or malformed setting. `Display` is one line naming the variable,
/// e.g. `GATEWAY_ADDR: invalid socket address "x"`. Secret values are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    variable: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }

    /// The environment variable at fault.
    pub fn variable(&self) -> &'static str {
        self.variable
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (variable name → value). Empty or
    /// blank values count as unset.
    pub fn from_lookup<F>(lookup: F) -> Result<Settings, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let addr_raw = get("GATEWAY_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr_raw.trim().parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "GATEWAY_ADDR",
                format!("invalid socket address {addr_raw:?} (expected e.g. 127.0.0.1:8080)"),
            )
        })?;

        let ingest_url = get("INGEST_URL").unwrap_or_else(|| DEFAULT_INGEST_URL.to_owned());
        let ingest_url = parse_ingest_url(ingest_url.trim())?;

        let ingest_timeout = match get("GATEWAY_INGEST_TIMEOUT_MS") {
            None => DEFAULT_INGEST_TIMEOUT,
            Some(raw) => Duration::from_millis(positive("GATEWAY_INGEST_TIMEOUT_MS", &raw)?),
        };
        let body_limit = match get("GATEWAY_BODY_LIMIT_BYTES") {
            None => DEFAULT_BODY_LIMIT,
            Some(raw) => {
                let n = positive("GATEWAY_BODY_LIMIT_BYTES", &raw)?;
                usize::try_from(n).map_err(|_| {
                    ConfigError::new("GATEWAY_BODY_LIMIT_BYTES", format!("{n} is too large"))
                })?
            }
        };

        let api_token = get("INGEST_API_TOKEN").map(|t| t.trim().to_owned());
        if let Some(token) = &api_token {
            // It travels as `authorization: Bearer <token>` gRPC metadata.
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    "INGEST_API_TOKEN",
                    "must be visible ASCII without spaces (it is sent as a header)",
                ));
            }
        }

        let insecure_skip_signature = match get("WHATSAPP_INSECURE_SKIP_SIGNATURE") {
            None => false,
            Some(raw) => parse_bool("WHATSAPP_INSECURE_SKIP_SIGNATURE", &raw)?,
        };
        let app_secrets: Vec<SecretString> = get("WHATSAPP_APP_SECRET")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        if app_secrets.is_empty() && !insecure_skip_signature {
            return Err(ConfigError::new(
                "WHATSAPP_APP_SECRET",
                "required (comma-separated Meta app secrets) unless \
                 WHATSAPP_INSECURE_SKIP_SIGNATURE=true",
            ));
        }

        let verify_token = get("WHATSAPP_VERIFY_TOKEN").map(SecretString::from);

        Ok(Settings {
            addr,
            ingest_url,
            ingest_timeout,
            api_token: api_token.map(SecretString::from),
            app_secrets,
            insecure_skip_signature,
            verify_token,
            body_limit,
        })
    }
}

fn parse_ingest_url(raw: &str) -> Result<String, ConfigError> {
    let invalid = || {
        ConfigError::new(
            "INGEST_URL",
            format!("invalid URL {raw:?} (expected e.g. http://127.0.0.1:50051)"),
        )
    };
    let uri: Uri = raw.parse().map_err(|_| invalid())?;
    // The gRPC client is built without TLS: ingest-svc is reached over the
    // internal network (or a TLS-terminating sidecar).
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(raw.to_owned()),
        (Some("https"), Some(_)) => Err(ConfigError::new(
            "INGEST_URL",
            format!("{raw:?}: https is not supported by this build, use http://"),
        )),
        _ => Err(invalid()),
    }
}

fn positive(variable: &'static str, raw: &str) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::new(
            variable,
            format!("expected a positive integer, got {raw:?}"),
        )),
    }
}

fn parse_bool(variable: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            format!("expected true or false, got {raw:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_secret_is_set() {
        let s = settings(&[("WHATSAPP_APP_SECRET", "s1")]).unwrap();
        assert_eq!(s.addr, DEFAULT_ADDR.parse().unwrap());
        assert_eq!(s.ingest_url, DEFAULT_INGEST_URL);
        assert_eq!(s.ingest_timeout, DEFAULT_INGEST_TIMEOUT);
        assert_eq!(s.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(s.app_secrets.len(), 1);
        assert!(s.api_token.is_none() && s.verify_token.is_none());
        assert!(!s.insecure_skip_signature);
    }

    #[test]
    fn missing_secret_is_an_error_naming_whatsapp_app_secret() {
        let err = settings(&[]).unwrap_err();
        assert_eq!(err.variable(), "WHATSAPP_APP_SECRET");
        assert!(err.to_string().starts_with("WHATSAPP_APP_SECRET: "));
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn blank_secret_list_counts_as_missing() {
        let err = settings(&[("WHATSAPP_APP_SECRET", " , ,")]).unwrap_err();
        assert_eq!(err.variable(), "WHATSAPP_APP_SECRET");
    }

    #[test]
    fn bad_gateway_addr_is_an_error_naming_it() {
        let err = settings(&[("WHATSAPP_APP_SECRET", "s"), ("GATEWAY_ADDR", "x")]).unwrap_err();
        assert_eq!(err.variable(), "GATEWAY_ADDR");
        assert_eq!(
            err.to_string(),
            "GATEWAY_ADDR: invalid socket address \"x\" (expected e.g. 127.0.0.1:8080)"
        );
    }

    #[test]
    fn insecure_flag_allows_no_secret() {
        let s = settings(&[("WHATSAPP_INSECURE_SKIP_SIGNATURE", "true")]).unwrap();
        assert!(s.insecure_skip_signature);
        assert!(s.app_secrets.is_empty());
    }

    #[test]
    fn comma_separated_secrets_are_all_kept() {
        let s = settings(&[("WHATSAPP_APP_SECRET", "old, new")]).unwrap();
        let secrets: Vec<&str> = s.app_secrets.iter().map(|x| x.expose_secret()).collect();
        assert_eq!(secrets, ["old", "new"]);
    }

    #[test]
    fn malformed_numbers_urls_and_flags_name_their_variable() {
        for (var, value) in [
            ("GATEWAY_INGEST_TIMEOUT_MS", "soon"),
            ("GATEWAY_INGEST_TIMEOUT_MS", "0"),
            ("GATEWAY_BODY_LIMIT_BYTES", "-1"),
            ("INGEST_URL", "not a url"),
            ("INGEST_URL", "127.0.0.1:50051"),
            ("INGEST_URL", "https://ingest:443"),
            ("WHATSAPP_INSECURE_SKIP_SIGNATURE", "maybe"),
            ("INGEST_API_TOKEN", "has space"),
        ] {
            let err = settings(&[("WHATSAPP_APP_SECRET", "s"), (var, value)]).unwrap_err();
            assert_eq!(err.variable(), var, "{value}");
        }
    }

    #[test]
    fn explicit_values_are_used_and_secrets_stay_redacted() {
        let s = settings(&[
            ("WHATSAPP_APP_SECRET", "topsecret"),
            ("GATEWAY_ADDR", "0.0.0.0:0"),
            ("INGEST_URL", "http://ingest:50051"),
            ("INGEST_API_TOKEN", "tok3n"),
            ("WHATSAPP_VERIFY_TOKEN", "verify-me"),
            ("GATEWAY_INGEST_TIMEOUT_MS", "250"),
            ("GATEWAY_BODY_LIMIT_BYTES", "1024"),
        ])
        .unwrap();
        assert_eq!(s.addr.port(), 0);
        assert_eq!(s.ingest_url, "http://ingest:50051");
        assert_eq!(s.ingest_timeout, Duration::from_millis(250));
        assert_eq!(s.body_limit, 1024);
        let debug = format!("{s:?}");
        for secret in ["topsecret", "tok3n", "verify-me"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
