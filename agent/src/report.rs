//! Report by exception: drops samples that say nothing new, per the points' `deadband`
//! and `heartbeat`. Quality changes always go out; booleans and text go out on change.

use crate::config::DeviceConfig;
use fieldlink_wire::{Sample, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A point's reporting rule.
#[derive(Debug, Clone, Copy)]
struct Rule {
    deadband: f64,
    heartbeat: Option<Duration>,
}

/// What was last published for a point.
#[derive(Debug)]
struct Published {
    value: Value,
    quality: &'static str,
    ts: i64,
}

/// Filters samples of the points that have a reporting rule; others pass untouched.
#[derive(Debug, Default)]
pub struct ReportFilter {
    rules: HashMap<(Arc<str>, Arc<str>), Rule>,
    published: HashMap<(Arc<str>, Arc<str>), Published>,
}

impl ReportFilter {
    /// Collects the rules of every point that has a `deadband` or a `heartbeat`.
    pub fn new(devices: &[DeviceConfig]) -> Self {
        let rules = devices
            .iter()
            .flat_map(|d| d.points.iter().map(move |p| (d, p)))
            .filter(|(_, p)| p.deadband.is_some() || p.heartbeat.is_some())
            .map(|(d, p)| {
                let rule = Rule {
                    deadband: p.deadband.unwrap_or(0.0),
                    heartbeat: p.heartbeat,
                };
                ((d.name.clone(), p.name.clone()), rule)
            })
            .collect();
        ReportFilter {
            rules,
            published: HashMap::new(),
        }
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
        let quality = sample.quality.as_str();
        let publish = match self.published.get(&key) {
            None => true,
            Some(last) => {
                last.quality != quality
                    || rule
                        .heartbeat
                        .is_some_and(|h| sample.ts - last.ts >= h.as_millis() as i64)
                    || changed(&last.value, &sample.value, rule.deadband)
            }
        };
        if publish {
            self.published.insert(
                key,
                Published {
                    value: sample.value.clone(),
                    quality,
                    ts: sample.ts,
                },
            );
        }
        publish
    }
}

/// True if `new` differs from `last` by more than `deadband` (numbers) or at all (others).
fn changed(last: &Value, new: &Value, deadband: f64) -> bool {
    match (last.as_f64(), new.as_f64()) {
        (Some(a), Some(b)) => (b - a).abs() > deadband,
        _ => last != new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_wire::Quality;

    fn filter(deadband: Option<f64>, heartbeat: Option<Duration>) -> ReportFilter {
        let mut rules = HashMap::new();
        if deadband.is_some() || heartbeat.is_some() {
            rules.insert(
                ("d".into(), "p".into()),
                Rule {
                    deadband: deadband.unwrap_or(0.0),
                    heartbeat,
                },
            );
        }
        ReportFilter {
            rules,
            published: HashMap::new(),
        }
    }

    fn sample(ts: i64, value: Value) -> Sample {
        Sample::good("d".into(), "p".into(), ts, value)
    }

    fn kept(f: &mut ReportFilter, samples: Vec<Sample>) -> Vec<i64> {
        let mut samples = samples;
        f.retain(&mut samples);
        samples.iter().map(|s| s.ts).collect()
    }

    #[test]
    fn deadband_drops_small_changes_and_measures_from_the_last_published_value() {
        let mut f = filter(Some(0.5), None);
        let values = [20.0, 20.3, 20.6, 20.4, 21.2, 21.2];
        let got = kept(
            &mut f,
            values
                .iter()
                .enumerate()
                .map(|(i, v)| sample(i as i64, Value::Float(*v)))
                .collect(),
        );
        // 20.6 is 0.6 from 20.0; 21.2 is 0.6 from 20.6.
        assert_eq!(got, vec![0, 2, 4]);
    }

    #[test]
    fn heartbeat_publishes_an_unchanged_value_at_least_that_often() {
        let mut f = filter(Some(100.0), Some(Duration::from_secs(60)));
        let got = kept(
            &mut f,
            (0..5).map(|i| sample(i * 30_000, Value::Int(7))).collect(),
        );
        assert_eq!(got, vec![0, 60_000, 120_000]);
    }

    #[test]
    fn quality_changes_always_publish() {
        let mut f = filter(Some(100.0), None);
        let mut samples = vec![sample(0, Value::Int(1)), sample(1, Value::Int(1))];
        samples[1].quality = Quality::Uncertain;
        samples.push(Sample::bad("d".into(), "p".into(), 2, "timeout"));
        samples.push(Sample::bad("d".into(), "p".into(), 3, "timeout"));
        assert_eq!(kept(&mut f, samples), vec![0, 1, 2]);
    }

    #[test]
    fn booleans_and_text_publish_on_change_only() {
        let mut f = filter(None, Some(Duration::from_secs(3600)));
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
                .enumerate()
                .map(|(i, v)| sample(i as i64, v))
                .collect(),
        );
        assert_eq!(got, vec![0, 2, 3]);
    }

    #[test]
    fn points_without_a_rule_pass_untouched() {
        let mut f = filter(None, None);
        assert_eq!(
            kept(
                &mut f,
                vec![sample(0, Value::Int(1)), sample(1, Value::Int(1))]
            ),
            vec![0, 1]
        );
    }
}
