//! Bytes on the wire. A payload is one of three framings, told apart by its first bytes:
//!
//! | framing | payload version | starts with | what follows |
//! |---|---|---|---|
//! | JSON | 1 | `{` (or JSON whitespace) | the batch as the contract's UTF-8 JSON |
//! | zstd | 1 | `28 B5 2F FD` (zstd's magic) | the rest of one zstd frame holding that JSON |
//! | packed | 2 | `9F 46 4C 02` ([`PACKED_MAGIC`]) | one zstd frame holding the batch in the packed layout ([`crate::packed`]), compressed with the dictionary its header names ([`crate::dictionary`]) |
//!
//! JSON never starts with zstd's magic, nor with `9F` (a byte that cannot start UTF-8).
//! `9F 46 4C` followed by another byte is a later payload version, refused by name.
//!
//! Encoding picks the framing from [`Compression`]; decoding needs no setting, it reads
//! every version. A zstd frame is decompressed into at most [`MAX_DECOMPRESSED_BYTES`], so
//! that a small hostile payload (a "zip bomb") cannot make a receiver allocate without
//! bound; packed content also caps its sample count ([`crate::packed::MAX_SAMPLES`]).

use crate::batch::Batch;
use crate::packed::{self, Columns, PackedError};
use crate::pool::Pool;
use crate::sample::{Quality, Sample, Value};
use crate::zstd_frame::{self, FrameError, WithDictionary};
use serde_json::ser::{CompactFormatter, Formatter};
use std::borrow::Cow;

pub use crate::zstd_frame::ZSTD_LEVELS;

/// The first four bytes of a zstd frame, and of a payload version 1 compressed with zstd.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The first three bytes of a payload of version 2 or later; the fourth is the version.
pub const VERSIONED_PREFIX: [u8; 3] = [0x9F, b'F', b'L'];

/// The first four bytes of a packed payload (version 2).
pub const PACKED_MAGIC: [u8; 4] = [0x9F, b'F', b'L', 2];

/// The zstd level used when none is configured: zstd's own default, a good trade on
/// batches of a few thousand samples.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The most bytes a zstd-framed payload may decompress to. A batch of 100,000 samples (the
/// largest `batch_max_samples`) is about 9 MB of JSON, so this leaves a wide margin.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// How a batch is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain UTF-8 JSON (version 1).
    #[default]
    None,
    /// One zstd frame holding the JSON (version 1).
    Zstd {
        /// The compression level, within [`ZSTD_LEVELS`] (values outside are clamped).
        level: i32,
    },
    /// The packed layout in a zstd frame with the shipped dictionary (version 2).
    Packed {
        /// The compression level, within [`ZSTD_LEVELS`] (values outside are clamped).
        level: i32,
    },
}

/// Which framing a payload has, from its first bytes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Plain JSON (or not a batch at all: decoding says).
    Json,
    /// A zstd frame holding JSON.
    Zstd,
    /// The packed layout.
    Packed,
    /// A payload version this build does not know (a newer sender).
    Unknown(u8),
}

impl Framing {
    /// The framing of `payload`.
    pub fn of(payload: &[u8]) -> Framing {
        if payload.starts_with(&ZSTD_MAGIC) {
            Framing::Zstd
        } else if payload.starts_with(&PACKED_MAGIC) {
            Framing::Packed
        } else if let Some(&[a, b, c, version]) = payload.first_chunk::<4>()
            && [a, b, c] == VERSIONED_PREFIX
        {
            Framing::Unknown(version)
        } else {
            Framing::Json
        }
    }
}

/// Why a payload could not be decoded. Every variant means: drop the payload and log the
/// reason (and the sender).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a batch in the contract's JSON shape.
    #[error("not a valid batch: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload starts with zstd's magic (or is packed) but its zstd frame is not valid
    /// (truncated or corrupted).
    #[error("not a valid zstd frame: {0}")]
    Zstd(String),
    /// Decompressed, the payload would exceed `limit` bytes: a misbehaving sender or a
    /// decompression bomb.
    #[error("zstd frame decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit, [`MAX_DECOMPRESSED_BYTES`].
        limit: usize,
    },
    /// No longer returned: zstd frames are decoded since the codec learnt zstd. Kept so that
    /// receivers matching on it still build; match [`DecodeError::Zstd`] instead.
    #[error("zstd-framed payloads are not supported by this build")]
    ZstdUnsupported,
    /// The payload is packed, its frame is valid, but its content is not a packed batch.
    #[error("not a valid packed batch: {0}")]
    Packed(#[from] PackedError),
    /// A payload version later than this build knows: upgrade the receiver.
    #[error("payload version {0} is unknown to this build (a newer sender)")]
    UnknownVersion(u8),
    /// The frame was compressed with a dictionary this build does not have (a newer
    /// sender): upgrade the receiver.
    #[error("zstd dictionary {0} is unknown to this build (a newer sender)")]
    UnknownDictionary(u32),
}

