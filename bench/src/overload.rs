//! The embedded platform under overload, once with `delete_on = "puback"` and once with
//! `"platform_ack"`, each on a fresh platform: N enrolled agents (the release `fieldlink`,
//! one process each, a simulator of `--points` points read every `--poll`, one batch a
//! read) publish through the in-process broker into SQLite for `--seconds`, while the store
//! takes only 1/`--overload` of what they offer. Then the store is let go, and the agents
//! stop collecting (a SIGHUP with a config of no devices) but keep running, so that what
//! they hold goes out. Once the platform has caught up (the ingest idle for [`IDLE`] and
//! every outbox empty, or [`RECOVERY_LIMIT`]), the agents stop and each one's numbering and
//! outbox are set against what the platform stored.
//!
//! The overload is made, not waited for. The store is throttled from outside: whenever the
//! ingest has stored more than the allowed rate so far, a SQLite connection of the bench's
//! own holds the database's write lock until time catches up, as a backup or a slow disk
//! would hold the ingest's writer up (it waits in SQLite's busy handler). And the broker's
//! queue for the ingest is `--queue-mib` (the platform's `--mqtt-queue-mib`; 128 by
//! default, which a lag of 20 s at this rate does not reach): once the ingest lags further
//! behind than that, the broker drops the oldest batches, each of which a gateway had its
//! PUBACK for.
//!
//! Figures, per mode: `published` (batches the agents numbered), `pubacked` (PUBACKs,
//! resends included), `acknowledged` (deleted on the platform's ack), `stored` (distinct
//! batches at the platform), `resent`, `lost` (numbered, neither stored nor still in the
//! agent's outbox), `kept` (still in an outbox), the store's rate in the overload window and
//! the overload it made (offered / stored), and how long the platform took to catch up.

use crate::agent::{Agent, offered_rate};
use crate::ingest::{embedded_platform, enroll_gateways};
use crate::measure::Summary;
use crate::pipeline::DeleteOn;
use anyhow::{Context, ensure};
use fieldlink::status::StatusReport;
use fieldlink_outbox::{Outbox, OutboxOptions};
use fieldlink_platform::api::GatewayDetail;
use fieldlink_platform::{BrokerConfig, IngestStats, Platform};
use fieldlink_testkit::PlatformClient;
use fieldlink_testkit::mosquitto::free_port;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

/// How long every agent gets to connect and say it is online.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How often the throttle looks at what the ingest stored.
const THROTTLE_TICK: Duration = Duration::from_millis(5);
/// The ingest receiving and storing nothing for this long: the broker holds nothing more.
const IDLE: Duration = Duration::from_secs(3);
/// The longest wait for the platform to catch up after the overload.
const RECOVERY_LIMIT: Duration = Duration::from_secs(300);
/// Open gaps the platform lists per gateway: with this many the count would be cut short.
const GAPS_LISTED: usize = 1000;

/// The overload scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Gateways, one agent process each.
    #[arg(long, default_value_t = 200)]
    gateways: usize,
    /// Simulated points per gateway, all read every `--poll` into one batch.
    #[arg(long, default_value_t = 50)]
    points: usize,
    /// The simulator's poll period.
    #[arg(long, default_value = "250ms")]
    poll: String,
    /// Seconds of overload.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// What the gateways offer over what the store takes meanwhile.
    #[arg(long, default_value_t = 1.5)]
    overload: f64,
    /// The in-process broker's queue for the ingest, MiB (`--mqtt-queue-mib`).
    #[arg(long, default_value_t = 8)]
    queue_mib: usize,
    /// `[publish] ack_timeout` of the agents (their default).
    #[arg(long, default_value = "60s")]
    ack_timeout: String,
}

/// One mode's count.
#[derive(Debug, Default)]
struct Count {
    published: u64,
    pubacked: u64,
    acknowledged: u64,
    stored: u64,
    resent: u64,
    lost: u64,
    kept: u64,
    evicted: u64,
    stored_per_s: f64,
    recovery_s: f64,
}

/// Runs the scenario once: both modes, one after the other.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    // One batch a read: the gateways' batches per second.
    let offered = offered_rate(args.gateways, 1, &args.poll);
    ensure!(
        offered.is_finite(),
        "--poll {:?} is not a duration",
        args.poll
    );
    let mut summary = Summary::new("overload").add("offered_batches_per_s", offered, "");
    for mode in [DeleteOn::Puback, DeleteOn::PlatformAck] {
        let count = run_mode(args, mode, offered)
            .await
            .with_context(|| format!("delete_on = {}", mode.config()))?;
        let names = match mode {
            DeleteOn::Puback => PUBACK_FIGURES,
            DeleteOn::PlatformAck => PLATFORM_ACK_FIGURES,
        };
        let values = [
            count.published as f64,
            count.pubacked as f64,
            count.acknowledged as f64,
            count.stored as f64,
            count.resent as f64,
            count.lost as f64,
            count.kept as f64,
            count.evicted as f64,
            offered / count.stored_per_s.max(f64::MIN_POSITIVE),
            count.recovery_s,
        ];
        for ((name, unit), value) in names.into_iter().zip(values) {
            summary = summary.add(name, value, unit);
        }
    }
    Ok(summary.note(format!(
        "{} gateways, {} points every {}, {} s at {}x, broker queue {} MiB",
        args.gateways, args.points, args.poll, args.seconds, args.overload, args.queue_mib
    )))
}

