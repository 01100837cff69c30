//! Interop with pymodbus, a third-party Modbus implementation: its TCP server read by the
//! agent end to end through mosquitto, its RTU framing over TCP read by a
//! `modbus-rtu-over-tcp` bus, and `fieldlink probe` against it. These need python3 with
//! pymodbus 3 and mosquitto; `.ci/run` installs them and runs these with `--ignored`.

use fieldlink_tests::mosquitto::{Mosquitto, free_port};
use fieldlink_tests::{Recorder, agent_config, wait_until};
use fieldlink_wire::{Quality, Sample, Value, decode_batch};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `tests/peers/pymodbus_server.py` running on a free port; killed on drop.
struct Pymodbus {
    child: Child,
    /// Held so that the server, which exits when its stdin closes, dies with the test.
    _stdin: Option<ChildStdin>,
    addr: SocketAddr,
    /// What the server says it holds, by unit: its points with the values to expect.
    contents: Json,
}

impl Pymodbus {
    /// Starts the server with Modbus ASCII framing on the serial port (a pty end) at `path`.
    fn start_ascii(path: &str, units: &str) -> Pymodbus {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/pymodbus_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--serial", path, "--framer", "ascii", "--units", units])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed for the pymodbus interop tests");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let contents: Json = match BufReader::new(stdout).read_line(&mut first) {
            Ok(n) if n > 0 => serde_json::from_str(&first).expect("the server's contents"),
            _ => {
                let _ = child.kill();
                panic!("the pymodbus server did not start");
            }
        };
        // The serial server opens its port after printing; give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        Pymodbus {
            child,
            _stdin: stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            contents,
        }
    }

    /// Starts the server with `framer` ("socket" or "rtu") for `units`.
    fn start(framer: &str, units: &str) -> Pymodbus {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/pymodbus_server.py");
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(&script)
            .args([
                "--port",
                &port.to_string(),
                "--framer",
                framer,
                "--units",
                units,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "python3 must be installed for the pymodbus interop tests (.ci/run installs it)",
            );
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let read = BufReader::new(stdout).read_line(&mut first);
        let contents: Json = match read {
            Ok(n) if n > 0 => serde_json::from_str(&first).expect("the server's contents as JSON"),
            _ => {
                let _ = child.kill();
                panic!(
                    "the pymodbus server did not start; install it with `pip install 'pymodbus==3.*'`"
                );
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pymodbus did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Pymodbus {
            child,
            _stdin: stdin,
            addr,
            contents,
        }
    }

    /// The points of `unit`.
    fn points(&self, unit: u8) -> Vec<Json> {
        self.contents[unit.to_string()]["points"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Pymodbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[[device.point]]` tables for the server's points.
fn point_tables(points: &[Json]) -> String {
    let mut toml = String::new();
    for p in points {
        let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
        toml.push_str(&format!(
            "\n[[device.point]]\nname = \"{}\"\narea = \"{}\"\naddress = {}\ntype = \"{}\"\norder = \"{}\"\n",
            text("name"),
            text("area"),
            p["address"],
            text("type"),
            text("order"),
        ));
        if let Some(length) = p.get("length") {
            toml.push_str(&format!("length = {length}\n"));
        }
    }
    toml
}

/// The value the agent must publish for a point the server describes.
fn expected(point: &Json) -> Value {
    match &point["value"] {
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Text(s.clone()),
        Json::Number(n) if point["type"] == "f32" || point["type"] == "f64" => {
            Value::Float(n.as_f64().unwrap_or(f64::NAN))
        }
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_u64().map(Value::UInt))
            .unwrap_or(Value::None),
        other => panic!("unexpected value {other}"),
    }
}

/// Runs the agent with `devices` (`[[device]]` tables) publishing to a fresh mosquitto,
/// until every device has published `cycles` all-good cycles (or 20 s pass); returns the
/// good samples by device.
async fn run_agent(gateway: &str, devices: &str, cycles: usize) -> BTreeMap<String, Vec<Sample>> {
    let port = free_port();
    let _broker = Mosquitto::start(&format!("listener {port} 127.0.0.1"), &[port]);
    let broker = SocketAddr::from(([127, 0, 0, 1], port));
    let recorder = Recorder::start(broker, &format!("fieldlink/v1/{gateway}/#")).await;
    let state = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[gateway]\nid = \"{gateway}\"\n\n[platform]\nmqtt = \"mqtt://{broker}\"\n\n[publish]\nbatch_max_delay = \"50ms\"\n\n[buffer]\nflush_interval = \"100ms\"\n{devices}"
    );
    let config = agent_config(&toml, state.path());
    let names: Vec<String> = config.devices.iter().map(|d| d.name.to_string()).collect();
    let points: usize = config.devices.iter().map(|d| d.points.len()).sum();
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));
    let collect = |recorder: &Recorder| {
        let mut by_device: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for message in recorder.on("/data") {
            for sample in decode_batch(&message.payload).expect("batch").samples {
                by_device
                    .entry(sample.device.to_string())
                    .or_default()
                    .push(sample);
            }
        }
        by_device
    };
    wait_until(Duration::from_secs(20), || {
        let by_device = collect(&recorder);
        let good: usize = by_device
            .values()
            .map(|s| s.iter().filter(|s| s.quality == Quality::Good).count())
            .sum();
        names.iter().all(|n| by_device.contains_key(n)) && good >= points * cycles
    })
    .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let by_device = collect(&recorder);
    recorder.stop().await;
    by_device
}

/// Checks every published sample of `device` against the server's `points`.
fn check_values(by_device: &BTreeMap<String, Vec<Sample>>, device: &str, points: &[Json]) {
    let samples = by_device
        .get(device)
        .unwrap_or_else(|| panic!("nothing from {device}: {by_device:?}"));
    for point in points {
        let name = point["name"].as_str().expect("name");
        let of_point: Vec<&Sample> = samples.iter().filter(|s| &*s.point == name).collect();
        assert!(!of_point.is_empty(), "{device}/{name} never published");
        for sample in of_point {
            assert_eq!(sample.quality, Quality::Good, "{device}/{name}: {sample:?}");
            assert_eq!(sample.value, expected(point), "{device}/{name}");
        }
    }
}

#[tokio::test]
#[ignore = "needs pymodbus; run by .ci/run"]
async fn pymodbus_tcp_server_is_read_end_to_end_through_mosquitto() {
    let server = Pymodbus::start("socket", "1");
    let points = server.points(1);
    assert!(points.len() >= 12, "the server describes its points");
    let devices = format!(
        "\n[[device]]\nname = \"pym\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\nunit = 1\npoll = \"100ms\"\n{}",
        server.addr,
        point_tables(&points)
    );
    let by_device = run_agent("gw-pymodbus", &devices, 5).await;
    check_values(&by_device, "pym", &points);
}

#[tokio::test]
#[ignore = "needs pymodbus; run by .ci/run"]
async fn pymodbus_rtu_framing_over_tcp_is_read_by_an_rtu_bus_of_two_units() {
    let server = Pymodbus::start("rtu", "1,2");
    let mut devices = String::new();
    for unit in [1u8, 2] {
        devices.push_str(&format!(
            "\n[[device]]\nname = \"pym-{unit}\"\nprotocol = \"modbus-rtu-over-tcp\"\naddress = \"{}\"\nunit = {unit}\npoll = \"100ms\"\ntimeout = \"500ms\"\n{}",
            server.addr,
            point_tables(&server.points(unit))
        ));
    }
    let by_device = run_agent("gw-pymodbus-rtu", &devices, 5).await;
    for unit in [1u8, 2] {
        check_values(&by_device, &format!("pym-{unit}"), &server.points(unit));
    }
}

#[tokio::test]
#[ignore = "needs pymodbus; run by .ci/run"]
async fn probe_shows_pymodbus_registers_in_every_type_and_order() {
    let server = Pymodbus::start("socket", "1");
    let args = fieldlink::probe::ProbeArgs {
        protocol: "modbus".to_owned(),
        target: format!("tcp://{}", server.addr),
        unit: 1,
        area: fieldlink_collector_api::Area::Holding,
        address: Some("0".to_owned()),
        count: Some(10),
        timeout: Duration::from_secs(1),
        rack: None,
        slot: None,
        family: None,
        meter: None,
        settings: Vec::new(),
    };
    let reading = fieldlink::probe::read(&args).await.expect("probe");
    let table = fieldlink::probe::render(&reading);
    println!("{table}");
    // temperature is an f32 in ABCD at 0, flow an f32 in CDAB at 2: the table shows
    // each under its order.
    let temperature = server.points(1)[0]["value"].to_string();
    let flow = server.points(1)[1]["value"].to_string();
    let row = |address: &str, order: &str, float: &str| {
        table.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let start = usize::from(words.first() == Some(&address));
            words.get(start) == Some(&order) && words.last() == Some(&float)
        })
    };
    assert!(row("0", "ABCD", &temperature), "{temperature}\n{table}");
    assert!(row("", "CDAB", &flow), "{flow}\n{table}");

    // rtu-tcp against the RTU framer, and the errors of a wrong unit and a refused port.
    let rtu = Pymodbus::start("rtu", "1");
    let args = fieldlink::probe::ProbeArgs {
        target: format!("rtu-tcp://{}", rtu.addr),
        ..args
    };
    let reading = fieldlink::probe::read(&args)
        .await
        .expect("probe over rtu-tcp");
    println!("{}", fieldlink::probe::render(&reading));
    let wrong_unit = fieldlink::probe::ProbeArgs {
        unit: 9,
        timeout: Duration::from_millis(300),
        ..args.clone()
    };
    let error = fieldlink::probe::read(&wrong_unit)
        .await
        .expect_err("unit 9");
    println!("unit 9: error: {error}");
    drop(rtu);
    let error = fieldlink::probe::read(&args).await.expect_err("refused");
    println!("server gone: error: {error}");
    assert!(
        error.to_string().starts_with("cannot reach rtu-tcp://"),
        "{error}"
    );
}

#[tokio::test]
#[ignore = "needs pymodbus and socat; run by .ci/run"]
async fn pymodbus_ascii_on_a_serial_line_is_read_by_an_ascii_bus_of_two_units() {
    let Some(pty) = crate::rtu::PtyPair::start() else {
        return;
    };
    let server = Pymodbus::start_ascii(&pty.path("device").display().to_string(), "1,2");
    let line = pty.path("agent").display().to_string();
    let mut devices = String::new();
    for unit in [1u8, 2] {
        devices.push_str(&format!(
            "\n[[device]]\nname = \"ascii-{unit}\"\nprotocol = \"modbus-ascii\"\nserial = \"{line}\"\nbaud = 9600\ndata_bits = 8\nparity = \"none\"\nunit = {unit}\npoll = \"300ms\"\ntimeout = \"500ms\"\n{}",
            point_tables(&server.points(unit))
        ));
    }
    let by_device = run_agent("gw-pymodbus-ascii", &devices, 3).await;
    for unit in [1u8, 2] {
        check_values(&by_device, &format!("ascii-{unit}"), &server.points(unit));
    }
}
