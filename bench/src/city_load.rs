//! City load: N simulated gateways publish batches at a fixed total rate, QoS 1, through
//! mosquitto into K `fieldlink-platform` ingest instances sharing one subscription
//! (`$share/GROUP/fieldlink/v1/+/data`) and one PostgreSQL database. Run it with
//! `--instances 1` and `--instances 3` at a rate one instance cannot keep up with to see
//! how the ingest scales out, and with the CPU figures, what bounds it.
//!
//! Each run works on its own: a fresh database on the `--database` server (created from
//! the admin URL, dropped afterwards), a fresh mosquitto (anonymous, no persistence, the
//! in-flight window towards each ingest instance `--broker-inflight`), K
//! platform processes (the release binary next to this one; instance 0 is started first
//! and creates the schema, then registers and enrolls the gateways through the HTTP API
//! the way the bureau and the integrators do). The gateways are one MQTT connection each
//! inside the bench process, each publishing a batch of `--samples` samples (100 points
//! read at one instant) every `gateways × samples / rate` seconds, the gateways' phases
//! spread evenly over that period, after one priming batch each, stored before the clock
//! starts (so the figures are the steady state's, with every point already known). The
//! publish time of every `(gateway, seq)` is kept. The enterprises are the simulated
//! city's ([`crate::city`]), with their sizes, classes and assessments, so the run ends by
//! printing the plan's targets as `GET /api/v1/stats/program` gives them.
//! Each gateway is a machine for the platform's monitoring: its catalogue (published
//! retained at connect) gives three of its points the roles `running`, `energy_kwh` and
//! `output_count`, read from the simulator's machine signals seeded by the gateway's id.
//!
//! Figures, over the steady window (after `--warmup`, until publishing stops):
//! - `offered_samples_per_s`: samples published in the window, per second (below the
//!   asked rate if the bench itself could not keep its schedule: see `publish_lag_p99_ms`);
//! - `stored_samples_per_s`: samples of the batches the platform stored in the window
//!   (`batches.received_at`), per second: the sustained ingest rate;
//! - `delay_p50_ms`, `delay_p99_ms`: publish → `batches.received_at`, for the batches
//!   published in the window (it grows without bound when the ingest falls behind).
//!   The ingest stamps `received_at` when its writer starts the group's transaction, so
//!   the delay covers the broker and the ingest's queue, not the commit itself;
//! - `duplicates`: sample rows stored beyond one per published sample of the stored
//!   batches (must be 0), and `missing_batches`: published but never stored;
//! - `drain_s`: from the end of publishing until the last batch is stored;
//! - CPU in cores (CPU seconds / window seconds): all platform instances, PostgreSQL
//!   (the backends of the bench database and the server's own processes: writer,
//!   checkpointer, WAL writer, autovacuum; not other databases' backends), mosquitto and
//!   the bench (the gateways), and the machine's busy share, all from /proc;
//! - what the database's busy backends did, on average (sampled every 100 ms):
//!   `pg_on_cpu`, `pg_lock_wait` (waiting for another transaction's locks: instances
//!   storing batches of the same gateways), `pg_io_wait` (WAL flushes, data files).

use crate::broker::Broker;
use crate::child::{Child, sibling_binary};
use crate::database::{BenchDatabase, postgres_cpu_since, postgres_cpu_times};
use crate::measure::{Summary, cpu_time, percentile};
use crate::subscriber::now_ms;
use crate::system::MachineCpu;
use anyhow::{Context, bail, ensure};
use fieldlink_platform::IngestStats;
use fieldlink_platform::program::Program;
use fieldlink_platform::registry::TokenInput;
use fieldlink_simulator::{Signal, seed_for};
use fieldlink_testkit::PlatformClient;
use fieldlink_testkit::mosquitto::free_port;
use fieldlink_wire::{
    Batch, DeviceMeta, EnrollRequest, Meta, PointMeta, PointRole, Topics, Value, encode_batch,
};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

