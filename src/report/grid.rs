//! One grid, three formats: a report's section is a [`Grid`] of named columns and typed
//! [`Cell`]s, rendered as a table for the terminal (free text sanitised and shortened), as CSV
//! (RFC 4180) and as JSON (values as stored, the same column names as CSV).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

/// One section: named columns and typed cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The name in CSV headers and JSON keys.
    pub name: &'static str,
    /// The heading in a terminal table.
    pub label: &'static str,
}

impl Column {
    pub(super) fn new(name: &'static str, label: &'static str) -> Self {
        Self { name, label }
    }
}

/// A value, typed so that each format can show it its way.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    /// A statistic (seconds, minutes); `None` when there is nothing to measure.
    Number(Option<f64>),
    /// A fraction between 0 and 1: a percentage in a table, the fraction in CSV and JSON.
    Share(f64),
    /// A share that may be unknown (a usual share where there was no baseline).
    MaybeShare(Option<f64>),
    /// A lift: `×2.50` in a table, the number in CSV and JSON; `None` ("new") when there is no
    /// usual share to divide by.
    Lift(Option<f64>),
    Text(String),
    Date(NaiveDate),
    Time(Option<DateTime<Utc>>),
}

/// The longest free text (room id, user account) a table shows; CSV and JSON keep it whole.
const TABLE_TEXT_CHARS: usize = 40;

impl Cell {
    fn table_text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Number(Some(s)) => format!("{s:.1}"),
            Self::Number(None) | Self::Time(None) => "-".to_owned(),
            Self::Share(share) | Self::MaybeShare(Some(share)) => {
                format!("{:.1}%", share * 100.0)
            }
            Self::MaybeShare(None) => "-".to_owned(),
            Self::Lift(Some(lift)) => format!("×{lift:.2}"),
            Self::Lift(None) => "new".to_owned(),
            Self::Text(text) => terminal_safe(text, TABLE_TEXT_CHARS),
            Self::Date(day) => day.to_string(),
            Self::Time(Some(at)) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(
            self,
            Self::Int(_) | Self::Number(_) | Self::Share(_) | Self::MaybeShare(_) | Self::Lift(_)
        )
    }

    fn csv_text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Number(Some(s)) => s.to_string(),
            Self::Number(None) | Self::Time(None) => String::new(),
            Self::Share(share) => share.to_string(),
            Self::MaybeShare(share) | Self::Lift(share) => {
                share.map(|s| s.to_string()).unwrap_or_default()
            }
            Self::Text(text) => text.clone(),
            Self::Date(day) => day.to_string(),
            Self::Time(Some(at)) => rfc3339(at),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Int(n) => json!(n),
            Self::Number(s) => json!(s),
            Self::Share(share) => json!(share),
            Self::MaybeShare(share) | Self::Lift(share) => json!(share),
            Self::Text(text) => json!(text),
            Self::Date(day) => json!(day.to_string()),
            Self::Time(at) => json!(at.as_ref().map(rfc3339)),
        }
    }
}

pub(super) fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Free text as a terminal may show it: control characters (an escape sequence in a room id
/// would drive the terminal) escaped, and cut to `max` characters.
fn terminal_safe(text: &str, max: usize) -> String {
    let mut safe = String::new();
    for c in text.chars() {
        if c.is_control() {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    if safe.chars().count() > max {
        safe = safe.chars().take(max - 1).collect();
        safe.push('…');
    }
    safe
}

impl Grid {
    /// Aligned columns (numbers to the right), a rule under the headings; `(none)` when empty.
    pub fn to_table(&self) -> String {
        if self.rows.is_empty() {
            return "(none)\n".to_owned();
        }
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(Cell::table_text).collect())
            .collect();
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| self.rows.iter().all(|row| row[i].is_numeric()))
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                cells
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain([column.label.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, texts: &mut dyn Iterator<Item = &str>| {
            let mut first = true;
            let mut row = String::new();
            for (i, text) in texts.enumerate() {
                if !first {
                    row.push_str("  ");
                }
                first = false;
                let pad = widths[i].saturating_sub(text.chars().count());
                if numeric[i] {
                    row.extend(std::iter::repeat_n(' ', pad));
                    row.push_str(text);
                } else {
                    row.push_str(text);
                    row.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(row.trim_end());
            out.push('\n');
        };
        line(&mut out, &mut self.columns.iter().map(|c| c.label));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &mut rule.iter().map(String::as_str));
        for row in &cells {
            line(&mut out, &mut row.iter().map(String::as_str));
        }
        out
    }

    /// RFC 4180: a header line, then one line per row; a field with a comma, a quote or a line
    /// break is quoted, its quotes doubled. Lines end in CRLF as the RFC says.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, fields: &mut dyn Iterator<Item = String>| {
            let fields: Vec<String> = fields.map(|f| csv_field(&f)).collect();
            let _ = write!(out, "{}\r\n", fields.join(","));
        };
        line(
            &mut out,
            &mut self.columns.iter().map(|c| c.name.to_owned()),
        );
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(Cell::csv_text));
        }
        out
    }

    /// An array of objects, one per row, keyed by column name.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.columns
                            .iter()
                            .zip(row)
                            .map(|(column, cell)| (column.name.to_owned(), cell.json()))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }

    #[test]
    fn terminal_text_is_escaped_and_cut() {
        assert_eq!(terminal_safe("room\u{1b}[2J", 40), "room\\u{1b}[2J");
        assert_eq!(terminal_safe("abcdef", 4), "abc…");
        assert_eq!(terminal_safe("房间", 4), "房间");
    }
}
