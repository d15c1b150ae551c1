//! The traffic model the tools share: what a real app's room traffic looks like, for
//! [`super::loadtest`] (signed callbacks over HTTP) and [`super::seed`] (rows COPYed into
//! PostgreSQL). The popularity curve, the roles, the session lengths, the users' accounts and
//! nicknames and the bots are written once here, so that a load-tested database and a seeded
//! one hold the same kind of rows. What differs by tool stays with the tool: the reasons' mix
//! (seed has an incident hour), each reason's session length, and how `room_seq` is drawn.

use rand::rngs::StdRng;
use rand::Rng;

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 60 * MINUTE_MS;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// `user_role` codes (docs/views.md, "Role codes").
pub(crate) const ROLE_HOST: u8 = 1;
pub(crate) const ROLE_AUDIENCE: u8 = 2;
/// Admin: recording and moderation bots.
pub(crate) const ROLE_ADMIN: u8 = 4;

/// `reason` codes of a logout (docs/views.md).
pub(crate) const REASON_NORMAL: u8 = 0;
pub(crate) const REASON_HEARTBEAT_TIMEOUT: u8 = 1;
pub(crate) const REASON_CONNECTION_LOST: u8 = 2;
pub(crate) const REASON_KICKED_OUT: u8 = 3;
pub(crate) const REASON_TOKEN_EXPIRED: u8 = 4;

/// `room_id` is this and the room's rank: `rid_0` is the busiest room.
pub(crate) const ROOM_ID_PREFIX: &str = "rid_";
/// A bot's `user_account` is this and its room's rank: one recording bot per room.
pub(crate) const BOT_ACCOUNT_PREFIX: &str = "bot_rec_";
pub(crate) const BOT_NICKNAME: &str = "录制机器人 recorder";

/// Nickname stems: many scripts, emoji, and characters that need escaping somewhere (JSON,
/// forms, COPY text). A user's nickname is a stem and a number ([`nickname_stem`]).
pub(crate) const NICKNAMES: &[&str] = &[
    "Alice",
    "bob",
    "张伟",
    "李娜",
    "Мария",
    "José",
    "さくら",
    "김민준",
    "محمد",
    "Zoë",
    "Nguyễn Văn An",
    "🎮 gamer",
    "Tom & Jerry",
    "100% fan+1",
    "the \"quiet\" one",
    "O'Brien",
    "¯\\_(ツ)_/¯",
    "player_",
];

/// A user's role: mostly audience (85%), some hosts (12%), a few admin bots (3%).
pub(crate) fn role(rng: &mut StdRng) -> u8 {
    match rng.gen_range(0..100) {
        0..=84 => ROLE_AUDIENCE,
        85..=96 => ROLE_HOST,
        _ => ROLE_ADMIN,
    }
}

/// A session's length in milliseconds: log-normal with a median of `median_s` seconds and
/// shape `sigma`, kept between a second and twelve hours.
pub(crate) fn session_ms(rng: &mut StdRng, median_s: f64, sigma: f64) -> f64 {
    (median_s * 1000.0 * (sigma * normal(rng)).exp()).clamp(1_000.0, 12.0 * HOUR_MS as f64)
}

/// A human user's `user_account` (nine digits), from `user_hash = mix(user_salt ^ user)`.
pub(crate) fn user_account(user_hash: u64) -> u64 {
    100_000_000 + user_hash % 900_000_000
}

/// The index in [`NICKNAMES`] of a human user's nickname stem, from the same `user_hash` as
/// [`user_account`]; the nickname is the stem followed by `user % 1000`.
pub(crate) fn nickname_stem(user_hash: u64) -> usize {
    (user_hash >> 40) as usize % NICKNAMES.len()
}

/// A rank in `0..n`, rank `r` about `1/(r+1)` as likely as rank 0 (Zipf-like, exponent 1): how
/// popular rooms are.
pub(crate) fn skewed(rng: &mut StdRng, n: u64) -> u64 {
    let u: f64 = rng.gen();
    (((n as f64 + 1.0).powf(u) - 1.0) as u64).min(n - 1)
}

/// A standard normal variate (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// SplitMix64's finaliser: a bijection of u64 that spreads its input well (room_seq per room,
/// account per user).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
