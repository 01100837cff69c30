//! The retained `status` with each device's health, as a subscriber of the real broker
//! receives it from the agent running in this process: a real Modbus TCP device (the
//! simulator's) that stops and starts again, the refresh without a change, a gateway of 500
//! devices, and the batches awaiting the platform's ack.

use crate::faults::loopback;
use fieldlink::RunError;
use fieldlink_broker::Broker;
use fieldlink_simulator::modbus_device::{self, demo_register_map};
use fieldlink_testkit::{Message, Recorder};
use fieldlink_wire::{Ack, ConfigState, DeviceHealth, GatewayState, Status, Topics, decode_batch};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The agent's pipeline in this process, its state in a temporary directory.
pub(crate) struct InProcessAgent {
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RunError>>>,
    state: tempfile::TempDir,
}

impl InProcessAgent {
    /// Runs the agent on `toml` (whose `[gateway]` gets a `state_dir` of its own).
    pub(crate) fn start(toml: &str) -> Self {
        Self::start_in(toml, tempfile::tempdir().expect("tempdir"))
    }

    /// Runs the agent on `toml` with its state in `state` (say, a stopped agent's).
    pub(crate) fn start_in(toml: &str, state: tempfile::TempDir) -> Self {
        let toml = toml.replace(
            "[gateway]\n",
            &format!("[gateway]\nstate_dir = \"{}\"\n", state.path().display()),
        );
        let config = fieldlink::config::parse(&toml, "status-test.toml")
            .unwrap_or_else(|e| panic!("the test's config is refused:\n{e}"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(fieldlink::run(config, shutdown.clone()));
        InProcessAgent {
            shutdown,
            task: Some(task),
            state,
        }
    }

    /// Stops it as SIGTERM does, within 30 s; returns its state directory.
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the agent stops within 30 s")
            .expect("the agent does not panic")
            .expect("the agent ran");
        let placeholder = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.state, placeholder)
    }
}

impl Drop for InProcessAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The simulator's Modbus TCP device (its demo register map) on a port that outlives it,
/// so that it can be stopped and started again where the agent looks for it.
struct SimulatedPress {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimulatedPress {
    /// Serves on `addr` (port 0: any free port), retrying for a few seconds while the port
    /// is still held by its previous incarnation.
    async fn start(addr: SocketAddr) -> Self {
        let mut listener = TcpListener::bind(addr).await;
        for _ in 0..100 {
            if listener.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            listener = TcpListener::bind(addr).await;
        }
        let listener = listener.unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        let addr = listener.local_addr().expect("device address");
        let stop = CancellationToken::new();
        let task = tokio::spawn(modbus_device::serve(
            listener,
            demo_register_map(),
            stop.clone(),
        ));
        SimulatedPress { addr, stop, task }
    }

    /// Closes the port and every connection to it.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the device stops within 5 s")
            .expect("the device does not panic")
            .expect("the device served");
    }
}

/// A port on loopback where nothing listens: connections to it are refused.
async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.expect("bind");
    listener.local_addr().expect("addr")
}

pub(crate) fn statuses(messages: &[Message]) -> impl Iterator<Item = (&Message, Status)> {
    messages
        .iter()
        .filter(|m| m.topic.ends_with("/status"))
        .map(|m| {
            let status = serde_json::from_slice(&m.payload)
                .unwrap_or_else(|e| panic!("a status that does not parse ({e}): {:?}", m.payload));
            (m, status)
        })
}

/// The newest status received.
pub(crate) fn latest(recorder: &Recorder) -> Option<Status> {
    statuses(&recorder.messages()).last().map(|(_, s)| s)
}

/// Waits (bounded) until the newest status received satisfies `done`, and returns it; on
/// timeout, fails naming `what` and showing the newest status.
pub(crate) async fn wait_for_status(
    recorder: &Recorder,
    limit: Duration,
    what: &str,
    done: impl Fn(&Status) -> bool,
) -> Status {
    let reached = recorder
        .wait_for(limit, |m| {
            statuses(m).last().is_some_and(|(_, status)| done(&status))
        })
        .await;
    assert!(
        reached,
        "no status with {what} within {limit:?}; the newest: {:#?}",
        latest(recorder)
    );
    latest(recorder).expect("a status")
}

fn device<'s>(status: &'s Status, name: &str) -> &'s DeviceHealth {
    status
        .devices
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the status: {status:#?}"))
}

