//! Unit tests of the webhook parser: envelopes, every message type, batches,
//! quarantine, item paths, the lone-surrogate fallback, and a property test.

use proto::ingest::inbound_message::Content;
use proto::ingest::interactive::ReplyOneOf;
use proto::ingest::{InboundMessage, IngestWebhookRequest};
use serde_json::{Value, json};

use super::*;

/// An envelope with one `messages` change whose value is `value`.
fn envelope(value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "WABA1",
            "changes": [{ "field": "messages", "value": value }]
        }]
    })
}

/// A `messages` value with metadata, one contact and the given messages.
fn value_with(messages: Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550001111", "phone_number_id": "PNID1" },
        "contacts": [{ "profile": { "name": "Ann" }, "wa_id": "16505550123" }],
        "messages": messages
    })
}

fn parse_value(v: &Value) -> IngestWebhookRequest {
    let body = serde_json::to_vec(v).unwrap();
    let req = parse(&body).expect("parses");
    assert_eq!(req.raw_body, body);
    req
}

/// Parses one message element (with a matching contact) and returns it typed.
fn one(message: Value) -> InboundMessage {
    let req = parse_value(&envelope(value_with(json!([message]))));
    assert!(req.quarantined.is_empty(), "{:?}", req.quarantined);
    assert_eq!(req.messages.len(), 1);
    req.messages.into_iter().next().unwrap()
}

/// Parses one message element that must be quarantined; returns the reason.
fn quarantined(message: Value) -> String {
    let req = parse_value(&envelope(value_with(json!([message]))));
    assert!(req.messages.is_empty(), "{:?}", req.messages);
    assert_eq!(req.quarantined.len(), 1);
    let q = &req.quarantined[0];
    assert_eq!(q.kind, "message");
    assert_eq!(q.path, "entry[0].changes[0].value.messages[0]");
    q.reason.clone()
}

fn msg(ty: &str, extra: Value) -> Value {
    let mut m = json!({
        "from": "16505550123",
        "id": format!("wamid.{ty}"),
        "timestamp": "1781099000",
        "type": ty
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    m
}

#[test]
fn text_message_with_contact_is_fully_typed() {
    let m = one(msg("text", json!({"text": {"body": "hello"}})));
    assert_eq!(m.wamid, "wamid.text");
    assert_eq!(m.timestamp, 1_781_099_000);
    assert_eq!(m.r#type, "text");
    let business = m.business.unwrap();
    assert_eq!(business.phone_number_id, "PNID1");
    assert_eq!(business.display_phone_number, "15550001111");
    assert_eq!(business.waba_id, "WABA1");
    let sender = m.sender.unwrap();
    assert_eq!(sender.key, "16505550123");
    assert_eq!(sender.wa_id, "16505550123");
    assert_eq!(sender.name, "Ann");
    assert_eq!(
        m.content,
        Some(Content::Text(proto::ingest::Text {
            body: "hello".into()
        }))
    );
    let raw: Value = serde_json::from_str(&m.raw_json).unwrap();
    assert_eq!(raw["text"]["body"], "hello");
}

#[test]
fn request_level_fields_are_filled_and_ids_left_to_the_caller() {
    let req = parse_value(&envelope(value_with(json!([msg("text", json!({}))]))));
    assert_eq!(req.object, "whatsapp_business_account");
    assert_eq!(req.phone_number_ids, ["PNID1"]);
    assert!(req.request_id.is_empty());
    assert_eq!(req.received_at_ms, 0);
}

#[test]
fn batch_of_entries_changes_messages_statuses_and_errors_is_fanned_out() {
    let status = |id: &str, st: &str| json!({"id": id, "status": st, "timestamp": "1781099001", "recipient_id": "16505550123"});
    let change = |pnid: &str, n: usize| {
        json!({ "field": "messages", "value": {
            "metadata": {"display_phone_number": "1555", "phone_number_id": pnid},
            "contacts": [{"wa_id": "1", "profile": {"name": "A"}}, {"wa_id": "2", "profile": {"name": "B"}}],
            "messages": (0..n).map(|k| json!({
                "from": if k % 2 == 0 { "1" } else { "2" }, "id": format!("wamid.{pnid}.{k}"),
                "timestamp": "1", "type": "text", "text": {"body": "x"}
            })).collect::<Vec<_>>(),
            "statuses": [status(&format!("wamid.out.{pnid}"), "sent"), status(&format!("wamid.out.{pnid}"), "delivered")],
            "errors": [{"code": 130429, "title": "Rate limit hit", "message": "Rate limit hit",
                        "error_data": {"details": "slow down"}}]
        }})
    };
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "W1", "changes": [change("P1", 3), change("P2", 2)]},
            {"id": "W2", "changes": [change("P1", 4)]}
        ]
    });
    let req = parse_value(&body);
    assert_eq!(req.messages.len(), 9);
    assert_eq!(req.statuses.len(), 6);
    assert_eq!(req.errors.len(), 3);
    assert!(req.quarantined.is_empty() && req.other_events.is_empty());
    assert_eq!(req.phone_number_ids, ["P1", "P2"]);
    // Senders are matched by wa_id, not by position.
    let names: Vec<_> = req
        .messages
        .iter()
        .map(|m| m.sender.clone().unwrap().name)
        .collect();
    assert_eq!(names[..3], ["A", "B", "A"]);
    assert_eq!(req.messages[8].business.clone().unwrap().waba_id, "W2");
    let err = &req.errors[0];
    let detail = err.error.clone().unwrap();
    assert_eq!(detail.code, 130_429);
    assert_eq!(detail.details, "slow down");
    assert_eq!(err.business.clone().unwrap().phone_number_id, "P1");
    let paths: Vec<_> = req.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "entry[0].changes[0].value.errors[0]",
            "entry[0].changes[1].value.errors[0]",
            "entry[1].changes[0].value.errors[0]"
        ]
    );
}

