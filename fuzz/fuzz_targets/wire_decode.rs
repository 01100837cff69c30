//! The wire codec on hostile payloads, as the platform's ingest receives them: JSON or a
//! zstd frame. Decoding never panics and never allocates past its limit; a payload that
//! decodes re-encodes (plain and zstd) to a payload that decodes to an equal batch.

#![no_main]

use fieldlink_wire::{Compression, Meta, Status, decode_batch, encode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The retained `status` and `meta` payloads are plain JSON.
    if let Ok(status) = serde_json::from_slice::<Status>(data) {
        let again: Status = serde_json::from_slice(&serde_json::to_vec(&status).unwrap()).unwrap();
        assert_eq!(again, status);
    }
    if let Ok(meta) = serde_json::from_slice::<Meta>(data) {
        let again: Meta = serde_json::from_slice(&serde_json::to_vec(&meta).unwrap()).unwrap();
        assert_eq!(again, meta);
    }

    let Ok(batch) = decode_batch(data) else {
        return;
    };
    let json = encode_batch(&batch);
    let again = decode_batch(&json)
        .unwrap_or_else(|e| panic!("re-encoded batch does not decode: {e}\n{batch:?}"));
    assert_eq!(again, batch);
    let framed = fieldlink_wire::encode_batch_with(&batch, Compression::Zstd { level: 1 });
    let again = decode_batch(&framed)
        .unwrap_or_else(|e| panic!("zstd re-encoded batch does not decode: {e}\n{batch:?}"));
    assert_eq!(again, batch);
});
