//! Bytes on the wire. A payload is UTF-8 JSON, or one zstd frame holding that JSON; the
//! two are told apart by the zstd magic bytes, which JSON never starts with.
//!
//! Encoding picks the framing from [`Compression`]; decoding needs no setting, it reads
//! both. A zstd frame is decompressed into at most [`MAX_DECOMPRESSED_BYTES`], so that a
//! small hostile payload (a "zip bomb") cannot make a receiver allocate without bound.

use crate::batch::Batch;
use crate::sample::{Quality, Sample, Value};
use serde_json::ser::{CompactFormatter, Formatter};
use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Read;
use std::ops::RangeInclusive;

/// The first four bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The zstd levels a sender may choose: 1 (fastest) to 19 (smallest).
pub const ZSTD_LEVELS: RangeInclusive<i32> = 1..=19;

/// The zstd level used when none is configured: zstd's own default, a good trade on
/// batches of a few thousand samples.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The most bytes a zstd-framed payload may decompress to. A batch of 100,000 samples (the
/// largest `batch_max_samples`) is about 9 MB of JSON, so this leaves a wide margin.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// How a batch is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain UTF-8 JSON.
    #[default]
    None,
    /// One zstd frame holding the JSON.
    Zstd {
        /// The compression level, within [`ZSTD_LEVELS`] (values outside are clamped).
        level: i32,
    },
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a batch in the contract's JSON shape; drop it and log the reason.
    #[error("not a valid batch: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload starts with zstd's magic but is not a valid zstd frame (truncated or
    /// corrupted); drop it and log the reason.
    #[error("not a valid zstd frame: {0}")]
    Zstd(String),
    /// Decompressed, the payload would exceed `limit` bytes: a misbehaving sender or a
    /// decompression bomb. Drop it and log the sender.
    #[error("zstd frame decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit, [`MAX_DECOMPRESSED_BYTES`].
        limit: usize,
    },
    /// No longer returned: zstd frames are decoded since the codec learnt zstd. Kept so that
    /// receivers matching on it still build; match [`DecodeError::Zstd`] instead.
    #[error("zstd-framed payloads are not supported by this build")]
    ZstdUnsupported,
}

/// Encodes a batch as the contract's JSON.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(json_capacity(batch));
    encode_batch_into(batch, &mut out);
    out
}

/// Encodes a batch as the contract's JSON, appending to `out` (reuses its allocation).
///
/// The output is exactly what serde_json makes of the types' `Serialize` impls (the golden
/// tests pin both), written directly: the keys are constants, names that need no escaping
/// (all of them, in practice) are copied as they are, and numbers are formatted by
/// serde_json's own formatter. This is the agent's hottest loop; serde's generic path spent
/// most of its time escaping the constant keys.
pub fn encode_batch_into(batch: &Batch, out: &mut Vec<u8>) {
    out.reserve(json_capacity(batch));
    out.extend_from_slice(b"{\"gateway\":");
    write_str(out, &batch.gateway);
    out.extend_from_slice(b",\"seq\":");
    write_number(out, |f, w| f.write_u64(w, batch.seq));
    out.extend_from_slice(b",\"samples\":[");
    for (i, sample) in batch.samples.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_sample(out, sample);
    }
    out.extend_from_slice(b"]}");
}

fn write_sample(out: &mut Vec<u8>, sample: &Sample) {
    out.extend_from_slice(b"{\"device\":");
    write_str(out, &sample.device);
    out.extend_from_slice(b",\"point\":");
    write_str(out, &sample.point);
    out.extend_from_slice(b",\"ts\":");
    write_number(out, |f, w| f.write_i64(w, sample.ts));
    out.extend_from_slice(b",\"value\":");
    match &sample.value {
        Value::None => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(v) => write_number(out, |f, w| f.write_i64(w, *v)),
        Value::UInt(v) => write_number(out, |f, w| f.write_u64(w, *v)),
        // As serde_json: a float that is not finite (which `Value` rules out) is null.
        Value::Float(v) if !v.is_finite() => out.extend_from_slice(b"null"),
        Value::Float(v) => write_number(out, |f, w| f.write_f64(w, *v)),
        Value::Text(v) => write_str(out, v),
    }
    match &sample.quality {
        Quality::Good => out.extend_from_slice(b",\"quality\":\"good\"}"),
        Quality::Uncertain => out.extend_from_slice(b",\"quality\":\"uncertain\"}"),
        Quality::Bad(error) => {
            out.extend_from_slice(b",\"quality\":\"bad\",\"error\":");
            write_str(out, error);
            out.push(b'}');
        }
    }
}

