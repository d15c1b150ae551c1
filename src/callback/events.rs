//! The events zegolog types: `room_logout`, `room_login`, `room_create` and `room_close`, each
//! normalised from its [`Fields`], with the limits the database needs (key lengths, times).

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::fields::{FieldError, Fields};

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

    /// The names of the logout reasons, by code (0-4), as the SQL function
    /// `zegolog_reason_name` decodes them; any other code, or none, is [`Self::UNKNOWN_REASON`].
    pub const REASONS: [&'static str; 5] = [
        "normal",
        "heartbeat_timeout",
        "connection_lost",
        "kicked_out",
        "token_expired",
    ];
    pub const UNKNOWN_REASON: &'static str = "unknown";

    /// This logout's decoded reason: one of [`Self::REASONS`] or [`Self::UNKNOWN_REASON`].
    pub fn reason_name(&self) -> &'static str {
        self.reason
            .and_then(|code| usize::try_from(code).ok())
            .and_then(|code| Self::REASONS.get(code).copied())
            .unwrap_or(Self::UNKNOWN_REASON)
    }

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