/// The bureau's token given to every instance.
const ADMIN_TOKEN: &str = "bench";
/// The shared-subscription group of the instances.
const SHARE_GROUP: &str = "fieldlink-bench";
/// HTTP requests and MQTT connects in flight while setting up.
const SETUP_CONCURRENCY: usize = 16;
/// How long an instance gets to answer /healthz and connect its ingest.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The drain gives up when no batch has been stored for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a publisher waits for the broker's last PUBACKs.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The city-load scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Simulated gateways, one MQTT connection each.
    #[arg(long, default_value_t = 200)]
    gateways: usize,
    /// Samples per second offered by all gateways together.
    #[arg(long, default_value_t = 30_000.0)]
    rate: f64,
    /// Samples per batch (100 points read at one instant: 100 is one reading each).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds at the start of publishing left out of the figures (the ramp to steady state).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Platform instances ingesting through one shared subscription.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// The PostgreSQL server's admin URL: each run creates a database on it and drops it
    /// after (plain TCP; `scripts/pg-test-server start DIR` prints one).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:55432/postgres")]
    database: String,
    /// mosquitto's `max_inflight_messages`: unacknowledged batches it hands each ingest
    /// instance at once, which bounds the groups the ingest stores per transaction
    /// (20 is mosquitto's default; 0 is unlimited).
    #[arg(long, default_value_t = 20)]
    broker_inflight: u32,
    /// mosquitto's `max_queued_messages` per session, beyond which it drops QoS 1 batches
    /// (the platform's README advises 1,000,000 for shared ingest; 0 is unlimited).
    #[arg(long, default_value_t = 1_000_000)]
    broker_queued: u32,
    /// Seconds to wait after publishing for the last batch to be stored.
    #[arg(long, default_value_t = 600)]
    drain_timeout: u64,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    ensure!(args.gateways > 0, "--gateways must be at least 1");
    ensure!(args.samples > 0, "--samples must be at least 1");
    ensure!(args.instances > 0, "--instances must be at least 1");
    ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be a positive number of samples per second"
    );
    ensure!(
        args.seconds > args.warmup,
        "--seconds must be longer than --warmup"
    );
    let binary = sibling_binary("fieldlink-platform")?;
    let database = BenchDatabase::create(&args.database).await?;
    let result = run_on(args, &binary, &database).await;
    let dropped = database.drop().await;
    let summary = result?;
    dropped?;
    Ok(summary)
}

