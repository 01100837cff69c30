//! OPC UA servers read by the agent end to end: the in-process async-opcua server through
//! the in-process broker (restart included), and a third-party python asyncua server
//! through mosquitto, checked value by value (CI installs both peers).

use ::opcua::types::Variant;
use fieldlink_broker::Broker;
use fieldlink_opcua::testing::{
    ANALOG, ANALOG_INITIAL, FOLDER, TestServer, TestServerOptions, create_certificate, every_type,
};
use fieldlink_tests::mosquitto::{Mosquitto, free_port};
use fieldlink_tests::{Message, Recorder, agent_config};
use fieldlink_wire::{Quality, Sample, Value, decode_batch};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every sample in the recorded data batches, in arrival order.
fn samples(messages: &[Message]) -> Vec<Sample> {
    messages
        .iter()
        .filter(|m| m.topic.ends_with("/data"))
        .filter_map(|m| decode_batch(&m.payload).ok())
        .flat_map(|b| b.samples)
        .collect()
}

fn latest(messages: &[Message]) -> HashMap<String, Sample> {
    samples(messages)
        .into_iter()
        .map(|s| (s.point.to_string(), s))
        .collect()
}

/// An agent config with one OPC UA device reading `points` (name, NodeId) from `endpoint`,
/// with `device_keys` (lines) added to the device. The state directory is in the file, so
/// the OPC UA certificates live there (they are placed when the file is parsed).
fn opcua_config(
    gateway: &str,
    state: &Path,
    broker: SocketAddr,
    endpoint: &str,
    device_keys: &str,
    points: &[(String, String)],
) -> String {
    let mut toml = format!(
        r#"
[gateway]
id = "{gateway}"
state_dir = "{state}"

[platform]
mqtt = "mqtt://{broker}"

[publish]
batch_max_samples = 500
batch_max_delay = "50ms"

[buffer]
flush_interval = "100ms"

[[device]]
name = "cnc-7"
protocol = "opcua"
endpoint = "{endpoint}"
publishing_interval = "100ms"
timeout = "2s"
{device_keys}
"#,
        state = state.display(),
    );
    for (name, node) in points {
        let _ = write!(
            toml,
            "\n[[device.point]]\nname = \"{name}\"\nnode = \"{node}\"\n"
        );
    }
    toml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opcua_server_is_read_end_to_end_and_data_resumes_after_it_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-opcua/#").await;
    let points: Vec<(String, String)> = every_type()
        .into_iter()
        .map(|(name, _)| {
            (
                name.to_owned(),
                TestServer::node_text(&format!("{FOLDER}.{name}")),
            )
        })
        .collect();
    let state = dir.path().join("agent");
    let config = agent_config(
        &opcua_config(
            "gw-opcua",
            &state,
            broker.addr(),
            &server.endpoint(),
            "",
            &points,
        ),
        &state,
    );
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));

    let n = points.len();
    assert!(
        recorder
            .wait_for(Duration::from_secs(30), |m| latest(m).len() == n)
            .await,
        "not every point arrived: {:#?}",
        latest(&recorder.messages())
    );
    let got = latest(&recorder.messages());
    let good = |name: &str| {
        let s = &got[name];
        assert_eq!(s.quality, Quality::Good, "{s:?}");
        s.value.clone()
    };
    assert_eq!(good("Boolean"), Value::Bool(true));
    assert_eq!(good("UInt64"), Value::UInt(u64::MAX));
    assert_eq!(good("Float"), Value::Float(0.1));
    assert_eq!(good("LocalizedText"), Value::Text("Ein".into()));
    assert_eq!(good("DateTime"), Value::Int(1_764_201_600_000));
    assert_eq!(good("StatusCode"), Value::Text("BadSensorFailure".into()));
    assert!(
        matches!(&got["Guid"].quality, Quality::Bad(e) if e.starts_with("unsupported OPC UA type Guid"))
    );

    // The server goes away: the points go bad; it comes back on the same port: data
    // resumes without restarting the agent.
    let options = server.stop().await;
    assert!(
        recorder
            .wait_for(Duration::from_secs(30), |m| matches!(
                latest(m).get("Counter").map(|s| &s.quality),
                Some(Quality::Bad(e)) if e.starts_with("disconnected")
            ))
            .await,
        "the points did not go bad while the server was down"
    );
    let server = TestServer::start(options).await;
    let counter = format!("{FOLDER}.Counter");
    let resumed = recorder
        .wait_for(Duration::from_secs(40), |m| {
            latest(m)
                .get("Counter")
                .is_some_and(|s| s.quality == Quality::Good)
        })
        .await;
    assert!(resumed, "data did not resume after the server restarted");
    server.set(&counter, Variant::Int32(7));
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| latest(m)
                .get("Counter")
                .is_some_and(|s| s.value == Value::Int(7)))
            .await,
        "a change after the restart did not arrive"
    );

    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_login_and_a_percent_deadband_work_from_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (user_cert, user_key) = create_certificate(dir.path(), "operator", "urn:plant:operator");
    let server = TestServer::start(TestServerOptions {
        secure: true,
        user_certificate: Some(user_cert.clone()),
        ..TestServerOptions::new(&dir.path().join("server"))
    })
    .await;
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-x509/#").await;
    let analog = format!("{FOLDER}.{ANALOG}");
    let state = dir.path().join("agent");
    let device_keys = format!(
        "security = \"sign-and-encrypt\"\ntrust_server_certificate = \"any\"\n\
         user_certificate = \"{}\"\nuser_private_key = \"{}\"",
        user_cert.display(),
        user_key.display()
    );
    // The appended key belongs to the last point, Analog: 5 % of its EURange 0..200.
    let toml = opcua_config(
        "gw-x509",
        &state,
        broker.addr(),
        &server.endpoint(),
        &device_keys,
        &[("Analog".to_owned(), TestServer::node_text(&analog))],
    ) + "deadband_percent = 5.0\n";
    let config = agent_config(&toml, &state);
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));
    let analog_values = |m: &[Message]| -> Vec<Value> {
        samples(m)
            .into_iter()
            .filter(|s| &*s.point == "Analog" && s.quality == Quality::Good)
            .map(|s| s.value)
            .collect()
    };
    assert!(
        recorder
            .wait_for(Duration::from_secs(30), |m| !analog_values(m).is_empty())
            .await,
        "no data with the X.509 login: {:#?}",
        latest(&recorder.messages())
    );
    // 104 and 108 stay within 10 of the last reported 100: only 111 crosses the network.
    for v in [104.0, 108.0, 111.0] {
        server.set(&analog, Variant::Double(v));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| analog_values(m).len() >= 2)
            .await
    );
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let values = analog_values(&recorder.messages());
    recorder.stop().await;
    assert_eq!(
        values,
        [Value::Float(ANALOG_INITIAL), Value::Float(111.0)],
        "the server's percent deadband"
    );
}

