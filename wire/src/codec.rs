//! Bytes on the wire. A payload is UTF-8 JSON, or one zstd frame holding that JSON; the
//! two are told apart by the zstd magic bytes, which JSON never starts with.

use crate::batch::Batch;

/// The first four bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a batch in the contract's JSON shape; drop it and log the reason.
    #[error("not a valid batch: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload is zstd-framed and this build cannot decompress it.
    #[error("zstd-framed payloads are not supported by this build")]
    ZstdUnsupported,
}

/// Encodes a batch as the contract's JSON.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + batch.samples.len() * 96);
    encode_batch_into(batch, &mut out);
    out
}

/// Encodes a batch as the contract's JSON, appending to `out` (reuses its allocation).
pub fn encode_batch_into(batch: &Batch, out: &mut Vec<u8>) {
    // Serialising our own types to a Vec cannot fail: every map key is a string and every
    // float is finite by construction of `Value`.
    if let Err(e) = serde_json::to_writer(&mut *out, batch) {
        unreachable!("batch serialisation failed: {e}");
    }
}

/// Decodes a batch from JSON (or reports a zstd frame this build cannot read).
pub fn decode_batch(payload: &[u8]) -> Result<Batch, DecodeError> {
    if payload.starts_with(&ZSTD_MAGIC) {
        return Err(DecodeError::ZstdUnsupported);
    }
    Ok(serde_json::from_slice(payload)?)
}
