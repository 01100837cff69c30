//! The simulated signals: pure functions of (signal, seed, time).

use fieldlink_wire::Value;
use std::f64::consts::TAU;
use std::fmt;
use std::str::FromStr;

/// The shape of a simulated point's value over time. Every signal is a pure function of
/// `(signal, seed, t_ms)`: the same point name gives the same curve on every run and
/// every machine, and two gateways simulating the same point agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Signal {
    /// Slow analog drift, like a temperature:
    /// `22.5 + 2.5·sin(2π·(t mod P)/P + φ)`, with period `P` from 4 to 6 minutes and phase
    /// `φ` both chosen by the seed; a `Float` in `[20, 25]`, rounded to 0.01.
    #[default]
    Sine,
    /// Sawtooth: `100·((t + o) mod P)/P`, with period `P` from 1 to 2 minutes and offset
    /// `o` chosen by the seed; a `Float` in `[0, 100]`, rounded to 0.01.
    Ramp,
    /// Production counter, the parts made today: one part every `C` seconds since the
    /// plant's midnight ([`PLANT_UTC_OFFSET_MS`]), `⌊(t since midnight)/C⌋`, with the
    /// cycle time `C = 4 + seed mod 9` seconds (4 to 12 s); an `Int` that starts at 0 each
    /// day and reaches 7,200 to 21,600 by its end, as a press's shift counter does.
    Counter,
    /// On/off state: a `Bool` that flips every `N` seconds, `N = 5 + seed mod 26` (5 to
    /// 30 s), with a phase chosen by the seed.
    Toggle,
    /// Smooth pseudo-random drift, like a pressure: `50 + 10·(0.5·sin a + 0.3·sin b +
    /// 0.2·sin c)`, three sines whose periods (37–74 s, 173–346 s, 907–1814 s) and phases
    /// are chosen by the seed so that they are effectively incommensurate; a `Float` in
    /// `[40, 60]`, rounded to 0.01. It is not a stateful random walk: being a pure
    /// function of time keeps it deterministic and lets any instant be computed alone.
    RandomWalk,
    /// A machine's run state, mostly running with stops: the plant's day is cut into
    /// 20-minute slots, 2 in 5 of which (chosen by the seed, the same every day) hold one
    /// stop of 2 to 8 minutes; a `Bool`, true about 90 % of the time. The machine signals
    /// ([`Signal::is_machine`]) of one seed describe one machine.
    Running,
    /// The machine's active-energy meter, kWh since the plant's midnight starting
    /// 2024-01-01 ([`MACHINE_EPOCH_MS`]): `P/10` kW all the time and `P` kW more while it
    /// runs, `P` from 20 to 40 chosen by the seed; a `Float` rounded to 0.01 that never
    /// goes down.
    Energy,
    /// The machine's parts counter since [`MACHINE_EPOCH_MS`]: one part every `C` seconds
    /// of running, `C = 4 + seed mod 9`; an `Int` that never goes down and stands still
    /// while the machine stops.
    Output,
}

impl Signal {
    /// The configuration names of all signals, for error messages.
    pub const NAMES: &str = "sine, ramp, counter, toggle, random-walk, running, energy, output";

