//! The packed layout (payload version 2): a batch as columns, so that a small batch (one
//! device's 100 points read once) costs a few bytes a sample once zstd has squeezed it.
//! This module is the layout alone, bytes in and bytes out; the zstd frame around it and
//! the magic in front of that are the codec's ([`crate::codec`]). Parts: `names` (the
//! devices and series, the point names as tokens), `varint` (the primitives).
//!
//! Integers are LEB128 varints (`uvarint`), signed ones zigzag-mapped first (`svarint`); a
//! `str` is its length in bytes as a `uvarint`, then its UTF-8.
//!
//! ```text
//! gateway  str
//! seq      uvarint
//! count    uvarint                  the samples in the batch
//! devices  uvarint n, n × str       device names, in order of first use
//! series   uvarint m                (device, point) pairs, in order of first use
//! sdevice  m × uvarint              a series' device: its index in devices
//! shape    m × uvarint              its point name's token count × 2, + 1 if the first
//!                                   token is a number (tokens alternate: see below)
//! words    uvarint w, w × str       the word tokens, in order of first use
//! wrefs    per word token: uvarint  0: the word at the same token position of the
//!                                   previous series' name; 1: the next word of words
//!                                   not referred to yet; k ≥ 2: words[k - 2]
//! widths   per number token: uvarint  its digits, 1 to 18 (leading zeros kept)
//! deltas   per number token: svarint  its value minus the number at the same token
//!                                   position of the previous series' name (0 if that
//!                                   position holds no number or the series is the first)
//! refs     count × svarint          a sample's series index minus (the previous sample's
//!                                   index + 1); before the first sample the index is -1
//! ts       count × svarint          a sample's ts minus the previous sample's (the first:
//!                                   minus 0), wrapping in i64
//! tags     count × u8               a sample's kind (bits 0-4) and quality (bits 5-6: 0
//!                                   good, 1 uncertain, 2 bad); bit 7 is 0
//! numbers  per sample of kind int: svarint; uint: uvarint; decimal: svarint mantissa
//! floats   per sample of kind f64: 8 bytes, IEEE 754 binary64, little-endian
//! texts    per sample of kind text: str
//! errors   per bad sample: str      its error
//! ```
//!
//! A point name is a sequence of tokens, words and numbers alternating: a number is a run
//! of 1 to 18 ASCII digits written with its width, a word is the text between numbers
//! (`TT1201.PV`: `TT`, 1201 of width 4, `.PV`). Token positions count from 0 per name. How
//! a name is cut is the encoder's choice (a decoder only joins the tokens); ours cuts at
//! every run of 1 to 18 digits.
//!
//! Kinds: 0 null, 1 false, 2 true, 3 int (i64), 4 uint (above `i64::MAX`), 5 f64, 6 text,
//! and `7 + e` for `e` in 0..=22, a decimal: the float nearest to mantissa / 10^e, with
//! |mantissa| < 2^53 (both are exact in binary64, so one correctly rounded division gives
//! the very float the sender had). Nothing follows the errors.
//!
//! Why this shape: a point's name is written once per batch, as words from a table and
//! numbers that mostly count up by one (`names`), and devices of one template read in
//! one batch repeat the same name columns, which zstd sends as matches; references and
//! timestamps are small differences (a read of 100 registers: 100 zeros); a value read
//! from a scaled register or an f32 (22.47) is a small integer and a tag. Each column holds
//! one kind of byte, which is what zstd models best. Nothing refers to an earlier batch:
//! every payload decodes on its own.

mod names;
mod varint;

use crate::batch::Batch;
use crate::sample::{Quality, Sample, Value};
use names::SeriesTable;
use varint::{Reader, put_str, put_svarint, put_uvarint};

/// Why packed content could not be read. Every variant means the same to a receiver: the
/// payload is damaged or was not made by a packed encoder; drop it and log the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PackedError {
    /// The content ends inside `what`.
    #[error("cut short in {what}")]
    Truncated {
        /// The part being read.
        what: &'static str,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("bad varint in {what}")]
    Varint {
        /// The part being read.
        what: &'static str,
    },
    /// A name, text or error is not UTF-8.
    #[error("{what} is not UTF-8")]
    Utf8 {
        /// The part being read.
        what: &'static str,
    },
    /// A count or index points outside its table, or a count cannot fit in the content.
    #[error("{what} out of range")]
    OutOfRange {
        /// The part being read.
        what: &'static str,
    },
    /// A tag byte names no kind or quality of this version.
    #[error("unknown tag {0:#04x}")]
    Tag(u8),
    /// A decimal's mantissa is 2^53 or more.
    #[error("decimal mantissa {0} too large")]
    Mantissa(i64),
    /// Bytes follow the last column.
    #[error("{0} bytes after the last column")]
    Trailing(usize),
}

