//! S7 and MC at plant scale: N simulated PLCs (the simulator's S7 or MELSEC servers in
//! this process, one listener and one connection each) × P word points, polled by the
//! agent (a child process) every second and published through a real broker to the
//! counting subscriber, as `modbus-scale` does for Modbus.
//!
//! Figures over a window after a warm-up: points/s delivered; the agent's CPU in % of one
//! core and in µs per point; its RSS; and the read-cycle time per device, p50 and p99, as
//! the agent measures it, read from its status endpoint every 2 s.

use crate::agent::Agent;
use crate::broker::{Broker, BrokerChoice};
use crate::measure::{Summary, percentile};
use crate::modbus_scale::{fresh_cycles, get_status};
use crate::subscriber::Subscriber;
use fieldlink_simulator::Signal;
use fieldlink_simulator::mc_device::{self, McKind, McMapping, McMemory};
use fieldlink_simulator::modbus_device::Source;
use fieldlink_simulator::s7_device::{self, S7Area, S7Kind, S7Mapping, S7Memory, S7Options};
use fieldlink_testkit::mosquitto::free_port;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The protocol the scenario runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Siemens S7comm (ISO-on-TCP), points as words of DB1.
    S7,
    /// Mitsubishi MC protocol (3E binary), points as D registers.
    Mc,
}

/// The plc-scale scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// The protocol.
    #[arg(long, value_enum, default_value_t = Protocol::S7)]
    protocol: Protocol,
    /// PLCs, each on its own port.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Word points per PLC, contiguous (S7: DB1.DBW0, DBW2...; MC: D0, D1...).
    #[arg(long, default_value_t = 100)]
    points: u16,
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

/// The signals of the points, in turn, and their scale in the word (the agent scales back).
const SIGNALS: [(Signal, f64); 3] = [
    (Signal::Sine, 100.0),
    (Signal::Ramp, 100.0),
    (Signal::RandomWalk, 100.0),
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
        match args.protocol {
            Protocol::S7 => {
                let options = S7Options {
                    pdu_size: 480,
                    remote_tsap: None,
                };
                tokio::spawn(s7_device::serve(
                    listener,
                    s7_memory(d, args.points)?,
                    options,
                    stop_devices.child_token(),
                ));
            }
            Protocol::Mc => {
                tokio::spawn(mc_device::serve(
                    listener,
                    mc_memory(d, args.points)?,
                    stop_devices.child_token(),
                ));
            }
        }
    }
    let status = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let name = match args.protocol {
        Protocol::S7 => "s7",
        Protocol::Mc => "mc",
    };
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-{name}\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n\
             [status]\nlisten = \"{status}\"\n{devices}",
            state = state.display(),
            broker = broker.addr(),
            devices = devices(args.protocol, &addresses, args.points, &args.poll),
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
    let window = Duration::from_secs(args.window);
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(2).min(window - started.elapsed())).await;
        if let Some(report) = get_status(status).await {
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

    Ok(Summary::new(match args.protocol {
        Protocol::S7 => "plc-scale s7",
        Protocol::Mc => "plc-scale mc",
    })
    .add("points_per_s", points / elapsed, "")
    .add("agent_cpu_of_one_core", cpu / elapsed * 100.0, "%")
    .add("cpu_per_point", cpu / points.max(1.0) * 1e6, "us")
    .add("cycle_p50", percentile(&mut cycles_ms, 50.0), "ms")
    .add("cycle_p99", percentile(&mut cycles_ms, 99.0), "ms")
    .add("agent_rss", rss, "MiB")
    .add("agent_peak_rss", peak, "MiB")
    .note(broker.name())
    .note(format!(
        "{} {name} PLCs x {} words every {}",
        args.devices, args.points, args.poll
    )))
}

/// The source of point `p` of device `index`.
fn source(index: usize, p: u16) -> Source {
    let (signal, scale) = SIGNALS[usize::from(p) % SIGNALS.len()];
    let name = format!("dev{index:04}_p{p:03}");
    Source::scaled(signal, &name, scale, 0.0)
}

/// PLC `index`'s DB1: `points` words from byte 0.
fn s7_memory(index: usize, points: u16) -> anyhow::Result<S7Memory> {
    let mut memory = S7Memory::new().area(S7Area::Db(1), u32::from(points) * 2);
    for p in 0..points {
        memory.insert(S7Mapping {
            name: format!("p{p}").into(),
            area: S7Area::Db(1),
            byte: u32::from(p) * 2,
            kind: S7Kind::U16,
            source: source(index, p),
        })?;
    }
    Ok(memory)
}

/// PLC `index`'s D registers: `points` words from D0.
fn mc_memory(index: usize, points: u16) -> anyhow::Result<McMemory> {
    let mut memory = McMemory::new().device(0xA8, false, 12_288);
    for p in 0..points {
        memory.insert(McMapping {
            name: format!("p{p}").into(),
            code: 0xA8,
            number: u32::from(p),
            kind: McKind::U16,
            source: source(index, p),
        })?;
    }
    Ok(memory)
}

/// `[[device]]` tables of the PLCs at `addresses`.
fn devices(protocol: Protocol, addresses: &[SocketAddr], points: u16, poll: &str) -> String {
    let mut text = String::new();
    for (d, address) in addresses.iter().enumerate() {
        let protocol_name = match protocol {
            Protocol::S7 => "s7",
            Protocol::Mc => "mc",
        };
        text.push_str(&format!(
            "\n[[device]]\nname = \"plc-{d:04}\"\nprotocol = \"{protocol_name}\"\naddress = \"{address}\"\npoll = \"{poll}\"\n"
        ));
        for p in 0..points {
            let (_, scale) = SIGNALS[usize::from(p) % SIGNALS.len()];
            let address = match protocol {
                Protocol::S7 => format!("DB1.DBW{}", u32::from(p) * 2),
                Protocol::Mc => format!("D{p}"),
            };
            text.push_str(&format!(
                "[[device.point]]\nname = \"p{p:03}\"\naddress = \"{address}\"\nscale = {}\n",
                1.0 / scale
            ));
        }
    }
    text
}
