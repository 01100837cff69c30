//! Bytes per sample on the wire at 1 s polling of 100-point devices, JSON (payload version
//! 1), zstd-framed JSON (version 1, the old compressed form) and packed (version 2), on the
//! simulator's realistic data: 10 devices of 100 points (slow sines, random walks,
//! counters, toggles and ramps, as `fieldlink-simulator` makes them), each device read once
//! a second, all points of a read stamped alike.
//!
//! Two cuts, as the agent's batcher makes them: a batch per device per second (about 100
//! samples: a gateway whose devices' reads do not fill a batch within its delay, the
//! smallest batches and the hardest to compress), and a batch per second holding all 10
//! reads (1,000 samples: the default `batch_max_samples` reached). Two sets of names:
//! the simulator's (`point_000`, which the shipped dictionary was trained on with the
//! templates'), and tag names no dictionary has seen (`TIC1203.SP`). The figure the issue
//! compares is bytes per point against Node-RED's 6.4 (bare value arrays).
//!
//! Also the time to encode and to decode a sample with each framing at 100-sample batches:
//! the least CPU time of the encoding thread over five rounds, which a busy machine
//! disturbs far less than wall time.

use crate::measure::{Summary, thread_cpu_time};
use fieldlink_simulator::{Signal, seed_for};
use fieldlink_wire::{Batch, Compression, Sample, Topics, decode_batch, encode_batch_with};
use std::sync::Arc;

/// Bytes per point Node-RED (node-red-contrib-modbus) sends at 1 s polling of 10 × 100
/// registers: the side-by-side measurement.
const NODE_RED_BYTES_PER_POINT: f64 = 6.4;

/// The framings compared, with the names of their figures: bytes per sample at a batch per
/// device, at a batch of all devices, and encode and decode time per sample.
const FRAMINGS: [(&str, [&str; 4]); 3] = [
    (
        "json",
        ["json_B", "json_all_B", "json_encode_ns", "json_decode_ns"],
    ),
    (
        "zstd",
        ["zstd_B", "zstd_all_B", "zstd_encode_ns", "zstd_decode_ns"],
    ),
    (
        "packed",
        [
            "packed_B",
            "packed_all_B",
            "packed_encode_ns",
            "packed_decode_ns",
        ],
    ),
];

/// The wire scenario's settings.
#[derive(clap::Args, Clone, Copy)]
pub struct Args {
    /// Devices, each read once a second.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Points per device.
    #[arg(long, default_value_t = 100)]
    points: usize,
    /// Seconds of readings encoded.
    #[arg(long, default_value_t = 60)]
    seconds: usize,
    /// zstd level of the zstd and packed framings (the agent's default is 3).
    #[arg(long, default_value_t = 3)]
    level: i32,
}

/// Names of points as a plant's tag list has them: an instrument code, a loop number and
/// a parameter; none of these is in the shipped dictionary's training samples.
fn tag_name(i: usize) -> String {
    const CODES: [&str; 12] = [
        "TT", "PT", "FT", "LT", "TIC", "PIC", "FIC", "LIC", "XV", "M", "AT", "ZT",
    ];
    const PARAMETERS: [&str; 6] = ["PV", "PV", "PV", "SP", "OUT", "ALM"];
    // A fixed scramble, so codes and parameters do not repeat in a pattern.
    let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    format!(
        "{}{}.{}",
        CODES[h as usize % CODES.len()],
        1201 + i,
        PARAMETERS[(h >> 8) as usize % PARAMETERS.len()]
    )
}

/// Every read of `seconds` seconds of `devices` devices, each a `Vec` of its samples.
fn reads(args: &Args, name: fn(usize) -> String) -> Vec<Vec<Sample>> {
    let t0 = 1_764_201_600_000;
    let signals = [
        Signal::Sine,
        Signal::RandomWalk,
        Signal::Counter,
        Signal::Toggle,
        Signal::Ramp,
    ];
    let devices: Vec<(Arc<str>, Vec<Arc<str>>)> = (0..args.devices)
        .map(|d| {
            let device = format!("sim-{d:02}");
            (
                device.into(),
                (0..args.points).map(|p| name(p).into()).collect(),
            )
        })
        .collect();
    (0..args.seconds)
        .flat_map(|second| {
            devices
                .iter()
                .enumerate()
                .map(move |(d, (device, points))| {
                    // Devices are read at their own moments within the second.
                    let ts = t0 + second as i64 * 1000 + d as i64 * 37;
                    points
                        .iter()
                        .enumerate()
                        .map(|(p, point)| {
                            let seed = seed_for(&format!("{device}/{point}"));
                            let value = signals[p % signals.len()].value(seed, ts);
                            Sample::good(device.clone(), point.clone(), ts, value)
                        })
                        .collect()
                })
        })
        .collect()
}

