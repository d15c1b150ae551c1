//! The body generator: each worker's stream of signed `room_logout` callbacks, new logouts and
//! retries of recent ones, in JSON or as a form.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::Rng;

use super::config::BodyEncoding;
use super::fields::FieldWriter;
use super::ledger::LaneIds;
use crate::signature::sign;
use crate::tools::traffic::{
    self, mix, skewed, BOT_ACCOUNT_PREFIX, BOT_NICKNAME, NICKNAMES, REASON_CONNECTION_LOST,
    REASON_HEARTBEAT_TIMEOUT, REASON_KICKED_OUT, REASON_NORMAL, REASON_TOKEN_EXPIRED, ROLE_ADMIN,
    ROOM_ID_PREFIX,
};

/// Earlier callbacks each worker remembers, to send retries of.
const RECENT: usize = 256;

/// The wall clock a callback is made at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub unix_ms: u64,
}

impl Clock {
    pub(super) fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            unix_ms: since.as_millis() as u64,
        }
    }
}

/// What a run's traffic looks like, shared by every worker: the same rooms and users.
#[derive(Clone)]
pub(super) struct Shape {
    /// `{"event":"room_logout","appid":"1","timestamp":"` or `event=room_logout&appid=1&timestamp=`.
    head: Arc<str>,
    encoding: BodyEncoding,
    room_salt: u64,
    user_salt: u64,
}

/// Rooms: rank 0 is the busiest; popularity falls off like 1/rank.
const ROOMS: u64 = 5_000;
/// Users: some much more active than others, like rooms.
const USERS: u64 = 200_000;

impl Shape {
    pub(super) fn new(rng: &mut StdRng, appid: i64, encoding: BodyEncoding) -> Self {
        let head = match encoding {
            BodyEncoding::Json => {
                format!(r#"{{"event":"room_logout","appid":"{appid}","timestamp":""#)
            }
            BodyEncoding::Form => format!("event=room_logout&appid={appid}&timestamp="),
        };
        Self {
            head: head.into(),
            encoding,
            room_salt: rng.gen(),
            user_salt: rng.gen(),
        }
    }
}

/// Which logout a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pick {
    /// The logout's index in its worker's lane (see [`super::Ledger`]).
    pub k: u64,
    /// A retry of a logout sent before.
    pub retry: bool,
}

/// One worker's stream of callbacks.
pub(super) struct Traffic {
    shape: Shape,
    rng: StdRng,
    ids: LaneIds,
    duplicates: f64,
    secret: Arc<str>,
    /// Distinct logouts made so far.
    next_k: u64,
    /// Business fields of recent logouts, encoded, ready to be sent again; ring by `k`.
    recent: Vec<(u64, Vec<u8>)>,
}

impl Traffic {
    /// The callbacks of the worker whose logouts get the session ids `ids`; a share
    /// `duplicates` of them are retries.
    pub(super) fn new(
        shape: Shape,
        rng: StdRng,
        ids: LaneIds,
        duplicates: f64,
        secret: Arc<str>,
    ) -> Self {
        Self {
            shape,
            rng,
            ids,
            duplicates,
            secret,
            next_k: 0,
            recent: Vec::with_capacity(RECENT),
        }
    }

    /// A generator on its own, for tests of the traffic: the worker of `ids`, appid 1.
    #[cfg(test)]
    fn for_test(
        seed: u64,
        encoding: BodyEncoding,
        secret: &str,
        ids: LaneIds,
        duplicates: f64,
    ) -> Self {
        use rand::SeedableRng as _;
        let mut seeds = StdRng::seed_from_u64(seed);
        let shape = Shape::new(&mut seeds, 1, encoding);
        let rng = StdRng::seed_from_u64(seeds.gen::<u64>() ^ ids.lane);
        Self::new(shape, rng, ids, duplicates, secret.into())
    }

    /// Distinct logouts made so far.
    pub(super) fn generated(&self) -> u64 {
        self.next_k
    }

    fn session_id(&self, k: u64) -> u64 {
        self.ids.session_id(k)
    }

    pub(super) fn body_capacity(&self) -> usize {
        // Envelope (~120 bytes) plus fields (~300 bytes, more with percent-encoded nicknames).
        match self.shape.encoding {
            BodyEncoding::Json => 512,
            BodyEncoding::Form => 768,
        }
    }

    /// Writes the next callback's body into `out`: a retry of a recent logout with probability
    /// `duplicates`, else a new logout. Either way with a fresh timestamp, nonce and signature.
    pub(super) fn next(&mut self, now: Clock, out: &mut Vec<u8>) -> Pick {
        let retry = !self.recent.is_empty() && self.rng.gen_bool(self.duplicates);
        let slot = if retry {
            self.rng.gen_range(0..self.recent.len())
        } else {
            let k = self.next_k;
            self.next_k += 1;
            let mut fields = Vec::with_capacity(self.body_capacity());
            self.logout_fields(k, now, &mut fields);
            if self.recent.len() < RECENT {
                self.recent.push((k, fields));
                self.recent.len() - 1
            } else {
                let slot = (k % RECENT as u64) as usize;
                self.recent[slot] = (k, fields);
                slot
            }
        };
        self.envelope(now, out);
        let (k, fields) = &self.recent[slot];
        out.extend_from_slice(fields);
        Pick { k: *k, retry }
    }