impl From<FrameError> for DecodeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Invalid(reason) => DecodeError::Zstd(reason),
            FrameError::TooLarge { limit } => DecodeError::TooLarge { limit },
            FrameError::UnknownDictionary(id) => DecodeError::UnknownDictionary(id),
        }
    }
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

/// Encodes a batch framed as `compression` says.
///
/// A batch of more than [`packed::MAX_SAMPLES`] samples, which receivers refuse packed, is
/// sent as zstd-framed JSON instead; so is any batch if zstd fails to compress (it fails
/// only when it cannot allocate), which then goes out as plain JSON.
pub fn encode_batch_with(batch: &Batch, compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => encode_batch(batch),
        Compression::Zstd { level } => zstd_json(batch, level),
        Compression::Packed { level } if batch.samples.len() <= packed::MAX_SAMPLES => SCRATCH
            .with(Scratch::default, |scratch| {
                let Scratch {
                    content,
                    columns,
                    frame,
                } = scratch;
                content.clear();
                packed::encode(batch, columns, content);
                frame.clear();
                frame.extend_from_slice(&PACKED_MAGIC);
                let payload = if zstd_frame::compress(content, level, WithDictionary::Packed, frame)
                {
                    // A copy of the exact size: the payload may wait long in the outbox.
                    frame.clone()
                } else {
                    encode_batch(batch)
                };
                scratch.trim();
                payload
            }),
        Compression::Packed { level } => zstd_json(batch, level),
    }
}

/// One zstd frame holding the batch's JSON (plain JSON if zstd fails).
fn zstd_json(batch: &Batch, level: i32) -> Vec<u8> {
    SCRATCH.with(Scratch::default, |scratch| {
        let Scratch { content, frame, .. } = scratch;
        content.clear();
        encode_batch_into(batch, content);
        frame.clear();
        let payload = if zstd_frame::compress(content, level, WithDictionary::No, frame) {
            frame.clone()
        } else {
            content.clone()
        };
        scratch.trim();
        payload
    })
}

/// Decodes a batch from a payload of any framing.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, DecodeError> {
    match Framing::of(payload) {
        Framing::Json => Ok(serde_json::from_slice(payload)?),
        Framing::Zstd => Ok(serde_json::from_slice(&zstd_frame::decompress(
            payload,
            MAX_DECOMPRESSED_BYTES,
        )?)?),
        Framing::Packed => Ok(packed::decode(&zstd_frame::decompress(
            &payload[PACKED_MAGIC.len()..],
            MAX_DECOMPRESSED_BYTES,
        )?)?),
        Framing::Unknown(version) => Err(DecodeError::UnknownVersion(version)),
    }
}

/// The JSON of a payload: the payload itself, the content of its zstd frame (at most
/// [`MAX_DECOMPRESSED_BYTES`]), or a packed batch written as the contract's JSON. For
/// receivers that read batches as JSON without [`decode_batch`].
pub fn payload_json(payload: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    match Framing::of(payload) {
        Framing::Json => Ok(Cow::Borrowed(payload)),
        Framing::Zstd => Ok(Cow::Owned(zstd_frame::decompress(
            payload,
            MAX_DECOMPRESSED_BYTES,
        )?)),
        Framing::Packed | Framing::Unknown(_) => {
            decode_batch(payload).map(|batch| Cow::Owned(encode_batch(&batch)))
        }
    }
}

/// A first guess at a batch's JSON size: about 90 bytes per sample.
fn json_capacity(batch: &Batch) -> usize {
    64 + batch.samples.len() * 96
}

/// A thread keeps its scratch buffers between batches up to this size (a JSON batch of
/// 10,000 samples); larger ones are freed after use.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// Per-thread buffers for compressed encoding: the content before compression (JSON or
/// packed), the packed layout's columns, and the compressed payload before it is copied out.
#[derive(Default)]
struct Scratch {
    content: Vec<u8>,
    columns: Columns,
    frame: Vec<u8>,
}

impl Scratch {
    /// Frees what a rare huge batch made grow.
    fn trim(&mut self) {
        for buffer in [&mut self.content, &mut self.frame] {
            if buffer.capacity() > SCRATCH_KEEP_BYTES {
                *buffer = Vec::new();
            }
        }
        self.columns.shrink(SCRATCH_KEEP_BYTES);
    }
}

/// The encoders' buffers, kept between batches.
static SCRATCH: Pool<Scratch> = Pool::new();
