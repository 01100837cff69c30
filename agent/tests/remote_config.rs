//! Configuration from the platform, end to end through the embedded broker: the agent
//! running in this process applies a pushed config (a new device's data appears, the
//! unchanged device keeps running), refuses a config that is invalid, oversized, for
//! another gateway or older than the one it runs (the status names why and data keeps
//! flowing), and starts again from its last known good config when the broker holds none.

use crate::faults::loopback;
use crate::status::{InProcessAgent, latest, wait_for_status};
use fieldlink_broker::Broker;
use fieldlink_testkit::{Message, Recorder};
use fieldlink_wire::{ConfigMessage, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The platform's side of the config topic: publishes retained QoS 1 messages and waits
/// for each PUBACK.
struct ConfigWriter {
    client: AsyncClient,
    acks: tokio::sync::mpsc::Receiver<()>,
    task: JoinHandle<()>,
}

impl ConfigWriter {
    fn start(broker: SocketAddr) -> Self {
        let mut options = MqttOptions::new(
            "platform-config-writer",
            broker.ip().to_string(),
            broker.port(),
        );
        options.set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut events) = AsyncClient::new(options, 16);
        let (acks_tx, acks) = tokio::sync::mpsc::channel(16);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = acks_tx.send(()).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        ConfigWriter { client, acks, task }
    }

    async fn publish(&mut self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .expect("publish");
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .expect("PUBACK within 10 s")
            .expect("writer task");
    }
}

impl Drop for ConfigWriter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn local_config(gateway: &str, broker: SocketAddr) -> String {
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

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "100ms"

[[device.point]]
name = "ambient"
"#
    )
}

/// The devices of a pushed config: the local file's device unchanged, and a new one.
const PUSHED: &str = r#"[publish]
batch_max_delay = "100ms"

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "100ms"

[[device.point]]
name = "ambient"

[[device]]
name = "oven"
protocol = "simulator"
poll = "100ms"

[[device.point]]
name = "temperature"
signal = "ramp"
"#;

/// Data messages holding a sample of `device` received after `since` (an index into the
/// recorder's messages).
fn samples_of(messages: &[Message], since: usize, device: &str) -> usize {
    messages
        .iter()
        .skip(since)
        .filter(|m| m.topic.ends_with("/data"))
        .filter(|m| {
            let batch = fieldlink_wire::decode_batch(&m.payload).expect("a batch");
            batch.samples.iter().any(|s| &*s.device == device)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_config_is_applied_refused_when_bad_and_kept_for_the_next_start() {
    let gateway = "gw-remote";
    let topics = Topics::new(gateway);
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), &format!("fieldlink/v1/{gateway}/+")).await;
    let mut writer = ConfigWriter::start(broker.addr());
    let agent = InProcessAgent::start(&local_config(gateway, broker.addr()));
    wait_for_status(
        &recorder,
        Duration::from_secs(15),
        "the first status",
        |s| s.devices.len() == 1,
    )
    .await;

    let pushed_at = Instant::now();
    let mark = recorder.messages().len();
    writer
        .publish(
            &topics.config,
            ConfigMessage::new(gateway, 1, PUSHED.into()).to_json(),
        )
        .await;
    let applied = wait_for_status(
        &recorder,
        Duration::from_secs(15),
        "config v1 applied",
        |s| s.config.as_ref().is_some_and(|c| c.version == Some(1)) && s.devices.len() == 2,
    )
    .await;
    assert_eq!(applied.config.as_ref().and_then(|c| c.error.clone()), None);
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| samples_of(m, mark, "oven") > 0)
            .await,
        "the new device's data arrives"
    );
    eprintln!("PUT-to-first-sample in process: {:?}", pushed_at.elapsed());
    let line_sim = applied
        .devices
        .iter()
        .find(|d| d.name == "line-sim")
        .expect("line-sim");
    assert!(
        line_sim.last_good_ms.is_some(),
        "the unchanged device kept running"
    );

    // Refused, each with its reason in the status; version 1 keeps running.
    let refusals: [(Vec<u8>, &str); 3] = [
        (
            ConfigMessage::new(
                gateway,
                2,
                "[[device]]\nname = \"x\"\nprotocol = \"pigeon\"\n".into(),
            )
            .to_json(),
            "platform config v2:3:12:",
        ),
        (
            ConfigMessage::new("gw-other", 3, PUSHED.into()).to_json(),
            "not this one",
        ),
        (vec![b'{'; ConfigMessage::MAX_BYTES + 10], "over the limit"),
    ];
    for (payload, why) in &refusals {
        writer.publish(&topics.config, payload.clone()).await;
        let refused = wait_for_status(&recorder, Duration::from_secs(15), why, |s| {
            s.config
                .as_ref()
                .and_then(|c| c.error.as_deref())
                .is_some_and(|e| e.contains(why))
        })
        .await;
        assert_eq!(
            refused.config.as_ref().and_then(|c| c.version),
            Some(1),
            "{why}"
        );
        assert_eq!(refused.devices.len(), 2, "{why}: the running config stays");
    }
    let mark = recorder.messages().len();
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| samples_of(m, mark, "oven") > 0)
            .await,
        "data keeps flowing after the refusals"
    );
    let older = ConfigMessage::new(gateway, 1, "[publish]\n".into());
    // Version 1 again with other text: the version decides, the same version is no news.
    writer.publish(&topics.config, older.to_json()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = latest(&recorder).expect("a status");
    assert_eq!(
        status.devices.len(),
        2,
        "the same version again changes nothing"
    );

    // The broker forgets the config; the next start runs the last known good one.
    writer.publish(&topics.config, Vec::new()).await;
    let state = agent.stop().await;
    let mark = recorder.messages().len();
    let agent = InProcessAgent::start_in(&local_config(gateway, broker.addr()), state);
    let restarted = wait_for_status(
        &recorder,
        Duration::from_secs(15),
        "v1 after restart",
        |s| s.devices.len() == 2 && s.config.as_ref().is_some_and(|c| c.version == Some(1)),
    )
    .await;
    assert_eq!(restarted.config.and_then(|c| c.error), None);
    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| samples_of(m, mark, "oven") > 0)
            .await,
        "the last known good config runs without the platform's message"
    );
    agent.stop().await;
    recorder.stop().await;
}
