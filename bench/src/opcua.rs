//! OPC UA at scale: the in-process async-opcua test server (`fieldlink_opcua::testing`) with
//! 10,000 Double variables that all change every second, read by the agent (a child
//! process) through one subscription with a monitored item per variable, and published
//! through a real broker to the counting subscriber.
//!
//! Figures: the subscription setup time, from the agent's start until the subscriber has
//! every item's initial value (process start, application certificate, session, namespace
//! array, the subscription and its CreateMonitoredItems calls, the first publish, MQTT);
//! then, over a window after a warm-up with the variables changing: samples/s delivered,
//! the agent's CPU use in % of one core and per delivered sample, and its RSS. The server
//! and the subscriber run in this process, so their CPU is not the agent's.

use crate::agent::Agent;
use crate::broker::{Broker, BrokerChoice};
use crate::measure::Summary;
use crate::subscriber::Subscriber;
use fieldlink_opcua::testing::{TestServer, TestServerOptions};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The opcua scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Variables on the server, one monitored item each.
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    /// How often every variable changes, in ms.
    #[arg(long, default_value_t = 1000)]
    change_ms: u64,
    /// The monitored items' sampling interval (agent config syntax).
    #[arg(long, default_value = "100ms")]
    sampling_interval: String,
    /// The subscription's publishing interval (agent config syntax).
    #[arg(long, default_value = "1s")]
    publishing_interval: String,
    /// How long the subscription setup may take, in seconds.
    #[arg(long, default_value_t = 120)]
    setup_limit: u64,
    /// Seconds of changes before the window starts.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// The broker.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Auto)]
    broker: BrokerChoice,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let pki = tempfile::tempdir()?;
    let server = TestServer::start(TestServerOptions {
        bulk: args.items,
        ..TestServerOptions::new(pki.path())
    })
    .await;
    let broker = Broker::start(args.broker)?;
    let subscriber = Subscriber::start(broker.addr(), false).await?;

    // Setup: the variables hold still, so each item delivers exactly its initial value.
    let started = Instant::now();
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-opcua\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n{device}",
            state = state.display(),
            broker = broker.addr(),
            device = opcua_device(&server.endpoint(), args),
        )
    })?;
    let items = args.items as u64;
    while subscriber.samples() < items {
        agent.check_running()?;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(args.setup_limit),
            "only {} of {items} initial values within {} s:\n{}",
            subscriber.samples(),
            args.setup_limit,
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup = started.elapsed().as_secs_f64();

    let stop_changes = CancellationToken::new();
    let changes = tokio::spawn(change_all(
        server,
        args.items,
        Duration::from_millis(args.change_ms.max(1)),
        stop_changes.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    agent.check_running()?;
    let (samples0, cpu0, window_start) = (
        subscriber.samples(),
        agent.process.cpu_time(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.window)).await;
    let elapsed = window_start.elapsed().as_secs_f64();
    let samples = (subscriber.samples() - samples0) as f64;
    let cpu = (agent.process.cpu_time() - cpu0).as_secs_f64();
    let (rss, peak) = (agent.process.rss_mib(), agent.process.peak_rss_mib());
    agent.check_running()?;
    agent.stop().await?;
    stop_changes.cancel();
    if let Ok(server) = changes.await {
        server.stop().await;
    }
    subscriber.stop().await;

    Ok(Summary::new("opcua")
        .add("samples_per_s", samples / elapsed, "")
        .add(
            "offered_per_s",
            args.items as f64 * 1000.0 / args.change_ms.max(1) as f64,
            "",
        )
        .add("setup", setup, "s")
        .add("agent_cpu_of_one_core", cpu / elapsed * 100.0, "%")
        .add("agent_cpu_per_sample", cpu / samples.max(1.0) * 1e6, "us")
        .add("agent_rss", rss, "MiB")
        .add("agent_peak_rss", peak, "MiB")
        .note(broker.name())
        .note(format!(
            "{} items changing every {} ms, sampling {}, publishing {}",
            args.items, args.change_ms, args.sampling_interval, args.publishing_interval
        )))
}

/// Sets every bulk variable to a new value each `period` until `stop`; hands the server
/// back to be stopped.
async fn change_all(
    server: TestServer,
    items: usize,
    period: Duration,
    stop: CancellationToken,
) -> TestServer {
    let nodes: Vec<_> = (0..items)
        .map(|i| server.node(&format!("Bulk.{i}")))
        .collect();
    let mut ticker = tokio::time::interval(period);
    let mut value = 0.0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return server,
            _ = ticker.tick() => {}
        }
        value += 1.0;
        let values: Vec<_> = nodes.iter().map(|n| (n.clone(), value)).collect();
        server.set_many(&values);
    }
}

/// The `[[device]]` table: one OPC UA device with a point per bulk variable.
fn opcua_device(endpoint: &str, args: &Args) -> String {
    let mut text = format!(
        "\n[[device]]\nname = \"opcua-bench\"\nprotocol = \"opcua\"\nendpoint = \"{endpoint}\"\n\
         publishing_interval = \"{}\"\nsampling_interval = \"{}\"\n",
        args.publishing_interval, args.sampling_interval
    );
    for i in 0..args.items {
        let _ = write!(
            text,
            "[[device.point]]\nname = \"v{i:05}\"\nnode = \"{}\"\n",
            TestServer::node_text(&format!("Bulk.{i}"))
        );
    }
    text
}
