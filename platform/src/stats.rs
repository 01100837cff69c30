//! The bureau's counts: enterprises registered, enrolled, on the cloud, active and
//! enrolled-but-silent, in total, for the in-program enterprises, by industry, by pilot
//! status and by district, against the program's targets; and their daily series.
//!
//! Definitions (DESIGN.md): **enrolled** = at least one gateway enrolled; **on the cloud**
//! = a batch from any of its gateways has arrived; **active** = one arrived in the last
//! [`ACTIVE_DAYS`] days; **silent** = enrolled but not on the cloud.

use crate::catalog::{District, DistrictKind, Industry};
use crate::clock::{DAY_MS, date_string, day_of};
use crate::config::Targets;
use crate::store::{ActiveDay, OnboardingRow};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The window of "active", in days.
pub const ACTIVE_DAYS: i64 = 7;

/// Counts of one group of enterprises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Registered.
    pub registered: u64,
    /// With at least one enrolled gateway.
    pub enrolled: u64,
    /// With at least one batch delivered.
    pub on_cloud: u64,
    /// With a batch in the last 7 days.
    pub active: u64,
    /// Enrolled but no batch yet.
    pub silent: u64,
}

impl Counts {
    fn add(&mut self, row: &OnboardingRow) {
        self.registered += 1;
        self.enrolled += u64::from(row.enrolled);
        self.on_cloud += u64::from(row.on_cloud);
        self.active += u64::from(row.active);
        self.silent += u64::from(row.enrolled && !row.on_cloud);
    }
}

/// One industry's counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndustryCounts {
    /// The industry's code.
    pub industry: Industry,
    /// A pilot industry.
    pub pilot: bool,
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Its on-cloud target.
    pub target: u64,
}

