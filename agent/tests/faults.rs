//! Fault tests of the real `fieldlink` process: SIGKILL at random moments, SIGTERM under
//! load, a broker that keeps going away, and a buffer cap reached while the broker is down.
//! Ground truth comes from a counting Modbus device: every read it answers is a distinct
//! value, so a gap in the delivered values is a lost sample.

use fieldlink_broker::Broker;
use fieldlink_testkit::{
    CountingDevice, LinkCutter, Message, Recorder, counted_values, counting_config, loss_report,
    max_delivery_delay_ms,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Port 0 on 127.0.0.1: any free port on loopback.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The agent as an operating system process, as systemd runs it.
pub struct Agent {
    child: Child,
}

impl Agent {
    /// Starts `fieldlink run --config CONFIG`.
    pub fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Starts it with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_fieldlink"))
            .args(["run", "--config"])
            .arg(config)
            .env("FIELDLINK_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fieldlink");
        Agent { child }
    }

    /// Sends a signal (`TERM`, `KILL`, `HUP`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for fieldlink") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("fieldlink did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config for `toml` with its state in `dir/state`; returns the file's path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let state = dir.join("state");
    let path = dir.join("agent.toml");
    let toml = toml.replace(
        "[gateway]\n",
        &format!("[gateway]\nstate_dir = \"{}\"\n", state.display()),
    );
    std::fs::write(&path, toml).expect("write config");
    path
}

/// Every batch's payload by seq; panics if one seq was published with two contents.
fn batches_by_seq(messages: &[Message]) -> HashMap<u64, Vec<u8>> {
    let mut by_seq: HashMap<u64, Vec<u8>> = HashMap::new();
    for m in messages.iter().filter(|m| m.topic.ends_with("/data")) {
        let seq = fieldlink_wire::decode_batch(&m.payload)
            .expect("valid batch")
            .seq;
        if let Some(previous) = by_seq.insert(seq, m.payload.clone()) {
            assert_eq!(
                previous, m.payload,
                "seq {seq} was reused for different content"
            );
        }
    }
    by_seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_and_exits_0() {
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-term/#").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &counting_config("gw-term", device.addr(), broker.addr(), "5ms"),
    );
    let agent = Agent::start(&config);
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| counted_values(m).0.len()
                >= 300)
            .await,
        "no data flowing"
    );
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success(), "fieldlink exited with {status}");
    let served = device.stop().await;
    recorder
        .wait_for(Duration::from_secs(5), |m| {
            counted_values(m).0.len() as u64 + 1 >= served
        })
        .await;
    let (values, _) = counted_values(&recorder.messages());
    let (missing, duplicates) = loss_report(&values, served);
    eprintln!(
        "SIGTERM: {served} reads answered, {} delivered, {} missing, {duplicates} duplicates, max delivery delay {} ms",
        values.len(),
        missing.len(),
        max_delivery_delay_ms(&recorder.messages())
    );
    assert!(
        missing.is_empty(),
        "SIGTERM lost {} samples: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    batches_by_seq(&recorder.messages());
    recorder.stop().await;
}

