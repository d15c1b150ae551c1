//! One request of each kind of mutation in [`KINDS`], from the generator's plausible callbacks.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use zegolog::callback::Encoding;

use super::generator::Generator;
use super::request::{render, Case, Expect, Retryable, Style};
use super::sender::{json_string, ENVELOPE_FIELDS};
use super::{raw_number, BODY_LIMIT};
use crate::common::SECRET;

/// The mutations, with their weights out of about a hundred.
pub(super) const KINDS: &[(&str, u32)] = &[
    ("valid", 10),
    ("valid_odd_business_field", 6),
    ("valid_broken_percent_escape", 2),
    ("valid_deep_nesting", 1),
    ("valid_near_body_limit", 1),
    ("retry", 4),
    ("forged_signature", 10),
    ("stale_timestamp", 3),
    ("unknown_or_wrong_appid", 3),
    ("missing_envelope_field", 3),
    ("wrong_type", 8),
    ("truncated", 8),
    ("byte_flips", 8),
    ("signed_flip_in_signature_fields", 5),
    ("invalid_utf8", 4),
    ("percent_escape_of_invalid_utf8", 3),
    ("duplicate_key", 4),
    ("deep_nesting", 3),
    ("over_body_limit", 2),
    ("wrong_content_type", 4),
    ("empty", 2),
    ("random_bytes", 4),
    ("json_soup", 3),
    ("form_soup", 2),
    ("not_an_object", 1),
];

