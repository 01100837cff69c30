//! How small the agent is: the size of the stripped release binary, and its resident memory
//! (VmRSS, and the peak VmHWM) after `settle` seconds of publishing 10 simulated points, and
//! 10,000 (100 devices x 100 points), every second, to a real broker.

use crate::agent::{Agent, binary, simulator_devices};
use crate::broker::{Broker, BrokerChoice};
use crate::measure::Summary;
use crate::subscriber::Subscriber;
use std::time::Duration;

/// The footprint scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds each agent runs before its memory is read.
    #[arg(long, default_value_t = 30)]
    settle: u64,
    /// The broker.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Auto)]
    broker: BrokerChoice,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let binary_bytes = std::fs::metadata(binary()?)?.len() as f64;
    let broker = Broker::start(args.broker)?;
    let subscriber = Subscriber::start(broker.addr(), false).await?;
    let mut summary = Summary::new("footprint").add("binary", binary_bytes / 1e6, "MB");
    for (devices, points, [rss, peak]) in [
        (1, 10, ["rss_10_points", "peak_rss_10_points"]),
        (100, 100, ["rss_10k_points", "peak_rss_10k_points"]),
    ] {
        let before = subscriber.samples();
        let (now, high) = settle(&broker, devices, points, args.settle).await?;
        anyhow::ensure!(
            subscriber.samples() > before,
            "the agent delivered nothing in {} s",
            args.settle
        );
        summary = summary.add(rss, now, "MiB").add(peak, high, "MiB");
    }
    subscriber.stop().await;
    Ok(summary.note(broker.name()))
}

/// Runs an agent with `devices` x `points` simulated points polled every second for
/// `seconds`; returns its RSS and peak RSS then, in MiB.
async fn settle(
    broker: &Broker,
    devices: usize,
    points: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-footprint\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n\
             [status]\nlisten = \"127.0.0.1:0\"\n{devices}",
            state = state.display(),
            broker = broker.addr(),
            devices = simulator_devices(devices, points, "1s"),
        )
    })?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    agent.check_running()?;
    let readings = (agent.process.rss_mib(), agent.process.peak_rss_mib());
    agent.stop().await?;
    Ok(readings)
}
