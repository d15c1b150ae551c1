//! Examples of the contract: the vendor's sample and one body per rule. The property tests are in
//! `proptests/`.

use serde_json::Value;

use super::*;
use crate::signature::{Secrets, Verifier};

pub(super) const VENDOR_SAMPLE: &str = r#"{"event":"room_logout","appid":"1","timestamp":"1499676978","nonce":"350176","signature":"signature",
 "room_id":"rid_1242649","room_seq":"6085791336856668982","user_account":"888120154",
 "user_nickname":"888120154","session_id":"792462300429684736","login_time":"1663740623660",
 "logout_time":"1663740627986","reason":"0","user_role":"1","user_update_seq":"13"}"#;

#[test]
fn vendor_sample_normalises() {
    let fields = Fields::parse(VENDOR_SAMPLE.as_bytes(), Encoding::Json).unwrap();
    let envelope = Envelope::from_fields(&fields).unwrap();
    assert_eq!(envelope.event, "room_logout");
    assert_eq!(envelope.appid, 1);
    let logout = RoomLogout::from_fields(envelope.appid, &fields).unwrap();
    assert_eq!(logout.room_seq, Some(6_085_791_336_856_668_982));
    assert_eq!(logout.session_id, 792_462_300_429_684_736);
    assert_eq!(
        (logout.logout_time - logout.login_time.unwrap()).num_milliseconds(),
        4326
    );
    assert_eq!(logout.reason, Some(0));
    assert_eq!(logout.user_role, Some(1));
    assert_eq!(logout.user_update_seq, Some(13));
}

#[test]
fn login_and_room_events_normalise() {
    let login = br#"{"event":"room_login","appid":1,"room_id":"r","room_name":"R","room_seq":"5",
        "user_account":"u","session_id":"0","login_time":1499676978027,"user_role":"2",
        "auth_level":"1","relogin":"0","user_update_seq":"12"}"#;
    let fields = Fields::parse(login, Encoding::Json).unwrap();
    let login = RoomLogin::from_fields(1, &fields).unwrap();
    assert_eq!(login.login_time.timestamp_millis(), 1_499_676_978_027);
    assert_eq!((login.session_id, login.relogin), (0, Some(0)));

    let create = br#"{"room_id":"r","room_session_id":858012925204410400,"room_create_time":"1499676978027","id_name":"host"}"#;
    let fields = Fields::parse(create, Encoding::Json).unwrap();
    let room = RoomLifecycle::created(1, &fields).unwrap();
    assert_eq!(room.room_session_id, 858_012_925_204_410_400);
    assert_eq!(room.creator.as_deref(), Some("host"));
    let close = br#"{"room_id":"r","room_session_id":"1","room_close_time":"1499676978027","close_reason":"2"}"#;
    let fields = Fields::parse(close, Encoding::Json).unwrap();
    assert_eq!(
        RoomLifecycle::closed(1, &fields).unwrap().close_reason,
        Some(2)
    );
}

#[test]
fn json_numbers_keep_every_digit() {
    let body = br#"{"session_id": 18446744073709551615, "login_time": 1663740623660}"#;
    let fields = Fields::parse(body, Encoding::Json).unwrap();
    let id: u64 = fields.required_integer("session_id", "u64").unwrap();
    assert_eq!(id, u64::MAX);
    let too_big = br#"{"session_id": 18446744073709551616}"#;
    let fields = Fields::parse(too_big, Encoding::Json).unwrap();
    assert!(fields.integer::<u64>("session_id", "u64").is_err());
    let float = br#"{"login_time": 1.663740623660e12}"#;
    let fields = Fields::parse(float, Encoding::Json).unwrap();
    assert!(fields.integer::<i64>("login_time", "ms").is_err());
}

#[test]
fn form_values_are_url_decoded() {
    let body = b"event=room_logout&user_nickname=%E5%BC%A0+san&empty=";
    let fields = Fields::parse(body, Encoding::Form).unwrap();
    assert_eq!(fields.text("user_nickname").unwrap().unwrap(), "张 san");
    assert_eq!(fields.text("empty").unwrap(), None);
}

#[test]
fn form_refuses_invalid_utf8_and_duplicates() {
    assert!(Fields::parse(b"a=%FF", Encoding::Form).is_err());
    assert!(Fields::parse(b"a=1&a=2", Encoding::Form).is_err());
}

#[test]
fn json_refuses_duplicates_arrays_and_empty_bodies() {
    assert!(Fields::parse(br#"{"a":1,"a":2}"#, Encoding::Json).is_err());
    assert!(Fields::parse(b"[1,2]", Encoding::Json).is_err());
    assert_eq!(Fields::parse(b"  ", Encoding::Json), Err(ParseError::Empty));
}

#[test]
fn digest_ignores_signature_fields_only() {
    let a = Fields::parse(
        br#"{"event":"x","appid":1,"timestamp":"1","nonce":"a","signature":"s"}"#,
        Encoding::Json,
    )
    .unwrap();
    let b = Fields::parse(
        br#"{"event":"x","appid":"1","timestamp":"2","nonce":"b","signature":"t"}"#,
        Encoding::Json,
    )
    .unwrap();
    let c = Fields::parse(
        br#"{"event":"x","appid":2,"timestamp":"1","nonce":"a","signature":"s"}"#,
        Encoding::Json,
    )
    .unwrap();
    assert_eq!(a.business_digest(), b.business_digest());
    assert_ne!(a.business_digest(), c.business_digest());
}

#[test]
fn bad_times_are_refused() {
    for value in ["abc", "-1", "253402300800000", "1.5"] {
        let body = format!(
            r#"{{"room_id":"r","user_account":"u","session_id":"1","login_time":"1","logout_time":"{value}"}}"#
        );
        let fields = Fields::parse(body.as_bytes(), Encoding::Json).unwrap();
        let err = RoomLogout::from_fields(1, &fields).unwrap_err();
        assert_eq!(err.field(), "logout_time", "{value}");
    }
}

#[test]
fn a_signature_sent_in_upper_case_is_ledgered_in_lower_case() {
    // Signed with the secret `secret`, its signature sent in upper case: the ledger keeps it
    // in lower case, as the verifier compares it.
    let mut sample: Value = serde_json::from_str(VENDOR_SAMPLE).unwrap();
    let signature = crate::signature::sign("secret", "1499676978", "350176");
    sample["signature"] = Value::String(signature.to_uppercase());
    let verifier = Verifier::new(Secrets::new(Some("secret".into()), None).unwrap(), 0);
    let origin = Origin::Network {
        verifier: &verifier,
        now: 0,
    };
    let signed = receive(sample.to_string().as_bytes(), Encoding::Json, origin).unwrap();
    let triple = signed.signed.as_ref().unwrap();
    assert_eq!(triple.signature(), signature);
    assert_eq!(triple.timestamp(), 1_499_676_978);
}

#[test]
fn nul_characters_are_replaced_in_the_archive() {
    let fields = Fields::parse(br#"{"a":"x\u0000y"}"#, Encoding::Json).unwrap();
    let (json, reason) = fields.to_json();
    assert!(reason.is_some_and(|r| r.contains("U+0000")));
    assert_eq!(json["a"], "x\u{FFFD}y");
}
