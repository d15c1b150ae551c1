//! The request generator: plausible callbacks with the real field names, signed as ZEGOCLOUD
//! signs them or forged, junk values, content types. One request per kind is in `cases.rs`.

use rand::distributions::{Alphanumeric, WeightedIndex};
use rand::prelude::Distribution;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use zegolog::callback::{Encoding, RoomLogout};
use zegolog::signature::sign;

use super::cases::KINDS;
use super::request::{Callback, Case, Retryable, Style};
use super::sender::ODD_TEXT;
use super::{raw_number, value_text};
use crate::common::{SECRET, SECRET_APP2};

const OTHER_EVENTS: &[&str] = &[
    "room_login",
    "room_create",
    "room_close",
    "stream_create",
    "stream_close",
    "record_end",
    "future_event_🎉",
];

pub(super) struct Generator {
    pub(super) seed: u64,
    pub(super) rng: StdRng,
    pub(super) now: i64,
    pub(super) retryable: Vec<Retryable>,
}

impl Generator {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
            now: chrono::Utc::now().timestamp(),
            retryable: Vec::new(),
        }
    }

    pub(super) fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items.choose(&mut self.rng).unwrap().clone()
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    pub(super) fn alphanumeric(&mut self, len: usize) -> String {
        (&mut self.rng)
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }

    /// Short text of any kind, without U+0000 unless asked.
    pub(super) fn text(&mut self, allow_nul: bool) -> String {
        if self.chance(0.5) {
            return self.pick(ODD_TEXT).to_owned();
        }
        let len = self.rng.gen_range(1..20);
        (0..len)
            .map(|_| match self.rng.gen_range(0..10) {
                0 if allow_nul => '\0',
                0..=5 => char::from(self.rng.gen_range(b' '..=b'~')),
                _ => loop {
                    let c: char = self.rng.gen();
                    if c != '\0' {
                        break c;
                    }
                },
            })
            .collect()
    }

    /// Digits as a JSON number or as a JSON string, as both doc versions send them.
    fn number_or_string(&mut self, digits: String) -> Value {
        if self.chance(0.5) {
            raw_number(&digits)
        } else {
            Value::String(digits)
        }
    }

    pub(super) fn style(&mut self) -> Style {
        Style {
            encoding: if self.chance(0.5) {
                Encoding::Json
            } else {
                Encoding::Form
            },
            plus_for_space: self.chance(0.5),
            lower_hex: self.chance(0.5),
        }
    }

    /// A correct content type for the encoding, or none at all (the server then sniffs).
    pub(super) fn right_content_type(&mut self, encoding: Encoding) -> Option<HeaderValue> {
        let options: &[Option<&'static str>] = match encoding {
            Encoding::Json => &[
                Some("application/json"),
                Some("application/json; charset=utf-8"),
                Some("Application/JSON"),
                Some("application/json;charset=UTF-8"),
                None,
            ],
            Encoding::Form => &[
                Some("application/x-www-form-urlencoded"),
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                Some("APPLICATION/X-WWW-FORM-URLENCODED"),
                None,
            ],
        };
        self.pick(options).map(HeaderValue::from_static)
    }

    pub(super) fn wrong_content_type(&mut self, encoding: Encoding) -> HeaderValue {
        let other = match encoding {
            Encoding::Json => Encoding::Form.mime(),
            Encoding::Form => Encoding::Json.mime(),
        };
        match self.rng.gen_range(0..12) {
            0 => HeaderValue::from_static(other),
            1 => HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
            _ => HeaderValue::from_static(self.pick(&[
                "text/plain",
                "application/xml",
                "multipart/form-data; boundary=x",
                "",
                "application/jsonp",
                "application/x-www-form-urlencoded-x",
                "json",
                ";",
                "application/json/x",
                "*/*",
            ])),
        }
    }

    pub(super) fn any_content_type(&mut self) -> Option<HeaderValue> {
        match self.rng.gen_range(0..3) {
            0 => self.right_content_type(Encoding::Json),
            1 => self.right_content_type(Encoding::Form),
            _ => Some(self.wrong_content_type(Encoding::Json)),
        }
    }

    /// A callback with the real field names and plausible values, marked with its case number
    /// (`zz_case`) so the database can tell which request a row came from.
    pub(super) fn base(&mut self, case: usize) -> (Callback, bool) {
        let appid = match self.rng.gen_range(0..20) {
            0..=13 => json!("1"),
            14..=16 => json!(1),
            17..=18 => json!("2"),
            _ => json!(1_234_567_890),
        };
        let mut fields = Vec::new();
        let logout = self.chance(0.75);
        if logout {
            let login = self.rng.gen_range(1_600_000_000_000i64..1_800_000_000_000);
            let logout_time = login + self.rng.gen_range(0..86_400_000);
            fields.push(("event", json!(RoomLogout::EVENT)));
            fields.push(("room_id", Value::String(self.text(false))));
            if self.chance(0.8) {
                let seq = self.rng.gen::<u64>().to_string();
                fields.push(("room_seq", self.number_or_string(seq)));
            }
            fields.push(("user_account", json!(format!("case-{case}"))));
            if self.chance(0.8) {
                fields.push(("user_nickname", Value::String(self.text(false))));
            }
            let session = self.rng.gen::<u64>().to_string();
            fields.push(("session_id", self.number_or_string(session)));
            fields.push(("login_time", self.number_or_string(login.to_string())));
            fields.push((
                "logout_time",
                self.number_or_string(logout_time.to_string()),
            ));
            for (name, values) in [
                ("reason", &["0", "1", "2", "3", "4", "7"][..]),
                ("user_role", &["1", "2", "4", "9"][..]),
                ("user_update_seq", &["0", "13", "999999"][..]),
            ] {
                if self.chance(0.8) {
                    let value = self.pick(values).to_owned();
                    fields.push((name, self.number_or_string(value)));
                }
            }
        } else {
            // The spec's fields for each event, and a room id no other case has, so that no
            // natural key of any typed table is shared between cases.
            let event = self.pick(OTHER_EVENTS);
            let ms = self.rng.gen_range(1_600_000_000_000i64..1_800_000_000_000);
            fields.push(("event", json!(event)));
            fields.push(("room_id", json!(format!("{}#{case}", self.text(false)))));
            match event {
                "room_login" => {
                    fields.push(("room_name", Value::String(self.text(false))));
                    fields.push(("user_account", json!(format!("case-{case}"))));
                    fields.push(("user_nickname", Value::String(self.text(false))));
                    for name in ["room_seq", "session_id"] {
                        let id = self.rng.gen::<u64>().to_string();
                        fields.push((name, self.number_or_string(id)));
                    }
                    fields.push(("login_time", self.number_or_string(ms.to_string())));
                    for (name, values) in [
                        ("user_role", &["1", "2", "4"][..]),
                        ("auth_level", &["0", "1"][..]),
                        ("relogin", &["0", "1"][..]),
                        ("user_update_seq", &["1", "13"][..]),
                    ] {
                        let value = self.pick(values).to_owned();
                        fields.push((name, self.number_or_string(value)));
                    }
                }
                "room_create" | "room_close" => {
                    let id = self.rng.gen::<u64>().to_string();
                    fields.push(("room_session_id", self.number_or_string(id)));
                    if event == "room_create" {
                        fields.push(("room_create_time", json!(ms.to_string())));
                        fields.push(("id_name", Value::String(self.text(false))));
                    } else {
                        fields.push(("room_close_time", json!(ms.to_string())));
                        let reason = self.pick(&["0", "1", "2", "3"]).to_owned();
                        fields.push(("close_reason", self.number_or_string(reason)));
                    }
                }
                _ => {
                    fields.push(("stream_id", json!(self.alphanumeric(12))));
                    let extra = self.junk_value(true);
                    fields.push(("extra", extra));
                }
            }
        }
        fields.push(("appid", appid));
        fields.push(("zz_case", json!(case.to_string())));
        fields.shuffle(&mut self.rng);
        let callback = Callback(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        (callback, logout)
    }

    pub(super) fn secret_for(callback: &Callback) -> &'static str {
        match callback.get("appid").map(value_text).as_deref() {
            Some("2") => SECRET_APP2,
            _ => SECRET,
        }
    }

    /// Signs as ZEGOCLOUD does; the timestamp and nonce sometimes as JSON numbers, the signature
    /// sometimes in upper case (the server compares case-insensitively).
    pub(super) fn sign(&mut self, callback: &mut Callback) {
        let secret = Self::secret_for(callback);
        let timestamp = self.now.to_string();
        self.sign_at(callback, secret, &timestamp);
    }

    pub(super) fn sign_at(&mut self, callback: &mut Callback, secret: &str, timestamp: &str) {
        let timestamp = if self.chance(0.3) && timestamp.parse::<i64>().is_ok() {
            raw_number(timestamp)
        } else {
            json!(timestamp)
        };
        // Odd nonces, each made unique with a random suffix: the same timestamp and nonce with
        // another body is a signature reuse, which the ledger keeps out of the typed tables
        // (tests/it/replay.rs); here every authentic callback has a triple of its own.
        let unique = self.rng.gen::<u64>();
        let nonce = match self.rng.gen_range(0..6) {
            0 => raw_number(&unique.to_string()),
            1 => {
                let len = self.rng.gen_range(1..33);
                json!(format!("{}{unique}", self.alphanumeric(len)))
            }
            2 => json!(format!(
                "{}{unique}",
                self.pick(&["张三", "a b+c", "n&o=p", "%41"])
            )),
            _ => json!(unique.to_string()),
        };
        let signature = sign(secret, &value_text(&timestamp), &value_text(&nonce));
        let signature = if self.chance(0.15) {
            signature.to_uppercase()
        } else {
            signature
        };
        callback.set("timestamp", timestamp);
        callback.set("nonce", nonce);
        callback.set("signature", json!(signature));
        callback.0.shuffle(&mut self.rng);
    }

    /// A wrong signature of the right shape, or of a wrong one.
    pub(super) fn forge(&mut self, callback: &mut Callback) {
        let timestamp = value_text(callback.get("timestamp").unwrap());
        let nonce = value_text(callback.get("nonce").unwrap());
        let secret = Self::secret_for(callback);
        let valid = sign(secret, &timestamp, &nonce);
        let other_secret = if secret == SECRET {
            SECRET_APP2
        } else {
            SECRET
        };
        let hex40 = |rng: &mut StdRng| -> String {
            (0..40)
                .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
                .collect()
        };
        let forged = match self.rng.gen_range(0..11) {
            0 => hex40(&mut self.rng),
            1 => hex40(&mut self.rng).to_uppercase(),
            2 => sign(secret, &timestamp, &format!("{nonce}0")),
            3 => sign(other_secret, &timestamp, &nonce),
            4 => sign("not-the-secret", &timestamp, &nonce),
            5 => "5bd59fd62953a8059fb7eaba95720f66d19e4517".to_owned(),
            6 => {
                // One hex digit changed (drawing as often whatever the digit, for replays).
                const HEX: &[u8] = b"0123456789abcdef";
                let mut bytes = valid.clone().into_bytes();
                let i = self.rng.gen_range(0..bytes.len());
                let old = HEX.iter().position(|&h| h == bytes[i]).unwrap();
                bytes[i] = HEX[(old + self.rng.gen_range(1..16)) % 16];
                String::from_utf8(bytes).unwrap()
            }
            7 => {
                if self.chance(0.5) {
                    valid[..39].to_owned()
                } else {
                    format!("{valid}0")
                }
            }
            8 => "zz".repeat(20),
            9 => {
                // The right parts, not sorted.
                let mut hasher = Sha1::new();
                for part in [timestamp.as_str(), nonce.as_str(), secret] {
                    hasher.update(part.as_bytes());
                }
                let unsorted = hex::encode(hasher.finalize());
                if unsorted == valid {
                    hex40(&mut self.rng)
                } else {
                    unsorted
                }
            }
            _ => {
                let next = timestamp.parse::<i64>().unwrap_or(0) + 1;
                sign(secret, &next.to_string(), &nonce)
            }
        };
        assert_ne!(forged.to_ascii_lowercase(), valid);
        callback.set("signature", json!(forged));
    }

    /// A value of the wrong type for most fields. `bounded` keeps it within what PostgreSQL
    /// can store (see the regression tests in robustness.rs for what it cannot).
    pub(super) fn junk_value(&mut self, bounded: bool) -> Value {
        let choices = if bounded { 26 } else { 30 };
        match self.rng.gen_range(0..choices) {
            0 => json!([]),
            1 => json!({}),
            2 => json!([1, "a", null, [true]]),
            3 => json!({"nested": {"deeper": [true, {"x": null}]}}),
            4 => json!(self.chance(0.5)),
            5 => Value::Null,
            6 => json!(""),
            7 => raw_number("1.5"),
            8 => raw_number("-1"),
            9 => raw_number("99999999999999999999999999"),
            10 => raw_number("-99999999999999999999999999"),
            11 => raw_number("1e3"),
            12 => raw_number("1E+2"),
            13 => raw_number("-0"),
            14 => raw_number("0.0"),
            15 => raw_number("1e400"),
            16 => json!("abc"),
            17 => json!("18446744073709551616"),
            18 => json!("-9223372036854775809"),
            19 => json!(" 42"),
            20 => json!("４２"),
            21 => json!("\u{0}"),
            22 => Value::String(self.text(true)),
            23 => raw_number(&self.rng.gen::<u64>().to_string()),
            24 => {
                let depth = self.rng.gen_range(1..20);
                serde_json::from_str(&format!("{}0{}", "[".repeat(depth), "]".repeat(depth)))
                    .unwrap()
            }
            25 => raw_number(&(self.rng.gen::<f64>() * 1e300).to_string()),
            26 => raw_number("1e1000000"),
            27 => raw_number("-1e-1000000"),
            28 => json!(self.alphanumeric(5000)),
            _ => raw_number("123456789e-99999"),
        }
    }

    /// A signed, intact callback: its bytes, its style, and the retry record.
    pub(super) fn signed_base(&mut self, case: usize) -> (Callback, bool, Style) {
        let (mut callback, logout) = self.base(case);
        self.sign(&mut callback);
        (callback, logout, self.style())
    }

    pub(super) fn flip_byte(&mut self, body: &mut [u8], at: usize, encoding: Encoding) {
        let old = body[at];
        // One draw, then the next byte that does not decode to the same value: the same letter
        // in another case (percent-escapes and the signature compare case-insensitively), or a
        // space for `+` in a form.
        let mut b: u8 = self.rng.gen();
        while b == old
            || (old.is_ascii_alphabetic() && b.eq_ignore_ascii_case(&old))
            || (encoding == Encoding::Form && old == b'+' && b == b' ')
        {
            b = b.wrapping_add(1);
        }
        body[at] = b;
    }

    pub(super) fn cases(&mut self, n: usize) -> Vec<Case> {
        let weights = WeightedIndex::new(KINDS.iter().map(|(_, w)| *w)).unwrap();
        (0..n)
            .map(|id| {
                // A generator per case: what one case draws never shifts the next ones, so a
                // seed replays the same cases (but for the clock in timestamps and signatures).
                let case_seed = self.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                self.rng = StdRng::seed_from_u64(case_seed);
                let kind = KINDS[weights.sample(&mut self.rng)].0;
                self.case(id, kind)
            })
            .collect()
    }
}
