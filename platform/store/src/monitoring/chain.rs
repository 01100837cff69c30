//! The arithmetic of monitoring, with no I/O: what consecutive readings of a role point
//! contribute to its machine's local days, and how a group's readings of a point are
//! spliced into the chain of readings processed before.
//!
//! A point's *readings* are its good samples with a number (booleans as 0 and 1), in
//! timestamp order; a reading at a timestamp already in the chain is a repeat and ignored.
//! Each pair of consecutive readings `a → b` contributes:
//! - `running`: when `b.ts - a.ts` is at most [`MAX_GAP_MS`], the interval is observed,
//!   and running if `a` is true (non-zero); split at local midnight between the days it
//!   spans. A longer interval is unobserved (the machine or its gateway was silent).
//! - `energy_kwh`, `output_count`: the increment `b - a`, or `b` (from 0) when the counter
//!   went down (a reset or a meter swap), never negative; counted on `b`'s day, whatever
//!   the gap (the meter measured it, however late it was read).
//!
//! So the totals depend only on the set of readings, never on the order they arrived in:
//! a late reading between `p` and `n` takes `p → n` away and adds `p → r` and `r → n`.

use fieldlink_platform_core::clock::{DAY_MS, day_of};
use fieldlink_wire::PointRole;
use std::collections::BTreeMap;

/// The longest interval between two readings of a `running` point that counts as
/// observed. A `running` point reported by exception needs a `heartbeat` below it.
pub const MAX_GAP_MS: i64 = 15 * 60_000;

/// One reading of a role point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    /// When it was read (ms since the epoch).
    pub ts: i64,
    /// Its value (a boolean as 0 or 1).
    pub value: f64,
}

/// What a machine adds to one local day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DayFigures {
    /// Samples stored (of any point, any quality).
    pub samples: i64,
    /// Observed time with `running` true.
    pub running_ms: i64,
    /// Observed time of `running` points.
    pub observed_ms: i64,
    /// `energy_kwh` increments.
    pub energy_kwh: f64,
    /// `output_count` increments.
    pub output: f64,
}

impl DayFigures {
    /// Adds `other`'s figures to these.
    pub fn add(&mut self, other: &DayFigures) {
        self.samples += other.samples;
        self.running_ms += other.running_ms;
        self.observed_ms += other.observed_ms;
        self.energy_kwh += other.energy_kwh;
        self.output += other.output;
    }

    /// True if adding these changes nothing.
    pub fn is_zero(&self) -> bool {
        *self == DayFigures::default()
    }
}

/// Figures by local day number.
pub(crate) type Days = BTreeMap<i64, DayFigures>;

/// The sum a role feeds (a `fault` point feeds none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// Observed and running time.
    Running,
    /// Energy increments.
    Energy,
    /// Output increments.
    Output,
}

impl Measure {
    /// The sum `role` feeds, if any.
    pub fn of(role: PointRole) -> Option<Measure> {
        match role {
            PointRole::Running => Some(Measure::Running),
            PointRole::EnergyKwh => Some(Measure::Energy),
            PointRole::OutputCount => Some(Measure::Output),
            PointRole::Fault => None,
        }
    }
}

/// Adds (`sign` 1) or takes away (`sign` -1) what the pair `a → b` contributes.
pub(crate) fn interval(
    measure: Measure,
    a: Reading,
    b: Reading,
    offset_minutes: i32,
    sign: i64,
    days: &mut Days,
) {
    match measure {
        Measure::Running => {
            if b.ts <= a.ts || b.ts - a.ts > MAX_GAP_MS {
                return;
            }
            let running = a.value != 0.0;
            let offset_ms = i64::from(offset_minutes) * 60_000;
            let mut from = a.ts;
            while from < b.ts {
                let day = day_of(from, offset_minutes);
                let to = b.ts.min((day + 1) * DAY_MS - offset_ms);
                let figures = days.entry(day).or_default();
                figures.observed_ms += (to - from) * sign;
                if running {
                    figures.running_ms += (to - from) * sign;
                }
                from = to;
            }
        }
        Measure::Energy | Measure::Output => {
            let increment = if b.value >= a.value {
                b.value - a.value
            } else {
                b.value.max(0.0)
            };
            let figures = days.entry(day_of(b.ts, offset_minutes)).or_default();
            let added = increment * sign as f64;
            if measure == Measure::Energy {
                figures.energy_kwh += added;
            } else {
                figures.output += added;
            }
        }
    }
}

