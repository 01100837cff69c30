//! The names of a packed batch: its devices, and its series, the (device, point) pairs its
//! samples refer to. The layout is in the module above; this is how the encoder builds the
//! table and writes the names, and how the decoder reads them back.
//!
//! A point name is written as tokens: runs of one to 18 ASCII digits (numbers) and the text
//! between them (words). Words go into a table once per batch and are referred to by index;
//! a number is written as the difference from the number in the same place of the previous
//! series' name. Point tables are lists of a few words combined and numbered (`TT1201.PV`,
//! `TIC1202.SP`; `line1_pump2_current`; `voltage_l1`, `voltage_l2`), so a name costs about
//! the choice of its words, which zstd then codes in a few bits, where the same names as
//! text cost several bytes each.

use super::PackedError;
use super::varint::{Reader, put_str, put_svarint, put_uvarint};
use crate::sample::Sample;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The most digits a number token has: every 18-digit number fits in an `i64`, so the
/// difference of two does too. Longer runs of digits stay in their word.
const MAX_DIGITS: usize = 18;

/// The batch's devices and series in order of first use, and the index of each; kept
/// between batches to reuse its allocations.
///
/// Names are told apart by identity, not by content: the agent hands every sample of a
/// point the same `Arc` (its configuration's), so a pointer is a cheap, exact key. A batch
/// whose equal names are separate allocations gets a series per allocation, which costs
/// bytes, never correctness: the decoder reads every entry as written.
#[derive(Default)]
pub(super) struct SeriesTable {
    /// Per device, a sample naming it.
    devices: Vec<usize>,
    /// Device indices by the address of the device name.
    device_index: HashMap<usize, u32, Fast>,
    /// Per series, its device index and a sample naming its point.
    series: Vec<(u32, usize)>,
    /// Series indices by the addresses of the device and point names.
    series_index: HashMap<(usize, usize), u32, Fast>,
    /// The series of the previous sample.
    last: Option<u32>,
    /// The name columns being written.
    shapes: Vec<u8>,
    word_refs: Vec<u8>,
    widths: Vec<u8>,
    deltas: Vec<u8>,
    /// The tokens of the previous series' name and of the one being written.
    previous: Vec<Written>,
    current: Vec<Written>,
}

/// A token as written, what the next name's token at the same position is told against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// A word, by its index in the batch's words.
    Word(u32),
    /// A number, by its value.
    Number(u64),
}

impl SeriesTable {
    pub(super) fn clear(&mut self) {
        self.devices.clear();
        self.device_index.clear();
        self.series.clear();
        self.series_index.clear();
        self.last = None;
    }

    /// The allocation held, to free it after a rare huge batch.
    pub(super) fn capacity_bytes(&self) -> usize {
        self.series.capacity() * size_of::<(u32, usize)>()
            + self.series_index.capacity() * size_of::<((usize, usize), u32)>()
            + self.word_refs.capacity()
    }

    /// The index of the series of `samples[at]`, added if new. Samples come in cycles (a
    /// device's points in the order they are read), so the series after the previous
    /// sample's is tried first, before the table is searched.
    pub(super) fn index_of(&mut self, samples: &[Sample], at: usize) -> u32 {
        let sample = &samples[at];
        let next = self.last.map_or(0, |last| last as usize + 1);
        // A batch holds at most MAX_SAMPLES samples, so indices fit in u32.
        if let Some(&(_, first)) = self.series.get(next)
            && Arc::ptr_eq(&samples[first].device, &sample.device)
            && Arc::ptr_eq(&samples[first].point, &sample.point)
        {
            self.last = Some(next as u32);
            return next as u32;
        }
        let key = (address(&sample.device), address(&sample.point));
        let index = match self.series_index.get(&key) {
            Some(&index) => index,
            None => {
                let device = *self.device_index.entry(key.0).or_insert_with(|| {
                    self.devices.push(at);
                    self.devices.len() as u32 - 1
                });
                self.series.push((device, at));
                self.series_index.insert(key, self.series.len() as u32 - 1);
                self.series.len() as u32 - 1
            }
        };
        self.last = Some(index);
        index
    }

