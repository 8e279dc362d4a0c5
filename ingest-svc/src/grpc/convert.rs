//! proto ⇄ storage rows: the only place both meet.

use prost::Message as _;
use proto::ingest::inbound_message::Content;
use proto::ingest::interactive::ReplyOneOf as Reply;
use proto::ingest::{
    GetStatsResponse, InboundMessage, IngestWebhookRequest, IngestWebhookResponse, JobInfo,
    MessageRecord, MessageStatus, StatusRecord,
};
use sha2::{Digest, Sha256};

use crate::db::batch::{
    IngestOutcome, NewMessage, NewOtherEvent, NewQuarantined, NewStatus, NewWebhook,
    NewWebhookError,
};
use crate::db::entities::{job, status};
use crate::db::read::{MessageView, Stats};
use crate::domain::{self, status_rank};
use crate::error::{IngestError, Result};

/// Longest wamid or status accepted: far above real ids, below index-entry limits
/// (the gateway quarantines longer ones; other callers get InvalidArgument).
const MAX_KEY_BYTES: usize = 512;

/// Validates an IngestWebhook request and flattens it into rows. Items without their
/// key are a client bug (the gateway quarantines those), hence `InvalidArgument`.
pub(crate) fn new_webhook(req: IngestWebhookRequest, request_id: String) -> Result<NewWebhook> {
    for (i, m) in req.messages.iter().enumerate() {
        if m.wamid.is_empty() {
            return Err(IngestError::invalid(format!(
                "messages[{i}].wamid is empty"
            )));
        }
        let sender_len = m
            .sender
            .as_ref()
            .map_or(0, |s| s.key.len().max(s.user_id.len()).max(s.wa_id.len()));
        if m.wamid.len() > MAX_KEY_BYTES || sender_len > MAX_KEY_BYTES {
            return Err(IngestError::invalid(format!(
                "messages[{i}] has a wamid or sender longer than {MAX_KEY_BYTES} bytes"
            )));
        }
    }
    for (i, s) in req.statuses.iter().enumerate() {
        if s.wamid.is_empty() {
            return Err(IngestError::invalid(format!(
                "statuses[{i}].wamid is empty"
            )));
        }
        if s.wamid.len() > MAX_KEY_BYTES || s.status.len() > MAX_KEY_BYTES {
            return Err(IngestError::invalid(format!(
                "statuses[{i}] has a key longer than {MAX_KEY_BYTES} bytes"
            )));
        }
        if s.status.is_empty() {
            return Err(IngestError::invalid(format!(
                "statuses[{i}].status is empty"
            )));
        }
    }
    let phone_number_ids = if req.phone_number_ids.is_empty() {
        business_numbers(&req)
    } else {
        req.phone_number_ids
    };
    // Hashed once per call: the stem of every item key below.
    let body_hash = hex::encode(Sha256::digest(&req.raw_body));
    Ok(NewWebhook {
        replay_of: None,
        request_id,
        // 0 means the gateway did not say; "now" is the next best thing.
        received_at_ms: match req.received_at_ms {
            0 => crate::db::now_ms(),
            ms => ms,
        },
        object: req.object,
        phone_number_ids,
        messages: req.messages.into_iter().map(new_message).collect(),
        statuses: req.statuses.into_iter().map(new_status).collect(),
        errors: req
            .errors
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let detail = e.error.unwrap_or_default();
                NewWebhookError {
                    dedupe_key: item_key(&body_hash, &e.path, i),
                    phone_number_id: e.business.unwrap_or_default().phone_number_id,
                    code: detail.code,
                    title: detail.title,
                    message: detail.message,
                    details: detail.details,
                    raw_json: e.raw_json,
                }
            })
            .collect(),
        other_events: req
            .other_events
            .into_iter()
            .enumerate()
            .map(|(i, e)| NewOtherEvent {
                dedupe_key: item_key(&body_hash, &e.path, i),
                object: e.object,
                field: e.field,
                entry_id: e.entry_id,
                entry_time: e.entry_time,
                raw_json: e.raw_json,
            })
            .collect(),
        quarantined: req
            .quarantined
            .into_iter()
            .enumerate()
            .map(|(i, q)| NewQuarantined {
                dedupe_key: item_key(&body_hash, &q.path, i),
                kind: q.kind,
                reason: q.reason,
                path: q.path,
                raw_json: q.raw_json,
            })
            .collect(),
        raw_body: req.raw_body,
    })
}