async fn run_on(
    args: &Args,
    binary: &std::path::Path,
    database: &BenchDatabase,
) -> anyhow::Result<Summary> {
    let period = Duration::from_secs_f64(args.gateways as f64 * args.samples as f64 / args.rate);
    ensure!(
        period >= Duration::from_millis(1),
        "--rate asks for more than one batch per millisecond per gateway: raise --gateways or --samples"
    );
    let broker = Broker::mosquitto(args.broker_inflight, args.broker_queued)?;
    let db = database.connect().await?;

    // Instance 0 creates the schema; the others start once it is there.
    let mut instances = vec![Instance::start(binary, 0, &database.url, broker.addr())?];
    instances[0].wait_ready().await?;
    for index in 1..args.instances {
        instances.push(Instance::start(
            binary,
            index,
            &database.url,
            broker.addr(),
        )?);
    }
    for instance in &mut instances[1..] {
        instance.wait_ready().await?;
    }

    let gateways = enroll(&instances[0].client, args.gateways).await?;
    let ids: Vec<String> = gateways.iter().map(|(id, _)| id.clone()).collect();
    let template = crate::outbox::realistic_samples(args.samples, 0);
    let publishers = connect(broker.addr(), gateways, &template).await?;

    // Priming: one batch from every gateway, stored before the clock starts, so that the
    // figures are the steady state's (points known), not the first contact's.
    let mut tasks = JoinSet::new();
    for (index, publisher) in publishers.into_iter().enumerate() {
        tasks.spawn(async move { (index, publisher.prime().await) });
    }
    let mut primed: Vec<Option<Publisher>> = (0..ids.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, publisher) = joined?;
        primed[index] = Some(publisher?);
    }
    let publishers: Vec<Publisher> = primed.into_iter().flatten().collect();
    let deadline = Instant::now() + STALL_TIMEOUT;
    let progress = wait_stored(&db, &mut instances, ids.len() as u64, deadline).await?;
    ensure!(
        progress.stored == ids.len() as u64,
        "only {} of the {} priming batches were stored within {STALL_TIMEOUT:?}",
        progress.stored,
        ids.len()
    );

    // The schedule: every gateway publishes every `period`, phases spread over it.
    let lead = Duration::from_millis(500);
    let start = Instant::now() + lead;
    let start_ms = now_ms() + lead.as_millis() as i64;
    let seconds = Duration::from_secs(args.seconds);
    let warmup = Duration::from_secs(args.warmup);
    let n = publishers.len();
    let mut tasks = JoinSet::new();
    for (index, publisher) in publishers.into_iter().enumerate() {
        let schedule = Schedule {
            first: start + period.mul_f64(index as f64 / n as f64),
            period,
            end: start + seconds,
        };
        tasks.spawn(async move { (index, publisher.run(schedule).await) });
    }

    sleep_until(start + warmup).await;
    let before = CpuReading::take(&instances, &broker, &db, &database.name).await?;
    let waits = tokio::spawn(Waits::sample(
        database.connect().await?,
        database.name.clone(),
        start + seconds,
    ));
    sleep_until(start + seconds).await;
    let after = CpuReading::take(&instances, &broker, &db, &database.name).await?;
    let waits = waits.await??;
    let mut published: Vec<Vec<i64>> = vec![Vec::new(); n];
    let mut lags = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined?;
        let log = result?;
        published[index] = log.published_ms;
        lags.extend(log.lags_ms);
    }
    for instance in &mut instances {
        instance.child.check_running()?;
    }

    // Wait for the last batch, bounded: no progress for a minute, or the drain timeout.
    let published_batches: u64 = published.iter().map(|p| p.len() as u64).sum();
    let publish_end = Instant::now();
    let deadline = publish_end + Duration::from_secs(args.drain_timeout);
    let progress = wait_stored(&db, &mut instances, published_batches, deadline).await?;
    let drain_s = progress
        .last_progress
        .saturating_duration_since(publish_end)
        .as_secs_f64();

    let stored = Stored::read(&db, &ids, &published, args.samples).await?;
    let program: Program = serde_json::from_value(
        instances[0]
            .client
            .get_json("/api/v1/stats/program")
            .await?,
    )?;
    println!("program figures of the simulated city:");
    crate::program::print_targets(&program);
    // What the monitoring made of the machines' role points (a check, not a figure).
    let monitored = db
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(running_ms), 0)::int8,
               COALESCE(SUM(observed_ms), 0)::int8 FROM monitoring_machine_days",
            &[],
        )
        .await?;
    let (machine_days, running_ms, observed_ms): (i64, i64, i64) =
        (monitored.get(0), monitored.get(1), monitored.get(2));
    let mut instance_stats = Vec::new();
    for instance in &instances {
        instance_stats.push(instance.client.ingest_stats().await?.counters);
    }
    for instance in &mut instances {
        instance.child.check_running()?;
    }
    let mut stop_failures = Vec::new();
    for (index, instance) in instances.into_iter().enumerate() {
        if let Err(e) = instance.child.stop().await {
            eprintln!("{e:#}");
            stop_failures.push(index);
        }
    }
    drop(db);

    // Figures over the steady window.
    let window_ms = (
        start_ms + args.warmup as i64 * 1000,
        start_ms + args.seconds as i64 * 1000,
    );
    let in_window = |ms: i64| ms >= window_ms.0 && ms < window_ms.1;
    let window_s = (args.seconds - args.warmup) as f64;
    let samples = args.samples as f64;
    let offered = published
        .iter()
        .flatten()
        .filter(|&&ms| in_window(ms))
        .count() as f64
        * samples
        / window_s;
    let stored_rate =
        stored.received.iter().filter(|&&ms| in_window(ms)).count() as f64 * samples / window_s;
    let mut delays: Vec<f64> = stored
        .delays
        .iter()
        .filter(|(published_ms, _)| in_window(*published_ms))
        .map(|&(_, delay)| delay as f64)
        .collect();
    let delay_p50 = percentile(&mut delays, 50.0);
    let delay_p99 = percentile(&mut delays, 99.0);
    let cpu = after.since(&before);

    let counter = |count: Counter| -> u64 { instance_stats.iter().map(count).sum() };
    let all_stored = counter(|s| s.batches_stored).max(1) as f64;
    let shares: Vec<String> = instance_stats
        .iter()
        .map(|s| format!("{:.0}", s.batches_stored as f64 / all_stored * 100.0))
        .collect();
    let mut summary = Summary::new("city-load")
        .add("offered_samples_per_s", offered, "")
        .add("stored_samples_per_s", stored_rate, "")
        .add("delay_p50_ms", delay_p50, "ms")
        .add("delay_p99_ms", delay_p99, "ms")
        .add("duplicates", stored.duplicate_rows as f64, "")
        .add("missing_batches", stored.missing_batches as f64, "")
        .add("drain_s", drain_s, "s")
        .add("platform_cpu", cpu.platform, "cores")
        .add("postgres_cpu", cpu.postgres, "cores")
        .add("mosquitto_cpu", cpu.mosquitto, "cores")
        .add("bench_cpu", cpu.bench, "cores")
        .add("machine_busy", cpu.machine_busy * 100.0, "%")
        .add("pg_on_cpu", waits.on_cpu(), "backends")
        .add("pg_lock_wait", waits.lock(), "backends")
        .add("pg_io_wait", waits.io(), "backends")
        .add("publish_lag_p99_ms", percentile(&mut lags, 99.0), "ms")
        .note(format!("instances={}", args.instances))
        .note(format!(
            "{} gateways x {} samples every {} ms",
            args.gateways,
            args.samples,
            period.as_millis()
        ))
        .note(format!(
            "mosquitto max_inflight_messages={}",
            args.broker_inflight
        ))
        .note(format!("window={window_s:.0} s"))
        .note(format!("shares={}%", shares.join("/")))
        .note(format!(
            "monitoring: {machine_days} machine-days, running {:.0} % of {:.0} s observed",
            running_ms as f64 * 100.0 / observed_ms.max(1) as f64,
            observed_ms as f64 / 1000.0
        ));
    let counters: [(&str, Counter); 7] = [
        ("duplicates", |s| s.duplicates),
        ("store_errors", |s| s.store_errors),
        ("unknown_gateway", |s| s.unknown_gateway),
        ("undecodable", |s| s.undecodable),
        ("gateway_mismatch", |s| s.gateway_mismatch),
        ("gaps", |s| s.gaps),
        ("late_batches", |s| s.late_batches),
    ];
    for (name, count) in counters {
        let value = counter(count);
        if value > 0 {
            summary = summary.note(format!("platform {name}={value}"));
        }
    }
    if stored.gaps_left > 0 {
        summary = summary.note(format!("{} gaps left in the gaps table", stored.gaps_left));
    }
    if stored.unexpected > 0 {
        summary = summary.note(format!(
            "{} stored batches were never published",
            stored.unexpected
        ));
    }
    // Batches an instance received and neither stored nor rejected: an ingest that
    // stopped storing (the run then also shows missing batches).
    for (index, stats) in instance_stats.iter().enumerate() {
        let settled = stats.batches_stored
            + stats.duplicates
            + stats.gateway_mismatch
            + stats.unknown_gateway
            + stats.undecodable;
        let held = stats.batches_received.saturating_sub(settled);
        if held > 0 {
            summary = summary.note(format!(
                "instance {index} holds {held} batches received and not stored"
            ));
        }
    }
    for index in stop_failures {
        summary = summary.note(format!(
            "instance {index} did not stop within 30 s of SIGTERM and was killed"
        ));
    }
    if stored.lost_rows > 0 {
        summary = summary.note(format!(
            "{} samples of stored batches have no row",
            stored.lost_rows
        ));
    }
    Ok(summary)
}

