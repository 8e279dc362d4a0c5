//! Small pieces of domain logic with no transport or storage in them.

/// `phone_number_id` of the sample Meta's dashboard "Test" button sends.
pub const DASHBOARD_TEST_PHONE_NUMBER_ID: &str = "123456123";

/// Message types that never get a reply job.
const NO_REPLY_TYPES: &[&str] = &["reaction", "system", "revoke", "edit"];

/// Rank of a status name: sent=1 < delivered=2 < read=3 < played=4; `failed` is
/// terminal (highest); unknown names rank 0 so they never override a known state.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        "played" => 4,
        "failed" => u8::MAX,
        _ => 0,
    }
}

/// Whether a newly created inbound message warrants a reply job.
///
/// `msg_type` is the `type` as sent, `content_kind` the typed content the gateway
/// recognised (both are checked, so an `edit` wrapped as another type still counts).
/// Finer rules (reply window, configured numbers) are the worker's.
pub fn warrants_job(msg_type: &str, content_kind: &str, phone_number_id: &str) -> bool {
    phone_number_id != DASHBOARD_TEST_PHONE_NUMBER_ID
        && !NO_REPLY_TYPES.contains(&msg_type)
        && !NO_REPLY_TYPES.contains(&content_kind)
}

/// Sender identity for conversations: `user_id` (business-scoped) when present, else `wa_id`.
pub fn sender_key<'a>(key: &'a str, user_id: &'a str, wa_id: &'a str) -> &'a str {
    [key, user_id, wa_id]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

/// PostgreSQL `TEXT` rejects U+0000: every string bound for a text column goes through
/// here (U+0000 becomes U+FFFD). Binary columns keep the exact data.
pub fn db_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// Page tokens are opaque to clients: a version tag plus the last id seen, in hex.
const PAGE_TOKEN_PREFIX: &str = "m1";

/// Encodes the id of the last message on a page.
pub fn encode_page_token(last_id: i64) -> String {
    format!("{PAGE_TOKEN_PREFIX}{last_id:016x}")
}

/// Decodes a page token; `None` when it is not one of ours.
pub fn decode_page_token(token: &str) -> Option<i64> {
    let hex = token.strip_prefix(PAGE_TOKEN_PREFIX)?;
    if hex.len() != 16 {
        return None;
    }
    i64::from_str_radix(hex, 16).ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_outranks_everything_and_unknown_ranks_lowest() {
        let mut names = ["failed", "read", "sent", "bogus", "played", "delivered"];
        names.sort_by_key(|s| status_rank(s));
        assert_eq!(
            names,
            ["bogus", "sent", "delivered", "read", "played", "failed"]
        );
    }

    #[test]
    fn reactions_system_and_the_dashboard_sample_get_no_job() {
        assert!(warrants_job("text", "text", "1"));
        assert!(warrants_job("image", "image", "1"));
        assert!(!warrants_job("reaction", "reaction", "1"));
        assert!(!warrants_job("text", "edit", "1"));
        assert!(!warrants_job("system", "system", "1"));
        assert!(!warrants_job(
            "text",
            "text",
            DASHBOARD_TEST_PHONE_NUMBER_ID
        ));
    }

    #[test]
    fn sender_key_prefers_user_id() {
        assert_eq!(sender_key("", "US.1", "1555"), "US.1");
        assert_eq!(sender_key("", "", "1555"), "1555");
        assert_eq!(sender_key("k", "US.1", "1555"), "k");
    }

    #[test]
    fn db_text_replaces_nul_only() {
        assert_eq!(db_text("a\0b"), "a\u{FFFD}b");
        assert_eq!(db_text("é"), "é");
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(&encode_page_token(42)), Some(42));
        for bad in ["", "42", "m1zz", "m1000000000000000g", "m10000000000000000"] {
            assert_eq!(decode_page_token(bad), None, "{bad}");
        }
    }
}