impl Generator {
    pub(super) fn case(&mut self, id: usize, kind: &'static str) -> Case {
        let refused = |kind, content_type, body| Case {
            kind,
            content_type,
            body,
            expect: Expect::Refused,
        };
        match kind {
            "valid" | "valid_odd_business_field" | "retry" => {
                if kind == "retry" && !self.retryable.is_empty() {
                    let i = self.rng.gen_range(0..self.retryable.len());
                    let (group, logout, style) = {
                        let r = &self.retryable[i];
                        (r.group, r.logout, r.style)
                    };
                    let mut callback = self.retryable[i].callback.clone();
                    self.sign(&mut callback);
                    return Case {
                        kind,
                        content_type: self.right_content_type(style.encoding),
                        body: render(&callback, style).body,
                        expect: Expect::Authentic { group, logout },
                    };
                }
                let (mut callback, logout) = self.base(id);
                if kind == "valid_odd_business_field" {
                    let names: Vec<String> = callback
                        .0
                        .iter()
                        .map(|(k, _)| k.clone())
                        .filter(|k| k != "event" && k != "appid" && k != "zz_case")
                        .collect();
                    let name = names.choose(&mut self.rng).unwrap().clone();
                    let value = self.junk_value(true);
                    callback.set(&name, value);
                }
                self.sign(&mut callback);
                let style = self.style();
                self.retryable.push(Retryable {
                    group: id,
                    logout,
                    callback: callback.clone(),
                    style,
                });
                Case {
                    kind,
                    content_type: self.right_content_type(style.encoding),
                    body: render(&callback, style).body,
                    expect: Expect::Authentic { group: id, logout },
                }
            }
            "valid_broken_percent_escape" => {
                // Escapes that do not decode are kept as written: still an authentic callback.
                let (callback, logout, mut style) = self.signed_base(id);
                style.encoding = Encoding::Form;
                let mut rendered = render(&callback, style);
                let span = rendered.span("room_id").unwrap();
                let junk = self.pick(&[&b"%"[..], b"%4", b"%zz", b"%G0", b"%%", b"%-1", b"100%"]);
                rendered
                    .body
                    .splice(span.end..span.end, junk.iter().copied());
                Case {
                    kind,
                    content_type: self.right_content_type(Encoding::Form),
                    body: rendered.body,
                    expect: Expect::Authentic { group: id, logout },
                }
            }
            "valid_deep_nesting" => {
                let (mut callback, logout) = self.base(id);
                let depth = self.rng.gen_range(1..=100);
                let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                callback.set("zz_deep", serde_json::from_str(&deep).unwrap());
                self.sign(&mut callback);
                let style = Style {
                    encoding: Encoding::Json,
                    ..self.style()
                };
                Case {
                    kind,
                    content_type: self.right_content_type(Encoding::Json),
                    body: render(&callback, style).body,
                    expect: Expect::Authentic { group: id, logout },
                }
            }
            "valid_near_body_limit" | "over_body_limit" => {
                let (mut callback, logout, style) = self.signed_base(id);
                let target = if kind == "valid_near_body_limit" {
                    self.rng.gen_range(BODY_LIMIT - 4096..=BODY_LIMIT)
                } else if self.chance(0.9) {
                    self.rng.gen_range(BODY_LIMIT + 1..=BODY_LIMIT + 32 * 1024)
                } else {
                    self.rng.gen_range(BODY_LIMIT * 2..=BODY_LIMIT * 4)
                };
                callback.set("zz_pad", json!(""));
                let empty = render(&callback, style).body.len();
                let pad = self.alphanumeric(target - empty);
                callback.set("zz_pad", json!(pad));
                let body = render(&callback, style).body;
                assert_eq!(body.len(), target);
                let content_type = self.right_content_type(style.encoding);
                if kind == "valid_near_body_limit" {
                    Case {
                        kind,
                        content_type,
                        body,
                        expect: Expect::Authentic { group: id, logout },
                    }
                } else {
                    refused(kind, content_type, body)
                }
            }
            "forged_signature" => {
                let (mut callback, _, style) = self.signed_base(id);
                self.forge(&mut callback);
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, render(&callback, style).body)
            }
            "stale_timestamp" => {
                let (mut callback, _) = self.base(id);
                let timestamp = match self.rng.gen_range(0..6) {
                    0 => (self.now - self.rng.gen_range(700..10_000_000)).to_string(),
                    1 => (self.now + self.rng.gen_range(3_600..10_000_000)).to_string(),
                    2 => "0".to_owned(),
                    3 => i64::MAX.to_string(),
                    4 => i64::MIN.to_string(),
                    _ => "-1".to_owned(),
                };
                let secret = Self::secret_for(&callback);
                self.sign_at(&mut callback, secret, &timestamp);
                let style = self.style();
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, render(&callback, style).body)
            }
            "unknown_or_wrong_appid" => {
                let (mut callback, _) = self.base(id);
                let appid = self.pick(&[
                    json!("3"),
                    json!(999),
                    json!("0"),
                    json!(0),
                    json!(i64::MAX),
                    json!("2"), // signed with appid 1's secret below
                ]);
                callback.set("appid", appid);
                self.sign_at(&mut callback, SECRET, &self.now.to_string());
                let style = self.style();
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, render(&callback, style).body)
            }
            "missing_envelope_field" => {
                let (mut callback, _, style) = self.signed_base(id);
                let name = self.pick(&ENVELOPE_FIELDS);
                match self.rng.gen_range(0..3) {
                    0 => callback.remove(name),
                    1 => callback.set(name, json!("")),
                    // A form has no null: `event=null` names an event "null".
                    _ if style.encoding == Encoding::Form => callback.remove(name),
                    _ => callback.set(name, Value::Null),
                }
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, render(&callback, style).body)
            }
            "wrong_type" => {
                let (mut callback, _, mut style) = self.signed_base(id);
                if self.chance(0.5) {
                    // Forged, and any field of any type, unbounded.
                    self.forge(&mut callback);
                    let names: Vec<String> = callback.0.iter().map(|(k, _)| k.clone()).collect();
                    let name = names.choose(&mut self.rng).unwrap().clone();
                    let value = self.junk_value(false);
                    callback.set(&name, value);
                } else {
                    // Validly signed, with an event or appid no reading accepts. In JSON only:
                    // a form carries text, and `event=[]` names an event "[]".
                    style.encoding = Encoding::Json;
                    let (name, value) = if self.chance(0.5) {
                        let value = self.pick(&[
                            json!([]),
                            json!({}),
                            json!(true),
                            json!(false),
                            json!([["room_logout"]]),
                            json!({"event": "room_logout"}),
                        ]);
                        ("event", value)
                    } else {
                        let value = self.pick(&[
                            json!(true),
                            json!([]),
                            json!({}),
                            json!([1]),
                            raw_number("1.0"),
                            json!("1.0"),
                            json!("abc"),
                            raw_number("99999999999999999999999999"),
                            json!("99999999999999999999999999"),
                            raw_number("-1"),
                            json!("-1"),
                            json!("1e0"),
                            raw_number("1e0"),
                            json!(" 1"),
                            json!("１"),
                        ]);
                        ("appid", value)
                    };
                    callback.set(name, value);
                }
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, render(&callback, style).body)
            }
            "truncated" => {
                let (mut callback, _, style) = self.signed_base(id);
                if style.encoding == Encoding::Form {
                    // Every proper prefix of a form then lacks a whole signature.
                    callback.move_to_end("signature");
                }
                let body = render(&callback, style).body;
                let cut = self.rng.gen_range(0..body.len());
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, body[..cut].to_vec())
            }
            "byte_flips" => {
                let (mut callback, _, style) = self.signed_base(id);
                self.forge(&mut callback);
                let mut body = render(&callback, style).body;
                for _ in 0..self.rng.gen_range(1..=8) {
                    let at = self.rng.gen_range(0..body.len());
                    match self.rng.gen_range(0..4) {
                        0 => {
                            body.insert(at, self.rng.gen());
                        }
                        1 if body.len() > 1 => {
                            body.remove(at);
                        }
                        _ => body[at] = self.rng.gen(),
                    }
                }
                let content_type = if self.chance(0.8) {
                    self.right_content_type(style.encoding)
                } else {
                    self.any_content_type()
                };
                refused(kind, content_type, body)
            }
            "signed_flip_in_signature_fields" => {
                let (callback, _, style) = self.signed_base(id);
                let mut rendered = render(&callback, style);
                let name = self.pick(&["timestamp", "nonce", "signature"]);
                let span = rendered.span(name).unwrap();
                let at = self.rng.gen_range(span);
                self.flip_byte(&mut rendered.body, at, style.encoding);
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, rendered.body)
            }
            "invalid_utf8" | "percent_escape_of_invalid_utf8" => {
                let (callback, _, mut style) = self.signed_base(id);
                let bad: &[u8] = if kind == "invalid_utf8" {
                    self.pick(&[
                        &b"\xff"[..],
                        b"\xc3",
                        b"\xc0\xaf",
                        b"\xed\xa0\x80",
                        b"\xf4\x90\x80\x80",
                        b"\x80",
                        b"\xe2\x82",
                    ])
                } else {
                    style.encoding = Encoding::Form;
                    self.pick(&[
                        &b"%FF"[..],
                        b"%C3",
                        b"%c3%28",
                        b"%ED%A0%80",
                        b"%C0%AF",
                        b"%F4%90%80%80",
                        b"%80",
                        b"%E2%82",
                    ])
                };
                let mut rendered = render(&callback, style);
                let name = self.pick(&["room_id", "user_account", "stream_id", "zz_case"]);
                let span = rendered
                    .inner_span(name)
                    .or_else(|| rendered.inner_span("room_id"))
                    .unwrap();
                // Raw bytes anywhere in the value; escapes at its end, so they stay whole.
                let at = if kind == "invalid_utf8" {
                    self.rng.gen_range(span.start..=span.end)
                } else {
                    span.end
                };
                rendered.body.splice(at..at, bad.iter().copied());
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, rendered.body)
            }
            "duplicate_key" => {
                let (mut callback, _, style) = self.signed_base(id);
                let i = self.rng.gen_range(0..callback.0.len());
                let (name, value) = callback.0[i].clone();
                let mut body = if style.encoding == Encoding::Json && self.chance(0.3) {
                    // The same name spelled with an escape: `"\u0072oom_id"` is `"room_id"`.
                    let mut body = render(&callback, style).body;
                    let first = name.chars().next().unwrap();
                    let key = format!(
                        r#""\u{:04x}{}""#,
                        u32::from(first),
                        &name[first.len_utf8()..]
                    );
                    let entry = format!(",{key}:{}", json_string("dup"));
                    let end = body.len() - 1;
                    body.splice(end..end, entry.into_bytes());
                    body
                } else {
                    let value = if self.chance(0.5) {
                        value
                    } else {
                        json!("dup")
                    };
                    let at = self.rng.gen_range(0..=callback.0.len());
                    callback.0.insert(at, (name, value));
                    render(&callback, style).body
                };
                if body.is_empty() {
                    body.push(b'x');
                }
                let content_type = self.right_content_type(style.encoding);
                refused(kind, content_type, body)
            }
            "deep_nesting" => {
                let body = if self.chance(0.5) {
                    let (mut callback, _) = self.base(id);
                    let depth = self.rng.gen_range(130..=30_000);
                    let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                    callback.set("zz_deep", json!("PLACEHOLDER"));
                    self.sign(&mut callback);
                    let style = Style {
                        encoding: Encoding::Json,
                        ..self.style()
                    };
                    let body = String::from_utf8(render(&callback, style).body).unwrap();
                    body.replace(r#""PLACEHOLDER""#, &deep).into_bytes()
                } else {
                    let depth = self.rng.gen_range(129..=30_000);
                    match self.rng.gen_range(0..4) {
                        0 => "[".repeat(depth),
                        1 => r#"{"a":"#.repeat(depth),
                        2 => format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)),
                        _ => format!(r#"{{"event":{}"#, r#"[{"a":"#.repeat(depth / 2)),
                    }
                    .into_bytes()
                };
                let content_type = self.right_content_type(Encoding::Json);
                refused(kind, content_type, body)
            }
            "wrong_content_type" => {
                let (callback, _, style) = self.signed_base(id);
                let content_type = Some(self.wrong_content_type(style.encoding));
                refused(kind, content_type, render(&callback, style).body)
            }
            "empty" => {
                let body = self
                    .pick(&[&b""[..], b" ", b"\r\n\t ", b"&", b"&&&"])
                    .to_vec();
                let content_type = self.any_content_type();
                refused(kind, content_type, body)
            }
            "random_bytes" => {
                let len = self.rng.gen_range(0..2048);
                let body = (0..len).map(|_| self.rng.gen()).collect();
                let content_type = self.any_content_type();
                refused(kind, content_type, body)
            }
            "json_soup" | "form_soup" => {
                let (tokens, encoding): (&[&[u8]], _) = if kind == "json_soup" {
                    (
                        &[
                            b"{",
                            b"}",
                            b"[",
                            b"]",
                            b":",
                            b",",
                            b" ",
                            b"\"event\"",
                            b"\"appid\"",
                            b"\"signature\"",
                            b"\"room_logout\"",
                            b"\"",
                            b"\\u0000",
                            b"\\ud800",
                            b"1",
                            b"-1",
                            b"1e999999",
                            b"99999999999999999999",
                            b"true",
                            b"null",
                            b"\xc3",
                            b"\xff",
                        ],
                        Encoding::Json,
                    )
                } else {
                    (
                        &[
                            b"event=room_logout",
                            b"appid=1",
                            b"timestamp=",
                            b"nonce=1",
                            b"signature=5bd59fd62953a8059fb7eaba95720f66d19e4517",
                            b"&",
                            b"=",
                            b"+",
                            b"%",
                            b"%4",
                            b"%FF",
                            b"%00",
                            b"%E5%BC%A0",
                            b"%zz",
                            b"\xff",
                        ],
                        Encoding::Form,
                    )
                };
                let n = self.rng.gen_range(1..200);
                let body = (0..n).flat_map(|_| self.pick(tokens).to_vec()).collect();
                let content_type = self.right_content_type(encoding);
                refused(kind, content_type, body)
            }
            "not_an_object" => {
                let body = self
                    .pick(&[
                        &b"[]"[..],
                        b"[1,2]",
                        b"\"room_logout\"",
                        b"42",
                        b"null",
                        b"true",
                        b"{}",
                        b"{}{}",
                        b"{} trailing",
                        b"{\"a\":1}}",
                        b"\xef\xbb\xbf{}",
                    ])
                    .to_vec();
                let content_type = self.right_content_type(Encoding::Json);
                refused(kind, content_type, body)
            }
            other => unreachable!("no generator for {other}"),
        }
    }
}