/// One of an instance's ingest counters.
type Counter = fn(&IngestStats) -> u64;

/// How far the storing got.
struct Progress {
    /// Batches in the database.
    stored: u64,
    /// When that count last grew.
    last_progress: Instant,
}

/// Waits until the database holds `target` batches, or `deadline`, or no batch has been
/// stored for [`STALL_TIMEOUT`]; fails if an instance exits.
async fn wait_stored(
    db: &tokio_postgres::Client,
    instances: &mut [Instance],
    target: u64,
    deadline: Instant,
) -> anyhow::Result<Progress> {
    let mut progress = Progress {
        stored: 0,
        last_progress: Instant::now(),
    };
    loop {
        let count: i64 = db
            .query_one("SELECT count(*) FROM batches", &[])
            .await?
            .get(0);
        let count = u64::try_from(count).unwrap_or(0);
        if count > progress.stored {
            progress.stored = count;
            progress.last_progress = Instant::now();
        }
        if progress.stored >= target
            || Instant::now() >= deadline
            || progress.last_progress.elapsed() >= STALL_TIMEOUT
        {
            return Ok(progress);
        }
        for instance in instances.iter_mut() {
            instance.child.check_running()?;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// One `fieldlink-platform` process.
struct Instance {
    child: Child,
    /// Its HTTP API, as the bureau.
    client: PlatformClient,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start(
        binary: &std::path::Path,
        index: usize,
        database_url: &str,
        broker: SocketAddr,
    ) -> anyhow::Result<Instance> {
        let dir = tempfile::tempdir()?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--database")
            .arg(database_url)
            .arg("--broker")
            .arg(format!("mqtt://{broker}"))
            .arg("--ingest-client-id")
            .arg(format!("fieldlink-bench-ingest-{index}"))
            .arg("--ingest-share-group")
            .arg(SHARE_GROUP)
            .arg("--admin-token")
            .arg(ADMIN_TOKEN)
            .env("FIELDLINK_LOG", "warn");
        let child = Child::spawn(
            format!("platform instance {index}"),
            command,
            &dir.path().join("platform.log"),
        )?;
        Ok(Instance {
            child,
            client: PlatformClient::new(format!("http://{listen}"))
                .with_token(ADMIN_TOKEN)
                .with_timeout(Duration::from_secs(60)),
            _dir: dir,
        })
    }

    /// Waits until its API answers and its ingest is connected to the broker.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.child.check_running()?;
            if let Ok(stats) = self.client.ingest_stats().await
                && stats.counters.data_connected
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the platform at {} was not ready (API up, ingest connected) within {READY_TIMEOUT:?}:\n{}",
                    self.client.base(),
                    self.child.log()
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Registers the simulated city's first `count` enterprises ([`crate::city`], one CSV
/// import) and enrolls one gateway for each; the gateways' ids and MQTT passwords.
async fn enroll(bureau: &PlatformClient, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let (csv, enterprises) = crate::city::registry_csv(count, now_ms(), 8 * 60)?;
    let codes: Vec<String> = enterprises.into_iter().map(|e| e.credit_code).collect();
    bureau
        .import_enterprises(&csv)
        .await
        .context("the CSV import")?;

    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (index, code) in codes.into_iter().enumerate() {
        let bureau = bureau.clone();
        let permit = limit.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let token = bureau
                .issue_token(
                    &code,
                    &TokenInput {
                        expires_in_days: None,
                        max_gateways: Some(1),
                    },
                )
                .await?
                .token;
            let enrollment = bureau
                .enroll(&EnrollRequest {
                    token,
                    gateway_name: "bench".to_owned(),
                    hostname: None,
                    agent_version: None,
                })
                .await?;
            drop(permit);
            anyhow::Ok((index, enrollment.gateway_id, enrollment.mqtt.password))
        });
    }
    let mut gateways = vec![(String::new(), String::new()); count];
    while let Some(joined) = tasks.join_next().await {
        let (index, id, password) = joined??;
        gateways[index] = (id, password);
    }
    Ok(gateways)
}

/// A simulated gateway: its own MQTT connection, connected, and the event loop that
/// drives it.
struct Publisher {
    gateway: Gateway,
    events: EventLoop,
}

/// A simulated gateway's publishing half.
struct Gateway {
    id: String,
    topic: String,
    client: AsyncClient,
    /// The last batch published (seq 0: none yet).
    batch: Batch,
    /// Each sample's timestamp relative to the batch's newest.
    offsets: Vec<i64>,
    /// The samples of the machine's role points, by index, with their signal.
    machine: Vec<(usize, Signal)>,
    log: PublishLog,
}

/// The points of the template that become the machine's role points: (the template's
/// point, its name, its role, its signal).
const MACHINE_POINTS: [(&str, &str, PointRole, Signal); 3] = [
    ("point_000", "running", PointRole::Running, Signal::Running),
    (
        "point_001",
        "energy_kwh",
        PointRole::EnergyKwh,
        Signal::Energy,
    ),
    ("point_002", "parts", PointRole::OutputCount, Signal::Output),
];

/// The template's samples with the machine's role points renamed; the indices of those
/// samples with their signals; and the catalogue of the template's points.
fn machine_template(
    samples: &[fieldlink_wire::Sample],
) -> (Vec<fieldlink_wire::Sample>, Vec<(usize, Signal)>, Meta) {
    let mut samples = samples.to_vec();
    let mut machine = Vec::new();
    let mut points: Vec<PointMeta> = Vec::new();
    for (i, sample) in samples.iter_mut().enumerate() {
        let role = MACHINE_POINTS
            .iter()
            .find(|(template, ..)| *template == &*sample.point);
        if let Some(&(_, name, _, signal)) = role {
            sample.point = name.into();
            machine.push((i, signal));
        }
        if points.iter().all(|p| *p.name != *sample.point) {
            let data_type = match (role, &sample.value) {
                (Some((_, _, PointRole::Running, _)), _) | (None, Value::Bool(_)) => "bool",
                (Some(_), _) | (None, Value::Int(_)) => "u32",
                (None, _) => "f64",
            };
            points.push(PointMeta {
                name: sample.point.to_string(),
                data_type: data_type.to_owned(),
                unit: None,
                role: role.map(|&(_, _, role, _)| role),
            });
        }
    }
    let device = samples
        .first()
        .map_or_else(String::new, |s| s.device.to_string());
    let meta = Meta {
        devices: vec![DeviceMeta {
            name: device,
            protocol: "simulator".to_owned(),
            points,
        }],
    };
    (samples, machine, meta)
}

/// When a gateway publishes: at `first`, then every `period`, until before `end`.
struct Schedule {
    first: Instant,
    period: Duration,
    end: Instant,
}

/// What a gateway did: when it published each batch (ms since the epoch, index
/// `seq - 1`), and how late on its schedule each publish was (ms).
struct PublishLog {
    published_ms: Vec<i64>,
    lags_ms: Vec<f64>,
}

/// Connects every gateway (client id = gateway id), a few at a time.
async fn connect(
    broker: SocketAddr,
    gateways: Vec<(String, String)>,
    samples: &[fieldlink_wire::Sample],
) -> anyhow::Result<Vec<Publisher>> {
    let newest = samples.iter().map(|s| s.ts).max().unwrap_or(0);
    let offsets: Vec<i64> = samples.iter().map(|s| s.ts - newest).collect();
    let (samples, machine, meta) = machine_template(samples);
    let meta = serde_json::to_vec(&meta)?;
    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let count = gateways.len();
    for (index, (id, password)) in gateways.into_iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let (samples, offsets) = (samples.clone(), offsets.clone());
        let (machine, meta) = (machine.clone(), meta.clone());
        tasks.spawn(async move {
            let mut options = MqttOptions::new(id.clone(), broker.ip().to_string(), broker.port());
            options
                .set_credentials(id.clone(), password)
                .set_keep_alive(Duration::from_secs(30))
                .set_inflight(100)
                .set_max_packet_size(16 << 20, 16 << 20);
            let (client, mut events) = crate::ingest::connect_gateway(options, 64).await?;
            let topics = Topics::new(&id);
            client
                .publish(topics.meta.as_str(), QoS::AtLeastOnce, true, meta)
                .await?;
            loop {
                match tokio::time::timeout(ACK_TIMEOUT, events.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => bail!("gateway {id}: connection failed: {e}"),
                    Err(_) => bail!("gateway {id}: no PUBACK for its catalogue"),
                }
            }
            drop(permit);
            let topic = topics.data;
            let batch = Batch {
                gateway: id.clone(),
                seq: 0,
                samples,
            };
            let gateway = Gateway {
                id,
                topic,
                client,
                batch,
                offsets,
                machine,
                log: PublishLog {
                    published_ms: Vec::new(),
                    lags_ms: Vec::new(),
                },
            };
            anyhow::Ok((index, Publisher { gateway, events }))
        });
    }
    let mut publishers: Vec<Option<Publisher>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, publisher) = joined??;
        publishers[index] = Some(publisher);
    }
    Ok(publishers.into_iter().flatten().collect())
}

