//! Modbus RTU end to end: the agent reads RTU buses (over TCP from a tokio-modbus
//! RTU-over-TCP server, and on a serial line through a socat pty pair) and publishes
//! through the in-process broker; a silent slave on the bus must not slow the others.

use fieldlink_broker::Broker;
use fieldlink_tests::{Recorder, agent_config};
use fieldlink_wire::{Quality, Sample, Value, decode_batch};
use std::collections::BTreeMap;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// Units 1 to 4 answer (holding 0..2: the unit, then 1000 + the unit); others are silent,
/// like a slave that is off.
#[derive(Clone, Copy)]
struct Meters;

impl Service for Meters {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let unit = u16::from(req.slave);
        ready(match req.request {
            _ if !(1..=4).contains(&unit) => Ok(None),
            Request::ReadHoldingRegisters(0, 2) => Ok(Some(Response::ReadHoldingRegisters(vec![
                unit,
                1000 + unit,
            ]))),
            _ => Err(ExceptionCode::IllegalDataAddress),
        })
    }
}

/// Serves [`Meters`] with RTU framing over TCP on a free port.
async fn rtu_over_tcp_server() -> (SocketAddr, JoinHandle<()>) {
    use tokio_modbus::server::rtu_over_tcp::{Server, accept_tcp_connection};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let new_service = |_peer| Ok(Some(Meters));
        let on_connected =
            |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
        let _ = Server::new(listener).serve(&on_connected, |_| {}).await;
    });
    (addr, task)
}

/// A `[[device]]` per unit on one bus (`link` is the bus's keys), reading holding 0..2.
fn bus_config(
    gateway: &str,
    broker: SocketAddr,
    protocol: &str,
    link: &str,
    units: &[u8],
) -> String {
    let mut toml = format!(
        "[gateway]\nid = \"{gateway}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n[publish]\nbatch_max_delay = \"50ms\"\n\n[buffer]\nflush_interval = \"100ms\"\n"
    );
    for unit in units {
        toml.push_str(&format!(
            "\n[[device]]\nname = \"meter-{unit}\"\nprotocol = \"{protocol}\"\n{link}\nunit = {unit}\npoll = \"200ms\"\ntimeout = \"100ms\"\n\n[[device.point]]\nname = \"unit\"\naddress = 0\n\n[[device.point]]\nname = \"serial\"\naddress = 1\n"
        ));
    }
    toml
}

/// Every sample published under `gateway`, by device.
fn samples_by_device(recorder: &Recorder) -> BTreeMap<String, Vec<Sample>> {
    let mut by_device: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for message in recorder.on("/data") {
        let batch = decode_batch(&message.payload).expect("a batch");
        for sample in batch.samples {
            by_device
                .entry(sample.device.to_string())
                .or_default()
                .push(sample);
        }
    }
    for samples in by_device.values_mut() {
        samples.sort_by_key(|s| s.ts);
    }
    by_device
}

fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[tokio::test]
async fn the_agent_reads_an_rtu_bus_whose_silent_slave_does_not_slow_the_others() {
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let (device, server) = rtu_over_tcp_server().await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-rtu/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let link = format!("address = \"{device}\"");
    let toml = bus_config(
        "gw-rtu",
        broker.addr(),
        "modbus-rtu-over-tcp",
        &link,
        &[1, 2, 3, 4, 5],
    );
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(
        agent_config(&toml, state.path()),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    server.abort();

    let by_device = samples_by_device(&recorder);
    let mut report = Vec::new();
    for unit in 1..=5u16 {
        let name = format!("meter-{unit}");
        let samples = by_device.get(&name).cloned().unwrap_or_default();
        let serials: Vec<&Sample> = samples.iter().filter(|s| &*s.point == "serial").collect();
        let ts: Vec<i64> = serials.iter().map(|s| s.ts).collect();
        let gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
        report.push(format!(
            "{name}: {} samples of `serial`, median interval {} ms",
            serials.len(),
            if gaps.is_empty() {
                0
            } else {
                median(gaps.clone())
            }
        ));
        if unit == 5 {
            assert!(
                serials
                    .iter()
                    .all(|s| s.quality == Quality::Bad("timeout".into())),
                "{report:?}"
            );
        } else {
            assert!(
                serials
                    .iter()
                    .all(|s| s.value == Value::Int(i64::from(1000 + unit))),
                "{name}: {serials:?}"
            );
        }
        // Four seconds at 200 ms: 20 polls, less a few at the edges on a busy machine.
        assert!(
            (15..=21).contains(&serials.len()),
            "{name} kept its poll rate: {report:?}"
        );
        assert!(
            (median(gaps) - 200).abs() <= 40,
            "{name}: median interval within 20% of the poll: {report:?}"
        );
    }
    println!("agent, RTU over TCP, poll 200 ms, unit 5 silent:");
    for line in &report {
        println!("  {line}");
    }
    recorder.stop().await;
}

/// A pseudo-terminal pair made by socat; killed on drop.
pub(crate) struct PtyPair {
    child: Child,
    dir: tempfile::TempDir,
}

impl PtyPair {
    /// Starts socat, or returns `None` (saying why) when it is not installed and
    /// `FIELDLINK_REQUIRE_SOCAT` is not `1`; with it set, a missing socat fails the test.
    pub(crate) fn start() -> Option<PtyPair> {
        let dir = tempfile::tempdir().expect("tempdir");
        let end = |name: &str| dir.path().join(name);
        let spawned = Command::new("socat")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", end("agent").display()))
            .arg(format!("pty,raw,echo=0,link={}", end("device").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let required = std::env::var("FIELDLINK_REQUIRE_SOCAT").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "socat is required (FIELDLINK_REQUIRE_SOCAT=1) but cannot be run: {e}; install it with `apt-get install -y socat`"
                );
                eprintln!("SKIPPED: socat not found ({e}); install it to test the serial path");
                return None;
            }
        };
        let pair = PtyPair { child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !(pair.path("agent").exists() && pair.path("device").exists()) {
            assert!(
                std::time::Instant::now() < deadline,
                "socat made no pty pair"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(pair)
    }

    pub(crate) fn path(&self, end: &str) -> PathBuf {
        self.dir.path().join(end)
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_agent_reads_a_serial_line_through_a_pty_pair() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let device_end = pty.path("device").display().to_string();
    let port = tokio_serial::SerialStream::open(&tokio_serial::new(&device_end, 9600))
        .expect("open the device end of the pty");
    let server = tokio::spawn(async move {
        let _ = tokio_modbus::server::rtu::Server::new(port)
            .serve_forever(Meters)
            .await;
    });
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-serial/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let link = format!(
        "serial = \"{}\"\nbaud = 9600\nparity = \"none\"",
        pty.path("agent").display()
    );
    let toml = bus_config("gw-serial", broker.addr(), "modbus-rtu", &link, &[1, 2]);
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(
        agent_config(&toml, state.path()),
        stop.clone(),
    ));
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let by_device = samples_by_device(&recorder);
            let good = |name: &str| {
                by_device.get(name).map_or(0, |s| {
                    s.iter().filter(|s| s.quality == Quality::Good).count()
                })
            };
            if good("meter-1") >= 6 && good("meter-2") >= 6 {
                return by_device;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    server.abort();
    let by_device = arrived.expect("both meters read over the serial line");
    for unit in [1u16, 2] {
        for sample in &by_device[&format!("meter-{unit}")] {
            let expected = if &*sample.point == "unit" {
                unit
            } else {
                1000 + unit
            };
            assert_eq!(sample.value, Value::Int(i64::from(expected)), "{sample:?}");
        }
    }
    recorder.stop().await;
}
