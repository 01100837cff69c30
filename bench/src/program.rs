//! The plan's targets of the simulated city ([`crate::city`]): `--enterprises` enterprises
//! (4,000, the plan's count) registered in one CSV import with their classes and
//! assessments on the platform's embedded default (SQLite, the in-process broker); those
//! the city has on the cloud enrolled, one gateway each, each delivering one batch; then
//! `GET /api/v1/stats/program` `--requests` times. Figure: its median time, in ms. It
//! prints every target's figures (achieved of base, goal, progress), for the closing note.

use crate::city;
use crate::ingest::{connect_gateway, embedded_platform};
use crate::measure::{Summary, percentile};
use fieldlink_platform::program::Program;
use fieldlink_platform::registry::TokenInput;
use fieldlink_testkit::PlatformClient;
use fieldlink_wire::{Batch, EnrollRequest, Sample, Topics, Value, encode_batch};
use rumqttc::{Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The program scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Enterprises of the simulated city.
    #[arg(long, default_value_t = 4000)]
    enterprises: usize,
    /// Requests of the program's figures.
    #[arg(long, default_value_t = 5)]
    requests: usize,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.requests > 0, "--requests must be at least 1");
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, url) = embedded_platform(dir.path(), &shutdown, |_| {}).await?;
    let client =
        PlatformClient::new(format!("http://{}", platform.http_addr())).with_token("bench");
    let now = fieldlink_platform::clock::now_ms();
    let (csv, enterprises) = city::registry_csv(args.enterprises, now, 8 * 60)?;
    client.import_enterprises(&csv).await?;

    // The enterprises on the cloud: a gateway each, enrolled as the API does, and one
    // batch each, published by one client (the embedded broker has no ACL).
    let registry = platform.registry();
    let mut gateways = Vec::new();
    for e in enterprises.iter().filter(|e| e.on_cloud) {
        let token = registry
            .issue_token(
                &e.credit_code,
                &TokenInput {
                    expires_in_days: None,
                    max_gateways: Some(1),
                },
            )
            .await?;
        let enrollment = registry
            .enroll(&EnrollRequest {
                token: token.token,
                gateway_name: "line-1".to_owned(),
                hostname: None,
                agent_version: None,
            })
            .await?;
        gateways.push(enrollment.gateway_id);
    }
    let (mqtt, mut events) = connect_gateway(
        MqttOptions::new("bench-program", url.host.clone(), url.port),
        64,
    )
    .await?;
    let pump = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if matches!(event, Event::Incoming(Packet::Disconnect)) {
                break;
            }
        }
    });
    for id in &gateways {
        let batch = Batch {
            gateway: id.clone(),
            seq: 1,
            samples: vec![Sample::good(
                "press-1".into(),
                "running".into(),
                now,
                Value::Bool(true),
            )],
        };
        mqtt.publish(
            Topics::new(id).data,
            QoS::AtLeastOnce,
            false,
            encode_batch(&batch),
        )
        .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while platform.ingest_stats().batches_stored < gateways.len() as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "batches not stored: {:?}",
            platform.ingest_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mqtt.disconnect().await.ok();
    pump.abort();

    let mut times = Vec::with_capacity(args.requests);
    let mut program = None;
    for _ in 0..args.requests {
        let started = Instant::now();
        let figures: Program =
            serde_json::from_value(client.get_json("/api/v1/stats/program").await?)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        program = Some(figures);
    }
    if let Some(program) = &program {
        print_targets(program);
    }
    shutdown.cancel();
    platform.wait().await?;
    Ok(Summary::new("program")
        .add("program_ms", percentile(&mut times, 50.0), "ms")
        .note(format!("{} enterprises", enterprises.len()))
        .note(format!("{} on the cloud", gateways.len())))
}

/// Prints each target: achieved of base, its goal and its progress.
pub fn print_targets(program: &Program) {
    for t in &program.targets {
        let goal = match (t.goal_count, t.goal_share) {
            (Some(count), _) => format!("goal {count}"),
            (None, Some(share)) => format!("goal {:.0}%", share * 100.0),
            (None, None) => "no goal".to_owned(),
        };
        let progress = t
            .progress
            .map_or_else(|| "-".to_owned(), |p| format!("{:.1}%", p * 100.0));
        println!(
            "  {:<40} {:>5} of {:>5}  {goal:<10} progress {progress:>7}{}",
            t.id,
            t.achieved,
            t.base,
            if t.met { "  met" } else { "" }
        );
    }
}
