//! WhatsApp Cloud API webhook JSON → [`IngestWebhookRequest`]: the envelope walk.
//!
//! The gateway calls [`parse`] on every signed POST; ingest-svc can call it again
//! on a stored raw body (replay) and get the very same typed request.
//!
//! Parsing goes through `serde_json::Value` and small tolerant accessors
//! (`json::Obj`) instead of strict serde derives, because one bad item must
//! never fail its siblings: every `entry × change × messages[]/statuses[]/errors[]`
//! element is typed on its own, and an element that cannot be typed becomes a
//! [`QuarantinedItem`] with its raw JSON, a reason and its path in the POST.
//! Webhook errors and other events carry their path too, so that ingest-svc can
//! recognise a redelivered item that has no id of its own.
//! Only an unusable body (not JSON, not an object, no `entry` array) is an error.
//! Unknown fields are always ignored.

mod errors;
mod json;
mod messages;
mod statuses;

use proto::ingest::{Business, IngestWebhookRequest, OtherEvent, QuarantinedItem};
use serde_json::Value;

use self::json::{Field, Invalid, Obj, check_key_len, to_json, type_name};

/// The only `object` whose entries are typed; anything else is kept whole as
/// one [`OtherEvent`].
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// Why a body is unusable. The gateway answers 400 with [`PayloadError::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Not UTF-8 JSON (even after the lone-surrogate repair). Code `invalid_json`.
    InvalidJson(String),
    /// Valid JSON, but not an object (the JSON type is given). Code `not_an_object`.
    NotAnObject(&'static str),
    /// An object without an `entry` array. Code `missing_entry`.
    MissingEntry,
}

impl PayloadError {
    /// Machine-readable code of the 400 answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject(_) => "not_an_object",
            Self::MissingEntry => "missing_entry",
        }
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidJson(cause) => write!(f, "body is not valid JSON: {cause}"),
            Self::NotAnObject(kind) => write!(f, "body is {kind}, expected a JSON object"),
            Self::MissingEntry => f.write_str("body has no `entry` array"),
        }
    }
}

impl std::error::Error for PayloadError {}

/// Parses a webhook body into the typed request sent to ingest-svc.
///
/// `raw_body` is `body` unchanged; `request_id` and `received_at_ms` are left
/// empty for the caller to fill.
pub fn parse(body: &[u8]) -> Result<IngestWebhookRequest, PayloadError> {
    let envelope = decode(body)?;
    let Some(root) = Obj::from_value(&envelope, "") else {
        return Err(PayloadError::NotAnObject(type_name(&envelope)));
    };
    let entries = match root.get("entry") {
        Some(Value::Array(entries)) => entries,
        _ => return Err(PayloadError::MissingEntry),
    };
    // A non-string `object` is as foreign as an unknown one.
    let object = root.opt_str("object").ok().flatten().unwrap_or_default();

    let mut out = Collector {
        req: IngestWebhookRequest {
            raw_body: body.to_vec(),
            object: object.clone(),
            ..Default::default()
        },
    };
    if object != WHATSAPP_OBJECT {
        // The whole envelope is the item: its path is empty.
        out.req.other_events.push(OtherEvent {
            object,
            raw_json: to_json(&envelope),
            path: String::new(),
            ..Default::default()
        });
        return Ok(out.req);
    }
    for (i, entry) in entries.iter().enumerate() {
        out.entry(i, entry);
    }
    Ok(out.req)
}

/// Decodes the body, falling back to the lone-surrogate repair
/// ([`json::repair_lone_surrogates`]) when serde_json refuses it.
fn decode(body: &[u8]) -> Result<Value, PayloadError> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(first) => match json::repair_lone_surrogates(body) {
            Some(repaired) => serde_json::from_slice(&repaired)
                .map_err(|err| PayloadError::InvalidJson(err.to_string())),
            None => Err(PayloadError::InvalidJson(first.to_string())),
        },
    }
}

/// Accumulates the typed items of one POST.
struct Collector {
    req: IngestWebhookRequest,
}

impl Collector {
    fn quarantine(&mut self, kind: &str, reason: String, item: &Value, path: String) {
        self.req.quarantined.push(QuarantinedItem {
            kind: kind.to_owned(),
            reason,
            raw_json: to_json(item),
            path,
        });
    }

