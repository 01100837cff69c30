//! Alarm notification latency: from the publication of a sample that raises or clears an
//! alarm to its webhook's arrival at a receiver. The platform runs at its embedded default
//! (SQLite, in-process broker) in this process, with a `high` rule on one gateway's point
//! and a webhook channel to an HTTP receiver on loopback; one publisher alternates a value
//! above and below the threshold, one batch at a time, `--notifications` times. Figures:
//! p50, p99 and the slowest, in ms.

use crate::ingest::{connect_gateway, embedded_platform, enroll_one};
use crate::measure::{Summary, percentile};
use fieldlink_platform::clock::now_ms;
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::EnterpriseInput;
use fieldlink_platform::store::alarms::{NewChannel, NewRule, RuleKind, Severity};
use fieldlink_testkit::webhook::WebhookReceiver;
use fieldlink_wire::{Batch, Sample, Topics, Value, encode_batch};
use rumqttc::{Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Raises and clears to time.
    #[arg(long, default_value_t = 100)]
    notifications: usize,
}

/// How long one notification may take before the scenario fails.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.notifications > 0, "--notifications must be at least 1");
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, url) = embedded_platform(dir.path(), &shutdown, |config| {
        config.allow_private_webhooks = true;
    })
    .await?;
    let code = CreditCode::complete("91420100770000888")?;
    let enterprise = EnterpriseInput {
        credit_code: code.to_string(),
        name: "告警时延测试企业".to_owned(),
        industry: "auto-parts".to_owned(),
        district: "洪山区".to_owned(),
        in_program: false,
        ..Default::default()
    };
    let enrollment = enroll_one(platform.registry(), &enterprise, "line-1").await?;
    let gateway = enrollment.gateway_id.clone();

    let receiver = WebhookReceiver::start().await?;

    let store = platform.registry().store();
    let now = now_ms();
    let channel = store
        .create_channel(
            NewChannel {
                credit_code: code.to_string(),
                name: "bench".to_owned(),
                kind: "webhook".to_owned(),
                url: receiver.url().to_owned(),
                secret: None,
            },
            now,
        )
        .await?;
    store
        .create_rule(
            NewRule {
                credit_code: code.to_string(),
                name: "炉温过高".to_owned(),
                gateway_id: gateway.clone(),
                device: Some("press-1".to_owned()),
                point: Some("temperature".to_owned()),
                kind: RuleKind::High,
                threshold: Some(100.0),
                hysteresis: 0.0,
                for_seconds: 0,
                severity: Severity::Critical,
                channels: vec![channel],
            },
            now,
        )
        .await?;

    let mut options = MqttOptions::new(gateway.clone(), url.host.clone(), url.port);
    options.set_credentials(gateway.clone(), enrollment.mqtt.password.clone());
    let (client, mut events) = connect_gateway(options, 16).await?;
    let pump = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let topic = Topics::new(&gateway).data;
    let mut latencies = Vec::with_capacity(args.notifications);
    for i in 0..args.notifications {
        let value = if i % 2 == 0 { 150.0 } else { 50.0 };
        let batch = Batch {
            gateway: gateway.clone(),
            seq: i as u64 + 1,
            samples: vec![Sample::good(
                "press-1".into(),
                "temperature".into(),
                now_ms(),
                Value::Float(value),
            )],
        };
        let sent = Instant::now();
        client
            .publish(
                topic.as_str(),
                QoS::AtLeastOnce,
                false,
                encode_batch(&batch),
            )
            .await?;
        let arrived = loop {
            if let Some(delivery) = receiver.deliveries().get(i) {
                break delivery.at;
            }
            anyhow::ensure!(
                sent.elapsed() < LIMIT,
                "notification {i} did not arrive within {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(arrived.duration_since(sent).as_secs_f64() * 1000.0);
    }
    client.try_disconnect().ok();
    pump.abort();
    shutdown.cancel();
    platform.wait().await?;
    let slowest = latencies.iter().copied().fold(0.0, f64::max);
    Ok(Summary::new("alarm-latency")
        .add("p50", percentile(&mut latencies, 50.0), "ms")
        .add("p99", percentile(&mut latencies, 99.0), "ms")
        .add("slowest", slowest, "ms")
        .note(format!("{} notifications", args.notifications)))
}
