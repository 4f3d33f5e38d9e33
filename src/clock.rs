//! Wall-clock time as Unix milliseconds, and its RFC 3339 form. The pure core never reads the
//! clock; the engine and the HTTP layer read it here and pass `now` down.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (UTC).
pub type Millis = i64;

pub fn now_ms() -> Millis {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Millis,
        // A clock set before 1970 is broken; treat it as the epoch rather than panic.
        Err(_) => 0,
    }
}

/// `2026-11-24T10:05:00.000Z` for a Unix millisecond instant.
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Start of the UTC day containing `ms`.
pub fn start_of_day(ms: Millis) -> Millis {
    ms - ms.rem_euclid(86_400_000)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration as people write it: `90` (seconds), `90s`, `5m`, `1h30m`, `1.5h`, `30d`.
/// Returns seconds.
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
    }
}