    /// The signal's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Sine => "sine",
            Signal::Ramp => "ramp",
            Signal::Counter => "counter",
            Signal::Toggle => "toggle",
            Signal::RandomWalk => "random-walk",
            Signal::Running => "running",
            Signal::Energy => "energy",
            Signal::Output => "output",
        }
    }

    /// The type of its values as the catalogue names it: `bool`, `i64` or `f64`.
    pub fn data_type(self) -> &'static str {
        match self {
            Signal::Toggle | Signal::Running => "bool",
            Signal::Counter | Signal::Output => "i64",
            Signal::Sine | Signal::Ramp | Signal::RandomWalk | Signal::Energy => "f64",
        }
    }

    /// True for the signals of one machine (running, energy, output): a simulated device
    /// seeds them with its own name, so that its meter and counter follow its run state.
    pub fn is_machine(self) -> bool {
        matches!(self, Signal::Running | Signal::Energy | Signal::Output)
    }

    /// The value at `t_ms` (ms since the Unix epoch) of the curve chosen by `seed`; the
    /// formulas are on the variants.
    pub fn value(self, seed: u64, t_ms: i64) -> Value {
        match self {
            Signal::Counter => Value::Int(counter(seed, t_ms)),
            Signal::Toggle => Value::Bool(toggle(seed, t_ms)),
            Signal::Running => Value::Bool(running(seed, t_ms)),
            Signal::Output => Value::Int(output(seed, t_ms)),
            Signal::Sine | Signal::Ramp | Signal::RandomWalk | Signal::Energy => {
                Value::Float(self.number(seed, t_ms))
            }
        }
    }

    /// The value as a number (booleans as 0 or 1), with the same rounding as [`value`].
    ///
    /// [`value`]: Signal::value
    pub(crate) fn number(self, seed: u64, t_ms: i64) -> f64 {
        match self {
            Signal::Sine => {
                let period = 240_000 + span(seed, 1, 120_000);
                let phase = TAU * fraction(seed, 2);
                round2(22.5 + 2.5 * (TAU * cycle(t_ms, period) + phase).sin())
            }
            Signal::Ramp => {
                let period = 60_000 + span(seed, 1, 60_000);
                let offset = span(seed, 2, period);
                round2(100.0 * cycle(t_ms.saturating_add(offset), period))
            }
            Signal::Counter => counter(seed, t_ms) as f64,
            Signal::Toggle => f64::from(u8::from(toggle(seed, t_ms))),
            Signal::Running => f64::from(u8::from(running(seed, t_ms))),
            Signal::Output => output(seed, t_ms) as f64,
            Signal::Energy => {
                let run_kw = 20.0 + span(seed, 7, 21) as f64;
                let since = t_ms.saturating_sub(MACHINE_EPOCH_MS).max(0);
                let kwh = |ms: i64, kw: f64| ms as f64 / 3_600_000.0 * kw;
                round2(kwh(since, run_kw / 10.0) + kwh(running_ms(seed, t_ms), run_kw))
            }
            Signal::RandomWalk => {
                let part = |base_ms: i64, weight: f64, stream: u64| {
                    let period = base_ms + span(seed, stream, base_ms);
                    let phase = TAU * fraction(seed, stream + 10);
                    weight * (TAU * cycle(t_ms, period) + phase).sin()
                };
                let drift = part(37_000, 0.5, 3) + part(173_000, 0.3, 4) + part(907_000, 0.2, 5);
                round2(50.0 + 10.0 * drift)
            }
        }
    }
}

/// The simulated plant's clock: China Standard Time (UTC+08:00, no daylight saving), the
/// zone the platform keeps its days in by default; its [`Signal::Counter`] starts again
/// at this zone's midnight.
pub const PLANT_UTC_OFFSET_MS: i64 = 8 * 3_600_000;

fn counter(seed: u64, t_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    // `seed % 9` is below 9, so the cast is exact.
    let cycle_ms = (4 + (seed % 9) as i64) * 1000;
    t_ms.saturating_add(PLANT_UTC_OFFSET_MS).rem_euclid(DAY_MS) / cycle_ms
}

/// When the machine signals start counting: 2024-01-01 00:00 in the plant's zone.
pub const MACHINE_EPOCH_MS: i64 = 1_704_067_200_000 - PLANT_UTC_OFFSET_MS;
/// A machine's day is cut into slots of this length, each with one stop at most (whole
/// minutes, starting on a whole minute).
const SLOT_MS: i64 = 20 * 60_000;

