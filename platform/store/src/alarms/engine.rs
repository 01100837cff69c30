//! How a rule moves between quiet and raised: the state machine, the same for every
//! backend and instance, fed with samples in the ingest's transaction and with the clock
//! by the timers.
//!
//! - `high` raises when the value stays above `threshold` for `for_seconds` (0: at once)
//!   and clears when it falls below `threshold - hysteresis`; `low` mirrors it; `equals`
//!   raises while the value equals `threshold` (bools are 0 and 1) and clears when it
//!   differs. A sample without a value (a failed read) neither raises nor clears.
//! - `stale` raises when the point has had no sample for `for_seconds`; its next sample
//!   clears it.
//! - `gateway_offline` raises when the gateway's status has said offline, or no batch has
//!   arrived, for `for_seconds`; it clears when the gateway is online and sending again.
//! - `device_down` raises when the gateway's status has shown the device disconnected for
//!   `for_seconds`; it clears when the status shows it connected.
//!
//! **Late data.** A rule follows the newest sample it has evaluated: a sample no newer
//! than that one (a backlog arriving after live data) changes nothing. An agent back from
//! an outage sends live data first, so its backlog never replays the past. Where old
//! samples do arrive in order (no live data yet), transitions happen at the samples' own
//! times, but only what matters now is sent: a raise older than [`LATE_NOTIFY_MS`] is
//! recorded in the history without a notification, a clear is notified only if its raise
//! was, and an alarm raised by old data that is still active after the group is notified
//! once. So a backlog of an hour with fifty excursions that all ended gives fifty events in
//! the history and no notification.

use super::{AlarmRule, RuleKind, RuleState};
use crate::columns::numeric;
use fieldlink_wire::Value;

/// A transition older than this (sample time against arrival) is history, not news.
pub const LATE_NOTIFY_MS: i64 = 5 * 60 * 1000;

/// A gateway that sent no batch for this long (on top of `for_seconds`) counts as silent.
pub const SILENCE_GRACE_MS: i64 = 60 * 1000;

/// A transition of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The condition holds: an event begins at `at` (ms since the epoch).
    Raise {
        /// When, by the data's clock.
        at: i64,
        /// The value that raised it, if a sample did.
        value: Option<Value>,
    },
    /// The condition is over: the event ends at `at`.
    Clear {
        /// When, by the data's clock.
        at: i64,
        /// The value that cleared it, if a sample did.
        value: Option<Value>,
    },
}

/// What the timers know of a gateway: its status and its batches.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayFacts {
    /// True if its latest status says online.
    pub online: bool,
    /// When that status arrived (ms since the epoch).
    pub status_at: Option<i64>,
    /// When its latest batch arrived.
    pub last_batch_at: Option<i64>,
    /// Its devices as its status lists them: name, connected, last good read.
    pub devices: Vec<(String, bool, Option<i64>)>,
}

fn for_ms(rule: &AlarmRule) -> i64 {
    rule.for_seconds.saturating_mul(1000)
}

/// `high`, `low` and `equals`: whether `v` raises, and whether it clears.
fn conditions(rule: &AlarmRule, v: f64) -> (bool, bool) {
    let threshold = rule.threshold.unwrap_or(0.0);
    let hysteresis = rule.hysteresis;
    match rule.kind {
        RuleKind::High => (v > threshold, v < threshold - hysteresis),
        RuleKind::Low => (v < threshold, v > threshold + hysteresis),
        RuleKind::Equals => (v == threshold, v != threshold),
        RuleKind::Stale | RuleKind::GatewayOffline | RuleKind::DeviceDown => (false, false),
    }
}

/// A sample of the rule's point at `ts`: the transition it causes, if any.
pub fn on_sample(rule: &AlarmRule, state: &mut RuleState, ts: i64, value: &Value) -> Option<Step> {
    if state.last_ts.is_some_and(|last| ts <= last) {
        return None;
    }
    state.last_ts = Some(ts);
    let active = state.active_event.is_some();
    match rule.kind {
        RuleKind::Stale => active.then(|| Step::Clear {
            at: ts,
            value: Some(value.clone()),
        }),
        RuleKind::High | RuleKind::Low | RuleKind::Equals => {
            let v = numeric(value)?;
            let (raises, clears) = conditions(rule, v);
            if active {
                state.pending_since = None;
                return clears.then(|| Step::Clear {
                    at: ts,
                    value: Some(value.clone()),
                });
            }
            if !raises {
                state.pending_since = None;
                return None;
            }
            let since = *state.pending_since.get_or_insert(ts);
            (ts - since >= for_ms(rule)).then(|| {
                state.pending_since = None;
                Step::Raise {
                    at: ts,
                    value: Some(value.clone()),
                }
            })
        }
        RuleKind::GatewayOffline | RuleKind::DeviceDown => None,
    }
}

