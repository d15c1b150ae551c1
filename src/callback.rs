//! The callback contract: request bodies into fields, fields into typed events.
//!
//! ZEGOCLOUD sends every event to one URL, as JSON or as an URL-encoded form, with scalars as
//! JSON strings or JSON numbers depending on the documentation version (see
//! `../shared/spec/zego-callbacks.md`). This module turns both encodings into one [`Fields`] map,
//! reads the signed envelope out of it, and normalises a `room_logout` into a [`RoomLogout`].
//! It knows nothing of HTTP or SQL.
//!
//! Numbers never pass through a float: `serde_json` is built with `arbitrary_precision`, so a JSON
//! number keeps the digits that were sent and is parsed as an integer here or refused.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(BTreeMap<String, Value>);

/// Fields left out of the business digest: a retry may change them and still be the same callback.
/// Other ZEGOCLOUD products spell them in PascalCase.
const SIGNATURE_FIELDS: [&str; 6] = [
    "timestamp",
    "nonce",
    "signature",
    "Timestamp",
    "Nonce",
    "Signature",
];

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

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The first of these names the callback has a field for, else the first name (for the
    /// error that says it is missing).
    fn first_present(&self, names: &[&'static str]) -> &'static str {
        names
            .iter()
            .copied()
            .find(|name| self.0.contains_key(*name))
            .unwrap_or(names[0])
    }

    /// A scalar field as text: a JSON string as is, a JSON number as the digits sent.
    /// `null` and an empty string count as absent.
    pub fn text(&self, field: &'static str) -> Result<Option<Cow<'_, str>>, FieldError> {
        let text = match self.0.get(field) {
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

    /// SHA-256 over every field but timestamp, nonce and signature: what makes two deliveries
    /// the same callback. Strings and numbers with the same text digest alike, so a sender that
    /// switches between `"7"` and `7` does not create a new event.
    pub fn business_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for (name, value) in &self.0 {
            if SIGNATURE_FIELDS.contains(&name.as_str()) {
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
}

/// What [`Fields::to_json`] changed.
#[derive(Default)]
struct Changes {
    nul: bool,
    number: bool,
}

impl Changes {
    fn text(&mut self, s: &str) -> String {
        if s.contains('\0') {
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

/// The names each envelope field goes by: ZEGOCLOUD's RTC callbacks in snake case, its other
/// products (cloud recording, AI agent, speech recognition, whiteboard, ...) in PascalCase or
/// with `app_id`. The first one present is used.
const EVENT_NAMES: [&str; 2] = ["event", "Event"];
const APPID_NAMES: [&str; 5] = ["appid", "Appid", "AppId", "AppID", "app_id"];
const TIMESTAMP_NAMES: [&str; 2] = ["timestamp", "Timestamp"];
const NONCE_NAMES: [&str; 2] = ["nonce", "Nonce"];
const SIGNATURE_NAMES: [&str; 2] = ["signature", "Signature"];

/// A signed timestamp above this is in milliseconds (AI agent, speech recognition): as seconds
/// it would be after the year 5138, as milliseconds it is after March 1973.
const MS_TIMESTAMP_ABOVE: i64 = 100_000_000_000;

/// The event name of a cloud recording callback, which has a numeric `event_type` and no
/// `event`: `cloud_recording:<event_type>`.
pub const CLOUD_RECORDING_PREFIX: &str = "cloud_recording:";

/// The fields every event carries and the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event: String,
    pub appid: i64,
    /// The timestamp as sent: the signature is computed over this text.
    pub timestamp: String,
    /// The timestamp in unix seconds.
    pub timestamp_secs: i64,
    pub nonce: String,
    pub signature: String,
}

impl Envelope {
    /// Reads the envelope under any of the names ZEGOCLOUD's products use (see
    /// [`EVENT_NAMES`] and the others). A timestamp in milliseconds is recognised by its
    /// magnitude: `timestamp` keeps the text as sent (the signature covers it),
    /// `timestamp_secs` is in seconds.
    pub fn from_fields(fields: &Fields) -> Result<Self, FieldError> {
        let timestamp_field = fields.first_present(&TIMESTAMP_NAMES);
        let timestamp = fields.required_text(timestamp_field)?.into_owned();
        let timestamp_number: i64 = timestamp.parse().map_err(|_| FieldError::Invalid {
            field: "timestamp",
            expected: "unix seconds",
            value: timestamp.clone(),
        })?;
        let timestamp_secs = if timestamp_number > MS_TIMESTAMP_ABOVE {
            timestamp_number.div_euclid(1000)
        } else {
            timestamp_number
        };
        let appid: i64 = fields
            .required_integer(fields.first_present(&APPID_NAMES), "a non-negative integer")?;
        if appid < 0 {
            return Err(FieldError::Invalid {
                field: "appid",
                expected: "a non-negative integer",
                value: appid.to_string(),
            });
        }
        let event = match fields.text(fields.first_present(&EVENT_NAMES))? {
            Some(event) => event.into_owned(),
            // Cloud recording: a numeric event_type instead of an event name.
            None => match fields.integer::<i64>("event_type", "an integer")? {
                Some(kind) => format!("{CLOUD_RECORDING_PREFIX}{kind}"),
                None => return Err(FieldError::Missing("event")),
            },
        };
        Ok(Self {
            event,
            appid,
            timestamp,
            timestamp_secs,
            nonce: fields
                .required_text(fields.first_present(&NONCE_NAMES))?
                .into_owned(),
            signature: fields
                .required_text(fields.first_present(&SIGNATURE_NAMES))?
                .into_owned(),
        })
    }
}

/// A user left a room: the `room_logout` event, typed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomLogout {
    pub appid: i64,
    pub room_id: String,
    pub room_seq: Option<u64>,
    pub user_account: String,
    pub user_nickname: Option<String>,
    pub session_id: u64,
    /// `None` for the room_logout of the 2022-2023 docs, which has no login_time: the store
    /// pairs it with its room_login.
    pub login_time: Option<DateTime<Utc>>,
    pub logout_time: DateTime<Utc>,
    pub reason: Option<i32>,
    pub user_role: Option<i32>,
    pub user_update_seq: Option<i64>,
}

/// The longest room id, user account or event name accepted, in bytes. They are indexed, and a
/// PostgreSQL btree entry holds at most 2,704 bytes; ZEGOCLOUD's own limits are far lower
/// (room ids 128 bytes, user ids 64).
pub const MAX_KEY_BYTES: usize = 1024;

/// The latest unix millisecond accepted as a time: 9999-12-31T23:59:59.999Z.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;

impl RoomLogout {
    pub const EVENT: &'static str = "room_logout";

    /// Normalises the fields of an authentic `room_logout`.
    pub fn from_fields(appid: i64, fields: &Fields) -> Result<Self, FieldError> {
        const U64: &str = "an unsigned 64-bit integer";
        const I32: &str = "a 32-bit integer";
        Ok(Self {
            appid,
            room_id: key_text(fields, "room_id")?,
            room_seq: fields.integer("room_seq", U64)?,
            user_account: key_text(fields, "user_account")?,
            user_nickname: fields.text("user_nickname")?.map(Cow::into_owned),
            session_id: fields.required_integer("session_id", U64)?,
            login_time: optional_unix_ms(fields, "login_time")?,
            logout_time: unix_ms(fields, "logout_time")?,
            reason: fields.integer("reason", I32)?,
            user_role: fields.integer("user_role", I32)?,
            user_update_seq: fields.integer("user_update_seq", "a 64-bit integer")?,
        })
    }
}

/// A user entered a room: the `room_login` event, typed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomLogin {
    pub appid: i64,
    pub room_id: String,
    pub room_name: Option<String>,
    pub room_seq: Option<u64>,
    pub user_account: String,
    pub user_nickname: Option<String>,
    pub session_id: u64,
    pub login_time: DateTime<Utc>,
    pub user_role: Option<i32>,
    pub auth_level: Option<i32>,
    pub relogin: Option<i32>,
    pub user_update_seq: Option<i64>,
    /// The user's terminal type (since 2026), a numeric string: 0 TT_NONE ... 7
    /// TT_MINI_PROGRAM, 32 TT_UNKNOWN (decoded in SQL by `zegolog_platform_name`).
    #[serde(default)]
    pub term_type: Option<i32>,
    /// Free text the client passed at login.
    #[serde(default)]
    pub callback_data: Option<String>,
}

impl RoomLogin {
    pub const EVENT: &'static str = "room_login";

    pub fn from_fields(appid: i64, fields: &Fields) -> Result<Self, FieldError> {
        const U64: &str = "an unsigned 64-bit integer";
        const I32: &str = "a 32-bit integer";
        Ok(Self {
            appid,
            room_id: key_text(fields, "room_id")?,
            room_name: fields.text("room_name")?.map(Cow::into_owned),
            room_seq: fields.integer("room_seq", U64)?,
            user_account: key_text(fields, "user_account")?,
            user_nickname: fields.text("user_nickname")?.map(Cow::into_owned),
            session_id: fields.required_integer("session_id", U64)?,
            login_time: unix_ms(fields, "login_time")?,
            user_role: fields.integer("user_role", I32)?,
            auth_level: fields.integer("auth_level", I32)?,
            relogin: fields.integer("relogin", I32)?,
            user_update_seq: fields.integer("user_update_seq", "a 64-bit integer")?,
            term_type: fields.integer("term_type", I32)?,
            callback_data: fields.text("callback_data")?.map(Cow::into_owned),
        })
    }
}

/// A room was created or closed: `room_create` / `room_close`, typed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomLifecycle {
    pub appid: i64,
    pub room_id: String,
    /// The room lifecycle id; `room_seq` of the logins and logouts in it.
    pub room_session_id: u64,
    /// `room_create` or `room_close`.
    pub event: String,
    /// `room_create_time` or `room_close_time`.
    pub at: DateTime<Utc>,
    /// `id_name` of a room_create: the creator's user id.
    pub creator: Option<String>,
    pub close_reason: Option<i32>,
}

impl RoomLifecycle {
    pub fn created(appid: i64, fields: &Fields) -> Result<Self, FieldError> {
        Ok(Self {
            creator: fields.text("id_name")?.map(Cow::into_owned),
            close_reason: None,
            ..Self::common(appid, fields, "room_create", "room_create_time")?
        })
    }

    pub fn closed(appid: i64, fields: &Fields) -> Result<Self, FieldError> {
        Ok(Self {
            close_reason: fields.integer("close_reason", "a 32-bit integer")?,
            ..Self::common(appid, fields, "room_close", "room_close_time")?
        })
    }

    fn common(
        appid: i64,
        fields: &Fields,
        event: &str,
        time_field: &'static str,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            appid,
            room_id: key_text(fields, "room_id")?,
            room_session_id: fields
                .required_integer("room_session_id", "an unsigned 64-bit integer")?,
            event: event.to_owned(),
            at: unix_ms(fields, time_field)?,
            creator: None,
            close_reason: None,
        })
    }
}

/// A required text field that is part of a unique key: at most [`MAX_KEY_BYTES`].
fn key_text(fields: &Fields, field: &'static str) -> Result<String, FieldError> {
    let text = fields.required_text(field)?;
    if text.len() > MAX_KEY_BYTES {
        return Err(FieldError::Invalid {
            field,
            expected: "at most 1024 bytes",
            value: format!(
                "{}... ({} bytes)",
                &text[..text.floor_char_boundary(32)],
                text.len()
            ),
        });
    }
    Ok(text.into_owned())
}

/// [`unix_ms`] for a field that may be absent.
fn optional_unix_ms(
    fields: &Fields,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    match fields.text(field)? {
        None => Ok(None),
        Some(_) => unix_ms(fields, field).map(Some),
    }
}

/// A time in unix milliseconds, between 1970 and the end of year 9999.
fn unix_ms(fields: &Fields, field: &'static str) -> Result<DateTime<Utc>, FieldError> {
    const EXPECTED: &str = "unix milliseconds between 1970 and 9999";
    let ms: i64 = fields.required_integer(field, EXPECTED)?;
    (0..=MAX_UNIX_MS)
        .contains(&ms)
        .then(|| DateTime::from_timestamp_millis(ms))
        .flatten()
        .ok_or_else(|| FieldError::Invalid {
            field,
            expected: EXPECTED,
            value: ms.to_string(),
        })
}

/// An authenticated callback, ready to be stored: what the archive keeps and, for a logout,
/// its typed row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Received {
    pub event: String,
    pub appid: i64,
    /// See [`Fields::business_digest`].
    pub digest: [u8; 32],
    /// The decoded fields as a JSON object (U+0000 replaced, see [`Fields::to_json`]).
    /// Serialised as JSON text, so that a spooled callback is no deeper than the one received
    /// (serde_json refuses nesting beyond 128 levels).
    #[serde(with = "json_text")]
    pub body: Value,
    pub encoding: Encoding,
    pub payload: Payload,
    /// The verified (timestamp, nonce, signature) it came with, for the signature ledger;
    /// `None` for callbacks nobody signed (`zegolog import`, a released quarantined callback,
    /// `--insecure-skip-verify`) and for spool entries written before the ledger existed.
    #[serde(default)]
    pub signed: Option<SignedBy>,
}

/// The triple a callback's signature covers. The signature proves the sender knew the secret
/// at `timestamp`, nothing about the body: the ledger makes one triple carry one body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedBy {
    /// The signed timestamp, unix seconds.
    pub timestamp: i64,
    pub nonce: String,
    /// Lower-case hex, as the verifier compares it (so case changes do not make a new triple).
    pub signature: String,
}

impl SignedBy {
    /// The triple of a verified envelope. The nonce is part of an indexed key: U+0000 (which
    /// PostgreSQL text cannot hold) is replaced, and a nonce beyond [`MAX_KEY_BYTES`] is kept
    /// as its SHA-256, so that no triple is refused by the database.
    pub fn of(envelope: &Envelope) -> Self {
        let nonce = if envelope.nonce.len() > MAX_KEY_BYTES {
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(envelope.nonce.as_bytes()))
            )
        } else {
            envelope.nonce.replace('\0', "\u{FFFD}")
        };
        Self {
            timestamp: envelope.timestamp_secs,
            nonce,
            signature: envelope.signature.to_ascii_lowercase(),
        }
    }
}

