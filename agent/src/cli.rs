//! The `fieldlink` command: parses arguments, loads the config, installs signal handling
//! and calls the library. It lives in the library, and the binary's `main` only calls
//! [`main`], so that another binary (the workspace's end-to-end tests run the agent as a
//! process from their own package) runs exactly the same command.

mod points;
mod status;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::{LevelFilter, Targets};

/// fieldlink: reads machines over Modbus, buffers every reading durably, publishes over MQTT.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file without touching the network; print devices, points and read plan.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List the device templates (shipped, and those in the state directory's `templates/`).
    Templates {
        /// A config file, whose `state_dir` may hold more templates.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// List a server's variables and print ready [[device.point]] blocks for a config.
    Browse {
        #[command(subcommand)]
        target: crate::browse::BrowseTarget,
    },
    /// OPC UA certificates: list and trust servers' certificates.
    Opcua {
        #[command(subcommand)]
        command: crate::opcua_trust::OpcuaCommand,
    },
    /// Read registers, bits or bytes from a device once and show them in every type and
    /// byte order, to find a device's settings: `probe modbus tcp://HOST:PORT --address 0`,
    /// `probe s7 tcp://HOST --address DB1.DBW0`.
    Probe(crate::probe::ProbeArgs),
    /// Print the [[device.point]] blocks of a CSV point table (UTF-8 or GBK, English or Chinese headers).
    Import {
        /// The CSV file: name,area,address,type[,order,scale,offset,unit,deadband,...].
        table: PathBuf,
        /// Write the blocks to this file instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Write a Modbus device's points as a CSV point table, the inverse of `import`.
    Export {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The device's name.
        #[arg(long, short)]
        device: String,
        /// Start with a UTF-8 byte order mark, so that Excel reads the table as UTF-8.
        #[arg(long)]
        bom: bool,
    },
    /// Enroll this gateway with the platform: stores its id and MQTT credentials in state_dir.
    Enroll {
        /// The config file (its `state_dir` receives the enrollment).
        #[arg(long, short)]
        config: PathBuf,
        /// The platform's URL, e.g. https://platform.example.org (default: `[platform] enroll_url`).
        #[arg(long)]
        url: Option<String>,
        /// The enrollment token the bureau issued.
        #[arg(long)]
        token: String,
        /// This gateway's name within its enterprise (default: the host name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a running agent's state: devices, buffer (with drain progress), MQTT.
    Status {
        /// The agent's config file (its `[status] listen` address is asked).
        #[arg(long, short, default_value = "/etc/fieldlink/agent.toml")]
        config: PathBuf,
        /// Ask this status URL instead, e.g. http://127.0.0.1:9810.
        #[arg(long)]
        url: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The whole command, as `fieldlink` runs it: the arguments from the process, logging to
/// stderr, and the exit code to return from `main`.
pub fn main() -> ExitCode {
    crate::memory::limit_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Check { config } => match crate::config::load(&config) {
            Ok(parsed) => {
                print!("{}", crate::check::report(&parsed));
                println!("\n{}: OK", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Templates { config } => exit(templates(config.as_deref())),
        Command::Run { config } => exit(run(config)),
        Command::Browse { target } => exit(crate::browse::run(target).map_err(Into::into)),
        Command::Opcua { command } => exit(crate::opcua_trust::run(command).map_err(Into::into)),
        Command::Probe(args) => crate::probe::main(args),
        Command::Import { table, out } => points::import(&table, out.as_deref()),
        Command::Export {
            config,
            device,
            bom,
        } => exit(points::export(&config, &device, bom)),
        Command::Enroll {
            config,
            url,
            token,
            name,
        } => exit(enroll(&config, url, &token, name)),
        Command::Status { config, url, json } => exit(status::show(&config, url.as_deref(), json)),
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn templates(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let shipped = crate::config::Templates::shipped();
    let library = match config {
        Some(path) => {
            let config = crate::config::load(path)?;
            shipped.with_dir(&config.gateway.state_dir.join("templates"))?
        }
        None => shipped.clone(),
    };
    print!("{}", crate::templates::report(&library));
    Ok(())
}

fn enroll(
    path: &std::path::Path,
    url: Option<String>,
    token: &str,
    name: Option<String>,
) -> anyhow::Result<()> {
    let config = crate::config::load(path)?;
    let url = url
        .or(config.platform.enroll_url.clone())
        .context("no platform URL: pass --url or set [platform] enroll_url")?;
    let name = name
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|n| !n.is_empty())
        .context("no gateway name: pass --name")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let enrollment = runtime.block_on(crate::enroll::request(&url, token, &name))?;
    let stored = crate::enroll::store(&config.gateway.state_dir, &enrollment)?;
    println!(
        "enrolled as gateway {} of {} ({}); credentials stored in {} (mode 0600)",
        enrollment.gateway_id,
        enrollment.enterprise.name,
        enrollment.enterprise.credit_code,
        stored.display()
    );
    println!("start or restart the agent to use them: systemctl restart fieldlink");
    Ok(())
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = crate::config::load(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        let signals = tokio::spawn(handle_signals(path, shutdown.clone(), reload_tx));
        let controls = crate::Controls {
            shutdown: shutdown.clone(),
            reload_rx: Some(reload_rx),
            notifier: std::sync::Arc::new(crate::notify::Notifier::from_env()),
        };
        let result = crate::run_with(config, controls).await;
        shutdown.cancel();
        signals.abort();
        result.context("fieldlink stopped with an error")
    })
}

/// SIGINT or SIGTERM cancel `shutdown`; SIGHUP re-reads the config file and hands it over
/// if it is valid, or logs its errors and keeps the running configuration.
async fn handle_signals(
    path: PathBuf,
    shutdown: CancellationToken,
    reload_tx: tokio::sync::mpsc::Sender<crate::config::AgentConfig>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the agent with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = hup.recv() => {
                match crate::config::load(&path) {
                    Ok(config) => {
                        tracing::info!(config = %path.display(), "SIGHUP: reloading");
                        let _ = reload_tx.send(config).await;
                    }
                    Err(e) => {
                        for line in e.to_string().lines() {
                            tracing::error!("{line}");
                        }
                        tracing::error!(config = %path.display(), "SIGHUP: the new config has errors; keeping the running one");
                    }
                }
                continue;
            }
            () = shutdown.cancelled() => return,
        }
        shutdown.cancel();
        return;
    }
}

/// Logs to stderr, filtered by `FIELDLINK_LOG` (`info` by default): a level, and levels by
/// target, as in `warn,fieldlink=debug`. A per-target filter rather than `EnvFilter`, whose
/// span and field directives bring a regex engine of their own into the binary.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = || Targets::new().with_default(LevelFilter::INFO);
    let filter = match std::env::var("FIELDLINK_LOG") {
        Ok(directives) => directives.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("FIELDLINK_LOG={directives:?} ignored ({e}); logging at info");
            default()
        }),
        Err(_) => default(),
    };
    // Colours only on a terminal: under systemd or in a file they are escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json()).init(),
    }
}
