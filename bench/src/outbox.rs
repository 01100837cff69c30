//! The outbox alone: append-and-ack throughput with 1,000-sample batches, group-committed
//! every `flush_every` batches, as the agent's batcher and publisher use it. The CPU time is
//! split into encoding the batch (JSON, or zstd-framed JSON) and storing it (append, ack
//! and flush).

use crate::measure::{Summary, cpu_time, thread_cpu_time};
use fieldlink_outbox::{Outbox, OutboxOptions};
use fieldlink_simulator::{Signal, seed_for};
use fieldlink_wire::{Batch, Compression, Sample, encode_batch_with};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The outbox scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Batches to append and ack.
    #[arg(long, default_value_t = 2000)]
    batches: u64,
    /// Samples per batch.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Batches between durable flushes (the agent flushes every `flush_interval`).
    #[arg(long, default_value_t = 100)]
    flush_every: u64,
    /// zstd level to frame payloads with (0: plain JSON).
    #[arg(long, default_value_t = 0)]
    zstd: i32,
}

/// A realistic batch: 1,000 samples of drifting analog values, counters and booleans.
pub fn realistic_samples(count: usize, t0: i64) -> Vec<Sample> {
    let signals = [
        Signal::Sine,
        Signal::RandomWalk,
        Signal::Counter,
        Signal::Toggle,
        Signal::Ramp,
    ];
    let device: Arc<str> = "press-1".into();
    let points: Vec<Arc<str>> = (0..100)
        .map(|i| Arc::from(format!("point_{i:03}")))
        .collect();
    (0..count)
        .map(|i| {
            let point = &points[i % points.len()];
            let ts = t0 + (i / points.len()) as i64 * 1000;
            let signal = signals[i % signals.len()];
            Sample::good(
                device.clone(),
                point.clone(),
                ts,
                signal.value(seed_for(point), ts),
            )
        })
        .collect()
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let dir = tempfile::tempdir()?;
    let (outbox, _) = Outbox::open(OutboxOptions {
        path: dir.path().join("outbox.redb"),
        max_bytes: 1 << 30,
        cache_bytes: 4 << 20,
    })?;
    let samples = realistic_samples(args.samples, 1_764_201_600_000);
    let (batches, flush_every) = (args.batches, args.flush_every.max(1));
    let count = samples.len() as u32;
    let compression = match args.zstd {
        0 => Compression::None,
        level => Compression::Zstd { level },
    };
    let cpu0 = cpu_time();
    let started = Instant::now();
    let (encode_cpu, store_cpu, payload_bytes) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Duration, Duration, usize)> {
            let mut batch = Batch {
                gateway: "gw-bench".into(),
                seq: 0,
                samples,
            };
            let (mut encode_cpu, mut payload_bytes) = (Duration::ZERO, 0);
            let thread0 = thread_cpu_time();
            for i in 0..batches {
                let seq = outbox.append(count, |seq| {
                    let t = thread_cpu_time();
                    batch.seq = seq;
                    let payload = encode_batch_with(&batch, compression);
                    encode_cpu += thread_cpu_time() - t;
                    payload_bytes = payload.len();
                    payload
                })?;
                outbox.ack(seq)?;
                if (i + 1) % flush_every == 0 {
                    outbox.flush()?;
                }
            }
            outbox.flush()?;
            let store_cpu = thread_cpu_time() - thread0 - encode_cpu;
            Ok((encode_cpu, store_cpu, payload_bytes))
        })
        .await??;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    let total = (batches * args.samples as u64) as f64;
    let per_million = |d: Duration| d.as_secs_f64() / total * 1e6;
    Ok(Summary::new("outbox")
        .add("samples_per_s", total / elapsed, "")
        .add("batches_per_s", batches as f64 / elapsed, "")
        .add("cpu_s_per_million_samples", cpu / total * 1e6, "s")
        .add("encode_cpu_s_per_million", per_million(encode_cpu), "s")
        .add("store_cpu_s_per_million", per_million(store_cpu), "s")
        .add("payload", payload_bytes as f64 / 1024.0, "KiB")
        .note(match compression {
            Compression::None => "json".to_owned(),
            Compression::Zstd { level } => format!("zstd:{level}"),
            Compression::Packed { level } => format!("packed:{level}"),
        }))
}
