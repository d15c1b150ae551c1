//! The proptest strategies: valid values by field kind, near-valid JSON and form callbacks (every
//! field likely valid, a few replaced or removed), arbitrary JSON, token soups.

use std::collections::BTreeMap;

use proptest::prelude::{any, prop, prop_oneof, BoxedStrategy, Just, Strategy};

use super::sender::{json_string, ODD_TEXT};
use super::{all_fields, form_body, json_object, MAX_UNIX_MS};
use crate::callback::RoomLogout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    U64,
    I32,
    I64,
    Millis,
    Seconds,
    AppId,
}

fn kind_of(name: &str) -> Kind {
    match name {
        "appid" => Kind::AppId,
        "timestamp" => Kind::Seconds,
        "room_seq" | "session_id" => Kind::U64,
        "login_time" | "logout_time" => Kind::Millis,
        "reason" | "user_role" => Kind::I32,
        "user_update_seq" => Kind::I64,
        _ => Kind::Text,
    }
}

fn odd_text() -> impl Strategy<Value = String> {
    prop::sample::select(ODD_TEXT).prop_map(str::to_owned)
}

/// The text of a value that is valid for a field of this kind.
fn valid_text(kind: Kind) -> BoxedStrategy<String> {
    match kind {
        Kind::Text => prop_oneof![3 => any::<String>(), 1 => odd_text()].boxed(),
        Kind::U64 => prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            Just("0".to_owned()),
            Just(u64::MAX.to_string()),
        ]
        .boxed(),
        Kind::I32 => any::<i32>().prop_map(|n| n.to_string()).boxed(),
        Kind::I64 => any::<i64>().prop_map(|n| n.to_string()).boxed(),
        Kind::Millis => (0..=MAX_UNIX_MS).prop_map(|n| n.to_string()).boxed(),
        Kind::Seconds => (0i64..4_102_444_800).prop_map(|n| n.to_string()).boxed(),
        Kind::AppId => prop_oneof![(0u32..4), any::<u32>()]
            .prop_map(|n| n.to_string())
            .boxed(),
    }
}

fn likely_valid_text(name: &'static str) -> BoxedStrategy<String> {
    if name == "event" {
        prop_oneof![3 => Just(RoomLogout::EVENT.to_owned()), 1 => valid_text(Kind::Text)].boxed()
    } else {
        valid_text(kind_of(name))
    }
}

/// A likely-valid JSON value for a field: numbers as JSON numbers or as strings, text as strings.
fn likely_valid_json(name: &'static str) -> BoxedStrategy<String> {
    let kind = kind_of(name);
    (likely_valid_text(name), any::<bool>())
        .prop_map(move |(text, as_number)| {
            if as_number && kind != Kind::Text {
                text
            } else {
                json_string(&text)
            }
        })
        .boxed()
}

/// JSON numbers as senders write them: every integer width, beyond 64 bits, floats, exponents,
/// `-0`, and (invalid) leading zeros.
fn json_number() -> BoxedStrategy<String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "-?[1-9][0-9]{19,40}",
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,6})?[eE][+-]?[0-9]{1,7}",
        Just("-0".to_owned()),
        "[0-9]{1,25}",
    ]
    .boxed()
}

/// JSON string literals: any text (U+0000 and astral planes included), numbers in strings, and
/// escapes written by hand, lone surrogates among them.
fn json_string_literal() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>().prop_map(|s| json_string(&s)),
        2 => odd_text().prop_map(|s| json_string(&s)),
        2 => "[+-]?[0-9]{0,22}".prop_map(|s| json_string(&s)),
        1 => prop::sample::select(&[
            r#""\u0000""#,
            r#""a\u0000b""#,
            r#""\ud83d\ude00""#,
            r#""\ud800""#,
            r#""\uDFFF""#,
            r#""\/\b\f\n\r\t""#,
            r#""\x41""#,
        ][..])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn json_scalar() -> BoxedStrategy<String> {
    prop_oneof![
        3 => json_number(),
        3 => json_string_literal(),
        1 => prop::sample::select(&["true", "false", "null"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Field names: the contract's, most of the time.
pub(super) fn field_name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(
            all_fields().collect::<Vec<_>>()
        )
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}

/// Names for extra fields: mostly not the contract's, so they seldom collide.
fn extra_name() -> BoxedStrategy<String> {
    prop_oneof![1 => field_name(), 4 => "[a-z_]{1,12}", 1 => any::<String>()].boxed()
}

/// Any JSON value as text: scalars, and arrays and objects nested a few levels.
pub(super) fn json_value() -> BoxedStrategy<String> {
    json_scalar()
        .prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((field_name(), inner), 0..4)
                    .prop_map(|pairs| json_object(&pairs)),
            ]
        })
        .boxed()
}

