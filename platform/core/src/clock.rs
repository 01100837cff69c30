//! Wall-clock helpers: milliseconds since the Unix epoch, calendar days in the program's
//! time zone, and RFC 3339 / ISO 8601 formatting without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The day number (days since 1970-01-01) of `ms` in a zone `offset_minutes` east of UTC.
pub fn day_of(ms: i64, offset_minutes: i32) -> i64 {
    (ms + i64::from(offset_minutes) * 60_000).div_euclid(DAY_MS)
}

/// (year, month, day) of a day number (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A day number as `YYYY-MM-DD`.
pub fn date_string(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `ms` as an RFC 3339 UTC timestamp with milliseconds, e.g. `2025-11-27T04:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS);
    let (h, min, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{}T{h:02}:{min:02}:{s:02}.{milli:03}Z", date_string(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_string(0), "1970-01-01");
        assert_eq!(rfc3339(1_764_201_600_000), "2025-11-27T00:00:00.000Z");
        // 2025-11-26T20:00Z is already 11-27 in China Standard Time.
        assert_eq!(
            date_string(day_of(1_764_201_600_000 - 4 * 3_600_000, 480)),
            "2025-11-27"
        );
        assert_eq!(date_string(day_of(-1, 0)), "1969-12-31");
    }
}
