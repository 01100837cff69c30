//! What both backends store the same way: the codes of value kinds and qualities, the
//! per-minute aggregates, how a batch's `seq` moves a gateway's highest `seq`, and the
//! checks of catalogue codes read back.

use super::StoreError;
use fieldlink_platform_core::catalog::{District, Industry};
use fieldlink_platform_core::profile::{MaturityLevel, Size, Specialised};
use fieldlink_wire::{Quality, Value};

/// `kind` of a sample without a value.
pub(super) const KIND_NONE: i16 = 0;
/// `kind` of a boolean (stored as 0 or 1).
pub(super) const KIND_BOOL: i16 = 1;
/// `kind` of a signed integer.
pub(super) const KIND_INT: i16 = 2;
/// `kind` of an unsigned integer (stored as text: it may exceed `i64::MAX`).
pub(super) const KIND_UINT: i16 = 3;
/// `kind` of a float.
pub(super) const KIND_FLOAT: i16 = 4;
/// `kind` of a text.
pub(super) const KIND_TEXT: i16 = 5;

/// `quality` of a good sample.
pub(super) const QUALITY_GOOD: i16 = 0;
/// `quality` of a bad sample (with its error text).
pub(super) const QUALITY_BAD: i16 = 1;
/// `quality` of an uncertain sample.
pub(super) const QUALITY_UNCERTAIN: i16 = 2;

/// The width of a per-minute aggregate row (numeric samples per point and minute, kept
/// with the samples in the same transaction, so charts of long windows read one row a
/// minute instead of one a sample).
pub(super) const MINUTE_MS: i64 = 60_000;

/// A value's kind code.
pub(super) fn kind_of(value: &Value) -> i16 {
    match value {
        Value::None => KIND_NONE,
        Value::Bool(_) => KIND_BOOL,
        Value::Int(_) => KIND_INT,
        Value::UInt(_) => KIND_UINT,
        Value::Float(_) => KIND_FLOAT,
        Value::Text(_) => KIND_TEXT,
    }
}

/// A value as a chart's number, if it is one (finite; booleans are 0 and 1).
pub(super) fn numeric(value: &Value) -> Option<f64> {
    let v = match value {
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Int(i) => *i as f64,
        Value::UInt(u) => *u as f64,
        Value::Float(f) => *f,
        Value::None | Value::Text(_) => return None,
    };
    v.is_finite().then_some(v)
}

/// A quality's code and error text.
pub(super) fn quality_columns(quality: &Quality) -> (i16, Option<&str>) {
    match quality {
        Quality::Good => (QUALITY_GOOD, None),
        Quality::Bad(e) => (QUALITY_BAD, Some(e)),
        Quality::Uncertain => (QUALITY_UNCERTAIN, None),
    }
}

/// The quality stored as `code` and `error`.
pub(super) fn read_quality(code: i64, error: Option<String>) -> Result<Quality, StoreError> {
    match code {
        c if c == i64::from(QUALITY_GOOD) => Ok(Quality::Good),
        c if c == i64::from(QUALITY_BAD) => Ok(Quality::Bad(error.unwrap_or_default())),
        c if c == i64::from(QUALITY_UNCERTAIN) => Ok(Quality::Uncertain),
        other => Err(StoreError::Corrupt(format!("quality {other}"))),
    }
}

/// An unsigned value stored as text.
pub(super) fn parse_uint(text: &str) -> Result<Value, StoreError> {
    text.parse()
        .map(Value::UInt)
        .map_err(|_| StoreError::Corrupt(format!("unsigned value {text:?}")))
}

/// Min, max, sum and count of one point's numeric samples in one minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct MinuteAggregate {
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The sum of the values.
    pub sum: f64,
    /// How many values.
    pub count: i64,
}

impl MinuteAggregate {
    /// The aggregate of one value.
    pub fn of(v: f64) -> Self {
        MinuteAggregate {
            min: v,
            max: v,
            sum: v,
            count: 1,
        }
    }

    /// Adds one value.
    pub fn add(&mut self, v: f64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        self.count += 1;
    }
}

/// How a stored batch's `seq` relates to its gateway's highest `seq` so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeqStep {
    /// The first batch, the next one, or one further ahead with nothing missing: the new
    /// highest `seq`.
    Ahead,
    /// A jump: `first..=last` are missing (a gap opens); `seq` is the new highest.
    Jump {
        /// The first missing `seq`.
        first: i64,
        /// The last missing `seq`.
        last: i64,
    },
    /// At or below the highest: a late batch, which fills a gap if one holds it.
    Late,
}

/// Where `seq` falls against the highest `seq` stored so far. A gateway numbers its
/// batches from 1, so a first batch above 1 (the newest of a backlog, sent live-first)
/// finds `1..seq` missing: the backlog then fills the gap, and the platform's ack never
/// says those numbers are stored before they are.
pub(super) fn seq_step(max_seq: Option<i64>, seq: i64) -> SeqStep {
    match max_seq {
        None if seq > 1 => SeqStep::Jump {
            first: 1,
            last: seq - 1,
        },
        None => SeqStep::Ahead,
        Some(max) if seq > max + 1 => SeqStep::Jump {
            first: max + 1,
            last: seq - 1,
        },
        Some(max) if seq > max => SeqStep::Ahead,
        Some(_) => SeqStep::Late,
    }
}