/// One district's counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistrictCounts {
    /// The district's name.
    pub district: District,
    /// District or functional zone.
    pub kind: DistrictKind,
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Counts of the pilot or the other industries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PilotCounts {
    /// Pilot industries or not.
    pub pilot: bool,
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The answer of `GET /api/v1/stats/onboarding`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Onboarding {
    /// The program's targets.
    pub targets: Targets,
    /// All enterprises (all are in the key industries).
    pub total: Counts,
    /// The enterprises on the program's list.
    pub in_program: Counts,
    /// Per industry, in DESIGN.md's order.
    pub by_industry: Vec<IndustryCounts>,
    /// Pilot industries and the others.
    pub by_pilot: Vec<PilotCounts>,
    /// Per district and zone, in DESIGN.md's order.
    pub by_district: Vec<DistrictCounts>,
}

/// Aggregates every enterprise's state into the counts.
pub fn onboarding(rows: &[OnboardingRow], targets: Targets) -> Onboarding {
    let mut total = Counts::default();
    let mut in_program = Counts::default();
    let mut by_industry: HashMap<Industry, Counts> = HashMap::new();
    let mut by_district: HashMap<District, Counts> = HashMap::new();
    let mut by_pilot: HashMap<bool, Counts> = HashMap::new();
    for row in rows {
        total.add(row);
        if row.in_program {
            in_program.add(row);
        }
        by_industry.entry(row.industry).or_default().add(row);
        by_district.entry(row.district).or_default().add(row);
        by_pilot.entry(row.industry.pilot()).or_default().add(row);
    }
    Onboarding {
        targets,
        total,
        in_program,
        by_industry: Industry::ALL
            .into_iter()
            .map(|industry| IndustryCounts {
                industry,
                pilot: industry.pilot(),
                counts: by_industry.get(&industry).copied().unwrap_or_default(),
                target: targets.per_industry_on_cloud,
            })
            .collect(),
        by_pilot: [true, false]
            .into_iter()
            .map(|pilot| PilotCounts {
                pilot,
                counts: by_pilot.get(&pilot).copied().unwrap_or_default(),
            })
            .collect(),
        by_district: District::all()
            .map(|district| DistrictCounts {
                district,
                kind: district.kind(),
                counts: by_district.get(&district).copied().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The counts as CSV, one row per group: `scope,group,pilot,registered,enrolled,on_cloud,
/// active,silent,target` (scope is total, in_program, industry, pilot or district).
pub fn onboarding_csv(o: &Onboarding) -> String {
    let mut rows: Vec<[String; 9]> = Vec::new();
    let row = |scope: &str, group: &str, pilot: &str, c: &Counts, target: Option<u64>| {
        [
            scope.to_owned(),
            group.to_owned(),
            pilot.to_owned(),
            c.registered.to_string(),
            c.enrolled.to_string(),
            c.on_cloud.to_string(),
            c.active.to_string(),
            c.silent.to_string(),
            target.map(|t| t.to_string()).unwrap_or_default(),
        ]
    };
    rows.push(row(
        "total",
        "all",
        "",
        &o.total,
        Some(o.targets.key_industries_on_cloud),
    ));
    rows.push(row(
        "in_program",
        "in_program",
        "",
        &o.in_program,
        Some(o.targets.in_program_on_cloud),
    ));
    for i in &o.by_industry {
        rows.push(row(
            "industry",
            i.industry.code(),
            if i.pilot { "true" } else { "false" },
            &i.counts,
            Some(i.target),
        ));
    }
    for p in &o.by_pilot {
        let name = if p.pilot { "pilot" } else { "other" };
        rows.push(row(
            "pilot",
            name,
            if p.pilot { "true" } else { "false" },
            &p.counts,
            None,
        ));
    }
    for d in &o.by_district {
        rows.push(row("district", d.district.name(), "", &d.counts, None));
    }
    to_csv(
        &[
            "scope",
            "group",
            "pilot",
            "registered",
            "enrolled",
            "on_cloud",
            "active",
            "silent",
            "target",
        ],
        rows.iter().map(|r| r.as_slice()),
    )
}

/// One day of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyPoint {
    /// The date in the program's time zone, `YYYY-MM-DD`.
    pub date: String,
    /// Enterprises on the cloud at the end of the day.
    pub on_cloud: u64,
    /// Of those, in the program.
    pub in_program_on_cloud: u64,
    /// Enterprises that came on the cloud that day.
    pub new_on_cloud: u64,
    /// Enterprises with a batch in the 7 days ending that day.
    pub active: u64,
    /// Of those, in the program.
    pub in_program_active: u64,
}

/// The daily series over `[from_day, to_day]`. `on_cloud_since` holds (in_program,
/// first batch time in ms); `active_days` must cover `[from_day - 6, to_day]`.
pub fn daily(
    on_cloud_since: &[(bool, i64)],
    active_days: &[ActiveDay],
    from_day: i64,
    to_day: i64,
    utc_offset_minutes: i32,
) -> Vec<DailyPoint> {
    let firsts: Vec<(bool, i64)> = on_cloud_since
        .iter()
        .map(|&(p, ms)| (p, day_of(ms, utc_offset_minutes)))
        .collect();
    let mut active: HashMap<i64, HashSet<(u32, bool)>> = HashMap::new();
    for a in active_days {
        for d in a.day..a.day + ACTIVE_DAYS {
            if (from_day..=to_day).contains(&d) {
                active
                    .entry(d)
                    .or_default()
                    .insert((a.enterprise, a.in_program));
            }
        }
    }
    (from_day..=to_day)
        .map(|day| {
            let on = firsts.iter().filter(|&&(_, d)| d <= day);
            let set = active.get(&day);
            DailyPoint {
                date: date_string(day),
                on_cloud: on.clone().count() as u64,
                in_program_on_cloud: on.filter(|&&(p, _)| p).count() as u64,
                new_on_cloud: firsts.iter().filter(|&&(_, d)| d == day).count() as u64,
                active: set.map_or(0, |s| s.len() as u64),
                in_program_active: set.map_or(0, |s| s.iter().filter(|(_, p)| *p).count() as u64),
            }
        })
        .collect()
}

/// The daily series as CSV.
pub fn daily_csv(points: &[DailyPoint]) -> String {
    let rows: Vec<[String; 6]> = points
        .iter()
        .map(|p| {
            [
                p.date.clone(),
                p.on_cloud.to_string(),
                p.in_program_on_cloud.to_string(),
                p.new_on_cloud.to_string(),
                p.active.to_string(),
                p.in_program_active.to_string(),
            ]
        })
        .collect();
    to_csv(
        &[
            "date",
            "on_cloud",
            "in_program_on_cloud",
            "new_on_cloud",
            "active",
            "in_program_active",
        ],
        rows.iter().map(|r| r.as_slice()),
    )
}

/// The day numbers of the last `days` days ending today.
pub fn last_days(now_ms: i64, days: u32, utc_offset_minutes: i32) -> (i64, i64) {
    let today = day_of(now_ms, utc_offset_minutes);
    (today - i64::from(days.max(1)) + 1, today)
}

/// The start of the active window for `now_ms`.
pub fn active_since(now_ms: i64) -> i64 {
    now_ms - ACTIVE_DAYS * DAY_MS
}

/// Writes a CSV document (RFC 4180 quoting) with a header.
pub fn to_csv<'a>(header: &[&str], rows: impl Iterator<Item = &'a [String]>) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory fails only on a bug in the csv crate.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(row);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_is_a_seven_day_window() {
        let days = [ActiveDay {
            day: 100,
            in_program: true,
            enterprise: 1,
        }];
        let firsts = [(true, 100 * DAY_MS)];
        let series = daily(&firsts, &days, 99, 108, 0);
        let active: Vec<u64> = series.iter().map(|p| p.active).collect();
        assert_eq!(active, [0, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        let on: Vec<u64> = series.iter().map(|p| p.on_cloud).collect();
        assert_eq!(on, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(series[1].new_on_cloud, 1);
    }
}
