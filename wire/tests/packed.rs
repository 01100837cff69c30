//! The packed payload (version 2): its exact layout, payloads made by this version decoding
//! forever, every value kind round-tripping through every framing, and damaged or hostile
//! payloads refused with a typed error, never a panic.

use crate::golden::design_batch;
use fieldlink_wire::codec::{MAX_DECOMPRESSED_BYTES, PACKED_MAGIC, ZSTD_MAGIC};
use fieldlink_wire::packed::{self, MAX_SAMPLES, PackedError};
use fieldlink_wire::{
    Batch, Compression, DecodeError, Framing, Quality, Sample, Value, decode_batch, dictionary,
    encode_batch, encode_batch_with, payload_json,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const PACKED: Compression = Compression::Packed { level: 3 };

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// DESIGN.md's batch as the agent builds it: a device's samples share its name.
fn design_batch_shared() -> Batch {
    let mut batch = design_batch();
    let press_1 = batch.samples[0].device.clone();
    batch.samples[1].device = press_1;
    batch
}

/// The packed content of DESIGN.md's batch, byte for byte (the layout in
/// `wire/src/packed/mod.rs`): gateway, seq, count; devices; series and their names as
/// words; refs, ts, tags, numbers, errors.
const DESIGN_CONTENT: &str = concat!(
    "07",
    "67772d64656d6f", // gateway "gw-demo"
    "b20e",           // seq 1842
    "03",             // count
    "02",
    "07",
    "70726573732d31",
    "07",
    "70726573732d32", // devices press-1, press-2
    "03",
    "00",
    "00",
    "01", // series: devices 0, 0, 1
    "02",
    "02",
    "02", // shapes: one word each
    "02",
    "0b",
    "74656d7065726174757265",
    "09",
    "646f6f725f6f70656e", // words
    "01",
    "01",
    "02", // wrefs: new, new, words[0]
    "00",
    "00",
    "00", // refs: in order
    "80d0e0a9d866",
    "00",
    "00", // ts: 1764201600000, +0, +0
    "08",
    "01",
    "40",   // tags: decimal e=1, false, null bad
    "ae03", // numbers: 215 (21.5)
    "07",
    "74696d656f7574", // errors: "timeout"
);

/// DESIGN.md's batch packed at level 3 by the first version of the packed encoder, with
/// dictionary 61697: every later version must still decode it.
const DESIGN_PAYLOAD: &str = "9f464c0228b52ffd2201f155dd010074020767772d64656d6fb20e030232030000010180d0e0a9d8660000080140ae030774696d656f757405fcfb0b802d1188fb9787469416503efd03";

#[test]
fn the_design_batch_packs_to_the_exact_layout() {
    assert_eq!(
        hex(&packed::content(&design_batch_shared())),
        DESIGN_CONTENT
    );
}

#[test]
fn a_packed_payload_is_the_magic_then_a_zstd_frame_naming_its_dictionary() {
    let payload = encode_batch_with(&design_batch_shared(), PACKED);
    assert_eq!(payload[..4], PACKED_MAGIC);
    assert_eq!(payload[4..8], ZSTD_MAGIC);
    let dictionary = dictionary::current();
    assert_eq!(
        zstd::zstd_safe::get_dict_id_from_frame(&payload[4..]).map(|id| id.get()),
        Some(dictionary.id)
    );
    // Any zstd with the dictionary opens it; the frame states its content size.
    let content = zstd::bulk::Decompressor::with_dictionary(dictionary.bytes)
        .unwrap()
        .decompress(&payload[4..], 1 << 16)
        .unwrap();
    assert_eq!(hex(&content), DESIGN_CONTENT);
    assert_eq!(decode_batch(&payload).unwrap(), design_batch());
    assert_eq!(Framing::of(&payload), Framing::Packed);
}

#[test]
fn a_payload_of_the_first_packed_encoder_still_decodes() {
    let payload = unhex(DESIGN_PAYLOAD);
    assert_eq!(decode_batch(&payload).unwrap(), design_batch());
    // Byte for byte what this version writes, as long as zstd compresses as it did.
    assert_eq!(
        hex(&encode_batch_with(&design_batch_shared(), PACKED)),
        DESIGN_PAYLOAD
    );
}

/// A shipped dictionary never changes: frames made with it are in outboxes and on brokers.
#[test]
fn the_shipped_dictionaries_are_the_ones_frames_name() {
    let shipped: Vec<(u32, String)> = dictionary::ALL
        .iter()
        .map(|d| (d.id, hex(&Sha256::digest(d.bytes))))
        .collect();
    assert_eq!(
        shipped,
        [(
            61697,
            "39af90dad518f0813b87f946dd6315c255cff1335ebed3993c5d2a53bf9cd92b".to_owned()
        )]
    );
    for d in dictionary::ALL {
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_dict(d.bytes).map(|id| id.get()),
            Some(d.id)
        );
        assert!(dictionary::by_id(d.id).is_some());
    }
    assert!(dictionary::by_id(1).is_none());
}

