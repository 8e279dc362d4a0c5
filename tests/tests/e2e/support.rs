//! Small helpers shared by the e2e tests.

use serde_json::Value;

/// Every `messages[].id` in a webhook body, in order.
pub(crate) fn message_ids(body: &[u8]) -> Vec<String> {
    ids_of(body, "messages")
}

/// Every `statuses[].id` in a webhook body, in order.
pub(crate) fn status_ids(body: &[u8]) -> Vec<String> {
    ids_of(body, "statuses")
}

fn ids_of(body: &[u8], list: &str) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).expect("fixture is JSON");
    let mut out = Vec::new();
    for entry in v["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            for item in change["value"][list].as_array().into_iter().flatten() {
                if let Some(id) = item["id"].as_str() {
                    out.push(id.to_owned());
                }
            }
        }
    }
    out
}

/// A text-message webhook with a given wamid and body text, sent just now by
/// the usual customer.
pub(crate) fn text_webhook(wamid: &str, text: &str) -> Vec<u8> {
    text_webhook_from(wamid, text, "16505551234")
}

/// A text-message webhook from customer `from` (a `wa_id`): its own conversation.
pub(crate) fn text_webhook_from(wamid: &str, text: &str, from: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": from}],
                    "messages": [{
                        "from": from, "id": wamid, "timestamp": now,
                        "type": "text", "text": {"body": text}
                    }]
                },
                "field": "messages"
            }]
        }]
    })
    .to_string()
    .into_bytes()
}

/// A status webhook for our outbound `wamid` to the usual customer at `timestamp`,
/// echoing `callback` as `biz_opaque_callback_data` when it is not empty. A
/// `failed` status carries Meta's error object.
pub(crate) fn status_webhook(wamid: &str, status: &str, timestamp: u32, callback: &str) -> Vec<u8> {
    let mut item = serde_json::json!({
        "id": wamid, "status": status, "timestamp": timestamp.to_string(), "recipient_id": "16505551234"
    });
    if !callback.is_empty() {
        item["biz_opaque_callback_data"] = callback.into();
    }
    if status == "failed" {
        item["errors"] = serde_json::json!([{"code": 131026, "title": "Message undeliverable",
            "message": "Message undeliverable", "error_data": {"details": "Unable to deliver."}}]);
    }
    serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": [item]
        }
    }]}]})
    .to_string()
    .into_bytes()
}

/// A fresh unique wamid.
pub(crate) fn new_wamid() -> String {
    format!("wamid.TEST{}", uuid::Uuid::new_v4().simple())
}
