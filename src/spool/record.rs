//! What one spool entry holds: a [`SpoolRecord`], versioned, and the records of earlier
//! versions still read. The format and its versions are described in the spool's module docs.
//!
//! The record is the spool's own type, not [`Received`]: a callback spooled by one zegolog is
//! drained by the next one, so the record changes only with a new version, while `Received`
//! changes whenever the contract does. [`SpoolRecord::of`] and [`SpoolRecord::into_received`]
//! are the only code that knows both.

use serde::{Deserialize, Serialize};

use crate::callback::{
    Encoding, Payload, Received, RoomLifecycle, RoomLogin, RoomLogout, SignedBy,
};

/// The version this zegolog writes.
pub const VERSION: u64 = 1;

/// Why a spool entry cannot be read back as a callback.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a spool record (no JSON object with a readable `version`): {0}")]
    Unreadable(serde_json::Error),
    #[error("spool record version {0} is unknown: this zegolog reads versions 0 (unversioned) to {VERSION}; a newer zegolog wrote it")]
    UnknownVersion(u64),
    #[error("a spool record of version {version} does not decode: {error}")]
    Malformed {
        version: u64,
        error: serde_json::Error,
    },
}

/// A spooled callback, version [`VERSION`]. Any change to what this serialises to (names, types,
/// the typed events' own serialised fields) is a new version, read alongside the old ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// First, so that a reader sees which record it holds.
    pub version: u64,
    pub event: String,
    pub appid: i64,
    /// The business digest, as lower-case hex.
    #[serde(with = "hex_digest")]
    pub digest: [u8; 32],
    /// The archived body, as the text of a JSON object: a string, so that a record is never
    /// deeper than three levels, whatever the callback held.
    pub body: String,
    pub encoding: RecordEncoding,
    pub payload: RecordPayload,
    /// `None` for a callback nobody signed.
    pub signed: Option<RecordSigned>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordEncoding {
    Json,
    Form,
}

/// The typed event travels in the serialised form of its own type (`RoomLogout`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordPayload {
    Logout(RoomLogout),
    Login(RoomLogin),
    Room(RoomLifecycle),
    Other,
    Unusable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSigned {
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

impl SpoolRecord {
    /// The record of a callback to spool.
    pub fn of(received: &Received) -> Self {
        Self {
            version: VERSION,
            event: received.event.clone(),
            appid: received.appid,
            digest: received.digest,
            body: received.body.clone(),
            encoding: match received.encoding {
                Encoding::Json => RecordEncoding::Json,
                Encoding::Form => RecordEncoding::Form,
            },
            payload: match &received.payload {
                Payload::Logout(logout) => RecordPayload::Logout(logout.clone()),
                Payload::Login(login) => RecordPayload::Login(login.clone()),
                Payload::Room(room) => RecordPayload::Room(room.clone()),
                Payload::Other => RecordPayload::Other,
                Payload::Unusable(reason) => RecordPayload::Unusable(reason.clone()),
            },
            signed: received.signed.as_ref().map(|signed| RecordSigned {
                timestamp: signed.timestamp(),
                nonce: signed.nonce().to_owned(),
                signature: signed.signature().to_owned(),
            }),
        }
    }

    /// The callback a record holds, as it was spooled.
    pub fn into_received(self) -> Received {
        Received {
            event: self.event,
            appid: self.appid,
            digest: self.digest,
            body: self.body,
            encoding: match self.encoding {
                RecordEncoding::Json => Encoding::Json,
                RecordEncoding::Form => Encoding::Form,
            },
            payload: match self.payload {
                RecordPayload::Logout(logout) => Payload::Logout(logout),
                RecordPayload::Login(login) => Payload::Login(login),
                RecordPayload::Room(room) => Payload::Room(room),
                RecordPayload::Other => Payload::Other,
                RecordPayload::Unusable(reason) => Payload::Unusable(reason),
            },
            signed: self
                .signed
                .map(|signed| SignedBy::restore(signed.timestamp, signed.nonce, signed.signature)),
        }
    }
}

/// The bytes a callback is spooled as: always a record of the current version.
pub fn encode(received: &Received) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&SpoolRecord::of(received))
}