#[test]
fn framings_are_told_apart_by_their_first_bytes() {
    let batch = design_batch_shared();
    assert_eq!(Framing::of(&encode_batch(&batch)), Framing::Json);
    assert_eq!(
        Framing::of(&encode_batch_with(&batch, Compression::Zstd { level: 3 })),
        Framing::Zstd
    );
    assert_eq!(
        Framing::of(&encode_batch_with(&batch, PACKED)),
        Framing::Packed
    );
    assert_eq!(Framing::of(&[0x9F, b'F', b'L', 3, 0]), Framing::Unknown(3));
    assert_eq!(Framing::of(b" {}"), Framing::Json);
    assert_eq!(Framing::of(&[0x9F, b'F']), Framing::Json);
}

/// Every value kind and quality, names with numbers, words and no tokens at all.
fn every_kind_batch() -> Batch {
    let device: Arc<str> = "line-1/cnc 7".into();
    let other: Arc<str> = "温度计-2".into();
    let values = [
        Value::None,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-32768),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
        Value::UInt(1 << 63),
        Value::Float(21.5),
        Value::Float(22.47),
        Value::Float(-0.001),
        Value::Float(-0.0),
        Value::Float(0.1 + 0.2),
        Value::Float(1e300),
        Value::Float(1e22),
        Value::Float(1e23),
        Value::Float(5e-324),
        Value::Float(f64::MAX),
        Value::Float(9_007_199_254_740_993.0),
        Value::Float(3.0),
        Value::Text(String::new()),
        Value::Text("AX-7 \"quoted\" °C 温度 \u{1}".into()),
    ];
    let names = [
        "",
        "p",
        "TT1201.PV",
        "TIC1202.SP",
        "007",
        "a0000000000000000000b",
        "1号泵2电流",
        "voltage_l1",
        "voltage_l2",
    ];
    let mut samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let point: Arc<str> = format!("{}{}", names[i % names.len()], i / names.len()).into();
            Sample::good(
                device.clone(),
                point,
                1_764_201_600_000 + i as i64,
                v.clone(),
            )
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        samples.push(Sample::good(
            other.clone(),
            (*name).into(),
            -(i as i64),
            Value::Int(1),
        ));
    }
    samples.push(Sample {
        quality: Quality::Uncertain,
        ..Sample::good(device.clone(), "u".into(), i64::MIN, Value::Float(0.5))
    });
    samples.push(Sample::bad(
        device.clone(),
        "b".into(),
        i64::MAX,
        "exception 02 illegal data address",
    ));
    samples.push(Sample {
        quality: Quality::Bad(String::new()),
        ..Sample::good(device, "b2".into(), 0, Value::Int(4))
    });
    Batch {
        gateway: "91330106MA2B1C2D3E-gw-01".into(),
        seq: u64::MAX,
        samples,
    }
}

/// What a receiver reads back from `batch` in any framing: JSON has no NaN or infinity
/// (null), and reads an unsigned integer that fits as a signed one.
fn as_received(batch: &Batch) -> Batch {
    let mut batch = batch.clone();
    for sample in &mut batch.samples {
        sample.value = match &sample.value {
            Value::Float(v) if !v.is_finite() => Value::None,
            Value::UInt(v) => Value::from_u64(*v),
            other => other.clone(),
        };
    }
    batch
}

/// Floats compared bit for bit (so -0.0 is not 0.0), the rest as `PartialEq`.
fn assert_same(got: &Batch, want: &Batch) {
    assert_eq!(got, want);
    for (g, w) in got.samples.iter().zip(&want.samples) {
        if let (Value::Float(g), Value::Float(w)) = (&g.value, &w.value) {
            assert_eq!(g.to_bits(), w.to_bits(), "{w}");
        }
    }
}

