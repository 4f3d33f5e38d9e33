//! Wall-clock time as Unix milliseconds, its RFC 3339 form, countdowns and durations as people
//! read and write them. The pure core never reads the clock; the engine and the HTTP layer read
//! it here and pass `now` down.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (UTC).
pub type Millis = i64;

pub fn now_ms() -> Millis {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Millis,
        // A clock set before 1970 is broken; treat it as the epoch rather than panic.
        Err(_) => 0,
    }
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const LAST_WRITABLE: Millis = 253_402_300_799_999;

/// `2026-11-24T10:05:00.000Z` for a Unix millisecond instant (clamped to years 1970–9999).
pub fn rfc3339(ms: Millis) -> String {
    let since_epoch = Duration::from_millis(ms.clamp(0, LAST_WRITABLE) as u64);
    humantime::format_rfc3339_millis(UNIX_EPOCH + since_epoch).to_string()
}

/// `5 Dec 2026, 10:15:03 UTC`: an instant as people read it, to the second.
pub fn readable(ms: Millis) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `rfc3339` writes a four-digit year, so every part is at its fixed place.
    let iso = rfc3339(ms);
    let part = |range: std::ops::Range<usize>| iso.get(range).and_then(|p| p.parse::<usize>().ok());
    match (part(0..4), part(5..7), part(8..10), iso.get(11..19)) {
        (Some(year), Some(month @ 1..=12), Some(day), Some(time)) => {
            format!("{day} {} {year}, {time} UTC", MONTHS[month - 1])
        }
        _ => iso,
    }
}

/// Start of the UTC day containing `ms`.
pub fn start_of_day(ms: Millis) -> Millis {
    ms - ms.rem_euclid(86_400_000)
}

/// `4:07`, `1:02:03`, `2d 3:04:05`: whole seconds rounded up, so 0:00 means the time is up.
pub fn countdown(ms: Millis) -> String {
    let total = (ms.max(0) + 999) / 1000;
    let (days, h, m, s) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    match (days, h) {
        (0, 0) => format!("{m}:{s:02}"),
        (0, _) => format!("{h}:{m:02}:{s:02}"),
        _ => format!("{days}d {h}:{m:02}:{s:02}"),
    }
}

/// The same for seconds left, as the API gives them (NaN and below zero are `0:00`).
pub fn countdown_secs(seconds: f64) -> String {
    // A float-to-int cast saturates, and NaN becomes 0.
    countdown((seconds * 1000.0) as Millis)
}

/// A duration as people write it: `90` (seconds), `90s`, `5m`, `1h30m`, `1.5h`, `30d`.
/// Returns seconds. Not `humantime::parse_duration`: that one refuses bare seconds and
/// fractions (`90`, `1.5h`) and accepts units in any order and twice (`30m1h`, `1m1m`).
pub fn parse_duration(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    let bad = || format!("{raw:?} is not a duration; write 90, 90s, 5m or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return s.parse::<f64>().map_err(|_| bad());
    }
    let mut total = 0.0;
    let mut number = String::new();
    // Units must come largest first, each at most once: `1h30m`, not `30m1h`.
    let mut last_unit = f64::INFINITY;
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400.0,
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(bad()),
        };
        if number.is_empty() || unit >= last_unit {
            return Err(bad());
        }
        total += number.parse::<f64>().map_err(|_| bad())? * unit;
        number.clear();
        last_unit = unit;
    }
    if !number.is_empty() || !total.is_finite() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_514_700_123), "2026-11-24T10:05:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn reads_instants_as_people_do() {
        assert_eq!(readable(1_796_465_703_884), "5 Dec 2026, 10:15:03 UTC");
        assert_eq!(readable(0), "1 Jan 1970, 00:00:00 UTC");
        assert_eq!(readable(951_782_400_000), "29 Feb 2000, 00:00:00 UTC");
        assert_eq!(readable(i64::MAX), "31 Dec 9999, 23:59:59 UTC");
    }

    #[test]
    fn countdowns_round_up_and_grow_hours_then_days() {
        assert_eq!(countdown(0), "0:00");
        assert_eq!(countdown(6_200), "0:07");
        assert_eq!(countdown(272_000), "4:32");
        assert_eq!(countdown(3_903_000), "1:05:03");
        assert_eq!(countdown(2 * 86_400_000 + 3_903_000), "2d 1:05:03");
        assert_eq!(countdown(-3_000), "0:00");
    }

    #[test]
    fn the_clock_rounds_up_and_grows_hours() {
        assert_eq!(countdown_secs(0.0), "0:00");
        assert_eq!(countdown_secs(6.2), "0:07");
        assert_eq!(countdown_secs(272.0), "4:32");
        assert_eq!(countdown_secs(3903.0), "1:05:03");
        assert_eq!(countdown_secs(-3.0), "0:00");
        assert_eq!(countdown_secs(f64::NAN), "0:00");
    }
}
