//! The bureau's industry monitoring (DESIGN.md, "The bureau's cockpit"): per industry or
//! district and local day, the enterprises and machines that reported, the running rate,
//! the energy and the output, from the figures the ingest keeps per enterprise and day
//! (`store::monitoring`; the definitions are in the platform's README).
//!
//! Withholding (the seed's rule: the bureau counts, it does not read an enterprise's
//! production data unless it shares it): an aggregate, a group's day or the total's day,
//! over fewer than [`MIN_ENTERPRISES`] enterprises has its running rate, energy and output
//! withheld (`null`, `withheld: true`) unless every enterprise in it shares its data; its
//! counts of enterprises and machines are always given.

use crate::catalog::{District, Industry};
use crate::clock::date_string;
use crate::stats::to_csv;
use crate::store::MonitoringRow;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An aggregate over fewer enterprises than this is withheld unless they all share.
pub const MIN_ENTERPRISES: u64 = 3;

/// What the groups are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The 8 industries.
    Industry,
    /// The 17 districts and zones.
    District,
}

impl By {
    /// The grouping named `name` in the query (`industry` or `district`).
    pub fn parse(name: &str) -> Option<By> {
        match name {
            "industry" => Some(By::Industry),
            "district" => Some(By::District),
            _ => None,
        }
    }

    /// Its name in the query and the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            By::Industry => "industry",
            By::District => "district",
        }
    }
}

/// One aggregate's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// The local date, `YYYY-MM-DD`.
    pub date: String,
    /// Enterprises that reported (a machine of theirs stored a sample that day).
    pub enterprises: u64,
    /// Machines (devices of gateways) that reported.
    pub machines: u64,
    /// The figures below are withheld.
    pub withheld: bool,
    /// Observed time with `running` true over observed time of `running` points, 0 to 1;
    /// `None` when withheld or nothing was observed.
    pub running_rate: Option<f64>,
    /// Sum of the `energy_kwh` counters' increments; `None` when withheld.
    pub energy_kwh: Option<f64>,
    /// Sum of the `output_count` counters' increments; `None` when withheld.
    pub output: Option<f64>,
}

/// All groups together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Total {
    /// Its days, oldest first.
    pub days: Vec<Day>,
}

/// One group: an industry or a district.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The industry's code or the district's name.
    pub group: String,
    /// Its name in Chinese.
    pub label: String,
    /// Its days, oldest first.
    pub days: Vec<Day>,
}

/// The answer of `GET /api/v1/stats/monitoring`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitoring {
    /// What the groups are.
    pub by: By,
    /// The district the figures are limited to (a district user's), if any.
    pub district: Option<District>,
    /// When it was computed (ms since the epoch).
    pub computed_at: i64,
    /// The local dates, oldest first.
    pub dates: Vec<String>,
    /// All groups together.
    pub total: Total,
    /// The groups, in the catalogue's order.
    pub groups: Vec<Group>,
}

/// Sums of rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    enterprises: u64,
    not_sharing: u64,
    machines: u64,
    running_ms: i64,
    observed_ms: i64,
    energy_kwh: f64,
    output: f64,
}

impl Sum {
    fn add(&mut self, row: &MonitoringRow) {
        self.enterprises += row.enterprises;
        self.not_sharing += row.not_sharing;
        self.machines += row.machines;
        self.running_ms += row.running_ms;
        self.observed_ms += row.observed_ms;
        self.energy_kwh += row.energy_kwh;
        self.output += row.output;
    }

    fn day(&self, date: &str) -> Day {
        let withheld = self.enterprises < MIN_ENTERPRISES && self.not_sharing > 0;
        let shown = |v: f64| (!withheld).then_some(v.max(0.0));
        Day {
            date: date.to_owned(),
            enterprises: self.enterprises,
            machines: self.machines,
            withheld,
            running_rate: (!withheld && self.observed_ms > 0)
                .then(|| (self.running_ms as f64 / self.observed_ms as f64).clamp(0.0, 1.0)),
            energy_kwh: shown(self.energy_kwh),
            output: shown(self.output),
        }
    }
}

/// The monitoring of the local days `from_day..=to_day` from the store's `rows`, grouped
/// `by`, limited to `district` if given.
pub fn monitoring(
    rows: &[MonitoringRow],
    by: By,
    district: Option<District>,
    from_day: i64,
    to_day: i64,
    computed_at: i64,
) -> Monitoring {
    let groups: Vec<(String, String)> = match by {
        By::Industry => Industry::ALL
            .iter()
            .map(|i| (i.code().to_owned(), i.name_zh().to_owned()))
            .collect(),
        By::District => District::all()
            .filter(|d| district.is_none_or(|only| only == *d))
            .map(|d| (d.name().to_owned(), d.name().to_owned()))
            .collect(),
    };
    let index: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, (g, _))| (g.as_str(), i))
        .collect();
    let width = usize::try_from(to_day - from_day + 1).unwrap_or(0);
    let mut sums = vec![vec![Sum::default(); width]; groups.len()];
    let mut total = vec![Sum::default(); width];
    for row in rows {
        if district.is_some_and(|d| d != row.district) {
            continue;
        }
        let Ok(day) = usize::try_from(row.day - from_day) else {
            continue;
        };
        let key = match by {
            By::Industry => row.industry.code(),
            By::District => row.district.name(),
        };
        let (Some(&group), true) = (index.get(key), day < width) else {
            continue;
        };
        sums[group][day].add(row);
        total[day].add(row);
    }
    let dates: Vec<String> = (from_day..=to_day).map(date_string).collect();
    let days_of = |sums: &[Sum]| -> Vec<Day> {
        sums.iter()
            .zip(&dates)
            .map(|(sum, date)| sum.day(date))
            .collect()
    };
    Monitoring {
        by,
        district,
        computed_at,
        total: Total {
            days: days_of(&total),
        },
        groups: groups
            .into_iter()
            .zip(&sums)
            .map(|((group, label), sums)| Group {
                group,
                label,
                days: days_of(sums),
            })
            .collect(),
        dates,
    }
}

