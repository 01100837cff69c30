//! The whole pipeline at full rate: simulated devices → the agent (a child process:
//! collectors, batcher, outbox, publisher) → QoS 1 → the broker → the counting subscriber.
//!
//! The devices are offered far more than the pipeline can take (by default 4 devices of
//! 1,000 points every 1 ms, 4M samples/s; the config has no zero poll, and with backpressure
//! a device that cannot hand over its cycle skips ticks, so this is "as fast as the pipeline
//! takes them"). Figures are taken over a fixed window after a warm-up: samples/s delivered
//! at the subscriber, the agent's CPU-seconds per million delivered samples and its CPU use,
//! the agent's RSS (the largest within the window, and the peak since start); and where the
//! rest of the machine's CPU went: the broker, the subscriber (this process), and other
//! processes (on a shared machine, other work that competed with the run).
//!
//! With `--delete-on platform-ack` the agent keeps each batch until an ack covers it, and
//! the subscriber publishes the acks the platform would (see [`Subscriber::start_acking`]):
//! the capacity compared with `puback`, and what the acks and the resends cost per million
//! samples, in messages and bytes.
//!
//! With `--load 1,2,4` one invocation runs the pipeline at each of those multiples of the
//! agent's capacity (`--capacity`, samples/s), one after the other, each with a fresh broker,
//! subscriber and agent, and reports for each load the samples/s delivered, the agent's
//! CPU-seconds per million delivered samples and its RSS (the largest within the window, and
//! the peak since start, which includes parsing the config), with the first three as ratios
//! to the first load's: whether the pipeline holds up under overload (issue 21, "No
//! collapse"). A load is offered by `--points`-point devices polled every whole millisecond
//! count: the device count and poll period that come closest to it.

use crate::agent::{Agent, offered_rate, simulator_devices};
use crate::broker::{Broker, BrokerChoice};
use crate::measure::{Summary, cpu_time};
use crate::subscriber::Subscriber;
use crate::system::MachineCpu;
use std::time::{Duration, Instant};

/// The pipeline scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Simulated devices.
    #[arg(long, default_value_t = 4)]
    devices: usize,
    /// Points per device.
    #[arg(long, default_value_t = 1000)]
    points: usize,
    /// Poll period of every device.
    #[arg(long, default_value = "1ms")]
    poll: String,
    /// `[publish] batch_max_samples`.
    #[arg(long, default_value_t = 1000)]
    batch_samples: usize,
    /// `[publish] max_inflight`.
    #[arg(long, default_value_t = 32)]
    max_inflight: u16,
    /// `[publish] compression`: none, zstd or packed.
    #[arg(long, default_value = "none")]
    compression: String,
    /// `[publish] compression_level` (with zstd).
    #[arg(long, default_value_t = 3)]
    level: i32,
    /// Seconds before the window starts.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// The broker.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Auto)]
    broker: BrokerChoice,
    /// `[publish] delete_on`: the broker's PUBACK, or the platform's ack (played by the
    /// subscriber).
    #[arg(long, value_enum, default_value_t = DeleteOn::Puback)]
    delete_on: DeleteOn,
    /// Offered loads to run in turn, as multiples of `--capacity` (e.g. `1,2,4`); each is
    /// reported with its ratios to the first. Without it, one run as `--devices`, `--points`
    /// and `--poll` say.
    #[arg(long, value_delimiter = ',')]
    load: Vec<f64>,
    /// The samples/s the agent carries, counted as 1× by `--load` (default: what `--devices`,
    /// `--points` and `--poll` offer).
    #[arg(long)]
    capacity: Option<f64>,
}

/// When the agent deletes a batch.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeleteOn {
    /// At the broker's PUBACK.
    Puback,
    /// When the platform's ack covers it.
    PlatformAck,
}

impl DeleteOn {
    /// The config value.
    pub fn config(self) -> &'static str {
        match self {
            DeleteOn::Puback => "puback",
            DeleteOn::PlatformAck => "platform_ack",
        }
    }
}

/// The `[publish]` lines for a compression setting.
pub fn compression_lines(compression: &str, level: i32) -> String {
    match compression {
        "none" => "compression = \"none\"\n".to_owned(),
        other => format!("compression = \"{other}\"\ncompression_level = {level}\n"),
    }
}

