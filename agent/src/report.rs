//! Report by exception: drops samples that say nothing new, per the points' reporting
//! rules. A point's rule comes from its own `deadband`, `deadband_percent` and `heartbeat`,
//! or, for what it does not set, from its device's defaults of the same names.
//!
//! A sample is published when any of these holds:
//! - nothing was published for the point yet;
//! - its quality differs from the last published one (a different error text counts:
//!   "timeout" turning into "exception 02 ..." is news);
//! - its value differs from the last published value: numbers by more than the deadband
//!   (`deadband` absolute; `deadband_percent` of the last published value's magnitude; a
//!   change must exceed both when both are set), booleans and text by any change;
//! - the heartbeat is due: the last publish is at least `heartbeat` older (by the samples'
//!   own timestamps, so a backlog replays the same way), or the clock went back.
//!
//! Points with no rule at all pass untouched.

use crate::config::{DeviceConfig, PointInfo, ReportDefaults};
use fieldlink_wire::{Quality, Sample, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A point's reporting rule.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rule {
    /// Absolute deadband (numbers).
    deadband: Option<f64>,
    /// Deadband in percent of the last published value's magnitude (numbers).
    deadband_percent: Option<f64>,
    /// Publish at least this often.
    heartbeat: Option<Duration>,
}

impl Rule {
    /// The point's rule: its own deadband settings if it has any, else its device's (the
    /// two kinds go together, so a point's `deadband_percent` is not mixed with its
    /// device's `deadband`); its own heartbeat, else its device's. `None` if nothing is set.
    fn of(point: &PointInfo, device: &ReportDefaults) -> Option<Rule> {
        let own_deadband = point.deadband.is_some() || point.deadband_percent.is_some();
        let (deadband, deadband_percent) = if own_deadband {
            (point.deadband, point.deadband_percent)
        } else {
            (device.deadband, device.deadband_percent)
        };
        let rule = Rule {
            deadband,
            deadband_percent,
            heartbeat: point.heartbeat.or(device.heartbeat),
        };
        let any =
            rule.deadband.is_some() || rule.deadband_percent.is_some() || rule.heartbeat.is_some();
        any.then_some(rule)
    }

    /// True if `new` differs enough from the last published `last`.
    fn changed(&self, last: &Value, new: &Value) -> bool {
        match (last.as_f64(), new.as_f64()) {
            (Some(a), Some(b)) => {
                let absolute = self.deadband.unwrap_or(0.0);
                let relative = self.deadband_percent.map_or(0.0, |p| a.abs() * p / 100.0);
                (b - a).abs() > absolute.max(relative)
            }
            _ => last != new,
        }
    }

    /// True if the heartbeat is due for a sample at `ts` after a publish at `last_ts`.
    fn heartbeat_due(&self, last_ts: i64, ts: i64) -> bool {
        self.heartbeat.is_some_and(|h| {
            let h = i64::try_from(h.as_millis()).unwrap_or(i64::MAX);
            // A clock stepped back (NTP after a boot without a clock) would otherwise hold
            // the heartbeat until it caught up.
            ts < last_ts || ts - last_ts >= h
        })
    }
}

/// What was last published for a point.
#[derive(Debug)]
struct Published {
    value: Value,
    quality: Quality,
    ts: i64,
}

/// Filters samples of the points that have a reporting rule; others pass untouched.
#[derive(Debug, Default)]
pub struct ReportFilter {
    rules: HashMap<(Arc<str>, Arc<str>), Rule>,
    published: HashMap<(Arc<str>, Arc<str>), Published>,
}

impl ReportFilter {
    /// Collects the rules of every point that has (or inherits from its device) a
    /// `deadband`, `deadband_percent` or `heartbeat`.
    pub fn new(devices: &[DeviceConfig]) -> Self {
        let mut filter = ReportFilter::default();
        filter.set_rules(devices);
        filter
    }

