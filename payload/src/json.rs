//! Tolerant accessors over `serde_json::Value`, the lone-surrogate repair
//! scanner and JSON → `google.protobuf.Struct` conversion.
//!
//! Every accessor treats an absent key and JSON `null` alike (the field's
//! default) and reports a wrong JSON type as an [`Invalid`] naming the field's
//! path, which the caller turns into a quarantined item.

use serde_json::{Map, Value};

/// A field with the wrong JSON type (or an unusable value): the reason a
/// message, status or change is quarantined. Names the field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) String);

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Outcome of reading one field.
pub(crate) type Field<T> = Result<T, Invalid>;

/// Name of a JSON value's type, for error reasons.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Serialises a value back to compact JSON (the `raw_json` of typed items).
pub(crate) fn to_json(value: &Value) -> String {
    // Serialising a `Value` cannot fail (keys are strings); stay panic-free anyway.
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON object plus its path (relative to the item being parsed, e.g.
/// `context` or `order.product_items[2]`), so reasons name the exact field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Obj<'a> {
    /// Wraps `value` when it is an object; otherwise `None`.
    pub(crate) fn from_value(value: &'a Value, path: &'a str) -> Option<Self> {
        value.as_object().map(|map| Self { map, path })
    }

    /// The path of this object (empty for the item itself).
    pub(crate) fn path(&self) -> &'a str {
        self.path
    }

    /// This object serialised back to compact JSON.
    pub(crate) fn to_json(self) -> String {
        serde_json::to_string(self.map).unwrap_or_default()
    }

    /// Path of `key` inside this object.
    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> Invalid {
        Invalid(format!(
            "`{}` must be {expected}, got {}",
            self.path_of(key),
            type_name(got)
        ))
    }

    /// The raw value of `key`, `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether `key` is present and not null.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The one string helper: `Some(s)` for a string, `None` when absent/null,
    /// an error for any other type.
    pub(crate) fn opt_str(&self, key: &str) -> Field<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A string field, empty when absent.
    pub(crate) fn str(&self, key: &str) -> Field<String> {
        self.opt_str(key).map(Option::unwrap_or_default)
    }

    /// A boolean field, `false` when absent.
    pub(crate) fn bool(&self, key: &str) -> Field<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong(key, "a boolean", other)),
        }
    }

    /// A Unix-seconds timestamp: a string of digits or an integral number;
    /// 0 when absent.
    pub(crate) fn timestamp(&self, key: &str) -> Field<i64> {
        let bad = || {
            Invalid(format!(
                "`{}` must be a string of digits or a number",
                self.path_of(key)
            ))
        };
        match self.get(key) {
            None => Ok(0),
            Some(Value::String(s)) => {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                s.parse::<i64>().map_err(|_| bad())
            }
            Some(Value::Number(n)) => number_to_i64(n).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// An integer that may arrive as a number or a numeric string (error codes).
    pub(crate) fn int(&self, key: &str) -> Field<i64> {
        let bad = || Invalid(format!("`{}` must be an integer", self.path_of(key)));
        match self.get(key) {
            None => Ok(0),
            Some(Value::Number(n)) => number_to_i64(n).ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A floating-point JSON number; 0 when absent.
    pub(crate) fn f64(&self, key: &str) -> Field<f64> {
        match self.get(key) {
            None => Ok(0.0),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| Invalid(format!("`{}` is out of range", self.path_of(key)))),
            Some(other) => Err(self.wrong(key, "a number", other)),
        }
    }

    /// A number that may also arrive as a numeric string (order quantities,
    /// prices); 0 when absent.
    pub(crate) fn f64_lenient(&self, key: &str) -> Field<f64> {
        match self.get(key) {
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(f),
                _ => Err(Invalid(format!(
                    "`{}` must be a number or a numeric string",
                    self.path_of(key)
                ))),
            },
            _ => self.f64(key),
        }
    }

    /// A nested array, empty when absent.
    pub(crate) fn arr(&self, key: &str) -> Field<&'a [Value]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items.as_slice()),
            Some(other) => Err(self.wrong(key, "an array", other)),
        }
    }

    /// Maps every element of the array `key` (which must hold objects) with `f`.
    pub(crate) fn each_obj<T>(
        &self,
        key: &str,
        mut f: impl FnMut(Obj<'_>) -> Field<T>,
    ) -> Field<Vec<T>> {
        let items = self.arr(key)?;
        let mut out = Vec::with_capacity(items.len());
        for (k, item) in items.iter().enumerate() {
            let path = format!("{}[{k}]", self.path_of(key));
            let obj = Obj::from_value(item, &path).ok_or_else(|| {
                Invalid(format!(
                    "`{path}` must be an object, got {}",
                    type_name(item)
                ))
            })?;
            out.push(f(obj)?);
        }
        Ok(out)
    }

    /// Reads the nested object `key` (absent → `None`) and maps it with `f`.
    pub(crate) fn with_obj<T>(
        &self,
        key: &str,
        f: impl FnOnce(Obj<'_>) -> Field<T>,
    ) -> Field<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let path = self.path_of(key);
                f(Obj { map, path: &path }).map(Some)
            }
            Some(other) => Err(self.wrong(key, "an object", other)),
        }
    }
}

fn number_to_i64(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Integral floats such as 1.7e9 are accepted; anything else is not a timestamp.
    if f.is_finite() && f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        Some(f as i64)
    } else {
        None
    }
}

