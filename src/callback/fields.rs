//! Reading one field of a callback: scalars as text or as integers of a given type, and the
//! error that names the field. A body becomes [`Fields`] in `body.rs`; the archive's digest
//! and JSON are in `archive.rs`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

/// A field that is missing or does not hold what the contract says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldError {
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` must be a string or a number, not {found}")]
    NotScalar {
        field: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` must be {expected}, got {value:?}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
}

impl FieldError {
    /// The name of the field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Missing(field) | Self::NotScalar { field, .. } | Self::Invalid { field, .. } => {
                field
            }
        }
    }
}

/// The decoded fields of one callback, by name.
///
/// Form values are URL-decoded strings; JSON values are kept as sent (strings, exact numbers, or
/// whatever an unknown event nests). A field given twice is refused rather than guessed at.
/// [`Fields::parse`] (in `body.rs`) makes them from a body; [`Fields::business_digest`] and
/// [`Fields::to_json`] (in `archive.rs`) are what the archive keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub(super) BTreeMap<String, Value>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A field of the envelope under any spelling of its name: `key` is the name in lower case
    /// without `_`, and a field whose name is `key` once ASCII case and `_` are ignored is that
    /// field (`app_id`, `AppID` and `appid` are one name). Returns the spelling found and its
    /// text (absent, `null` and empty count as missing). Two spellings with different values
    /// are refused rather than guessed between.
    pub(super) fn any_spelling(
        &self,
        key: &'static str,
    ) -> Result<Option<(&str, Cow<'_, str>)>, FieldError> {
        let mut found: Option<(&str, Cow<'_, str>)> = None;
        for (name, value) in &self.0 {
            if !spells(name, key) {
                continue;
            }
            let Some(text) = scalar_text(key, Some(value))? else {
                continue;
            };
            match &found {
                None => found = Some((name, text)),
                Some((first_name, first)) if *first != text => {
                    return Err(FieldError::Invalid {
                        field: key,
                        expected: "one value under all its spellings",
                        value: format!("{first_name}={first}, {name}={text}"),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(found)
    }

    /// A scalar field as text: a JSON string as is, a JSON number as the digits sent.
    /// `null` and an empty string count as absent.
    pub fn text(&self, field: &'static str) -> Result<Option<Cow<'_, str>>, FieldError> {
        scalar_text(field, self.0.get(field))
    }

    /// A scalar field that must be present.
    pub fn required_text(&self, field: &'static str) -> Result<Cow<'_, str>, FieldError> {
        self.text(field)?.ok_or(FieldError::Missing(field))
    }

    /// An integer field, if present; refused when it is not an integer of type `T`.
    pub fn integer<T: std::str::FromStr>(
        &self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, FieldError> {
        match self.text(field)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| FieldError::Invalid {
                field,
                expected,
                value: text.into_owned(),
            }),
        }
    }

    /// An integer field that must be present.
    pub fn required_integer<T: std::str::FromStr>(
        &self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<T, FieldError> {
        self.integer(field, expected)?
            .ok_or(FieldError::Missing(field))
    }
}

/// Whether `name` is `key` (lower case, no `_`) once ASCII case and `_` are ignored.
pub(super) fn spells(name: &str, key: &str) -> bool {
    let mut letters = name
        .bytes()
        .filter(|b| *b != b'_')
        .map(|b| b.to_ascii_lowercase());
    key.bytes().all(|k| letters.next() == Some(k)) && letters.next().is_none()
}

/// A scalar value as text (see [`Fields::text`]); `field` names it in the error.
fn scalar_text<'a>(
    field: &'static str,
    value: Option<&'a Value>,
) -> Result<Option<Cow<'a, str>>, FieldError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => Cow::Borrowed(s.as_str()),
        Some(Value::Number(n)) => Cow::Owned(n.to_string()),
        Some(other) => {
            return Err(FieldError::NotScalar {
                field,
                found: json_type(other),
            })
        }
    };
    Ok(if text.is_empty() { None } else { Some(text) })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