/// A Modbus press polled every 100 ms and a simulated line, with the status refreshed
/// every `refresh`.
fn press_and_line(gateway: &str, broker: SocketAddr, press: SocketAddr, refresh: &str) -> String {
    format!(
        r#"
[gateway]
id = "{gateway}"

[platform]
mqtt = "mqtt://{broker}"

[publish]
batch_max_delay = "100ms"

[status]
listen = "127.0.0.1:0"
refresh = "{refresh}"

[[device]]
name = "press-1"
protocol = "modbus-tcp"
address = "{press}"
poll = "100ms"
timeout = "500ms"

[[device.point]]
name = "temperature"
address = 0
type = "f32"

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "100ms"

[[device.point]]
name = "ambient"
signal = "sine"
"#
    )
}

/// A press that stops answering shows `connected: false` with its last error in the
/// retained status within a few seconds, failing at every poll without a status per poll,
/// and `connected: true` without an error once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_goes_down_and_comes_back_shows_so_in_the_retained_status() {
    let gateway = "gw-health";
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/status")).await;
    let press = SimulatedPress::start(loopback()).await;
    let press_addr = press.addr;
    let agent = InProcessAgent::start(&press_and_line(gateway, broker.addr(), press_addr, "60s"));

    let up = wait_for_status(&recorder, Duration::from_secs(15), "press-1 read", |s| {
        let press = device(s, "press-1");
        press.connected && press.last_good_ms.is_some() && press.last_error.is_none()
    })
    .await;
    assert_eq!(up.state, GatewayState::Online);
    assert_eq!(
        up.config,
        Some(ConfigState::default()),
        "no platform config yet"
    );
    assert_eq!(up.resumed_after_crash, None, "a fresh state directory");
    let names: Vec<&str> = up.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["press-1", "line-sim"], "configuration order");
    assert_eq!(
        (
            device(&up, "press-1").protocol.as_str(),
            device(&up, "line-sim").protocol.as_str()
        ),
        ("modbus-tcp", "simulator")
    );

    let statuses_before = statuses(&recorder.messages()).count();
    let stopped_at = Instant::now();
    press.stop().await;
    let down = wait_for_status(
        &recorder,
        Duration::from_secs(5),
        "press-1 down with an error",
        |s| {
            let press = device(s, "press-1");
            !press.connected && press.last_error.is_some()
        },
    )
    .await;
    let noticed_in = stopped_at.elapsed();
    let press_down = device(&down, "press-1");
    assert!(press_down.errors >= 1, "{press_down:?}");
    assert!(press_down.last_good_ms.is_some(), "it was read before");
    assert!(
        device(&down, "line-sim").connected,
        "the other device is unaffected"
    );

    // A subscriber that comes later gets the down state as the retained message.
    let late = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/status")).await;
    assert!(
        late.wait_for(Duration::from_secs(5), |m| !m.is_empty())
            .await,
        "no retained status"
    );
    let retained = &late.messages()[0];
    assert!(retained.retain, "delivered as the retained message");
    let retained: Status = serde_json::from_slice(&retained.payload).expect("status");
    assert!(!device(&retained, "press-1").connected, "{retained:#?}");
    late.stop().await;

    // Down for 3 s more, failing every 100 ms: about 30 failed polls and reconnect
    // attempts, yet a status only when the state or the reason changes, never more than
    // one a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outage = stopped_at.elapsed();
    let during_outage = statuses(&recorder.messages()).count() - statuses_before;
    let errors_now = device(&latest(&recorder).expect("status"), "press-1").errors;
    let press = SimulatedPress::start(press_addr).await;
    let back = wait_for_status(
        &recorder,
        Duration::from_secs(20),
        "press-1 back without an error",
        |s| {
            let press = device(s, "press-1");
            press.connected && press.last_error.is_none()
        },
    )
    .await;
    let press_back = device(&back, "press-1");
    assert!(
        press_back.last_good_ms > press_down.last_good_ms,
        "read again: {press_back:?} after {press_down:?}"
    );
    assert!(press_back.errors >= errors_now, "errors only count up");
    eprintln!(
        "press-1 down in the status {noticed_in:?} after it stopped; {during_outage} statuses \
         in a {outage:?} outage; {} errors counted when it was back",
        press_back.errors
    );
    assert!(
        during_outage as u64 <= outage.as_secs() + 1,
        "{during_outage} statuses in {outage:?}: changes cause at most one a second"
    );

    agent.stop().await;
    let last = wait_for_status(&recorder, Duration::from_secs(5), "offline", |s| {
        s.state == GatewayState::Offline
    })
    .await;
    assert!(
        last.devices.is_empty(),
        "the offline status carries no health"
    );
    press.stop().await;
    recorder.stop().await;
}