    /// Writes the devices and the series, names and all (the layout's `devices` to
    /// `deltas`).
    pub(super) fn write(&mut self, samples: &[Sample], out: &mut Vec<u8>) {
        put_uvarint(out, self.devices.len() as u64);
        for &at in &self.devices {
            put_str(out, &samples[at].device);
        }
        put_uvarint(out, self.series.len() as u64);
        for &(device, _) in &self.series {
            put_uvarint(out, u64::from(device));
        }
        for column in [
            &mut self.shapes,
            &mut self.word_refs,
            &mut self.widths,
            &mut self.deltas,
        ] {
            column.clear();
        }
        self.previous.clear();
        let mut words: Vec<&str> = Vec::new();
        let mut word_index: HashMap<&str, u32, Fast> = HashMap::default();
        for &(_, at) in &self.series {
            let point = &*samples[at].point;
            self.current.clear();
            for (position, token) in tokens(point).enumerate() {
                let before = self.previous.get(position).copied();
                match token {
                    Token::Word(word) => {
                        let (index, reference) = match before {
                            Some(Written::Word(index)) if words[index as usize] == word => {
                                (index, 0)
                            }
                            _ => match word_index.entry(word) {
                                Entry::Occupied(index) => {
                                    (*index.get(), u64::from(*index.get()) + 2)
                                }
                                Entry::Vacant(slot) => {
                                    slot.insert(words.len() as u32);
                                    words.push(word);
                                    (words.len() as u32 - 1, 1)
                                }
                            },
                        };
                        put_uvarint(&mut self.word_refs, reference);
                        self.current.push(Written::Word(index));
                    }
                    Token::Number(digits) => {
                        // At most 18 ASCII digits: below 10^18, so differences fit in i64.
                        let value = digits
                            .bytes()
                            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
                        let base = match before {
                            Some(Written::Number(base)) => base,
                            _ => 0,
                        };
                        put_uvarint(&mut self.widths, digits.len() as u64);
                        put_svarint(&mut self.deltas, value as i64 - base as i64);
                        self.current.push(Written::Number(value));
                    }
                }
            }
            let first_is_number = matches!(self.current.first(), Some(Written::Number(_)));
            put_uvarint(
                &mut self.shapes,
                (self.current.len() as u64) << 1 | u64::from(first_is_number),
            );
            std::mem::swap(&mut self.previous, &mut self.current);
        }
        out.extend_from_slice(&self.shapes);
        put_uvarint(out, words.len() as u64);
        for word in &words {
            put_str(out, word);
        }
        out.extend_from_slice(&self.word_refs);
        out.extend_from_slice(&self.widths);
        out.extend_from_slice(&self.deltas);
    }
}

/// A series as decoded: its device's name and its point's, shared by its samples.
pub(super) type Series = (Arc<str>, Arc<str>);

/// Reads the devices and the series of a batch of `count` samples; the point names may
/// add up to `max_name_bytes`.
pub(super) fn read(
    r: &mut Reader<'_>,
    count: usize,
    max_name_bytes: usize,
) -> Result<Vec<Series>, PackedError> {
    // Every device and series is used by a sample, so neither outnumbers the samples.
    let device_count = r.count("devices", 1, count)?;
    let mut devices: Vec<Arc<str>> = Vec::with_capacity(device_count);
    for _ in 0..device_count {
        devices.push(r.str("device name")?.into());
    }
    let series_count = r.count("series", 2, count)?;
    let mut series_devices = Vec::with_capacity(series_count);
    for _ in 0..series_count {
        series_devices.push(devices[r.index(devices.len(), "series device")?].clone());
    }
    let mut shapes = Vec::with_capacity(series_count);
    let (mut word_tokens, mut number_tokens) = (0usize, 0usize);
    for _ in 0..series_count {
        let shape = r.uvarint("name shape")?;
        // Every token takes at least a byte further on.
        let tokens = usize::try_from(shape >> 1)
            .ok()
            .filter(|&t| word_tokens + number_tokens + t <= r.remaining())
            .ok_or(PackedError::OutOfRange { what: "name shape" })?;
        let first_is_number = shape & 1 == 1;
        if first_is_number && tokens == 0 {
            return Err(PackedError::OutOfRange { what: "name shape" });
        }
        // Tokens alternate; the first is a number or a word.
        let numbers = (tokens + usize::from(first_is_number)) / 2;
        number_tokens += numbers;
        word_tokens += tokens - numbers;
        shapes.push((tokens, first_is_number));
    }
    let word_count = r.count("words", 1, word_tokens)?;
    let mut words = Vec::with_capacity(word_count);
    for _ in 0..word_count {
        words.push(r.str("word")?);
    }
    let mut word_refs = Vec::with_capacity(word_tokens);
    for _ in 0..word_tokens {
        word_refs.push(r.uvarint("word reference")?);
    }
    let mut widths = Vec::with_capacity(number_tokens);
    for _ in 0..number_tokens {
        let width = r.uvarint("number width")?;
        if !(1..=MAX_DIGITS as u64).contains(&width) {
            return Err(PackedError::OutOfRange {
                what: "number width",
            });
        }
        widths.push(width as usize);
    }
    let bad_reference = PackedError::OutOfRange {
        what: "word reference",
    };
    let mut word_refs = word_refs.into_iter();
    let mut widths = widths.into_iter();
    let mut first_uses = 0..words.len();
    let (mut previous, mut current) = (Vec::new(), Vec::new());
    let mut series = Vec::with_capacity(series_count);
    let mut name = String::new();
    let mut name_bytes = 0usize;
    for (device, (tokens, first_is_number)) in series_devices.into_iter().zip(shapes) {
        name.clear();
        current.clear();
        for position in 0..tokens {
            let before = previous.get(position).copied();
            if (position % 2 == 0) == first_is_number {
                let width = widths
                    .next()
                    .ok_or(PackedError::Truncated { what: "numbers" })?;
                let base = match before {
                    Some(Written::Number(base)) => base as i64,
                    _ => 0,
                };
                let value = base
                    .checked_add(r.svarint("number delta")?)
                    .and_then(|v| u64::try_from(v).ok())
                    .filter(|&v| v < 10u64.pow(width as u32))
                    .ok_or(PackedError::OutOfRange {
                        what: "number delta",
                    })?;
                push_digits(&mut name, value, width);
                current.push(Written::Number(value));
            } else {
                let reference = word_refs
                    .next()
                    .ok_or(PackedError::Truncated { what: "words" })?;
                let index = match (reference, before) {
                    (0, Some(Written::Word(index))) => index as usize,
                    (0, _) => return Err(bad_reference),
                    (1, _) => first_uses.next().ok_or(bad_reference)?,
                    (k, _) => usize::try_from(k - 2)
                        .ok()
                        .filter(|&i| i < words.len())
                        .ok_or(bad_reference)?,
                };
                name.push_str(words[index]);
                // An index into `words`, which holds fewer than MAX_SAMPLES entries.
                current.push(Written::Word(index as u32));
            }
        }
        std::mem::swap(&mut previous, &mut current);
        name_bytes += name.len();
        if name_bytes > max_name_bytes {
            return Err(PackedError::OutOfRange {
                what: "point names",
            });
        }
        series.push((device, Arc::from(name.as_str())));
    }
    Ok(series)
}

