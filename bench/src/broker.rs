//! The broker between the agent and the subscriber: mosquitto when it is installed (as in
//! production and CI), started on a free port for the run; otherwise the in-process rumqttd
//! of the demo and the tests.

use crate::measure::Process;
use anyhow::Context;
use fieldlink_testkit::mosquitto::free_port;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where mosquitto is looked for.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Which broker to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerChoice {
    /// mosquitto if `/usr/sbin/mosquitto` exists, else in-process.
    Auto,
    /// mosquitto (fails if it is not installed).
    Mosquitto,
    /// The in-process rumqttd broker.
    InProcess,
}

/// A running broker.
pub enum Broker {
    /// A mosquitto process, killed when dropped.
    Mosquitto(Mosquitto),
    /// The in-process broker (rumqttd cannot be stopped: one per bench process).
    InProcess(SocketAddr),
}

impl Broker {
    /// Starts the chosen broker.
    pub fn start(choice: BrokerChoice) -> anyhow::Result<Broker> {
        let mosquitto = match choice {
            BrokerChoice::Auto => Path::new(MOSQUITTO).exists(),
            BrokerChoice::Mosquitto => true,
            BrokerChoice::InProcess => false,
        };
        if mosquitto {
            // No limits on the messages in flight or queued towards the subscriber: the
            // bench counts every sample, and mosquitto's defaults (20 in flight, 1000
            // queued) would drop QoS 1 messages to a subscriber that falls behind.
            return Ok(Broker::Mosquitto(Mosquitto::start(0, 0)?));
        }
        static IN_PROCESS: OnceLock<SocketAddr> = OnceLock::new();
        if let Some(addr) = IN_PROCESS.get() {
            return Ok(Broker::InProcess(*addr));
        }
        let addr = fieldlink_broker::Broker::start("127.0.0.1:0".parse()?)?.addr();
        Ok(Broker::InProcess(*IN_PROCESS.get_or_init(|| addr)))
    }

    /// mosquitto with `max_inflight_messages` and `max_queued_messages` per client as given
    /// (0: no limit).
    pub fn mosquitto(max_inflight: u32, max_queued: u32) -> anyhow::Result<Broker> {
        Ok(Broker::Mosquitto(Mosquitto::start(
            max_inflight,
            max_queued,
        )?))
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Broker::Mosquitto(m) => m.addr,
            Broker::InProcess(addr) => *addr,
        }
    }

    /// The broker's name, for the summary.
    pub fn name(&self) -> &'static str {
        match self {
            Broker::Mosquitto(_) => "broker=mosquitto",
            Broker::InProcess(_) => "broker=in-process",
        }
    }

    /// The broker's process, if it runs in its own (for its CPU time).
    pub fn process(&self) -> Option<Process> {
        match self {
            Broker::Mosquitto(m) => Some(Process { pid: m.child.id() }),
            Broker::InProcess(_) => None,
        }
    }
}

/// A mosquitto process on a free loopback port, killed when dropped.
pub struct Mosquitto {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start(max_inflight: u32, max_queued: u32) -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages {max_inflight}\nmax_queued_messages {max_queued}\n\
                 log_dest none\n"
            ),
        )?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {MOSQUITTO}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut mosquitto = Mosquitto {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = mosquitto.child.try_wait()? {
                anyhow::bail!("mosquitto exited ({status})");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "mosquitto did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(mosquitto)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