impl Gateway {
    /// Publishes the next batch, its samples read now.
    async fn publish_next(&mut self) -> anyhow::Result<()> {
        let published_ms = now_ms();
        self.batch.seq += 1;
        for (sample, offset) in self.batch.samples.iter_mut().zip(&self.offsets) {
            sample.ts = published_ms + offset;
        }
        let seed = seed_for(&self.id);
        for &(i, signal) in &self.machine {
            let sample = &mut self.batch.samples[i];
            sample.value = signal.value(seed, sample.ts);
        }
        self.client
            .publish(
                self.topic.as_str(),
                QoS::AtLeastOnce,
                false,
                encode_batch(&self.batch),
            )
            .await
            .with_context(|| format!("gateway {}: publish failed", self.id))?;
        self.log.published_ms.push(published_ms);
        Ok(())
    }
}

impl Publisher {
    /// Publishes one batch and waits for the broker's PUBACK: the platform learns the
    /// gateway's points from it before the figures start.
    async fn prime(mut self) -> anyhow::Result<Publisher> {
        self.gateway.publish_next().await?;
        loop {
            match tokio::time::timeout(ACK_TIMEOUT, self.events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return Ok(self),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("gateway {}: connection failed: {e}", self.gateway.id),
                Err(_) => bail!("gateway {}: no PUBACK", self.gateway.id),
            }
        }
    }