/// The redelivery key of an item without a WhatsApp id: `<body sha256 hex>:<path>`.
/// A POST redelivered byte for byte yields the same keys, a different POST never
/// does. Items sent without a path (clients predating the field) fall back to
/// `#<index in their list>` past the first, so siblings never collapse into one
/// row; the first keeps the empty path, the key of a whole foreign envelope.
fn item_key(body_hash: &str, path: &str, index: usize) -> String {
    if path.is_empty() && index > 0 {
        format!("{body_hash}:#{index}")
    } else {
        format!("{body_hash}:{path}")
    }
}

/// Distinct business numbers of the items, for requests that did not list them.
fn business_numbers(req: &IngestWebhookRequest) -> Vec<String> {
    let numbers = req
        .messages
        .iter()
        .filter_map(|m| m.business.as_ref())
        .chain(req.statuses.iter().filter_map(|s| s.business.as_ref()))
        .chain(req.errors.iter().filter_map(|e| e.business.as_ref()))
        .map(|b| b.phone_number_id.clone())
        .filter(|id| !id.is_empty());
    let mut out: Vec<String> = Vec::new();
    for id in numbers {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn new_message(mut m: InboundMessage) -> NewMessage {
    // raw_json has its own column; the blob keeps everything else, byte-exact.
    let raw_json = std::mem::take(&mut m.raw_json);
    let business = m.business.clone().unwrap_or_default();
    let sender = m.sender.clone().unwrap_or_default();
    let kind = content_kind(m.content.as_ref());
    let msg_type = if m.r#type.is_empty() {
        kind.to_owned()
    } else {
        m.r#type.clone()
    };
    NewMessage {
        wants_job: domain::warrants_job(&msg_type, kind, &business.phone_number_id),
        wamid: m.wamid.clone(),
        sender_key: domain::sender_key(&sender.key, &sender.user_id, &sender.wa_id).to_owned(),
        phone_number_id: business.phone_number_id,
        display_phone_number: business.display_phone_number,
        wa_id: sender.wa_id,
        user_id: sender.user_id,
        contact_name: sender.name,
        msg_type,
        text_body: text_body(&m),
        timestamp: m.timestamp,
        context_message_id: m
            .context
            .as_ref()
            .map(|c| c.message_id.clone())
            .filter(|id| !id.is_empty()),
        content: m.encode_to_vec(),
        raw_json,
    }
}

fn new_status(mut s: MessageStatus) -> NewStatus {
    let raw_json = std::mem::take(&mut s.raw_json);
    let recipient_id = if s.recipient_id.is_empty() {
        s.recipient_user_id.clone()
    } else {
        s.recipient_id.clone()
    };
    NewStatus {
        wamid: s.wamid.clone(),
        status: s.status.clone(),
        phone_number_id: s
            .business
            .as_ref()
            .map(|b| b.phone_number_id.clone())
            .unwrap_or_default(),
        timestamp: s.timestamp,
        recipient_id,
        biz_opaque_callback_data: s.biz_opaque_callback_data.clone(),
        content: s.encode_to_vec(),
        raw_json,
    }
}

/// Name of the typed content variant (as the JSON `type` would spell it).
fn content_kind(content: Option<&Content>) -> &'static str {
    match content {
        None => "",
        Some(Content::Text(_)) => "text",
        Some(Content::Image(_)) => "image",
        Some(Content::Audio(_)) => "audio",
        Some(Content::Video(_)) => "video",
        Some(Content::Document(_)) => "document",
        Some(Content::Sticker(_)) => "sticker",
        Some(Content::Location(_)) => "location",
        Some(Content::Contacts(_)) => "contacts",
        Some(Content::Interactive(_)) => "interactive",
        Some(Content::Button(_)) => "button",
        Some(Content::Reaction(_)) => "reaction",
        Some(Content::Order(_)) => "order",
        Some(Content::System(_)) => "system",
        Some(Content::Unsupported(_)) => "unsupported",
        Some(Content::Unknown(_)) => "unknown",
        Some(Content::RequestWelcome(_)) => "request_welcome",
        Some(Content::Revoke(_)) => "revoke",
        Some(Content::Edit(_)) => "edit",
        Some(Content::Other(_)) => "other",
    }
}