/// Runs the scenario once: at one load, or at each of `--load`.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    if args.load.is_empty() {
        let figures = run_at(args, args.devices, &args.poll).await?;
        return Ok(figures.summary(args));
    }
    let capacity = args
        .capacity
        .unwrap_or_else(|| offered_rate(args.devices, args.points, &args.poll));
    let mut runs = Vec::new();
    for &load in &args.load {
        let (devices, poll_ms) = devices_for(load * capacity, args.points, args.devices);
        let figures = run_at(args, devices, &format!("{poll_ms}ms")).await?;
        runs.push((load, devices, poll_ms, figures));
    }
    let base = runs[0].3.clone();
    let mut summary = Summary::new("pipeline").add("capacity_samples_per_s", capacity, "");
    for (load, _, _, f) in &runs {
        summary = summary
            .add(label(*load, "offered"), f.offered, "")
            .add(label(*load, "samples_per_s"), f.delivered, "")
            .add(
                label(*load, "delivered_ratio"),
                f.delivered / base.delivered.max(1.0),
                "",
            )
            .add(label(*load, "cpu_s_per_million"), f.cpu_per_million, "s")
            .add(
                label(*load, "cpu_ratio"),
                f.cpu_per_million / base.cpu_per_million.max(f64::MIN_POSITIVE),
                "",
            )
            .add(label(*load, "window_rss"), f.window_rss, "MiB")
            .add(
                label(*load, "rss_ratio"),
                f.window_rss / base.window_rss.max(f64::MIN_POSITIVE),
                "",
            )
            .add(label(*load, "peak_rss"), f.peak_rss, "MiB")
            .add(label(*load, "outbox_file_at_end"), f.outbox_mib, "MiB");
    }
    let loads: Vec<String> = runs
        .iter()
        .map(|(load, devices, poll_ms, _)| {
            format!("{load}x={devices}x{} every {poll_ms}ms", args.points)
        })
        .collect();
    Ok(summary
        .note(base.broker)
        .note(format!("compression={}", compression_note(args)))
        .note(format!("delete_on={}", args.delete_on.config()))
        .note(loads.join(" ")))
}

/// A figure's name for one load, built once per run (figure names are static: these few are
/// leaked on purpose).
fn label(load: f64, what: &str) -> &'static str {
    Box::leak(format!("{load}x_{what}").into_boxed_str())
}

