//! The callback parser by property: arbitrary bytes, JSON token soup, near-valid JSON and form
//! callbacks and arbitrary JSON objects never panic it and normalise consistently (the oracle is
//! in `check.rs`); exact integers and times, the business digest, the two encodings alike and
//! duplicate fields refused. Pure: no database, no HTTP. The real server against random and
//! mutated requests is the HTTP fuzz, `tests/it/fuzz/`; the bugs both found are regression
//! tests in `tests/it/robustness.rs`.
//!
//! They are the library's unit tests: `cargo test` runs them, `cargo test --lib callback::` runs
//! these and the examples alone.

mod check;
mod sender;
mod strategies;

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::{
    any, prop, prop_assert, prop_assert_eq, prop_assert_ne, prop_assume, prop_oneof, proptest,
    ProptestConfig, Strategy, TestCaseError,
};
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use serde_json::Value;

use crate::callback::{Encoding, Envelope, Fields, ParseError, Payload, Received, RoomLogout};
use check::check_pipeline;
use sender::{form_escape, json_string, ENVELOPE_FIELDS};
use strategies::{
    field_name, flat_callback, json_soup, json_value, near_valid_form, near_valid_json,
};

const LOGOUT_FIELDS: [&str; 10] = [
    "room_id",
    "room_seq",
    "user_account",
    "user_nickname",
    "session_id",
    "login_time",
    "logout_time",
    "reason",
    "user_role",
    "user_update_seq",
];
/// 9999-12-31T23:59:59.999Z, the latest time the contract accepts.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;

fn all_fields() -> impl Iterator<Item = &'static str> {
    ENVELOPE_FIELDS.iter().chain(LOGOUT_FIELDS.iter()).copied()
}

