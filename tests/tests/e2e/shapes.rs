//! Every shape Meta sends, through the real gateway and ingest-svc on PostgreSQL:
//! exact counts per fixture (and none added by a redelivery), typed fields read
//! back over gRPC, a generated batch of mixed items, out-of-order statuses, HMAC
//! over Meta's escapes, lone surrogates and NULs.

use std::collections::BTreeMap;

use e2e_tests::{TestSystem, fixture, sign};
use futures::future::join_all;
use proto::ingest::inbound_message::Content;
use proto::ingest::ingest_service_client::IngestServiceClient;
use proto::ingest::interactive::ReplyOneOf;
use proto::ingest::{GetMessageRequest, GetStatsRequest, InboundMessage, MessageRecord};
use proto::prost_types::value::Kind;
use proto::tonic::transport::Channel;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::support::status_webhook;
use serde_json::{Value, json};

// ------------------------------------------------------------------ helpers

/// What one system has recorded, as GetStats and the jobs table say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) webhook_events: i64,
    pub(crate) messages: i64,
    pub(crate) statuses: i64,
    pub(crate) webhook_errors: i64,
    pub(crate) other_events: i64,
    pub(crate) quarantined: i64,
    pub(crate) jobs: i64,
}

impl Counts {
    /// `self - before`, field by field.
    pub(crate) fn minus(self, before: Counts) -> Counts {
        Counts {
            webhook_events: self.webhook_events - before.webhook_events,
            messages: self.messages - before.messages,
            statuses: self.statuses - before.statuses,
            webhook_errors: self.webhook_errors - before.webhook_errors,
            other_events: self.other_events - before.other_events,
            quarantined: self.quarantined - before.quarantined,
            jobs: self.jobs - before.jobs,
        }
    }
}

/// A gRPC client and a database connection held for many reads (one system).
pub(crate) struct Probe {
    pub(crate) client: IngestServiceClient<Channel>,
    pub(crate) conn: DatabaseConnection,
}

impl Probe {
    pub(crate) async fn new(sys: &TestSystem) -> Self {
        Self {
            client: sys.ingest.client().await,
            conn: sys.ingest.db.connect().await,
        }
    }

    /// GetStats counters plus `SELECT COUNT(*) FROM jobs`.
    pub(crate) async fn counts(&self) -> Counts {
        let s = self
            .client
            .clone()
            .get_stats(GetStatsRequest {})
            .await
            .expect("GetStats")
            .into_inner();
        let n = |v: u64| i64::try_from(v).expect("a small counter");
        Counts {
            webhook_events: n(s.webhook_events),
            messages: n(s.messages),
            statuses: n(s.statuses),
            webhook_errors: n(s.webhook_errors),
            other_events: n(s.other_events),
            quarantined: n(s.quarantined),
            jobs: self.count("SELECT COUNT(*) FROM jobs").await,
        }
    }

    /// A one-integer query.
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        let row = self
            .conn
            .query_one_raw(Statement::from_string(
                self.conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("count query")
            .expect("one row");
        row.try_get_by_index(0).expect("integer column")
    }

    /// The raw body of the newest webhook event.
    pub(crate) async fn last_raw_body(&self) -> Vec<u8> {
        let row = self
            .conn
            .query_one_raw(Statement::from_string(
                self.conn.get_database_backend(),
                "SELECT raw_body FROM webhook_events ORDER BY id DESC LIMIT 1",
            ))
            .await
            .expect("raw body query")
            .expect("an event");
        row.try_get_by_index(0).expect("bytes column")
    }

    /// `msg_type` of the messages a webhook event created, sorted.
    async fn types_of_last_event(&self) -> Vec<String> {
        let rows = self
            .conn
            .query_all_raw(Statement::from_string(
                self.conn.get_database_backend(),
                "SELECT msg_type FROM messages \
                 WHERE event_id = (SELECT MAX(id) FROM webhook_events) ORDER BY msg_type",
            ))
            .await
            .expect("types query");
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).expect("text column"))
            .collect()
    }
}

/// GetMessage, keeping the error (NotFound is an answer here).
async fn try_message(sys: &TestSystem, wamid: &str) -> Result<MessageRecord, tonic::Status> {
    sys.ingest
        .client()
        .await
        .get_message(GetMessageRequest {
            wamid: wamid.to_owned(),
        })
        .await
        .map(|r| r.into_inner().message.expect("a record"))
}

/// `fixtures/webhooks/expected.json`, by file name.
fn expected() -> BTreeMap<String, Value> {
    let bytes = fixture("expected.json");
    serde_json::from_slice(&bytes).expect("expected.json")
}

