//! PostgreSQL's COPY text format, written fast: escaped text, integers and timestamps.

use crate::tools::traffic::DAY_MS;

/// Escapes text for COPY's text format: backslash, tab, newline and carriage return.
pub(super) fn copy_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

pub(super) fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

fn push_digits(out: &mut Vec<u8>, n: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(b'0' + (n / 10u32.pow(place) % 10) as u8);
    }
}

/// Writes unix milliseconds as `YYYY-MM-DD HH:MM:SS.mmm+00` (years 0 to 9999), much faster
/// than going through chrono's formatter for tens of millions of timestamps.
pub(super) fn push_ts(out: &mut Vec<u8>, unix_ms: i64) {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
    let ms_of_day = unix_ms.rem_euclid(DAY_MS) as u32;
    push_digits(out, year as u32, 4);
    out.push(b'-');
    push_digits(out, month, 2);
    out.push(b'-');
    push_digits(out, day, 2);
    out.push(b' ');
    push_digits(out, ms_of_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 1_000 % 60, 2);
    out.push(b'.');
    push_digits(out, ms_of_day % 1_000, 3);
    out.extend_from_slice(b"+00");
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn timestamps_match_chrono() {
        let mut rng = StdRng::seed_from_u64(7);
        for ms in [
            0,
            1,
            -1,
            951_782_400_000,
            1_663_740_627_986,
            4_102_444_799_999,
        ]
        .into_iter()
        .chain((0..10_000).map(|_| rng.gen_range(-2_000_000_000_000i64..4_000_000_000_000)))
        {
            let mut out = Vec::new();
            push_ts(&mut out, ms);
            let expected = Utc
                .timestamp_millis_opt(ms)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S%.3f+00")
                .to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{ms}");
        }
    }

    #[test]
    fn integers_and_text_are_copy_text() {
        let mut out = Vec::new();
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_i64(&mut out, i64::MIN);
        out.push(b' ');
        push_u64(&mut out, 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "18446744073709551615 -9223372036854775808 0"
        );
        assert_eq!(copy_escape("a\\b\tc\nd\re é"), "a\\\\b\\tc\\nd\\re é");
    }
}