/// The callback a spool entry holds, whichever version wrote it.
pub fn decode(bytes: &[u8]) -> Result<Received, RecordError> {
    /// Only the tag: the rest of the entry is skipped, and read once its version is known.
    #[derive(Deserialize)]
    struct Tag {
        version: Option<u64>,
    }
    let tag: Tag = serde_json::from_slice(bytes).map_err(RecordError::Unreadable)?;
    let record = match tag.version {
        None => serde_json::from_slice::<v0::Record>(bytes).map(SpoolRecord::from),
        Some(VERSION) => serde_json::from_slice::<SpoolRecord>(bytes),
        Some(version) => return Err(RecordError::UnknownVersion(version)),
    };
    let record = record.map_err(|error| RecordError::Malformed {
        version: tag.version.unwrap_or(0),
        error,
    })?;
    Ok(record.into_received())
}

/// Version 0: the entries every zegolog wrote before records had a version, `serde_json` of
/// the `Received` of that time. Frozen here as it was, so that `Received` can change.
mod v0 {
    use serde::Deserialize;

    use super::{RecordEncoding, RecordPayload, RecordSigned, SpoolRecord};
    use crate::callback::{RoomLifecycle, RoomLogin, RoomLogout};

    #[derive(Deserialize)]
    pub struct Record {
        event: String,
        appid: i64,
        /// 32 numbers.
        digest: [u8; 32],
        body: String,
        encoding: Encoding,
        payload: Payload,
        /// Missing in entries spooled before the signature ledger existed.
        #[serde(default)]
        signed: Option<Signed>,
    }

    #[derive(Deserialize)]
    enum Encoding {
        Json,
        Form,
    }

    #[derive(Deserialize)]
    enum Payload {
        Logout(RoomLogout),
        Login(RoomLogin),
        Room(RoomLifecycle),
        Other,
        Refused(String),
    }

    #[derive(Deserialize)]
    struct Signed {
        timestamp: i64,
        nonce: String,
        signature: String,
    }

    impl From<Record> for SpoolRecord {
        fn from(old: Record) -> Self {
            Self {
                version: 0,
                event: old.event,
                appid: old.appid,
                digest: old.digest,
                body: old.body,
                encoding: match old.encoding {
                    Encoding::Json => RecordEncoding::Json,
                    Encoding::Form => RecordEncoding::Form,
                },
                payload: match old.payload {
                    Payload::Logout(logout) => RecordPayload::Logout(logout),
                    Payload::Login(login) => RecordPayload::Login(login),
                    Payload::Room(room) => RecordPayload::Room(room),
                    Payload::Other => RecordPayload::Other,
                    Payload::Refused(reason) => RecordPayload::Unusable(reason),
                },
                signed: old.signed.map(|signed| RecordSigned {
                    timestamp: signed.timestamp,
                    nonce: signed.nonce,
                    signature: signed.signature,
                }),
            }
        }
    }
}

/// `[u8; 32]` as 64 lower-case hex digits.
mod hex_digest {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut digest = [0; 32];
        hex::decode_to_slice(&text, &mut digest).map_err(D::Error::custom)?;
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{receive, Envelope, Fields, Origin};

    /// A callback as the HTTP layer makes it: normalised and, if `signed`, remembered under its
    /// envelope's triple (the fixtures' signatures are not real ones: the triple is set as the
    /// spool's reader sets it).
    fn received(body: &[u8], encoding: Encoding, signed: bool) -> Received {
        let mut received = receive(body, encoding, Origin::Operator).unwrap();
        if signed {
            let fields = Fields::parse(body, encoding).unwrap();
            let envelope = Envelope::from_fields(&fields).unwrap();
            received.signed = Some(SignedBy::restore(
                envelope.timestamp_secs,
                envelope.nonce,
                envelope.signature.to_ascii_lowercase(),
            ));
        }
        received
    }

