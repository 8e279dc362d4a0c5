//! `value.statuses[]` elements → [`MessageStatus`].

use proto::ingest::{Business, Conversation, MessageStatus, Pricing};
use serde_json::Value;

use super::errors::detail;
use super::json::{Field, Invalid, Obj, check_key_len, to_json, type_name};

/// One status element. Requires a non-empty string `id` and a string `status`
/// (kept as sent, so statuses invented later pass through).
pub(crate) fn parse(item: &Value, business: &Business) -> Field<MessageStatus> {
    let s = Obj::from_value(item, "").ok_or_else(|| {
        Invalid::new(format!("status must be an object, got {}", type_name(item)))
    })?;
    let wamid = s
        .opt_str("id")?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Invalid::new("status has no `id`"))?;
    let status = s
        .opt_str("status")?
        .filter(|st| !st.is_empty())
        .ok_or_else(|| Invalid::new("status has no `status`"))?;
    check_key_len("id", &wamid)?;
    check_key_len("status", &status)?;
    Ok(MessageStatus {
        wamid,
        business: Some(business.clone()),
        status,
        timestamp: s.timestamp("timestamp")?,
        recipient_id: s.str("recipient_id")?,
        recipient_user_id: s.str("recipient_user_id")?,
        recipient_type: s.str("recipient_type")?,
        biz_opaque_callback_data: s.str("biz_opaque_callback_data")?,
        conversation: s.with_obj("conversation", |c| {
            Ok(Conversation {
                id: c.str("id")?,
                expiration_timestamp: c.timestamp("expiration_timestamp")?,
                origin_type: c.with_obj("origin", |o| o.str("type"))?.unwrap_or_default(),
            })
        })?,
        pricing: s.with_obj("pricing", |p| {
            Ok(Pricing {
                billable: p.bool("billable")?,
                pricing_model: p.str("pricing_model")?,
                r#type: p.str("type")?,
                category: p.str("category")?,
            })
        })?,
        errors: s.each_obj("errors", detail)?,
        raw_json: to_json(item),
    })
}