/// Adds (`sign` 1) or takes away (`sign` -1) what each consecutive pair of `readings`
/// (in timestamp order) contributes, repeats skipped; the last reading, if any.
pub(crate) fn chain(
    measure: Measure,
    readings: impl IntoIterator<Item = Reading>,
    offset_minutes: i32,
    sign: i64,
    days: &mut Days,
) -> Option<Reading> {
    let mut last: Option<Reading> = None;
    for r in readings {
        match last {
            Some(p) if r.ts <= p.ts => continue,
            Some(p) => interval(measure, p, r, offset_minutes, sign, days),
            None => {}
        }
        last = Some(r);
    }
    last
}

/// What monitoring processed of a point: the oldest reading's time and the newest reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PointState {
    /// The oldest reading processed.
    pub first_ts: Option<i64>,
    /// The newest reading processed.
    pub last: Option<Reading>,
}

/// The stored readings around a late run `lo..=hi` of a point: the last before `lo`, all
/// in `lo..=hi` (the group's own among them: they are stored before monitoring runs), and
/// the first after `hi`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Around {
    /// The last reading before `lo`.
    pub prev: Option<Reading>,
    /// The readings in `lo..=hi`, in timestamp order.
    pub inside: Vec<Reading>,
    /// The first reading after `hi`.
    pub next: Option<Reading>,
}

/// The range of the late readings among `readings` (sorted): those at or before the
/// newest processed, which are spliced in with the stored readings around them.
pub(crate) fn late_range(state: &PointState, readings: &[Reading]) -> Option<(i64, i64)> {
    let newest = state.last?.ts;
    let late = &readings[..readings.partition_point(|r| r.ts <= newest)];
    Some((late.first()?.ts, late.last()?.ts))
}

/// Splices a group's `readings` of a point (sorted by time) into its chain: the late ones
/// with `around` (given whenever [`late_range`] is), the others after the newest, each
/// pair's contribution added to `days`. The point's new state.
pub(crate) fn splice(
    measure: Measure,
    state: PointState,
    readings: &[Reading],
    around: Option<&Around>,
    offset_minutes: i32,
    days: &mut Days,
) -> PointState {
    let split = state
        .last
        .map_or(0, |last| readings.partition_point(|r| r.ts <= last.ts));
    let (late, fresh) = readings.split_at(split);
    let mut first_ts = state.first_ts;
    if let (false, Some(around)) = (late.is_empty(), around) {
        first_ts = splice_late(measure, first_ts, late, around, offset_minutes, days);
    }
    let last = chain(
        measure,
        state.last.into_iter().chain(fresh.iter().copied()),
        offset_minutes,
        1,
        days,
    );
    PointState {
        first_ts: first_ts.or(fresh.first().map(|r| r.ts)),
        last,
    }
}

