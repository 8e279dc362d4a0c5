//! Property test through the REAL gateway and ingest-svc: mutated fixture payloads
//! (fields dropped, value types swapped, random unicode, `\u0000` and lone
//! surrogate escapes, truncation) never get a 5xx or crash a service; a body that
//! is still a JSON object with an `entry` array is accepted (200) and its exact
//! bytes are stored as one more webhook event; anything else is a 400.

use e2e_tests::{TestSystem, fixture};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::shapes::Probe;

/// Fixtures the mutations start from (every one plain JSON).
const SEEDS: [&str; 12] = [
    "text.json",
    "batch_mixed.json",
    "interactive_nfm_reply.json",
    "order.json",
    "contacts.json",
    "edit.json",
    "text_bsuid.json",
    "status_failed.json",
    "value_errors.json",
    "template_status_update.json",
    "other_object.json",
    "system_changed_number.json",
];

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every path (sequence of keys / indices) in `value`, the root included.
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
const MARK: char = '\u{E000}';

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the key or array element.
    Drop,
    /// Swap the value for one of another JSON type.
    Replace(Value),
    /// Swap the value for a random string (any `char`, NUL included).
    Text(String),
    /// A string holding a raw escape that serde_json would never write.
    RawEscape(&'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = proptest::collection::vec(any::<char>(), 0..8)
        .prop_map(|c| c.into_iter().filter(|c| *c != MARK).collect::<String>());
    prop_oneof![
        2 => Just(Mutation::Drop),
        1 => Just(Mutation::Replace(Value::Null)),
        1 => Just(Mutation::Replace(json!(false))),
        1 => Just(Mutation::Replace(json!(-1.5))),
        1 => Just(Mutation::Replace(json!(12_345_678_901_234_u64))),
        1 => Just(Mutation::Replace(json!([]))),
        1 => Just(Mutation::Replace(json!({}))),
        1 => Just(Mutation::Replace(json!("\u{0}"))),
        2 => text.prop_map(Mutation::Text),
        2 => prop::sample::select(vec![
            r"\u0000",
            r"\ud83d",
            r"\ude00",
            r"\\ud83d",
            r"\\\ud800",
            r"\ud83d\ude00",
            r"\u00e9\/\u0040",
        ])
        .prop_map(Mutation::RawEscape),
    ]
}

/// Applies the mutations to `value` and serialises it (raw escapes spliced in).
fn mutate(mut value: Value, picks: &[(prop::sample::Index, Mutation)]) -> (Value, Vec<u8>) {
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
    let mut text = serde_json::to_string(&value).expect("a Value serialises");
    for escape in escapes {
        text = text.replacen(MARK, escape, 1);
    }
    (value, text.into_bytes())
}

/// Whether the gateway must accept the body: an untruncated JSON object with an
/// `entry` array (decided on the mutated value, not by parsing the bytes back).
fn must_accept(value: &Value, truncated: bool) -> bool {
    !truncated && value.get("entry").is_some_and(Value::is_array)
}

#[test]
fn mutated_fixtures_never_get_a_5xx_and_accepted_bodies_are_stored_byte_for_byte() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sys = rt.block_on(TestSystem::start());
    let probe = rt.block_on(Probe::new(&sys));
    let seeds: Vec<Value> = SEEDS
        .iter()
        .map(|name| serde_json::from_slice(&fixture(name)).expect("seed is JSON"))
        .collect();

    let strategy = (
        prop::sample::select(seeds),
        proptest::collection::vec((any::<prop::sample::Index>(), mutation()), 1..5),
        proptest::option::weighted(0.15, any::<prop::sample::Index>()),
    );
    let config = Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(seed, picks, cut)| {
        let (value, mut body) = mutate(seed, &picks);
        let full = body.len();
        if let Some(cut) = cut {
            body.truncate(cut.index(full + 1));
        }
        let accept = must_accept(&value, body.len() < full);
        rt.block_on(async {
            let before = probe.counts().await.webhook_events;
            let res = sys.gateway.post_signed(&body).await;
            let status = res.status().as_u16();
            let after = probe.counts().await.webhook_events;
            prop_assert!(
                status < 500,
                "{status} for {}",
                String::from_utf8_lossy(&body)
            );
            if accept {
                prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                prop_assert_eq!(after, before + 1);
                prop_assert_eq!(probe.last_raw_body().await, body);
            } else {
                prop_assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
                prop_assert_eq!(after, before);
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