    /// Publishes on `schedule`, then waits for the broker's PUBACKs and disconnects.
    async fn run(self, schedule: Schedule) -> anyhow::Result<PublishLog> {
        let Publisher {
            mut gateway,
            mut events,
        } = self;
        let (total_tx, mut total_rx) = oneshot::channel::<u64>();
        let id = gateway.id.clone();
        let pump = tokio::spawn(async move {
            let mut acked = 0u64;
            let mut total = None;
            loop {
                if total.is_some_and(|t| acked >= t) {
                    return anyhow::Ok(());
                }
                tokio::select! {
                    t = &mut total_rx, if total.is_none() => total = Some(t.unwrap_or(0)),
                    event = events.poll() => match event {
                        Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                        Ok(_) => {}
                        Err(e) => bail!("gateway {id}: connection failed: {e}"),
                    },
                }
            }
        });
        let primed = gateway.batch.seq;
        let mut due = schedule.first;
        while due < schedule.end {
            sleep_until(due).await;
            let lag = Instant::now().saturating_duration_since(due);
            gateway.publish_next().await?;
            gateway.log.lags_ms.push(lag.as_secs_f64() * 1000.0);
            due += schedule.period;
        }
        let _ = total_tx.send(gateway.batch.seq - primed);
        match tokio::time::timeout(ACK_TIMEOUT, pump).await {
            Ok(joined) => joined??,
            Err(_) => bail!(
                "gateway {}: the broker did not acknowledge every batch",
                gateway.id
            ),
        }
        gateway.client.try_disconnect().ok();
        Ok(gateway.log)
    }
}