/// Splices late readings (sorted, at or before the newest processed) into the stored
/// chain around them; the new oldest time. A reading whose stored neighbour is gone
/// (pruned past the retention) changes nothing: what it would take away is not known.
fn splice_late(
    measure: Measure,
    first_ts: Option<i64>,
    late: &[Reading],
    around: &Around,
    offset_minutes: i32,
    days: &mut Days,
) -> Option<i64> {
    // The readings processed before: the stored ones in the window less the group's own
    // (one stored row per own reading, matched by time).
    let mut known = Vec::with_capacity(around.inside.len());
    let mut own = late.iter().peekable();
    for r in &around.inside {
        while own.next_if(|o| o.ts < r.ts).is_some() {}
        if own.next_if(|o| o.ts == r.ts).is_none() {
            known.push(*r);
        }
    }
    let mut added: Vec<Reading> = Vec::with_capacity(late.len());
    for r in late {
        let repeat = added.last().is_some_and(|a| a.ts == r.ts)
            || known.binary_search_by_key(&r.ts, |k| k.ts).is_ok();
        if !repeat {
            added.push(*r);
        }
    }
    let mut first_ts = first_ts;
    let mut anchor = around.prev;
    if anchor.is_none() {
        let oldest_known = known.first().or(around.next.as_ref()).copied();
        match oldest_known {
            // The oldest reading ever is still stored: what comes before it is new.
            Some(k) if Some(k.ts) == first_ts => {
                if let Some(oldest) = added.first() {
                    first_ts = Some(k.ts.min(oldest.ts));
                }
            }
            // Older readings were pruned: only what follows the oldest stored counts.
            Some(k) => {
                added.retain(|r| r.ts > k.ts);
                if known.first() == Some(&k) {
                    known.remove(0);
                }
                anchor = Some(k);
            }
            None => return first_ts,
        }
    }
    if added.is_empty() {
        return first_ts;
    }
    let old = anchor
        .into_iter()
        .chain(known.iter().copied())
        .chain(around.next);
    chain(measure, old, offset_minutes, -1, days);
    let mut merged = Vec::with_capacity(known.len() + added.len());
    let (mut k, mut a) = (known.iter().peekable(), added.iter().peekable());
    loop {
        let next = match (k.peek(), a.peek()) {
            (Some(x), Some(y)) if x.ts < y.ts => k.next(),
            (Some(_), Some(_)) | (None, Some(_)) => a.next(),
            (Some(_), None) => k.next(),
            (None, None) => break,
        };
        merged.extend(next.copied());
    }
    let new = anchor.into_iter().chain(merged).chain(around.next);
    chain(measure, new, offset_minutes, 1, days);
    first_ts
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// 2026-12-01 00:00 in UTC+8, as ms since the epoch.
    const DAY0_MS: i64 = 1_796_083_200_000 - 8 * 3_600_000;
    const CST: i32 = 480;

    fn r(minutes: i64, value: f64) -> Reading {
        Reading {
            ts: DAY0_MS + minutes * MIN,
            value,
        }
    }

    fn day0() -> i64 {
        day_of(DAY0_MS, CST)
    }

    /// The figures of `readings` arriving in `groups` (each a list of indices), with the
    /// stored readings looked up as a database would.
    fn arrive(measure: Measure, readings: &[Reading], groups: &[&[usize]]) -> Days {
        let mut stored: Vec<Reading> = Vec::new();
        let mut state = PointState::default();
        let mut days = Days::new();
        for group in groups {
            let mut mine: Vec<Reading> = group.iter().map(|&i| readings[i]).collect();
            mine.sort_by_key(|r| r.ts);
            stored.extend(&mine);
            stored.sort_by_key(|r| r.ts);
            let around = late_range(&state, &mine).map(|(lo, hi)| Around {
                prev: stored.iter().rev().find(|s| s.ts < lo).copied(),
                inside: stored
                    .iter()
                    .filter(|s| (lo..=hi).contains(&s.ts))
                    .copied()
                    .collect(),
                next: stored.iter().find(|s| s.ts > hi).copied(),
            });
            state = splice(measure, state, &mine, around.as_ref(), CST, &mut days);
        }
        days.retain(|_, f| !f.is_zero());
        days
    }

    fn close(a: &Days, b: &Days) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|((da, fa), (db, fb))| {
                da == db
                    && fa.running_ms == fb.running_ms
                    && fa.observed_ms == fb.observed_ms
                    && (fa.energy_kwh - fb.energy_kwh).abs() < 1e-9
                    && (fa.output - fb.output).abs() < 1e-9
            })
    }

    #[test]
    fn running_is_time_weighted_split_at_midnight_and_blind_across_long_gaps() {
        // true 23:50–00:00 (10 min), false 00:00–00:30, true 00:30–00:40, then a 20 min
        // silence (unobserved), then 5 more min true.
        let readings = [
            r(1430, 1.0),
            r(1435, 1.0),
            r(1440, 0.0),
            r(1450, 0.0),
            r(1460, 0.0),
            r(1470, 1.0),
            r(1480, 1.0),
            r(1500, 1.0),
            r(1505, 1.0),
        ];
        let days = arrive(Measure::Running, &readings, &[&[0, 1, 2, 3, 4, 5, 6, 7, 8]]);
        let d = day0();
        assert_eq!(days[&d].observed_ms, 10 * MIN);
        assert_eq!(days[&d].running_ms, 10 * MIN);
        assert_eq!(days[&(d + 1)].observed_ms, 45 * MIN);
        assert_eq!(days[&(d + 1)].running_ms, 15 * MIN);
        // An interval that spans midnight is split between the days.
        let split = arrive(Measure::Running, &[r(1435, 1.0), r(1445, 0.0)], &[&[0, 1]]);
        assert_eq!(split[&d].running_ms, 5 * MIN);
        assert_eq!(split[&(d + 1)].running_ms, 5 * MIN);
    }

    #[test]
    fn counters_count_resets_from_zero_and_never_go_negative() {
        // 100 → 130 (+30), reset to 5 (+5), → 25 (+20), a gap of two days → 40 (+15,
        // on the later day).
        let readings = [
            r(60, 100.0),
            r(120, 130.0),
            r(180, 5.0),
            r(240, 25.0),
            r(3 * 1440 + 60, 40.0),
        ];
        let days = arrive(Measure::Energy, &readings, &[&[0, 1, 2, 3, 4]]);
        let d = day0();
        assert_eq!(days[&d].energy_kwh, 55.0);
        assert_eq!(days[&(d + 3)].energy_kwh, 15.0);
        assert_eq!(days.len(), 2);
        // A counter that goes negative (a broken meter) adds nothing.
        let days = arrive(Measure::Output, &[r(0, 10.0), r(1, -3.0)], &[&[0, 1]]);
        assert!(days.is_empty());
    }

    #[test]
    fn late_and_repeated_readings_give_the_in_order_totals() {
        let readings: Vec<Reading> = [
            (0, 10.0),
            (4, 12.0),
            (8, 3.0),
            (12, 9.0),
            (16, 9.5),
            (20, 1.0),
            (24, 2.0),
            (28, 40.0),
            (1500, 41.0),
        ]
        .iter()
        .map(|&(m, v)| r(m, v))
        .collect();
        for measure in [Measure::Running, Measure::Energy] {
            let in_order = arrive(measure, &readings, &[&[0, 1, 2, 3, 4, 5, 6, 7, 8]]);
            let orders: [&[&[usize]]; 6] = [
                // Live data first, then the backlog.
                &[&[6, 7, 8], &[0, 1, 2], &[3, 4, 5]],
                // One at a time, backwards.
                &[&[8], &[7], &[6], &[5], &[4], &[3], &[2], &[1], &[0]],
                // Interleaved, with repeats in a group and across groups.
                &[&[0, 4, 8], &[2, 2, 6], &[1, 3, 5, 7], &[4, 0]],
                // A late group that straddles the newest.
                &[&[0, 2, 4], &[1, 3, 5, 6, 7, 8]],
                &[&[8, 0], &[4], &[2, 6], &[1, 3, 5, 7]],
                &[&[3], &[0, 1, 2, 4, 5, 6, 7, 8]],
            ];
            for groups in orders {
                let days = arrive(measure, &readings, groups);
                assert!(
                    close(&days, &in_order),
                    "{measure:?} {groups:?}: {days:?} != {in_order:?}"
                );
            }
        }
    }

    #[test]
    fn a_late_reading_whose_neighbour_was_pruned_changes_nothing() {
        // Processed: 0, 10, 20 (first_ts 0); then 0 and 10 are pruned. A late reading at
        // 5 has no stored predecessor: nothing is known of 0 → 5 any more.
        let mut days = Days::new();
        let state = PointState {
            first_ts: Some(r(0, 0.0).ts),
            last: Some(r(20, 30.0)),
        };
        let around = Around {
            prev: None,
            inside: vec![r(5, 7.0)],
            next: Some(r(20, 30.0)),
        };
        let after = splice(
            Measure::Energy,
            state,
            &[r(5, 7.0)],
            Some(&around),
            CST,
            &mut days,
        );
        assert_eq!(after, state);
        assert!(days.values().all(DayFigures::is_zero));
        // Before everything ever seen, with the oldest still stored: a new oldest.
        let around = Around {
            prev: None,
            inside: vec![r(-5, 1.0)],
            next: Some(r(0, 4.0)),
        };
        let state = PointState {
            first_ts: Some(r(0, 0.0).ts),
            last: Some(r(0, 4.0)),
        };
        let after = splice(
            Measure::Output,
            state,
            &[r(-5, 1.0)],
            Some(&around),
            CST,
            &mut days,
        );
        assert_eq!(after.first_ts, Some(r(-5, 0.0).ts));
        assert_eq!(days[&day0()].output, 3.0);
    }
}
