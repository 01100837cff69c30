//! Figures and how they are reported: named numbers with units, medians over runs, and
//! process resource readings (CPU time, RSS) from /proc.

use std::time::Duration;

/// One run's figures, in print order.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: &'static str,
    /// (name, value, unit).
    pub figures: Vec<(&'static str, f64, &'static str)>,
}

impl Summary {
    /// A summary for `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Summary { scenario, figures: Vec::new() }
    }

    /// Adds a figure.
    pub fn add(mut self, name: &'static str, value: f64, unit: &'static str) -> Self {
        self.figures.push((name, value, unit));
        self
    }

    /// The one-line report.
    pub fn line(&self) -> String {
        let figures: Vec<String> = self
            .figures
            .iter()
            .map(|(name, value, unit)| {
                let value = if value.abs() >= 100.0 || value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") };
                format!("{name}={value}{}{unit}", if unit.is_empty() { "" } else { " " })
            })
            .collect();
        format!("{}: {}", self.scenario, figures.join(", "))
    }

    /// The median of each figure over several runs of one scenario.
    pub fn median(runs: &[Summary]) -> Summary {
        let Some(first) = runs.first() else { return Summary::default() };
        let figures = first
            .figures
            .iter()
            .enumerate()
            .map(|(i, &(name, _, unit))| {
                let mut values: Vec<f64> = runs.iter().filter_map(|r| r.figures.get(i).map(|f| f.1)).collect();
                values.sort_by(f64::total_cmp);
                (name, values[values.len() / 2], unit)
            })
            .collect();
        Summary { scenario: first.scenario, figures }
    }
}

/// This process's CPU time (user + system) so far, from /proc/self/stat.
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the full line; 11 and 12 after the ')'.
    let clock_ticks_per_second = 100;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks_per_second)
}

/// This process's peak resident set size (VmHWM) in MiB.
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// This process's current resident set size (VmRSS) in MiB.
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0.0)
}
