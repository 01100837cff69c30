//! Wall-clock helpers: milliseconds since the Unix epoch, calendar days in the program's
//! time zone, and RFC 3339 / ISO 8601 formatting and reading without a date-time
//! dependency.

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

/// The day number of (year, month, day) (Howard Hinnant's `days_from_civil`); the date
/// is not checked.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as RFC 3339 (`2025-03-15T09:30:00Z`, `2025-03-15T17:30:00.250+08:00`; a space
/// for the `T` is accepted) or a bare date (`2025-03-15`, the start of that day in the
/// zone `offset_minutes` east of UTC), in ms since the epoch; `None` if it is neither or
/// names no real date.
pub fn parse_time(text: &str, offset_minutes: i32) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = (text.get(..10)?, &text[10..]);
    let day = parse_date(date)?;
    if rest.is_empty() {
        return Some(day * DAY_MS - i64::from(offset_minutes) * 60_000);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let number = digits::<i64>;
    let (clock, zone) = rest.split_at(rest.find(['Z', 'z', '+', '-'])?);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let (h, min, s) = (
        number(parts.next()?)?,
        number(parts.next()?)?,
        number(parts.next()?)?,
    );
    if parts.next().is_some() || hms.len() != 8 || h > 23 || min > 59 || s > 60 {
        return None;
    }
    let milli = match fraction {
        "" if !clock.contains('.') => 0,
        f => {
            number(f)?;
            // Milliseconds: the first three digits, padded.
            format!("{:0<3}", &f[..f.len().min(3)])
                .parse::<i64>()
                .ok()?
        }
    };
    let zone_ms = match zone {
        "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (zh, zm) = z[1..].split_once(':')?;
            let (zh, zm) = (number(zh)?, number(zm)?);
            if zh > 23 || zm > 59 || z.len() != 6 {
                return None;
            }
            sign * (zh * 60 + zm) * 60_000
        }
    };
    Some(day * DAY_MS + ((h * 60 + min) * 60 + s.min(59)) * 1000 + milli - zone_ms)
}

/// The day number of `YYYY-MM-DD`, if it is a real date.
fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (
        digits(&text[..4])?,
        digits(&text[5..7])?,
        digits(&text[8..])?,
    );
    let day = days_from_civil(y, m, d);
    // A date that does not exist (02-30) comes back as another one.
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// `text` as a number if it is ASCII digits only (no sign, no spaces).
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
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

    #[test]
    fn times_are_read_as_rfc_3339_or_a_date_in_the_zone() {
        let noon = 1_764_201_600_000 + 12 * 3_600_000;
        assert_eq!(parse_time("2025-11-27T12:00:00Z", 0), Some(noon));
        assert_eq!(parse_time("2025-11-27T20:00:00+08:00", 0), Some(noon));
        assert_eq!(parse_time("2025-11-27 07:00:00-05:00", 480), Some(noon));
        assert_eq!(parse_time("2025-11-27T12:00:00.25Z", 0), Some(noon + 250));
        assert_eq!(parse_time(&rfc3339(noon + 7), 0), Some(noon + 7));
        // A date is the start of that day in the program's zone.
        assert_eq!(parse_time("2025-11-27", 0), Some(1_764_201_600_000));
        assert_eq!(
            parse_time(" 2025-11-27 ", 480),
            Some(1_764_201_600_000 - 8 * 3_600_000)
        );
        for bad in [
            "",
            "2025-02-30",
            "2025-13-01",
            "2025-1-01",
            "27.11.2025",
            "2025-11-27T12:00:00",
            "2025-11-27T24:00:00Z",
            "2025-11-27T12:00Z",
            "2025-11-27T12:00:00+8",
            "2025-11-27T12:00:00.Z",
            "2025-11-27T12:00:00x",
            "二〇二五年十一月",
        ] {
            assert_eq!(parse_time(bad, 480), None, "{bad:?}");
        }
        for day in [-1, 0, 59, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