/// Rewrites every unpaired UTF-16 surrogate escape (`\uD800`–`\uDFFF` not
/// forming a high+low pair) inside JSON strings to `\uFFFD`.
///
/// serde_json refuses lone surrogates (serde-rs/json#827) while JavaScript and
/// Python accept them, so Meta may well send one (a truncated emoji). Rather
/// than answering 400 to a probably genuine message, the gateway decodes that
/// one character lossily as U+FFFD; the raw bytes are forwarded and stored
/// unchanged. The scanner only looks inside strings and honours backslash
/// escapes, so an escaped backslash followed by text (`\\ud83d`) is left
/// alone. The output has exactly the input's length (both escapes are 6 bytes).
/// Returns `None` when nothing needed rewriting.
pub(crate) fn repair_lone_surrogates(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = input.to_vec();
    let mut changed = false;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                i += 1;
            }
            b'\\' => match input.get(i + 1) {
                Some(b'u') => {
                    let Some(unit) = hex4(input, i + 2) else {
                        i += 2;
                        continue;
                    };
                    if (0xD800..0xDC00).contains(&unit) {
                        let low = (input.get(i + 6) == Some(&b'\\')
                            && input.get(i + 7) == Some(&b'u'))
                        .then(|| hex4(input, i + 8))
                        .flatten();
                        if low.is_some_and(|l| (0xDC00..0xE000).contains(&l)) {
                            i += 12;
                        } else {
                            replace_escape(&mut out, i);
                            changed = true;
                            i += 6;
                        }
                    } else if (0xDC00..0xE000).contains(&unit) {
                        replace_escape(&mut out, i);
                        changed = true;
                        i += 6;
                    } else {
                        i += 6;
                    }
                }
                // Any other escape (`\\`, `\"`, `\/`, `\n`, …) is two bytes.
                Some(_) => i += 2,
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    changed.then_some(out)
}

fn hex4(input: &[u8], at: usize) -> Option<u16> {
    let digits = input.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

fn replace_escape(out: &mut [u8], at: usize) {
    if let Some(slot) = out.get_mut(at..at + 6) {
        slot.copy_from_slice(br"\uFFFD");
    }
}

/// Converts a JSON object to a `google.protobuf.Struct`.
pub(crate) fn to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), to_proto_value(v)))
            .collect(),
    }
}

fn to_proto_value(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_proto_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Longest key (message id, sender id, status, phone number id) recorded. Real ones
/// are under ~130 bytes; anything far longer cannot be a WhatsApp id and would not
/// fit a database index entry, so its item is quarantined instead of failing the POST.
pub(crate) const MAX_KEY_BYTES: usize = 512;

/// `Err` naming `what` when `key` is longer than [`MAX_KEY_BYTES`].
pub(crate) fn check_key_len(what: &str, key: &str) -> Field<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Invalid::new(format!(
            "`{what}` is {} bytes long (at most {MAX_KEY_BYTES})",
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn repaired(s: &str) -> String {
        repair_lone_surrogates(s.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
            .unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn lone_high_and_low_surrogates_become_replacement_escapes() {
        assert_eq!(repaired(r#"{"a":"x\ud83dy"}"#), r#"{"a":"x\uFFFDy"}"#);
        assert_eq!(repaired(r#"{"a":"\ude00"}"#), r#"{"a":"\uFFFD"}"#);
        assert_eq!(repaired(r#"{"a":"\ud83d"}"#), r#"{"a":"\uFFFD"}"#);
        assert_eq!(
            repaired(r#"{"a":"\ud83d\ud83d\ude00"}"#),
            r#"{"a":"\uFFFD\ud83d\ude00"}"#
        );
        assert_eq!(repaired(r#"{"\ud800":1}"#), r#"{"\uFFFD":1}"#);
    }

    #[test]
    fn pairs_escaped_backslashes_and_text_outside_strings_are_untouched() {
        for s in [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\\ud83d"}"#,
            r#"{"a":"\\\"\ud83d\ude00"}"#,
            r#"{"a":"\u00e9\/\u0040"}"#,
        ] {
            assert_eq!(repair_lone_surrogates(s.as_bytes()), None, "{s}");
        }
        // An escaped backslash followed by a real lone surrogate escape.
        assert_eq!(repaired(r#"{"a":"\\\ud83d"}"#), r#"{"a":"\\\uFFFD"}"#);
    }

    #[test]
    fn truncated_input_does_not_panic() {
        for s in [
            r#""\"#,
            r#""\u"#,
            r#""\ud8"#,
            r#""\ud83d\"#,
            r#""\ud83d\u12"#,
        ] {
            let _ = repair_lone_surrogates(s.as_bytes());
        }
    }

    #[test]
    fn accessors_report_paths_and_types() {
        let v = json!({"a": 1, "s": "x", "n": null, "ts": "123", "o": {"b": true}});
        let o = Obj::from_value(&v, "text").unwrap();
        assert_eq!(o.str("s"), Ok("x".into()));
        assert_eq!(o.str("n"), Ok(String::new()));
        assert_eq!(o.str("missing"), Ok(String::new()));
        assert_eq!(
            o.str("a"),
            Err(Invalid("`text.a` must be a string, got a number".into()))
        );
        assert_eq!(o.timestamp("ts"), Ok(123));
        assert_eq!(o.timestamp("a"), Ok(1));
        assert!(o.timestamp("s").is_err());
        assert!(o.arr("o").is_err());
        assert_eq!(o.with_obj("o", |b| b.bool("b")), Ok(Some(true)));
    }

    #[test]
    fn struct_conversion_keeps_nested_values() {
        let v = json!({"a": [1, "x", null, {"b": false}]});
        let s = to_struct(v.as_object().unwrap());
        assert!(s.fields.contains_key("a"));
    }
}