/// The python asyncua peer (`tests/peers/opcua_server.py`), killed on drop.
struct PythonServer {
    child: std::process::Child,
    variables: Vec<serde_json::Value>,
}

impl PythonServer {
    fn start(port: u16) -> PythonServer {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/opcua_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 tests/peers/opcua_server.py (pip install asyncua)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the peer's description line");
        let description: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer said {line:?}: {e}"));
        let variables = description["variables"]
            .as_array()
            .expect("variables")
            .clone();
        PythonServer { child, variables }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python asyncua; run by .ci/run"]
async fn a_python_asyncua_server_is_read_value_by_value_through_mosquitto() {
    let port = free_port();
    let peer = tokio::task::spawn_blocking(move || PythonServer::start(port))
        .await
        .expect("peer");
    let mqtt = free_port();
    let _broker = Mosquitto::start(&format!("listener {mqtt} 127.0.0.1"), &[mqtt]);
    let broker = SocketAddr::from(([127, 0, 0, 1], mqtt));
    let recorder = Recorder::start(broker, "fieldlink/v1/gw-interop/#").await;

    let mut points: Vec<(String, String)> = peer
        .variables
        .iter()
        .map(|v| {
            (
                v["name"].as_str().expect("name").to_owned(),
                v["node"].as_str().expect("node").to_owned(),
            )
        })
        .collect();
    points.push((
        "Counter".to_owned(),
        "nsu=urn:fieldlink:interop;s=Plant.Counter".to_owned(),
    ));
    assert!(points.len() >= 100, "only {} variables", points.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = agent_config(
        &opcua_config(
            "gw-interop",
            dir.path(),
            broker,
            &format!("opc.tcp://127.0.0.1:{port}/"),
            "",
            &points,
        ),
        dir.path(),
    );
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));

    let n = points.len();
    let counter_values = |m: &[Message]| {
        let mut values: Vec<Value> = samples(m)
            .into_iter()
            .filter(|s| &*s.point == "Counter" && s.quality == Quality::Good)
            .map(|s| s.value)
            .collect();
        values.dedup();
        values.len()
    };
    let arrived = recorder
        .wait_for(Duration::from_secs(60), |m| {
            latest(m).len() == n && counter_values(m) >= 3
        })
        .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let messages = recorder.messages();
    recorder.stop().await;
    assert!(
        arrived,
        "not every variable arrived: {} of {n}",
        latest(&messages).len()
    );

    let got = latest(&messages);
    let mut mismatches = Vec::new();
    for v in &peer.variables {
        let name = v["name"].as_str().expect("name");
        let sample = &got[name];
        let value = serde_json::to_value(&sample.value).expect("value JSON");
        if sample.quality != Quality::Good || value != v["expected"] {
            mismatches.push(format!(
                "{name} ({}): expected {}, got {value} {:?}",
                v["type"], v["expected"], sample.quality
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_lists_the_variables_and_its_point_blocks_make_a_working_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let args = fieldlink::browse::OpcuaBrowseArgs {
        endpoint: server.endpoint(),
        node: None,
        depth: 4,
        config: None,
        security: "none".to_owned(),
        policy: "auto".to_owned(),
        username: None,
        password: None,
        trust_any: false,
        timeout: "5s".to_owned(),
    };
    let options = fieldlink::browse::options(&args).expect("options");
    let variables = fieldlink_opcua::browse::browse(&options)
        .await
        .expect("browse");
    let text = fieldlink_opcua::browse::render(&server.endpoint(), &variables);
    println!("{text}");
    for (name, _) in every_type() {
        let node = TestServer::node_text(&format!("{FOLDER}.{name}"));
        let found = variables
            .iter()
            .find(|v| v.node == node)
            .unwrap_or_else(|| panic!("{node} not listed:\n{text}"));
        assert_eq!(found.path, format!("{FOLDER}/{name}"));
        assert_eq!(found.access, "rw");
        assert_eq!(found.unsupported.is_some(), name == "Guid", "{found:?}");
    }
    let double = variables
        .iter()
        .find(|v| v.path == "Machine/Double")
        .expect("Double");
    assert_eq!(double.data_type, "Double");
    // The server's own diagnostics are not listed.
    assert!(!text.contains("ServerStatus"), "{text}");

    // The printed blocks, under a gateway header, are a config the agent runs with.
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-browse/#").await;
    let state = dir.path().join("agent");
    let toml = format!(
        "[gateway]\nid = \"gw-browse\"\nstate_dir = \"{}\"\n\n[platform]\nmqtt = \"mqtt://{}\"\n\n{}",
        state.display(),
        broker.addr(),
        text.replace("name = \"CHANGE-ME\"", "name = \"cnc-7\"")
    );
    let config = agent_config(&toml, &state);
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));
    let readable = variables.iter().filter(|v| v.unsupported.is_none()).count();
    assert!(
        recorder
            .wait_for(Duration::from_secs(30), |m| latest(m)
                .values()
                .filter(|s| s.quality == Quality::Good)
                .count()
                == readable)
            .await,
        "the browsed points did not all arrive: {:#?}",
        latest(&recorder.messages())
    );
    assert_eq!(
        latest(&recorder.messages())["Machine.Double"].value,
        Value::Float(2.25)
    );
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    recorder.stop().await;
}