/// Writes `text` as a JSON string, escaped exactly as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        if let Err(e) = serde_json::to_writer(&mut *out, text) {
            unreachable!("writing a string to a Vec failed: {e}");
        }
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// True if serde_json escapes some byte of `text`: a control character, '"' or '\\' (and
/// nothing else). Eight bytes at a time, with the bit tricks of "Bit Twiddling Hacks"
/// (`hasless`, `haszero`), which are exact as a yes/no answer.
fn needs_escape(text: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let has_zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
        if control
            || has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes a number with serde_json's formatter (integers as itoa, floats shortest-exact, as
/// the golden tests pin them).
fn write_number(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>,
) {
    if let Err(e) = write(&mut CompactFormatter, out) {
        unreachable!("writing a number to a Vec failed: {e}");
    }
}

/// Encodes a batch framed as `compression` says: JSON, or one zstd frame holding it.
pub fn encode_batch_with(batch: &Batch, compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => encode_batch(batch),
        Compression::Zstd { level } => SCRATCH.with_borrow_mut(|scratch| {
            scratch.json.clear();
            encode_batch_into(batch, &mut scratch.json);
            let Scratch { json, zstd } = scratch;
            let payload = zstd.compress(json, level).unwrap_or_else(|| json.clone());
            if json.capacity() > SCRATCH_KEEP_BYTES {
                *json = Vec::new();
            }
            payload
        }),
    }
}

/// Decodes a batch from a payload: JSON, or a zstd frame holding JSON.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, DecodeError> {
    Ok(serde_json::from_slice(&payload_json(payload)?)?)
}

/// The JSON of a payload: the payload itself, or the content of its zstd frame (at most
/// [`MAX_DECOMPRESSED_BYTES`]). For receivers that read batches without [`decode_batch`].
pub fn payload_json(payload: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    if !payload.starts_with(&ZSTD_MAGIC) {
        return Ok(Cow::Borrowed(payload));
    }
    decompress(payload, MAX_DECOMPRESSED_BYTES).map(Cow::Owned)
}

/// Decompresses a zstd frame into at most `limit` bytes.
fn decompress(frame: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let invalid = |e: std::io::Error| DecodeError::Zstd(e.to_string());
    match zstd::zstd_safe::get_frame_content_size(frame) {
        // The frame states its size (our encoder always writes it): allocate exactly that;
        // zstd refuses to write past it if the header lies.
        Ok(Some(size)) => {
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= limit)
                .ok_or(DecodeError::TooLarge { limit })?;
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress(frame, size))
                .map_err(invalid)
        }
        // A streaming frame of unknown size: read it, stopping one byte past the limit.
        Ok(None) => {
            let decoder = zstd::stream::read::Decoder::with_buffer(frame).map_err(invalid)?;
            let mut out = Vec::new();
            decoder
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(invalid)?;
            if out.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            Ok(out)
        }
        Err(_) => Err(DecodeError::Zstd(
            "the frame header cannot be read".to_owned(),
        )),
    }
}

/// A first guess at a batch's JSON size: about 90 bytes per sample.
fn json_capacity(batch: &Batch) -> usize {
    64 + batch.samples.len() * 96
}

/// A thread keeps its JSON scratch buffer between batches up to this size (a batch of
/// 10,000 samples); a larger one is freed after use.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// Per-thread buffers for compressed encoding: the JSON before compression, and a zstd
/// context kept between batches (creating one costs more than compressing a small batch).
#[derive(Default)]
struct Scratch {
    json: Vec<u8>,
    zstd: ZstdContext,
}

#[derive(Default)]
struct ZstdContext {
    /// The context and the level it is set to.
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
}

impl ZstdContext {
    /// One zstd frame (with its content size in the header) holding `data`; `None` if zstd
    /// fails, which it does only when it cannot allocate.
    fn compress(&mut self, data: &[u8], level: i32) -> Option<Vec<u8>> {
        let level = level.clamp(*ZSTD_LEVELS.start(), *ZSTD_LEVELS.end());
        let compressor = match &mut self.compressor {
            Some((current, compressor)) if *current == level => compressor,
            slot => {
                *slot = None;
                &mut slot
                    .insert((level, zstd::bulk::Compressor::new(level).ok()?))
                    .1
            }
        };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
        compressor.compress_to_buffer(data, &mut out).ok()?;
        Some(out)
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}
