//! `value.messages[]` elements → [`InboundMessage`].
//!
//! A message is quarantined (the `Err` of [`parse`]) when it is not an object,
//! has no id, no type or no sender, or when a field this parser knows has the
//! wrong JSON type; the reason names the field's path. Absent optional fields
//! take their defaults, and unknown fields and types are kept via `raw_json`.

use proto::ingest::contact_card::{Address, Email, Name, Org, Phone, Url};
use proto::ingest::inbound_message::Content;
use proto::ingest::interactive::{NfmReply, Reply, ReplyOneOf};
use proto::ingest::order::ProductItem;
use proto::ingest::{
    Business, Button, ContactCard, Contacts, Edit, InboundMessage, Interactive, Location, Media,
    MessageContext, Order, Other, Reaction, Referral, ReferredProduct, RequestWelcome, Revoke,
    Sender, System, Text, Unsupported,
};
use serde_json::Value;

use super::errors::detail;
use super::json::{Field, Invalid, Obj, check_key_len, to_json, to_struct, type_name};

/// How much a message must carry to be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A top-level message: id, type and sender are required.
    Strict,
    /// The message nested in an `edit`: nothing is required.
    Lenient,
}

/// One message element, with the change's business and `value.contacts[]`.
pub(crate) fn parse(
    item: &Value,
    business: &Business,
    contacts: &[Value],
) -> Field<InboundMessage> {
    message(item, "", business, contacts, Mode::Strict)
}

fn message(
    item: &Value,
    path: &str,
    business: &Business,
    contacts: &[Value],
    mode: Mode,
) -> Field<InboundMessage> {
    let m = Obj::from_value(item, path).ok_or_else(|| {
        let what = if path.is_empty() { "message" } else { path };
        Invalid::new(format!("{what} must be an object, got {}", type_name(item)))
    })?;
    let strict = mode == Mode::Strict;

    let wamid = m.str("id")?;
    if strict && wamid.is_empty() {
        return Err(Invalid::new("message has no `id`"));
    }
    let r#type = match m.opt_str("type")? {
        Some(t) => t,
        None if strict => return Err(Invalid::new("message has no `type`")),
        None => String::new(),
    };
    let sender = sender(&m, contacts)?;
    if strict && sender.key.is_empty() {
        return Err(Invalid::new(
            "no sender: no `from`, `from_user_id` or matching contact `user_id`",
        ));
    }
    check_key_len("id", &wamid)?;
    check_key_len("from", &sender.key)?;
    let sender = (sender != Sender::default()).then_some(sender);

    Ok(InboundMessage {
        wamid,
        business: Some(business.clone()),
        sender,
        timestamp: m.timestamp("timestamp")?,
        context: m.with_obj("context", context)?,
        referral: m.with_obj("referral", referral)?,
        errors: m.each_obj("errors", detail)?,
        group_id: m.str("group_id")?,
        content: content(&m, &r#type, business, contacts)?,
        r#type,
        raw_json: to_json(item),
    })
}

fn strip_plus(s: &str) -> &str {
    s.strip_prefix('+').unwrap_or(s)
}

/// Sender from `from` / `from_user_id` plus the matching `value.contacts[]`
/// element (by `wa_id` or `user_id`; a lone contact matches by default).
fn sender(m: &Obj<'_>, contacts: &[Value]) -> Field<Sender> {
    let from = m.str("from")?;
    let from_user_id = m.str("from_user_id")?;
    let from_parent = m.str("from_parent_user_id")?;
    let wa_id = strip_plus(&from).to_owned();

    let mut sender = match find_contact(contacts, &wa_id, &from_user_id) {
        Some((n, contact)) => {
            let path = format!("value.contacts[{n}]");
            match Obj::from_value(contact, &path) {
                Some(c) => contact_sender(c)?,
                None => Sender::default(),
            }
        }
        None => Sender::default(),
    };
    if !wa_id.is_empty() {
        sender.wa_id = wa_id;
    }
    if !from_user_id.is_empty() {
        sender.user_id = from_user_id;
    }
    if !from_parent.is_empty() {
        sender.parent_user_id = from_parent;
    }
    sender.key = if sender.user_id.is_empty() {
        sender.wa_id.clone()
    } else {
        sender.user_id.clone()
    };
    Ok(sender)
}

fn find_contact<'v>(
    contacts: &'v [Value],
    wa_id: &str,
    user_id: &str,
) -> Option<(usize, &'v Value)> {
    let id_of = |c: &Value, key: &str| -> Option<String> {
        Obj::from_value(c, "")
            .and_then(|o| o.opt_str(key).ok().flatten())
            .filter(|s| !s.is_empty())
    };
    let found = contacts.iter().enumerate().find(|(_, c)| {
        let by_wa = !wa_id.is_empty() && id_of(c, "wa_id").is_some_and(|w| strip_plus(&w) == wa_id);
        let by_user = !user_id.is_empty() && id_of(c, "user_id").is_some_and(|u| u == user_id);
        by_wa || by_user
    });
    match (found, contacts) {
        (Some(hit), _) => Some(hit),
        (None, [only]) => Some((0, only)),
        (None, _) => None,
    }
}

