//! The oracle: runs a body through everything the HTTP handler does before the database, and
//! checks what each step promises.

use proptest::prelude::{prop_assert, prop_assert_eq, prop_assert_ne, TestCaseError};
use serde_json::Value;

use super::sender::ENVELOPE_FIELDS;
use super::{all_fields, MAX_UNIX_MS};
use crate::callback::envelope::MS_TIMESTAMP_ABOVE;
use crate::callback::{Encoding, Envelope, Fields, Payload, Received, RoomLogout};

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Runs a body through everything the handler does before the database, and checks what each
/// step promises. Returns early (fine) where the contract refuses the input.
pub(super) fn check_pipeline(body: &[u8], encoding: Encoding) -> Result<(), TestCaseError> {
    let Ok(fields) = Fields::parse(body, encoding) else {
        return Ok(());
    };
    let digest = fields.business_digest();
    let (archive, changed) = fields.to_json();
    // Whether the archive had to differ from the fields (U+0000, or a number beyond numeric).
    let had_nul = changed.is_some();
    prop_assert!(!holds_nul(&archive), "U+0000 left in the archive");
    let archive_map = archive.as_object().expect("the archive is an object");
    if encoding == Encoding::Form {
        prop_assert!(
            archive_map.values().all(Value::is_string),
            "a form field decoded to a non-string"
        );
    }
    if !had_nul {
        for name in all_fields() {
            prop_assert_eq!(archive.get(name), fields.get(name), "archive of `{}`", name);
        }
    }

    // A room_logout envelope whatever the fields say, so the typed path runs on every input.
    let synthetic = Envelope {
        event: RoomLogout::EVENT.into(),
        appid: 1,
        timestamp: "0".into(),
        timestamp_secs: 0,
        nonce: "n".into(),
        signature: "s".into(),
    };
    check_received(&synthetic, &fields, encoding, digest, &archive, had_nul)?;

    match Envelope::from_fields(&fields) {
        Ok(envelope) => {
            let timestamp = fields.text("timestamp").unwrap().map(|t| t.into_owned());
            prop_assert_eq!(Some(&envelope.timestamp), timestamp.as_ref());
            // Seconds as sent, or milliseconds (other products) above the threshold.
            let sent = envelope.timestamp.parse::<i64>();
            let secs = sent.clone().map(|t| {
                if t > MS_TIMESTAMP_ABOVE {
                    t.div_euclid(1000)
                } else {
                    t
                }
            });
            prop_assert_eq!(secs, Ok(envelope.timestamp_secs), "timestamp {:?}", sent);
            prop_assert!(envelope.appid >= 0);
            prop_assert!(!envelope.event.is_empty());
            prop_assert!(!envelope.nonce.is_empty() && !envelope.signature.is_empty());
            check_received(&envelope, &fields, encoding, digest, &archive, had_nul)?;
        }
        Err(error) => prop_assert!(
            ENVELOPE_FIELDS.contains(&error.field()),
            "envelope error about `{}`",
            error.field()
        ),
    }

    if let Ok(logout) = RoomLogout::from_fields(7, &fields) {
        check_logout(&logout, &fields, 7)?;
    }
    Ok(())
}

fn check_received(
    envelope: &Envelope,
    fields: &Fields,
    encoding: Encoding,
    digest: [u8; 32],
    archive: &Value,
    had_nul: bool,
) -> Result<(), TestCaseError> {
    let received = Received::new(envelope, fields, encoding, None);
    prop_assert_eq!(received.digest, digest);
    // The text the archive stores is the archive object's own serialisation.
    prop_assert_eq!(&received.body, &archive.to_string());
    prop_assert_eq!(received.appid, envelope.appid);
    prop_assert_eq!(received.encoding, encoding);
    prop_assert_eq!(&received.event, &envelope.event.replace('\0', "\u{FFFD}"));
    match &received.payload {
        Payload::Unusable(reason) => {
            prop_assert!(!reason.is_empty() && !reason.contains('\0'));
            if !had_nul && envelope.event == RoomLogout::EVENT {
                let error = RoomLogout::from_fields(envelope.appid, fields).unwrap_err();
                prop_assert_eq!(reason, &error.to_string());
            }
        }
        Payload::Logout(logout) => {
            prop_assert!(!had_nul);
            prop_assert_eq!(envelope.event.as_str(), RoomLogout::EVENT);
            check_logout(logout, fields, envelope.appid)?;
        }
        Payload::Other => {
            prop_assert!(!had_nul);
            prop_assert_ne!(envelope.event.as_str(), RoomLogout::EVENT);
        }
        // Other typed events (logins and rooms, being added): what every typed payload shares.
        #[allow(unreachable_patterns)]
        _ => {
            prop_assert!(!had_nul);
            prop_assert_ne!(envelope.event.as_str(), RoomLogout::EVENT);
        }
    }
    Ok(())
}

fn check_logout(logout: &RoomLogout, fields: &Fields, appid: i64) -> Result<(), TestCaseError> {
    let text = |name: &'static str| fields.text(name).unwrap().map(|t| t.into_owned());
    prop_assert_eq!(logout.appid, appid);
    prop_assert_eq!(Some(logout.room_id.clone()), text("room_id"));
    prop_assert_eq!(Some(logout.user_account.clone()), text("user_account"));
    prop_assert_eq!(&logout.user_nickname, &text("user_nickname"));
    prop_assert_eq!(
        Some(logout.session_id),
        text("session_id").and_then(|t| t.parse().ok())
    );
    prop_assert_eq!(
        logout.room_seq,
        text("room_seq").and_then(|t| t.parse().ok())
    );
    prop_assert_eq!(
        logout.login_time.map(|t| t.timestamp_millis()),
        text("login_time").and_then(|t| t.parse().ok())
    );
    for (time, name) in logout
        .login_time
        .map(|t| (t, "login_time"))
        .into_iter()
        .chain([(logout.logout_time, "logout_time")])
    {
        let ms = time.timestamp_millis();
        prop_assert!((0..=MAX_UNIX_MS).contains(&ms), "{} = {}", name, ms);
        prop_assert_eq!(Some(ms), text(name).and_then(|t| t.parse().ok()));
    }
    Ok(())
}
