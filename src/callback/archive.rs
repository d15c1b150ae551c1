//! What the archive keeps of [`Fields`]: the business digest that makes two deliveries the same
//! callback, and the fields as one JSON object PostgreSQL can store.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fields::{spells, Fields};

/// Fields left out of the business digest, under any spelling (see [`Fields::any_spelling`]): a
/// retry may change them and still be the same callback.
const SIGNATURE_FIELDS: [&str; 3] = ["timestamp", "nonce", "signature"];

impl Fields {
    /// SHA-256 over every field but timestamp, nonce and signature: what makes two deliveries
    /// the same callback. Strings and numbers with the same text digest alike, so a sender that
    /// switches between `"7"` and `7` does not create a new event.
    pub fn business_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for (name, value) in &self.0 {
            if SIGNATURE_FIELDS.iter().any(|key| spells(name, key)) {
                continue;
            }
            let canonical = match value {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                other => Cow::Owned(format!("\u{1}{other}")),
            };
            for part in [name.as_str(), &canonical] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        hasher.finalize().into()
    }

    /// The fields as one JSON object for the raw archive, and what had to change to make it
    /// storable (`None`: nothing).
    ///
    /// PostgreSQL text and jsonb cannot hold U+0000, and jsonb numbers are PostgreSQL numerics
    /// (at most about 131,072 digits). U+0000 is replaced by U+FFFD; a number PostgreSQL cannot
    /// hold is kept as a JSON string of the digits sent. The caller quarantines such a callback
    /// with the reason instead of losing it.
    pub fn to_json(&self) -> (Value, Option<&'static str>) {
        let mut changes = Changes::default();
        let map = self
            .0
            .iter()
            .map(|(k, v)| (changes.text(k), changes.value(v)))
            .collect();
        (Value::Object(map), changes.reason())
    }

    /// [`Fields::to_json`] as JSON text, the archive's column: the same text as serialising
    /// that object, written straight from the fields when nothing has to change (the common
    /// case), without copying every string into a new object first.
    pub fn to_json_text(&self) -> (String, Option<&'static str>) {
        if self.0.iter().all(|(k, v)| storable_text(k) && storable(v)) {
            let text = serde_json::to_string(&self.0).expect("a map of JSON values serialises");
            return (text, None);
        }
        let (json, reason) = self.to_json();
        (json.to_string(), reason)
    }
}

/// Whether [`Fields::to_json`] keeps `value` as it is (what [`Changes::value`] would change).
fn storable(value: &Value) -> bool {
    match value {
        Value::String(s) => storable_text(s),
        Value::Number(n) => storable_number(&n.to_string()),
        Value::Array(items) => items.iter().all(storable),
        Value::Object(map) => map.iter().all(|(k, v)| storable_text(k) && storable(v)),
        Value::Null | Value::Bool(_) => true,
    }
}

/// What [`Fields::to_json`] changed.
#[derive(Default)]
struct Changes {
    nul: bool,
    number: bool,
}

impl Changes {
    fn text(&mut self, s: &str) -> String {
        if !storable_text(s) {
            self.nul = true;
            s.replace('\0', "\u{FFFD}")
        } else {
            s.to_owned()
        }
    }

    fn value(&mut self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Number(n) if !storable_number(&n.to_string()) => {
                self.number = true;
                Value::String(n.to_string())
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn reason(&self) -> Option<&'static str> {
        match (self.nul, self.number) {
            (false, false) => None,
            (true, false) => Some(
                "a field holds U+0000, which PostgreSQL text cannot store (replaced by U+FFFD in body)",
            ),
            (false, true) => Some(
                "a number is beyond what PostgreSQL can store (kept as a string of its digits in body)",
            ),
            (true, true) => Some(
                "a field holds U+0000 and a number is beyond PostgreSQL's range (both kept as text in body)",
            ),
        }
    }
}

/// Whether PostgreSQL text takes this string as it is: it cannot hold U+0000.
fn storable_text(s: &str) -> bool {
    !s.contains('\0')
}

/// Whether PostgreSQL's jsonb takes this JSON number: its numeric type holds up to 131,072
/// digits before the point and 16,383 after. Anything within a thousand digits either way is
/// taken as is.
fn storable_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()),
        None => (text, Some(0)),
    };
    mantissa.len() <= 1000 && exponent.is_some_and(|e| e.abs() <= 1000)
}
