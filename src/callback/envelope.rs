//! The envelope every event carries and the signature covers (event, appid, timestamp, nonce,
//! signature), under any of the names ZEGOCLOUD's products use.

use super::fields::{FieldError, Fields};

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
pub(crate) const MS_TIMESTAMP_ABOVE: i64 = 100_000_000_000;

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