    fn entry(&mut self, i: usize, entry: &Value) {
        let path = format!("entry[{i}]");
        let Some(obj) = Obj::from_value(entry, &path) else {
            let reason = format!("`{path}` must be an object, got {}", type_name(entry));
            return self.quarantine("entry", reason, entry, path);
        };
        let head =
            (|| -> Field<_> { Ok((obj.str("id")?, obj.timestamp("time")?, obj.arr("changes")?)) })(
            );
        match head {
            Err(Invalid(reason)) => self.quarantine("entry", reason, entry, path),
            Ok((entry_id, entry_time, changes)) => {
                for (j, change) in changes.iter().enumerate() {
                    self.change(&path, j, &entry_id, entry_time, change);
                }
            }
        }
    }

    fn change(
        &mut self,
        entry_path: &str,
        j: usize,
        entry_id: &str,
        entry_time: i64,
        change: &Value,
    ) {
        let path = format!("{entry_path}.changes[{j}]");
        let Some(obj) = Obj::from_value(change, &path) else {
            let reason = format!("`{path}` must be an object, got {}", type_name(change));
            return self.quarantine("change", reason, change, path);
        };
        let field = match obj.opt_str("field") {
            Ok(Some(field)) => field,
            Ok(None) => {
                let reason = format!("`{path}` has no `field`");
                return self.quarantine("change", reason, change, path);
            }
            Err(Invalid(reason)) => return self.quarantine("change", reason, change, path),
        };
        if field != "messages" {
            self.req.other_events.push(OtherEvent {
                object: self.req.object.clone(),
                field,
                entry_id: entry_id.to_owned(),
                entry_time,
                raw_json: to_json(change),
                path,
            });
            return;
        }
        if let Err(Invalid(reason)) = self.messages_change(obj, entry_id) {
            self.quarantine("change", reason, change, path);
        }
    }

    /// A `field: "messages"` change. Errors here concern the change as a whole
    /// (no value object, bad metadata, a list that is not an array); item-level
    /// problems are quarantined per item instead.
    fn messages_change(&mut self, change: Obj<'_>, entry_id: &str) -> Field<()> {
        let value_path = change.path_of("value");
        let value = match change.get("value") {
            Some(value) => Obj::from_value(value, &value_path).ok_or_else(|| {
                Invalid(format!(
                    "`{value_path}` must be an object, got {}",
                    type_name(value)
                ))
            })?,
            None => return Err(Invalid(format!("`{}` has no `value`", change.path()))),
        };
        let business = value
            .with_obj("metadata", |m| {
                Ok(Business {
                    phone_number_id: m.str("phone_number_id")?,
                    display_phone_number: m.str("display_phone_number")?,
                    waba_id: entry_id.to_owned(),
                })
            })?
            .unwrap_or_else(|| Business {
                waba_id: entry_id.to_owned(),
                ..Default::default()
            });
        check_key_len("metadata.phone_number_id", &business.phone_number_id)?;
        let messages = value.arr("messages")?;
        let statuses = value.arr("statuses")?;
        let errors = value.arr("errors")?;
        // `contacts` only enriches senders: a malformed list is treated as
        // absent rather than costing the whole change.
        let contacts = value.arr("contacts").unwrap_or_default();

        let id = &business.phone_number_id;
        if !id.is_empty() && !self.req.phone_number_ids.contains(id) {
            self.req.phone_number_ids.push(id.clone());
        }

        for (k, item) in messages.iter().enumerate() {
            match messages::parse(item, &business, contacts) {
                Ok(message) => self.req.messages.push(message),
                Err(Invalid(reason)) => {
                    let path = format!("{value_path}.messages[{k}]");
                    self.quarantine("message", reason, item, path);
                }
            }
        }
        for (k, item) in statuses.iter().enumerate() {
            match statuses::parse(item, &business) {
                Ok(status) => self.req.statuses.push(status),
                Err(Invalid(reason)) => {
                    let path = format!("{value_path}.statuses[{k}]");
                    self.quarantine("status", reason, item, path);
                }
            }
        }
        for (k, item) in errors.iter().enumerate() {
            let path = format!("{value_path}.errors[{k}]");
            match errors::webhook_error(item, &business, &path) {
                Ok(error) => self.req.errors.push(error),
                Err(Invalid(reason)) => self.quarantine("error", reason, item, path),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
