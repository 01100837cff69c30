//! Interop with python-snap7, a third-party S7comm implementation: its server read by the
//! agent end to end (through the in-process broker), and `fieldlink probe s7` against it.
//! These need python3 with python-snap7; `.ci/run` installs it and runs them with
//! `--ignored`.

use fieldlink_broker::Broker;
use fieldlink_tests::mosquitto::free_port;
use fieldlink_tests::{Recorder, agent_config, wait_until};
use fieldlink_wire::{Quality, Sample, Value, decode_batch};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `tests/peers/snap7_server.py` on a free port; killed on drop.
struct Snap7 {
    child: Child,
    /// Held so that the server, which exits when its stdin closes, dies with the test.
    _stdin: Option<ChildStdin>,
    addr: SocketAddr,
    /// The points it holds, with the values to expect.
    points: Vec<Json>,
}

impl Snap7 {
    fn start() -> Snap7 {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/snap7_server.py");
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed for the snap7 interop tests (.ci/run installs it)");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let read = BufReader::new(stdout).read_line(&mut first);
        let contents: Json = match read {
            Ok(n) if n > 0 => serde_json::from_str(&first).expect("the server's points as JSON"),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the snap7 server did not start; install it with `pip install python-snap7`"
                );
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "snap7 did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Snap7 {
            child,
            _stdin: stdin,
            addr,
            points: contents["points"].as_array().cloned().unwrap_or_default(),
        }
    }
}

impl Drop for Snap7 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// The `[[device.point]]` tables for the server's points.
fn point_tables(points: &[Json]) -> String {
    let mut toml = String::new();
    for p in points {
        let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
        toml.push_str(&format!(
            "\n[[device.point]]\nname = \"{}\"\naddress = \"{}\"\ntype = \"{}\"\n",
            text("name"),
            text("address"),
            text("type"),
        ));
        for key in ["length", "bit"] {
            if let Some(v) = p.get(key) {
                toml.push_str(&format!("{key} = {v}\n"));
            }
        }
    }
    toml
}

#[tokio::test]
#[ignore = "needs python-snap7; run by .ci/run"]
async fn python_snap7_server_is_read_end_to_end() {
    let server = Snap7::start();
    assert!(server.points.len() >= 15, "the server describes its points");
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-snap7/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[gateway]\nid = \"gw-snap7\"\n\n[platform]\nmqtt = \"mqtt://{}\"\n\n[publish]\nbatch_max_delay = \"50ms\"\n\n[buffer]\nflush_interval = \"100ms\"\n\n[[device]]\nname = \"plc\"\nprotocol = \"s7\"\naddress = \"{}\"\nrack = 0\nslot = 1\npoll = \"100ms\"\n{}",
        broker.addr(),
        server.addr,
        point_tables(&server.points)
    );
    let config = agent_config(&toml, state.path());
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));
    let samples = || -> Vec<Sample> {
        recorder
            .on("/data")
            .iter()
            .flat_map(|m| decode_batch(&m.payload).expect("batch").samples)
            .collect()
    };
    let points = server.points.len();
    wait_until(Duration::from_secs(20), || {
        samples()
            .iter()
            .filter(|s| s.quality == Quality::Good)
            .count()
            >= points * 5
    })
    .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let samples = samples();
    for point in &server.points {
        let name = point["name"].as_str().expect("name");
        let of_point: Vec<&Sample> = samples.iter().filter(|s| &*s.point == name).collect();
        assert!(!of_point.is_empty(), "{name} never published");
        for sample in of_point {
            assert_eq!(sample.quality, Quality::Good, "{name}: {sample:?}");
            assert_eq!(sample.value, expected(point), "{name}");
        }
    }
    recorder.stop().await;
}

#[tokio::test]
#[ignore = "needs python-snap7; run by .ci/run"]
async fn probe_s7_shows_python_snap7_bytes_in_every_type() {
    let server = Snap7::start();
    let plugin = fieldlink::plugins::plugin("s7").expect("the s7 plugin");
    let mut request = fieldlink_collector_api::plugin::ProbeRequest {
        target: format!("tcp://{}", server.addr),
        address: Some("DB1.DBW0".to_owned()),
        count: Some(16),
        timeout: Duration::from_secs(2),
        settings: [("rack", "0"), ("slot", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };
    let table = plugin.probe(request.clone()).await.expect("probe");
    println!("{table}");
    let row = |tokens: &[&str]| {
        table.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.len() >= tokens.len() && words[..tokens.len()] == *tokens
        })
    };
    // speed is an INT at DBW0, temperature a REAL at DBD2.
    assert!(row(&["DB1.DBW0", "64086", "-1450"]), "{table}");
    assert!(row(&["DB1.DBD2"]) && table.contains("123.456"), "{table}");

    // A block that does not exist, and a server that is gone.
    request.address = Some("DB9.DBW0".to_owned());
    let error = plugin.probe(request.clone()).await.expect_err("DB9");
    println!("DB9: error: {error}");
    assert!(error.to_string().contains("PLC item error 0A"), "{error}");
    drop(server);
    request.address = Some("DB1.DBW0".to_owned());
    let error = plugin.probe(request).await.expect_err("gone");
    println!("server gone: error: {error}");
    assert!(
        error.to_string().starts_with("cannot reach tcp://"),
        "{error}"
    );
}
