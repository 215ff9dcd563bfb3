//! Small hand-written text formats: JSON strings, RFC 3339 times, human sizes
//! and rates. Two runtime dependencies only, so each lives here, tested.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `text` as a JSON string literal, quotes included (RFC 8259 escaping).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters (C0, DEL and C1, where 0x9b starts a
            // terminal sequence) and the invisible ones `visible` escapes
            // (U+202E reverses a line): JSON read on a terminal, as
            // `list --json` is, must not spoof. Same value once parsed.
            c if c.is_control() || is_invisible(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` safe inside HTML or XML text and attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` with every control character escaped (`\u{1b}`, `\n`), and
/// every character that changes how the rest of a line shows while
/// showing nothing itself: bidirectional controls (U+202E turns `exe.txt`
/// into what reads as `txt.exe`), line and paragraph separators, and
/// invisible ones (zero-width spaces and joiners, U+FEFF). For showing
/// names that came from a peer on a terminal, where one name must never
/// pass for another.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_visible(&mut out, c);
    }
    out
}

/// One character of [`visible`], added to `out`: for text built in one
/// pass (the access log's quoted requests) instead of a string per step.
pub fn push_visible(out: &mut String, c: char) {
    if c.is_control() || is_invisible(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// Unicode's format characters (category Cf) that a terminal shows as
/// nothing or obeys as layout, the line and paragraph separators, and the
/// fillers that render blank. Variation selectors are left alone: emoji
/// need them and they cannot reorder a line.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// A time as RFC 3339 in UTC with milliseconds: `2026-11-25T09:36:30.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), valid for every date a clock can show.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The shortest transfer whose rate means something: below it, connection
/// set-up and timer resolution are most of what was measured.
pub const MEASURABLE: Duration = Duration::from_millis(10);

/// Bytes over a duration as decimal megabytes per second. The one
/// convention everywhere (README, `get`, `bench`, the ui page): sizes in
/// binary units (KiB, MiB, GiB), rates in decimal MB/s, as network rates
/// are quoted. `None` when the transfer was too short to measure (under
/// [`MEASURABLE`]) or too small to show (it would read `0.0 MB/s`).
pub fn rate(bytes: u64, elapsed: Duration) -> Option<String> {
    megabytes_per_second(bytes, elapsed).map(|per_sec| format!("{per_sec:.1} MB/s"))
}

/// The number [`rate`] shows, for a page that sets the unit apart.
pub fn megabytes_per_second(bytes: u64, elapsed: Duration) -> Option<f64> {
    let per_sec = bytes as f64 / elapsed.as_secs_f64() / 1e6;
    (elapsed >= MEASURABLE && per_sec >= 0.05).then_some(per_sec)
}

/// Seconds with millisecond precision: `0.012 s`.
pub fn seconds(elapsed: Duration) -> String {
    format!("{:.3} s", elapsed.as_secs_f64())
}

/// A duration as `1h02m`, `3m05s` or `12s`, for an ETA.
pub fn eta(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_rfc_8259_requires() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            json_string("\n\r\t\u{1}\u{7f}"),
            "\"\\n\\r\\t\\u0001\\u007f\""
        );
        assert_eq!(json_string("ü €"), "\"ü €\"");
        // C1 controls and invisible characters, one beyond the BMP as a
        // surrogate pair.
        assert_eq!(
            json_string("\u{9b}\u{202e}\u{e0041}"),
            "\"\\u009b\\u202e\\udb40\\udc41\""
        );
    }

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(visible("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(visible("plain ü"), "plain ü");
        assert_eq!(
            visible("a\u{202e}txt.exe\u{2028}\u{feff}\u{200b}"),
            "a\\u{202e}txt.exe\\u{2028}\\u{feff}\\u{200b}"
        );
        assert_eq!(
            visible("\u{2066}x\u{2069}\u{e0041}"),
            "\\u{2066}x\\u{2069}\\u{e0041}"
        );
        // Emoji keep their variation selector and joiner-free sequences.
        assert_eq!(visible("\u{2764}\u{fe0f} ok"), "\u{2764}\u{fe0f} ok");
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_795_599_390, 123)), "2026-11-25T09:36:30.123Z");
        assert_eq!(rfc3339(at(4_107_542_399, 999)), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn human_sizes_and_rates() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(
            rate(2_000_000, Duration::from_secs(2)).as_deref(),
            Some("1.0 MB/s")
        );
        assert_eq!(rate(1, Duration::ZERO), None);
        assert_eq!(rate(12, Duration::from_millis(1)), None);
        assert_eq!(rate(12, Duration::from_secs(1)), None);
        assert_eq!(rate(100_000_000, Duration::from_millis(5)), None);
        assert_eq!(eta(5), "5s");
        assert_eq!(eta(185), "3m05s");
        assert_eq!(eta(3720), "1h02m");
    }
}