/// The gaps left after the late batch `seq` fills part of the gap `first..=last`.
pub(super) fn split_gap(first: i64, last: i64, seq: i64) -> impl Iterator<Item = (i64, i64)> {
    let before = (first < seq).then_some((first, seq - 1));
    let after = (seq < last).then_some((seq + 1, last));
    before.into_iter().chain(after)
}

/// The parts of `first..=last` outside every range of `windows`, in order.
pub(super) fn subtract_ranges(first: i64, last: i64, windows: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut windows = windows.to_vec();
    windows.sort_unstable();
    let mut parts = Vec::new();
    let mut from = first;
    for (w_first, w_last) in windows {
        if w_last < from || w_first > last {
            continue;
        }
        if w_first > from {
            parts.push((from, w_first - 1));
        }
        from = from.max(w_last.saturating_add(1));
    }
    if from <= last {
        parts.push((from, last));
    }
    parts
}

/// The smallest range holding all of `parts` (in order), if any.
pub(super) fn hull(parts: &[(i64, i64)]) -> Option<super::Gap> {
    let (first, last) = (parts.first()?.0, parts.last()?.1);
    Some(super::Gap {
        first_seq: first.unsigned_abs(),
        last_seq: last.unsigned_abs(),
    })
}

/// The industry stored as `code`.
pub(super) fn parse_industry(code: &str) -> Result<Industry, StoreError> {
    Industry::from_code(code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown industry {code:?}")))
}

/// The district stored as `name`.
pub(super) fn parse_district(name: &str) -> Result<District, StoreError> {
    District::from_name(name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown district {name:?}")))
}

/// A size stored as its code, or `NULL`.
pub(super) fn parse_size(code: Option<String>) -> Result<Option<Size>, StoreError> {
    code.map(|c| {
        Size::from_code(&c).ok_or_else(|| StoreError::Corrupt(format!("unknown size {c:?}")))
    })
    .transpose()
}

/// A specialised class stored as its code, or `NULL`.
pub(super) fn parse_specialised(code: Option<String>) -> Result<Option<Specialised>, StoreError> {
    code.map(|c| {
        Specialised::from_code(&c)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown specialised class {c:?}")))
    })
    .transpose()
}

/// A maturity level stored as its number.
pub(super) fn parse_level(n: i64) -> Result<MaturityLevel, StoreError> {
    MaturityLevel::new(n).ok_or_else(|| StoreError::Corrupt(format!("maturity level {n}")))
}

/// A gateway's stored status and catalogue, parsed.
pub(super) fn parse_gateway_state(
    status_json: Option<String>,
    status_at: Option<i64>,
    meta_json: Option<String>,
) -> Result<(Option<super::GatewayStatus>, Option<serde_json::Value>), StoreError> {
    let status = match (status_json, status_at) {
        (Some(json), Some(received_at)) => Some(super::GatewayStatus {
            status: serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("gateway status: {e}")))?,
            received_at,
        }),
        _ => None,
    };
    let meta = meta_json
        .map(|j| serde_json::from_str(&j))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("gateway meta: {e}")))?;
    Ok((status, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_steps() {
        assert_eq!(seq_step(None, 1), SeqStep::Ahead);
        assert_eq!(seq_step(None, 7), SeqStep::Jump { first: 1, last: 6 });
        assert_eq!(seq_step(Some(7), 8), SeqStep::Ahead);
        assert_eq!(seq_step(Some(7), 11), SeqStep::Jump { first: 8, last: 10 });
        assert_eq!(seq_step(Some(7), 7), SeqStep::Late);
        assert_eq!(seq_step(Some(7), 2), SeqStep::Late);
    }

    #[test]
    fn a_late_batch_splits_its_gap() {
        let split = |f, l, s| split_gap(f, l, s).collect::<Vec<_>>();
        assert_eq!(split(3, 9, 5), vec![(3, 4), (6, 9)]);
        assert_eq!(split(3, 9, 3), vec![(4, 9)]);
        assert_eq!(split(3, 9, 9), vec![(3, 8)]);
        assert_eq!(split(3, 3, 3), vec![]);
    }

    #[test]
    fn crash_windows_are_taken_out_of_a_range() {
        assert_eq!(subtract_ranges(5, 20, &[]), vec![(5, 20)]);
        assert_eq!(subtract_ranges(5, 20, &[(5, 20)]), vec![]);
        assert_eq!(subtract_ranges(5, 20, &[(1, 30)]), vec![]);
        assert_eq!(subtract_ranges(5, 20, &[(10, 12)]), vec![(5, 9), (13, 20)]);
        assert_eq!(
            subtract_ranges(5, 20, &[(18, 25), (1, 6), (10, 10)]),
            vec![(7, 9), (11, 17)]
        );
        assert_eq!(subtract_ranges(5, 20, &[(21, 30), (0, 4)]), vec![(5, 20)]);
        assert_eq!(
            hull(&[(7, 9), (11, 17)]),
            Some(super::super::Gap {
                first_seq: 7,
                last_seq: 17
            })
        );
        assert_eq!(hull(&[]), None);
    }

    #[test]
    fn minute_aggregates() {
        let mut m = MinuteAggregate::of(2.0);
        m.add(-1.0);
        m.add(5.0);
        assert_eq!(
            m,
            MinuteAggregate {
                min: -1.0,
                max: 5.0,
                sum: 6.0,
                count: 3
            }
        );
    }
}