fn contact_sender(c: Obj<'_>) -> Field<Sender> {
    let (name, username) = c
        .with_obj("profile", |p| Ok((p.str("name")?, p.str("username")?)))?
        .unwrap_or_default();
    Ok(Sender {
        key: String::new(),
        wa_id: strip_plus(&c.str("wa_id")?).to_owned(),
        user_id: c.str("user_id")?,
        parent_user_id: c.str("parent_user_id")?,
        username,
        name,
    })
}

fn context(c: Obj<'_>) -> Field<MessageContext> {
    Ok(MessageContext {
        message_id: c.str("id")?,
        from: c.str("from")?,
        forwarded: c.bool("forwarded")?,
        frequently_forwarded: c.bool("frequently_forwarded")?,
        referred_product: c.with_obj("referred_product", |p| {
            Ok(ReferredProduct {
                catalog_id: p.str("catalog_id")?,
                product_retailer_id: p.str("product_retailer_id")?,
            })
        })?,
    })
}

fn referral(r: Obj<'_>) -> Field<Referral> {
    Ok(Referral {
        source_url: r.str("source_url")?,
        source_id: r.str("source_id")?,
        source_type: r.str("source_type")?,
        body: r.str("body")?,
        headline: r.str("headline")?,
        media_type: r.str("media_type")?,
        image_url: r.str("image_url")?,
        video_url: r.str("video_url")?,
        thumbnail_url: r.str("thumbnail_url")?,
        ctwa_clid: r.str("ctwa_clid")?,
        welcome_message_text: r
            .with_obj("welcome_message", |w| w.str("text"))?
            .unwrap_or_default(),
    })
}

/// The content oneof, chosen by `type`. A missing payload object gives the
/// variant's defaults (Meta sends `interactive` messages without an
/// `interactive` object, for instance); only wrong types are refused.
fn content(
    m: &Obj<'_>,
    r#type: &str,
    business: &Business,
    contacts: &[Value],
) -> Field<Option<Content>> {
    let content = match r#type {
        "text" => Content::Text(
            m.with_obj("text", |t| {
                Ok(Text {
                    body: t.str("body")?,
                })
            })?
            .unwrap_or_default(),
        ),
        "image" => Content::Image(media(m, "image")?),
        "audio" => Content::Audio(media(m, "audio")?),
        "video" => Content::Video(media(m, "video")?),
        "document" => Content::Document(media(m, "document")?),
        "sticker" => Content::Sticker(media(m, "sticker")?),
        "location" => Content::Location(m.with_obj("location", location)?.unwrap_or_default()),
        "contacts" => Content::Contacts(Contacts {
            contacts: m.each_obj("contacts", contact_card)?,
        }),
        "interactive" => {
            Content::Interactive(m.with_obj("interactive", interactive)?.unwrap_or_default())
        }
        "button" => Content::Button(
            m.with_obj("button", |b| {
                Ok(Button {
                    payload: b.str("payload")?,
                    text: b.str("text")?,
                })
            })?
            .unwrap_or_default(),
        ),
        "reaction" => Content::Reaction(m.with_obj("reaction", reaction)?.unwrap_or(Reaction {
            removed: true,
            ..Default::default()
        })),
        "order" => Content::Order(m.with_obj("order", order)?.unwrap_or_default()),
        "system" => Content::System(m.with_obj("system", system)?.unwrap_or_default()),
        "unsupported" => Content::Unsupported(
            m.with_obj("unsupported", |u| {
                Ok(Unsupported {
                    r#type: u.str("type")?,
                })
            })?
            .unwrap_or_default(),
        ),
        "unknown" => Content::Unknown(Unsupported::default()),
        "request_welcome" => Content::RequestWelcome(RequestWelcome {}),
        "revoke" => Content::Revoke(
            m.with_obj("revoke", |r| {
                Ok(Revoke {
                    original_message_id: r.str("original_message_id")?,
                })
            })?
            .unwrap_or_default(),
        ),
        "edit" => Content::Edit(Box::new(
            m.with_obj("edit", |e| edit(e, business, contacts))?
                .unwrap_or_default(),
        )),
        // Only reachable for a lenient (nested) message without a type.
        "" => return Ok(None),
        other => Content::Other(Other {
            r#type: other.to_owned(),
        }),
    };
    Ok(Some(content))
}

fn media(m: &Obj<'_>, key: &str) -> Field<Media> {
    let media = m.with_obj(key, |o| {
        Ok(Media {
            id: o.str("id")?,
            mime_type: o.str("mime_type")?,
            sha256: o.str("sha256")?,
            caption: o.str("caption")?,
            url: o.str("url")?,
            filename: o.str("filename")?,
            voice: o.bool("voice")?,
            animated: o.bool("animated")?,
        })
    })?;
    Ok(media.unwrap_or_default())
}