/// Without any change the status still goes out every `[status] refresh` (60 s by
/// default, 2 s here), with the outbox's and the devices' counters brought up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_goes_out_again_every_refresh_period_without_a_change() {
    const REFRESH: Duration = Duration::from_secs(2);
    let gateway = "gw-refresh";
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/status")).await;
    let press = SimulatedPress::start(loopback()).await;
    let agent = InProcessAgent::start(&press_and_line(gateway, broker.addr(), press.addr, "2s"));
    let healthy = |s: &Status| {
        s.devices.len() == 2
            && s.devices
                .iter()
                .all(|d| d.connected && d.last_error.is_none())
    };
    wait_for_status(
        &recorder,
        Duration::from_secs(15),
        "both devices up",
        healthy,
    )
    .await;
    let settled = statuses(&recorder.messages()).count();
    assert!(
        recorder
            .wait_for(Duration::from_secs(15), |m| statuses(m).count()
                >= settled + 4)
            .await,
        "fewer than 4 statuses in 15 s with a refresh of {REFRESH:?}"
    );
    let messages = recorder.messages();
    let refreshed: Vec<(&Message, Status)> = statuses(&messages).skip(settled - 1).collect();
    for pair in refreshed.windows(2) {
        let [(earlier_message, earlier), (later_message, later)] = pair else {
            unreachable!("windows of 2")
        };
        assert!(healthy(later), "no change: {later:#?}");
        assert_eq!(
            (later.awaiting_ack_batches, later.oldest_awaiting_ack_age_s),
            (Some(0), None),
            "delete_on = \"puback\" (not enrolled): nothing awaits the platform"
        );
        let gap = Duration::from_millis(
            u64::try_from(later_message.received_ms - earlier_message.received_ms)
                .expect("in order"),
        );
        // The period, give or take delivery on a loaded machine.
        assert!(
            gap >= REFRESH - Duration::from_millis(500) && gap <= REFRESH * 2,
            "statuses {gap:?} apart with a refresh of {REFRESH:?}"
        );
        let (before, after) = (device(earlier, "press-1"), device(later, "press-1"));
        assert!(
            after.last_good_ms > before.last_good_ms,
            "the counters are brought up to date: {before:?} then {after:?}"
        );
    }
    agent.stop().await;
    press.stop().await;
    recorder.stop().await;
}

/// A gateway of 500 devices (half of them read from a real Modbus device, half refusing
/// connections) publishes one status listing all 500, each failing one with its error, and
/// its size stays bounded, even were every error as long as the bound allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_of_500_devices_lists_them_all_within_a_bounded_size() {
    const DEVICES: usize = 500;
    /// The status's size with real errors (measured: about 71 KB)...
    const BOUND: usize = 128 << 10;
    /// ... and with every error at its longest.
    const WORST_CASE_BOUND: usize = 256 << 10;
    let gateway = "gw-500";
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/status")).await;
    let press = SimulatedPress::start(loopback()).await;
    let dead = dead_port().await;
    let mut toml = format!(
        "[gateway]\nid = \"{gateway}\"\n\n[platform]\nmqtt = \"mqtt://{}\"\n\n\
         [status]\nlisten = \"127.0.0.1:0\"\n",
        broker.addr()
    );
    for i in 0..DEVICES {
        let (name, address) = if i % 2 == 0 {
            (format!("workshop-{}-press-{i:03}", i / 100), press.addr)
        } else {
            (format!("workshop-{}-meter-{i:03}", i / 100), dead)
        };
        toml.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"modbus-tcp\"\naddress = \"{address}\"\n\
             poll = \"1s\"\ntimeout = \"500ms\"\n\n[[device.point]]\nname = \"temperature\"\n\
             address = 0\ntype = \"f32\"\n"
        ));
    }
    let agent = InProcessAgent::start(&toml);

    let all_known = |s: &Status| {
        s.devices.len() == DEVICES
            && s.devices.iter().all(|d| {
                if d.name.contains("press") {
                    d.connected && d.last_good_ms.is_some() && d.last_error.is_none()
                } else {
                    !d.connected && d.last_error.is_some()
                }
            })
    };
    let status = wait_for_status(
        &recorder,
        Duration::from_secs(30),
        "all 500 devices read or failing",
        all_known,
    )
    .await;
    let size = statuses(&recorder.messages())
        .last()
        .map(|(m, _)| m.payload.len())
        .expect("a status");
    let names: Vec<&str> = status.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names[0], "workshop-0-press-000");
    assert_eq!(names[DEVICES - 1], "workshop-4-meter-499");
    let distinct: std::collections::HashSet<&str> = names.iter().copied().collect();
    assert_eq!(distinct.len(), DEVICES, "each device once");

    let mut worst_case = status.clone();
    for d in &mut worst_case.devices {
        d.last_error = Some("x".repeat(DeviceHealth::LAST_ERROR_MAX_CHARS));
        d.last_good_ms = Some(i64::MAX);
        d.errors = u64::MAX;
    }
    let worst_size = serde_json::to_vec(&worst_case).expect("json").len();
    eprintln!(
        "status of {DEVICES} devices: {size} bytes ({} per device); with every error at its \
         longest: {worst_size} bytes; a failing device's error: {:?}",
        size / DEVICES,
        device(&status, "workshop-0-meter-001").last_error
    );
    assert!(size < BOUND, "{size} bytes");
    assert!(worst_size < WORST_CASE_BOUND, "{worst_size} bytes");

    agent.stop().await;
    press.stop().await;
    recorder.stop().await;
}