#[test]
fn status_fields_are_typed() {
    let value = json!({
        "metadata": {"phone_number_id": "P"},
        "statuses": [{
            "id": "wamid.S", "status": "failed", "timestamp": 1781099002,
            "recipient_id": "+16505550123", "recipient_user_id": "US.1", "recipient_type": "group",
            "biz_opaque_callback_data": "job=7",
            "conversation": {"id": "C", "expiration_timestamp": "1781185400", "origin": {"type": "service"}},
            "pricing": {"billable": true, "pricing_model": "PMP", "type": "regular", "category": "service"},
            "errors": [{"code": "131026", "title": "Undeliverable", "href": "https://x"}]
        }]
    });
    let req = parse_value(&envelope(value));
    let s = &req.statuses[0];
    assert_eq!((s.wamid.as_str(), s.status.as_str()), ("wamid.S", "failed"));
    assert_eq!(s.timestamp, 1_781_099_002);
    assert_eq!(s.recipient_id, "+16505550123");
    assert_eq!(s.recipient_user_id, "US.1");
    assert_eq!(s.recipient_type, "group");
    assert_eq!(s.biz_opaque_callback_data, "job=7");
    let c = s.conversation.clone().unwrap();
    assert_eq!(
        (
            c.id.as_str(),
            c.expiration_timestamp,
            c.origin_type.as_str()
        ),
        ("C", 1_781_185_400, "service")
    );
    let p = s.pricing.clone().unwrap();
    assert!(p.billable);
    assert_eq!(
        (
            p.pricing_model.as_str(),
            p.r#type.as_str(),
            p.category.as_str()
        ),
        ("PMP", "regular", "service")
    );
    assert_eq!(s.errors[0].code, 131_026);
    assert_eq!(s.errors[0].href, "https://x");
}

#[test]
fn media_types_are_typed() {
    for ty in ["image", "audio", "video", "document", "sticker"] {
        let m = one(msg(
            ty,
            json!({ ty: {
                "id": "MEDIA", "mime_type": "x/y", "sha256": "abc", "caption": "cap",
                "url": "https://lookaside", "filename": "f.pdf", "voice": true, "animated": true
            }}),
        ));
        let media = match m.content {
            Some(
                Content::Image(x)
                | Content::Audio(x)
                | Content::Video(x)
                | Content::Document(x)
                | Content::Sticker(x),
            ) => x,
            other => panic!("{ty}: {other:?}"),
        };
        assert_eq!(media.id, "MEDIA");
        assert_eq!(media.caption, "cap");
        assert_eq!(media.filename, "f.pdf");
        assert!(media.voice && media.animated);
    }
}