/// The monitoring as CSV, one row per aggregate and day, the total's first (group
/// `total`): `group,label,date,enterprises,machines,withheld,running_rate,energy_kwh,
/// output`, a withheld figure empty.
pub fn monitoring_csv(m: &Monitoring) -> String {
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut rows: Vec<[String; 9]> = Vec::new();
    let total = ("total", "合计", &m.total.days);
    let groups = m
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.label.as_str(), &g.days));
    for (group, label, days) in std::iter::once(total).chain(groups) {
        for d in days {
            rows.push([
                group.to_owned(),
                label.to_owned(),
                d.date.clone(),
                d.enterprises.to_string(),
                d.machines.to_string(),
                d.withheld.to_string(),
                number(d.running_rate),
                number(d.energy_kwh),
                number(d.output),
            ]);
        }
    }
    to_csv(
        &[
            "group",
            "label",
            "date",
            "enterprises",
            "machines",
            "withheld",
            "running_rate",
            "energy_kwh",
            "output",
        ],
        rows.iter().map(|r| r.as_slice()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        industry: usize,
        district: &str,
        day: i64,
        enterprises: u64,
        sharing: u64,
    ) -> MonitoringRow {
        MonitoringRow {
            industry: Industry::ALL[industry],
            district: District::from_name(district).expect("a district"),
            day,
            enterprises,
            not_sharing: enterprises - sharing,
            machines: enterprises * 2,
            running_ms: 30 * 60_000,
            observed_ms: 60 * 60_000,
            energy_kwh: 10.0,
            output: 100.0,
        }
    }

    #[test]
    fn fewer_than_three_enterprises_are_withheld_unless_all_share() {
        let rows = [
            // Industry 0: 2 enterprises, one not sharing: withheld.
            row(0, "洪山区", 100, 2, 1),
            // Industry 1: 2 enterprises, both sharing: shown.
            row(1, "洪山区", 100, 2, 2),
            // Industry 2: 3 enterprises, none sharing: shown.
            row(2, "江岸区", 100, 3, 0),
            row(2, "江岸区", 101, 1, 0),
        ];
        let m = monitoring(&rows, By::Industry, None, 100, 101, 0);
        assert_eq!(m.dates, [date_string(100), date_string(101)]);
        assert_eq!(m.groups.len(), 8);
        assert_eq!(m.groups[0].label, "光通信及激光");
        let d = &m.groups[0].days[0];
        assert!(d.withheld);
        assert_eq!((d.enterprises, d.machines), (2, 4));
        assert_eq!((d.running_rate, d.energy_kwh, d.output), (None, None, None));
        let d = &m.groups[1].days[0];
        assert!(!d.withheld);
        assert_eq!(d.running_rate, Some(0.5));
        assert_eq!(m.groups[2].days[0].energy_kwh, Some(10.0));
        assert!(m.groups[2].days[1].withheld);
        // Nothing reported: nothing to withhold, no running rate.
        let empty = &m.groups[3].days[0];
        assert_eq!((empty.enterprises, empty.withheld), (0, false));
        assert_eq!(empty.running_rate, None);
        // The total over 7 enterprises is shown; the next day's single one is not.
        assert_eq!(m.total.days[0].enterprises, 7);
        assert_eq!(m.total.days[0].output, Some(300.0));
        assert!(m.total.days[1].withheld);
    }

    #[test]
    fn a_district_sees_its_own_rows_only() {
        let hongshan = District::from_name("洪山区");
        let rows = [row(0, "洪山区", 100, 3, 0), row(0, "江岸区", 100, 5, 0)];
        let m = monitoring(&rows, By::District, hongshan, 100, 100, 0);
        assert_eq!(m.groups.len(), 1);
        assert_eq!(m.groups[0].group, "洪山区");
        assert_eq!(m.total.days[0].enterprises, 3);
        let m = monitoring(&rows, By::Industry, hongshan, 100, 100, 0);
        assert_eq!(m.groups[0].days[0].enterprises, 3);
        let csv = monitoring_csv(&m);
        assert!(
            csv.starts_with("group,label,date,enterprises,machines,withheld"),
            "{csv}"
        );
        assert!(csv.contains("total,合计,"), "{csv}");
        assert_eq!(csv.lines().count(), 1 + 9);
    }
}
