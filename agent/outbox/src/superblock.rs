//! The superblock: what a durable commit writes, in two alternating 4 KiB copies at the start
//! of the file. The copy with the valid checksum and the higher generation is the store's
//! durable state; the other is the commit before it, there in case the newer copy's write was
//! torn by a power cut.
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `FLOUTBOX` |
//! | 8..12 | format (2; format 1 was the redb store) |
//! | 12..16 | CRC-32 of bytes 16 to the end of the slot map |
//! | 16..24 | generation, one more per commit |
//! | 24..32 | segment size in bytes |
//! | 32..40 | `next_seq` |
//! | 40..48 | `seq_limit` (see "Sequence numbers" in the crate docs) |
//! | 48..56 | `evicted_batches` |
//! | 56..64 | `evicted_samples` |
//! | 64..72 | `tail`: the log position recovery starts reading at |
//! | 72..80 | `head`: the end of the durable log |
//! | 80..84 | number of slot entries |
//! | 84..88 | zero |
//! | 88.. | the slot (u16) of each segment from `tail / segment` up to the one `head` ends in |

use crate::geometry::{HEADER_AREA, MAX_SLOTS, SUPERBLOCK};

/// The magic bytes at the start of every copy.
pub(crate) const MAGIC: &[u8; 8] = b"FLOUTBOX";

/// The format this version writes and reads.
pub(crate) const FORMAT: u32 = 2;

const FIXED: usize = 88;

/// One durable state of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub generation: u64,
    pub segment: u64,
    pub next_seq: u64,
    pub seq_limit: u64,
    pub evicted_batches: u64,
    pub evicted_samples: u64,
    pub tail: u64,
    pub head: u64,
    /// The slot of each segment from `tail / segment` on.
    pub slots: Vec<u16>,
}

/// What the start of a file holds.
#[derive(Debug)]
pub(crate) enum Found {
    /// A store of this format.
    Store(Superblock),
    /// A store of another format (a newer fieldlink's).
    OtherFormat(u32),
    /// Not a store at all (another file, or damaged beyond recognition), and why.
    Damaged(String),
}

impl Superblock {
    /// The segments the slot map covers: from the one `tail` is in to the one `head` ends in
    /// (a segment `head` only starts is not covered).
    pub(crate) fn segments(segment: u64, tail: u64, head: u64) -> std::ops::Range<u64> {
        tail / segment..head.div_ceil(segment).max(tail / segment)
    }

    /// The copy's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK as usize];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        for (at, v) in [
            (16, self.generation),
            (24, self.segment),
            (32, self.next_seq),
            (40, self.seq_limit),
            (48, self.evicted_batches),
            (56, self.evicted_samples),
            (64, self.tail),
            (72, self.head),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        b[80..84].copy_from_slice(&(self.slots.len() as u32).to_le_bytes());
        for (i, slot) in self.slots.iter().enumerate() {
            b[FIXED + 2 * i..FIXED + 2 * i + 2].copy_from_slice(&slot.to_le_bytes());
        }
        let end = FIXED + 2 * self.slots.len();
        let crc = crc32fast::hash(&b[16..end]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Where this generation's copy goes: the two copies alternate.
    pub(crate) fn offset(&self) -> u64 {
        (self.generation % 2) * SUPERBLOCK
    }

    fn decode(b: &[u8]) -> Copy {
        if b.len() < SUPERBLOCK as usize || &b[0..8] != MAGIC {
            return Copy::Absent;
        }
        let format = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if format != FORMAT {
            return Copy::OtherFormat(format);
        }
        let u64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(v)
        };
        let map_len = u32::from_le_bytes([b[80], b[81], b[82], b[83]]) as usize;
        if map_len > MAX_SLOTS as usize || b[84..88] != [0; 4] {
            return Copy::Invalid;
        }
        let end = FIXED + 2 * map_len;
        if crc32fast::hash(&b[16..end]) != u32::from_le_bytes([b[12], b[13], b[14], b[15]]) {
            return Copy::Invalid;
        }
        let sb = Superblock {
            generation: u64_at(16),
            segment: u64_at(24),
            next_seq: u64_at(32),
            seq_limit: u64_at(40),
            evicted_batches: u64_at(48),
            evicted_samples: u64_at(56),
            tail: u64_at(64),
            head: u64_at(72),
            slots: b[FIXED..end]
                .chunks_exact(2)
                .map(|s| u16::from_le_bytes([s[0], s[1]]))
                .collect(),
        };
        Copy::Valid(sb)
    }