/// kill -9 twenty times at random moments: each restart resumes; the only samples lost are
/// those read in the last flush interval (plus the batch delay) before each kill; no seq is
/// ever reused for different content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_loses_at_most_the_last_flush_interval_each_time() {
    const KILLS: usize = 20;
    const POLL_MS: u64 = 10;
    // flush_interval 200 ms + batch_max_delay 100 ms, and slack for a loaded machine.
    const WINDOW_MS: u64 = 200 + 100 + 400;
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-kill/#").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &counting_config(
            "gw-kill",
            device.addr(),
            broker.addr(),
            &format!("{POLL_MS}ms"),
        ),
    );
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let agent = Agent::start(&config);
        let before = device.served();
        // Wait until this incarnation reads, then kill it at a random moment.
        let started =
            fieldlink_testkit::wait_until(Duration::from_secs(10), || device.served() > before + 5)
                .await;
        assert!(started, "the restarted agent did not resume reading");
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..1500))).await;
        agent.signal("KILL");
        let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(10)))
            .await
            .expect("join");
        assert!(!status.success());
        kills.push(device.served());
    }
    let agent = Agent::start(&config);
    let last_kill = *kills.last().expect("kills");
    let delivered = recorder
        .wait_for(Duration::from_secs(30), |m| {
            counted_values(m).0.iter().any(|&v| v > last_kill + 50)
        })
        .await;
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(
        delivered && status.success(),
        "the final run did not deliver and stop cleanly"
    );
    let served = device.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (values, _) = counted_values(&recorder.messages());
    let (missing, duplicates) = loss_report(&values, served);
    let window = WINDOW_MS / POLL_MS;
    let unexplained: Vec<u64> = missing
        .iter()
        .copied()
        .filter(|&v| !kills.iter().any(|&k| v <= k && v + window > k))
        .collect();
    eprintln!(
        "SIGKILL x{KILLS}: {served} reads answered, {} delivered, {} missing (all within {WINDOW_MS} ms before a kill: {}), {duplicates} duplicates, max delivery delay {} ms",
        values.len(),
        missing.len(),
        unexplained.is_empty(),
        max_delivery_delay_ms(&recorder.messages())
    );
    assert!(
        unexplained.is_empty(),
        "samples lost outside the last flush interval before a kill: {unexplained:?}"
    );
    batches_by_seq(&recorder.messages());
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_ten_times_under_load_loses_nothing() {
    let broker = Broker::start(loopback()).expect("broker");
    let link = LinkCutter::start(broker.addr()).await;
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-flap/#").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &counting_config("gw-flap", device.addr(), link.addr(), "5ms"),
    );
    let agent = Agent::start(&config);
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| counted_values(m).0.len()
                >= 100)
            .await,
        "no data flowing"
    );
    for _ in 0..10 {
        link.cut();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..1500))).await;
        let before = link.connections();
        link.restore();
        // Each restart counts only once the agent is back on the broker: its reconnect
        // backoff may outlast a short up-time, and a restart it never saw tests nothing.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while link.connections() == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..1500))).await;
    }
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(40)))
        .await
        .expect("join");
    assert!(status.success(), "fieldlink exited with {status}");
    let served = device.stop().await;
    recorder
        .wait_for(Duration::from_secs(5), |m| {
            counted_values(m).0.len() as u64 + 1 >= served
        })
        .await;
    let (values, _) = counted_values(&recorder.messages());
    let (missing, duplicates) = loss_report(&values, served);
    eprintln!(
        "broker x10: {served} reads answered, {} delivered, {} missing, {duplicates} duplicates, {} connections, max delivery delay {} ms",
        values.len(),
        missing.len(),
        link.connections(),
        max_delivery_delay_ms(&recorder.messages())
    );
    assert!(
        link.connections() >= 11,
        "the agent reconnected only {} times",
        link.connections()
    );
    assert!(
        missing.is_empty(),
        "lost {} samples: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    recorder.stop().await;
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_a_small_cap_keeps_the_disk_bounded_and_the_newest_data() {
    let broker = Broker::start(loopback()).expect("broker");
    let link = LinkCutter::start(broker.addr()).await;
    link.cut();
    let device = CountingDevice::start(loopback()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = counting_config("gw-cap", device.addr(), link.addr(), "1ms")
        .replace("[buffer]\n", "[buffer]\nmax_size = \"1MiB\"\n");
    let config = write_config(dir.path(), &toml);
    let outbox_file = dir.path().join("state/outbox.redb");
    let agent = Agent::start(&config);
    // About 100 bytes a sample: 1 MiB holds well under 10,000 samples.
    let mut largest = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while device.served() < 30_000 && Instant::now() < deadline {
        largest = largest.max(
            std::fs::metadata(&outbox_file)
                .map(|m| m.len())
                .unwrap_or(0),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-cap/#").await;
    link.restore();
    let newest = device.served();
    let caught_up = recorder
        .wait_for(Duration::from_secs(30), |m| {
            counted_values(m).0.iter().any(|&v| v >= newest)
        })
        .await;
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    device.stop().await;
    assert!(status.success());
    eprintln!("cap 1 MiB: largest outbox file {largest} bytes after {newest} reads");
    assert!(
        largest <= 1 << 20,
        "the outbox grew to {largest} bytes, over its 1 MiB cap"
    );
    assert!(
        caught_up,
        "the newest data did not arrive after the link came back"
    );
    let statuses: Vec<serde_json::Value> = recorder
        .on("/status")
        .iter()
        .filter_map(|m| serde_json::from_slice(&m.payload).ok())
        .collect();
    let evicted = statuses
        .iter()
        .filter_map(|s| s["evicted_batches"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        evicted > 0,
        "evictions are not counted in the status: {statuses:?}"
    );
    let (values, _) = counted_values(&recorder.messages());
    assert!(
        !values.contains(&1),
        "the oldest sample should have been evicted"
    );
    recorder.stop().await;
    link.stop().await;
}

/// The statuses in `messages`, parsed, in arrival order.
fn statuses(messages: &[Message]) -> Vec<serde_json::Value> {
    messages
        .iter()
        .filter(|m| m.topic.ends_with("/status"))
        .filter_map(|m| serde_json::from_slice(&m.payload).ok())
        .collect()
}

/// The seqs of the data batches in `messages`.
fn data_seqs(messages: &[Message]) -> Vec<u64> {
    batches_by_seq(messages).into_keys().collect()
}

/// The retained status a subscriber that connects now gets.
async fn retained_status(broker: SocketAddr, gateway: &str) -> serde_json::Value {
    let late = Recorder::start(broker, &format!("fieldlink/v1/{gateway}/status")).await;
    assert!(
        late.wait_for(Duration::from_secs(5), |m| !m.is_empty())
            .await,
        "no retained status"
    );
    let status = statuses(&late.messages()).swap_remove(0);
    late.stop().await;
    status
}

/// Regression (crash-reserved seqs): after kill -9 the outbox resumes numbering above its
/// reservation; every status of the next run names the skipped seqs (`resumed_after_crash`),
/// also for a subscriber that connects later, and the run after a clean stop names none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_after_a_crash_restart_name_the_skipped_seqs_and_after_a_clean_restart_none() {
    const GATEWAY: &str = "gw-resume";
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), &format!("fieldlink/v1/{GATEWAY}/#")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &counting_config(GATEWAY, device.addr(), broker.addr(), "10ms"),
    );
    let online_count = |m: &[Message]| {
        statuses(m)
            .iter()
            .filter(|s| s["state"] == "online")
            .count()
    };

    // Run 1: killed while publishing.
    let agent = Agent::start(&config);
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| counted_values(m).0.len() >= 30)
            .await,
        "no data flowing"
    );
    agent.signal("KILL");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(10)))
        .await
        .expect("join");
    assert!(!status.success());
    // The broker publishes the will once it has routed everything run 1 sent before.
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| statuses(m)
                .iter()
                .any(|s| s["state"] == "offline"))
            .await,
        "no will after the kill"
    );
    let first_run = recorder.messages();
    let crashed_seqs = data_seqs(&first_run);
    let crashed_max = crashed_seqs.iter().copied().max().expect("run 1 published");
    assert!(
        statuses(&first_run)
            .iter()
            .all(|s| s.get("resumed_after_crash").is_none()),
        "a first start is no restart after a crash: {:?}",
        statuses(&first_run)
    );

    // Run 2: after the crash.
    let agent = Agent::start(&config);
    let flowing = recorder
        .wait_for(Duration::from_secs(15), |m| {
            online_count(m) > online_count(&first_run)
                && data_seqs(m).iter().any(|&seq| seq > crashed_max)
        })
        .await;
    assert!(flowing, "run 2 did not come online and publish");
    let birth = statuses(&recorder.messages())
        .into_iter()
        .rfind(|s| s["state"] == "online")
        .expect("birth");
    let window = &birth["resumed_after_crash"];
    let (Some(durable_seq), Some(resumed_seq)) = (
        window["durable_seq"].as_u64(),
        window["resumed_seq"].as_u64(),
    ) else {
        panic!("the status after a crash does not name the skipped seqs: {birth}");
    };
    assert!(
        durable_seq <= crashed_max + 1 && resumed_seq > crashed_max && resumed_seq > durable_seq,
        "window {window} does not fit run 1's seqs (up to {crashed_max})"
    );
    // Run 2 re-sends what was durable and unacked, below durable_seq, and numbers its own
    // batches from resumed_seq on: nothing in between.
    let second_run: Vec<Message> = recorder.messages()[first_run.len()..].to_vec();
    let second_seqs = data_seqs(&second_run);
    assert!(second_seqs.contains(&resumed_seq), "{second_seqs:?}");
    assert!(
        second_seqs
            .iter()
            .all(|&seq| seq < durable_seq || seq >= resumed_seq),
        "run 2 published seqs inside its crash window {window}: {second_seqs:?}"
    );
    let retained = retained_status(broker.addr(), GATEWAY).await;
    assert_eq!(retained["resumed_after_crash"], *window, "{retained}");

    // A clean stop: the offline status keeps the window (it replaces the retained birth).
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success(), "fieldlink exited with {status}");
    let retained = retained_status(broker.addr(), GATEWAY).await;
    assert_eq!(retained["state"], "offline", "{retained}");
    assert_eq!(retained["resumed_after_crash"], *window, "{retained}");

    // Run 3: after the clean stop, no window.
    let before = recorder.messages();
    let agent = Agent::start(&config);
    let online = recorder
        .wait_for(Duration::from_secs(15), |m| {
            online_count(m) > online_count(&before)
        })
        .await;
    assert!(online, "run 3 did not come online");
    let third_run: Vec<Message> = recorder.messages()[before.len()..].to_vec();
    let third = statuses(&third_run);
    assert!(
        third.iter().all(|s| s.get("resumed_after_crash").is_none()),
        "a clean restart named a crash window: {third:?}"
    );
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success(), "fieldlink exited with {status}");
    device.stop().await;
    recorder.stop().await;
}