/// The human text of a message: body, caption, chosen reply or button text.
fn text_body(m: &InboundMessage) -> Option<String> {
    let text = match m.content.as_ref()? {
        Content::Text(t) => t.body.clone(),
        Content::Image(x)
        | Content::Audio(x)
        | Content::Video(x)
        | Content::Document(x)
        | Content::Sticker(x) => x.caption.clone(),
        Content::Interactive(i) => match i.reply.as_ref()? {
            Reply::ButtonReply(r) | Reply::ListReply(r) => r.title.clone(),
            Reply::NfmReply(r) => r.body.clone(),
        },
        Content::Button(b) => b.text.clone(),
        Content::Order(o) => o.text.clone(),
        Content::Edit(e) => return e.message.as_deref().and_then(text_body),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// The response counters.
pub(crate) fn ingest_response(o: &IngestOutcome) -> IngestWebhookResponse {
    IngestWebhookResponse {
        event_id: o.event_id,
        messages_created: o.messages_created,
        messages_duplicate: o.messages_duplicate,
        statuses_created: o.statuses_created,
        statuses_duplicate: o.statuses_duplicate,
        jobs_created: u32::try_from(o.new_jobs.len()).unwrap_or(u32::MAX),
        webhook_errors: o.webhook_errors,
        other_events: o.other_events,
        quarantined: o.quarantined,
    }
}

/// A stored message with its statuses, job and replies.
pub(crate) fn message_record(view: MessageView) -> MessageRecord {
    let MessageView {
        message: row,
        mut statuses,
        job,
        replies,
    } = view;
    statuses.sort_by_key(|s| (status_rank(&s.status), s.timestamp, s.id));
    // Highest rank wins; among equal ranks (unknown names) the latest.
    let current_status = statuses
        .last()
        .map(|s| s.status.clone())
        .unwrap_or_default();

    let mut message = InboundMessage::decode(row.content.as_slice()).unwrap_or_else(|err| {
        tracing::warn!(message_id = row.id, error = %err, "undecodable message content; serving columns");
        InboundMessage {
            wamid: row.wamid.clone(),
            timestamp: row.timestamp,
            r#type: row.msg_type.clone(),
            ..Default::default()
        }
    });
    message.raw_json = row.raw_json;

    MessageRecord {
        direction: row.direction,
        message: Some(message),
        current_status,
        statuses: statuses.into_iter().map(status_record).collect(),
        job: job.map(job_info),
        replies,
        in_reply_to: row.in_reply_to.unwrap_or_default(),
        event_id: row.event_id.unwrap_or_default(),
        created_at_ms: row.created_at,
    }
}

fn status_record(row: status::Model) -> StatusRecord {
    let s = MessageStatus::decode(row.content.as_slice()).unwrap_or_default();
    StatusRecord {
        status: row.status,
        timestamp: row.timestamp,
        errors: s.errors,
        recipient_id: row.recipient_id,
        biz_opaque_callback_data: row.biz_opaque_callback_data,
        pricing: s.pricing,
        conversation: s.conversation,
    }
}

fn job_info(row: job::Model) -> JobInfo {
    JobInfo {
        id: row.id,
        state: row.state,
        attempts: u32::try_from(row.attempts).unwrap_or_default(),
        last_error: row.last_error.unwrap_or_default(),
        outcome: row.outcome.unwrap_or_default(),
    }
}

/// The GetStats response.
pub(crate) fn stats_response(s: Stats) -> GetStatsResponse {
    GetStatsResponse {
        webhook_events: s.webhook_events,
        messages: s.messages,
        statuses: s.statuses,
        webhook_errors: s.webhook_errors,
        other_events: s.other_events,
        quarantined: s.quarantined,
        outbound_messages: s.outbound_messages,
        jobs: s.jobs.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ingest::{Business, Media, Reaction, Sender, Text};

    fn msg(wamid: &str, content: Content, ty: &str) -> InboundMessage {
        InboundMessage {
            wamid: wamid.into(),
            r#type: ty.into(),
            business: Some(Business {
                phone_number_id: "111".into(),
                ..Default::default()
            }),
            sender: Some(Sender {
                wa_id: "1555".into(),
                ..Default::default()
            }),
            content: Some(content),
            raw_json: "{\"id\":1}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn text_and_captions_fill_text_body_and_raw_json_leaves_the_blob() {
        let m = new_message(msg("w1", Content::Text(Text { body: "hi".into() }), "text"));
        assert_eq!(m.text_body.as_deref(), Some("hi"));
        assert_eq!(m.sender_key, "1555");
        assert!(m.wants_job);
        assert_eq!(m.raw_json, "{\"id\":1}");
        assert!(
            InboundMessage::decode(m.content.as_slice())
                .unwrap()
                .raw_json
                .is_empty()
        );

        let media = Media {
            caption: "look".into(),
            ..Default::default()
        };
        let m = new_message(msg("w2", Content::Image(media), "image"));
        assert_eq!(m.text_body.as_deref(), Some("look"));
    }

    #[test]
    fn reactions_want_no_job() {
        let m = new_message(msg(
            "w3",
            Content::Reaction(Reaction::default()),
            "reaction",
        ));
        assert!(!m.wants_job);
        assert_eq!(m.text_body, None);
    }

    #[test]
    fn item_keys_are_the_body_hash_and_the_path() {
        let body = b"{\"entry\":[]}".to_vec();
        let hash = hex::encode(Sha256::digest(&body));
        let req = IngestWebhookRequest {
            raw_body: body,
            errors: vec![proto::ingest::WebhookError {
                path: "entry[0].changes[1].value.errors[0]".into(),
                ..Default::default()
            }],
            other_events: vec![
                proto::ingest::OtherEvent::default(),
                proto::ingest::OtherEvent::default(),
            ],
            ..Default::default()
        };
        let hook = new_webhook(req, "r".into()).unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(
            hook.errors[0].dedupe_key,
            format!("{hash}:entry[0].changes[1].value.errors[0]")
        );
        let keys: Vec<_> = hook
            .other_events
            .iter()
            .map(|e| e.dedupe_key.as_str())
            .collect();
        assert_eq!(keys, [format!("{hash}:"), format!("{hash}:#1")]);
    }

    #[test]
    fn empty_keys_are_invalid_arguments() {
        let req = IngestWebhookRequest {
            statuses: vec![MessageStatus {
                wamid: "w".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = new_webhook(req, "r".into()).unwrap_err();
        assert!(matches!(err, IngestError::InvalidArgument(m) if m.contains("status")));
    }

    #[test]
    fn keys_longer_than_an_index_entry_are_invalid_arguments() {
        let long = "w".repeat(MAX_KEY_BYTES + 1);
        let req = IngestWebhookRequest {
            messages: vec![msg(&long, Content::Text(Default::default()), "text")],
            ..Default::default()
        };
        let err = new_webhook(req, "r".into()).unwrap_err();
        assert!(matches!(err, IngestError::InvalidArgument(m) if m.contains("longer than")));
    }
}
