//! The wire codec on hostile payloads, as the platform's ingest receives them: JSON, a zstd
//! frame, or a packed payload. Decoding never panics and never allocates past its limits;
//! a payload that decodes re-encodes (JSON, zstd and packed) to payloads that decode to an
//! equal batch. Each input is also tried as the content of a packed payload in a sound
//! zstd frame, so that the packed layout's reader sees arbitrary bytes (random bytes are
//! rarely a zstd frame).

#![no_main]

use fieldlink_wire::codec::PACKED_MAGIC;
use fieldlink_wire::{Compression, Meta, Status, decode_batch, encode_batch, encode_batch_with};
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

    let mut packed = PACKED_MAGIC.to_vec();
    packed.extend(zstd::bulk::compress(data, 1).expect("zstd compresses any input"));
    for payload in [data, &packed] {
        if let Ok(batch) = decode_batch(payload) {
            round_trips(&batch);
        }
    }
});

/// Re-encoded in every framing, `batch` decodes to itself.
fn round_trips(batch: &fieldlink_wire::Batch) {
    let json = encode_batch(batch);
    let again = decode_batch(&json)
        .unwrap_or_else(|e| panic!("re-encoded batch does not decode: {e}\n{batch:?}"));
    assert_eq!(&again, batch);
    for compression in [
        Compression::Zstd { level: 1 },
        Compression::Packed { level: 1 },
    ] {
        let framed = encode_batch_with(batch, compression);
        let again = decode_batch(&framed).unwrap_or_else(|e| {
            panic!("{compression:?} re-encoded batch does not decode: {e}\n{batch:?}")
        });
        assert_eq!(&again, batch);
    }
}