/// The figures of a mode, in the order `run` gives their values.
const PUBACK_FIGURES: [(&str, &str); 10] = [
    ("puback_published", ""),
    ("puback_pubacked", ""),
    ("puback_acknowledged", ""),
    ("puback_stored", ""),
    ("puback_resent", ""),
    ("puback_lost", ""),
    ("puback_kept", ""),
    ("puback_evicted", ""),
    ("puback_overload", "x"),
    ("puback_recovery_s", "s"),
];
/// The same for `platform_ack`.
const PLATFORM_ACK_FIGURES: [(&str, &str); 10] = [
    ("platform_ack_published", ""),
    ("platform_ack_pubacked", ""),
    ("platform_ack_acknowledged", ""),
    ("platform_ack_stored", ""),
    ("platform_ack_resent", ""),
    ("platform_ack_lost", ""),
    ("platform_ack_kept", ""),
    ("platform_ack_evicted", ""),
    ("platform_ack_overload", "x"),
    ("platform_ack_recovery_s", "s"),
];

/// One enrolled gateway's agent and where its `/status` answers.
struct Gateway {
    id: String,
    status_port: u16,
    agent: Agent,
}

/// The agent's config: the simulator's device when `collecting`, none otherwise (the
/// platform, gateway id and credentials come from the enrollment).
fn agent_toml(
    args: &Args,
    mode: DeleteOn,
    state: &Path,
    status_port: u16,
    collecting: bool,
) -> String {
    let devices = if collecting {
        crate::agent::simulator_devices(1, args.points, &args.poll)
    } else {
        String::new()
    };
    format!(
        "[gateway]\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://127.0.0.1:9\"\n\n\
         [publish]\nbatch_max_samples = {points}\ndelete_on = \"{delete_on}\"\nack_timeout = \"{ack_timeout}\"\n\n\
         [status]\nlisten = \"127.0.0.1:{status_port}\"\n{devices}",
        state = state.display(),
        points = args.points,
        delete_on = mode.config(),
        ack_timeout = args.ack_timeout,
    )
}

/// One mode on a fresh platform.
async fn run_mode(args: &Args, mode: DeleteOn, offered: f64) -> anyhow::Result<Count> {
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, _) = embedded_platform(dir.path(), &shutdown, |config| {
        if let BrokerConfig::Embedded { queue_bytes, .. } = &mut config.broker {
            *queue_bytes = args.queue_mib << 20;
        }
    })
    .await?;
    let mut gateways = Vec::with_capacity(args.gateways);
    for enrollment in enroll_gateways(platform.registry(), args.gateways).await? {
        let status_port = free_port();
        let agent = Agent::start_enrolled(&enrollment, |state| {
            agent_toml(args, mode, state, status_port, true)
        })?;
        gateways.push(Gateway {
            id: enrollment.gateway_id,
            status_port,
            agent,
        });
    }
    let started = Instant::now();
    while platform.ingest_stats().status_updates < args.gateways as u64 {
        ensure!(
            started.elapsed() < START_LIMIT,
            "{} of {} agents online after {START_LIMIT:?}",
            platform.ingest_stats().status_updates,
            args.gateways
        );
        for g in &mut gateways {
            g.agent.check_running()?;
        }
        sleep(Duration::from_millis(200)).await;
    }

    let database = dir
        .path()
        .join(fieldlink_platform::store::sqlite::FILE_NAME);
    let window = Duration::from_secs(args.seconds);
    let stored = throttle(&platform, &database, offered / args.overload, window).await?;
    for g in &gateways {
        g.agent.reload(&agent_toml(
            args,
            mode,
            &g.agent.state_dir(),
            g.status_port,
            false,
        ))?;
    }
    let recovery = Instant::now();
    let bureau =
        PlatformClient::new(format!("http://{}", platform.http_addr())).with_token("bench");
    let statuses = caught_up(&platform, bureau.http(), &gateways).await?;
    let recovery_s = recovery.elapsed().as_secs_f64();
    let mut count = Count {
        stored_per_s: stored as f64 / window.as_secs_f64(),
        recovery_s,
        ..Count::default()
    };
    for status in &statuses {
        count.pubacked += status.mqtt.published_batches;
        count.acknowledged += status.mqtt.platform_acknowledged_batches;
        count.resent += status.mqtt.resent_batches;
    }
    let mut stopping = JoinSet::new();
    for g in gateways {
        stopping.spawn(async move { (g.id, g.agent.stop_keeping_state().await) });
    }
    while let Some(stopped) = stopping.join_next().await {
        let (id, state) = stopped?;
        let state = state?;
        let detail = bureau.gateway(&id).await?;
        tally(
            &mut count,
            &detail,
            &state.path().join("state").join("outbox.redb"),
        )
        .with_context(|| format!("gateway {id}"))?;
    }
    shutdown.cancel();
    platform.wait().await?;
    Ok(count)
}