/// The batches of `reads` cut every `per_batch` reads, numbered from 1,000,000.
fn batches(reads: &[Vec<Sample>], per_batch: usize, gateway: &str) -> Vec<Batch> {
    reads
        .chunks(per_batch)
        .enumerate()
        .map(|(i, chunk)| Batch {
            gateway: gateway.to_owned(),
            seq: 1_000_000 + i as u64,
            samples: chunk.concat(),
        })
        .collect()
}

fn compression(framing: &str, level: i32) -> Compression {
    match framing {
        "zstd" => Compression::Zstd { level },
        "packed" => Compression::Packed { level },
        _ => Compression::None,
    }
}

/// Payload bytes per sample of `batches` framed as `compression`, and the bytes of the
/// MQTT PUBLISH packets around them (fixed header, topic, packet id) per sample.
fn bytes_per_sample(batches: &[Batch], compression: Compression, topic: &str) -> (f64, f64) {
    let samples: usize = batches.iter().map(|b| b.samples.len()).sum();
    let (mut payload, mut packets) = (0usize, 0usize);
    for batch in batches {
        let len = encode_batch_with(batch, compression).len();
        let remaining = 2 + topic.len() + 2 + len;
        let length_bytes = match remaining {
            0..128 => 1,
            128..16_384 => 2,
            16_384..2_097_152 => 3,
            _ => 4,
        };
        payload += len;
        packets += 1 + length_bytes + remaining;
    }
    (
        payload as f64 / samples as f64,
        packets as f64 / samples as f64,
    )
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let args = *args;
    tokio::task::spawn_blocking(move || measure(&args)).await?
}

fn measure(args: &Args) -> anyhow::Result<Summary> {
    // A gateway id as enrollment hands it out: the enterprise's credit code, then a name.
    let gateway = "91330106MA2B1C2D3E-gw-01";
    let topic = Topics::new(gateway).data;
    let simulator = reads(args, |p| format!("point_{p:03}"));
    let tags = reads(args, tag_name);
    let per_device = batches(&simulator, 1, gateway);
    let all_devices = batches(&simulator, args.devices.max(1), gateway);
    let total: usize = per_device.iter().map(|b| b.samples.len()).sum();
    let total = total.max(1) as f64;
    let mut summary = Summary::new("wire");
    let mut packed_packet = 0.0;
    for (framing, [small, large, encode, decode]) in FRAMINGS {
        let compression = compression(framing, args.level);
        let (payload, packet) = bytes_per_sample(&per_device, compression, &topic);
        if framing == "packed" {
            packed_packet = packet;
        }
        let (payload_large, _) = bytes_per_sample(&all_devices, compression, &topic);
        let payloads: Vec<Vec<u8>> = per_device
            .iter()
            .map(|b| encode_batch_with(b, compression))
            .collect();
        let encode_ns = fastest(|| {
            for batch in &per_device {
                std::hint::black_box(encode_batch_with(batch, compression));
            }
        }) * 1e9
            / total;
        let mut decoded = Ok(());
        let decode_ns = fastest(|| {
            for payload in &payloads {
                if let Err(e) = decode_batch(payload).map(std::hint::black_box) {
                    decoded = Err(e);
                }
            }
        }) * 1e9
            / total;
        decoded?;
        summary = summary
            .add(small, payload, "B")
            .add(large, payload_large, "B")
            .add(encode, encode_ns, "ns")
            .add(decode, decode_ns, "ns");
    }
    let packed = Compression::Packed { level: args.level };
    let (packed_small, _) = bytes_per_sample(&per_device, packed, &topic);
    let (tags_small, _) = bytes_per_sample(&batches(&tags, 1, gateway), packed, &topic);
    let (tags_large, _) = bytes_per_sample(
        &batches(&tags, args.devices.max(1), gateway),
        packed,
        &topic,
    );
    Ok(summary
        .add("packed_tags_B", tags_small, "B")
        .add("packed_tags_all_B", tags_large, "B")
        .add("packed_with_mqtt_B", packed_packet, "B")
        .add(
            "packed_vs_node_red",
            packed_small / NODE_RED_BYTES_PER_POINT,
            "",
        )
        .add(
            "packed_tags_vs_node_red",
            tags_small / NODE_RED_BYTES_PER_POINT,
            "",
        )
        .note(format!(
            "{} devices x {} points, 1 s polling, {} s; _B: a batch per device per second, _all_B: a batch of all devices per second; zstd level {}",
            args.devices, args.points, args.seconds, args.level
        )))
}

/// The least thread CPU time, in seconds, of five runs of `work`: other processes on a busy
/// machine only ever add to it.
fn fastest(mut work: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let started = thread_cpu_time();
            work();
            (thread_cpu_time() - started).as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