    /// Reads the store's durable state from the first [`HEADER_AREA`] bytes of a file.
    pub(crate) fn find(area: &[u8]) -> Found {
        if (area.len() as u64) < HEADER_AREA {
            return Found::Damaged(format!(
                "the file is {} bytes long, shorter than the outbox's header",
                area.len()
            ));
        }
        let copies = [
            Self::decode(&area[..SUPERBLOCK as usize]),
            Self::decode(&area[SUPERBLOCK as usize..HEADER_AREA as usize]),
        ];
        let newest = copies
            .iter()
            .filter_map(|c| match c {
                Copy::Valid(sb) => Some(sb),
                _ => None,
            })
            .max_by_key(|sb| sb.generation);
        if let Some(sb) = newest {
            return Found::Store(sb.clone());
        }
        if let Some(format) = copies.iter().find_map(|c| match c {
            Copy::OtherFormat(f) => Some(*f),
            _ => None,
        }) {
            return Found::OtherFormat(format);
        }
        if copies.iter().any(|c| matches!(c, Copy::Invalid)) {
            Found::Damaged("both copies of the outbox's header fail their checksum".to_string())
        } else {
            Found::Damaged("not an outbox file (no outbox header)".to_string())
        }
    }
}

enum Copy {
    Absent,
    OtherFormat(u32),
    Invalid,
    Valid(Superblock),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(generation: u64) -> Superblock {
        Superblock {
            generation,
            segment: 8192,
            next_seq: 12,
            seq_limit: 1036,
            evicted_batches: 3,
            evicted_samples: 30,
            tail: 8192 * 2 + 100,
            head: 8192 * 4 + 5,
            slots: vec![4, 0, 7],
        }
    }

    fn area(copies: &[&Superblock]) -> Vec<u8> {
        let mut area = vec![0u8; HEADER_AREA as usize];
        for sb in copies {
            let at = sb.offset() as usize;
            area[at..at + SUPERBLOCK as usize].copy_from_slice(&sb.encode());
        }
        area
    }

    #[test]
    fn the_newer_valid_copy_wins_and_a_torn_one_falls_back() {
        let (old, new) = (sb(6), sb(7));
        let mut both = area(&[&old, &new]);
        assert!(matches!(Superblock::find(&both), Found::Store(s) if s == new));
        // A torn write of the newer copy: the older one is the durable state.
        both[new.offset() as usize + 40] ^= 0xFF;
        assert!(matches!(Superblock::find(&both), Found::Store(s) if s == old));
        both[old.offset() as usize + 40] ^= 0xFF;
        assert!(matches!(Superblock::find(&both), Found::Damaged(_)));
    }

    #[test]
    fn another_format_and_other_files_are_told_apart() {
        let one = sb(1);
        let mut other = area(&[&one]);
        other[one.offset() as usize + 8] = 3;
        assert!(matches!(Superblock::find(&other), Found::OtherFormat(3)));
        assert!(matches!(
            Superblock::find(&vec![0u8; HEADER_AREA as usize]),
            Found::Damaged(_)
        ));
        assert!(matches!(Superblock::find(&[0u8; 100]), Found::Damaged(_)));
    }

    #[test]
    fn the_slot_map_covers_the_segments_from_tail_to_head() {
        assert_eq!(Superblock::segments(100, 250, 250), 2..3);
        assert_eq!(Superblock::segments(100, 200, 200), 2..2);
        assert_eq!(Superblock::segments(100, 150, 401), 1..5);
    }
}