/// The clock at `now`: the transition that time alone causes, if any. `facts` are the
/// rule's gateway's (needed by `gateway_offline` and `device_down`).
pub fn on_tick(
    rule: &AlarmRule,
    state: &mut RuleState,
    now: i64,
    facts: Option<&GatewayFacts>,
) -> Option<Step> {
    let active = state.active_event.is_some();
    let wait = for_ms(rule);
    match rule.kind {
        RuleKind::High | RuleKind::Low | RuleKind::Equals => {
            let since = state.pending_since.filter(|_| !active)?;
            (now - since >= wait).then(|| {
                state.pending_since = None;
                Step::Raise {
                    at: since + wait,
                    value: None,
                }
            })
        }
        RuleKind::Stale => {
            let since = state.last_ts.unwrap_or(rule.created_at);
            (!active && now - since >= wait).then_some(Step::Raise {
                at: since + wait,
                value: None,
            })
        }
        RuleKind::GatewayOffline => {
            let facts = facts?;
            let silent_since = facts
                .last_batch_at
                .filter(|&at| now - at >= wait + SILENCE_GRACE_MS);
            let offline_since = (!facts.online).then(|| facts.status_at.unwrap_or(now));
            let down_since = match (offline_since, silent_since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match (active, down_since) {
                (false, Some(since)) if now - since >= wait => Some(Step::Raise {
                    at: since + wait,
                    value: None,
                }),
                (true, None) => Some(Step::Clear {
                    at: facts
                        .last_batch_at
                        .unwrap_or(now)
                        .max(facts.status_at.unwrap_or(0)),
                    value: None,
                }),
                _ => None,
            }
        }
        RuleKind::DeviceDown => {
            let facts = facts?;
            let device = rule.device.as_deref()?;
            let (_, connected, last_good) =
                facts.devices.iter().find(|(name, _, _)| name == device)?;
            if !facts.online {
                // The status of a gateway that is offline says nothing of its devices.
                return None;
            }
            match (active, connected) {
                (false, false) => {
                    let since = last_good.or(facts.status_at).unwrap_or(now);
                    (now - since >= wait).then_some(Step::Raise {
                        at: since + wait,
                        value: None,
                    })
                }
                (true, true) => Some(Step::Clear {
                    at: facts.status_at.unwrap_or(now),
                    value: None,
                }),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::Severity;

    fn rule(
        kind: RuleKind,
        threshold: Option<f64>,
        hysteresis: f64,
        for_seconds: i64,
    ) -> AlarmRule {
        AlarmRule {
            id: 1,
            credit_code: "C".into(),
            name: "r".into(),
            gateway_id: "gw".into(),
            device: Some("press".into()),
            point: Some("t".into()),
            kind,
            threshold,
            hysteresis,
            for_seconds,
            severity: Severity::Warning,
            channels: vec![],
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Feeds `values` one a second from t = 1 s; the steps, by sample index.
    fn run(rule: &AlarmRule, values: &[f64]) -> Vec<(usize, &'static str)> {
        let mut state = RuleState::default();
        let mut steps = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            let step = on_sample(rule, &mut state, (i as i64 + 1) * 1000, &Value::Float(v));
            match step {
                Some(Step::Raise { .. }) => {
                    state.active_event = Some(i as i64);
                    steps.push((i, "raise"));
                }
                Some(Step::Clear { .. }) => {
                    state.active_event = None;
                    steps.push((i, "clear"));
                }
                None => {}
            }
        }
        steps
    }

    #[test]
    fn high_raises_above_the_threshold_and_clears_below_the_hysteresis_band() {
        let high = rule(RuleKind::High, Some(100.0), 5.0, 0);
        let values = [90.0, 101.0, 99.0, 96.0, 94.9, 100.0, 100.5];
        assert_eq!(
            run(&high, &values),
            [(1, "raise"), (4, "clear"), (6, "raise")]
        );
    }

    #[test]
    fn high_waits_for_seconds_and_a_dip_restarts_the_wait() {
        let high = rule(RuleKind::High, Some(100.0), 0.0, 3);
        let values = [101.0, 102.0, 99.0, 101.0, 101.0, 101.0, 101.0, 50.0];
        assert_eq!(run(&high, &values), [(6, "raise"), (7, "clear")]);
    }

    #[test]
    fn low_mirrors_high() {
        let low = rule(RuleKind::Low, Some(10.0), 2.0, 0);
        assert_eq!(
            run(&low, &[12.0, 9.0, 11.0, 12.5, 8.0]),
            [(1, "raise"), (3, "clear"), (4, "raise")]
        );
    }

    #[test]
    fn equals_raises_while_the_state_holds() {
        let fault = rule(RuleKind::Equals, Some(1.0), 0.0, 0);
        assert_eq!(
            run(&fault, &[0.0, 1.0, 1.0, 0.0, 1.0]),
            [(1, "raise"), (3, "clear"), (4, "raise")]
        );
        let mut state = RuleState::default();
        let bool_true = on_sample(&fault, &mut state, 1, &Value::Bool(true));
        assert!(
            matches!(bool_true, Some(Step::Raise { .. })),
            "bools are 0 and 1"
        );
    }

    #[test]
    fn an_older_sample_changes_nothing_and_a_failed_read_neither_raises_nor_clears() {
        let high = rule(RuleKind::High, Some(100.0), 0.0, 0);
        let mut state = RuleState::default();
        assert_eq!(
            on_sample(&high, &mut state, 5000, &Value::Float(50.0)),
            None
        );
        assert_eq!(
            on_sample(&high, &mut state, 4000, &Value::Float(500.0)),
            None,
            "late"
        );
        assert_eq!(
            on_sample(&high, &mut state, 5000, &Value::Float(500.0)),
            None,
            "same time"
        );
        assert_eq!(on_sample(&high, &mut state, 6000, &Value::None), None);
        assert!(on_sample(&high, &mut state, 7000, &Value::Float(500.0)).is_some());
    }

    #[test]
    fn stale_raises_after_silence_and_the_next_sample_clears() {
        let stale = rule(RuleKind::Stale, None, 0.0, 30);
        let mut state = RuleState::default();
        on_sample(&stale, &mut state, 10_000, &Value::Float(1.0));
        assert_eq!(on_tick(&stale, &mut state, 39_999, None), None);
        assert_eq!(
            on_tick(&stale, &mut state, 40_000, None),
            Some(Step::Raise {
                at: 40_000,
                value: None
            })
        );
        state.active_event = Some(7);
        assert!(matches!(
            on_sample(&stale, &mut state, 50_000, &Value::Float(2.0)),
            Some(Step::Clear { at: 50_000, .. })
        ));
    }

    #[test]
    fn a_pending_high_raises_on_the_clock_when_no_sample_follows() {
        let high = rule(RuleKind::High, Some(100.0), 0.0, 10);
        let mut state = RuleState::default();
        assert_eq!(
            on_sample(&high, &mut state, 1_000, &Value::Float(120.0)),
            None
        );
        assert_eq!(on_tick(&high, &mut state, 10_999, None), None);
        assert_eq!(
            on_tick(&high, &mut state, 11_000, None),
            Some(Step::Raise {
                at: 11_000,
                value: None
            })
        );
    }

    #[test]
    fn gateway_offline_follows_the_status_and_the_batches() {
        let offline = rule(RuleKind::GatewayOffline, None, 0.0, 60);
        let mut state = RuleState::default();
        let mut facts = GatewayFacts {
            online: false,
            status_at: Some(100_000),
            last_batch_at: Some(99_000),
            devices: vec![],
        };
        assert_eq!(on_tick(&offline, &mut state, 159_999, Some(&facts)), None);
        assert_eq!(
            on_tick(&offline, &mut state, 160_000, Some(&facts)),
            Some(Step::Raise {
                at: 160_000,
                value: None
            })
        );
        state.active_event = Some(1);
        facts.online = true;
        facts.status_at = Some(200_000);
        facts.last_batch_at = Some(201_000);
        assert!(matches!(
            on_tick(&offline, &mut state, 202_000, Some(&facts)),
            Some(Step::Clear { .. })
        ));
        // Online but silent: no batch for `for_seconds` plus the grace.
        state.active_event = None;
        assert_eq!(
            on_tick(&offline, &mut state, 201_000 + 119_999, Some(&facts)),
            None
        );
        assert!(on_tick(&offline, &mut state, 201_000 + 120_000, Some(&facts)).is_some());
    }

    #[test]
    fn device_down_follows_the_devices_in_the_status() {
        let down = rule(RuleKind::DeviceDown, None, 0.0, 30);
        let mut state = RuleState::default();
        let mut facts = GatewayFacts {
            online: true,
            status_at: Some(50_000),
            last_batch_at: Some(50_000),
            devices: vec![("press".into(), false, Some(20_000))],
        };
        assert_eq!(on_tick(&down, &mut state, 49_999, Some(&facts)), None);
        assert_eq!(
            on_tick(&down, &mut state, 50_000, Some(&facts)),
            Some(Step::Raise {
                at: 50_000,
                value: None
            })
        );
        state.active_event = Some(3);
        facts.online = false;
        assert_eq!(
            on_tick(&down, &mut state, 60_000, Some(&facts)),
            None,
            "offline says nothing"
        );
        facts.online = true;
        facts.devices[0].1 = true;
        assert!(matches!(
            on_tick(&down, &mut state, 61_000, Some(&facts)),
            Some(Step::Clear { .. })
        ));
    }
}