    /// Replaces the rules after a reload; what was last published is kept, so a point whose
    /// rule did not change goes on as before.
    pub fn set_rules(&mut self, devices: &[DeviceConfig]) {
        self.rules = devices
            .iter()
            .flat_map(|d| d.points.iter().map(move |p| (d, p)))
            .filter_map(|(d, p)| {
                let rule = Rule::of(p, &d.report)?;
                Some(((d.name.clone(), p.name.clone()), rule))
            })
            .collect();
        let rules = &self.rules;
        self.published.retain(|key, _| rules.contains_key(key));
    }

    /// Keeps the samples worth publishing, in order.
    pub fn retain(&mut self, samples: &mut Vec<Sample>) {
        if self.rules.is_empty() {
            return;
        }
        samples.retain(|s| self.admit(s));
    }

    fn admit(&mut self, sample: &Sample) -> bool {
        let key = (sample.device.clone(), sample.point.clone());
        let Some(rule) = self.rules.get(&key) else {
            return true;
        };
        let publish = match self.published.get(&key) {
            None => true,
            Some(last) => {
                last.quality != sample.quality
                    || rule.heartbeat_due(last.ts, sample.ts)
                    || rule.changed(&last.value, &sample.value)
            }
        };
        if publish {
            self.published.insert(
                key,
                Published {
                    value: sample.value.clone(),
                    quality: sample.quality.clone(),
                    ts: sample.ts,
                },
            );
        }
        publish
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(deadband: Option<f64>, heartbeat: Option<Duration>) -> Option<Rule> {
        Some(Rule {
            deadband,
            deadband_percent: None,
            heartbeat,
        })
    }

    fn filter(rule: Option<Rule>) -> ReportFilter {
        let mut rules = HashMap::new();
        if let Some(rule) = rule {
            rules.insert(("d".into(), "p".into()), rule);
        }
        ReportFilter {
            rules,
            published: HashMap::new(),
        }
    }

    fn sample(ts: i64, value: Value) -> Sample {
        Sample::good("d".into(), "p".into(), ts, value)
    }

    fn floats(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .zip(0..)
            .map(|(v, ts)| sample(ts, Value::Float(*v)))
            .collect()
    }

    fn kept(f: &mut ReportFilter, samples: Vec<Sample>) -> Vec<i64> {
        let mut samples = samples;
        f.retain(&mut samples);
        samples.iter().map(|s| s.ts).collect()
    }

    #[test]
    fn deadband_drops_small_changes_and_measures_from_the_last_published_value() {
        let mut f = filter(rule(Some(0.5), None));
        // 20.6 is 0.6 from 20.0; 21.2 is 0.6 from 20.6.
        let got = kept(&mut f, floats(&[20.0, 20.3, 20.6, 20.4, 21.2, 21.2]));
        assert_eq!(got, vec![0, 2, 4]);
    }

    #[test]
    fn deadband_percent_is_relative_to_the_last_published_magnitude() {
        let mut f = filter(Some(Rule {
            deadband: None,
            deadband_percent: Some(10.0),
            heartbeat: None,
        }));
        // From 100 the band is 10: 105 and 109 stay; 111 goes; from 111 the band is 11.1:
        // 100.5 stays (10.5), 99 goes (12); a negative value is measured by magnitude:
        // from -50 the band is 5, so -54 stays and -56 goes.
        let values = [100.0, 105.0, 109.0, 111.0, 100.5, 99.0, -50.0, -54.0, -56.0];
        assert_eq!(kept(&mut f, floats(&values)), vec![0, 3, 5, 6, 8]);
    }

    #[test]
    fn deadband_percent_from_zero_publishes_any_change() {
        let mut f = filter(Some(Rule {
            deadband: None,
            deadband_percent: Some(5.0),
            heartbeat: None,
        }));
        assert_eq!(kept(&mut f, floats(&[0.0, 0.0, 0.001])), vec![0, 2]);
    }

    #[test]
    fn with_both_deadbands_a_change_must_exceed_both() {
        let mut f = filter(Some(Rule {
            deadband: Some(1.0),
            deadband_percent: Some(10.0),
            heartbeat: None,
        }));
        // Near zero the absolute band (1) rules: 0.5 stays, 1.5 goes. Around 100 the
        // relative band (10) rules: 105 stays, 112 goes.
        let values = [0.0, 0.5, 1.5, 100.0, 105.0, 112.0];
        assert_eq!(kept(&mut f, floats(&values)), vec![0, 2, 3, 5]);
    }

    #[test]
    fn heartbeat_publishes_an_unchanged_value_at_least_that_often() {
        let mut f = filter(rule(Some(100.0), Some(Duration::from_secs(60))));
        let got = kept(
            &mut f,
            (0..5).map(|i| sample(i * 30_000, Value::Int(7))).collect(),
        );
        assert_eq!(got, vec![0, 60_000, 120_000]);
    }

    #[test]
    fn a_clock_stepped_back_does_not_hold_the_heartbeat() {
        let mut f = filter(rule(Some(100.0), Some(Duration::from_secs(60))));
        let samples = vec![
            sample(1_000_000, Value::Int(7)),
            sample(5_000, Value::Int(7)),
            sample(35_000, Value::Int(7)),
            sample(65_000, Value::Int(7)),
        ];
        assert_eq!(kept(&mut f, samples), vec![1_000_000, 5_000, 65_000]);
    }

    #[test]
    fn quality_changes_always_publish() {
        let mut f = filter(rule(Some(100.0), None));
        let mut samples = vec![sample(0, Value::Int(1)), sample(1, Value::Int(1))];
        samples[1].quality = Quality::Uncertain;
        samples.push(Sample::bad("d".into(), "p".into(), 2, "timeout"));
        samples.push(Sample::bad("d".into(), "p".into(), 3, "timeout"));
        samples.push(Sample::bad("d".into(), "p".into(), 4, "exception 02"));
        samples.push(sample(5, Value::Int(1)));
        assert_eq!(kept(&mut f, samples), vec![0, 1, 2, 4, 5]);
    }

    #[test]
    fn booleans_and_text_publish_on_change_only() {
        let mut f = filter(rule(None, Some(Duration::from_secs(3600))));
        let values = [
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(true),
            Value::Text("a".into()),
            Value::Text("a".into()),
        ];
        let got = kept(
            &mut f,
            values
                .into_iter()
                .zip(0..)
                .map(|(v, ts)| sample(ts, v))
                .collect(),
        );
        assert_eq!(got, vec![0, 2, 3]);
    }

    #[test]
    fn points_without_a_rule_pass_untouched() {
        let mut f = filter(None);
        assert_eq!(
            kept(
                &mut f,
                vec![sample(0, Value::Int(1)), sample(1, Value::Int(1))]
            ),
            vec![0, 1]
        );
    }

    fn info(deadband: Option<f64>, percent: Option<f64>, heartbeat: Option<u64>) -> PointInfo {
        PointInfo {
            role: None,
            name: "p".into(),
            data_type: "f32",
            unit: None,
            deadband,
            deadband_percent: percent,
            heartbeat: heartbeat.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_point_takes_what_it_does_not_set_from_its_device() {
        let device = ReportDefaults {
            deadband: Some(0.5),
            deadband_percent: Some(2.0),
            heartbeat: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            Rule::of(&info(None, None, None), &device),
            Some(Rule {
                deadband: Some(0.5),
                deadband_percent: Some(2.0),
                heartbeat: Some(Duration::from_secs(60)),
            })
        );
        // A point's own percent replaces both of the device's deadbands.
        assert_eq!(
            Rule::of(&info(None, Some(1.0), Some(10)), &device),
            Some(Rule {
                deadband: None,
                deadband_percent: Some(1.0),
                heartbeat: Some(Duration::from_secs(10)),
            })
        );
        assert_eq!(
            Rule::of(&info(None, None, None), &ReportDefaults::default()),
            None
        );
    }
}