/// The stop in slot `slot` of a machine's day: (start within the slot, length), if any.
fn stop(seed: u64, slot: i64) -> Option<(i64, i64)> {
    let stream = 100 + 3 * slot.unsigned_abs();
    if fraction(seed, stream) >= 0.4 {
        return None;
    }
    let minutes = 2 + span(seed, stream + 1, 7);
    let start = span(seed, stream + 2, SLOT_MS / 60_000 - minutes + 1);
    Some((start * 60_000, minutes * 60_000))
}

/// Stopped time of slot `slot` before `into` ms of it.
fn stopped(seed: u64, slot: i64, into: i64) -> i64 {
    stop(seed, slot).map_or(0, |(start, length)| (into - start).clamp(0, length))
}

fn running(seed: u64, t_ms: i64) -> bool {
    const DAY_MS: i64 = 86_400_000;
    let in_day = t_ms.saturating_add(PLANT_UTC_OFFSET_MS).rem_euclid(DAY_MS);
    let into = in_day % SLOT_MS;
    stop(seed, in_day / SLOT_MS)
        .is_none_or(|(start, length)| into < start || into >= start + length)
}

/// Running time from [`MACHINE_EPOCH_MS`] to `t_ms` (0 before it).
fn running_ms(seed: u64, t_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let since = t_ms.saturating_sub(MACHINE_EPOCH_MS).max(0);
    let (days, in_day) = (since / DAY_MS, since % DAY_MS);
    let slot = in_day / SLOT_MS;
    let per_day: i64 = (0..DAY_MS / SLOT_MS)
        .map(|s| stopped(seed, s, SLOT_MS))
        .sum();
    let today: i64 = (0..slot).map(|s| stopped(seed, s, SLOT_MS)).sum::<i64>()
        + stopped(seed, slot, in_day % SLOT_MS);
    since - days * per_day - today
}

fn output(seed: u64, t_ms: i64) -> i64 {
    // `seed % 9` is below 9, so the cast is exact.
    running_ms(seed, t_ms) / ((4 + (seed % 9) as i64) * 1000)
}