/// What an authenticated callback holds beyond the archive row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Payload {
    Logout(RoomLogout),
    Login(RoomLogin),
    Room(RoomLifecycle),
    /// An event zegolog keeps raw only (logins, rooms, streams, future events).
    Other,
    /// Authentic but unusable: kept in the archive with this reason, in no typed table.
    Refused(String),
}

impl Received {
    /// Normalises an authenticated callback. Never fails: what cannot be normalised is
    /// [`Payload::Refused`], because a retry would not fix it and the sender proved it sent it.
    pub fn new(envelope: &Envelope, fields: &Fields, encoding: Encoding) -> Self {
        let (body, unstorable) = fields.to_json();
        let appid = envelope.appid;
        let typed = match envelope.event.as_str() {
            RoomLogout::EVENT => RoomLogout::from_fields(appid, fields).map(Payload::Logout),
            RoomLogin::EVENT => RoomLogin::from_fields(appid, fields).map(Payload::Login),
            "room_create" if is_chat_room_create(fields) => Ok(Payload::Other),
            "room_create" => RoomLifecycle::created(appid, fields).map(Payload::Room),
            "room_close" => RoomLifecycle::closed(appid, fields).map(Payload::Room),
            _ => Ok(Payload::Other),
        };
        let mut payload = typed.unwrap_or_else(|e| Payload::Refused(e.to_string()));
        if let Some(reason) = unstorable {
            payload = Payload::Refused(reason.into());
        }
        // The event name is indexed: a name beyond any real one is cut, and the callback kept
        // whole in the body, quarantined.
        let mut event = envelope.event.replace('\0', "\u{FFFD}");
        if event.len() > MAX_KEY_BYTES {
            event.truncate(event.floor_char_boundary(MAX_KEY_BYTES));
            payload = Payload::Refused(format!(
                "the event name is longer than {MAX_KEY_BYTES} bytes (cut in column event, whole in body)"
            ));
        }
        Self {
            event,
            appid: envelope.appid,
            digest: fields.business_digest(),
            body,
            encoding,
            payload,
            signed: None,
        }
    }