#[test]
fn every_value_kind_round_trips_in_every_framing() {
    let batch = every_kind_batch();
    for compression in [
        Compression::None,
        Compression::Zstd { level: 3 },
        Compression::Packed { level: 1 },
        PACKED,
        Compression::Packed { level: 19 },
    ] {
        let decoded = decode_batch(&encode_batch_with(&batch, compression)).unwrap();
        assert_same(&decoded, &as_received(&batch));
    }
}

#[test]
fn floats_that_are_not_finite_arrive_as_null_as_in_json() {
    let mut batch = design_batch_shared();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        batch.samples[0].value = Value::Float(v);
        for compression in [Compression::None, PACKED] {
            let decoded = decode_batch(&encode_batch_with(&batch, compression)).unwrap();
            assert_eq!(decoded.samples[0].value, Value::None, "{v} {compression:?}");
        }
    }
}

#[test]
fn a_packed_payload_reads_as_the_contracts_json() {
    let payload = encode_batch_with(&design_batch_shared(), PACKED);
    assert_eq!(
        &*payload_json(&payload).unwrap(),
        encode_batch(&design_batch()).as_slice()
    );
}

#[test]
fn equal_names_in_separate_allocations_still_decode_to_the_same_batch() {
    // The encoder tells names apart by allocation: these make a series per sample.
    let batch = Batch {
        gateway: "g".into(),
        seq: 1,
        samples: (0..300)
            .map(|i| Sample::good("d".into(), format!("p{}", i % 3).into(), i, Value::Int(i)))
            .collect(),
    };
    assert_eq!(
        decode_batch(&encode_batch_with(&batch, PACKED)).unwrap(),
        batch
    );
}

#[test]
fn an_empty_batch_round_trips() {
    let batch = Batch {
        gateway: String::new(),
        seq: 0,
        samples: Vec::new(),
    };
    assert_eq!(
        decode_batch(&encode_batch_with(&batch, PACKED)).unwrap(),
        batch
    );
}

/// A batch the agent cuts at 1 s polling: one device's 100 points read once.
fn hundred_points() -> Batch {
    let device: Arc<str> = "press-1".into();
    Batch {
        gateway: "gw-plant-a-01".into(),
        seq: 7,
        samples: (0..100)
            .map(|i| {
                let value = match i % 4 {
                    0 => Value::Float(20.0 + f64::from(i) / 100.0),
                    1 => Value::Int(i64::from(i) * 7),
                    2 => Value::Bool(i % 8 == 2),
                    _ => Value::Float(f64::from(i) * 0.1),
                };
                Sample::good(
                    device.clone(),
                    format!("point_{i:03}").into(),
                    1_764_201_600_000,
                    value,
                )
            })
            .collect(),
    }
}

#[test]
fn a_hundred_point_read_packs_to_a_few_bytes_a_sample() {
    let batch = hundred_points();
    let packed = encode_batch_with(&batch, PACKED).len();
    let zstd_json = encode_batch_with(&batch, Compression::Zstd { level: 3 }).len();
    assert!(packed * 2 < zstd_json, "{packed} against {zstd_json}");
    assert!(packed < 500, "{packed} bytes for 100 samples");
}

#[test]
fn every_cut_of_a_packed_payload_is_refused() {
    let payload = encode_batch_with(&every_kind_batch(), PACKED);
    for cut in 0..payload.len() {
        let result = decode_batch(&payload[..cut]);
        match cut {
            // Too short for the magic: read as JSON, and refused as such.
            0..=3 => assert!(matches!(result, Err(DecodeError::Json(_))), "{cut}"),
            _ => assert!(matches!(result, Err(DecodeError::Zstd(_))), "{cut}"),
        }
    }
}

#[test]
fn flipped_bits_in_a_packed_payload_never_panic() {
    let payload = encode_batch_with(&every_kind_batch(), PACKED);
    for at in 4..payload.len() {
        for bit in [0x01, 0x10, 0x80] {
            let mut damaged = payload.clone();
            damaged[at] ^= bit;
            // Decoding may fail or, rarely, read another valid batch: never a panic.
            let _ = decode_batch(&damaged);
        }
    }
}

/// A payload whose frame is sound around `content`.
fn packed_payload(content: &[u8]) -> Vec<u8> {
    let mut payload = PACKED_MAGIC.to_vec();
    payload.extend(zstd::bulk::compress(content, 3).unwrap());
    payload
}

