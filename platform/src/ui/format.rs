//! How the UI writes times and numbers for its reader: times in the program's time zone
//! (`PlatformConfig::utc_offset_minutes`, Beijing time by default) as `2026-12-07 11:36`,
//! with a relative age where it helps (`3 分钟前`, `3 min ago`); counts with thousands
//! separators (`4,000` in both languages); shares with as many decimals as it takes to
//! stay true (`0.025%`, never `0.0%` for a share above zero).
//!
//! Pages and the UI's CSV exports call the same functions, so a time reads the same on
//! screen and in a spreadsheet. The JSON API keeps RFC 3339 (UTC) for programs.

use super::i18n::Lang;
use crate::clock::{DAY_MS, date_string, day_of, rfc3339};
use serde::Serialize;

/// `ms` (since the Unix epoch) in the zone `offset_minutes` east of UTC, to the minute:
/// `2026-12-07 11:36`. The one way pages and CSV exports write a time.
pub fn local_time(ms: i64, offset_minutes: i32) -> String {
    let local = ms.saturating_add(i64::from(offset_minutes) * 60_000);
    let rest = local.rem_euclid(DAY_MS);
    format!(
        "{} {:02}:{:02}",
        date_string(local.div_euclid(DAY_MS)),
        rest / 3_600_000,
        rest / 60_000 % 60
    )
}

/// The date of `ms` in the zone `offset_minutes` east of UTC, `2026-12-07`: for what
/// happens on a day (a maturity assessment), as pages and CSV exports write it.
pub fn local_date(ms: i64, offset_minutes: i32) -> String {
    date_string(day_of(ms, offset_minutes))
}

/// How long ago something happened, `elapsed_ms` before now: `刚刚` / `just now` under a
/// minute (and for a time a little in the future, a clock's skew), else in whole minutes,
/// hours or days: `3 分钟前` / `3 min ago`.
pub fn ago(lang: Lang, elapsed_ms: i64) -> String {
    let s = elapsed_ms.div_euclid(1000);
    let (n, unit) = match s {
        ..60 => return lang.text("just_now").to_owned(),
        60..3600 => (s / 60, "minutes"),
        3600..86_400 => (s / 3600, "hours"),
        _ => (s / 86_400, "days"),
    };
    lang.text("ago")
        .replace("{n}", &format!("{n} {}", lang.text(unit)))
}

/// A time as a page shows it: local time, its age and the exact instant for `<time>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// In the program's zone, e.g. `2026-12-07 11:36` ([`local_time`]).
    pub at: String,
    /// How long ago, e.g. `3 分钟前` ([`ago`]).
    pub ago: String,
    /// RFC 3339 (UTC), for `<time datetime>`: machines read it, people do not see it.
    pub iso: String,
}

/// The [`Stamp`] of `ms` seen at `now_ms`.
pub fn stamp(lang: Lang, offset_minutes: i32, now_ms: i64, ms: i64) -> Stamp {
    Stamp {
        at: local_time(ms, offset_minutes),
        ago: ago(lang, now_ms - ms),
        iso: rfc3339(ms),
    }
}

/// A count with a comma every three digits: `4,000` (Chinese uses the same separator).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `part` of `of` as a percentage with its sign: one decimal from 1 % up, two significant
/// digits below (`0.21%`, `0.025%`), `<0.001%` below that; `0%` and `100%` only when
/// exact, `>99.9%` just short of all; `—` when `of` is 0 (no share to speak of).
pub fn percent(part: u64, of: u64) -> String {
    if of == 0 {
        return "—".to_owned();
    }
    if part == 0 {
        return "0%".to_owned();
    }
    if part == of {
        return "100%".to_owned();
    }
    let share = part as f64 * 100.0 / of as f64;
    let decimals = if share >= 1.0 {
        1
    } else {
        // Two significant digits: 0.1–1 % takes 2 decimals, 0.01–0.1 % takes 3.
        (1 - share.log10().floor() as i32).clamp(1, 3)
    };
    if share < 0.001 {
        // Below the third decimal: rounding would overstate it (0.0005 % as 0.001 %).
        return "<0.001%".to_owned();
    }
    let text = format!("{share:.prec$}", prec = decimals as usize);
    if part < of && share >= 99.95 {
        return ">99.9%".to_owned();
    }
    // `0.100` → `0.1`: trailing zeros of a small share say nothing, one decimal stays.
    let trimmed = if decimals > 1 {
        let t = text.trim_end_matches('0');
        if t.ends_with('.') {
            &text[..t.len() + 1]
        } else {
            t
        }
    } else {
        &text
    };
    format!("{trimmed}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T03:36:29.726Z, the time the walk through the pages saw printed in UTC.
    const T: i64 = 1_796_614_589_726;

    #[test]
    fn times_are_beijing_time_to_the_minute() {
        assert_eq!(rfc3339(T), "2026-12-07T03:36:29.726Z");
        assert_eq!(local_time(T, 480), "2026-12-07 11:36");
        assert_eq!(local_time(T, 0), "2026-12-07 03:36");
        // 20:00 UTC is already the next day in Beijing.
        assert_eq!(
            local_time(T + 16 * 3_600_000 + 24 * 60_000, 480),
            "2026-12-08 04:00"
        );
        assert_eq!(local_time(0, -300), "1969-12-31 19:00");
    }

    #[test]
    fn ages_say_how_long_ago_in_both_languages() {
        assert_eq!(ago(Lang::ZhCn, 5_000), "刚刚");
        assert_eq!(ago(Lang::En, -3_000), "just now");
        assert_eq!(ago(Lang::ZhCn, 3 * 60_000 + 10_000), "3 分钟前");
        assert_eq!(ago(Lang::En, 3 * 60_000), "3 min ago");
        assert_eq!(ago(Lang::ZhCn, 2 * 3_600_000), "2 小时前");
        assert_eq!(ago(Lang::En, 3 * DAY_MS), "3 d ago");
        let s = stamp(Lang::ZhCn, 480, T + 60_000, T);
        assert_eq!(
            (s.at.as_str(), s.ago.as_str()),
            ("2026-12-07 11:36", "1 分钟前")
        );
        assert_eq!(s.iso, rfc3339(T));
    }

    #[test]
    fn counts_have_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (4000, "4,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    /// Regression: 1 of 4,000 was shown as `0.0%`.
    #[test]
    fn percentages_keep_enough_precision_to_be_true() {
        for (part, of, text) in [
            (1, 4000, "0.025%"),
            (1, 480, "0.21%"),
            (1, 1000, "0.1%"),
            (1, 500, "0.2%"),
            (1, 3, "33.3%"),
            (1, 2, "50.0%"),
            (3, 250, "1.2%"),
            (1, 200_000, "<0.001%"),
            (1, 100_000, "0.001%"),
            (3999, 4000, ">99.9%"),
            (4, 4, "100%"),
            (5, 4, "125.0%"),
            (0, 10, "0%"),
            (0, 0, "—"),
            (3, 0, "—"),
        ] {
            assert_eq!(percent(part, of), text, "{part} of {of}");
        }
    }
}
