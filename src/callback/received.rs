//! An authenticated callback, ready to be stored: [`Received`] with its [`Payload`] (the typed
//! event, or why it is kept raw only), and the signed triple the ledger remembers. Made by
//! [`super::receive`], the one way in.

use sha2::{Digest, Sha256};

use super::body::Encoding;
use super::envelope::Envelope;
use super::events::{RoomLifecycle, RoomLogin, RoomLogout, MAX_KEY_BYTES};
use super::fields::Fields;
use crate::signature::Signed;

/// An authenticated callback, ready to be stored: what the archive keeps and, for a logout,
/// its typed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub event: String,
    pub appid: i64,
    /// See [`Fields::business_digest`].
    pub digest: [u8; 32],
    /// The decoded fields as the text of a JSON object (U+0000 replaced, see
    /// [`Fields::to_json`]), as the archive stores it. Spooled as a string, so that a spooled
    /// callback is no deeper than the one received (serde_json refuses nesting beyond 128
    /// levels), and never parsed again on the way to the database.
    pub body: String,
    pub encoding: Encoding,
    pub payload: Payload,
    /// The verified (timestamp, nonce, signature) it came with, for the signature ledger;
    /// `None` for callbacks nobody signed (`zegolog import`, a released quarantined callback,
    /// `--insecure-skip-verify`) and for spool entries written before the ledger existed.
    /// Only a [`Signed`] proof makes one (or the spool, which keeps what was proven).
    pub signed: Option<SignedBy>,
}

/// The triple a callback's signature covers, as the ledger keys it. The signature proves the
/// sender knew the secret at `timestamp`, nothing about the body: the ledger makes one triple
/// carry one body. Made from a [`Signed`] proof only (its fields are private), or restored by
/// the spool's reader from a record of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    timestamp: i64,
    nonce: String,
    signature: String,
}

impl SignedBy {
    /// The triple of a verified callback. The nonce is part of an indexed key: U+0000 (which
    /// PostgreSQL text cannot hold) is replaced, and a nonce beyond [`MAX_KEY_BYTES`] is kept
    /// as its SHA-256, so that no triple is refused by the database.
    fn of(proof: &Signed) -> Self {
        let nonce = proof.nonce();
        let nonce = if nonce.len() > MAX_KEY_BYTES {
            format!("sha256:{}", hex::encode(Sha256::digest(nonce.as_bytes())))
        } else {
            nonce.replace('\0', "\u{FFFD}")
        };
        Self {
            timestamp: proof.timestamp_secs(),
            nonce,
            signature: proof.signature().to_owned(),
        }
    }

    /// A triple the spool kept: proven by [`Signed`] before its callback was spooled. Nothing
    /// but the spool's reader may call it.
    pub(crate) fn restore(timestamp: i64, nonce: String, signature: String) -> Self {
        Self {
            timestamp,
            nonce,
            signature,
        }
    }

    /// The signed timestamp, unix seconds.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Lower-case hex, as the verifier compares it (so case changes do not make a new triple).
    pub fn signature(&self) -> &str {
        &self.signature
    }
}

/// What an authenticated callback holds beyond the archive row.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Logout(RoomLogout),
    Login(RoomLogin),
    Room(RoomLifecycle),
    /// An event zegolog keeps raw only (logins, rooms, streams, future events).
    Other,
    /// Authentic but unusable: quarantined, kept in the archive with this reason
    /// (`callback_events.refused_reason`), in no typed table.
    Unusable(String),
}

impl Received {
    /// Normalises an authenticated callback, with the proof of its signature when it was
    /// checked. Never fails: what cannot be normalised is [`Payload::Unusable`], because a retry
    /// would not fix it and the sender proved it sent it.
    pub(super) fn new(
        envelope: &Envelope,
        fields: &Fields,
        encoding: Encoding,
        proof: Option<&Signed>,
    ) -> Self {
        let (body, unstorable) = fields.to_json_text();
        let appid = envelope.appid;
        let typed = match envelope.event.as_str() {
            RoomLogout::EVENT => RoomLogout::from_fields(appid, fields).map(Payload::Logout),
            RoomLogin::EVENT => RoomLogin::from_fields(appid, fields).map(Payload::Login),
            "room_create" if is_chat_room_create(fields) => Ok(Payload::Other),
            "room_create" => RoomLifecycle::created(appid, fields).map(Payload::Room),
            "room_close" => RoomLifecycle::closed(appid, fields).map(Payload::Room),
            _ => Ok(Payload::Other),
        };
        let mut payload = typed.unwrap_or_else(|e| Payload::Unusable(e.to_string()));
        if let Some(reason) = unstorable {
            payload = Payload::Unusable(reason.into());
        }
        // The event name is indexed: a name beyond any real one is cut, and the callback kept
        // whole in the body, quarantined.
        let mut event = envelope.event.replace('\0', "\u{FFFD}");
        if event.len() > MAX_KEY_BYTES {
            event.truncate(event.floor_char_boundary(MAX_KEY_BYTES));
            payload = Payload::Unusable(format!(
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
            signed: proof.map(SignedBy::of),
        }
    }
}

/// In-app chat (ZIM) sends a `room_create` of its own: no `room_session_id`, an
/// `operator_account` (and `room_name`). It is authentic and whole, only not an RTC room
/// lifecycle: it is archived as sent (event `room_create`, payload [`Payload::Other`]).
/// An RTC room_create without room_session_id and without operator_account stays refused.
pub fn is_chat_room_create(fields: &Fields) -> bool {
    fields.get("room_session_id").is_none() && fields.get("operator_account").is_some()
}
