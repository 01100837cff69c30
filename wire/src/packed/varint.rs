//! The packed layout's primitives: LEB128 varints (`uvarint`), zigzag-mapped signed ones
//! (`svarint`), length-prefixed UTF-8 (`str`), and a reader that refuses what is cut short
//! or malformed with a [`PackedError`] naming the part being read.

use super::PackedError;

/// Appends `v` as a LEB128 varint: seven bits a byte, low bits first.
pub(super) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-mapped (0, -1, 1, -2 … to 0, 1, 2, 3 …), so small magnitudes of either
/// sign take one byte.
pub(super) fn put_svarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends `text`'s length in bytes, then its bytes.
pub(super) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_uvarint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Reads packed content front to back.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(content: &'a [u8]) -> Self {
        Reader { rest: content }
    }

    /// The bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PackedError> {
        if n > self.rest.len() {
            return Err(PackedError::Truncated { what });
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    pub(super) fn uvarint(&mut self, what: &'static str) -> Result<u64, PackedError> {
        let mut v = 0u64;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7F);
            // The tenth byte holds bit 63 alone.
            if i == 9 && bits > 1 {
                return Err(PackedError::Varint { what });
            }
            v |= bits << (7 * i);
            if byte < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.rest.len() < 10 {
            PackedError::Truncated { what }
        } else {
            PackedError::Varint { what }
        })
    }

    pub(super) fn svarint(&mut self, what: &'static str) -> Result<i64, PackedError> {
        let v = self.uvarint(what)?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A `uvarint` used as an index below `len`.
    pub(super) fn index(&mut self, len: usize, what: &'static str) -> Result<usize, PackedError> {
        usize::try_from(self.uvarint(what)?)
            .ok()
            .filter(|&i| i < len)
            .ok_or(PackedError::OutOfRange { what })
    }

    /// A count of at most `max` items taking at least `min_bytes` each, refused if what is
    /// left cannot hold them (so that nothing is allocated for a count a frame cannot back).
    pub(super) fn count(
        &mut self,
        what: &'static str,
        min_bytes: usize,
        max: usize,
    ) -> Result<usize, PackedError> {
        usize::try_from(self.uvarint(what)?)
            .ok()
            .filter(|&n| n <= max && n.saturating_mul(min_bytes) <= self.rest.len())
            .ok_or(PackedError::OutOfRange { what })
    }

    pub(super) fn str(&mut self, what: &'static str) -> Result<&'a str, PackedError> {
        let len =
            usize::try_from(self.uvarint(what)?).map_err(|_| PackedError::Truncated { what })?;
        std::str::from_utf8(self.take(len, what)?).map_err(|_| PackedError::Utf8 { what })
    }
}
