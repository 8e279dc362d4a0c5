//! Meta error objects: `value.errors[]`, `messages[].errors[]` and
//! `statuses[].errors[]` share one shape `{code, title, message,
//! error_data.details, href}`.

use proto::ingest::{Business, ErrorDetail, WebhookError};
use serde_json::Value;

use super::json::{Field, Invalid, Obj, to_json, type_name};

/// One error object. `code` may be a number or a numeric string.
pub(crate) fn detail(e: Obj<'_>) -> Field<ErrorDetail> {
    Ok(ErrorDetail {
        code: e.int("code")?,
        title: e.str("title")?,
        message: e.str("message")?,
        details: e
            .with_obj("error_data", |d| d.str("details"))?
            .unwrap_or_default(),
        href: e.str("href")?,
    })
}

/// One element of `value.errors[]`; `path` is where it sat in the POST.
pub(crate) fn webhook_error(item: &Value, business: &Business, path: &str) -> Field<WebhookError> {
    let e = Obj::from_value(item, "")
        .ok_or_else(|| Invalid::new(format!("error must be an object, got {}", type_name(item))))?;
    Ok(WebhookError {
        business: Some(business.clone()),
        error: Some(detail(e)?),
        raw_json: to_json(item),
        path: path.to_owned(),
    })
}
