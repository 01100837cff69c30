//! The whole pipeline at full rate: simulated devices → the agent (a child process:
//! collectors, batcher, outbox, publisher) → QoS 1 → the broker → the counting subscriber.
//!
//! The devices are offered far more than the pipeline can take (by default 4 devices of
//! 1,000 points every 1 ms, 4M samples/s; the config has no zero poll, and with backpressure
//! a device that cannot hand over its cycle skips ticks, so this is "as fast as the pipeline
//! takes them"). Figures are taken over a fixed window after a warm-up: samples/s delivered
//! at the subscriber, the agent's CPU-seconds per million delivered samples and its CPU use,
//! the agent's peak RSS; and where the rest of the machine's CPU went: the broker, the
//! subscriber (this process), and other processes (on a shared machine, other work that
//! competed with the run).
//!
//! With `--delete-on platform-ack` the agent keeps each batch until an ack covers it, and
//! the subscriber publishes the acks the platform would (see [`Subscriber::start_acking`]):
//! the capacity compared with `puback`, and what the acks and the resends cost per million
//! samples, in messages and bytes.

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

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
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
            devices = simulator_devices(args.devices, args.points, &args.poll),
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
    tokio::time::sleep(Duration::from_secs(args.window)).await;
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
    let bytes_per_sample = relaxed(&tally.payload_bytes) / all_samples;
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
    subscriber.stop().await;

    let summary = Summary::new("pipeline")
        .add("samples_per_s", delivered / elapsed, "")
        .add(
            "offered_samples_per_s",
            offered_rate(args.devices, args.points, &args.poll),
            "",
        )
        .add(
            "agent_cpu_s_per_million_samples",
            agent_cpu / delivered.max(1.0) * 1e6,
            "s",
        )
        .add("agent_cpu_cores", agent_cpu / elapsed, "")
        .add("agent_peak_rss", peak_rss, "MiB")
        .add("broker_cpu_cores", broker_cpu / elapsed, "")
        .add("subscriber_cpu_cores", own_cpu / elapsed, "")
        .add(
            "other_processes_cpu_cores",
            machine_busy - (agent_cpu + own_cpu + broker_cpu) / elapsed,
            "",
        )
        .add("wire_bytes_per_sample", bytes_per_sample, "B")
        .add("outbox_file_at_end", outbox_mib, "MiB")
        .note(broker.name())
        .note(format!("delete_on={}", args.delete_on.config()))
        .note(format!(
            "compression={}",
            if args.compression == "none" {
                "none".to_owned()
            } else {
                format!("{}:{}", args.compression, args.level)
            }
        ))
        .note(format!(
            "{}x{} points every {}, batches of {}",
            args.devices, args.points, args.poll, args.batch_samples
        ));
    let acking = acking
        .into_iter()
        .filter(|_| args.delete_on == DeleteOn::PlatformAck);
    Ok(acking.fold(summary, |summary, (name, value, unit)| {
        summary.add(name, value, unit)
    }))
}