#[test]
fn damaged_content_in_a_sound_frame_is_a_packed_error() {
    let content = packed::content(&every_kind_batch());
    // Without a dictionary is allowed: the frame says so.
    assert_eq!(
        decode_batch(&packed_payload(&content)).unwrap(),
        as_received(&every_kind_batch())
    );
    for cut in 0..content.len() {
        assert!(
            matches!(
                decode_batch(&packed_payload(&content[..cut])),
                Err(DecodeError::Packed(_))
            ),
            "cut at {cut}"
        );
    }
    let mut longer = content.clone();
    longer.push(0);
    assert!(matches!(
        decode_batch(&packed_payload(&longer)),
        Err(DecodeError::Packed(PackedError::Trailing(1)))
    ));
    for at in 0..content.len() {
        let mut damaged = content.clone();
        damaged[at] ^= 0xFF;
        let _ = decode_batch(&packed_payload(&damaged));
    }
}

/// The content of DESIGN.md's batch with its tag bytes replaced.
fn design_content_with_tags(tags: [u8; 3]) -> Vec<u8> {
    let mut content = unhex(DESIGN_CONTENT);
    let at = content.len() - 13;
    assert_eq!(content[at..at + 3], [0x08, 0x01, 0x40]);
    content[at..at + 3].copy_from_slice(&tags);
    content
}

#[test]
fn unknown_tags_and_oversized_mantissas_are_refused() {
    for tag in [0x1E, 0x1F, 0x61, 0x80] {
        let payload = packed_payload(&design_content_with_tags([tag, 0x01, 0x40]));
        assert!(
            matches!(
                decode_batch(&payload),
                Err(DecodeError::Packed(PackedError::Tag(t))) if t == tag
            ),
            "{tag:#x}"
        );
    }
    // A decimal (tag 0x07) with the mantissa 2^53, zigzag-mapped.
    let mut content = design_content_with_tags([0x07, 0x01, 0x40]);
    let numbers = content.len() - 10;
    content.splice(
        numbers..numbers + 2,
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20],
    );
    assert!(matches!(
        decode_batch(&packed_payload(&content)),
        Err(DecodeError::Packed(PackedError::Mantissa(m))) if m == 1 << 53
    ));
}

#[test]
fn a_count_the_content_cannot_hold_is_refused_before_allocating() {
    // gateway "", seq 0, count 2^20 + 1 (over the cap), then nothing.
    let over_cap = packed_payload(&[0x00, 0x00, 0x81, 0x80, 0x40]);
    assert!(matches!(
        decode_batch(&over_cap),
        Err(DecodeError::Packed(PackedError::OutOfRange {
            what: "count"
        }))
    ));
    // A count within the cap but more than the bytes that follow could hold.
    let mut short = vec![0x00, 0x00, 0xE8, 0x07];
    short.extend([0; 100]);
    assert!(matches!(
        decode_batch(&packed_payload(&short)),
        Err(DecodeError::Packed(PackedError::OutOfRange {
            what: "count"
        }))
    ));
    assert_eq!(MAX_SAMPLES, 1 << 20);
}

#[test]
fn a_word_referred_to_over_and_over_cannot_build_unbounded_names() {
    // 300,000 series, each one token: the word of 1,000 bytes, referred to again and
    // again (300 MB of names from a 1 MB content, which zstd shrinks to a few KB).
    let series = 300_000usize;
    let mut content = vec![0x00, 0x00];
    let put = |content: &mut Vec<u8>, mut v: u64| {
        while v >= 0x80 {
            content.push(v as u8 | 0x80);
            v >>= 7;
        }
        content.push(v as u8);
    };
    put(&mut content, series as u64); // count
    content.extend([0x01, 0x01, b'd']); // one device "d"
    put(&mut content, series as u64);
    content.extend(std::iter::repeat_n(0x00, series)); // sdevice
    content.extend(std::iter::repeat_n(0x02, series)); // shapes: one word
    content.push(0x01);
    put(&mut content, 1000);
    content.extend(std::iter::repeat_n(b'w', 1000));
    content.push(0x01);
    content.extend(std::iter::repeat_n(0x00, series - 1)); // the same word again
    content.extend(std::iter::repeat_n(0x00, series)); // refs
    content.extend(std::iter::repeat_n(0x00, series)); // ts
    content.extend(std::iter::repeat_n(0x00, series)); // tags: null
    let payload = packed_payload(&content);
    assert!(payload.len() < 64 * 1024, "{}", payload.len());
    assert!(matches!(
        decode_batch(&payload),
        Err(DecodeError::Packed(PackedError::OutOfRange {
            what: "point names"
        }))
    ));
    const { assert!(300 * 1000 * 1000 > packed::MAX_NAME_BYTES) };
    // Names the largest JSON payload could hold, not more.
    assert_eq!(packed::MAX_NAME_BYTES, MAX_DECOMPRESSED_BYTES);
}

