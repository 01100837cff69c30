//! One frame of the log: a 64-byte header, then its payload, then padding to the next multiple
//! of 64 bytes (every frame starts on a cache line: its header is one line, its payload starts
//! on the next). A frame is either a record (one batch) or an ack (ranges of `seq` deleted).
//! Both checksums and the frame's own log position are in the header, so a frame left over
//! from an earlier lap of a reused slot, a torn write or a flipped bit is told apart from the
//! frame that belongs there.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | CRC-32 of bytes 4..64 |
//! | 4..8 | CRC-32 of the payload |
//! | 8..12 | magic `FLOG` |
//! | 12 | kind: 1 record, 2 ack |
//! | 13..16 | zero |
//! | 16..20 | payload length |
//! | 20..24 | record: its sample count (ack: zero) |
//! | 24..32 | `lsn`: the frame's position in the log |
//! | 32..40 | record: its `seq` (ack: zero) |
//! | 40..48 | record: when it was appended, ms since the Unix epoch (ack: zero) |
//! | 48..64 | zero (reserved) |
//!
//! An ack's payload is a list of inclusive ranges `(first, last)`, 16 bytes each. Every
//! integer is little-endian. The padding is not written.

/// Bytes of a frame header.
pub(crate) const HEADER: u64 = 64;

/// Frames start on multiples of this.
const ALIGN: u64 = 64;

/// The magic bytes of every frame header.
const MAGIC: &[u8; 4] = b"FLOG";

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Record,
    Ack,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub payload_crc: u32,
    pub payload_len: u32,
    pub lsn: u64,
    pub seq: u64,
    pub appended_at_ms: i64,
    pub samples: u32,
}

impl Header {
    /// A record's header.
    pub(crate) fn record(
        lsn: u64,
        seq: u64,
        samples: u32,
        appended_at_ms: i64,
        payload: &[u8],
    ) -> Self {
        Header {
            kind: Kind::Record,
            payload_crc: crc32fast::hash(payload),
            payload_len: payload.len() as u32,
            lsn,
            seq,
            appended_at_ms,
            samples,
        }
    }

    /// The whole frame's length, padding included: where the next frame starts.
    pub(crate) fn frame_len(&self) -> u64 {
        frame_len(u64::from(self.payload_len))
    }

    /// The header's bytes, both checksums filled in.
    pub(crate) fn encode(&self) -> [u8; HEADER as usize] {
        let mut b = [0u8; HEADER as usize];
        b[4..8].copy_from_slice(&self.payload_crc.to_le_bytes());
        b[8..12].copy_from_slice(MAGIC);
        b[12] = match self.kind {
            Kind::Record => 1,
            Kind::Ack => 2,
        };
        b[16..20].copy_from_slice(&self.payload_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.samples.to_le_bytes());
        b[24..32].copy_from_slice(&self.lsn.to_le_bytes());
        b[32..40].copy_from_slice(&self.seq.to_le_bytes());
        b[40..48].copy_from_slice(&self.appended_at_ms.to_le_bytes());
        let crc = crc32fast::hash(&b[4..]);
        b[0..4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the header expected at `lsn`; `None` if it is not a valid header for that
    /// position (torn, corrupted, or left from an earlier lap).
    pub(crate) fn decode(b: &[u8], lsn: u64) -> Option<Self> {
        let b: &[u8; HEADER as usize] = b.get(..HEADER as usize)?.try_into().ok()?;
        if crc32fast::hash(&b[4..]) != u32_at(b, 0)
            || &b[8..12] != MAGIC
            || b[13..16] != [0; 3]
            || b[48..64] != [0; 16]
        {
            return None;
        }
        let kind = match b[12] {
            1 => Kind::Record,
            2 => Kind::Ack,
            _ => return None,
        };
        let header = Header {
            kind,
            payload_crc: u32_at(b, 4),
            payload_len: u32_at(b, 16),
            samples: u32_at(b, 20),
            lsn: u64_at(b, 24),
            seq: u64_at(b, 32),
            appended_at_ms: u64_at(b, 40) as i64,
        };
        (header.lsn == lsn).then_some(header)
    }

    /// Whether `payload` is the one this header describes.
    pub(crate) fn payload_matches(&self, payload: &[u8]) -> bool {
        payload.len() as u64 == u64::from(self.payload_len)
            && crc32fast::hash(payload) == self.payload_crc
    }
}

/// The length of a frame with a payload of `payload_len` bytes, padding included.
pub(crate) fn frame_len(payload_len: u64) -> u64 {
    (HEADER + payload_len).next_multiple_of(ALIGN)
}

/// An ack frame for `ranges`: its header and payload.
pub(crate) fn ack(lsn: u64, ranges: &[(u64, u64)]) -> (Header, Vec<u8>) {
    let mut payload = Vec::with_capacity(ranges.len() * 16);
    for &(first, last) in ranges {
        payload.extend_from_slice(&first.to_le_bytes());
        payload.extend_from_slice(&last.to_le_bytes());
    }
    let header = Header {
        kind: Kind::Ack,
        payload_crc: crc32fast::hash(&payload),
        payload_len: payload.len() as u32,
        lsn,
        seq: 0,
        appended_at_ms: 0,
        samples: 0,
    };
    (header, payload)
}

/// The ranges of an ack frame's payload; `None` if it is not a whole number of ranges.
pub(crate) fn ack_ranges(payload: &[u8]) -> Option<Vec<(u64, u64)>> {
    if !payload.len().is_multiple_of(16) {
        return None;
    }
    Some(
        payload
            .chunks_exact(16)
            .map(|r| (u64_at(r, 0), u64_at(r, 8)))
            .collect(),
    )
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_only_at_its_own_position() {
        let h = Header::record(4096, 7, 1000, 1_764_201_600_123, b"payload");
        let b = h.encode();
        assert_eq!(Header::decode(&b, 4096), Some(h));
        assert_eq!(Header::decode(&b, 0), None, "a frame from another lap");
        let mut flipped = b;
        flipped[30] ^= 1;
        assert_eq!(Header::decode(&flipped, 4096), None);
        assert_eq!(
            h.frame_len(),
            128,
            "64 + 7 bytes, to the next multiple of 64"
        );
        assert!(h.payload_matches(b"payload"));
        assert!(!h.payload_matches(b"paylaod"));
    }

    #[test]
    fn an_ack_frame_holds_its_ranges() {
        let (h, payload) = ack(96, &[(1, 5), (9, 9)]);
        assert_eq!(h.kind, Kind::Ack);
        assert!(h.payload_matches(&payload));
        assert_eq!(ack_ranges(&payload), Some(vec![(1, 5), (9, 9)]));
        assert_eq!(ack_ranges(&payload[1..]), None);
    }
}
