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
    /// Settings that qualify the figures (the broker used, the compression), printed after them.
    pub notes: Vec<String>,
}

impl Summary {
    /// A summary for `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Summary {
            scenario,
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
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
                let value = if value.abs() >= 100.0 || value.fract() == 0.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.2}")
                };
                format!(
                    "{name}={value}{}{unit}",
                    if unit.is_empty() { "" } else { " " }
                )
            })
            .collect();
        let notes = if self.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.notes.join(", "))
        };
        format!("{}: {}{notes}", self.scenario, figures.join(", "))
    }

    /// The median of each figure over several runs of one scenario.
    pub fn median(runs: &[Summary]) -> Summary {
        let Some(first) = runs.first() else {
            return Summary::default();
        };
        let figures = first
            .figures
            .iter()
            .enumerate()
            .map(|(i, &(name, _, unit))| {
                let mut values: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.figures.get(i).map(|f| f.1))
                    .collect();
                values.sort_by(f64::total_cmp);
                (name, values[values.len() / 2], unit)
            })
            .collect();
        Summary {
            scenario: first.scenario,
            figures,
            notes: first.notes.clone(),
        }
    }
}

/// This process's CPU time (user + system) so far, from /proc/self/stat.
pub fn cpu_time() -> Duration {
    proc_cpu_time("self")
}

/// The calling thread's CPU time so far (nanosecond resolution): for figures measured on one
/// thread, which other processes on a busy machine inflate far less than wall time.
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// This process's peak resident set size (VmHWM) in MiB.
pub fn peak_rss_mib() -> f64 {
    status_kib("self", "VmHWM:") / 1024.0
}

/// CPU time and memory of another process (the agent, run as a child), from /proc/PID.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    /// Its process id.
    pub pid: u32,
}

impl Process {
    /// Its CPU time (user + system, every thread's, those that ended included) so far: to
    /// the nanosecond from its CPU-time clock, or else in /proc's 10 ms ticks. A process that
    /// uses a few ms a second, as the agent at 1 s polling does, needs the nanoseconds.
    pub fn cpu_time(&self) -> Duration {
        process_cpu_clock(self.pid).unwrap_or_else(|| proc_cpu_time(&self.pid.to_string()))
    }

    /// Its context switches so far, voluntary (it waited: a wake-up follows) and not,
    /// summed over its threads that still run.
    pub fn context_switches(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return 0;
        };
        tasks
            .filter_map(Result::ok)
            .map(|task| {
                let status =
                    std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                status
                    .lines()
                    .filter_map(|l| {
                        l.strip_prefix("voluntary_ctxt_switches:")
                            .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                    })
                    .filter_map(|v| v.trim().parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    }

    /// Its current resident set size (VmRSS) in MiB.
    pub fn rss_mib(&self) -> f64 {
        status_kib(&self.pid.to_string(), "VmRSS:") / 1024.0
    }

    /// Its peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        status_kib(&self.pid.to_string(), "VmHWM:") / 1024.0
    }
}

/// The `p`-th percentile (0-100) of `values`, by nearest rank; NaN if there are none.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// The CPU time of process `pid` from its CPU-time clock (`clock_getcpuclockid`): the
/// scheduler's nanosecond count of all its threads; None if the clock cannot be read.
fn process_cpu_clock(pid: u32) -> Option<Duration> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid place for the id, and the call reads nothing else.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

fn proc_cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the full line; 11 and 12 after the ')'.
    // Linux reports them in USER_HZ, which is 100 on every architecture it supports.
    let clock_ticks_per_second = 100;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks_per_second)
}

/// A `/proc/PID/status` memory field in kB.
fn status_kib(pid: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0.0)
}
