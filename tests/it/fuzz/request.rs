//! A callback as the fuzz builds it (an ordered list of fields), rendered as JSON or as a form,
//! and the request made of it with what the server must answer.

use std::ops::Range;

use reqwest::header::HeaderValue;
use serde_json::Value;
use zegolog::callback::Encoding;

use super::sender::{form_escape, json_string};
use super::value_text;

/// A callback as an ordered list of fields, so that order, duplicates and raw numbers survive.
#[derive(Debug, Clone)]
pub(super) struct Callback(pub(super) Vec<(String, Value)>);

impl Callback {
    pub(super) fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub(super) fn set(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    pub(super) fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    pub(super) fn move_to_end(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(k, _)| k == name) {
            let entry = self.0.remove(i);
            self.0.push(entry);
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub(super) encoding: Encoding,
    pub(super) plus_for_space: bool,
    pub(super) lower_hex: bool,
}

/// A rendered body and where each field's value sits in it (JSON strings with their quotes).
pub(super) struct Rendered {
    pub(super) body: Vec<u8>,
    spans: Vec<(String, Range<usize>)>,
}

impl Rendered {
    pub(super) fn span(&self, name: &str) -> Option<Range<usize>> {
        self.spans
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, r)| r.clone())
    }

    /// Inside a JSON string's quotes, or the whole form value.
    pub(super) fn inner_span(&self, name: &str) -> Option<Range<usize>> {
        let span = self.span(name)?;
        if self.body.get(span.start) == Some(&b'"') {
            Some(span.start + 1..span.end - 1)
        } else {
            Some(span)
        }
    }
}

pub(super) fn render(callback: &Callback, style: Style) -> Rendered {
    let mut body = Vec::new();
    let mut spans = Vec::new();
    match style.encoding {
        Encoding::Json => {
            body.push(b'{');
            for (i, (k, v)) in callback.0.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(json_string(k).as_bytes());
                body.push(b':');
                let start = body.len();
                body.extend_from_slice(&serde_json::to_vec(v).unwrap());
                spans.push((k.clone(), start..body.len()));
            }
            body.push(b'}');
        }
        Encoding::Form => {
            for (i, (k, v)) in callback.0.iter().enumerate() {
                if i > 0 {
                    body.push(b'&');
                }
                body.extend_from_slice(
                    form_escape(k, style.plus_for_space, style.lower_hex).as_bytes(),
                );
                body.push(b'=');
                let start = body.len();
                let value = form_escape(&value_text(v), style.plus_for_space, style.lower_hex);
                body.extend_from_slice(value.as_bytes());
                spans.push((k.clone(), start..body.len()));
            }
        }
    }
    Rendered { body, spans }
}

/// What the server must do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Not authentic, or not readable: a 4xx, and nothing stored.
    Refused,
    /// Validly signed and readable: a 2xx and one archived callback per group (retries share it).
    Authentic { group: usize, logout: bool },
}

pub(super) struct Case {
    pub(super) kind: &'static str,
    pub(super) content_type: Option<HeaderValue>,
    pub(super) body: Vec<u8>,
    pub(super) expect: Expect,
}

impl Case {
    pub(super) fn describe(&self, index: usize) -> String {
        let prefix = self.body[..self.body.len().min(240)].escape_ascii();
        format!(
            "case #{index} [{}] ({:?}) content-type {:?}, {} bytes, body starts b\"{prefix}\"",
            self.kind,
            self.expect,
            self.content_type,
            self.body.len()
        )
    }
}

/// An authentic callback a later case may deliver again, as the sender's retry.
pub(super) struct Retryable {
    pub(super) group: usize,
    pub(super) logout: bool,
    pub(super) callback: Callback,
    pub(super) style: Style,
}
