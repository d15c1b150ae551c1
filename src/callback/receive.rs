//! The one way in: a body, in its encoding, into the [`Received`] callback it holds,
//! authenticated as its [`Origin`] requires. HTTP, `zegolog import` and `zegolog quarantine
//! release` all take this path, so a callback is read the same whichever way it arrives, and
//! its errors are one type, [`ReceiveError`], that HTTP maps to statuses in one place.

use super::body::{Encoding, ParseError};
use super::envelope::Envelope;
use super::fields::{FieldError, Fields};
use super::received::{Payload, Received};
use crate::signature::{AuthError, Verifier};

/// Where a callback comes from, hence how it is authenticated.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A request from the network: its signature is checked by `verifier` at `now` (unix
    /// seconds), and its signed triple goes to the signature ledger.
    Network { verifier: &'a Verifier, now: i64 },
    /// zegolog's operator (`zegolog import`, `zegolog quarantine release`): authentic on their
    /// word, with no signed triple for the ledger.
    Operator,
}

/// Why a body is not taken as a callback: what its sender must change.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Not JSON or a form, or a field given twice.
    #[error(transparent)]
    Body(#[from] ParseError),
    /// An envelope field (event, appid, timestamp, nonce, signature) missing or invalid.
    #[error(transparent)]
    Envelope(#[from] FieldError),
    /// Not signed with its app's secret, or outside the clock window.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Reads a body sent in `encoding`, checks it as `origin` requires, and normalises it.
///
/// What is authentic but cannot be typed (a logout with a broken field, say) is not an error:
/// it is [`Payload::Unusable`], quarantined with its reason, because the sender proved it sent
/// it and a retry would not change it.
pub fn receive(
    body: &[u8],
    encoding: Encoding,
    origin: Origin<'_>,
) -> Result<Received, ReceiveError> {
    let fields = Fields::parse(body, encoding)?;
    let envelope = Envelope::from_fields(&fields)?;
    let proof = match origin {
        Origin::Network { verifier, now } => {
            let proof = verifier.verify(envelope.claim(), now)?;
            if proof.is_none() {
                tracing::warn!(
                    event = %envelope.event,
                    appid = envelope.appid,
                    "signature NOT verified (--insecure-skip-verify): this callback may be forged"
                );
            }
            proof
        }
        Origin::Operator => None,
    };
    let received = Received::new(&envelope, &fields, encoding, proof.as_ref());
    if let (Origin::Network { .. }, Payload::Unusable(reason)) = (origin, &received.payload) {
        tracing::warn!(event = %envelope.event, appid = envelope.appid, %reason, "authentic callback quarantined");
    }
    Ok(received)
}
