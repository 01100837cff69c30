//! Backlog drain: the agent collects at a fixed live rate (by default 100,000 samples/s:
//! 10 simulated devices x 1,000 points every 100 ms); the link to the broker is cut for
//! 60 s (a TCP link cutter between agent and broker refuses and closes connections), then
//! restored. The subscriber, connected to the broker directly, logs every batch.
//!
//! Figures: the live rate before the outage; how long the agent took to reconnect after
//! the link came back (its backoff); the drain rate (backlog batches and samples, divided by
//! the time from reconnecting to the last backlog batch's arrival) and its ratio to the live
//! rate; the time to empty (from restoring the link); and the latency of live data during the
//! drain (arrival at the subscriber minus the sample's `ts`, for samples stamped after the
//! reconnect, p50 and p99). A batch is backlog if its `seq` is below that of the first batch
//! that arrived after the reconnect (live first: that one is the newest at connect) and it
//! had not arrived before the cut. Batches missing at the end (gaps in `seq`) are counted.
//! And the agent's memory: its RSS as the link comes back (the backlog at its largest) and its
//! peak RSS over the whole run, outage and drain included.

use crate::agent::{Agent, simulator_devices};
use crate::broker::{Broker, BrokerChoice};
use crate::measure::Summary;
use crate::pipeline::compression_lines;
use crate::subscriber::{Arrival, Subscriber, now_ms};
use fieldlink_testkit::LinkCutter;
use std::collections::HashSet;
use std::time::Duration;

/// The backlog scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Simulated devices.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Points per device.
    #[arg(long, default_value_t = 1000)]
    points: usize,
    /// Poll period of every device (live rate = devices x points / poll).
    #[arg(long, default_value = "100ms")]
    poll: String,
    /// Seconds of live traffic before the outage.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Seconds the broker is unreachable.
    #[arg(long, default_value_t = 60)]
    outage: u64,
    /// Give up waiting for the backlog to drain after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_drain: u64,
    /// `[publish] max_inflight`.
    #[arg(long, default_value_t = 32)]
    max_inflight: u16,
    /// `[publish] backlog_share`.
    #[arg(long, default_value_t = 0.5)]
    backlog_share: f64,
    /// `[publish] compression`: none or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// `[publish] compression_level` (with zstd).
    #[arg(long, default_value_t = 3)]
    level: i32,
    /// The broker.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Auto)]
    broker: BrokerChoice,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let broker = Broker::start(args.broker)?;
    let subscriber = Subscriber::start(broker.addr(), true).await?;
    let cutter = LinkCutter::start(broker.addr()).await;
    let compression = compression_lines(&args.compression, args.level);
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-backlog\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{link}\"\n\n\
             [publish]\nmax_inflight = {inflight}\nbacklog_share = {share}\n{compression}\n\
             [buffer]\nmax_size = \"4GiB\"\n\n[status]\nlisten = \"127.0.0.1:0\"\n{devices}",
            state = state.display(),
            link = cutter.addr(),
            inflight = args.max_inflight,
            share = args.backlog_share,
            devices = simulator_devices(args.devices, args.points, &args.poll),
        )
    })?;

    // Live traffic; the last half of the warm-up gives the live rate.
    tokio::time::sleep(Duration::from_secs(args.warmup / 2)).await;
    let (live0, t0) = (subscriber.samples(), now_ms());
    tokio::time::sleep(Duration::from_secs(args.warmup - args.warmup / 2)).await;
    let live_rate = (subscriber.samples() - live0) as f64 * 1000.0 / (now_ms() - t0) as f64;
    agent.check_running()?;

    cutter.cut();
    tokio::time::sleep(Duration::from_secs(args.outage)).await;
    agent.check_running()?;
    let rss_at_restore = agent.process.rss_mib();
    cutter.restore();
    let restored_at = now_ms();

    // Wait for the reconnect: the first batch to arrive after the restore.
    let deadline = restored_at + args.max_drain as i64 * 1000;
    let first = loop {
        let arrivals = subscriber.arrivals();
        if let Some(a) = arrivals.iter().find(|a| a.at_ms >= restored_at) {
            break *a;
        }
        anyhow::ensure!(
            now_ms() < deadline,
            "the agent did not reconnect within {} s",
            args.max_drain
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    subscriber.measure_latency_from(first.at_ms);

    // Wait until no `seq` below the first live batch's is missing.
    let drained = loop {
        let arrivals = subscriber.arrivals();
        let drain = Drain::of(&arrivals, restored_at, first.seq);
        if drain.missing == 0 || now_ms() >= deadline {
            break drain;
        }
        agent.check_running()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    subscriber.stop_latency();
    let (p50, live_samples) = subscriber.latency_percentile(50.0);
    let (p99, _) = subscriber.latency_percentile(99.0);
    let peak_rss = agent.process.peak_rss_mib();
    agent.stop().await?;
    subscriber.stop().await;
    cutter.stop().await;

    let drain_s = (drained.last_at_ms - first.at_ms).max(1) as f64 / 1000.0;
    let drain_rate = drained.samples as f64 / drain_s;
    Ok(Summary::new("backlog")
        .add("live_samples_per_s", live_rate, "")
        .add("backlog_batches", drained.batches as f64, "")
        .add("backlog_samples", drained.samples as f64, "")
        .add(
            "reconnect",
            (first.at_ms - restored_at) as f64 / 1000.0,
            "s",
        )
        .add("drain_batches_per_s", drained.batches as f64 / drain_s, "")
        .add("drain_samples_per_s", drain_rate, "")
        .add("drain_x_live", drain_rate / live_rate.max(1.0), "")
        .add(
            "time_to_empty",
            (drained.last_at_ms - restored_at) as f64 / 1000.0,
            "s",
        )
        .add("live_latency_p50", p50, "ms")
        .add("live_latency_p99", p99, "ms")
        .add("live_samples_measured", live_samples as f64, "")
        .add("missing_batches", drained.missing as f64, "")
        .add("agent_rss_at_restore", rss_at_restore, "MiB")
        .add("agent_peak_rss", peak_rss, "MiB")
        .note(broker.name())
        .note(format!(
            "{}x{} points every {}, outage {} s, max_inflight {}, backlog_share {}, compression {}",
            args.devices,
            args.points,
            args.poll,
            args.outage,
            args.max_inflight,
            args.backlog_share,
            args.compression
        )))
}

/// The backlog as seen in the subscriber's log.
struct Drain {
    /// Backlog batches received since the restore.
    batches: u64,
    /// Samples in them.
    samples: u64,
    /// When the last of them arrived.
    last_at_ms: i64,
    /// `seq`s below the first live batch's that have not arrived (at all).
    missing: u64,
}

impl Drain {
    fn of(arrivals: &[Arrival], restored_at: i64, live_seq: u64) -> Drain {
        let mut seen = HashSet::new();
        let mut drain = Drain {
            batches: 0,
            samples: 0,
            last_at_ms: restored_at,
            missing: 0,
        };
        let mut lowest = u64::MAX;
        for a in arrivals {
            lowest = lowest.min(a.seq);
            let first_time = seen.insert(a.seq);
            // What arrived before the cut was delivered live; a batch in flight at the cut
            // may arrive again after the restore, and counts as backlog only if it did not
            // arrive before.
            if first_time && a.at_ms >= restored_at && a.seq < live_seq {
                drain.batches += 1;
                drain.samples += a.samples;
                drain.last_at_ms = drain.last_at_ms.max(a.at_ms);
            }
        }
        if lowest != u64::MAX {
            drain.missing = (lowest..live_seq).filter(|s| !seen.contains(s)).count() as u64;
        }
        drain
    }
}