/// What the database holds after the run, checked against what was published.
struct Stored {
    /// `received_at` of every stored batch that was published.
    received: Vec<i64>,
    /// (published at, delay to `received_at`) of every stored batch, ms.
    delays: Vec<(i64, i64)>,
    /// Sample rows beyond one per sample of the stored batches.
    duplicate_rows: u64,
    /// Batches published and not stored.
    missing_batches: u64,
    /// Stored batches nobody published, or with another sample count (should not exist).
    unexpected: u64,
    /// Samples of stored batches without a row (should not exist).
    lost_rows: u64,
    /// Rows in `gaps` (batches the platform still counts as missing).
    gaps_left: u64,
}

impl Stored {
    /// Reads the batches and counts the sample rows; `published[i]` are the publish times
    /// of the gateway `ids[i]`, each batch `samples` samples.
    async fn read(
        db: &tokio_postgres::Client,
        ids: &[String],
        published: &[Vec<i64>],
        samples: usize,
    ) -> anyhow::Result<Stored> {
        let index_of: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let rows = db
            .query(
                "SELECT gateway, seq, received_at, samples FROM batches",
                &[],
            )
            .await?;
        let sample_rows: i64 = db
            .query_one("SELECT count(*) FROM samples", &[])
            .await?
            .get(0);
        let mut stored = Stored {
            received: Vec::with_capacity(rows.len()),
            delays: Vec::with_capacity(rows.len()),
            duplicate_rows: 0,
            missing_batches: 0,
            unexpected: 0,
            lost_rows: 0,
            gaps_left: 0,
        };
        let mut expected_rows = 0i64;
        for row in &rows {
            let gateway: &str = row.get(0);
            let seq: i64 = row.get(1);
            let received_at: i64 = row.get(2);
            let batch_samples: i64 = row.get(3);
            expected_rows += batch_samples;
            let published_ms = index_of.get(gateway).and_then(|&i| {
                let seq = usize::try_from(seq).ok()?.checked_sub(1)?;
                published[i].get(seq).copied()
            });
            match published_ms {
                Some(ms) if batch_samples == samples as i64 => {
                    stored.received.push(received_at);
                    stored.delays.push((ms, received_at - ms));
                }
                _ => stored.unexpected += 1,
            }
        }
        let published_batches: usize = published.iter().map(Vec::len).sum();
        stored.missing_batches = published_batches.saturating_sub(stored.received.len()) as u64;
        stored.duplicate_rows = u64::try_from(sample_rows - expected_rows).unwrap_or(0);
        stored.lost_rows = u64::try_from(expected_rows - sample_rows).unwrap_or(0);
        let gaps_left: i64 = db.query_one("SELECT count(*) FROM gaps", &[]).await?.get(0);
        stored.gaps_left = u64::try_from(gaps_left).unwrap_or(0);
        Ok(stored)
    }
}

