//! The incumbent's comparison (issue 21): 10 Modbus TCP devices x 100 holding registers,
//! served by pymodbus (a third-party simulator, `bench/peers/pymodbus_devices.py`, one
//! server and port per device), polled every second by the agent (a child process) and
//! published to mosquitto on loopback, counted by the subscriber.
//!
//! Figures over a window after a warm-up, each also as a ratio to the Node-RED baseline
//! (node-red-contrib-modbus on the same scenario, measured for the issue): the agent's CPU
//! time (user + system, all its threads) per million points delivered at the broker, its
//! RSS, and the payload bytes per point on the wire; and the agent's context switches per
//! second, its wake-ups.

use crate::agent::Agent;
use crate::broker::{Broker, BrokerChoice};
use crate::measure::Summary;
use crate::modbus_scale::modbus_devices;
use crate::subscriber::Subscriber;
use anyhow::Context;
use fieldlink_testkit::mosquitto::free_port;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Node-RED's CPU seconds per million points in the side-by-side run.
const NODE_RED_CPU_S_PER_M: f64 = 14.25;
/// Node-RED's resident memory then, in MB.
const NODE_RED_RSS_MB: f64 = 105.6;
/// Node-RED's bytes per point on the wire then (bare value arrays).
const NODE_RED_BYTES_PER_POINT: f64 = 6.4;

/// The simulator, run with `python3 -c`.
const PYMODBUS_DEVICES: &str = include_str!("../peers/pymodbus_devices.py");

/// The modbus-1s scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Modbus TCP devices, each a pymodbus server on its own port.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Holding registers (points) per device, read in one request.
    #[arg(long, default_value_t = 100)]
    registers: u16,
    /// Poll period (the comparison's is 1 s).
    #[arg(long, default_value = "1s")]
    poll: String,
    /// The agent's `[publish] compression`: "none" (JSON), "zstd" or "packed".
    #[arg(long, default_value = "none")]
    compression: String,
    /// Seconds before the window starts.
    #[arg(long, default_value_t = 15)]
    warmup: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// The broker.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Mosquitto)]
    broker: BrokerChoice,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let broker = Broker::start(args.broker)?;
    let subscriber = Subscriber::start(broker.addr(), false).await?;
    let devices = Pymodbus::start(args.devices, args.registers)?;
    let mut agent = Agent::start(|state| {
        format!(
            "[gateway]\nid = \"gw-modbus-1s\"\nstate_dir = \"{state}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n\
             [publish]\ncompression = \"{compression}\"\n\n[status]\nlisten = \"127.0.0.1:0\"\n{devices}",
            state = state.display(),
            broker = broker.addr(),
            compression = args.compression,
            devices = modbus_devices(&devices.addresses, args.registers, &args.poll),
        )
    })?;

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    agent.check_running()?;
    eprintln!(
        "agent pid {}: measuring for {} s",
        agent.process.pid, args.window
    );
    let tally = subscriber.tally();
    let load = |o: &std::sync::atomic::AtomicU64| o.load(std::sync::atomic::Ordering::Relaxed);
    let (samples0, bytes0, cpu0, switches0, started) = (
        subscriber.samples(),
        load(&tally.payload_bytes),
        agent.process.cpu_time(),
        agent.process.context_switches(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.window)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let points = (subscriber.samples() - samples0) as f64;
    let bytes = (load(&tally.payload_bytes) - bytes0) as f64;
    let cpu = (agent.process.cpu_time() - cpu0).as_secs_f64();
    let switches = agent.process.context_switches().saturating_sub(switches0) as f64;
    let rss_mb = agent.process.rss_mib() * f64::from(1 << 20) / 1e6;
    agent.check_running()?;
    agent.stop().await?;
    drop(devices);
    subscriber.stop().await;
    anyhow::ensure!(points > 0.0, "no points delivered in the window");

    let cpu_per_m = cpu / points * 1e6;
    let bytes_per_point = bytes / points;
    Ok(Summary::new("modbus-1s")
        .add("points_per_s", points / elapsed, "")
        .add("cpu_s_per_m_points", cpu_per_m, "")
        .add("cpu_vs_node_red", cpu_per_m / NODE_RED_CPU_S_PER_M, "")
        .add("rss", rss_mb, "MB")
        .add("rss_vs_node_red", rss_mb / NODE_RED_RSS_MB, "")
        .add("bytes_per_point", bytes_per_point, "B")
        .add(
            "bytes_vs_node_red",
            bytes_per_point / NODE_RED_BYTES_PER_POINT,
            "",
        )
        .add("context_switches_per_s", switches / elapsed, "")
        .note(broker.name())
        .note(format!(
            "{} pymodbus devices x {} registers every {}, compression {}",
            args.devices, args.registers, args.poll, args.compression
        )))
}

/// `bench/peers/pymodbus_devices.py` serving one device per port; killed when dropped.
struct Pymodbus {
    child: std::process::Child,
    /// Where the devices listen, in order.
    addresses: Vec<SocketAddr>,
}

impl Pymodbus {
    /// Starts `devices` devices of `registers` registers and waits until each listens.
    fn start(devices: usize, registers: u16) -> anyhow::Result<Pymodbus> {
        let addresses: Vec<SocketAddr> = (0..devices)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let ports: Vec<String> = addresses.iter().map(|a| a.port().to_string()).collect();
        let child = Command::new("python3")
            .args(["-c", PYMODBUS_DEVICES, "--ports", &ports.join(",")])
            .args(["--registers", &registers.to_string()])
            // The script exits when its stdin closes, so it cannot outlive the bench.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start python3 (pymodbus 3 is needed: pip install 'pymodbus==3.*')")?;
        let mut simulator = Pymodbus { child, addresses };
        let deadline = Instant::now() + Duration::from_secs(20);
        for address in &simulator.addresses {
            while TcpStream::connect(address).is_err() {
                if let Some(status) = simulator.child.try_wait()? {
                    anyhow::bail!(
                        "the pymodbus devices exited ({status}); is pymodbus 3 installed?"
                    );
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "pymodbus did not listen on {address} within 20 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(simulator)
    }
}

impl Drop for Pymodbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
