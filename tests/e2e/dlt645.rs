//! Interop with the `dlt645` package's meter server, a third-party implementation of
//! DL/T 645-2007, on one end of a socat pty pair: the agent reads it end to end (through
//! the in-process broker) and `fieldlink probe dlt645` finds and reads it. These need
//! python3 with `dlt645` and socat; `.ci/run` installs them and runs these with
//! `--ignored`.

use crate::rtu::PtyPair;
use fieldlink_broker::Broker;
use fieldlink_tests::{Recorder, agent_config, wait_until};
use fieldlink_wire::{Quality, Sample, Value, decode_batch};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `tests/peers/dlt645_meter.py` on the pty end `port`; killed on drop.
struct PyMeter {
    child: Child,
    _stdin: Option<ChildStdin>,
    points: Vec<Json>,
}

impl PyMeter {
    fn start(port: &str, address: &str) -> PyMeter {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/dlt645_meter.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", port, "--address", address])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed for the dlt645 interop tests (.ci/run installs it)");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let contents: Json = match BufReader::new(stdout).read_line(&mut first) {
            Ok(n) if n > 0 => serde_json::from_str(&first).expect("the meter's points as JSON"),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the dlt645 meter did not start; install it with `pip install dlt645`");
            }
        };
        PyMeter {
            child,
            _stdin: stdin,
            points: contents["points"].as_array().cloned().unwrap_or_default(),
        }
    }
}

impl Drop for PyMeter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs python3 with dlt645, and socat; run by .ci/run"]
async fn the_dlt645_packages_meter_is_read_end_to_end_and_by_probe() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    let meter = PyMeter::start(&pty.path("device").display().to_string(), "000012345678");
    assert_eq!(meter.points.len(), 4, "the meter describes its points");
    let line = pty.path("agent").display().to_string();

    // The probe first: the wildcard read a lone meter answers.
    let plugin = fieldlink::plugins::plugin("dlt645").expect("the dlt645 plugin");
    let table = plugin
        .probe(fieldlink_collector_api::plugin::ProbeRequest {
            target: format!("serial://{line}?baud=9600"),
            address: Some("00010000".to_owned()),
            count: None,
            timeout: Duration::from_secs(2),
            settings: Default::default(),
        })
        .await
        .expect("probe");
    println!("{table}");
    assert!(
        table.contains("forward active energy = 12345.67 kWh"),
        "{table}"
    );

    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-dlt645/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let mut toml = format!(
        "[gateway]\nid = \"gw-dlt645\"\n\n[platform]\nmqtt = \"mqtt://{}\"\n\n[publish]\nbatch_max_delay = \"50ms\"\n\n[buffer]\nflush_interval = \"100ms\"\n\n[[device]]\nname = \"meter\"\nprotocol = \"dlt645\"\nserial = \"{line}\"\nbaud = 9600\nmeter = \"000012345678\"\npoll = \"300ms\"\n",
        broker.addr()
    );
    for p in &meter.points {
        toml.push_str(&format!(
            "\n[[device.point]]\nname = \"{}\"\naddress = \"{}\"\n",
            p["name"].as_str().unwrap_or_default(),
            p["address"].as_str().unwrap_or_default()
        ));
    }
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(
        agent_config(&toml, state.path()),
        stop.clone(),
    ));
    let samples = || -> Vec<Sample> {
        recorder
            .on("/data")
            .iter()
            .flat_map(|m| decode_batch(&m.payload).expect("batch").samples)
            .collect()
    };
    wait_until(Duration::from_secs(20), || {
        samples()
            .iter()
            .filter(|s| s.quality == Quality::Good)
            .count()
            >= 8
    })
    .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let samples = samples();
    for p in &meter.points {
        let name = p["name"].as_str().expect("name");
        let got: Vec<&Sample> = samples.iter().filter(|s| &*s.point == name).collect();
        assert!(!got.is_empty(), "{name} never published");
        let expected = Value::Float(p["value"].as_f64().expect("value"));
        for sample in got {
            assert_eq!(sample.quality, Quality::Good, "{name}: {sample:?}");
            assert_eq!(sample.value, expected, "{name}");
        }
    }
    recorder.stop().await;
}
