//! Request bodies into [`Fields`]: the two encodings ZEGOCLOUD documents (JSON and an
//! URL-encoded form), and a JSON object URL-encoded as a whole. A `Content-Encoding` such as gzip
//! is undone before, by the HTTP layer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::fields::Fields;

/// The two body encodings ZEGOCLOUD documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Encoding {
    Json,
    Form,
}

impl Encoding {
    /// The encoding named by a `Content-Type` header value (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Self::Form)
        } else {
            None
        }
    }

    /// A best guess for a request that names no content type: a JSON object starts with `{`.
    pub fn sniff(body: &[u8]) -> Self {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Form,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// Why a body could not be read as callback fields.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the request body is empty")]
    Empty,
    #[error("the body is not a JSON object: {0}")]
    Json(String),
    #[error("the form body is not valid: {0}")]
    Form(String),
}

impl Fields {
    /// Parses a request body in the given encoding.
    pub fn parse(body: &[u8], encoding: Encoding) -> Result<Self, ParseError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ParseError::Empty);
        }
        if let Some(json) = url_encoded_json(body) {
            // "The callback data format is JSON, you need to decode it with UrlDecode": a JSON
            // object URL-encoded as a whole, whatever the content type says. Decoded once.
            return serde_json::from_slice(&json).map_err(|e| ParseError::Json(e.to_string()));
        }
        match encoding {
            Encoding::Json => {
                serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))
            }
            Encoding::Form => parse_form(body),
        }
    }
}

/// `a=1&b=x%20y+z`: pairs split on `&` and the first `=`, `+` is a space, percent-escapes
/// decoded; the decoded bytes must be UTF-8.
fn parse_form(body: &[u8]) -> Result<Fields, ParseError> {
    let mut fields = BTreeMap::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        let name = form_decode(name)?;
        if name.is_empty() {
            return Err(ParseError::Form("a pair has an empty name".into()));
        }
        let value = form_decode(value)?;
        if fields.contains_key(&name) {
            return Err(ParseError::Form(format!(
                "field `{name}` appears more than once"
            )));
        }
        fields.insert(name, Value::String(value));
    }
    if fields.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(Fields(fields))
}

fn form_decode(raw: &[u8]) -> Result<String, ParseError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| ParseError::Form("a value is not UTF-8 once URL-decoded".into()))
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of callback fields")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = BTreeMap::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if fields.contains_key(&name) {
                        return Err(de::Error::custom(format_args!(
                            "field `{name}` appears more than once"
                        )));
                    }
                    fields.insert(name, value);
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A body that is a JSON object URL-encoded as a whole (`%7B%22event%22...`), decoded once
/// (`+` is a space, as URL encoders write it); `None` for any other body.
fn url_encoded_json(body: &[u8]) -> Option<Vec<u8>> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &body[start..];
    if rest.len() < 3 || !rest[..3].eq_ignore_ascii_case(b"%7B") {
        return None;
    }
    let plus_as_space: Vec<u8> = rest
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Some(percent_encoding::percent_decode(&plus_as_space).collect())
}