#[test]
fn location_contacts_button_and_reaction_are_typed() {
    let m = one(msg(
        "location",
        json!({"location": {"latitude": 52.5, "longitude": -0.1, "name": "Pub", "address": "1 St"}}),
    ));
    let Some(Content::Location(l)) = m.content else {
        panic!()
    };
    assert_eq!(
        (l.latitude, l.longitude, l.name.as_str()),
        (52.5, -0.1, "Pub")
    );

    let m = one(msg(
        "contacts",
        json!({"contacts": [{
            "name": {"formatted_name": "Bo B", "first_name": "Bo"},
            "phones": [{"phone": "+1 555", "wa_id": "1555", "type": "CELL"}],
            "emails": [{"email": "b@x", "type": "WORK"}],
            "addresses": [{"city": "Paris", "country_code": "FR"}],
            "org": {"company": "Acme", "title": "CEO"},
            "urls": [{"url": "https://b", "type": "HOME"}],
            "birthday": "2000-01-01"
        }]}),
    ));
    let Some(Content::Contacts(c)) = m.content else {
        panic!()
    };
    let card = &c.contacts[0];
    assert_eq!(card.name.clone().unwrap().formatted_name, "Bo B");
    assert_eq!(card.phones[0].wa_id, "1555");
    assert_eq!(card.emails[0].email, "b@x");
    assert_eq!(card.addresses[0].city, "Paris");
    assert_eq!(card.org.clone().unwrap().company, "Acme");
    assert_eq!(card.urls[0].r#type, "HOME");
    assert_eq!(card.birthday, "2000-01-01");
    // The message-level `contacts` is the card list; the sender still comes
    // from value.contacts.
    assert_eq!(m.sender.unwrap().name, "Ann");

    let m = one(msg(
        "button",
        json!({"button": {"payload": "P", "text": "Yes"}, "context": {"from": "1555", "id": "wamid.Q"}}),
    ));
    assert_eq!(
        m.content,
        Some(Content::Button(proto::ingest::Button {
            payload: "P".into(),
            text: "Yes".into()
        }))
    );
    assert_eq!(m.context.unwrap().message_id, "wamid.Q");

    let m = one(msg(
        "reaction",
        json!({"reaction": {"message_id": "wamid.R", "emoji": "\u{1F44D}"}}),
    ));
    let Some(Content::Reaction(r)) = m.content else {
        panic!()
    };
    assert_eq!(
        (r.message_id.as_str(), r.emoji.as_str(), r.removed),
        ("wamid.R", "\u{1F44D}", false)
    );
    for removal in [
        json!({"message_id": "wamid.R"}),
        json!({"message_id": "wamid.R", "emoji": ""}),
    ] {
        let m = one(msg("reaction", json!({ "reaction": removal })));
        let Some(Content::Reaction(r)) = m.content else {
            panic!()
        };
        assert!(r.removed && r.emoji.is_empty());
    }
}

#[test]
fn interactive_replies_are_typed() {
    let m = one(msg(
        "interactive",
        json!({"interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}}}),
    ));
    let Some(Content::Interactive(i)) = m.content else {
        panic!()
    };
    assert_eq!(i.r#type, "button_reply");
    assert!(
        matches!(i.reply, Some(ReplyOneOf::ButtonReply(ref r)) if r.id == "b1" && r.title == "Yes")
    );
    assert!(i.raw_json.contains("button_reply"));

    let m = one(msg(
        "interactive",
        json!({"interactive": {"type": "list_reply", "list_reply": {"id": "l1", "title": "T", "description": "D"}}}),
    ));
    let Some(Content::Interactive(i)) = m.content else {
        panic!()
    };
    assert!(matches!(i.reply, Some(ReplyOneOf::ListReply(ref r)) if r.description == "D"));

    let m = one(msg(
        "interactive",
        json!({"interactive": {"type": "nfm_reply", "nfm_reply": {
            "name": "flow", "body": "Sent", "response_json": "{\"flow_token\":\"t\",\"n\":2,\"ok\":true}"
        }}}),
    ));
    let Some(Content::Interactive(i)) = m.content else {
        panic!()
    };
    let Some(ReplyOneOf::NfmReply(n)) = i.reply else {
        panic!()
    };
    assert_eq!(n.name, "flow");
    assert!(n.response_json.contains("flow_token"));
    let response = n.response.unwrap();
    assert_eq!(response.fields.len(), 3);

    // response_json that is not a JSON object: kept as text, no parsed form.
    let m = one(msg(
        "interactive",
        json!({"interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "not json"}}}),
    ));
    let Some(Content::Interactive(i)) = m.content else {
        panic!()
    };
    let Some(ReplyOneOf::NfmReply(n)) = i.reply else {
        panic!()
    };
    assert!(n.response.is_none());

    // Unknown reply kinds keep only type and raw JSON.
    let m = one(msg(
        "interactive",
        json!({"interactive": {"type": "call_permission_reply", "call_permission_reply": {"response": "accept"}}}),
    ));
    let Some(Content::Interactive(i)) = m.content else {
        panic!()
    };
    assert!(i.reply.is_none());
    assert!(i.raw_json.contains("accept"));
}

#[test]
fn interactive_message_without_interactive_object_is_recorded() {
    let m = one(msg("interactive", json!({})));
    let Some(Content::Interactive(i)) = m.content else {
        panic!()
    };
    assert!(i.r#type.is_empty() && i.reply.is_none());
}

#[test]
fn order_system_unsupported_unknown_and_welcome_are_typed() {
    let m = one(msg(
        "order",
        json!({"order": {"catalog_id": "C", "text": "pls", "product_items": [
            {"product_retailer_id": "SKU1", "quantity": 2, "item_price": 9.99, "currency": "EUR"},
            {"product_retailer_id": "SKU2", "quantity": "3", "item_price": "1.5", "currency": "EUR"}
        ]}}),
    ));
    let Some(Content::Order(o)) = m.content else {
        panic!()
    };
    assert_eq!(o.catalog_id, "C");
    assert_eq!(
        (o.product_items[0].quantity, o.product_items[0].item_price),
        (2.0, 9.99)
    );
    assert_eq!(
        (o.product_items[1].quantity, o.product_items[1].item_price),
        (3.0, 1.5)
    );

    // System messages come without value.contacts.
    let value = json!({"metadata": {"phone_number_id": "P"}, "messages": [msg("system", json!({
        "system": {"body": "changed", "type": "user_changed_number", "new_wa_id": "16505559999"}
    }))]});
    let req = parse_value(&envelope(value));
    let Some(Content::System(s)) = req.messages[0].content.clone() else {
        panic!()
    };
    assert_eq!(
        (s.r#type.as_str(), s.wa_id.as_str()),
        ("user_changed_number", "16505559999")
    );
    assert_eq!(req.messages[0].sender.clone().unwrap().key, "16505550123");

    let m = one(msg(
        "system",
        json!({"system": {"type": "customer_identity_changed", "customer": "X", "user_id": "US.2"}}),
    ));
    let Some(Content::System(s)) = m.content else {
        panic!()
    };
    assert_eq!((s.customer.as_str(), s.user_id.as_str()), ("X", "US.2"));

    let m = one(msg(
        "unsupported",
        json!({"unsupported": {"type": "poll_creation"},
        "errors": [{"code": 131051, "title": "Message type unknown", "error_data": {"details": "d"}}]}),
    ));
    assert_eq!(
        m.content,
        Some(Content::Unsupported(proto::ingest::Unsupported {
            r#type: "poll_creation".into()
        }))
    );
    assert_eq!(m.errors[0].code, 131_051);
    assert_eq!(m.errors[0].details, "d");

    let m = one(msg(
        "unknown",
        json!({"errors": [{"code": "131051", "details": "x", "title": "Unknown"}]}),
    ));
    assert_eq!(
        m.content,
        Some(Content::Unknown(proto::ingest::Unsupported::default()))
    );
    assert_eq!(m.errors[0].code, 131_051);

    let m = one(msg("request_welcome", json!({})));
    assert_eq!(
        m.content,
        Some(Content::RequestWelcome(proto::ingest::RequestWelcome {}))
    );

    let m = one(msg("poll_vote_2031", json!({"poll_vote_2031": {"x": 1}})));
    assert_eq!(
        m.content,
        Some(Content::Other(proto::ingest::Other {
            r#type: "poll_vote_2031".into()
        }))
    );
    assert!(m.raw_json.contains("poll_vote_2031"));
}

#[test]
fn revoke_and_edit_are_typed_with_a_lenient_nested_message() {
    let m = one(msg(
        "revoke",
        json!({"revoke": {"original_message_id": "wamid.O"}}),
    ));
    assert_eq!(
        m.content,
        Some(Content::Revoke(proto::ingest::Revoke {
            original_message_id: "wamid.O".into()
        }))
    );

    let m = one(msg(
        "edit",
        json!({"edit": {"original_message_id": "wamid.O",
        "message": {"type": "text", "text": {"body": "fixed"}}}}),
    ));
    let Some(Content::Edit(e)) = m.content else {
        panic!()
    };
    assert_eq!(e.original_message_id, "wamid.O");
    let nested = e.message.unwrap();
    assert!(nested.wamid.is_empty());
    assert_eq!(
        nested.content,
        Some(Content::Text(proto::ingest::Text {
            body: "fixed".into()
        }))
    );

    // A wrong type inside the nested message still quarantines, naming the path.
    let reason = quarantined(msg(
        "edit",
        json!({"edit": {"message": {"type": "text", "text": {"body": 5}}}}),
    ));
    assert!(reason.contains("edit.message.text.body"), "{reason}");
}

#[test]
fn context_referral_and_group_are_typed() {
    let m = one(msg(
        "text",
        json!({
            "text": {"body": "hi"},
            "group_id": "G1",
            "context": {"from": "1555", "id": "wamid.P", "forwarded": true,
                        "referred_product": {"catalog_id": "C", "product_retailer_id": "SKU"}},
            "referral": {"source_url": "https://ad", "source_id": "S", "source_type": "ad", "body": "b",
                         "headline": "h", "media_type": "video", "video_url": "v", "thumbnail_url": "t",
                         "ctwa_clid": "clid", "welcome_message": {"text": "welcome"}}
        }),
    ));
    assert_eq!(m.group_id, "G1");
    let c = m.context.unwrap();
    assert!(c.forwarded && !c.frequently_forwarded);
    assert_eq!(c.referred_product.unwrap().product_retailer_id, "SKU");
    let r = m.referral.unwrap();
    assert_eq!(
        (
            r.ctwa_clid.as_str(),
            r.welcome_message_text.as_str(),
            r.thumbnail_url.as_str()
        ),
        ("clid", "welcome", "t")
    );
}

#[test]
fn sender_prefers_the_business_scoped_user_id() {
    let value = json!({
        "metadata": {"phone_number_id": "P"},
        "contacts": [
            {"wa_id": "1", "profile": {"name": "One"}},
            {"user_id": "US.9", "parent_user_id": "US.ENT.9", "profile": {"name": "Nine", "username": "nine"}}
        ],
        "messages": [
            {"id": "wamid.1", "type": "text", "from_user_id": "US.9", "text": {"body": "x"}},
            {"id": "wamid.2", "type": "text", "from": "+1", "text": {"body": "x"}}
        ]
    });
    let req = parse_value(&envelope(value));
    let s = req.messages[0].sender.clone().unwrap();
    assert_eq!(
        (s.key.as_str(), s.user_id.as_str(), s.wa_id.as_str()),
        ("US.9", "US.9", "")
    );
    assert_eq!(
        (
            s.parent_user_id.as_str(),
            s.username.as_str(),
            s.name.as_str()
        ),
        ("US.ENT.9", "nine", "Nine")
    );
    let s = req.messages[1].sender.clone().unwrap();
    assert_eq!(
        (s.key.as_str(), s.wa_id.as_str(), s.name.as_str()),
        ("1", "1", "One")
    );
}

#[test]
fn sender_from_a_lone_contact_user_id() {
    let value = json!({
        "metadata": {"phone_number_id": "P"},
        "contacts": [{"user_id": "US.5", "profile": {"name": "Five"}}],
        "messages": [{"id": "wamid.1", "type": "text", "text": {"body": "x"}}]
    });
    let req = parse_value(&envelope(value));
    assert_eq!(req.messages[0].sender.clone().unwrap().key, "US.5");
}

#[test]
fn wrong_typed_items_are_quarantined_while_siblings_survive() {
    let value = json!({
        "metadata": {"phone_number_id": "P"},
        "contacts": [{"wa_id": "1"}],
        "messages": [
            {"id": "wamid.ok1", "from": "1", "type": "text", "text": {"body": "fine"}},
            {"id": "wamid.bad", "from": "1", "type": "text", "text": {"body": 42}},
            "not an object",
            {"from": "1", "type": "text"},
            {"id": "wamid.ok2", "from": "1", "type": "text", "text": {"body": "fine"}}
        ],
        "statuses": [{"id": "wamid.s", "status": "read"}, {"id": "wamid.s2"}, 7],
        "errors": [{"code": 1}, ["x"]]
    });
    let req = parse_value(&envelope(value));
    let ids: Vec<_> = req.messages.iter().map(|m| m.wamid.as_str()).collect();
    assert_eq!(ids, ["wamid.ok1", "wamid.ok2"]);
    assert_eq!(req.statuses.len(), 1);
    assert_eq!(req.errors.len(), 1);
    let q: Vec<_> = req
        .quarantined
        .iter()
        .map(|q| (q.kind.as_str(), q.path.as_str()))
        .collect();
    assert_eq!(
        q,
        [
            ("message", "entry[0].changes[0].value.messages[1]"),
            ("message", "entry[0].changes[0].value.messages[2]"),
            ("message", "entry[0].changes[0].value.messages[3]"),
            ("status", "entry[0].changes[0].value.statuses[1]"),
            ("status", "entry[0].changes[0].value.statuses[2]"),
            ("error", "entry[0].changes[0].value.errors[1]"),
        ]
    );
    assert!(
        req.quarantined[0].reason.contains("text.body"),
        "{}",
        req.quarantined[0].reason
    );
    let raw: Value = serde_json::from_str(&req.quarantined[0].raw_json).unwrap();
    assert_eq!(raw["id"], "wamid.bad");
    assert_eq!(req.quarantined[1].raw_json, "\"not an object\"");
}

#[test]
fn each_known_wrong_type_names_its_field() {
    let cases = [
        (msg("text", json!({"text": "hi"})), "text"),
        (msg("text", json!({"timestamp": "17x"})), "timestamp"),
        (msg("text", json!({"timestamp": true})), "timestamp"),
        (
            msg("location", json!({"location": {"latitude": "52.5"}})),
            "location.latitude",
        ),
        (
            msg("order", json!({"order": {"product_items": {}}})),
            "order.product_items",
        ),
        (
            msg(
                "order",
                json!({"order": {"product_items": [{"quantity": "lots"}]}}),
            ),
            "order.product_items[0].quantity",
        ),
        (
            msg("image", json!({"image": {"voice": "yes"}})),
            "image.voice",
        ),
        (
            msg("contacts", json!({"contacts": [{"phones": [3]}]})),
            "contacts[0].phones[0]",
        ),
        (
            msg("text", json!({"context": {"forwarded": "true"}})),
            "context.forwarded",
        ),
        (
            msg("text", json!({"errors": [{"code": "E1"}]})),
            "errors[0].code",
        ),
        (
            msg(
                "interactive",
                json!({"interactive": {"type": "button_reply", "button_reply": {"id": 1}}}),
            ),
            "interactive.button_reply.id",
        ),
        (msg("text", json!({"from": 16505550123_u64})), "from"),
    ];
    for (message, field) in cases {
        let reason = quarantined(message);
        assert!(reason.contains(&format!("`{field}`")), "{field}: {reason}");
    }
}

#[test]
fn missing_id_type_or_sender_quarantines() {
    assert!(quarantined(json!({"from": "1", "type": "text"})).contains("`id`"));
    assert!(quarantined(json!({"id": "", "from": "1", "type": "text"})).contains("`id`"));
    assert!(quarantined(json!({"id": "w", "from": "1"})).contains("`type`"));
    // No from, no from_user_id, and the lone contact has neither id.
    let value = json!({"metadata": {}, "contacts": [{"profile": {"name": "x"}}],
        "messages": [{"id": "w", "type": "text"}]});
    let req = parse_value(&envelope(value));
    assert!(req.quarantined[0].reason.contains("no sender"));
}

#[test]
fn broken_entries_and_changes_are_quarantined_with_their_path() {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [
            "nope",
            {"id": "W", "changes": {"field": "messages"}},
            {"id": "W", "changes": [
                5,
                {"value": {}},
                {"field": "messages", "value": "x"},
                {"field": "messages", "value": {"messages": {"id": "w"}}},
                {"field": "messages", "value": {"metadata": {"phone_number_id": "P"},
                    "messages": [{"id": "w", "from": "1", "type": "text"}]}}
            ]}
        ]
    });
    let req = parse_value(&body);
    let q: Vec<_> = req
        .quarantined
        .iter()
        .map(|q| (q.kind.as_str(), q.path.as_str()))
        .collect();
    assert_eq!(
        q,
        [
            ("entry", "entry[0]"),
            ("entry", "entry[1]"),
            ("change", "entry[2].changes[0]"),
            ("change", "entry[2].changes[1]"),
            ("change", "entry[2].changes[2]"),
            ("change", "entry[2].changes[3]"),
        ]
    );
    assert!(
        req.quarantined[5].reason.contains("messages"),
        "{}",
        req.quarantined[5].reason
    );
    assert_eq!(req.messages.len(), 1);
}

#[test]
fn non_messages_fields_become_other_events() {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "W", "time": 1781099000, "changes": [
            {"field": "message_template_status_update", "value": {"event": "APPROVED", "message_template_id": 123}},
            {"field": "account_update", "value": {}}
        ]}]
    });
    let req = parse_value(&body);
    assert!(req.messages.is_empty());
    assert_eq!(req.other_events.len(), 2);
    let e = &req.other_events[0];
    assert_eq!(
        (
            e.object.as_str(),
            e.field.as_str(),
            e.entry_id.as_str(),
            e.entry_time
        ),
        (
            "whatsapp_business_account",
            "message_template_status_update",
            "W",
            1_781_099_000
        )
    );
    assert!(e.raw_json.contains("APPROVED"));
    let paths: Vec<_> = req.other_events.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["entry[0].changes[0]", "entry[0].changes[1]"]);
}

#[test]
fn other_objects_are_one_other_event() {
    let body = json!({"object": "page", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {"messages": [msg("text", json!({}))]}}]}]});
    let req = parse_value(&body);
    assert_eq!(req.object, "page");
    assert!(req.messages.is_empty() && req.quarantined.is_empty());
    assert_eq!(req.other_events.len(), 1);
    let e = &req.other_events[0];
    assert_eq!((e.object.as_str(), e.field.as_str()), ("page", ""));
    assert_eq!(e.path, "", "the item is the whole envelope");
    assert_eq!(serde_json::from_str::<Value>(&e.raw_json).unwrap(), body);
}

