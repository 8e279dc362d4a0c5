//! Hand-rolled Prometheus counters (atomics), rendered by `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Outcome labels of `gateway_webhook_requests_total`: `ok`, every error code
/// a POST can end with, and `other` for anything unexpected.
const OUTCOMES: [&str; 12] = [
    "ok",
    "missing_signature",
    "invalid_signature",
    "payload_too_large",
    "body_timeout",
    "invalid_body",
    "invalid_json",
    "not_an_object",
    "missing_entry",
    "rejected",
    "ingest_unavailable",
    "other",
];

/// Item kinds of `gateway_webhook_items_total`.
const ITEM_KINDS: [&str; 5] = ["message", "status", "error", "other_event", "quarantined"];

/// Process-wide counters; cheap to update from any request.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; OUTCOMES.len()],
    items: [AtomicU64; ITEM_KINDS.len()],
    ingest_ok: AtomicU64,
    ingest_failed: AtomicU64,
    ingest_micros_sum: AtomicU64,
}

/// Items of one forwarded webhook, by kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ItemCounts {
    pub(crate) messages: usize,
    pub(crate) statuses: usize,
    pub(crate) errors: usize,
    pub(crate) other_events: usize,
    pub(crate) quarantined: usize,
}

impl Metrics {
    /// Counts one finished webhook POST under `outcome` (an error code or `ok`).
    pub fn webhook_request(&self, outcome: &str) {
        let index = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(OUTCOMES.len() - 1);
        if let Some(counter) = self.requests.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one IngestWebhook call and how long it took.
    pub fn ingest_call(&self, elapsed: Duration, ok: bool) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.ingest_micros_sum.fetch_add(micros, Ordering::Relaxed);
        if ok {
            self.ingest_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.ingest_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn items(&self, counts: ItemCounts) {
        let values = [
            counts.messages,
            counts.statuses,
            counts.errors,
            counts.other_events,
            counts.quarantined,
        ];
        for (counter, n) in self.items.iter().zip(values) {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP gateway_webhook_requests_total Webhook POSTs by outcome.\n");
        out.push_str("# TYPE gateway_webhook_requests_total counter\n");
        for (label, counter) in OUTCOMES.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "gateway_webhook_requests_total{{outcome=\"{label}\"}} {}",
                load(counter)
            );
        }
        out.push_str("# HELP gateway_webhook_items_total Items forwarded to ingest-svc by kind.\n");
        out.push_str("# TYPE gateway_webhook_items_total counter\n");
        for (label, counter) in ITEM_KINDS.iter().zip(&self.items) {
            let _ = writeln!(
                out,
                "gateway_webhook_items_total{{kind=\"{label}\"}} {}",
                load(counter)
            );
        }
        let ok = load(&self.ingest_ok);
        let failed = load(&self.ingest_failed);
        out.push_str("# HELP gateway_ingest_calls_total IngestWebhook calls by result.\n");
        out.push_str("# TYPE gateway_ingest_calls_total counter\n");
        let _ = writeln!(out, "gateway_ingest_calls_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(
            out,
            "gateway_ingest_calls_total{{result=\"error\"}} {failed}"
        );
        out.push_str("# HELP gateway_ingest_call_duration_seconds IngestWebhook call latency.\n");
        out.push_str("# TYPE gateway_ingest_call_duration_seconds summary\n");
        let seconds = load(&self.ingest_micros_sum) as f64 / 1_000_000.0;
        let _ = writeln!(out, "gateway_ingest_call_duration_seconds_sum {seconds}");
        let _ = writeln!(
            out,
            "gateway_ingest_call_duration_seconds_count {}",
            ok + failed
        );
        out
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_outcomes_and_latency() {
        let m = Metrics::default();
        m.webhook_request("ok");
        m.webhook_request("ok");
        m.webhook_request("invalid_signature");
        m.webhook_request("something-new");
        m.ingest_call(Duration::from_millis(1500), true);
        m.items(ItemCounts {
            messages: 3,
            ..Default::default()
        });
        let text = m.render();
        assert!(text.contains("gateway_webhook_requests_total{outcome=\"ok\"} 2\n"));
        assert!(text.contains("gateway_webhook_requests_total{outcome=\"invalid_signature\"} 1\n"));
        assert!(text.contains("gateway_webhook_requests_total{outcome=\"other\"} 1\n"));
        assert!(text.contains("gateway_webhook_items_total{kind=\"message\"} 3\n"));
        assert!(text.contains("gateway_ingest_call_duration_seconds_sum 1.5\n"));
        assert!(text.contains("gateway_ingest_call_duration_seconds_count 1\n"));
    }
}
