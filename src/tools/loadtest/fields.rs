//! How a body's fields are written: JSON string members or form pairs.

use std::fmt;
use std::io::Write as _;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::config::BodyEncoding;

/// Writes `name: value` pairs as JSON string members or form pairs, each after its separator.
pub(super) struct FieldWriter<'a> {
    pub out: &'a mut Vec<u8>,
    pub encoding: BodyEncoding,
    pub scratch: String,
}

impl FieldWriter<'_> {
    /// Free text: escaped for JSON, percent-encoded for a form.
    pub(super) fn text(&mut self, name: &str, value: fmt::Arguments<'_>) {
        self.scratch.clear();
        let _ = fmt::write(&mut self.scratch, value);
        let value = self.scratch.as_str();
        match self.encoding {
            BodyEncoding::Json => {
                let _ = write!(self.out, r#","{name}":"#);
                // Serialising a &str into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *self.out, value);
            }
            BodyEncoding::Form => {
                let value = utf8_percent_encode(value, NON_ALPHANUMERIC);
                let _ = write!(self.out, "&{name}={value}");
            }
        }
    }

    /// A number as a string, as the current vendor docs send it: digits need no escaping.
    pub(super) fn number(&mut self, name: &str, value: u64) {
        let _ = match self.encoding {
            BodyEncoding::Json => write!(self.out, r#","{name}":"{value}""#),
            BodyEncoding::Form => write!(self.out, "&{name}={value}"),
        };
    }
}
