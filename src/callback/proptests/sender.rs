//! How senders write callbacks: the envelope's field names, text that has tripped parsers
//! before, and the two encoders. Shared by the parser's property tests (here) and the HTTP fuzz
//! of the real server, `tests/it/fuzz/`, which includes this very file by its path: a change
//! here changes both.

use std::fmt::Write as _;

pub(super) const ENVELOPE_FIELDS: [&str; 5] = ["event", "appid", "timestamp", "nonce", "signature"];

/// Text that has tripped parsers before: empty, escapes that look decoded, digits that are not
/// ASCII, direction and byte-order marks, quotes, separators of both encodings.
pub(super) const ODD_TEXT: &[&str] = &[
    "",
    " ",
    "张三",
    "🎉 party",
    "O'Brien \"quoted\" \\ back",
    "a&b=c+d%20e",
    "100%",
    "%E5%BC%A0",
    "%zz%",
    "\u{202E}rtl",
    "\u{FEFF}bom",
    "tab\there\nnew line",
    "\u{FFFD}",
    "ｆｕｌｌ４２",
    "٣٤٥",
    "+42",
    " 42",
    "0x2A",
    "18446744073709551616",
    "-9223372036854775809",
    "1e3",
    "null",
];

pub(super) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// URL-encodes like a form sender: unreserved bytes raw, space as `+` or `%20`, hex in either case.
pub(super) fn form_escape(text: &str, plus_for_space: bool, lower_hex: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => {
                out.push(char::from(b))
            }
            b' ' if plus_for_space => out.push('+'),
            _ if lower_hex => write!(out, "%{b:02x}").unwrap(),
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}
