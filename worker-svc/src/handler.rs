//! One job: decide whether the message warrants a reply, then send it.

use std::time::Duration;

use proto::ingest::InboundMessage;
use proto::ingest::inbound_message::Content;
use proto::jobs::{Ack, Nack};
use rand::Rng;

use crate::config::Settings;
use crate::whatsapp::{GraphError, PAIR_RATE_LIMIT_CODE, Recipient};

/// What to do with an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer `to` on `phone_number_id`, quoting `wamid`.
    Reply {
        /// Business number to send from.
        phone_number_id: String,
        /// Customer to answer.
        to: Recipient,
        /// Inbound message to quote.
        wamid: String,
    },
    /// No reply, for this reason (recorded as the job's outcome).
    Skip(&'static str),
}

/// Pure reply policy: no reply for reactions, system messages, revokes and edits,
/// numbers not configured, or messages older than the reply window.
pub fn decide(msg: &InboundMessage, settings: &Settings, now_unix: i64) -> Decision {
    match msg.content {
        Some(Content::Reaction(_)) => return Decision::Skip("reaction"),
        Some(Content::System(_)) => return Decision::Skip("system message"),
        Some(Content::Revoke(_) | Content::Edit(_)) => return Decision::Skip("revoke or edit"),
        _ => {}
    }
    let business = msg.business.clone().unwrap_or_default();
    if business.phone_number_id.is_empty() {
        return Decision::Skip("no business phone number id");
    }
    if !settings.phone_number_ids.is_empty()
        && !settings
            .phone_number_ids
            .contains(&business.phone_number_id)
    {
        return Decision::Skip("phone number not configured");
    }
    let window = i64::try_from(settings.reply_window.as_secs()).unwrap_or(i64::MAX);
    if msg.timestamp > 0 && now_unix.saturating_sub(msg.timestamp) > window {
        return Decision::Skip("older than the reply window");
    }
    let sender = msg.sender.clone().unwrap_or_default();
    let to = if !sender.wa_id.is_empty() {
        Recipient::WaId(sender.wa_id)
    } else if !sender.user_id.is_empty() {
        Recipient::UserId(sender.user_id)
    } else {
        return Decision::Skip("no sender to answer");
    };
    Decision::Reply {
        phone_number_id: business.phone_number_id,
        to,
        wamid: msg.wamid.clone(),
    }
}

/// How a processed job is reported back.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: sent, skipped, dry-run or permanently failed.
    Ack(Ack),
    /// Retry later.
    Nack(Nack),
}

/// Delay before attempt `attempt + 1`: exponential from `base` (2 s by default),
/// capped at 5 min, with jitter (50–100 %); at least 6 s after a pair rate limit.
pub fn retry_delay(attempt: u32, error: &GraphError, base: Duration) -> Duration {
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    let exp = base.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(300_000);
    let jittered = rand::rng().random_range(capped / 2..=capped);
    let floor = if error.code() == PAIR_RATE_LIMIT_CODE {
        6_000
    } else {
        0
    };
    Duration::from_millis(jittered.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ingest::{Business, Reaction, Sender, Text};

    fn settings() -> Settings {
        Settings::from_lookup(|_| None).unwrap()
    }

    fn text(now: i64) -> InboundMessage {
        InboundMessage {
            wamid: "wamid.A".into(),
            business: Some(Business {
                phone_number_id: "106540352242922".into(),
                ..Default::default()
            }),
            sender: Some(Sender {
                key: "16505551234".into(),
                wa_id: "16505551234".into(),
                ..Default::default()
            }),
            timestamp: now - 60,
            r#type: "text".into(),
            content: Some(Content::Text(Text { body: "hi".into() })),
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_text_gets_a_reply_to_its_sender() {
        let d = decide(&text(1_800_000_000), &settings(), 1_800_000_000);
        assert_eq!(
            d,
            Decision::Reply {
                phone_number_id: "106540352242922".into(),
                to: Recipient::WaId("16505551234".into()),
                wamid: "wamid.A".into()
            }
        );
    }

    #[test]
    fn reactions_old_messages_and_unconfigured_numbers_get_none() {
        let now = 1_800_000_000;
        let mut reaction = text(now);
        reaction.content = Some(Content::Reaction(Reaction::default()));
        assert_eq!(
            decide(&reaction, &settings(), now),
            Decision::Skip("reaction")
        );

        let old = InboundMessage {
            timestamp: now - 25 * 3600,
            ..text(now)
        };
        assert_eq!(
            decide(&old, &settings(), now),
            Decision::Skip("older than the reply window")
        );

        let mut only_other = settings();
        only_other.phone_number_ids = vec!["999".into()];
        assert_eq!(
            decide(&text(now), &only_other, now),
            Decision::Skip("phone number not configured")
        );
    }

    #[test]
    fn a_sender_without_wa_id_is_answered_by_business_scoped_id() {
        let now = 1_800_000_000;
        let mut msg = text(now);
        msg.sender = Some(Sender {
            key: "US.1".into(),
            user_id: "US.1".into(),
            ..Default::default()
        });
        match decide(&msg, &settings(), now) {
            Decision::Reply { to, .. } => assert_eq!(to, Recipient::UserId("US.1".into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_delays_grow_start_small_and_are_capped() {
        const B: Duration = Duration::from_secs(2);
        let e = GraphError::Transport("x".into());
        assert!(retry_delay(1, &e, B) <= Duration::from_secs(2));
        assert!(retry_delay(1, &e, B) >= Duration::from_secs(1));
        assert!(retry_delay(30, &e, B) <= Duration::from_secs(300));
        let pair = GraphError::Api {
            code: PAIR_RATE_LIMIT_CODE,
            http_status: 400,
            message: String::new(),
        };
        assert!(retry_delay(1, &pair, B) >= Duration::from_secs(6));
    }
}
