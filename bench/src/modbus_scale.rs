//! Modbus at plant scale: 1,000 simulated Modbus TCP devices (tokio-modbus servers in this
//! process, one listener and one connection each) x 100 holding registers, polled by the
//! agent (a child process) every second and published through a real broker to the counting
//! subscriber.
//!
//! Figures over a window after a warm-up: points/s delivered; the agent's CPU use in % of one
//! core and its RSS; and the read-cycle time per device (from a poll tick to the last answer
//! of the cycle), p50 and p99, as the agent itself measures it (`DeviceStats`), read from
//! its status endpoint (`/status`, each device's last cycle) every 2 s during the window.

use crate::agent::Agent;
use crate::broker::{Broker, BrokerChoice};
use crate::measure::{Summary, percentile};
use crate::subscriber::Subscriber;
use fieldlink_collector_api::{Area, DataType};
use fieldlink_simulator::Signal;
use fieldlink_simulator::modbus_device::{Mapping, RegisterMap, Source, serve};
use fieldlink_testkit::mosquitto::free_port;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The modbus-scale scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Modbus TCP devices, each on its own port.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Holding registers (points) per device, read in one request.
    #[arg(long, default_value_t = 100)]
    registers: u16,
    /// Poll period.
    #[arg(long, default_value = "1s")]
    poll: String,
    /// Seconds before the window starts.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// The broker.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Auto)]
    broker: BrokerChoice,
}

/// The signals of the registers, in turn, and their scale in the register (the agent
/// scales back): temperatures, ramps, pressures, on/off states.
const REGISTER_SIGNALS: [(Signal, f64); 4] = [
    (Signal::Sine, 100.0),
    (Signal::Ramp, 100.0),
    (Signal::RandomWalk, 100.0),
    (Signal::Toggle, 1.0),
];

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let broker = Broker::start(args.broker)?;
    let subscriber = Subscriber::start(broker.addr(), false).await?;
    let stop_devices = CancellationToken::new();
    let mut addresses = Vec::with_capacity(args.devices);
    for d in 0..args.devices {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addresses.push(listener.local_addr()?);
        tokio::spawn(serve(
            listener,
            register_map(d, args.registers)?,
            stop_devices.child_token(),
        ));
    }
    let status = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-modbus\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n\
             [status]\nlisten = \"{status}\"\n{devices}",
            state = state.display(),
            broker = broker.addr(),
            devices = modbus_devices(&addresses, args.registers, &args.poll),
        )
    })?;

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    agent.check_running()?;
    let (samples0, cpu0, started) = (
        subscriber.samples(),
        agent.process.cpu_time(),
        Instant::now(),
    );
    let mut cycles_ms = Vec::new();
    let mut last_cycles: HashMap<String, u64> = HashMap::new();
    let mut status_answered = false;
    let window = Duration::from_secs(args.window);
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(2).min(window - started.elapsed())).await;
        if let Some(report) = get_status(status).await {
            status_answered = true;
            fresh_cycles(&report, &mut last_cycles, &mut cycles_ms);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let points = (subscriber.samples() - samples0) as f64;
    let cpu = (agent.process.cpu_time() - cpu0).as_secs_f64();
    let (rss, peak) = (agent.process.rss_mib(), agent.process.peak_rss_mib());
    agent.check_running()?;
    agent.stop().await?;
    subscriber.stop().await;
    stop_devices.cancel();
    if !status_answered {
        eprintln!("note: the agent's /status did not answer; cycle times are not available");
    }

    Ok(Summary::new("modbus-scale")
        .add("points_per_s", points / elapsed, "")
        .add("cycle_p50", percentile(&mut cycles_ms, 50.0), "ms")
        .add("cycle_p99", percentile(&mut cycles_ms, 99.0), "ms")
        .add("agent_cpu_of_one_core", cpu / elapsed * 100.0, "%")
        .add("agent_rss", rss, "MiB")
        .add("agent_peak_rss", peak, "MiB")
        .add("cycles_measured", cycles_ms.len() as f64, "")
        .note(broker.name())
        .note(format!(
            "{} devices x {} registers every {}",
            args.devices, args.registers, args.poll
        )))
}

/// Device `index`'s registers: `registers` u16 holding registers from address 0.
fn register_map(index: usize, registers: u16) -> anyhow::Result<RegisterMap> {
    let mut map = RegisterMap::new();
    for r in 0..registers {
        let (signal, scale) = REGISTER_SIGNALS[usize::from(r) % REGISTER_SIGNALS.len()];
        let name = format!("dev{index:04}_r{r:03}");
        map.insert(Mapping::new(
            &name,
            Area::Holding,
            r,
            DataType::U16,
            Source::scaled(signal, &name, scale, 0.0),
        ))?;
    }
    Ok(map)
}

/// `[[device]]` tables of the Modbus devices at `addresses`.
pub(crate) fn modbus_devices(addresses: &[SocketAddr], registers: u16, poll: &str) -> String {
    let mut text = String::new();
    for (d, address) in addresses.iter().enumerate() {
        text.push_str(&format!(
            "\n[[device]]\nname = \"plc-{d:04}\"\nprotocol = \"modbus-tcp\"\naddress = \"{address}\"\npoll = \"{poll}\"\n"
        ));
        for r in 0..registers {
            let (signal, scale) = REGISTER_SIGNALS[usize::from(r) % REGISTER_SIGNALS.len()];
            let kind = match signal {
                Signal::Toggle => "type = \"bool\"".to_owned(),
                _ => format!("scale = {}", 1.0 / scale),
            };
            text.push_str(&format!(
                "[[device.point]]\nname = \"r{r:03}\"\naddress = {r}\n{kind}\n"
            ));
        }
    }
    text
}

/// The agent's `/status` document, or `None` if it does not answer.
pub(crate) async fn get_status(addr: SocketAddr) -> Option<serde_json::Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let body = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| &response[at + 4..])?;
        serde_json::from_slice(body).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Adds the last cycle time of every device that completed a cycle since the last reading.
pub(crate) fn fresh_cycles(
    report: &serde_json::Value,
    last_cycles: &mut HashMap<String, u64>,
    cycles_ms: &mut Vec<f64>,
) {
    let Some(devices) = report.get("devices").and_then(|d| d.as_array()) else {
        return;
    };
    for device in devices {
        let (Some(name), Some(cycles), Some(ms)) = (
            device.get("name").and_then(|v| v.as_str()),
            device.get("cycles").and_then(|v| v.as_u64()),
            device.get("last_cycle_ms").and_then(|v| v.as_f64()),
        ) else {
            continue;
        };
        let seen = last_cycles.insert(name.to_owned(), cycles);
        if seen.is_some_and(|seen| seen != cycles) {
            cycles_ms.push(ms);
        }
    }
}
