//! Where things are in the file: the two superblock copies, then the segment slots; and how
//! a size cap is cut into slots.

use crate::frame;

/// Bytes of one superblock copy.
pub(crate) const SUPERBLOCK: u64 = 4096;

/// The superblock area at the start of the file: two copies.
pub(crate) const HEADER_AREA: u64 = 2 * SUPERBLOCK;

/// The smallest segment: reading one (a backlog's records, a segment's entries) is a few large
/// reads, and eviction drops a useful amount at a time. Caps under 32 MiB get fewer than 1024
/// slots (a 1 MiB cap 31); the smallest cap, 7.
const MIN_SEGMENT: u64 = 32 * 1024;

/// The most slots a file has (the superblock's slot map has room for this many).
pub(crate) const MAX_SLOTS: u64 = 1024;

/// The fewest slots a cap may give: the head segment, the two spare slots an append keeps
/// free (see `writer`), and the newest record (at most a quarter of the slots, see
/// [`Geometry::max_record`]).
const MIN_SLOTS: u64 = 7;

/// The smallest accepted cap: [`MIN_SLOTS`] slots of [`MIN_SEGMENT`] and the superblocks.
pub(crate) const MIN_MAX_BYTES: u64 = 256 * 1024;

/// The layout of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Bytes per segment (and slot).
    pub segment: u64,
    /// Slots the cap allows.
    pub slots: u64,
}

impl Geometry {
    /// The layout of a new file capped at `max_bytes`: about [`MAX_SLOTS`] slots, each a whole
    /// number of 4 KiB pages, at least [`MIN_SEGMENT`] long.
    pub(crate) fn for_cap(max_bytes: u64) -> Self {
        let room = max_bytes.saturating_sub(HEADER_AREA);
        let segment = (room / MAX_SLOTS / 4096 * 4096).max(MIN_SEGMENT);
        Geometry {
            segment,
            slots: (room / segment).min(MAX_SLOTS),
        }
    }

    /// The layout of an existing file with segments of `segment` bytes under the cap
    /// `max_bytes`, if such segments still give a workable number of slots.
    pub(crate) fn with_segment(max_bytes: u64, segment: u64) -> Option<Self> {
        if segment < MIN_SEGMENT || !segment.is_multiple_of(4096) {
            return None;
        }
        let slots = (max_bytes.saturating_sub(HEADER_AREA) / segment).min(MAX_SLOTS);
        (slots >= MIN_SLOTS).then_some(Geometry { segment, slots })
    }

    /// Where slot `slot` starts in the file.
    pub(crate) fn slot_offset(&self, slot: u16) -> u64 {
        HEADER_AREA + u64::from(slot) * self.segment
    }

    /// The file length that holds slots `0..slots`.
    pub(crate) fn len_for_slots(&self, slots: u64) -> u64 {
        HEADER_AREA + slots * self.segment
    }

    /// The largest payload accepted: its frame may take at most a quarter of the slots, so
    /// that eviction can always make room for it next to the head segment and the slot kept
    /// for ack frames.
    pub(crate) fn max_record(&self) -> u64 {
        (self.slots * self.segment / 4)
            .saturating_sub(frame::frame_len(0))
            .min(u64::from(u32::MAX) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_cut_into_at_most_1024_slots_of_whole_pages() {
        let small = Geometry::for_cap(MIN_MAX_BYTES);
        assert_eq!(
            small,
            Geometry {
                segment: 32768,
                slots: 7
            }
        );
        let gib = Geometry::for_cap(1 << 30);
        assert_eq!(gib.segment % 4096, 0);
        assert_eq!(gib.slots, MAX_SLOTS);
        assert!(gib.len_for_slots(gib.slots) <= 1 << 30);
        for cap in [MIN_MAX_BYTES, 1000 * 1024, 3 << 20, 64 << 20, 4 << 30] {
            let g = Geometry::for_cap(cap);
            assert!(g.len_for_slots(g.slots) <= cap, "cap {cap}: {g:?}");
            assert!(g.slots >= MIN_SLOTS, "cap {cap}: {g:?}");
            // The largest frame needs at most this many new slots: with every other record
            // evicted, they are free beside the head's and a spare one.
            let frame = frame::frame_len(g.max_record());
            assert!(frame.div_ceil(g.segment) + 2 <= g.slots, "cap {cap}: {g:?}");
        }
    }

    #[test]
    fn an_existing_segment_size_is_kept_while_it_gives_enough_slots() {
        assert_eq!(
            Geometry::with_segment(1 << 20, 32768),
            Some(Geometry {
                segment: 32768,
                slots: 31
            })
        );
        assert_eq!(Geometry::with_segment(MIN_MAX_BYTES, 1 << 20), None);
        assert_eq!(Geometry::with_segment(1 << 20, 70000), None);
    }
}
