//! The `fieldlink-platform` command: parses arguments, installs signal handling and calls
//! the library's `run`. It lives in the library so that the workspace's end-to-end tests
//! can build the same command into a binary of their own and kill it as a process.

use crate::{BrokerConfig, Database, MosquittoFiles, MqttUrl, PlatformConfig, Reload};
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// fieldlink-platform: enterprise registry, gateway enrollment, MQTT ingest and the
/// bureau's onboarding counts, in one process.
///
/// Secrets from the environment: FIELDLINK_PLATFORM_ADMIN_TOKEN (the bureau's bearer
/// token, instead of --admin-token), FIELDLINK_PLATFORM_BROKER_PASSWORD (the ingest's
/// MQTT password for --broker), FIELDLINK_PLATFORM_DATABASE_URL (instead of
/// --database, so a password in it is not on the command line) and
/// FIELDLINK_PLATFORM_BROKER_HOOK_TOKEN (the broker hook's token). Log filter: FIELDLINK_LOG
/// (default "info"). FIELDLINK_PLATFORM_ALLOW_PRIVATE_WEBHOOKS=1 is
/// --allow-private-webhooks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Where the HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the SQLite database and generated secrets live.
    #[arg(long)]
    data_dir: PathBuf,
    /// The database: "sqlite" (files in --data-dir, one instance) or a PostgreSQL URL,
    /// postgres://user:password@host:port/dbname[?sslmode=require], shared by any number
    /// of instances (better: FIELDLINK_PLATFORM_DATABASE_URL).
    #[arg(long)]
    database: Option<String>,
    /// PEM CA certificates to verify PostgreSQL with when the URL has sslmode=require
    /// (default: the system's roots).
    #[arg(long)]
    database_ca_file: Option<PathBuf>,
    /// Do not run the MQTT ingest: an HTTP-only instance of a scaled-out platform.
    #[arg(long)]
    no_ingest: bool,
    /// Where the in-process MQTT broker listens (when no --broker is given).
    #[arg(long, default_value = "127.0.0.1:1883", conflicts_with = "broker")]
    mqtt_listen: SocketAddr,
    /// MiB of messages the in-process broker keeps for the ingest while it falls behind
    /// (stores slower than the gateways publish); beyond, the oldest are dropped after the
    /// gateways had their PUBACK (gateways with delete_on = "platform_ack" send them
    /// again). Bounds the broker's memory.
    #[arg(long, default_value_t = (fieldlink_broker::DEFAULT_QUEUE_BYTES >> 20) as u32, value_parser = clap::value_parser!(u32).range(1..=65_536), conflicts_with = "broker")]
    mqtt_queue_mib: u32,
    /// An external broker, mqtt://host[:port] or mqtts://host[:port] (TLS), instead of
    /// the in-process one.
    #[arg(long)]
    broker: Option<String>,
    /// PEM CA certificates to verify an mqtts:// --broker with (default: the system's
    /// roots).
    #[arg(long, requires = "broker")]
    broker_ca_file: Option<PathBuf>,
    /// The ingest's MQTT username on the external broker (default "fieldlink-ingest"
    /// when the platform manages mosquitto's files).
    #[arg(long, requires = "broker")]
    broker_username: Option<String>,
    /// The MQTT URL handed to enrolled gateways (default: the broker's URL).
    #[arg(long)]
    public_mqtt_url: Option<String>,
    /// The bureau's bearer token (better: FIELDLINK_PLATFORM_ADMIN_TOKEN). Without either,
    /// one is generated into DATA_DIR/admin-token.
    #[arg(long)]
    admin_token: Option<String>,
    /// mosquitto's password_file, rewritten on every enrollment.
    #[arg(long, requires_all = ["broker", "mosquitto_acl_file"])]
    mosquitto_password_file: Option<PathBuf>,
    /// mosquitto's acl_file, rewritten on every enrollment.
    #[arg(long, requires = "mosquitto_password_file")]
    mosquitto_acl_file: Option<PathBuf>,
    /// mosquitto's pid_file: SIGHUP makes it re-read the files.
    #[arg(
        long,
        requires = "mosquitto_password_file",
        conflicts_with = "mosquitto_reload_command"
    )]
    mosquitto_pid_file: Option<PathBuf>,
    /// A command (run with sh -c) that makes mosquitto re-read the files.
    #[arg(long, requires = "mosquitto_password_file")]
    mosquitto_reload_command: Option<String>,
    /// Serve the broker hook (EMQX HTTP authentication and authorization) at
    /// /api/v1/broker/authn and /authz, for brokers presenting this bearer token (better:
    /// FIELDLINK_PLATFORM_BROKER_HOOK_TOKEN).
    #[arg(long)]
    broker_hook_token: Option<String>,
    /// Days samples are kept.
    #[arg(long, default_value_t = 30)]
    retention_days: u32,
    /// Minutes a gap (batches missing between received ones) may stay open before it is
    /// logged as a warning (once, by one instance).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    gap_grace_minutes: u32,
    /// The ingest's MQTT client id (its persistent session); unique per instance.
    #[arg(long, default_value = "fieldlink-platform-ingest")]
    ingest_client_id: String,
    /// Share the data subscription with the other ingest instances in this group:
    /// subscribe to $share/GROUP/fieldlink/v1/+/data (EMQX, mosquitto).
    #[arg(long)]
    ingest_share_group: Option<String>,
    /// Target: in-program enterprises on the cloud.
    #[arg(long, default_value_t = 480)]
    target_in_program: u64,
    /// Target: enterprises in the key industries on the cloud.
    #[arg(long, default_value_t = 4000)]
    target_key_industries: u64,
    /// Target: enterprises on the cloud per industry.
    #[arg(long, default_value_t = 1000)]
    target_per_industry: u64,
    /// Let alarm channels send to loopback and private addresses, for receivers on the
    /// premises (also FIELDLINK_PLATFORM_ALLOW_PRIVATE_WEBHOOKS=1).
    #[arg(long)]
    allow_private_webhooks: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command: what `fieldlink-platform`'s `main` runs.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match config(cli).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config(cli: Cli) -> anyhow::Result<PlatformConfig> {
    let mut config = PlatformConfig::new(cli.listen, cli.data_dir);
    let database = cli
        .database
        .or_else(|| std::env::var("FIELDLINK_PLATFORM_DATABASE_URL").ok())
        .filter(|url| !url.trim().is_empty());
    if let Some(url) = database {
        config.database = Database::parse(url.trim(), cli.database_ca_file)
            .context("--database: expected \"sqlite\" or a postgres:// URL")?;
    } else if cli.database_ca_file.is_some() {
        bail!("--database-ca-file needs a postgres:// --database");
    }
    config.ingest = !cli.no_ingest;
    config.broker_hook_token = cli
        .broker_hook_token
        .or_else(|| std::env::var("FIELDLINK_PLATFORM_BROKER_HOOK_TOKEN").ok())
        .filter(|t| !t.trim().is_empty());
    config.broker = match cli.broker {
        Some(url) => BrokerConfig::External {
            url: MqttUrl::parse(&url).context("--broker")?,
            ca_file: cli.broker_ca_file,
            username: cli.broker_username,
            password: std::env::var("FIELDLINK_PLATFORM_BROKER_PASSWORD").ok(),
        },
        None => BrokerConfig::Embedded {
            listen: cli.mqtt_listen,
            queue_bytes: (cli.mqtt_queue_mib as usize).saturating_mul(1 << 20),
        },
    };
    config.public_mqtt_url = cli.public_mqtt_url;
    config.admin_token = cli
        .admin_token
        .or_else(|| std::env::var("FIELDLINK_PLATFORM_ADMIN_TOKEN").ok())
        .filter(|t| !t.trim().is_empty());
    if let (Some(password_file), Some(acl_file)) =
        (cli.mosquitto_password_file, cli.mosquitto_acl_file)
    {
        let reload = match (cli.mosquitto_pid_file, cli.mosquitto_reload_command) {
            (Some(pid_file), _) => Reload::PidFile(pid_file),
            (None, Some(command)) => Reload::Command(command),
            (None, None) => Reload::None,
        };
        config.mosquitto = Some(MosquittoFiles {
            password_file,
            acl_file,
            reload,
        });
    }
    if cli.retention_days == 0 {
        bail!("--retention-days must be at least 1");
    }
    config.retention = Duration::from_secs(u64::from(cli.retention_days) * 86_400);
    config.gap_grace = Duration::from_secs(u64::from(cli.gap_grace_minutes) * 60);
    config.ingest_client_id = cli.ingest_client_id;
    config.ingest_share_group = cli.ingest_share_group;
    config.targets.in_program_on_cloud = cli.target_in_program;
    config.targets.key_industries_on_cloud = cli.target_key_industries;
    config.targets.per_industry_on_cloud = cli.target_per_industry;
    config.allow_private_webhooks = cli.allow_private_webhooks
        || std::env::var("FIELDLINK_PLATFORM_ALLOW_PRIVATE_WEBHOOKS")
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
    Ok(config)
}

fn run(config: PlatformConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
        let result = crate::run(config, shutdown.clone()).await;
        shutdown.cancel();
        signals.abort();
        result.context("fieldlink-platform stopped with an error")
    })
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the platform with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}

fn init_logging(format: LogFormat) {
    // rumqttd logs every client DISCONNECT at error level; silence it unless asked.
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDLINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