#[test]
fn later_versions_and_unknown_dictionaries_are_refused_by_name() {
    assert!(matches!(
        decode_batch(&[0x9F, b'F', b'L', 3, 1, 2, 3]),
        Err(DecodeError::UnknownVersion(3))
    ));
    let content = packed::content(&design_batch_shared());
    let mut payload = PACKED_MAGIC.to_vec();
    payload.extend(patch_dict_id(
        &zstd::bulk::compress(&content, 3).unwrap(),
        4242,
    ));
    assert!(matches!(
        decode_batch(&payload),
        Err(DecodeError::UnknownDictionary(4242))
    ));
}

/// `frame` (no dictionary id) with its header saying it used dictionary `id` (two bytes).
fn patch_dict_id(frame: &[u8], id: u16) -> Vec<u8> {
    let descriptor = frame[4];
    assert_eq!(descriptor & 0x03, 0, "the frame names no dictionary");
    let mut patched = frame[..4].to_vec();
    patched.push(descriptor | 0x02);
    // The window descriptor, if any, comes before the dictionary id.
    let single_segment = descriptor & 0x20 != 0;
    let header_rest = if single_segment { 5 } else { 6 };
    patched.extend(&frame[5..header_rest]);
    patched.extend(id.to_le_bytes());
    patched.extend(&frame[header_rest..]);
    patched
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any batch decodes, in every framing, to what JSON decodes it to.
    #[test]
    fn any_batch_round_trips_in_every_framing(batch in any_batch()) {
        let want = as_received(&batch);
        for compression in [Compression::None, Compression::Zstd { level: 1 }, PACKED] {
            let decoded = decode_batch(&encode_batch_with(&batch, compression));
            prop_assert_eq!(decoded.as_ref().ok(), Some(&want), "{:?}", compression);
        }
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::from_u64),
        (1u64 << 63..).prop_map(Value::UInt),
        any::<f64>().prop_map(Value::Float),
        (-1_000_000i64..1_000_000, 0u32..6)
            .prop_map(|(m, e)| Value::Float(m as f64 / 10f64.powi(e as i32))),
        ".{0,12}".prop_map(Value::Text),
    ]
}

fn any_quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        4 => Just(Quality::Good),
        1 => Just(Quality::Uncertain),
        1 => ".{0,20}".prop_map(Quality::Bad),
    ]
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,6}[0-9]{0,4}[.a-z]{0,3}",
        "[0-9]{17,22}",
        ".{0,10}",
        "(温度|°C|[A-Z]{1,3})[0-9]{1,3}",
    ]
}

/// Batches of a few devices and points, some names shared between samples (as the agent
/// shares them) and some not, in any order.
fn any_batch() -> impl Strategy<Value = Batch> {
    let names = (
        prop::collection::vec(any_name(), 1..4),
        prop::collection::vec(any_name(), 1..12),
    );
    (names, ".{0,30}", any::<u64>()).prop_flat_map(|((devices, points), gateway, seq)| {
        let devices: Vec<Arc<str>> = devices.into_iter().map(Arc::from).collect();
        let points: Vec<Arc<str>> = points.into_iter().map(Arc::from).collect();
        let sample = (
            0..devices.len(),
            0..points.len(),
            any::<bool>(),
            any::<i64>(),
            any_value(),
            any_quality(),
        );
        prop::collection::vec(sample, 0..60).prop_map(move |samples| Batch {
            gateway: gateway.clone(),
            seq,
            samples: samples
                .into_iter()
                .map(|(d, p, shared, ts, value, quality)| Sample {
                    device: devices[d].clone(),
                    point: if shared {
                        points[p].clone()
                    } else {
                        Arc::from(&*points[p])
                    },
                    ts,
                    value,
                    quality,
                })
                .collect(),
        })
    })
}
