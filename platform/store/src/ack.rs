//! What the platform holds of a gateway's numbering, as its retained `ack` says it: made
//! from the gateway's highest stored `seq` and its open gaps (which never cover a crash
//! window), the same on both backends and on every instance.

use fieldlink_wire::Ack;

/// The ack of a gateway whose highest stored `seq` is `max_seq` and whose open gaps are
/// `gaps`, in order.
pub(crate) fn ack_of(max_seq: i64, gaps: &[(i64, i64)]) -> Ack {
    let seq = |s: i64| u64::try_from(s).unwrap_or(0);
    let stored_through = gaps.first().map_or(max_seq, |&(first, _)| first - 1);
    Ack {
        stored_through: seq(stored_through),
        missing: gaps
            .iter()
            .take(Ack::MAX_MISSING)
            .map(|&(first, last)| (seq(first), seq(last)))
            .collect(),
        stored_max: Some(seq(max_seq)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_through_stops_at_the_first_gap() {
        assert_eq!(
            ack_of(9, &[]),
            Ack {
                stored_through: 9,
                missing: vec![],
                stored_max: Some(9)
            }
        );
        assert_eq!(
            ack_of(20, &[(1, 4), (10, 10)]),
            Ack {
                stored_through: 0,
                missing: vec![(1, 4), (10, 10)],
                stored_max: Some(20)
            }
        );
        let many: Vec<(i64, i64)> = (0..150).map(|i| (2 * i + 5, 2 * i + 5)).collect();
        let ack = ack_of(1000, &many);
        assert_eq!(ack.stored_through, 4);
        assert_eq!(ack.missing.len(), Ack::MAX_MISSING);
    }
}