/// The device count and whole-millisecond poll period whose offered rate comes closest to
/// `rate` with `points`-point devices; of equally close ones, the device count nearest
/// `preferred`.
fn devices_for(rate: f64, points: usize, preferred: usize) -> (usize, u64) {
    (1..=20u64)
        .map(|poll_ms| {
            let per_device = points as f64 * 1000.0 / poll_ms as f64;
            let devices = (rate / per_device).round().max(1.0) as usize;
            let error = (devices as f64 * per_device - rate).abs() / rate.max(1.0);
            (error, devices.abs_diff(preferred), devices, poll_ms)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map_or((preferred, 1), |(_, _, devices, poll_ms)| {
            (devices, poll_ms)
        })
}

fn compression_note(args: &Args) -> String {
    if args.compression == "none" {
        "none".to_owned()
    } else {
        format!("{}:{}", args.compression, args.level)
    }
}

/// One run's figures.
#[derive(Debug, Clone)]
struct Figures {
    delivered: f64,
    offered: f64,
    cpu_per_million: f64,
    agent_cores: f64,
    peak_rss: f64,
    window_rss: f64,
    broker_cores: f64,
    subscriber_cores: f64,
    other_cores: f64,
    bytes_per_sample: f64,
    outbox_mib: f64,
    /// With `delete_on = platform_ack`: acks and resends per million samples.
    acking: [(&'static str, f64, &'static str); 4],
    devices: usize,
    poll: String,
    broker: &'static str,
}

impl Figures {
    /// The one-load report.
    fn summary(&self, args: &Args) -> Summary {
        let summary = Summary::new("pipeline")
            .add("samples_per_s", self.delivered, "")
            .add("offered_samples_per_s", self.offered, "")
            .add("agent_cpu_s_per_million_samples", self.cpu_per_million, "s")
            .add("agent_cpu_cores", self.agent_cores, "")
            .add("agent_peak_rss", self.peak_rss, "MiB")
            .add("agent_window_rss", self.window_rss, "MiB")
            .add("broker_cpu_cores", self.broker_cores, "")
            .add("subscriber_cpu_cores", self.subscriber_cores, "")
            .add("other_processes_cpu_cores", self.other_cores, "")
            .add("wire_bytes_per_sample", self.bytes_per_sample, "B")
            .add("outbox_file_at_end", self.outbox_mib, "MiB")
            .note(self.broker)
            .note(format!("delete_on={}", args.delete_on.config()))
            .note(format!("compression={}", compression_note(args)))
            .note(format!(
                "{}x{} points every {}, batches of {}",
                self.devices, args.points, self.poll, args.batch_samples
            ));
        let acking = self
            .acking
            .into_iter()
            .filter(|_| args.delete_on == DeleteOn::PlatformAck);
        acking.fold(summary, |summary, (name, value, unit)| {
            summary.add(name, value, unit)
        })
    }
}

/// Runs the pipeline once with `devices` devices polled every `poll`.
async fn run_at(args: &Args, devices: usize, poll: &str) -> anyhow::Result<Figures> {
    let broker = Broker::start(args.broker)?;
    let subscriber = match args.delete_on {
        DeleteOn::Puback => Subscriber::start(broker.addr(), false).await?,
        DeleteOn::PlatformAck => Subscriber::start_acking(broker.addr()).await?,
    };
    let compression = compression_lines(&args.compression, args.level);
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-bench\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n\
             [publish]\nbatch_max_samples = {batch}\nmax_inflight = {inflight}\ndelete_on = \"{delete_on}\"\n{compression}\n\
             [buffer]\nmax_size = \"4GiB\"\n\n[status]\nlisten = \"127.0.0.1:0\"\n{devices}",
            state = state.display(),
            broker = broker.addr(),
            batch = args.batch_samples,
            inflight = args.max_inflight,
            delete_on = args.delete_on.config(),
            devices = simulator_devices(devices, args.points, poll),
        )
    })?;
    let state_dir = agent.state_dir();

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    agent.check_running()?;
    let broker_process = broker.process();
    let broker_cpu = || broker_process.map_or(Duration::ZERO, |p| p.cpu_time());
    let (samples0, agent_cpu0, own_cpu0, broker_cpu0, machine0) = (
        subscriber.samples(),
        agent.process.cpu_time(),
        cpu_time(),
        broker_cpu(),
        MachineCpu::now(),
    );
    let started = Instant::now();
    let window = Duration::from_secs(args.window);
    // The largest RSS within the window: the peak since start includes parsing the config.
    let mut window_rss: f64 = 0.0;
    while started.elapsed() < window {
        window_rss = window_rss.max(agent.process.rss_mib());
        tokio::time::sleep(
            Duration::from_millis(250).min(window.saturating_sub(started.elapsed())),
        )
        .await;
    }
    window_rss = window_rss.max(agent.process.rss_mib());
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = (subscriber.samples() - samples0) as f64;
    let agent_cpu = (agent.process.cpu_time() - agent_cpu0).as_secs_f64();
    let own_cpu = (cpu_time() - own_cpu0).as_secs_f64();
    let broker_cpu = (broker_cpu() - broker_cpu0).as_secs_f64();
    let machine_busy = MachineCpu::now().busy_since(&machine0) * crate::system::cpus();
    let peak_rss = agent.process.peak_rss_mib();
    let outbox_mib = crate::system::file_mib(&state_dir.join("outbox.redb"));
    agent.check_running()?;
    agent.stop().await?;
    let tally = subscriber.tally();
    let relaxed = |counter: &std::sync::atomic::AtomicU64| {
        counter.load(std::sync::atomic::Ordering::Relaxed) as f64
    };
    let all_samples = subscriber.samples().max(1) as f64;
    let per_million = |counter| relaxed(counter) / all_samples * 1e6;
    let acking = [
        ("acks_per_million_samples", per_million(&tally.acks), ""),
        (
            "ack_bytes_per_million_samples",
            per_million(&tally.ack_bytes),
            "B",
        ),
        (
            "resent_batches_per_million_samples",
            per_million(&tally.resent_batches),
            "",
        ),
        (
            "resent_bytes_per_million_samples",
            per_million(&tally.resent_bytes),
            "B",
        ),
    ];
    let bytes_per_sample = relaxed(&tally.payload_bytes) / all_samples;
    subscriber.stop().await;
    Ok(Figures {
        delivered: delivered / elapsed,
        offered: offered_rate(devices, args.points, poll),
        cpu_per_million: agent_cpu / delivered.max(1.0) * 1e6,
        agent_cores: agent_cpu / elapsed,
        peak_rss,
        window_rss,
        broker_cores: broker_cpu / elapsed,
        subscriber_cores: own_cpu / elapsed,
        other_cores: machine_busy - (agent_cpu + own_cpu + broker_cpu) / elapsed,
        bytes_per_sample,
        outbox_mib,
        acking,
        devices,
        poll: poll.to_owned(),
        broker: broker.name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_are_offered_by_whole_devices_and_milliseconds() {
        assert_eq!(devices_for(1e6, 1000, 4), (4, 4));
        assert_eq!(devices_for(4e6, 1000, 4), (4, 1));
        assert_eq!(devices_for(1.5e6, 1000, 4), (3, 2));
        assert_eq!(devices_for(6e6, 1000, 4), (6, 1));
    }
}