/// Appends `value` as `width` decimal digits, zero-padded (`value` has at most `width`).
fn push_digits(name: &mut String, mut value: u64, width: usize) {
    let mut digits = [b'0'; MAX_DIGITS];
    for digit in digits[..width].iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    name.extend(digits[..width].iter().map(|&d| char::from(d)));
}

/// A piece of a point name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// Text between numbers (no run of 1 to 18 digits inside).
    Word(&'a str),
    /// A run of 1 to 18 ASCII digits.
    Number(&'a str),
}

/// The tokens of `name`, words and numbers alternating. Cut at ASCII digits only, so every
/// token is valid UTF-8 on its own.
fn tokens(name: &str) -> impl Iterator<Item = Token<'_>> {
    let bytes = name.as_bytes();
    let mut at = 0;
    let mut word_start = 0;
    let mut pending_number: Option<Token<'_>> = None;
    std::iter::from_fn(move || {
        if let Some(number) = pending_number.take() {
            return Some(number);
        }
        while at < bytes.len() {
            if !bytes[at].is_ascii_digit() {
                at += 1;
                continue;
            }
            let start = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            if at - start > MAX_DIGITS {
                continue;
            }
            let number = Token::Number(&name[start..at]);
            let word = &name[word_start..start];
            word_start = at;
            if word.is_empty() {
                return Some(number);
            }
            pending_number = Some(number);
            return Some(Token::Word(word));
        }
        if word_start < bytes.len() {
            let word = &name[word_start..];
            word_start = bytes.len();
            return Some(Token::Word(word));
        }
        None
    })
}

/// Where a name's bytes are: its identity while the batch is borrowed.
fn address(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

/// A fast hash for addresses and words: FxHash's mix (rustc's), eight bytes at a time, then
/// MurmurHash3's finaliser. Not resistant to chosen collisions, which only the agent's own
/// configuration could choose.
#[derive(Default)]
struct FastHasher(u64);

type Fast = BuildHasherDefault<FastHasher>;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let mut buf = [0; 8];
        buf[..words.remainder().len()].copy_from_slice(words.remainder());
        self.add(u64::from_le_bytes(buf));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// FxHash's mix leaves the low bits, which pick the bucket, poorly mixed (aligned
    /// addresses differ only in their middle bits); MurmurHash3's finaliser spreads them.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::{Token, tokens};

    #[test]
    fn names_split_into_alternating_words_and_numbers() {
        let split = |name| tokens(name).collect::<Vec<_>>();
        use Token::{Number as N, Word as W};
        assert_eq!(split("point_007"), [W("point_"), N("007")]);
        assert_eq!(split("TT1201.PV"), [W("TT"), N("1201"), W(".PV")]);
        assert_eq!(split("1号泵2电流"), [N("1"), W("号泵"), N("2"), W("电流")]);
        assert_eq!(split("temperature"), [W("temperature")]);
        assert_eq!(split(""), []);
        // 19 digits stay in their word.
        assert_eq!(
            split("id1234567890123456789x7"),
            [W("id1234567890123456789x"), N("7")]
        );
        assert_eq!(split("123456789012345678"), [N("123456789012345678")]);
    }
}