#[test]
fn unusable_bodies_give_the_three_codes() {
    for (body, code) in [
        (&b""[..], "invalid_json"),
        (b"{", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"{\"entry\":[]} trailing", "invalid_json"),
        (b"[]", "not_an_object"),
        (b"\"x\"", "not_an_object"),
        (b"null", "not_an_object"),
        (b"{}", "missing_entry"),
        (
            b"{\"object\":\"whatsapp_business_account\",\"entry\":{}}",
            "missing_entry",
        ),
    ] {
        assert_eq!(
            parse(body).unwrap_err().code(),
            code,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn empty_entry_list_is_fine() {
    let req = parse(br#"{"object":"whatsapp_business_account","entry":[]}"#).unwrap();
    assert!(req.messages.is_empty() && req.quarantined.is_empty());
}

fn text_body(body_escaped: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"P"}},"messages":[{{"id":"w","from":"1","type":"text","text":{{"body":"{body_escaped}"}}}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

fn text_of(req: &IngestWebhookRequest) -> String {
    match req.messages.first().and_then(|m| m.content.clone()) {
        Some(Content::Text(t)) => t.body,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lone_surrogate_is_decoded_as_replacement_character() {
    let body = text_body(r"hi \ud83d!");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    let req = parse(&body).unwrap();
    assert_eq!(text_of(&req), "hi \u{FFFD}!");
    assert_eq!(req.raw_body, body, "raw bytes stay untouched");

    let req = parse(&text_body(r"\ude00\ud83d\ude00")).unwrap();
    assert_eq!(text_of(&req), "\u{FFFD}\u{1F600}");
}

#[test]
fn escaped_backslash_before_u_is_left_as_text() {
    let req = parse(&text_body(r"\\ud83d")).unwrap();
    assert_eq!(text_of(&req), r"\ud83d");
}

#[test]
fn nul_characters_are_kept() {
    let req = parse(&text_body(r"a\u0000b")).unwrap();
    assert_eq!(text_of(&req), "a\u{0}b");
}

#[test]
fn escaped_unicode_is_decoded() {
    let req = parse(&text_body(r"caf\u00e9 \u0040 \/ \ud83d\ude00")).unwrap();
    assert_eq!(text_of(&req), "café @ / \u{1F600}");
}

#[test]
fn timestamps_accept_strings_and_numbers() {
    assert_eq!(
        one(msg("text", json!({"timestamp": 1781099000}))).timestamp,
        1_781_099_000
    );
    assert_eq!(
        one(msg("text", json!({"timestamp": 1.7e9}))).timestamp,
        1_700_000_000
    );
    let mut m = msg("text", json!({}));
    m.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(one(m).timestamp, 0);
}

/// The captured payloads in `fixtures/webhooks/` parse to the counts and
/// types their `expected.json` lists (400 ones must be refused). Skipped when
/// the folder is absent.
#[test]
fn fixtures_match_expected_counts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/webhooks");
    let Ok(expected) = std::fs::read(dir.join("expected.json")) else {
        return;
    };
    let expected: Value = serde_json::from_slice(&expected).unwrap();
    let expected = expected.as_object().unwrap();
    assert!(!expected.is_empty());
    for (name, want) in expected {
        let body = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let result = parse(&body);
        if want["http"] == 400 {
            assert!(result.is_err(), "{name} should be refused");
            continue;
        }
        let req = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(req.raw_body, body, "{name}");
        let got = [
            ("messages", req.messages.len()),
            ("statuses", req.statuses.len()),
            ("webhook_errors", req.errors.len()),
            ("other_events", req.other_events.len()),
            ("quarantined", req.quarantined.len()),
        ];
        for (key, n) in got {
            assert_eq!(
                want[key].as_u64(),
                Some(n as u64),
                "{name}: {key} ({:?})",
                req.quarantined
            );
        }
        let types: Vec<Value> = req
            .messages
            .iter()
            .map(|m| Value::from(m.r#type.clone()))
            .collect();
        assert_eq!(want["types"], Value::Array(types), "{name}: types");
    }
    // Every fixture file is covered by expected.json.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name != "expected.json" {
            assert!(
                expected.contains_key(&name),
                "{name} missing from expected.json"
            );
        }
    }
}

mod prop {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::parse;

    /// Valid payloads the mutations start from.
    fn seeds() -> Vec<Value> {
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1555", "phone_number_id": "P"},
            "contacts": [{"profile": {"name": "A", "username": "a"}, "wa_id": "1", "user_id": "US.1"}],
            "messages": [
                {"from": "1", "id": "w1", "timestamp": "1", "type": "text", "text": {"body": "hi"},
                 "context": {"from": "1555", "id": "w0"}},
                {"from": "1", "id": "w2", "timestamp": "1", "type": "image", "image": {"id": "m", "mime_type": "image/jpeg", "sha256": "s"}},
                {"from": "1", "id": "w3", "timestamp": "1", "type": "interactive", "interactive": {"type": "nfm_reply",
                 "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{\"a\":[1,{\"b\":null}]}"}}},
                {"from": "1", "id": "w4", "timestamp": "1", "type": "order", "order": {"catalog_id": "c",
                 "product_items": [{"product_retailer_id": "s", "quantity": 1, "item_price": 2.5, "currency": "EUR"}]}},
                {"from": "1", "id": "w5", "timestamp": "1", "type": "edit", "edit": {"original_message_id": "w1",
                 "message": {"type": "text", "text": {"body": "x"}}}},
                {"from": "1", "id": "w6", "timestamp": "1", "type": "contacts", "contacts": [{"name": {"formatted_name": "n"},
                 "phones": [{"phone": "1"}]}]}
            ],
            "statuses": [{"id": "s1", "status": "sent", "timestamp": "1", "recipient_id": "1",
                "conversation": {"id": "c", "origin": {"type": "service"}}, "pricing": {"billable": true},
                "errors": [{"code": 1, "error_data": {"details": "d"}}]}],
            "errors": [{"code": 130429, "title": "t"}]
        });
        vec![
            json!({"object": "whatsapp_business_account", "entry": [
                {"id": "W", "changes": [{"field": "messages", "value": value}]},
                {"id": "W2", "time": 1, "changes": [{"field": "account_update", "value": {"x": 1}}]}
            ]}),
            json!({"object": "page", "entry": [{"id": "1"}]}),
        ]
    }

    /// Every path (sequence of keys/indices) in a value.
    #[derive(Debug, Clone)]
    enum Step {
        Key(String),
        Index(usize),
    }

    fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(prefix.clone());
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    prefix.push(Step::Key(k.clone()));
                    paths(v, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    prefix.push(Step::Index(i));
                    paths(v, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }

    fn at<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
        let mut cur = value;
        for step in path {
            cur = match step {
                Step::Key(k) => cur.get_mut(k.as_str())?,
                Step::Index(i) => cur.get_mut(*i)?,
            };
        }
        Some(cur)
    }

    /// Placeholder replaced by a raw escape sequence after serialisation.
    const MARK: &str = "\u{E000}";

    #[derive(Debug, Clone)]
    enum Mutation {
        Drop,
        Replace(Value),
        Text(String),
        RawEscape(&'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let text = proptest::collection::vec(any::<char>(), 0..6)
            .prop_map(|c| c.into_iter().collect::<String>());
        prop_oneof![
            Just(Mutation::Drop),
            Just(Mutation::Replace(Value::Null)),
            Just(Mutation::Replace(json!(true))),
            Just(Mutation::Replace(json!(-1.5))),
            Just(Mutation::Replace(json!(12345678901234_u64))),
            Just(Mutation::Replace(json!([]))),
            Just(Mutation::Replace(json!({}))),
            Just(Mutation::Replace(json!("\u{0}"))),
            text.prop_map(Mutation::Text),
            prop::sample::select(vec![
                r"\ud83d",
                r"\ude00",
                r"\\ud83d",
                r"\u0000",
                r"\ud83d\ude00",
                r"\\\ud800"
            ])
            .prop_map(Mutation::RawEscape),
        ]
    }

    fn apply(mut value: Value, picks: &[(prop::sample::Index, Mutation)]) -> Vec<u8> {
        let mut escapes = Vec::new();
        for (index, mutation) in picks {
            let mut all = Vec::new();
            paths(&value, &mut Vec::new(), &mut all);
            let path = index.get(&all).clone();
            match mutation {
                Mutation::Drop => {
                    if let Some((last, parent)) = path.split_last()
                        && let Some(parent) = at(&mut value, parent)
                    {
                        match (last, parent) {
                            (Step::Key(k), Value::Object(map)) => {
                                map.remove(k);
                            }
                            (Step::Index(i), Value::Array(items)) if *i < items.len() => {
                                items.remove(*i);
                            }
                            _ => {}
                        }
                    }
                }
                Mutation::Replace(new) => {
                    if let Some(slot) = at(&mut value, &path) {
                        *slot = new.clone();
                    }
                }
                Mutation::Text(text) => {
                    if let Some(slot) = at(&mut value, &path) {
                        *slot = Value::String(text.clone());
                    }
                }
                Mutation::RawEscape(escape) => {
                    if let Some(slot) = at(&mut value, &path) {
                        *slot = Value::String(format!("a{MARK}b"));
                        escapes.push(*escape);
                    }
                }
            }
        }
        let mut text = serde_json::to_string(&value).unwrap();
        for escape in escapes {
            text = text.replacen(MARK, escape, 1);
        }
        text.into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn parse_never_panics_and_keeps_raw_bytes(
            seed in prop::sample::select(seeds()),
            picks in proptest::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
            cut in proptest::option::weighted(0.1, any::<prop::sample::Index>()),
        ) {
            let mut body = apply(seed, &picks);
            if let Some(cut) = cut {
                let at = cut.index(body.len() + 1);
                body.truncate(at);
            }
            match parse(&body) {
                Ok(req) => prop_assert_eq!(req.raw_body, body),
                Err(err) => prop_assert!(
                    ["invalid_json", "not_an_object", "missing_entry"].contains(&err.code()),
                    "unexpected code {}", err.code()
                ),
            }
        }
    }
}

#[test]
fn keys_too_long_for_any_index_are_quarantined_not_fatal() {
    let long = "x".repeat(super::json::MAX_KEY_BYTES + 1);
    let mut m = msg("text", json!({ "text": { "body": "hi" } }));
    m["id"] = json!(long);
    assert!(quarantined(m).contains("`id`"));

    let mut m = msg("text", json!({ "text": { "body": "hi" } }));
    m["from"] = json!(long);
    let req = parse_value(&envelope(json!({
        "metadata": { "phone_number_id": "PNID1" },
        "messages": [m, msg("text", json!({ "text": { "body": "sibling" } }))],
        "statuses": [{ "id": long, "status": "read", "timestamp": "1" }]
    })));
    assert_eq!(req.messages.len(), 1, "the sibling is recorded");
    assert_eq!(req.quarantined.len(), 2, "{:?}", req.quarantined);

    let req = parse_value(&envelope(json!({
        "metadata": { "phone_number_id": long },
        "messages": [msg("text", json!({ "text": { "body": "hi" } }))]
    })));
    assert!(req.messages.is_empty());
    assert_eq!(req.quarantined[0].kind, "change");
}
