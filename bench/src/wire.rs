//! Bytes per sample on the wire, JSON and zstd (levels 1, 3 and 9), on the simulator's
//! realistic data: 100 points (slow analog drift, pressures, counters, booleans, ramps) read
//! once a second, cut into batches as the agent cuts them. Also the time to encode and to
//! decode a sample with each framing: the least CPU time of the encoding thread over five
//! rounds, which a busy machine disturbs far less than wall time.

use crate::measure::{Summary, thread_cpu_time};
use crate::outbox::realistic_samples;
use fieldlink_wire::{Batch, Compression, decode_batch, encode_batch_with};

/// The framings compared, with their figures' names.
const FRAMINGS: [(Compression, [&str; 3]); 4] = [
    (
        Compression::None,
        ["json_bytes_per_sample", "json_encode_ns", "json_decode_ns"],
    ),
    (
        Compression::Zstd { level: 1 },
        [
            "zstd1_bytes_per_sample",
            "zstd1_encode_ns",
            "zstd1_decode_ns",
        ],
    ),
    (
        Compression::Zstd { level: 3 },
        [
            "zstd3_bytes_per_sample",
            "zstd3_encode_ns",
            "zstd3_decode_ns",
        ],
    ),
    (
        Compression::Zstd { level: 9 },
        [
            "zstd9_bytes_per_sample",
            "zstd9_encode_ns",
            "zstd9_decode_ns",
        ],
    ),
];

/// The wire scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Batches to encode (each covers `samples / 100` seconds of the 100 points).
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Samples per batch (`[publish] batch_max_samples`).
    #[arg(long, default_value_t = 1000)]
    samples: usize,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let (batches, per_batch) = (args.batches.max(1), args.samples.max(1));
    tokio::task::spawn_blocking(move || {
        let t0 = 1_764_201_600_000;
        // Consecutive batches continue in time, as the agent's do.
        let step = (per_batch / 100).max(1) as i64 * 1000;
        let batches: Vec<Batch> = (0..batches)
            .map(|i| Batch {
                gateway: "gw-plant-a-01".into(),
                seq: 1_000_000 + i as u64,
                samples: realistic_samples(per_batch, t0 + i as i64 * step),
            })
            .collect();
        let total = (batches.len() * per_batch) as f64;
        let mut summary = Summary::new("wire");
        for (compression, [size, encode, decode]) in FRAMINGS {
            let payloads: Vec<Vec<u8>> = batches
                .iter()
                .map(|b| encode_batch_with(b, compression))
                .collect();
            let bytes: usize = payloads.iter().map(Vec::len).sum();
            let encode_ns = fastest(|| {
                for batch in &batches {
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
                .add(size, bytes as f64 / total, "B")
                .add(encode, encode_ns, "ns")
                .add(decode, decode_ns, "ns");
        }
        Ok(summary.note(format!("batches of {per_batch} samples")))
    })
    .await?
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