/// Publishes `payload` retained at QoS 1 on `topic`, as the platform publishes its acks,
/// and returns once the broker has taken it (bounded to 10 s).
async fn publish_retained(broker: SocketAddr, topic: &str, payload: Vec<u8>) {
    let options = MqttOptions::new(
        "status-test-platform",
        broker.ip().to_string(),
        broker.port(),
    );
    let (client, mut events) = AsyncClient::new(options, 8);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await
        .expect("queue the publish");
    let taken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("publishing to {topic}: {e}"),
            }
        }
    })
    .await;
    assert!(taken.is_ok(), "no PUBACK for {topic} within 10 s");
    let _ = client.try_disconnect();
}

/// With `delete_on = "platform_ack"` every status carries the batches awaiting the
/// platform's ack and the oldest one's age: a batch the broker took waits, in the retained
/// status too, while no ack comes, and once the platform's ack covers it the next status
/// shows none awaiting and no age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_the_batches_awaiting_the_platform_ack_until_an_ack_covers_them() {
    let gateway = "gw-awaiting";
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/+")).await;
    // One reading at the start and none for an hour: its batch is all there is to ack, and
    // nothing is sent again meanwhile.
    let agent = InProcessAgent::start(&format!(
        r#"
[gateway]
id = "{gateway}"

[platform]
mqtt = "mqtt://{broker}"

[publish]
batch_max_delay = "100ms"
delete_on = "platform_ack"
ack_timeout = "1h"

[status]
listen = "127.0.0.1:0"
refresh = "1s"

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "1h"

[[device.point]]
name = "ambient"
signal = "sine"
"#,
        broker = broker.addr()
    ));

    let waiting = wait_for_status(
        &recorder,
        Duration::from_secs(20),
        "a batch awaiting the ack for a second or more",
        |s| {
            s.awaiting_ack_batches.is_some_and(|n| n >= 1)
                && s.oldest_awaiting_ack_age_s.is_some_and(|age| age >= 1)
        },
    )
    .await;
    assert_eq!(
        waiting.backlog_batches, waiting.awaiting_ack_batches,
        "every batch in the outbox was sent and awaits the ack: {waiting:#?}"
    );
    let late = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/status")).await;
    assert!(
        late.wait_for(Duration::from_secs(5), |m| !m.is_empty())
            .await,
        "no retained status"
    );
    let retained: Status = serde_json::from_slice(&late.messages()[0].payload).expect("status");
    assert!(
        retained.awaiting_ack_batches.is_some_and(|n| n >= 1)
            && retained.oldest_awaiting_ack_age_s.is_some(),
        "the retained status shows them too: {retained:#?}"
    );
    late.stop().await;

    let mut sent: Vec<u64> = recorder
        .on("/data")
        .iter()
        .map(|m| decode_batch(&m.payload).expect("a batch").seq)
        .collect();
    sent.sort_unstable();
    sent.dedup();
    let ack = serde_json::to_vec(&Ack::of_stored(sent)).expect("ack JSON");
    publish_retained(broker.addr(), &Topics::new(gateway).ack, ack).await;
    let acked = wait_for_status(
        &recorder,
        Duration::from_secs(20),
        "none awaiting once the ack covers them",
        |s| s.awaiting_ack_batches == Some(0),
    )
    .await;
    assert_eq!(
        (acked.backlog_batches, acked.oldest_awaiting_ack_age_s),
        (Some(0), None),
        "{acked:#?}"
    );

    agent.stop().await;
    recorder.stop().await;
}