fn toggle(seed: u64, t_ms: i64) -> bool {
    // `seed % 26` is below 26, so the cast is exact.
    let half_period = (5 + (seed % 26) as i64) * 1000;
    let phase = span(seed, 2, 2 * half_period);
    t_ms.saturating_add(phase)
        .div_euclid(half_period)
        .rem_euclid(2)
        == 1
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal name that is not one of [`Signal::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal `{0}`; expected one of: {names}", names = Signal::NAMES)]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;
    fn from_str(s: &str) -> Result<Self, UnknownSignal> {
        match s {
            "sine" => Ok(Signal::Sine),
            "ramp" => Ok(Signal::Ramp),
            "counter" => Ok(Signal::Counter),
            "toggle" => Ok(Signal::Toggle),
            "random-walk" => Ok(Signal::RandomWalk),
            "running" => Ok(Signal::Running),
            "energy" => Ok(Signal::Energy),
            "output" => Ok(Signal::Output),
            other => Err(UnknownSignal(other.to_owned())),
        }
    }
}

/// The seed of a point: the 64-bit FNV-1a hash of its name, stable across runs, builds and
/// platforms (unlike std's randomly keyed SipHash).
pub fn seed_for(point_name: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    point_name.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// A fraction in `[0, 1)` drawn from `seed` for one parameter (`stream`): the SplitMix64
/// finaliser, so that nearby seeds and streams give unrelated fractions.
pub(crate) fn fraction(seed: u64, stream: u64) -> f64 {
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// An integer in `[0, len)` drawn from `seed` for one parameter.
pub(crate) fn span(seed: u64, stream: u64, len: i64) -> i64 {
    // The fraction is below 1, so the product is below `len` and fits.
    (fraction(seed, stream) * len as f64) as i64
}

/// Where `t_ms` falls in a period of `period_ms`, as a fraction in `[0, 1)`; the modulo is
/// taken on integers so that precision does not decay with the size of epoch timestamps.
fn cycle(t_ms: i64, period_ms: i64) -> f64 {
    t_ms.rem_euclid(period_ms) as f64 / period_ms as f64
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Signal; 8] = [
        Signal::Sine,
        Signal::Ramp,
        Signal::Counter,
        Signal::Toggle,
        Signal::RandomWalk,
        Signal::Running,
        Signal::Energy,
        Signal::Output,
    ];
    // 2025-12-01T00:00:00Z.
    const DAY_START: i64 = 1_764_547_200_000;
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn names_round_trip_and_default_is_sine() {
        for signal in ALL {
            assert_eq!(signal.as_str().parse::<Signal>(), Ok(signal));
            assert!(Signal::NAMES.contains(signal.as_str()));
        }
        assert_eq!(Signal::default(), Signal::Sine);
        let err = "square".parse::<Signal>().unwrap_err();
        assert!(err.to_string().contains("random-walk"), "{err}");
    }

    #[test]
    fn values_have_the_signals_data_type() {
        for signal in ALL {
            let value = signal.value(seed_for("x"), DAY_START);
            let kind = match value {
                Value::Bool(_) => "bool",
                Value::Int(_) => "i64",
                Value::Float(_) => "f64",
                other => panic!("{signal}: {other:?}"),
            };
            assert_eq!(kind, signal.data_type(), "{signal}");
        }
    }

    #[test]
    fn seed_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(seed_for(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(seed_for("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(seed_for("foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(seed_for("temperature"), seed_for("pressure"));
    }

    #[test]
    fn same_input_gives_same_output() {
        for signal in ALL {
            for name in ["temperature", "pressure", "x"] {
                let seed = seed_for(name);
                for t in [0, -1, DAY_START, DAY_START + 123_456, i64::MAX, i64::MIN] {
                    assert_eq!(
                        signal.value(seed, t),
                        signal.value(seed, t),
                        "{signal} {name} {t}"
                    );
                }
            }
        }
    }

    fn floats_over_a_day(signal: Signal, seed: u64) -> Vec<f64> {
        (0..DAY_MS / 1000)
            .map(|s| match signal.value(seed, DAY_START + s * 1000) {
                Value::Float(v) => v,
                other => panic!("{signal} gave {other:?}"),
            })
            .collect()
    }

    fn assert_range(values: &[f64], lo: f64, hi: f64, what: &str) {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(
            min >= lo && max <= hi,
            "{what}: [{min}, {max}] not within [{lo}, {hi}]"
        );
        // The curve uses most of its range, so it is not stuck.
        assert!(
            max - min > 0.8 * (hi - lo),
            "{what}: [{min}, {max}] too narrow"
        );
        for v in values {
            assert_eq!(
                (v * 100.0).round() / 100.0,
                *v,
                "{what}: {v} not rounded to 0.01"
            );
        }
    }

    #[test]
    fn analog_signals_stay_in_documented_ranges_over_a_day() {
        for name in ["temperature", "pressure", "motor_current", "a", ""] {
            let seed = seed_for(name);
            assert_range(&floats_over_a_day(Signal::Sine, seed), 20.0, 25.0, "sine");
            assert_range(&floats_over_a_day(Signal::Ramp, seed), 0.0, 100.0, "ramp");
            assert_range(
                &floats_over_a_day(Signal::RandomWalk, seed),
                40.0,
                60.0,
                "random-walk",
            );
        }
    }

    /// Regression: the counter read like epoch seconds (`parts_made=1796613991`).
    #[test]
    fn counter_counts_the_parts_made_since_the_plants_midnight() {
        for name in ["parts_made", "conveyor_count", "a", "b"] {
            let seed = seed_for(name);
            let at = |t| match Signal::Counter.value(seed, t) {
                Value::Int(v) => v,
                other => panic!("{other:?}"),
            };
            // DAY_START is 08:00 in the plant; its midnight is 8 hours earlier.
            let midnight = DAY_START - PLANT_UTC_OFFSET_MS;
            let cycle = (4 + (seed % 9) as i64) * 1000;
            assert_eq!(at(midnight), 0, "{name}");
            assert_eq!(at(midnight - 1), (DAY_MS - 1) / cycle, "{name}");
            assert!((7200..=21_600).contains(&at(midnight - 1)), "{name}");
            let mut last = 0;
            for s in 0..DAY_MS / 1000 {
                let now = at(midnight + s * 1000);
                assert!(now == last || now == last + 1, "{name} at {s} s");
                last = now;
            }
            assert_eq!(
                at(midnight + DAY_MS),
                0,
                "{name}: starts again the next day"
            );
            assert_eq!(at(midnight + 60 * cycle), 60, "{name}");
        }
    }

    #[test]
    fn toggle_flips_every_5_to_30_seconds() {
        for name in ["door_open", "running", "a", "b", "c"] {
            let seed = seed_for(name);
            let half_period = 5 + (seed % 26) as i64;
            let states: Vec<bool> = (0..DAY_MS / 1000)
                .map(|s| match Signal::Toggle.value(seed, DAY_START + s * 1000) {
                    Value::Bool(b) => b,
                    other => panic!("{other:?}"),
                })
                .collect();
            let flips: Vec<usize> = states
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w[0] != w[1])
                .map(|(i, _)| i)
                .collect();
            assert!(flips.len() > 1000, "{name}: only {} flips", flips.len());
            for gap in flips.windows(2) {
                assert_eq!((gap[1] - gap[0]) as i64, half_period, "{name}");
            }
        }
    }

    #[test]
    fn a_machine_runs_with_stops_and_its_counters_follow_it() {
        for name in ["press-1", "line-2", "a"] {
            let seed = seed_for(name);
            let (mut runs, mut last_kwh, mut last_parts) = (0, 0.0, 0);
            let (mut stops, mut was_running) = (0, true);
            for s in 0..DAY_MS / 1000 {
                let t = DAY_START + s * 1000;
                let on = Signal::Running.value(seed, t) == Value::Bool(true);
                let Value::Float(kwh) = Signal::Energy.value(seed, t) else {
                    panic!("energy is a float");
                };
                let Value::Int(parts) = Signal::Output.value(seed, t) else {
                    panic!("output is an int");
                };
                if s > 0 {
                    assert!(kwh >= last_kwh && parts >= last_parts, "{name} at {s} s");
                    // Standing still while stopped; a part every 4 to 12 s while running.
                    if !was_running {
                        assert_eq!(parts, last_parts, "{name} at {s} s");
                    }
                    assert!(parts - last_parts <= 1, "{name} at {s} s");
                }
                runs += i64::from(on);
                stops += i64::from(was_running && !on);
                (last_kwh, last_parts, was_running) = (kwh, parts, on);
            }
            let share = runs as f64 / (DAY_MS / 1000) as f64;
            assert!((0.8..0.97).contains(&share), "{name}: runs {share}");
            assert!(stops >= 10, "{name}: {stops} stops");
            // Beyond two years of counting: believable meter and counter readings.
            assert!(
                (100_000.0..2_000_000.0).contains(&last_kwh),
                "{name}: {last_kwh}"
            );
            assert!(last_parts > 1_000_000, "{name}: {last_parts}");
            // The first day counts from zero.
            assert_eq!(Signal::Output.value(seed, MACHINE_EPOCH_MS), Value::Int(0));
            assert_eq!(
                Signal::Energy.value(seed, MACHINE_EPOCH_MS - 1),
                Value::Float(0.0)
            );
        }
    }

    #[test]
    fn signals_move_over_time() {
        let seed = seed_for("temperature");
        for signal in [
            Signal::Sine,
            Signal::Ramp,
            Signal::RandomWalk,
            Signal::Counter,
        ] {
            assert_ne!(
                signal.value(seed, DAY_START),
                signal.value(seed, DAY_START + 30_000),
                "{signal}"
            );
        }
    }
}
