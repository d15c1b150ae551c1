//! The callback contract: request bodies into fields, fields into typed events.
//!
//! ZEGOCLOUD sends every event to one URL, as JSON or as an URL-encoded form, with scalars as
//! JSON strings or JSON numbers depending on the documentation version (ZEGOCLOUD's published
//! server callback documentation; every shape zegolog takes is summarised in `docs/callbacks.md`
//! of this repository). This module turns both encodings into one [`Fields`] map, reads the
//! signed envelope out of it, has its signature checked (`crate::signature`), and normalises
//! the events it types (`room_logout`, `room_login`, `room_create`, `room_close`) into a
//! [`Received`] ready to be stored. [`receive`] is the one way in, for HTTP, `import` and
//! `quarantine release` alike. It knows nothing of HTTP or SQL.
//!
//! Numbers never pass through a float: `serde_json` is built with `arbitrary_precision`, so a JSON
//! number keeps the digits that were sent and is parsed as an integer here or refused.
//!
//! # Layout
//! In the order a callback goes through them; every item is re-exported here, as
//! `zegolog::callback::X`.
//! - `body`: a request body (JSON, form, URL-encoded JSON) into [`Fields`]; [`Encoding`], [`ParseError`].
//! - `fields`: [`Fields`], one field as text or as an integer; [`FieldError`].
//! - `archive`: the business digest and the storable JSON of [`Fields`].
//! - `envelope`: the signed [`Envelope`], under the names of every ZEGOCLOUD product.
//! - `events`: the typed events [`RoomLogout`], [`RoomLogin`], [`RoomLifecycle`].
//! - `received`: [`Received`], an authenticated callback ready to be stored, and its [`Payload`].
//! - `receive`: [`receive`], body → fields → envelope → signature check → [`Received`]; [`Origin`], [`ReceiveError`].
//! - `tests`, `proptests`: examples, and property tests of the whole parser.

mod archive;
mod body;
mod envelope;
mod events;
mod fields;
mod receive;
mod received;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use body::{Encoding, ParseError};
pub use envelope::{Envelope, CLOUD_RECORDING_PREFIX};
pub use events::{RoomLifecycle, RoomLogin, RoomLogout, MAX_KEY_BYTES};
pub use fields::{FieldError, Fields};
pub use receive::{receive, Origin, ReceiveError};
pub use received::{is_chat_room_create, Payload, Received, SignedBy};