/// Adds one gateway to `count`: its outbox (closed by its agent) against what the platform
/// stored of it.
fn tally(count: &mut Count, detail: &GatewayDetail, outbox: &Path) -> anyhow::Result<()> {
    ensure!(
        detail.gaps.len() < GAPS_LISTED && detail.crash_windows.is_empty(),
        "{} gaps and {} crash windows: beyond what this count reads",
        detail.gaps.len(),
        detail.crash_windows.len()
    );
    let (outbox, opened) = Outbox::open(OutboxOptions::new(outbox, 1 << 30))?;
    let kept: HashSet<u64> = outbox
        .oldest(0, usize::MAX)?
        .into_iter()
        .map(|r| r.seq)
        .collect();
    let last_stored = detail.gateway.last_seq.unwrap_or(0);
    let stored = |seq: u64| {
        seq <= last_stored
            && !detail
                .gaps
                .iter()
                .any(|g| (g.first_seq..=g.last_seq).contains(&seq))
    };
    let numbered = opened.next_seq - 1;
    count.published += numbered;
    count.stored += detail.gateway.batches;
    count.kept += kept.len() as u64;
    count.evicted += outbox.stats().evicted_batches;
    count.lost += (1..=numbered)
        .filter(|&seq| !stored(seq) && !kept.contains(&seq))
        .count() as u64;
    Ok(())
}

/// Holds the platform's store to `rate` batches a second for `length`: whenever the ingest
/// has stored more than the rate allows so far, a connection of the bench's own takes
/// SQLite's write lock until time catches up (the ingest's writer waits in SQLite's busy
/// handler, its busy timeout 10 s; a hold lasts about one group of batches). Returns the
/// batches stored meanwhile.
async fn throttle(
    platform: &Platform,
    database: &Path,
    rate: f64,
    length: Duration,
) -> anyhow::Result<u64> {
    let mut connection = rusqlite::Connection::open(database)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    let base = platform.ingest_stats().batches_stored;
    let started = Instant::now();
    let mut holding = false;
    while started.elapsed() < length {
        let allowed = rate * started.elapsed().as_secs_f64();
        let ahead = (platform.ingest_stats().batches_stored - base) as f64 >= allowed;
        if ahead != holding {
            connection =
                execute(connection, if ahead { "BEGIN IMMEDIATE" } else { "COMMIT" }).await?;
            holding = ahead;
        }
        sleep(THROTTLE_TICK).await;
    }
    if holding {
        execute(connection, "COMMIT").await?;
    }
    Ok(platform.ingest_stats().batches_stored - base)
}

/// Runs `sql` on `connection` off the async threads (taking the write lock may wait for the
/// ingest's transaction), and hands the connection back.
async fn execute(
    connection: rusqlite::Connection,
    sql: &'static str,
) -> anyhow::Result<rusqlite::Connection> {
    tokio::task::spawn_blocking(move || {
        connection.execute_batch(sql)?;
        Ok(connection)
    })
    .await?
}

/// Waits until the platform has caught up: the ingest idle for [`IDLE`] (the broker holds
/// nothing more for it) and every agent's outbox empty, or [`RECOVERY_LIMIT`] passed.
/// Returns the agents' last statuses.
async fn caught_up(
    platform: &Platform,
    http: &reqwest::Client,
    gateways: &[Gateway],
) -> anyhow::Result<Vec<StatusReport>> {
    let activity = |s: IngestStats| (s.batches_received, s.batches_stored, s.duplicates);
    let started = Instant::now();
    let mut last = activity(platform.ingest_stats());
    let mut idle_since = Instant::now();
    loop {
        sleep(Duration::from_millis(500)).await;
        let now = activity(platform.ingest_stats());
        if now != last {
            (last, idle_since) = (now, Instant::now());
        }
        let over = started.elapsed() >= RECOVERY_LIMIT;
        if idle_since.elapsed() >= IDLE || over {
            let mut statuses = Vec::with_capacity(gateways.len());
            for g in gateways {
                let url = format!("http://127.0.0.1:{}/status", g.status_port);
                statuses.push(http.get(&url).send().await?.json::<StatusReport>().await?);
            }
            if over || statuses.iter().all(|s| s.outbox.batches == 0) {
                if over {
                    eprintln!(
                        "overload: not caught up within {RECOVERY_LIMIT:?}; counting as it is"
                    );
                }
                return Ok(statuses);
            }
        }
    }
}