    /// Event, appid, timestamp, nonce and signature; no separator after the last.
    fn envelope(&mut self, now: Clock, out: &mut Vec<u8>) {
        let timestamp = (now.unix_ms / 1000).to_string();
        // 19 digits, as ZEGOCLOUD's stream callbacks show. With 6 to 9 digits, two logouts of
        // the same second at thousands per second share a (timestamp, nonce) by chance now and
        // then, and the signature ledger quarantines the second (as it must for a real sender).
        let nonce = self
            .rng
            .gen_range(1_000_000_000_000_000_000u64..10_000_000_000_000_000_000)
            .to_string();
        let signature = sign(&self.secret, &timestamp, &nonce);
        out.extend_from_slice(self.shape.head.as_bytes());
        // Digits and lower-case hex: the same bytes in JSON and in a form.
        let _ = match self.shape.encoding {
            BodyEncoding::Json => write!(
                out,
                r#"{timestamp}","nonce":"{nonce}","signature":"{signature}""#
            ),
            BodyEncoding::Form => write!(out, "{timestamp}&nonce={nonce}&signature={signature}"),
        };
    }

    /// The business fields of logout `k`, each preceded by its separator; JSON closes the object.
    fn logout_fields(&mut self, k: u64, now: Clock, out: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let room = skewed(rng, ROOMS);
        let user = skewed(rng, USERS);
        let role = traffic::role(rng);
        let reason = match rng.gen_range(0..100) {
            0..=69 => REASON_NORMAL,
            70..=84 => REASON_CONNECTION_LOST,
            85..=92 => REASON_HEARTBEAT_TIMEOUT,
            93..=96 => REASON_KICKED_OUT,
            _ => REASON_TOKEN_EXPIRED,
        };
        // Log-normal session lengths: (median seconds, sigma).
        let (median_s, sigma) = match (reason, role) {
            (REASON_TOKEN_EXPIRED, _) => (3_600.0, 0.4), // tokens expire about an hour in
            (REASON_KICKED_OUT, _) => (120.0, 1.2),
            (_, ROLE_ADMIN) => (1_800.0, 1.0), // recording and moderation bots stay long
            _ => (240.0, 1.5),
        };
        let duration_ms = traffic::session_ms(rng, median_s, sigma);
        // Callbacks leave ZEGOCLOUD a moment after the logout.
        let logout_ms = now.unix_ms.saturating_sub(rng.gen_range(0..3_000));
        let login_ms = logout_ms.saturating_sub(duration_ms as u64);
        let room_seq = mix(self.shape.room_salt ^ room);
        let update_seq = rng.gen_range(1..=2 + 100_000 / (room + 1));
        let user_hash = mix(self.shape.user_salt ^ user);
        let session_id = self.session_id(k);

        let mut w = FieldWriter {
            out,
            encoding: self.shape.encoding,
            scratch: String::new(),
        };
        w.text("room_id", format_args!("{ROOM_ID_PREFIX}{room}"));
        w.number("room_seq", room_seq);
        if role == ROLE_ADMIN {
            w.text("user_account", format_args!("{BOT_ACCOUNT_PREFIX}{room}"));
            w.text("user_nickname", format_args!("{BOT_NICKNAME}"));
        } else {
            w.number("user_account", traffic::user_account(user_hash));
            let stem = NICKNAMES[traffic::nickname_stem(user_hash)];
            w.text("user_nickname", format_args!("{stem}{}", user % 1000));
        }
        w.number("session_id", session_id);
        w.number("login_time", login_ms);
        w.number("logout_time", logout_ms);
        w.number("reason", reason.into());
        w.number("user_role", role.into());
        w.number("user_update_seq", update_seq);
        if self.shape.encoding == BodyEncoding::Json {
            w.out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::callback::{Encoding, Envelope, Fields, RoomLogout};
    use crate::signature::{Secrets, Verifier};
    use crate::tools::loadtest::ledger::SESSION_SPAN;

    /// Bodies as zegolog reads them: parsed, authentic, normalised.
    fn receive(body: &[u8], encoding: BodyEncoding, now: Clock) -> (Fields, RoomLogout) {
        let encoding = match encoding {
            BodyEncoding::Json => Encoding::Json,
            BodyEncoding::Form => Encoding::Form,
        };
        let fields = Fields::parse(body, encoding).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(body));
        });
        let envelope = Envelope::from_fields(&fields).unwrap();
        let verifier = Verifier::new(Secrets::new(Some("s".into()), None).unwrap(), 600);
        let proof = verifier.verify(envelope.claim(), (now.unix_ms / 1000) as i64);
        assert!(proof.unwrap().is_some());
        assert_eq!(
            (envelope.event.as_str(), envelope.appid),
            ("room_logout", 1)
        );
        let logout = RoomLogout::from_fields(1, &fields).unwrap();
        (fields, logout)
    }

    #[test]
    fn traffic_is_valid_signed_and_mixed_like_real_apps() {
        let now = Clock {
            unix_ms: 1_700_000_000_123,
        };
        for encoding in [BodyEncoding::Json, BodyEncoding::Form] {
            let (lanes, base) = (4, 7u64 << 32);
            let mut by_session: HashMap<u64, RoomLogout> = HashMap::new();
            let (mut requests, mut retries) = (0, 0);
            let mut reasons = HashMap::new();
            let mut roles = HashMap::new();
            let mut rooms = HashMap::new();
            let mut durations = Vec::new();
            let (mut high_seq, mut non_ascii) = (0, 0);
            for lane in 0..lanes {
                let mut traffic =
                    Traffic::for_test(42, encoding, "s", LaneIds { base, lanes, lane }, 0.2);
                for _ in 0..5_000 {
                    let mut body = Vec::new();
                    let pick = traffic.next(now, &mut body);
                    let (fields, logout) = receive(&body, encoding, now);
                    assert!(fields.get("session_id").unwrap().is_string());
                    assert_eq!(logout.session_id, traffic.session_id(pick.k));
                    requests += 1;
                    if pick.retry {
                        retries += 1;
                        // Same business fields as the first delivery.
                        assert_eq!(by_session[&logout.session_id], logout);
                        continue;
                    }
                    assert!(by_session
                        .insert(logout.session_id, logout.clone())
                        .is_none());
                    *reasons.entry(logout.reason.unwrap()).or_insert(0) += 1;
                    *roles.entry(logout.user_role.unwrap()).or_insert(0) += 1;
                    *rooms.entry(logout.room_id.clone()).or_insert(0) += 1;
                    durations
                        .push((logout.logout_time - logout.login_time.unwrap()).num_milliseconds());
                    high_seq += usize::from(logout.room_seq.unwrap() > 1 << 63);
                    non_ascii += usize::from(!logout.user_nickname.unwrap().is_ascii());
                    assert!(logout.logout_time.timestamp_millis() <= now.unix_ms as i64);
                }
            }
            let unique = by_session.len();
            let share = f64::from(retries) / f64::from(requests);
            assert!((0.18..0.22).contains(&share), "retry share {share}");
            assert_eq!(unique, requests as usize - retries as usize);
            // Session ids: distinct (checked on insert) and inside the run's range.
            assert!(by_session
                .keys()
                .all(|&id| (base..base + SESSION_SPAN).contains(&id)));

            let count = |m: &HashMap<i32, i32>, k| *m.get(&k).unwrap_or(&0) as f64 / unique as f64;
            for code in 0..=4 {
                assert!(count(&reasons, code) > 0.01, "reason {code}: {reasons:?}");
            }
            assert!(count(&reasons, 0) > 0.6, "{reasons:?}");
            assert_eq!(roles.len(), 3, "{roles:?}");
            assert!(
                count(&roles, 2) > 0.8 && count(&roles, 4) < 0.06,
                "{roles:?}"
            );
            // Skewed rooms: the busiest room has many logouts, most rooms a few.
            let busiest = *rooms.values().max().unwrap();
            assert!(busiest as f64 > 0.05 * unique as f64, "busiest {busiest}");
            assert!(rooms.len() > 1_000, "{} rooms", rooms.len());
            durations.sort_unstable();
            let median = durations[durations.len() / 2];
            assert!((60_000..900_000).contains(&median), "median {median} ms");
            assert!(durations[0] >= 1_000 && *durations.last().unwrap() > 3_600_000);
            assert!(high_seq > unique / 4 && non_ascii > unique / 10);
        }
    }

    #[test]
    fn same_seed_and_clock_give_the_same_bytes() {
        let now = Clock {
            unix_ms: 1_700_000_000_000,
        };
        let bodies = |seed| {
            let mut traffic = Traffic::for_test(
                seed,
                BodyEncoding::Form,
                "s",
                LaneIds {
                    base: 0,
                    lanes: 1,
                    lane: 0,
                },
                0.3,
            );
            (0..100)
                .map(|_| {
                    let mut body = Vec::new();
                    traffic.next(now, &mut body);
                    body
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(1), bodies(1));
        assert_ne!(bodies(1), bodies(2));
        let distinct: HashSet<_> = bodies(1).into_iter().collect();
        assert_eq!(
            distinct.len(),
            100,
            "retries carry a new nonce and signature"
        );
    }
}