fn form_body(pairs: &[(String, String)], plus_for_space: bool, lower_hex: bool) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                form_escape(k, plus_for_space, lower_hex),
                form_escape(v, plus_for_space, lower_hex)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn json_object(pairs: &[(String, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn pairs_of(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn json_of_strings(pairs: &[(String, String)]) -> String {
    let pairs: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), json_string(v)))
        .collect();
    json_object(&pairs)
}

fn parse_json(body: &str) -> Result<Fields, TestCaseError> {
    Fields::parse(body.as_bytes(), Encoding::Json)
        .map_err(|e| TestCaseError::fail(format!("{e} in {body:?}")))
}

fn parse_form(body: &str) -> Result<Fields, TestCaseError> {
    Fields::parse(body.as_bytes(), Encoding::Form)
        .map_err(|e| TestCaseError::fail(format!("{e} in {body:?}")))
}

/// The vendor's valid room_logout (the one of the examples in `tests.rs`).
fn vendor_sample() -> Value {
    serde_json::from_str(super::tests::VENDOR_SAMPLE).unwrap()
}

/// The vendor's valid room_logout as JSON, with some fields' raw JSON text replaced.
fn logout_json(replacements: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = vendor_sample()
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    for (field, raw) in replacements {
        pairs.iter_mut().find(|(k, _)| k == field).unwrap().1 = (*raw).to_owned();
    }
    json_object(&pairs)
}

/// Shrunk failures are kept next to this file, to be replayed first on the next run (the path is
/// relative to the crate root, where `cargo test` runs the tests).
fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "src/callback/proptests/mod.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_pipeline(&body, Encoding::Json)?;
        check_pipeline(&body, Encoding::Form)?;
    }

    #[test]
    fn json_token_soup_never_panics_the_parser(body in json_soup()) {
        check_pipeline(&body, Encoding::Json)?;
        check_pipeline(&body, Encoding::Form)?;
    }

    #[test]
    fn near_valid_json_callbacks_normalise_consistently(body in near_valid_json()) {
        check_pipeline(body.as_bytes(), Encoding::Json)?;
    }

    #[test]
    fn near_valid_form_callbacks_normalise_consistently(body in near_valid_form()) {
        check_pipeline(&body, Encoding::Form)?;
    }

    #[test]
    fn objects_of_arbitrary_json_values_normalise_consistently(
        pairs in prop::collection::vec((field_name(), json_value()), 0..12)
    ) {
        check_pipeline(json_object(&pairs).as_bytes(), Encoding::Json)?;
    }

    #[test]
    fn every_u64_round_trips_exactly_as_json_number_json_string_and_form(n in any::<u64>()) {
        let bodies = [
            (format!(r#"{{"session_id":{n},"room_seq":{n}}}"#), Encoding::Json),
            (format!(r#"{{"session_id":"{n}","room_seq":"{n}"}}"#), Encoding::Json),
            (format!("session_id={n}&room_seq={n}"), Encoding::Form),
        ];
        let mut digests = HashSet::new();
        for (body, encoding) in &bodies {
            let fields = Fields::parse(body.as_bytes(), *encoding).unwrap();
            prop_assert_eq!(fields.required_integer::<u64>("session_id", "u64"), Ok(n), "{}", body);
            prop_assert_eq!(fields.integer::<u64>("room_seq", "u64"), Ok(Some(n)), "{}", body);
            digests.insert(fields.business_digest());
        }
        prop_assert_eq!(digests.len(), 1, "number, string and form digests differ");

        let digits = n.to_string();
        let body = logout_json(&[("session_id", &digits), ("room_seq", &digits)]);
        let logout = RoomLogout::from_fields(1, &parse_json(&body)?).unwrap();
        prop_assert_eq!((logout.session_id, logout.room_seq), (n, Some(n)));
    }

    #[test]
    fn integers_outside_their_type_are_refused_not_wrapped(
        beyond_u64 in (u128::from(u64::MAX) + 1)..=u128::MAX,
        negative in i64::MIN..0,
        beyond_i32 in prop_oneof![(i64::from(i32::MAX) + 1)..=i64::MAX, i64::MIN..i64::from(i32::MIN)],
        quoted in any::<bool>(),
    ) {
        let raw = |n: String| if quoted { json_string(&n) } else { n };
        for (field, value) in [
            ("session_id", raw(beyond_u64.to_string())),
            ("session_id", raw(negative.to_string())),
            ("room_seq", raw(beyond_u64.to_string())),
            ("reason", raw(beyond_i32.to_string())),
            ("user_role", raw(beyond_i32.to_string())),
            ("user_update_seq", raw(format!("{beyond_u64}"))),
            ("login_time", raw(negative.to_string())),
            ("logout_time", raw((MAX_UNIX_MS + 1 + (negative.unsigned_abs() % 1_000_000) as i64).to_string())),
        ] {
            let fields = parse_json(&logout_json(&[(field, &value)]))?;
            let error = RoomLogout::from_fields(1, &fields);
            prop_assert_eq!(error.map_err(|e| e.field()), Err(field), "{} = {}", field, value);
        }
    }

    #[test]
    fn unix_milliseconds_in_range_are_exact(
        login in 0..=MAX_UNIX_MS,
        logout in 0..=MAX_UNIX_MS,
        quoted in any::<bool>(),
    ) {
        let raw = |n: i64| if quoted { json_string(&n.to_string()) } else { n.to_string() };
        let body = logout_json(&[("login_time", &raw(login)), ("logout_time", &raw(logout))]);
        let logout_row = RoomLogout::from_fields(1, &parse_json(&body)?).unwrap();
        prop_assert_eq!(logout_row.login_time.unwrap().timestamp_millis(), login);
        prop_assert_eq!(logout_row.logout_time.timestamp_millis(), logout);
        prop_assert_eq!(
            (logout_row.logout_time - logout_row.login_time.unwrap()).num_milliseconds(),
            logout - login
        );
    }

    #[test]
    fn business_digest_ignores_exactly_timestamp_nonce_and_signature(
        callback in flat_callback(),
        timestamp in any::<String>(),
        nonce in any::<String>(),
        signature in any::<String>(),
        other_room in any::<String>(),
    ) {
        let original = parse_json(&json_of_strings(&pairs_of(&callback)))?;

        let mut resigned = callback.clone();
        resigned.insert("timestamp".into(), timestamp);
        resigned.insert("nonce".into(), nonce);
        resigned.insert("signature".into(), signature);
        let mut reversed = pairs_of(&resigned);
        reversed.reverse();
        let resigned = parse_json(&json_of_strings(&reversed))?;
        prop_assert_eq!(original.business_digest(), resigned.business_digest());

        prop_assume!(callback["room_id"] != other_room);
        let mut moved = callback.clone();
        moved.insert("room_id".into(), other_room);
        let moved = parse_json(&json_of_strings(&pairs_of(&moved)))?;
        prop_assert_ne!(original.business_digest(), moved.business_digest());
    }

    #[test]
    fn form_and_json_of_the_same_strings_are_the_same_callback(
        callback in flat_callback(),
        plus in any::<bool>(),
        lower in any::<bool>(),
    ) {
        let pairs = pairs_of(&callback);
        let json = parse_json(&json_of_strings(&pairs))?;
        let form = parse_form(&form_body(&pairs, plus, lower))?;
        prop_assert_eq!(json.business_digest(), form.business_digest());
        prop_assert_eq!(json.to_json(), form.to_json());
        prop_assert_eq!(&json, &form);
    }

    #[test]
    fn any_text_round_trips_through_json_and_form(text in any::<String>(), plus in any::<bool>(), lower in any::<bool>()) {
        let expected = (!text.is_empty()).then(|| text.clone());
        let json = parse_json(&format!(r#"{{"user_nickname":{}}}"#, json_string(&text)))?;
        let form = parse_form(&format!("user_nickname={}", form_escape(&text, plus, lower)))?;
        for fields in [&json, &form] {
            prop_assert_eq!(fields.text("user_nickname").unwrap().map(|t| t.into_owned()), expected.clone());
            let (archive, changed) = fields.to_json();
            prop_assert_eq!(changed.is_some(), text.contains('\0'));
            let scrubbed = text.replace('\0', "\u{FFFD}");
            prop_assert_eq!(archive["user_nickname"].as_str(), Some(scrubbed.as_str()));
        }
    }

    #[test]
    fn a_field_given_twice_is_refused_in_both_encodings(
        callback in flat_callback(),
        index in any::<prop::sample::Index>(),
        second in any::<String>(),
        plus in any::<bool>(),
    ) {
        let mut pairs = pairs_of(&callback);
        let name = pairs[index.index(pairs.len())].0.clone();
        pairs.insert(index.index(pairs.len() + 1), (name, second));
        prop_assert!(Fields::parse(json_of_strings(&pairs).as_bytes(), Encoding::Json).is_err());
        prop_assert!(Fields::parse(form_body(&pairs, plus, false).as_bytes(), Encoding::Form).is_err());
    }
}

#[test]
fn json_nesting_beyond_the_recursion_limit_is_a_clean_refusal() {
    for depth in 0..=300 {
        let arrays = format!(
            r#"{{"event":"x","deep":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let objects = format!(
            r#"{{"event":"x","deep":{}1{}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        for body in [arrays, objects] {
            let result = Fields::parse(body.as_bytes(), Encoding::Json);
            if depth <= 100 {
                assert!(result.is_ok(), "depth {depth}: {result:?}");
            } else if depth >= 127 {
                assert!(
                    matches!(result, Err(ParseError::Json(_))),
                    "depth {depth}: {result:?}"
                );
            }
            check_pipeline(body.as_bytes(), Encoding::Json).unwrap();
        }
    }
    for body in [
        "[".repeat(1_000_000),
        format!("{{\"a\":{}", "[".repeat(1_000_000)),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        r#"{"a":"#.repeat(100_000),
    ] {
        assert!(Fields::parse(body.as_bytes(), Encoding::Json).is_err());
    }
}

/// The near-valid strategies exist to get past the early refusals: check that they do.
#[test]
fn near_valid_strategies_reach_the_typed_logout() {
    let mut runner = TestRunner::deterministic();
    let json = near_valid_json();
    let form = near_valid_form();
    let (mut parsed, mut envelopes, mut logouts) = ([0; 2], [0; 2], [0; 2]);
    const SAMPLES: usize = 2000;
    for _ in 0..SAMPLES {
        let bodies = [
            (
                json.new_tree(&mut runner).unwrap().current().into_bytes(),
                Encoding::Json,
            ),
            (
                form.new_tree(&mut runner).unwrap().current(),
                Encoding::Form,
            ),
        ];
        for (i, (body, encoding)) in bodies.iter().enumerate() {
            let Ok(fields) = Fields::parse(body, *encoding) else {
                continue;
            };
            parsed[i] += 1;
            if let Ok(envelope) = Envelope::from_fields(&fields) {
                envelopes[i] += 1;
                if matches!(
                    Received::new(&envelope, &fields, *encoding, None).payload,
                    Payload::Logout(_)
                ) {
                    logouts[i] += 1;
                }
            }
        }
    }
    println!("parsed {parsed:?}, envelopes {envelopes:?}, logouts {logouts:?} of {SAMPLES}");
    for i in 0..2 {
        assert!(parsed[i] * 2 > SAMPLES, "too few bodies parse: {parsed:?}");
        assert!(
            envelopes[i] * 10 > SAMPLES,
            "too few envelopes: {envelopes:?}"
        );
        assert!(
            logouts[i] * 50 > SAMPLES,
            "too few typed logouts: {logouts:?}"
        );
    }
}

/// A spelling of the envelope name `key` (lower case, no `_`): each letter in either case, and
/// up to two `_` before, between and after the letters.
fn spelling(key: &'static str) -> impl Strategy<Value = String> {
    let letters: Vec<char> = key.chars().collect();
    let n = letters.len();
    (
        prop::collection::vec(any::<bool>(), n),
        prop::collection::vec(0usize..3, n + 1),
    )
        .prop_map(move |(upper, underscores)| {
            let mut name = String::new();
            for (i, letter) in letters.iter().enumerate() {
                name.push_str(&"_".repeat(underscores[i]));
                name.push(if upper[i] {
                    letter.to_ascii_uppercase()
                } else {
                    *letter
                });
            }
            name.push_str(&"_".repeat(underscores[n]));
            name
        })
}

proptest! {
    #![proptest_config(proptest_config())]

    /// The envelope's names are recognised by one rule, case and `_` ignored, in JSON and in
    /// forms, with numbers as JSON numbers or as text: any spelling reads the same envelope as
    /// RTC's lower-case names. The event goes by `event` or by `event_type` (a numeric one is
    /// named after the spelling sent). Timestamp, nonce and signature stay out of the business
    /// digest under any spelling.
    #[test]
    fn the_envelope_is_read_under_any_spelling_of_its_names(
        names in (spelling("event"), spelling("eventtype"), spelling("appid"),
                  spelling("timestamp"), spelling("nonce"), spelling("signature")),
        by_event_type in any::<bool>(),
        numeric_event in any::<bool>(),
        numbers in any::<bool>(),
        form in any::<bool>(),
        timestamp in 1_000_000_000i64..4_000_000_000_000,
        appid in any::<u32>(),
    ) {
        let (event_name, event_type_name, appid_name, timestamp_name, nonce_name, signature_name) = names;
        let event_value = if numeric_event { "7" } else { "stream_create" };
        let spelt_event = if by_event_type { &event_type_name } else { &event_name };
        let number = |n: String| if numbers && !form { n } else { json_string(&n) };
        let pairs = |event: &str, appid_key: &str, ts: &str, nonce: &str, sig: &str| vec![
            (event.to_owned(), if numeric_event && numbers && !form { event_value.to_owned() } else { json_string(event_value) }),
            (appid_key.to_owned(), number(appid.to_string())),
            (ts.to_owned(), number(timestamp.to_string())),
            (nonce.to_owned(), json_string("350176")),
            (sig.to_owned(), json_string("0123abcd")),
            ("stream_id".to_owned(), json_string("s-1")),
        ];
        let render = |pairs: Vec<(String, String)>| -> Result<Fields, TestCaseError> {
            if form {
                let text: Vec<(String, String)> = pairs
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::from_str::<Value>(&v).map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }).unwrap()))
                    .collect();
                parse_form(&form_body(&text, false, false))
            } else {
                parse_json(&json_object(&pairs))
            }
        };
        let spelt = render(pairs(spelt_event, &appid_name, &timestamp_name, &nonce_name, &signature_name))?;
        let canonical = render(pairs("event", "appid", "timestamp", "nonce", "signature"))?;

        let read = Envelope::from_fields(&spelt).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut expected = Envelope::from_fields(&canonical).unwrap();
        if by_event_type && numeric_event {
            expected.event = if event_type_name == "event_type" {
                format!("{}7", crate::callback::CLOUD_RECORDING_PREFIX)
            } else {
                format!("{event_type_name}:7")
            };
        }
        prop_assert_eq!(read, expected);

        // Timestamp, nonce and signature are out of the digest, whatever their spelling.
        let mut without = spelt.clone();
        for name in [&timestamp_name, &nonce_name, &signature_name] {
            without.0.remove(name.as_str());
        }
        prop_assert_eq!(spelt.business_digest(), without.business_digest());
    }

    /// Two spellings of one envelope name with different values are refused, never guessed
    /// between; with the same value they are one field.
    #[test]
    fn two_spellings_of_one_name_must_agree(
        first in spelling("nonce"),
        second in spelling("nonce"),
        same in any::<bool>(),
    ) {
        prop_assume!(first != second);
        let body = json_object(&[
            ("event".into(), json_string("stream_create")),
            ("appid".into(), "1".into()),
            ("timestamp".into(), "1700000000".into()),
            (first, json_string("350176")),
            (second, json_string(if same { "350176" } else { "999" })),
            ("signature".into(), json_string("0123abcd")),
        ]);
        let read = Envelope::from_fields(&parse_json(&body)?);
        if same {
            prop_assert_eq!(read.unwrap().nonce, "350176");
        } else {
            let error = read.unwrap_err();
            prop_assert_eq!(error.field(), "nonce");
            prop_assert!(error.to_string().contains("one value under all its spellings"), "{}", error);
        }
    }
}