    /// The callbacks the version 0 fixtures were spooled from (`tests/fixtures/spool-v0/`),
    /// with the bytes the spool of that version stored for each.
    fn version_0_fixtures() -> [(&'static str, &'static [u8], Received); 5] {
        macro_rules! fixture {
            ($name:literal) => {
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/spool-v0/",
                    $name,
                    ".json"
                ))
            };
        }
        [
            (
                "logout-signed",
                fixture!("logout-signed"),
                received(
                    br#"{"event":"room_logout","appid":"1","timestamp":"1499676978","nonce":"350176","signature":"5D41402ABC4B2A76B9719D911017C592","room_id":"rid_1242649","room_seq":"6085791336856668982","user_account":"888120154","user_nickname":"888120154","session_id":"792462300429684736","login_time":"1663740623660","logout_time":"1663740627986","reason":"0","user_role":"1","user_update_seq":"13"}"#,
                    Encoding::Json,
                    true,
                ),
            ),
            (
                "login-signed-form",
                fixture!("login-signed-form"),
                received(
                    b"event=room_login&appid=1&timestamp=1499676978&nonce=42&signature=0123456789abcdef0123456789abcdef01234567&room_id=r&room_name=R&room_seq=5&user_account=u&user_nickname=%E5%BC%A0+san&session_id=9&login_time=1499676978027&user_role=2&auth_level=1&relogin=0&user_update_seq=12&term_type=3&callback_data=hello",
                    Encoding::Form,
                    true,
                ),
            ),
            (
                "other-unsigned",
                fixture!("other-unsigned"),
                received(
                    br#"{"event":"stream_create","appid":7,"timestamp":"1499676978","nonce":"n","signature":"s","stream_id":"s1","channel_id":"0","nested":{"a":[1,2,{"b":null}]}}"#,
                    Encoding::Json,
                    false,
                ),
            ),
            (
                "refused-signed",
                fixture!("refused-signed"),
                received(
                    br#"{"event":"room_logout","appid":"1","timestamp":"1499676978","nonce":"77","signature":"abc","room_id":"r","user_account":"u","session_id":"1","login_time":"1"}"#,
                    Encoding::Json,
                    true,
                ),
            ),
            (
                "room-create-signed",
                fixture!("room-create-signed"),
                received(
                    br#"{"event":"room_create","appid":"1","timestamp":"1499676978","nonce":"5","signature":"def","room_id":"r","room_session_id":858012925204410400,"room_create_time":"1499676978027","id_name":"host"}"#,
                    Encoding::Json,
                    true,
                ),
            ),
        ]
    }

    #[test]
    fn entries_written_before_records_had_a_version_are_read() {
        for (name, bytes, expected) in version_0_fixtures() {
            let decoded = decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(decoded, expected, "{name}");
        }
        // The fixtures cover every kind of payload, signed and not.
        let fixtures = version_0_fixtures();
        assert_eq!(
            fixtures.iter().filter(|(.., r)| r.signed.is_none()).count(),
            1
        );
        assert!(matches!(
            fixtures.map(|(.., r)| r.payload),
            [
                Payload::Logout(_),
                Payload::Login(_),
                Payload::Other,
                Payload::Unusable(_),
                Payload::Room(_)
            ]
        ));
    }

    #[test]
    fn entries_of_version_0_without_a_signed_triple_are_read_unsigned() {
        // Spooled before the signature ledger existed: no `signed` key at all.
        let (_, bytes, expected) = version_0_fixtures().into_iter().next().unwrap();
        let mut old: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).unwrap();
        assert!(old.remove("signed").is_some());

        let decoded = decode(&serde_json::to_vec(&old).unwrap()).unwrap();

        assert_eq!(decoded.signed, None);
        assert_eq!(
            decoded,
            Received {
                signed: None,
                ..expected
            }
        );
    }

    #[test]
    fn new_records_are_versioned_and_round_trip() {
        for (name, _, received) in version_0_fixtures() {
            let bytes = encode(&received).unwrap();
            assert!(
                bytes.starts_with(format!(r#"{{"version":{VERSION},"#).as_bytes()),
                "{name}: {}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(decode(&bytes).unwrap(), received, "{name}");
        }
    }

    #[test]
    fn a_record_of_version_1_reads_as_written() {
        // The exact bytes of version 1, written out: a change to the record's serialised form
        // breaks this test, and calls for a new version rather than a new test.
        let bytes = br#"{"version":1,"event":"room_logout","appid":1,"digest":"11be05974a667650581b10ac99fa90a69fda81bcce5ced7466ca3d6d0d6881cc","body":"{\"appid\":\"1\",\"event\":\"room_logout\",\"login_time\":\"1\",\"nonce\":\"77\",\"room_id\":\"r\",\"session_id\":\"1\",\"signature\":\"abc\",\"timestamp\":\"1499676978\",\"user_account\":\"u\"}","encoding":"json","payload":{"unusable":"field `logout_time` is missing"},"signed":{"timestamp":1499676978,"nonce":"77","signature":"abc"}}"#;
        let (_, _, expected) = version_0_fixtures()
            .into_iter()
            .find(|(name, ..)| *name == "refused-signed")
            .unwrap();

        assert_eq!(decode(bytes).unwrap(), expected);
        assert_eq!(encode(&expected).unwrap(), bytes);
    }

    #[test]
    fn an_unknown_version_is_named_in_the_error() {
        let (_, _, received) = version_0_fixtures().into_iter().next().unwrap();
        let mut record = serde_json::to_value(SpoolRecord::of(&received)).unwrap();
        record["version"] = serde_json::json!(2);

        let error = decode(&serde_json::to_vec(&record).unwrap()).unwrap_err();

        assert!(matches!(error, RecordError::UnknownVersion(2)), "{error:?}");
        assert!(
            error.to_string().contains("version 2 is unknown"),
            "{error}"
        );
    }

    #[test]
    fn damaged_records_name_their_version() {
        let v0 = br#"{"event":"x","appid":1}"#;
        let v1 = br#"{"version":1,"event":"x","appid":1,"digest":"zz"}"#;
        let cases: [(&[u8], &str); 4] = [
            (v0, "version 0 does not decode"),
            (v1, "version 1 does not decode"),
            (br#"{"version":"one"}"#, "not a spool record"),
            (b"\x00\xff", "not a spool record"),
        ];
        for (bytes, reason) in cases {
            let error = decode(bytes).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
    }
    proptest::proptest! {
        /// Whatever a callback holds comes out of a record whole: any body text (a body is a
        /// string in the record, so nesting costs nothing), event, appid and triple.
        #[test]
        fn records_round_trip_any_callback(
            event in ".{0,40}",
            appid in proptest::prelude::any::<i64>(),
            digest in proptest::prelude::any::<[u8; 32]>(),
            body in "(.|\\[|\\]|\\{|\\}){0,300}",
            form in proptest::prelude::any::<bool>(),
            unusable in proptest::option::of(".{0,80}"),
            signed in proptest::option::of((proptest::prelude::any::<i64>(), ".{0,80}", "[0-9a-f]{40}")),
        ) {
            let received = Received {
                event,
                appid,
                digest,
                body,
                encoding: if form { Encoding::Form } else { Encoding::Json },
                payload: unusable.map_or(Payload::Other, Payload::Unusable),
                signed: signed.map(|(t, n, s)| SignedBy::restore(t, n, s)),
            };
            let bytes = encode(&received).unwrap();
            proptest::prop_assert_eq!(decode(&bytes).unwrap(), received);
        }
    }
}