    /// The same callback, remembered in the signature ledger under its envelope's triple. Call
    /// it only once the signature was verified.
    pub fn signed_by(mut self, envelope: &Envelope) -> Self {
        self.signed = Some(SignedBy::of(envelope));
        self
    }
}

/// In-app chat (ZIM) sends a `room_create` of its own: no `room_session_id`, an
/// `operator_account` (and `room_name`). It is authentic and whole, only not an RTC room
/// lifecycle: it is archived as sent (event `room_create`, payload [`Payload::Other`]).
/// An RTC room_create without room_session_id and without operator_account stays refused.
pub fn is_chat_room_create(fields: &Fields) -> bool {
    fields.get("room_session_id").is_none() && fields.get("operator_account").is_some()
}

mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VENDOR_SAMPLE: &str = r#"{"event":"room_logout","appid":"1","timestamp":"1499676978","nonce":"350176","signature":"signature",
     "room_id":"rid_1242649","room_seq":"6085791336856668982","user_account":"888120154",
     "user_nickname":"888120154","session_id":"792462300429684736","login_time":"1663740623660",
     "logout_time":"1663740627986","reason":"0","user_role":"1","user_update_seq":"13"}"#;

    #[test]
    fn vendor_sample_normalises() {
        let fields = Fields::parse(VENDOR_SAMPLE.as_bytes(), Encoding::Json).unwrap();
        let envelope = Envelope::from_fields(&fields).unwrap();
        assert_eq!(envelope.event, "room_logout");
        assert_eq!(envelope.appid, 1);
        let logout = RoomLogout::from_fields(envelope.appid, &fields).unwrap();
        assert_eq!(logout.room_seq, Some(6_085_791_336_856_668_982));
        assert_eq!(logout.session_id, 792_462_300_429_684_736);
        assert_eq!(
            (logout.logout_time - logout.login_time.unwrap()).num_milliseconds(),
            4326
        );
        assert_eq!(logout.reason, Some(0));
        assert_eq!(logout.user_role, Some(1));
        assert_eq!(logout.user_update_seq, Some(13));
    }

    #[test]
    fn login_and_room_events_normalise() {
        let login =
            br#"{"event":"room_login","appid":1,"room_id":"r","room_name":"R","room_seq":"5",
            "user_account":"u","session_id":"0","login_time":1499676978027,"user_role":"2",
            "auth_level":"1","relogin":"0","user_update_seq":"12"}"#;
        let fields = Fields::parse(login, Encoding::Json).unwrap();
        let login = RoomLogin::from_fields(1, &fields).unwrap();
        assert_eq!(login.login_time.timestamp_millis(), 1_499_676_978_027);
        assert_eq!((login.session_id, login.relogin), (0, Some(0)));

        let create = br#"{"room_id":"r","room_session_id":858012925204410400,"room_create_time":"1499676978027","id_name":"host"}"#;
        let fields = Fields::parse(create, Encoding::Json).unwrap();
        let room = RoomLifecycle::created(1, &fields).unwrap();
        assert_eq!(room.room_session_id, 858_012_925_204_410_400);
        assert_eq!(room.creator.as_deref(), Some("host"));
        let close = br#"{"room_id":"r","room_session_id":"1","room_close_time":"1499676978027","close_reason":"2"}"#;
        let fields = Fields::parse(close, Encoding::Json).unwrap();
        assert_eq!(
            RoomLifecycle::closed(1, &fields).unwrap().close_reason,
            Some(2)
        );
    }

    #[test]
    fn json_numbers_keep_every_digit() {
        let body = br#"{"session_id": 18446744073709551615, "login_time": 1663740623660}"#;
        let fields = Fields::parse(body, Encoding::Json).unwrap();
        let id: u64 = fields.required_integer("session_id", "u64").unwrap();
        assert_eq!(id, u64::MAX);
        let too_big = br#"{"session_id": 18446744073709551616}"#;
        let fields = Fields::parse(too_big, Encoding::Json).unwrap();
        assert!(fields.integer::<u64>("session_id", "u64").is_err());
        let float = br#"{"login_time": 1.663740623660e12}"#;
        let fields = Fields::parse(float, Encoding::Json).unwrap();
        assert!(fields.integer::<i64>("login_time", "ms").is_err());
    }

    #[test]
    fn form_values_are_url_decoded() {
        let body = b"event=room_logout&user_nickname=%E5%BC%A0+san&empty=";
        let fields = Fields::parse(body, Encoding::Form).unwrap();
        assert_eq!(fields.text("user_nickname").unwrap().unwrap(), "张 san");
        assert_eq!(fields.text("empty").unwrap(), None);
    }

    #[test]
    fn form_refuses_invalid_utf8_and_duplicates() {
        assert!(Fields::parse(b"a=%FF", Encoding::Form).is_err());
        assert!(Fields::parse(b"a=1&a=2", Encoding::Form).is_err());
    }

    #[test]
    fn json_refuses_duplicates_arrays_and_empty_bodies() {
        assert!(Fields::parse(br#"{"a":1,"a":2}"#, Encoding::Json).is_err());
        assert!(Fields::parse(b"[1,2]", Encoding::Json).is_err());
        assert_eq!(Fields::parse(b"  ", Encoding::Json), Err(ParseError::Empty));
    }

    #[test]
    fn digest_ignores_signature_fields_only() {
        let a = Fields::parse(
            br#"{"event":"x","appid":1,"timestamp":"1","nonce":"a","signature":"s"}"#,
            Encoding::Json,
        )
        .unwrap();
        let b = Fields::parse(
            br#"{"event":"x","appid":"1","timestamp":"2","nonce":"b","signature":"t"}"#,
            Encoding::Json,
        )
        .unwrap();
        let c = Fields::parse(
            br#"{"event":"x","appid":2,"timestamp":"1","nonce":"a","signature":"s"}"#,
            Encoding::Json,
        )
        .unwrap();
        assert_eq!(a.business_digest(), b.business_digest());
        assert_ne!(a.business_digest(), c.business_digest());
    }

    #[test]
    fn bad_times_are_refused() {
        for value in ["abc", "-1", "253402300800000", "1.5"] {
            let body = format!(
                r#"{{"room_id":"r","user_account":"u","session_id":"1","login_time":"1","logout_time":"{value}"}}"#
            );
            let fields = Fields::parse(body.as_bytes(), Encoding::Json).unwrap();
            let err = RoomLogout::from_fields(1, &fields).unwrap_err();
            assert_eq!(err.field(), "logout_time", "{value}");
        }
    }

    #[test]
    fn spool_entries_without_a_triple_still_decode() {
        let fields = Fields::parse(VENDOR_SAMPLE.as_bytes(), Encoding::Json).unwrap();
        let envelope = Envelope::from_fields(&fields).unwrap();
        let mut envelope_upper = envelope.clone();
        envelope_upper.signature = "ABCDEF".into();
        let signed = Received::new(&envelope, &fields, Encoding::Json).signed_by(&envelope_upper);
        assert_eq!(signed.signed.as_ref().unwrap().signature, "abcdef");
        assert_eq!(signed.signed.as_ref().unwrap().timestamp, 1_499_676_978);
        let mut old: serde_json::Map<String, Value> =
            serde_json::from_slice(&serde_json::to_vec(&signed).unwrap()).unwrap();
        old.remove("signed");
        let decoded: Received = serde_json::from_value(Value::Object(old)).unwrap();
        assert_eq!(decoded.signed, None);
        assert_eq!(decoded.digest, signed.digest);
    }

    #[test]
    fn nul_characters_are_replaced_in_the_archive() {
        let fields = Fields::parse(br#"{"a":"x\u0000y"}"#, Encoding::Json).unwrap();
        let (json, reason) = fields.to_json();
        assert!(reason.is_some_and(|r| r.contains("U+0000")));
        assert_eq!(json["a"], "x\u{FFFD}y");
    }
}
