//! zstd framing: round trips, frames from the reference `zstd` tool, and the limits that
//! keep a hostile payload from costing a receiver more than a bounded allocation.

use crate::golden::{DESIGN_JSON, design_batch};
use fieldlink_wire::codec::{DEFAULT_ZSTD_LEVEL, MAX_DECOMPRESSED_BYTES, ZSTD_MAGIC};
use fieldlink_wire::{
    Batch, Compression, DecodeError, Sample, Value, decode_batch, encode_batch, encode_batch_with,
    payload_json,
};
use std::io::Write;

/// `printf '%s' "$DESIGN_JSON" > design.json; zstd -19 design.json` (zstd 1.5.4): a frame
/// with its content size in the header.
const DESIGN_ZST_SIZED: &str = "28b52ffd645000c50400a20a201960af0e4bb3724513d6c51093035b141d0f5af83b9900008e0b5772ddde66e8b17fa74d299f3dc245ca1b39ae123611cf56687764d763b77d24bcd2191134f7ce57c2e94c289ae086c268efd59e9de9b590f284d8fedd464fcfb337a056a6f3efcc3c13c75bc87b65392158cfdc70b47789ebd91be20850cedf2b48b185cead0700c0117476de5e90ba8bfb7c71cb3b088f013003b0e4bb7e";

/// `printf '%s' "$DESIGN_JSON" | zstd -3 -c` (zstd 1.5.4): a streamed frame, whose header
/// does not state the content size.
const DESIGN_ZST_STREAMED: &str = "28b52ffd0458f50400a24a211f5049e30661a8086e63f442a620c5460c4966665b0f116efe8601273333a1060bc1f27ebc2bf5f38d5bdbe3911a28f594b34e2982b28c0b1a33c2e588b993d267380214ccc9ef537a381a8831ce810498bcebe3b7bdd6b66c6d3fdf4a6276bc299cdbc69edf837458f4c440dead624bddf11c02266f58773caf450522793e4111db9a3c110800c0519d2900f1ed05a9bbb8cf17b7bc83f0180033b0e4bb7e";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn zstd(level: i32) -> Compression {
    Compression::Zstd { level }
}

/// A batch like the agent's: 1,000 samples of 100 points.
fn big_batch() -> Batch {
    let samples = (0..1000)
        .map(|i| {
            let value = match i % 4 {
                0 => Value::Float(20.0 + f64::from(i % 100) / 100.0),
                1 => Value::Int(i64::from(i) * 7),
                2 => Value::Bool(i % 8 == 2),
                _ => Value::Text(format!("recipe {}", i % 3)),
            };
            Sample::good(
                "press-1".into(),
                format!("point_{:03}", i % 100).into(),
                1_764_201_600_000 + i64::from(i / 100) * 1000,
                value,
            )
        })
        .collect();
    Batch {
        gateway: "gw-demo".into(),
        seq: 7,
        samples,
    }
}

