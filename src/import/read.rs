//! The input, read and parsed on a thread of its own: bounded lines (a file without line
//! breaks cannot exhaust memory; an overlong line is skipped and refused), a UTF-8 byte order
//! mark and surrounding white space dropped, each line through the same normalisation as a
//! callback received over HTTP, without the signature check. Refused lines are counted and the
//! first ones kept with their reason; the callbacks go to the writers in batches.

use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::Context;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::{Batch, LISTED_LINES, MAX_LINE_BYTES};
use crate::callback::{self, Encoding, Origin, ReceiveError, Received};

/// Where the callbacks come from.
pub struct Input {
    pub(super) name: String,
    pub(super) reader: Box<dyn Read + Send>,
    /// Its size in bytes, when known (a regular file), for the progress bar.
    pub(super) len: Option<u64>,
}

impl Input {
    /// `-` is standard input; anything else a file.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self::from_reader("standard input", std::io::stdin(), None));
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        Ok(Self::from_reader(path.display().to_string(), file, len))
    }

    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
        len: Option<u64>,
    ) -> Self {
        Self {
            name: name.into(),
            reader: Box::new(reader),
            len,
        }
    }
}

/// What the reader thread saw.
#[derive(Default)]
pub(super) struct ReadTally {
    pub(super) lines: u64,
    pub(super) bytes: u64,
    pub(super) blank: u64,
    pub(super) refused: u64,
    pub(super) refused_lines: Vec<(u64, String)>,
    /// Reading the input failed: the import stops there.
    pub(super) error: Option<String>,
}

/// Reads lines, parses them into callbacks and sends them in batches; stops at the end of the
/// input, on a read error, or when the receiver is gone.
pub(super) fn read_batches(
    mut reader: impl BufRead,
    batch_size: usize,
    batches: &mpsc::Sender<Batch>,
    bar: &ProgressBar,
) -> ReadTally {
    let mut read = ReadTally::default();
    let mut line = Vec::new();
    let mut batch = Batch {
        callbacks: Vec::with_capacity(batch_size),
        lines: Vec::with_capacity(batch_size),
    };
    loop {
        let (consumed, too_long) = match next_line(&mut reader, &mut line) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                read.error = Some(format!("reading line {} failed: {e}", read.lines + 1));
                break;
            }
        };
        read.lines += 1;
        read.bytes += consumed as u64;
        bar.inc(consumed as u64);
        let number = read.lines;
        let text = trim(&line, number == 1);
        let parsed = if too_long {
            Err(format!(
                "longer than {} KiB, the most zegolog accepts for one callback",
                MAX_LINE_BYTES / 1024
            ))
        } else if text.is_empty() {
            read.blank += 1;
            continue;
        } else {
            parse_line(text)
        };
        match parsed {
            Ok(received) => {
                batch.callbacks.push(received);
                batch.lines.push(number);
            }
            Err(reason) => {
                read.refused += 1;
                if read.refused_lines.len() < LISTED_LINES {
                    read.refused_lines.push((number, reason));
                }
            }
        }
        if batch.callbacks.len() >= batch_size {
            let full = std::mem::replace(
                &mut batch,
                Batch {
                    callbacks: Vec::with_capacity(batch_size),
                    lines: Vec::with_capacity(batch_size),
                },
            );
            if batches.blocking_send(full).is_err() {
                return read;
            }
        }
    }
    if !batch.callbacks.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    read
}

/// One line as live ingest takes a JSON body, from the operator: without the signature check.
fn parse_line(line: &[u8]) -> Result<Received, String> {
    callback::receive(line, Encoding::Json, Origin::Operator).map_err(|e| match e {
        ReceiveError::Envelope(e) => shorten(format!("not a callback envelope: {e}")),
        other => shorten(other.to_string()),
    })
}

/// A reason short enough for one line of the summary (a refused value may be long).
fn shorten(mut reason: String) -> String {
    const MAX: usize = 200;
    if reason.len() > MAX {
        reason.truncate(reason.floor_char_boundary(MAX));
        reason.push('…');
    }
    reason
}

/// The line without surrounding white space (a CRLF file's `\r` included) and, on the first
/// line, without a UTF-8 byte order mark.
fn trim(line: &[u8], first: bool) -> &[u8] {
    let line = match line.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if first => rest,
        _ => line,
    };
    line.trim_ascii()
}

/// Reads up to and including the next `\n` (or the end of the input) into `buf`, without the
/// `\n`. Returns the bytes consumed and whether the line was longer than [`MAX_LINE_BYTES`]
/// (then `buf` is left empty and the rest of the line is skipped without being kept);
/// `None` at the end of the input.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(usize, bool)>> {
    buf.clear();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed > 0).then_some((consumed, too_long)));
        }
        let (used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, Some(i)),
            None => (available.len(), None),
        };
        if !too_long {
            let part = &available[..end.unwrap_or(used)];
            if buf.len() + part.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        reader.consume(used);
        consumed += used;
        if end.is_some() {
            return Ok(Some((consumed, too_long)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn lines(input: &[u8]) -> Vec<(Vec<u8>, usize, bool)> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((consumed, too_long)) = next_line(&mut reader, &mut buf).unwrap() {
            out.push((buf.clone(), consumed, too_long));
        }
        out
    }

    #[test]
    fn lines_are_split_and_counted_in_bytes() {
        let got = lines(b"a\r\n\nbc\nlast");
        let texts: Vec<&[u8]> = got.iter().map(|(l, _, _)| l.as_slice()).collect();
        assert_eq!(texts, [&b"a\r"[..], b"", b"bc", b"last"]);
        assert_eq!(got.iter().map(|(_, n, _)| n).sum::<usize>(), 11);
    }

    #[test]
    fn an_overlong_line_is_skipped_without_being_kept() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{}\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert!(got[0].2 && got[0].0.is_empty());
        assert_eq!(got[0].1, MAX_LINE_BYTES + 11);
        assert_eq!((got[1].0.as_slice(), got[1].2), (&b"{}"[..], false));
    }

    #[test]
    fn byte_order_mark_is_dropped_on_the_first_line_only() {
        assert_eq!(trim(b"\xEF\xBB\xBF{} \r", true), b"{}");
        assert_eq!(trim(b"\xEF\xBB\xBF{}", false), b"\xEF\xBB\xBF{}");
    }
}
