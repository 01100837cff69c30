//! The agent as a service: its status endpoint, systemd notifications and reload.

use crate::faults::{Agent, loopback, write_config};
use fieldlink_broker::Broker;
use fieldlink_testkit::mosquitto::free_port;
use fieldlink_testkit::{CountingDevice, Recorder, counted_values, counting_config, loss_report};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.0 GET; returns the status code and the body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

fn with_status(toml: &str, port: u16) -> String {
    format!("{toml}\n[status]\nlisten = \"127.0.0.1:{port}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_status_and_metrics_describe_the_running_pipeline() {
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-status/#").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &with_status(
            &counting_config("gw-status", device.addr(), broker.addr(), "20ms"),
            port,
        ),
    );
    let agent = Agent::start(&config);
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| counted_values(m).0.len() >= 50)
            .await,
        "no data flowing"
    );
    // Let the once-a-second sampler see the flow.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (code, body) = get(port, "/healthz").await.expect("healthz answers");
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let (code, body) = get(port, "/status").await.expect("status answers");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(status["gateway"], "gw-status");
    assert_eq!(status["healthy"], true);
    let device_status = &status["devices"][0];
    assert_eq!(device_status["name"], "counter");
    assert_eq!(device_status["connected"], true);
    assert!(
        device_status["cycles"].as_u64().unwrap_or(0) > 10,
        "{device_status}"
    );
    assert!(
        device_status["samples_collected"].as_u64().unwrap_or(0) > 10,
        "{device_status}"
    );
    assert_eq!(status["mqtt"]["connected"], true);
    assert!(status["mqtt"]["published_batches"].as_u64().unwrap_or(0) > 0);
    assert!(
        status["outbox"]["append_bytes_per_s"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{}",
        status["outbox"]
    );
    assert!(
        status["outbox"]["retention_hours"].as_f64().unwrap_or(0.0) > 0.0,
        "{}",
        status["outbox"]
    );

    let (code, body) = get(port, "/metrics").await.expect("metrics answer");
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    let collected = scrape.samples.iter().find(|s| {
        s.metric.starts_with("fieldlink_samples_collected")
            && s.labels.get("device") == Some("counter")
    });
    assert!(
        collected.is_some(),
        "no per-device collected counter in:\n{body}"
    );
    assert!(
        value("fieldlink_published_samples_total")
            .or(value("fieldlink_published_samples"))
            .unwrap_or(0.0)
            > 0.0,
        "{body}"
    );
    assert_eq!(value("fieldlink_mqtt_connected"), Some(1.0), "{body}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("fieldlink_publish_seconds")),
        "no publish latency histogram:\n{body}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("fieldlink_cycle_seconds")),
        "no cycle-time histogram:\n{body}"
    );

    let summary = std::process::Command::new(env!("CARGO_BIN_EXE_fieldlink"))
        .args(["status", "--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("fieldlink status");
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    assert!(
        text.contains("gateway gw-status") && text.contains("healthy") && text.contains("counter"),
        "{text}"
    );

    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success());
    device.stop().await;
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    let config = write_config(
        dir.path(),
        &with_status(
            &counting_config("gw-notify", device.addr(), broker.addr(), "50ms"),
            free_port(),
        ),
    );
    let socket_env = socket_path.display().to_string();
    let agent = Agent::start_with_env(
        &config,
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "1000000")],
    );
    let mut heard = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while heard
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 3
    {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await else {
            break;
        };
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    agent.signal("TERM");
    while !heard.iter().any(|m| m == "STOPPING=1") {
        let Ok(Ok(n)) =
            tokio::time::timeout_at(deadline + Duration::from_secs(5), socket.recv(&mut buf)).await
        else {
            break;
        };
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    device.stop().await;
    assert!(status.success());
    assert_eq!(
        heard.first().map(String::as_str),
        Some("READY=1"),
        "{heard:?}"
    );
    assert!(
        heard.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 3,
        "{heard:?}"
    );
    assert_eq!(
        heard.last().map(String::as_str),
        Some("STOPPING=1"),
        "{heard:?}"
    );
}

fn two_device_config(
    gateway: &str,
    a: SocketAddr,
    b: Option<SocketAddr>,
    broker: SocketAddr,
) -> String {
    let mut toml = counting_config(gateway, a, broker, "10ms");
    if let Some(b) = b {
        toml.push_str(&format!(
            "\n[[device]]\nname = \"counter-b\"\nprotocol = \"modbus-tcp\"\naddress = \"{b}\"\npoll = \"10ms\"\n\n[[device.point]]\nname = \"reads\"\naddress = 0\ntype = \"u32\"\n"
        ));
    }
    toml
}

fn values_of(messages: &[fieldlink_testkit::Message], device: &str) -> Vec<u64> {
    let mut values = Vec::new();
    for m in messages.iter().filter(|m| m.topic.ends_with("/data")) {
        for s in fieldlink_wire::decode_batch(&m.payload)
            .expect("batch")
            .samples
        {
            if &*s.device == device
                && let fieldlink_wire::Value::Int(v) = s.value
            {
                values.push(v as u64);
            }
        }
    }
    values
}

/// SIGHUP with a valid config adds a device without restarting the running one; SIGHUP
/// with an invalid config changes nothing; under load, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_config_refuses_an_invalid_one_and_loses_nothing() {
    let broker = Broker::start(loopback()).expect("broker");
    let a = CountingDevice::start(loopback()).await;
    let b = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-hup/#").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &with_status(
            &two_device_config("gw-hup", a.addr(), None, broker.addr()),
            port,
        ),
    );
    let agent = Agent::start(&config);
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| values_of(m, "counter").len()
                >= 50)
            .await,
        "no data flowing"
    );

    write_config(
        dir.path(),
        &with_status(
            &two_device_config("gw-hup", a.addr(), Some(b.addr()), broker.addr()),
            port,
        ),
    );
    agent.signal("HUP");
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| values_of(m, "counter-b").len()
                >= 50)
            .await,
        "the added device was not read after SIGHUP"
    );

    std::fs::write(&config, "[gateway]\nid = \"gw-hup\"\nbogus = 1\n").expect("write bad config");
    agent.signal("HUP");
    let before = values_of(&recorder.messages(), "counter-b").len();
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| values_of(m, "counter-b").len()
                >= before + 50)
            .await,
        "an invalid config stopped the running devices"
    );
    let (code, _) = get(port, "/healthz").await.expect("healthz");
    assert_eq!(code, 200);

    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success());
    let connections_a = a.connections();
    let (served_a, served_b) = (a.stop().await, b.stop().await);
    let messages = recorder.messages();
    let (missing_a, _) = loss_report(&values_of(&messages, "counter"), served_a);
    let (missing_b, _) = loss_report(&values_of(&messages, "counter-b"), served_b);
    assert_eq!(
        connections_a, 1,
        "the unchanged device was reconnected by a reload"
    );
    assert!(
        missing_a.is_empty(),
        "device a lost {} samples across the reloads: {:?}",
        missing_a.len(),
        &missing_a[..missing_a.len().min(10)]
    );
    assert!(
        missing_b.is_empty(),
        "device b lost {} samples: {:?}",
        missing_b.len(),
        &missing_b[..missing_b.len().min(10)]
    );
    recorder.stop().await;
}

/// A log written to a file (or the journal) carries no terminal colour codes, and a
/// `FIELDLINK_LOG` that does not parse is said, not silently ignored.
#[test]
fn logs_to_a_file_are_plain_text() {
    let broker = Broker::start(loopback()).expect("broker");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[gateway]\nid = \"gw-log\"\n\n[platform]\nmqtt = \"mqtt://{}\"\n\n\
             [[device]]\nname = \"sim\"\nprotocol = \"simulator\"\npoll = \"100ms\"\n\
             [[device.point]]\nname = \"p\"\nsignal = \"sine\"\n\n\
             [status]\nlisten = \"127.0.0.1:0\"\n",
            broker.addr()
        ),
    );
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_fieldlink"))
        .args(["run", "--config"])
        .arg(&config)
        .env("FIELDLINK_LOG", "fieldlink=loud")
        .stderr(log)
        .spawn()
        .expect("start the agent");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while std::time::Instant::now() < deadline && !text.contains("fieldlink running") {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(text.contains("fieldlink running"), "{text}");
    assert!(
        text.contains("FIELDLINK_LOG=\"fieldlink=loud\" ignored"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
}