fn want(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("expected.json lacks {key}"))
}

/// Posts every fixture of a group to one system, one after the other, and checks
/// the HTTP answer and what each POST added; then posts it again and checks a
/// redelivery adds nothing but its webhook event.
async fn run_group(group: Vec<(String, Value)>) {
    let sys = TestSystem::start().await;
    let probe = Probe::new(&sys).await;
    for (name, want_v) in group {
        let body = fixture(&name);
        let http = want(&want_v, "http");
        let accepted = http == 200;
        for delivery in ["first", "redelivery"] {
            let before = probe.counts().await;
            let res = sys.gateway.post_signed(&body).await;
            assert_eq!(
                i64::from(res.status().as_u16()),
                http,
                "{name} ({delivery})"
            );
            let added = probe.counts().await.minus(before);
            let fresh = delivery == "first" && accepted;
            let n = |key: &str| if fresh { want(&want_v, key) } else { 0 };
            let expected = Counts {
                webhook_events: i64::from(accepted),
                messages: n("messages"),
                statuses: n("statuses"),
                webhook_errors: n("webhook_errors"),
                other_events: n("other_events"),
                quarantined: n("quarantined"),
                jobs: n("jobs"),
            };
            assert_eq!(added, expected, "{name} ({delivery})");
            if fresh {
                assert_eq!(probe.last_raw_body().await, body, "{name}: raw bytes");
                let mut types: Vec<String> = want_v["types"]
                    .as_array()
                    .expect("types")
                    .iter()
                    .map(|t| t.as_str().expect("type").to_owned())
                    .collect();
                types.sort();
                assert_eq!(probe.types_of_last_event().await, types, "{name}: types");
            }
        }
    }
}

/// The first `messages[]` element of a fixture (plain JSON fixtures only).
fn first_message(name: &str) -> Value {
    let v: Value = serde_json::from_slice(&fixture(name)).expect("fixture is JSON");
    v["entry"][0]["changes"][0]["value"]["messages"][0].clone()
}

/// Starts a system and posts the named fixtures concurrently; all must be stored.
async fn system_with(names: &[&str]) -> TestSystem {
    let sys = TestSystem::start().await;
    let answers = join_all(names.iter().map(|n| {
        let sys = &sys;
        async move { (n, sys.gateway.post_signed(&fixture(n)).await.status()) }
    }))
    .await;
    for (name, status) in answers {
        assert_eq!(status, 200, "{name}");
    }
    sys
}

