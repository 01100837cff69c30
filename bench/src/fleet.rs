//! The fleet page's data with thousands of gateways: `GET /api/v1/gateways` (what the
//! fleet page shows) on the platform's embedded default (SQLite), with `--gateways`
//! gateways of 10 per enterprise, each with a retained status listing `--devices` devices
//! (every 7th gateway offline, every 5th device of it down with an error text). Figures:
//! the median of `--requests` requests of each kind, in ms: the first page of 50 sorted by
//! last batch, the problems-only page sorted by backlog, a search, and the whole fleet as
//! CSV.

use crate::ingest::{connect_gateway, embedded_platform};
use crate::measure::{Summary, percentile};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_testkit::PlatformClient;
use fieldlink_wire::{ConfigState, DeviceHealth, EnrollRequest, GatewayState, Status, Topics};
use reqwest::Method;
use rumqttc::{Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The fleet scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Gateways, 10 per enterprise.
    #[arg(long, default_value_t = 2000)]
    gateways: usize,
    /// Devices in each gateway's status.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Requests of each kind.
    #[arg(long, default_value_t = 5)]
    requests: usize,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.requests > 0, "--requests must be at least 1");
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, url) = embedded_platform(dir.path(), &shutdown, |_| {}).await?;

    // Enterprises of 10 gateways each, enrolled through the registry as the API does.
    let registry = platform.registry();
    let mut gateways = Vec::with_capacity(args.gateways);
    for e in 0..args.gateways.div_ceil(10) {
        let code = CreditCode::complete(&format!("91420100{:09}", 700_000 + e))?;
        registry
            .create(&EnterpriseInput {
                credit_code: code.to_string(),
                name: format!("bench enterprise {e}"),
                industry: "auto-parts".to_owned(),
                district: "洪山区".to_owned(),
                in_program: false,
                ..Default::default()
            })
            .await?;
        let token = registry
            .issue_token(
                code.as_str(),
                &TokenInput {
                    expires_in_days: None,
                    max_gateways: Some(10),
                },
            )
            .await?;
        for g in 0..10.min(args.gateways - e * 10) {
            let enrollment = registry
                .enroll(&EnrollRequest {
                    token: token.token.clone(),
                    gateway_name: format!("line-{g}"),
                    hostname: None,
                    agent_version: Some("0.9.7".to_owned()),
                })
                .await?;
            gateways.push(enrollment.gateway_id);
        }
    }

    // Their retained statuses, published by one client (the embedded broker has no ACL).
    let mut options = MqttOptions::new("bench-fleet", url.host.clone(), url.port);
    options.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut events) = connect_gateway(options, 64).await?;
    let pump = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if matches!(event, Event::Incoming(Packet::Disconnect)) {
                break;
            }
        }
    });
    let now = fieldlink_platform::clock::now_ms();
    for (i, id) in gateways.iter().enumerate() {
        let down = i % 7 == 0;
        let devices = (0..args.devices)
            .map(|d| DeviceHealth {
                name: format!("press-{d:03}"),
                protocol: "modbus-tcp".to_owned(),
                connected: !(down && d % 5 == 0),
                last_good_ms: Some(now - 1000),
                errors: if down { 12 } else { 0 },
                last_error: (down && d % 5 == 0)
                    .then(|| "connection refused (os error 111)".to_owned()),
            })
            .collect();
        let status = Status {
            state: if down {
                GatewayState::Offline
            } else {
                GatewayState::Online
            },
            version: Some("0.9.7".to_owned()),
            backlog_batches: Some((i % 300) as u64),
            evicted_batches: Some(0),
            devices,
            config: Some(ConfigState {
                version: None,
                applied_at: None,
                error: None,
            }),
            ..Status::offline()
        };
        client
            .publish(
                Topics::new(id).status,
                QoS::AtLeastOnce,
                true,
                serde_json::to_vec(&status)?,
            )
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while platform.ingest_stats().status_updates < gateways.len() as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "statuses not stored: {:?}",
            platform.ingest_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.disconnect().await.ok();
    pump.abort();

    let client =
        PlatformClient::new(format!("http://{}", platform.http_addr())).with_token("bench");
    let kinds = [
        ("page_ms", "per_page=50&sort=last_batch&order=desc"),
        (
            "problems_ms",
            "per_page=50&problems=true&sort=backlog&order=desc",
        ),
        ("search_ms", "per_page=50&q=line-3"),
        ("csv_ms", "format=csv"),
    ];
    let mut summary = Summary::new("fleet");
    for (name, query) in kinds {
        let mut times = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let started = Instant::now();
            let answer = client
                .request(Method::GET, &format!("/api/v1/gateways?{query}"))
                .send()
                .await?;
            anyhow::ensure!(answer.status().is_success(), "{query}: {}", answer.status());
            let body = answer.bytes().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(!body.is_empty(), "{query}: an empty answer");
        }
        summary = summary.add(name, percentile(&mut times, 50.0), "ms");
    }
    shutdown.cancel();
    platform.wait().await?;
    Ok(summary
        .note(format!("{} gateways", gateways.len()))
        .note(format!("{} devices each", args.devices)))
}