/// A few changes to a callback's fields: which field (by index), and its new value or none.
fn field_mutations<V: std::fmt::Debug + Clone>(
    value: BoxedStrategy<V>,
) -> impl Strategy<Value = Vec<(prop::sample::Index, Option<V>)>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            prop::option::weighted(0.75, value),
        ),
        0..4,
    )
}

fn mutate<V>(pairs: &mut Vec<(String, V)>, mutations: Vec<(prop::sample::Index, Option<V>)>) {
    for (index, value) in mutations {
        if pairs.is_empty() {
            break;
        }
        let i = index.index(pairs.len());
        match value {
            Some(value) => pairs[i].1 = value,
            None => {
                pairs.remove(i);
            }
        }
    }
}

/// A JSON callback with the contract's field names: every field likely valid, then up to three
/// replaced by any JSON value or removed, a few extra fields, any order.
pub(super) fn near_valid_json() -> impl Strategy<Value = String> {
    let fields: Vec<BoxedStrategy<(String, String)>> = all_fields()
        .map(|name| {
            likely_valid_json(name)
                .prop_map(move |v| (name.to_owned(), v))
                .boxed()
        })
        .collect();
    let extras = prop::collection::vec((extra_name(), json_value()), 0..3);
    (fields, field_mutations(json_value()), extras)
        .prop_flat_map(|(mut pairs, mutations, extras)| {
            mutate(&mut pairs, mutations);
            pairs.extend(extras);
            Just(pairs).prop_shuffle()
        })
        .prop_map(|pairs| json_object(&pairs))
}

/// Raw fragments of a form body: broken escapes, escapes of invalid UTF-8, stray separators.
const FORM_JUNK: &[&[u8]] = &[
    b"%",
    b"%4",
    b"%zz",
    b"x=%FF",
    b"x=%C3",
    b"x=%C3%28",
    b"y=%ED%A0%80",
    b"z=%C0%AF",
    b"",
    b"=",
    b"==",
    b"a==b",
    b"+",
    b"%00=%00",
    b"\xff",
    b"k=\xfe",
    b"room_id",
    b"event=room_logout",
    b"%zz=%",
];

/// A form callback with the contract's field names, escaped in either style: every field likely
/// valid, then up to three replaced by any text or removed, extra fields and junk mixed in.
pub(super) fn near_valid_form() -> impl Strategy<Value = Vec<u8>> {
    let fields: Vec<BoxedStrategy<(String, String)>> = all_fields()
        .map(|name| {
            likely_valid_text(name)
                .prop_map(move |v| (name.to_owned(), v))
                .boxed()
        })
        .collect();
    let extras = prop::collection::vec((extra_name(), any::<String>()), 0..2);
    let junk = prop::collection::vec(prop::sample::select(FORM_JUNK), 0..2);
    let mutations = field_mutations(any::<String>().boxed());
    (
        fields,
        mutations,
        extras,
        junk,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(mut pairs, mutations, extras, junk, plus, lower)| {
            mutate(&mut pairs, mutations);
            let mut segments: Vec<Vec<u8>> = pairs
                .into_iter()
                .chain(extras)
                .map(|pair| form_body(&[pair], plus, lower).into_bytes())
                .collect();
            segments.extend(junk.into_iter().map(<[u8]>::to_vec));
            Just(segments).prop_shuffle()
        })
        .prop_map(|segments| segments.join(&b'&'))
}

/// Bytes from the JSON alphabet, so the tokenizer gets past its first byte.
const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b" ",
    b"\"event\"",
    b"\"appid\"",
    b"\"session_id\"",
    b"\"room_logout\"",
    b"\"",
    b"\\",
    b"\\u00",
    b"1",
    b"-",
    b"e",
    b".",
    b"99999999999999999999999",
    b"true",
    b"nul",
    b"\xc3",
    b"\xff",
];

pub(super) fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(JSON_TOKENS), 0..64).prop_map(|t| t.concat())
}

/// A flat callback, every value a string: what both encodings can carry alike.
pub(super) fn flat_callback() -> impl Strategy<Value = BTreeMap<String, String>> {
    let fields: Vec<BoxedStrategy<(String, String)>> = all_fields()
        .map(|name| {
            likely_valid_text(name)
                .prop_map(move |v| (name.to_owned(), v))
                .boxed()
        })
        .collect();
    // A form cannot name a field with the empty string.
    let extras = prop::collection::vec(
        (
            extra_name().prop_filter("a name", |n| !n.is_empty()),
            any::<String>(),
        ),
        0..3,
    );
    (fields, extras).prop_map(|(fields, extras)| {
        // Extras first, so that a clash keeps the contract's value.
        extras.into_iter().chain(fields).collect()
    })
}
