//! The envelope every event carries and the signature covers (event, appid, timestamp, nonce,
//! signature), under any spelling ZEGOCLOUD's products give their names: one rule, not a list,
//! so that the next product's spelling is read without a code change.

use super::fields::{FieldError, Fields};
use crate::signature::Claim;

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
    /// Reads the envelope under any spelling of its names: ASCII case and `_` are ignored, so
    /// RTC's `appid`, cloud recording's `app_id` and the PascalCase `AppId` / `AppID` of other
    /// products are one field, and so are `timestamp` / `Timestamp`, `nonce` / `Nonce`,
    /// `signature` / `Signature`. The event is `event` under any spelling, else `event_type`
    /// under any spelling (see `Envelope::event_name`). A timestamp in milliseconds is
    /// recognised by its magnitude: `timestamp` keeps the text as sent (the signature covers
    /// it), `timestamp_secs` is in seconds.
    pub fn from_fields(fields: &Fields) -> Result<Self, FieldError> {
        let required = |key: &'static str| -> Result<String, FieldError> {
            match fields.any_spelling(key)? {
                Some((_, text)) => Ok(text.into_owned()),
                None => Err(FieldError::Missing(key)),
            }
        };
        let timestamp = required("timestamp")?;
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
        let appid = required("appid")?;
        let appid: i64 =
            appid
                .parse()
                .ok()
                .filter(|appid| *appid >= 0)
                .ok_or(FieldError::Invalid {
                    field: "appid",
                    expected: "a non-negative integer",
                    value: appid,
                })?;
        Ok(Self {
            event: Self::event_name(fields)?,
            appid,
            timestamp,
            timestamp_secs,
            nonce: required("nonce")?,
            signature: required("signature")?,
        })
    }

    /// What it says about its signature, for [`crate::signature::Verifier::verify`].
    pub fn claim(&self) -> Claim<'_> {
        Claim {
            appid: self.appid,
            timestamp: &self.timestamp,
            timestamp_secs: self.timestamp_secs,
            nonce: &self.nonce,
            signature: &self.signature,
        }
    }

    /// The event's name: the `event` field under any spelling, as sent; without one, the
    /// `event_type` field under any spelling (cloud recording, digital human), as sent when it
    /// is text, and `<spelling>:<number>` when it is a number (`EventType:3`), except cloud
    /// recording's `event_type`, archived as `cloud_recording:<number>` since it was first
    /// accepted.
    fn event_name(fields: &Fields) -> Result<String, FieldError> {
        if let Some((_, event)) = fields.any_spelling("event")? {
            return Ok(event.into_owned());
        }
        match fields.any_spelling("eventtype")? {
            None => Err(FieldError::Missing("event")),
            Some((spelling, kind)) if kind.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(if spelling == "event_type" {
                    format!("{CLOUD_RECORDING_PREFIX}{kind}")
                } else {
                    format!("{spelling}:{kind}")
                })
            }
            Some((_, kind)) => Ok(kind.into_owned()),
        }
    }
}