/// The most samples a packed batch may hold: about what the largest JSON payload a
/// receiver accepts ([`crate::codec::MAX_DECOMPRESSED_BYTES`]) can hold, so that a small
/// frame cannot make a receiver build more samples from packed content than from JSON.
pub const MAX_SAMPLES: usize = 1 << 20;

/// The most bytes the point names of a packed batch may add up to, decoded: 64 MiB. A word
/// is written once and may be referred to many times, so without a cap a small frame could
/// make a receiver build names without bound; a batch whose names exceed it would not fit
/// in a JSON payload either (receivers read at most [`crate::codec::MAX_DECOMPRESSED_BYTES`]).
pub const MAX_NAME_BYTES: usize = 64 << 20;

/// The highest decimal exponent: 10^22 is the largest power of ten exact in binary64.
const MAX_DECIMAL_EXPONENT: u8 = 22;
/// Exact powers of ten, 10^0 to 10^22.
const POW10: [f64; MAX_DECIMAL_EXPONENT as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
/// 2^53: every integer below it in magnitude is exact in binary64.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

const KIND_NULL: u8 = 0;
const KIND_FALSE: u8 = 1;
const KIND_TRUE: u8 = 2;
const KIND_INT: u8 = 3;
const KIND_UINT: u8 = 4;
const KIND_F64: u8 = 5;
const KIND_TEXT: u8 = 6;
const KIND_DECIMAL: u8 = 7;
const KIND_MASK: u8 = 0x1F;
const QUALITY_SHIFT: u8 = 5;
const QUALITY_UNCERTAIN: u8 = 1;
const QUALITY_BAD: u8 = 2;

/// The columns and the name table of a batch being encoded; kept between batches to reuse
/// their allocations.
#[derive(Default)]
pub(crate) struct Columns {
    refs: Vec<u8>,
    ts: Vec<u8>,
    tags: Vec<u8>,
    numbers: Vec<u8>,
    floats: Vec<u8>,
    texts: Vec<u8>,
    errors: Vec<u8>,
    table: SeriesTable,
}

impl Columns {
    fn all_mut(&mut self) -> [&mut Vec<u8>; 7] {
        [
            &mut self.refs,
            &mut self.ts,
            &mut self.tags,
            &mut self.numbers,
            &mut self.floats,
            &mut self.texts,
            &mut self.errors,
        ]
    }

    /// Frees what a rare huge batch made grow past `keep` bytes.
    pub(crate) fn shrink(&mut self, keep: usize) {
        for column in self.all_mut() {
            if column.capacity() > keep {
                *column = Vec::new();
            }
        }
        if self.table.capacity_bytes() > keep {
            self.table = SeriesTable::default();
        }
    }
}

/// The packed content of `batch`, before compression: what a dictionary is trained on.
pub fn content(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::new();
    encode(batch, &mut Columns::default(), &mut out);
    out
}

/// Appends the packed content of `batch` (at most [`MAX_SAMPLES`] samples) to `out`.
pub(crate) fn encode(batch: &Batch, columns: &mut Columns, out: &mut Vec<u8>) {
    for column in columns.all_mut() {
        column.clear();
    }
    columns.table.clear();
    let mut previous_ref = -1i64;
    let mut previous_ts = 0i64;
    for (at, sample) in batch.samples.iter().enumerate() {
        let index = i64::from(columns.table.index_of(&batch.samples, at));
        put_svarint(&mut columns.refs, index - (previous_ref + 1));
        previous_ref = index;
        put_svarint(&mut columns.ts, sample.ts.wrapping_sub(previous_ts));
        previous_ts = sample.ts;
        let kind = put_value(columns, &sample.value);
        let quality = match &sample.quality {
            Quality::Good => 0,
            Quality::Uncertain => QUALITY_UNCERTAIN,
            Quality::Bad(error) => {
                put_str(&mut columns.errors, error);
                QUALITY_BAD
            }
        };
        columns.tags.push(kind | quality << QUALITY_SHIFT);
    }
    put_str(out, &batch.gateway);
    put_uvarint(out, batch.seq);
    put_uvarint(out, batch.samples.len() as u64);
    columns.table.write(&batch.samples, out);
    for column in columns.all_mut() {
        out.extend_from_slice(column);
    }
}

/// Writes a value's bytes to its column; returns its kind.
fn put_value(columns: &mut Columns, value: &Value) -> u8 {
    match value {
        Value::None => KIND_NULL,
        Value::Bool(false) => KIND_FALSE,
        Value::Bool(true) => KIND_TRUE,
        Value::Int(v) => {
            put_svarint(&mut columns.numbers, *v);
            KIND_INT
        }
        Value::UInt(v) => {
            put_uvarint(&mut columns.numbers, *v);
            KIND_UINT
        }
        // As in JSON: a float that is not finite (which `Value` rules out) is null.
        Value::Float(v) if !v.is_finite() => KIND_NULL,
        Value::Float(v) => match decimal(*v) {
            Some((mantissa, exponent)) => {
                put_svarint(&mut columns.numbers, mantissa);
                KIND_DECIMAL + exponent
            }
            None => {
                columns.floats.extend_from_slice(&v.to_bits().to_le_bytes());
                KIND_F64
            }
        },
        Value::Text(v) => {
            put_str(&mut columns.texts, v);
            KIND_TEXT
        }
    }
}

/// The fewest decimals `e` and the mantissa `m` with `m / 10^e` exactly `v` (bit for bit,
/// so -0.0 has none), if there are at most 22 decimals and `m` is below 2^53.
fn decimal(v: f64) -> Option<(i64, u8)> {
    for (exponent, &power) in POW10.iter().enumerate() {
        let scaled = (v * power).round();
        if scaled.abs() >= EXACT_INTEGERS {
            return None;
        }
        // Exact: |scaled| < 2^53 is an integer.
        let mantissa = scaled as i64;
        if (mantissa as f64 / power).to_bits() == v.to_bits() {
            // `exponent` is at most 22.
            return Some((mantissa, exponent as u8));
        }
    }
    None
}

/// Decodes packed content.
pub(crate) fn decode(content: &[u8]) -> Result<Batch, PackedError> {
    let mut r = Reader::new(content);
    let gateway = r.str("gateway")?.to_owned();
    let seq = r.uvarint("seq")?;
    // Each sample takes at least three bytes (a ref, a ts and a tag): a count that cannot
    // fit is refused before anything is allocated.
    let count = r.count("count", 3, MAX_SAMPLES)?;
    let series = names::read(&mut r, count, MAX_NAME_BYTES)?;
    let mut refs = Vec::with_capacity(count);
    let mut previous_ref = -1i64;
    for _ in 0..count {
        let index = r
            .svarint("refs")?
            .checked_add(previous_ref + 1)
            .filter(|&i| (0..series.len() as i64).contains(&i))
            .ok_or(PackedError::OutOfRange { what: "refs" })?;
        refs.push(index as usize);
        previous_ref = index;
    }
    let mut stamps = Vec::with_capacity(count);
    let mut previous_ts = 0i64;
    for _ in 0..count {
        previous_ts = previous_ts.wrapping_add(r.svarint("ts")?);
        stamps.push(previous_ts);
    }
    let tags = r.take(count, "tags")?;
    let mut values = Vec::with_capacity(count);
    for &tag in tags {
        if tag >> QUALITY_SHIFT > QUALITY_BAD {
            return Err(PackedError::Tag(tag));
        }
        let kind = tag & KIND_MASK;
        values.push(match kind {
            KIND_NULL | KIND_F64 | KIND_TEXT => Value::None,
            KIND_FALSE => Value::Bool(false),
            KIND_TRUE => Value::Bool(true),
            KIND_INT => Value::Int(r.svarint("numbers")?),
            KIND_UINT => Value::from_u64(r.uvarint("numbers")?),
            _ if kind - KIND_DECIMAL <= MAX_DECIMAL_EXPONENT => {
                let mantissa = r.svarint("numbers")?;
                if mantissa.unsigned_abs() >= 1 << 53 {
                    return Err(PackedError::Mantissa(mantissa));
                }
                // Exact: |mantissa| < 2^53.
                Value::Float(mantissa as f64 / POW10[usize::from(kind - KIND_DECIMAL)])
            }
            _ => return Err(PackedError::Tag(tag)),
        });
    }
    for (value, &tag) in values.iter_mut().zip(tags) {
        if tag & KIND_MASK == KIND_F64 {
            let mut bits = [0; 8];
            bits.copy_from_slice(r.take(8, "floats")?);
            *value = Value::Float(f64::from_bits(u64::from_le_bytes(bits)));
        }
    }
    for (value, &tag) in values.iter_mut().zip(tags) {
        if tag & KIND_MASK == KIND_TEXT {
            *value = Value::Text(r.str("texts")?.to_owned());
        }
    }
    let mut samples = Vec::with_capacity(count);
    for (((index, ts), value), &tag) in refs.into_iter().zip(stamps).zip(values).zip(tags) {
        let quality = match tag >> QUALITY_SHIFT {
            0 => Quality::Good,
            QUALITY_UNCERTAIN => Quality::Uncertain,
            _ => Quality::Bad(r.str("errors")?.to_owned()),
        };
        let (device, point) = &series[index];
        samples.push(Sample {
            device: device.clone(),
            point: point.clone(),
            ts,
            value,
            quality,
        });
    }
    if r.remaining() > 0 {
        return Err(PackedError::Trailing(r.remaining()));
    }
    Ok(Batch {
        gateway,
        seq,
        samples,
    })
}
