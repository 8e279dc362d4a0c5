//! What an ingest call stores and what it reports back: plain data, no SQL.

/// One webhook POST, validated and flattened (built by `grpc::convert`).
#[derive(Debug, Default)]
pub(crate) struct NewWebhook {
    pub(crate) request_id: String,
    pub(crate) received_at_ms: i64,
    pub(crate) object: String,
    pub(crate) phone_number_ids: Vec<String>,
    pub(crate) raw_body: Vec<u8>,
    pub(crate) messages: Vec<NewMessage>,
    pub(crate) statuses: Vec<NewStatus>,
    pub(crate) errors: Vec<NewWebhookError>,
    pub(crate) other_events: Vec<NewOtherEvent>,
    pub(crate) quarantined: Vec<NewQuarantined>,
    /// A replay of this stored event: reuse its id, store no new event.
    pub(crate) replay_of: Option<i64>,
}

/// An inbound message row (text columns are sanitised on insert).
#[derive(Debug)]
pub(crate) struct NewMessage {
    pub(crate) wamid: String,
    pub(crate) phone_number_id: String,
    pub(crate) display_phone_number: String,
    pub(crate) sender_key: String,
    pub(crate) wa_id: String,
    pub(crate) user_id: String,
    pub(crate) contact_name: String,
    pub(crate) msg_type: String,
    pub(crate) text_body: Option<String>,
    pub(crate) timestamp: i64,
    pub(crate) context_message_id: Option<String>,
    pub(crate) content: Vec<u8>,
    pub(crate) raw_json: String,
    /// Decided by the reply policy (`domain::warrants_job`).
    pub(crate) wants_job: bool,
}

/// A status row.
#[derive(Debug)]
pub(crate) struct NewStatus {
    pub(crate) wamid: String,
    pub(crate) status: String,
    pub(crate) phone_number_id: String,
    pub(crate) timestamp: i64,
    pub(crate) recipient_id: String,
    pub(crate) biz_opaque_callback_data: String,
    pub(crate) content: Vec<u8>,
    pub(crate) raw_json: String,
}

/// A `value.errors[]` row.
#[derive(Debug)]
pub(crate) struct NewWebhookError {
    pub(crate) phone_number_id: String,
    pub(crate) code: i64,
    pub(crate) title: String,
    pub(crate) message: String,
    pub(crate) details: String,
    pub(crate) raw_json: String,
    /// `<sha256 of the raw body>:<path>`: the same item of a redelivered POST has
    /// the same key (unique in its table).
    pub(crate) dedupe_key: String,
}

/// A non-message change.
#[derive(Debug)]
pub(crate) struct NewOtherEvent {
    pub(crate) object: String,
    pub(crate) field: String,
    pub(crate) entry_id: String,
    pub(crate) entry_time: i64,
    pub(crate) raw_json: String,
    /// `<sha256 of the raw body>:<path>`: the same item of a redelivered POST has
    /// the same key (unique in its table).
    pub(crate) dedupe_key: String,
}

/// A quarantined item.
#[derive(Debug)]
pub(crate) struct NewQuarantined {
    pub(crate) kind: String,
    pub(crate) reason: String,
    pub(crate) path: String,
    pub(crate) raw_json: String,
    /// `<sha256 of the raw body>:<path>`: the same item of a redelivered POST has
    /// the same key (unique in its table).
    pub(crate) dedupe_key: String,
}

/// A job to put on the stream: `(job id, message wamid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobRef {
    pub(crate) id: i64,
    pub(crate) wamid: String,
}

/// What one ingest call changed.
#[derive(Debug, Default)]
pub(crate) struct IngestOutcome {
    pub(crate) event_id: i64,
    pub(crate) messages_created: u32,
    pub(crate) messages_duplicate: u32,
    pub(crate) statuses_created: u32,
    pub(crate) statuses_duplicate: u32,
    pub(crate) webhook_errors: u32,
    pub(crate) other_events: u32,
    pub(crate) quarantined: u32,
    /// Jobs created by this call, to enqueue after commit.
    pub(crate) new_jobs: Vec<JobRef>,
}