/// The record of a fixture's first message; checks its job against expected.json.
async fn record(sys: &TestSystem, name: &str) -> (MessageRecord, InboundMessage, Value) {
    let sent = first_message(name);
    let wamid = sent["id"].as_str().expect("id");
    let record = sys.message(wamid).await;
    let jobs = want(&expected()[name], "jobs");
    assert_eq!(record.job.is_some(), jobs > 0, "{name}: job");
    assert_eq!(record.direction, "inbound", "{name}");
    let msg = record.message.clone().expect("typed message");
    assert_eq!(msg.wamid, wamid, "{name}");
    assert_eq!(msg.r#type, sent["type"].as_str().unwrap(), "{name}");
    (record, msg, sent)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn struct_str(st: &proto::prost_types::Struct, key: &str) -> String {
    match st.fields.get(key).and_then(|v| v.kind.clone()) {
        Some(Kind::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn every_fixture_gets_its_http_answer_and_exact_counts_and_a_redelivery_adds_nothing() {
    let all: Vec<(String, Value)> = expected().into_iter().collect();
    assert!(all.len() >= 50, "{} fixtures", all.len());
    // Four systems side by side; the fixtures of one system run in turn so that
    // every POST's additions can be measured exactly.
    let mut groups: Vec<Vec<(String, Value)>> = vec![Vec::new(); 4];
    for (i, item) in all.into_iter().enumerate() {
        groups[i % 4].push(item);
    }

    join_all(groups.into_iter().map(run_group)).await;
}

#[tokio::test]
async fn media_location_and_contact_cards_read_back_typed() {
    let names = [
        "image.json",
        "audio_voice.json",
        "video.json",
        "document.json",
        "sticker.json",
        "location_named.json",
        "location_pin.json",
        "contacts.json",
    ];
    let sys = system_with(&names).await;

    for name in [
        "image.json",
        "audio_voice.json",
        "video.json",
        "document.json",
        "sticker.json",
    ] {
        let (_, msg, sent) = record(&sys, name).await;
        let key = s(&sent["type"]);
        let media = match msg.content {
            Some(
                Content::Image(m)
                | Content::Audio(m)
                | Content::Video(m)
                | Content::Document(m)
                | Content::Sticker(m),
            ) => m,
            other => panic!("{name}: {other:?}"),
        };
        let j = &sent[key];
        assert_eq!(media.id, s(&j["id"]), "{name}");
        assert_eq!(media.mime_type, s(&j["mime_type"]), "{name}");
        assert_eq!(media.sha256, s(&j["sha256"]), "{name}");
        assert_eq!(media.url, s(&j["url"]), "{name}");
        assert_eq!(media.caption, j["caption"].as_str().unwrap_or(""), "{name}");
        assert_eq!(
            media.filename,
            j["filename"].as_str().unwrap_or(""),
            "{name}"
        );
        assert_eq!(media.voice, j["voice"] == true, "{name}");
        assert_eq!(media.animated, j["animated"] == true, "{name}");
    }
    let (_, msg, _) = record(&sys, "document.json").await;
    assert!(
        matches!(msg.content, Some(Content::Document(d)) if d.filename == "invoice-2025-11-0042.pdf")
    );
    let (_, msg, _) = record(&sys, "audio_voice.json").await;
    assert!(
        matches!(msg.content, Some(Content::Audio(a)) if a.voice && a.mime_type == "audio/ogg; codecs=opus")
    );
    let (_, msg, _) = record(&sys, "sticker.json").await;
    assert!(matches!(msg.content, Some(Content::Sticker(st)) if st.animated));

    let (_, msg, _) = record(&sys, "location_named.json").await;
    let Some(Content::Location(l)) = msg.content else {
        panic!("location")
    };
    assert_eq!((l.latitude, l.longitude), (37.485_215_2, -122.148_341_9));
    assert_eq!(l.name, "Meta Headquarters");
    assert_eq!(l.address, "1 Hacker Way, Menlo Park, CA 94025");
    assert_eq!(l.url, "https://www.example.com/places/menlo-park-hq");
    let (_, msg, _) = record(&sys, "location_pin.json").await;
    let Some(Content::Location(l)) = msg.content else {
        panic!("location")
    };
    assert_eq!((l.latitude, l.longitude), (37.484_748_3, -122.147_307_8));
    assert!(l.name.is_empty() && l.address.is_empty());

    let (_, msg, _) = record(&sys, "contacts.json").await;
    let Some(Content::Contacts(cards)) = msg.content else {
        panic!("contacts")
    };
    let card = &cards.contacts[0];
    let name = card.name.clone().expect("name");
    assert_eq!(
        (
            name.formatted_name.as_str(),
            name.first_name.as_str(),
            name.last_name.as_str()
        ),
        ("Rafael Ortiz", "Rafael", "Ortiz")
    );
    assert_eq!(card.phones.len(), 2);
    assert_eq!(
        (card.phones[0].phone.as_str(), card.phones[0].wa_id.as_str()),
        ("+1 (650) 555-0142", "16505550142")
    );
    assert_eq!(card.emails[0].email, "rafael.ortiz@example.com");
    assert_eq!(card.addresses[0].city, "Menlo Park");
    assert_eq!(
        card.org.clone().expect("org").company,
        "Ortiz Event Planning"
    );
    assert_eq!(card.urls[0].url, "https://ortiz-events.example.com");
    assert_eq!(card.birthday, "1988-04-17");
    // The sender comes from value.contacts, not from the shared card.
    assert_eq!(msg.sender.expect("sender").name, "Ana Souza");
}

#[tokio::test]
async fn replies_buttons_reactions_and_orders_read_back_typed() {
    let names = [
        "interactive_button_reply.json",
        "interactive_list_reply.json",
        "interactive_nfm_reply.json",
        "interactive_missing_object.json",
        "button.json",
        "reaction.json",
        "reaction_removed.json",
        "order.json",
    ];
    let sys = system_with(&names).await;

    let (_, msg, sent) = record(&sys, "interactive_button_reply.json").await;
    let Some(Content::Interactive(i)) = msg.content else {
        panic!("interactive")
    };
    assert_eq!(i.r#type, "button_reply");
    assert!(
        matches!(i.reply, Some(ReplyOneOf::ButtonReply(ref r)) if r.id == "slot_sat_1400" && r.title == "Sat 2:00 PM"),
        "{:?}",
        i.reply
    );
    assert_eq!(
        msg.context.expect("context").message_id,
        s(&sent["context"]["id"])
    );

    let (_, msg, _) = record(&sys, "interactive_list_reply.json").await;
    let Some(Content::Interactive(i)) = msg.content else {
        panic!("interactive")
    };
    let Some(ReplyOneOf::ListReply(r)) = i.reply else {
        panic!("list reply: {:?}", i.reply)
    };
    assert_eq!(
        (r.id.as_str(), r.title.as_str(), r.description.as_str()),
        (
            "menu_veg_tasting",
            "Vegetarian tasting",
            "7 courses, seasonal vegetables, $68 per person"
        )
    );

    let (_, msg, _) = record(&sys, "interactive_nfm_reply.json").await;
    let Some(Content::Interactive(i)) = msg.content else {
        panic!("interactive")
    };
    let Some(ReplyOneOf::NfmReply(n)) = i.reply else {
        panic!("nfm reply: {:?}", i.reply)
    };
    assert_eq!((n.name.as_str(), n.body.as_str()), ("flow", "Sent"));
    let response = n.response.expect("response_json parsed into a Struct");
    assert_eq!(
        struct_str(&response, "flow_token"),
        "bk-7f3a91c2-2025-12-03"
    );
    assert_eq!(struct_str(&response, "screen_0_Name_0"), "Ana");
    assert_eq!(response.fields.len(), 4);
    let as_sent: Value = serde_json::from_str(&n.response_json).expect("kept as JSON text");
    assert_eq!(as_sent["screen_0_Guests_1"], "4");

    let (_, msg, _) = record(&sys, "interactive_missing_object.json").await;
    let Some(Content::Interactive(i)) = msg.content else {
        panic!("interactive")
    };
    assert!(i.r#type.is_empty() && i.reply.is_none());

    let (_, msg, sent) = record(&sys, "button.json").await;
    assert!(
        matches!(msg.content, Some(Content::Button(ref b)) if b.payload == "CONFIRM_BOOKING_7421" && b.text == "Confirm"),
        "{:?}",
        msg.content
    );
    let context = msg.context.expect("context");
    assert_eq!(context.message_id, s(&sent["context"]["id"]));
    assert_eq!(context.from, "15550783881");

    let (_, msg, sent) = record(&sys, "reaction.json").await;
    let Some(Content::Reaction(r)) = msg.content else {
        panic!("reaction")
    };
    assert_eq!(r.emoji, "\u{1F44D}");
    assert!(!r.removed);
    assert_eq!(r.message_id, s(&sent["reaction"]["message_id"]));
    let (_, msg, _) = record(&sys, "reaction_removed.json").await;
    let Some(Content::Reaction(r)) = msg.content else {
        panic!("reaction")
    };
    assert!(r.removed && r.emoji.is_empty());

    let (_, msg, _) = record(&sys, "order.json").await;
    let Some(Content::Order(o)) = msg.content else {
        panic!("order")
    };
    assert_eq!(o.catalog_id, "821734516490223");
    assert_eq!(o.text, "Pick-up at 6pm please");
    let items: Vec<_> = o
        .product_items
        .iter()
        .map(|p| {
            (
                p.product_retailer_id.as_str(),
                p.quantity,
                p.item_price,
                p.currency.as_str(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("gift-box-large", 2.0, 34.5, "USD"),
            ("macaron-6pack", 1.0, 12.99, "USD")
        ]
    );
}

#[tokio::test]
async fn system_context_referral_identity_errors_edits_and_future_types_read_back_typed() {
    let names = [
        "system_changed_number.json",
        "referral.json",
        "text_reply.json",
        "text_forwarded.json",
        "text_frequently_forwarded.json",
        "text_product_inquiry.json",
        "text_bsuid.json",
        "unsupported.json",
        "unknown_legacy.json",
        "edit.json",
        "revoke.json",
        "future_type.json",
        "request_welcome.json",
        "dashboard_test.json",
    ];
    let sys = system_with(&names).await;

    let (_, msg, _) = record(&sys, "system_changed_number.json").await;
    let Some(Content::System(sy)) = msg.content else {
        panic!("system")
    };
    assert_eq!(
        (sy.r#type.as_str(), sy.wa_id.as_str()),
        ("user_changed_number", "16505550911")
    );
    assert_eq!(msg.sender.expect("sender").wa_id, "16505550187");

    let (_, msg, sent) = record(&sys, "referral.json").await;
    let r = msg.referral.expect("referral");
    let j = &sent["referral"];
    for (got, key) in [
        (&r.source_url, "source_url"),
        (&r.source_id, "source_id"),
        (&r.source_type, "source_type"),
        (&r.body, "body"),
        (&r.headline, "headline"),
        (&r.media_type, "media_type"),
        (&r.video_url, "video_url"),
        (&r.thumbnail_url, "thumbnail_url"),
        (&r.ctwa_clid, "ctwa_clid"),
    ] {
        assert_eq!(got, s(&j[key]), "referral.{key}");
    }
    assert_eq!(r.welcome_message_text, s(&j["welcome_message"]["text"]));
    assert!(r.image_url.is_empty());
    assert!(matches!(msg.content, Some(Content::Text(t)) if t.body == s(&sent["text"]["body"])));

    let (_, msg, sent) = record(&sys, "text_reply.json").await;
    let c = msg.context.expect("context");
    assert_eq!(c.message_id, s(&sent["context"]["id"]));
    assert_eq!(c.from, "15550783881");
    assert!(!c.forwarded && !c.frequently_forwarded);
    let (_, msg, _) = record(&sys, "text_forwarded.json").await;
    let c = msg.context.expect("context");
    assert!(c.forwarded && !c.frequently_forwarded && c.message_id.is_empty());
    let (_, msg, _) = record(&sys, "text_frequently_forwarded.json").await;
    let c = msg.context.expect("context");
    assert!(c.frequently_forwarded && !c.forwarded);
    let (_, msg, _) = record(&sys, "text_product_inquiry.json").await;
    let p = msg
        .context
        .expect("context")
        .referred_product
        .expect("referred_product");
    assert_eq!(
        (p.catalog_id.as_str(), p.product_retailer_id.as_str()),
        ("821734516490223", "gift-box-large")
    );

    let (_, msg, _) = record(&sys, "text_bsuid.json").await;
    let sender = msg.sender.expect("sender");
    assert_eq!(sender.user_id, "US.13491208655302741918");
    assert_eq!(
        sender.key, sender.user_id,
        "the BSUID is the conversation key"
    );
    assert_eq!(sender.username, "dana.bakes");
    assert!(sender.wa_id.is_empty());

    let (_, msg, _) = record(&sys, "unsupported.json").await;
    assert!(
        matches!(msg.content, Some(Content::Unsupported(ref u)) if u.r#type == "poll_creation"),
        "{:?}",
        msg.content
    );
    assert_eq!(msg.errors[0].code, 131_051);
    assert_eq!(
        msg.errors[0].details,
        "Message type is currently not supported."
    );
    let (_, msg, _) = record(&sys, "unknown_legacy.json").await;
    assert!(matches!(msg.content, Some(Content::Unknown(_))));
    assert_eq!(msg.errors[0].code, 131_051);
    assert_eq!(msg.errors[0].title, "Unsupported message type");

    let (_, msg, sent) = record(&sys, "edit.json").await;
    let Some(Content::Edit(e)) = msg.content else {
        panic!("edit")
    };
    assert_eq!(
        e.original_message_id,
        s(&sent["edit"]["original_message_id"])
    );
    let nested = e.message.expect("the edited message");
    assert!(
        matches!(nested.content, Some(Content::Text(ref t)) if t.body == "Sorry, make that 5 people, not 4"),
        "{:?}",
        nested.content
    );
    let (_, msg, sent) = record(&sys, "revoke.json").await;
    assert!(
        matches!(msg.content, Some(Content::Revoke(ref r)) if r.original_message_id == s(&sent["revoke"]["original_message_id"]))
    );

    let (_, msg, _) = record(&sys, "future_type.json").await;
    assert!(
        matches!(msg.content, Some(Content::Other(ref o)) if o.r#type == "hologram"),
        "{:?}",
        msg.content
    );
    let raw: Value = serde_json::from_str(&msg.raw_json).expect("raw_json kept");
    assert_eq!(raw["hologram"]["mime_type"], "model/gltf-binary");

    let (_, msg, _) = record(&sys, "request_welcome.json").await;
    assert!(matches!(msg.content, Some(Content::RequestWelcome(_))));

    // The dashboard "Test" sample: recorded, never replied to.
    let (rec, msg, _) = record(&sys, "dashboard_test.json").await;
    assert!(rec.job.is_none());
    assert_eq!(msg.business.expect("business").phone_number_id, "123456123");
    assert!(matches!(msg.content, Some(Content::Text(t)) if t.body == "this is a text message"));
}

/// Message types of the generated batch, in turn.
const BATCH_TYPES: [&str; 6] = ["text", "image", "location", "reaction", "button", "order"];

/// One generated message: its wamid, type and serial number.
struct Generated {
    wamid: String,
    r#type: &'static str,
    n: usize,
    phone_number_id: String,
    sender_name: String,
}

fn generated_message(n: usize, wamid: &str, from: &str) -> (Value, &'static str) {
    let ty = BATCH_TYPES[n % BATCH_TYPES.len()];
    let payload = match ty {
        "text" => json!({"text": {"body": format!("message {n} caf\u{e9} \u{1F600}")}}),
        "image" => json!({"image": {"id": format!("media{n}"), "mime_type": "image/jpeg",
            "sha256": "abc", "caption": format!("caption {n}")}}),
        "location" => json!({"location": {"latitude": n as f64 + 0.5, "longitude": -2.25,
            "name": format!("place {n}")}}),
        "reaction" => json!({"reaction": {"message_id": "wamid.OUT", "emoji": "\u{1F44D}"}}),
        "button" => json!({"button": {"payload": format!("P{n}"), "text": "Yes"},
            "context": {"from": "15550783881", "id": "wamid.TEMPLATE"}}),
        _ => json!({"order": {"catalog_id": "C1", "product_items": [
            {"product_retailer_id": "sku", "quantity": n + 1, "item_price": 9.99, "currency": "EUR"}]}}),
    };
    let mut m = json!({"from": from, "id": wamid, "timestamp": "1764770000", "type": ty});
    if let (Some(m), Some(p)) = (m.as_object_mut(), payload.as_object()) {
        m.extend(p.clone());
    }
    (m, ty)
}

/// 4 entries × (messages, template update, messages) changes; each messages change
/// has 15 messages from 3 senders, 5 statuses, 1 webhook error and 1 message
/// without an id: 120 messages, 40 statuses, 8 errors, 4 other events, 8
/// quarantined items.
fn generated_batch() -> (Vec<u8>, Vec<Generated>) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut messages = Vec::new();
    let mut n = 0;
    let mut entries = Vec::new();
    for e in 0..4 {
        let mut changes = Vec::new();
        for c in 0..2 {
            let pnid = format!("1065403522429{e}{c}");
            let contacts: Vec<Value> = (0..3)
                .map(|k| json!({"profile": {"name": format!("Sender {e}{c}{k}")}, "wa_id": format!("1650555{e}{c}{k}0")}))
                .collect();
            let mut items = Vec::new();
            for i in 0..15 {
                let k = i % 3;
                let wamid = format!("wamid.GEN.{tag}.{e}.{c}.{i}");
                let (m, ty) = generated_message(n, &wamid, &format!("1650555{e}{c}{k}0"));
                items.push(m);
                messages.push(Generated {
                    wamid,
                    r#type: ty,
                    n,
                    phone_number_id: pnid.clone(),
                    sender_name: format!("Sender {e}{c}{k}"),
                });
                n += 1;
            }
            // No id: quarantined at messages[15].
            items.push(json!({"from": "16505550000", "timestamp": "1", "type": "text", "text": {"body": "x"}}));
            let statuses: Vec<Value> = (0..5)
                .map(|k| {
                    json!({"id": format!("wamid.GENOUT.{tag}.{e}.{c}.{k}"), "status": "delivered",
                    "timestamp": "1764770001", "recipient_id": "16505550000"})
                })
                .collect();
            changes.push(json!({"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": format!("155507838{e}{c}"), "phone_number_id": pnid},
                "contacts": contacts,
                "messages": items,
                "statuses": statuses,
                "errors": [{"code": 130429, "title": "Rate limit hit", "message": "Rate limit hit",
                            "error_data": {"details": format!("entry {e} change {c}")}}]
            }}));
            if c == 0 {
                changes.push(json!({"field": "message_template_status_update", "value": {
                    "event": "APPROVED", "message_template_id": 1000 + e,
                    "message_template_name": format!("tpl_{e}"), "message_template_language": "en_US",
                    "reason": "NONE"}}));
            }
        }
        entries.push(
            json!({"id": format!("10229012934039{e}"), "time": 1764770000, "changes": changes}),
        );
    }
    let body = json!({"object": "whatsapp_business_account", "entry": entries});
    (serde_json::to_vec(&body).expect("serialises"), messages)
}

#[tokio::test]
async fn a_generated_batch_of_180_items_is_recorded_exactly_once_and_a_redelivery_changes_nothing()
{
    let sys = TestSystem::start().await;
    let probe = Probe::new(&sys).await;
    let (body, messages) = generated_batch();
    let reactions = messages.iter().filter(|m| m.r#type == "reaction").count();

    let first = sys.gateway.post_signed(&body).await;
    assert_eq!(first.status(), 200);
    let after_first = probe.counts().await;
    let second = sys.gateway.post_signed(&body).await;
    assert_eq!(second.status(), 200);
    let after_second = probe.counts().await;

    let expected = Counts {
        webhook_events: 1,
        messages: 120,
        statuses: 40,
        webhook_errors: 8,
        other_events: 4,
        quarantined: 8,
        jobs: i64::try_from(120 - reactions).unwrap(),
    };
    assert_eq!(after_first, expected);
    assert_eq!(
        after_second,
        Counts {
            webhook_events: 2,
            ..expected
        },
        "a redelivery adds only its webhook event"
    );
    assert_eq!(
        probe
            .count(
                "SELECT COUNT(*) FROM quarantined_items \
                 WHERE path = 'entry[3].changes[2].value.messages[15]'"
            )
            .await,
        1
    );
    assert_eq!(
        probe
            .count("SELECT COUNT(DISTINCT phone_number_id) FROM messages")
            .await,
        8
    );

    // Every message is there; every seventh is checked field by field.
    let records = join_all(messages.iter().map(|m| try_message(&sys, &m.wamid))).await;
    for (m, record) in messages.iter().zip(records) {
        let record = record.unwrap_or_else(|e| panic!("{}: {e}", m.wamid));
        let msg = record.message.expect("typed");
        assert_eq!(msg.r#type, m.r#type, "{}", m.wamid);
        if m.n % 7 != 0 {
            continue;
        }
        assert_eq!(record.job.is_some(), m.r#type != "reaction", "{}", m.wamid);
        assert_eq!(
            msg.business.expect("business").phone_number_id,
            m.phone_number_id
        );
        assert_eq!(msg.sender.expect("sender").name, m.sender_name);
        let n = m.n;
        match msg.content {
            Some(Content::Text(t)) => {
                assert_eq!(t.body, format!("message {n} caf\u{e9} \u{1F600}"))
            }
            Some(Content::Image(i)) => {
                assert_eq!(
                    (i.id, i.caption),
                    (format!("media{n}"), format!("caption {n}"))
                );
            }
            Some(Content::Location(l)) => assert_eq!(l.latitude, n as f64 + 0.5),
            Some(Content::Reaction(r)) => assert_eq!(r.emoji, "\u{1F44D}"),
            Some(Content::Button(b)) => assert_eq!(b.payload, format!("P{n}")),
            Some(Content::Order(o)) => assert_eq!(o.product_items[0].quantity, (n + 1) as f64),
            other => panic!("{}: {other:?}", m.wamid),
        }
    }
}

/// An outbound reply row, as the job stream records one after sending.
async fn insert_outbound(sys: &TestSystem, wamid: &str) {
    use ingest_svc::db::entities::message;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let conn = sys.ingest.db.connect().await;
    message::ActiveModel {
        wamid: Set(wamid.to_owned()),
        direction: Set(message::OUTBOUND.to_owned()),
        event_id: Set(None),
        phone_number_id: Set("106540352242922".to_owned()),
        display_phone_number: Set("15550783881".to_owned()),
        sender_key: Set("16505551234".to_owned()),
        wa_id: Set("16505551234".to_owned()),
        user_id: Set(String::new()),
        contact_name: Set(String::new()),
        msg_type: Set("text".to_owned()),
        text_body: Set(Some("Thanks, we will get back to you.".to_owned())),
        timestamp: Set(1_764_770_000),
        context_message_id: Set(None),
        in_reply_to: Set(None),
        job_id: Set(None),
        content: Set(Vec::new()),
        raw_json: Set("{}".to_owned()),
        request_id: Set("e2e".to_owned()),
        created_at: Set(1),
        ..Default::default()
    }
    .insert(&conn)
    .await
    .expect("insert the outbound message");
    conn.close().await.ok();
}

async fn post_statuses(sys: &TestSystem, wamid: &str, sequence: &[(&str, u32)]) {
    // Three separate POSTs, in the given (wrong) order.
    for (status, ts) in sequence {
        let res = sys
            .gateway
            .post_signed(&status_webhook(wamid, status, *ts, ""))
            .await;
        assert_eq!(res.status(), 200, "{wamid} {status}");
    }
}

/// GetMessage serves rows of the `messages` table only: a wamid known from its
/// statuses alone answers NotFound. The outbound messages are therefore recorded
/// first, directly in the database (what the job stream does once a reply is sent),
/// and the statuses then arrive through the real gateway.
#[tokio::test]
async fn statuses_out_of_order_never_downgrade_and_failed_stays_failed() {
    let sys = TestSystem::start().await;
    let (read_last, failed_first, orphan) = (
        "wamid.E2E.OUT.READ",
        "wamid.E2E.OUT.FAILED",
        "wamid.E2E.OUT.ORPHAN",
    );
    insert_outbound(&sys, read_last).await;
    insert_outbound(&sys, failed_first).await;

    post_statuses(
        &sys,
        read_last,
        &[("read", 30), ("delivered", 20), ("sent", 10)],
    )
    .await;
    post_statuses(&sys, failed_first, &[("failed", 10), ("read", 20)]).await;
    post_statuses(&sys, orphan, &[("read", 30), ("delivered", 20)]).await;

    let out = sys.message(read_last).await;
    assert_eq!(out.direction, "outbound");
    assert_eq!(out.current_status, "read");
    let order: Vec<_> = out.statuses.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(order, ["sent", "delivered", "read"]);

    let out = sys.message(failed_first).await;
    assert_eq!(out.current_status, "failed");
    let failed = out
        .statuses
        .iter()
        .find(|s| s.status == "failed")
        .expect("failed status");
    assert_eq!(failed.errors[0].code, 131_026);
    assert_eq!(failed.errors[0].details, "Unable to deliver.");

    let missing = try_message(&sys, orphan).await.expect_err("no message row");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let db = &sys.ingest.db;
    for (wamid, n) in [(read_last, 3), (failed_first, 2), (orphan, 2)] {
        let sql = format!("SELECT COUNT(*) FROM statuses WHERE wamid = '{wamid}'");
        assert_eq!(db.count(&sql).await, n, "{wamid}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM jobs").await, 0);
}

#[tokio::test]
async fn meta_escapes_verify_over_the_raw_bytes_and_a_re_serialised_body_is_refused() {
    let sys = TestSystem::start().await;
    let raw = fixture("text_non_ascii.json");
    for escape in [&br"\u00e9"[..], br"\/", br"\u0040"] {
        assert!(raw.windows(escape.len()).any(|w| w == escape));
    }
    let decoded: Value = serde_json::from_slice(&raw).expect("JSON");
    let reserialised = serde_json::to_vec(&decoded).expect("serialises");
    let text = String::from_utf8(reserialised.clone()).expect("UTF-8");
    assert!(text.contains("Caf\u{e9}") && text.contains("https://") && text.contains("reservas@"));
    let original_signature = sign(&raw);

    let accepted = sys
        .gateway
        .post_with_signature(&raw, Some(&original_signature))
        .await;
    let refused = sys
        .gateway
        .post_with_signature(&reserialised, Some(&original_signature))
        .await;

    assert_eq!(accepted.status(), 200);
    assert_eq!(refused.status(), 403);
    let err: Value = refused.json().await.expect("JSON error");
    assert_eq!(err["error"]["code"], "invalid_signature");
    let probe = Probe::new(&sys).await;
    assert_eq!(probe.count("SELECT COUNT(*) FROM webhook_events").await, 1);
    assert_eq!(
        probe.last_raw_body().await,
        raw,
        "the escaped bytes are stored"
    );
}

#[tokio::test]
async fn a_lone_surrogate_reads_back_as_u_fffd_and_a_nul_is_kept_in_the_typed_text() {
    let sys = TestSystem::start().await;
    let probe = Probe::new(&sys).await;
    let cases = [
        (
            "malformed_lone_surrogate.json",
            "wamid.HBgLMTY1MDU1NTAxODcVAgASGBQzQUNEQ0QxQTdERDM0MTU4MTQ5MQA=",
            "See you tonight \u{FFFD} and thanks again",
        ),
        (
            "malformed_nul.json",
            "wamid.HBgLMTY1MDU1NTMzNzcVAgASGBQzQTk5RTYyNDI3NTkwMTYwMzUxOQA=",
            "Order ref 88\u{0}213, pick-up at 7",
        ),
    ];
    assert!(serde_json::from_slice::<Value>(&fixture(cases[0].0)).is_err());

    for (name, wamid, text) in cases {
        let body = fixture(name);
        let res = sys.gateway.post_signed(&body).await;

        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(probe.last_raw_body().await, body, "{name}: raw bytes");
        let record = sys.message(wamid).await;
        assert!(record.job.is_some(), "{name}: a job");
        match record.message.expect("typed").content {
            Some(Content::Text(t)) => assert_eq!(t.body, text, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The text column cannot hold U+0000 on PostgreSQL: it has U+FFFD there.
    let nul = cases[1].1;
    let sql = format!(
        "SELECT COUNT(*) FROM messages WHERE wamid = '{nul}' AND text_body = 'Order ref 88\u{FFFD}213, pick-up at 7'"
    );
    assert_eq!(probe.count(&sql).await, 1);
    let counts = probe.counts().await;
    assert_eq!(
        (counts.webhook_events, counts.messages, counts.quarantined),
        (2, 2, 0)
    );
}