/// Compresses `data` as one streamed frame (no content size in the header).
fn streamed_frame(data: &[u8]) -> Vec<u8> {
    let mut encoder = ::zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn compression_none_is_the_plain_json() {
    let batch = design_batch();
    assert_eq!(
        encode_batch_with(&batch, Compression::None),
        encode_batch(&batch)
    );
    assert_eq!(Compression::default(), Compression::None);
}

#[test]
fn a_zstd_payload_is_one_frame_holding_the_exact_contract_json() {
    for level in [1, DEFAULT_ZSTD_LEVEL, 9, 19] {
        let payload = encode_batch_with(&design_batch(), zstd(level));
        assert!(payload.starts_with(&ZSTD_MAGIC), "level {level}");
        // The frame states its size, so receivers allocate exactly once.
        assert_eq!(
            ::zstd::zstd_safe::get_frame_content_size(&payload).unwrap(),
            Some(DESIGN_JSON.len() as u64)
        );
        assert_eq!(
            ::zstd::decode_all(&payload[..]).unwrap(),
            DESIGN_JSON.as_bytes(),
            "level {level}"
        );
        assert_eq!(&*payload_json(&payload).unwrap(), DESIGN_JSON.as_bytes());
        assert_eq!(decode_batch(&payload).unwrap(), design_batch());
    }
}

#[test]
fn a_large_batch_round_trips_and_shrinks() {
    let batch = big_batch();
    let json = encode_batch(&batch);
    for level in [1, 3, 9] {
        let payload = encode_batch_with(&batch, zstd(level));
        assert!(
            payload.len() * 5 < json.len(),
            "level {level}: {} of {}",
            payload.len(),
            json.len()
        );
        assert_eq!(decode_batch(&payload).unwrap(), batch);
    }
}

#[test]
fn levels_outside_the_range_are_clamped_not_refused() {
    for level in [i32::MIN, -5, 0, 20, 22, i32::MAX] {
        let payload = encode_batch_with(&design_batch(), zstd(level));
        assert_eq!(decode_batch(&payload).unwrap(), design_batch(), "{level}");
    }
}

#[test]
fn switching_levels_on_one_thread_keeps_every_payload_valid() {
    // The encoder keeps a zstd context per thread; a new level must not reuse a stale one.
    let batch = big_batch();
    let sizes: Vec<usize> = [1, 19, 1, 3]
        .into_iter()
        .map(|level| {
            let payload = encode_batch_with(&batch, zstd(level));
            assert_eq!(decode_batch(&payload).unwrap(), batch);
            payload.len()
        })
        .collect();
    assert_eq!(sizes[0], sizes[2]);
    assert!(sizes[1] < sizes[0]);
}

#[test]
fn frames_from_the_reference_zstd_tool_decode() {
    let sized = hex(DESIGN_ZST_SIZED);
    let streamed = hex(DESIGN_ZST_STREAMED);
    assert_eq!(
        ::zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(),
        None
    );
    for frame in [sized, streamed] {
        assert_eq!(&*payload_json(&frame).unwrap(), DESIGN_JSON.as_bytes());
        assert_eq!(decode_batch(&frame).unwrap(), design_batch());
    }
}

#[test]
fn json_is_passed_through_without_a_copy() {
    let json = encode_batch(&design_batch());
    assert!(matches!(
        payload_json(&json).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn a_decompression_bomb_is_refused_with_a_sized_header() {
    // 64 MiB + 1 of zeros compresses to a few KB; its header states the size.
    let bomb = ::zstd::bulk::compress(&vec![0u8; MAX_DECOMPRESSED_BYTES + 1], 1).unwrap();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    assert!(matches!(
        decode_batch(&bomb),
        Err(DecodeError::TooLarge {
            limit: MAX_DECOMPRESSED_BYTES
        })
    ));
}

#[test]
fn a_decompression_bomb_is_refused_without_a_size_in_its_header() {
    let bomb = streamed_frame(&vec![b' '; MAX_DECOMPRESSED_BYTES + 1]);
    assert!(matches!(
        payload_json(&bomb),
        Err(DecodeError::TooLarge {
            limit: MAX_DECOMPRESSED_BYTES
        })
    ));
}

#[test]
fn a_header_that_understates_the_content_is_refused() {
    // Patch the 2-byte content size of the sized reference frame (stored as size - 256)
    // down by 50 bytes: zstd must stop at the stated size, not write past the buffer.
    let mut frame = hex(DESIGN_ZST_SIZED);
    let stated = u16::from_le_bytes([frame[5], frame[6]])
        .checked_sub(50)
        .expect("the reference frame holds more than 306 bytes");
    frame[5..7].copy_from_slice(&stated.to_le_bytes());
    assert!(matches!(decode_batch(&frame), Err(DecodeError::Zstd(_))));
}

#[test]
fn damaged_frames_are_errors_not_panics() {
    let frame = encode_batch_with(&big_batch(), zstd(3));
    for cut in [4, 5, 8, frame.len() / 2, frame.len() - 1] {
        assert!(
            matches!(decode_batch(&frame[..cut]), Err(DecodeError::Zstd(_))),
            "cut at {cut}"
        );
    }
    let mut flipped = frame.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xFF;
    assert!(decode_batch(&flipped).is_err());
    let streamed = hex(DESIGN_ZST_STREAMED);
    assert!(matches!(
        decode_batch(&streamed[..streamed.len() - 10]),
        Err(DecodeError::Zstd(_))
    ));
}

#[test]
fn a_valid_frame_holding_no_batch_is_a_json_error() {
    for content in [&b"{}"[..], b"", b"not json"] {
        let frame = ::zstd::bulk::compress(content, 3).unwrap();
        assert!(
            matches!(decode_batch(&frame), Err(DecodeError::Json(_))),
            "{content:?}"
        );
    }
}