/// What the bench database's busy backends were doing, sampled from pg_stat_activity
/// every 100 ms: on CPU (no wait event), waiting for a lock (another transaction's row
/// or tuple), or waiting for I/O (WAL flush, data files).
#[derive(Default)]
struct Waits {
    samples: u64,
    on_cpu: u64,
    lock: u64,
    io: u64,
}

impl Waits {
    async fn sample(
        db: tokio_postgres::Client,
        database: String,
        until: Instant,
    ) -> anyhow::Result<Waits> {
        let query = db
            .prepare(
                "SELECT wait_event_type, wait_event FROM pg_stat_activity
                 WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()",
            )
            .await?;
        let mut waits = Waits::default();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while Instant::now() < until {
            tick.tick().await;
            waits.samples += 1;
            for row in db.query(&query, &[&database]).await? {
                let kind: Option<&str> = row.get(0);
                let event: Option<&str> = row.get(1);
                match (kind, event) {
                    (None, _) => waits.on_cpu += 1,
                    (Some("Lock"), _) => waits.lock += 1,
                    (Some("IO"), _) => waits.io += 1,
                    // WAL insertion and flush locks are waits for the WAL, i.e. I/O.
                    (Some("LWLock"), Some(e)) if e.starts_with("WAL") => waits.io += 1,
                    _ => {}
                }
            }
        }
        Ok(waits)
    }

    fn average(&self, count: u64) -> f64 {
        count as f64 / self.samples.max(1) as f64
    }

    /// Backends on CPU, on average.
    fn on_cpu(&self) -> f64 {
        self.average(self.on_cpu)
    }

    /// Backends waiting for a lock, on average.
    fn lock(&self) -> f64 {
        self.average(self.lock)
    }

    /// Backends waiting for I/O, on average.
    fn io(&self) -> f64 {
        self.average(self.io)
    }
}

/// CPU time of the processes involved, at one moment.
struct CpuReading {
    at: Instant,
    machine: MachineCpu,
    platform: Duration,
    mosquitto: Duration,
    bench: Duration,
    postgres: HashMap<u32, Duration>,
}

/// Cores busy between two readings.
struct CpuUse {
    platform: f64,
    postgres: f64,
    mosquitto: f64,
    bench: f64,
    machine_busy: f64,
}

impl CpuReading {
    async fn take(
        instances: &[Instance],
        broker: &Broker,
        db: &tokio_postgres::Client,
        database: &str,
    ) -> anyhow::Result<CpuReading> {
        let postgres = postgres_cpu_times(db, database).await?;
        Ok(CpuReading {
            at: Instant::now(),
            machine: MachineCpu::now(),
            platform: instances.iter().map(|i| i.child.process.cpu_time()).sum(),
            mosquitto: broker.process().map_or(Duration::ZERO, |p| p.cpu_time()),
            bench: cpu_time(),
            postgres,
        })
    }

    fn since(&self, earlier: &CpuReading) -> CpuUse {
        let seconds = (self.at - earlier.at).as_secs_f64().max(1e-9);
        let cores = |later: Duration, before: Duration| {
            later.saturating_sub(before).as_secs_f64() / seconds
        };
        let postgres = postgres_cpu_since(&self.postgres, &earlier.postgres);
        CpuUse {
            platform: cores(self.platform, earlier.platform),
            postgres: postgres.as_secs_f64() / seconds,
            mosquitto: cores(self.mosquitto, earlier.mosquitto),
            bench: cores(self.bench, earlier.bench),
            machine_busy: self.machine.busy_since(&earlier.machine),
        }
    }
}