fn location(l: Obj<'_>) -> Field<Location> {
    Ok(Location {
        latitude: l.f64("latitude")?,
        longitude: l.f64("longitude")?,
        name: l.str("name")?,
        address: l.str("address")?,
        url: l.str("url")?,
    })
}

fn contact_card(c: Obj<'_>) -> Field<ContactCard> {
    Ok(ContactCard {
        name: c.with_obj("name", |n| {
            Ok(Name {
                formatted_name: n.str("formatted_name")?,
                first_name: n.str("first_name")?,
                last_name: n.str("last_name")?,
                middle_name: n.str("middle_name")?,
                prefix: n.str("prefix")?,
                suffix: n.str("suffix")?,
            })
        })?,
        phones: c.each_obj("phones", |p| {
            Ok(Phone {
                phone: p.str("phone")?,
                wa_id: p.str("wa_id")?,
                r#type: p.str("type")?,
            })
        })?,
        emails: c.each_obj("emails", |e| {
            Ok(Email {
                email: e.str("email")?,
                r#type: e.str("type")?,
            })
        })?,
        addresses: c.each_obj("addresses", |a| {
            Ok(Address {
                street: a.str("street")?,
                city: a.str("city")?,
                state: a.str("state")?,
                zip: a.str("zip")?,
                country: a.str("country")?,
                country_code: a.str("country_code")?,
                r#type: a.str("type")?,
            })
        })?,
        org: c.with_obj("org", |o| {
            Ok(Org {
                company: o.str("company")?,
                department: o.str("department")?,
                title: o.str("title")?,
            })
        })?,
        urls: c.each_obj("urls", |u| {
            Ok(Url {
                url: u.str("url")?,
                r#type: u.str("type")?,
            })
        })?,
        birthday: c.str("birthday")?,
    })
}

const REPLY_KINDS: [&str; 3] = ["button_reply", "list_reply", "nfm_reply"];

fn interactive(i: Obj<'_>) -> Field<Interactive> {
    let r#type = i.str("type")?;
    // The reply object named by `type`, else the first typed one present.
    let kind = REPLY_KINDS
        .into_iter()
        .find(|k| *k == r#type && i.has(k))
        .or_else(|| REPLY_KINDS.into_iter().find(|k| i.has(k)));
    let reply = match kind {
        Some("button_reply") => i
            .with_obj("button_reply", reply)?
            .map(ReplyOneOf::ButtonReply),
        Some("list_reply") => i.with_obj("list_reply", reply)?.map(ReplyOneOf::ListReply),
        Some("nfm_reply") => i
            .with_obj("nfm_reply", nfm_reply)?
            .map(ReplyOneOf::NfmReply),
        _ => None,
    };
    Ok(Interactive {
        r#type,
        reply,
        raw_json: i.to_json(),
    })
}

fn reply(r: Obj<'_>) -> Field<Reply> {
    Ok(Reply {
        id: r.str("id")?,
        title: r.str("title")?,
        description: r.str("description")?,
    })
}

fn nfm_reply(n: Obj<'_>) -> Field<NfmReply> {
    let response_json = n.str("response_json")?;
    // `response_json` is a JSON document inside a string; keep it as sent and
    // add the parsed form when it is an object.
    let response = super::decode(response_json.as_bytes())
        .ok()
        .and_then(|v| v.as_object().map(to_struct));
    Ok(NfmReply {
        name: n.str("name")?,
        body: n.str("body")?,
        response_json,
        response,
    })
}

fn reaction(r: Obj<'_>) -> Field<Reaction> {
    let emoji = r.str("emoji")?;
    Ok(Reaction {
        message_id: r.str("message_id")?,
        removed: emoji.is_empty(),
        emoji,
    })
}

fn order(o: Obj<'_>) -> Field<Order> {
    Ok(Order {
        catalog_id: o.str("catalog_id")?,
        text: o.str("text")?,
        product_items: o.each_obj("product_items", |p| {
            Ok(ProductItem {
                product_retailer_id: p.str("product_retailer_id")?,
                quantity: p.f64_lenient("quantity")?,
                item_price: p.f64_lenient("item_price")?,
                currency: p.str("currency")?,
            })
        })?,
    })
}

fn system(s: Obj<'_>) -> Field<System> {
    // `user_changed_number` carries the new id as `wa_id` (older payloads: `new_wa_id`).
    let wa_id = match s.opt_str("wa_id")? {
        Some(w) => w,
        None => s.str("new_wa_id")?,
    };
    Ok(System {
        body: s.str("body")?,
        r#type: s.str("type")?,
        wa_id,
        user_id: s.str("user_id")?,
        customer: s.str("customer")?,
    })
}

fn edit(e: Obj<'_>, business: &Business, contacts: &[Value]) -> Field<Edit> {
    let path = e.path_of("message");
    let message = match e.get("message") {
        None => None,
        Some(nested) => Some(Box::new(message(
            nested,
            &path,
            business,
            contacts,
            Mode::Lenient,
        )?)),
    };
    Ok(Edit {
        original_message_id: e.str("original_message_id")?,
        message,
    })
}
