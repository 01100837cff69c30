//! The platform's ingest: 1,000-sample batches from 100 gateways, published at QoS 1
//! through the in-process broker, decoded and stored in SQLite (WAL, synchronous=FULL,
//! acknowledged after commit) or, with `--postgres ADMIN_URL`, in a PostgreSQL database of
//! its own on that server (created for the run, dropped after). Figures: samples stored
//! per second, from the first publish to the last sample committed, and the CPU per
//! million samples of the bench process (publishers, broker, ingest) and, on PostgreSQL,
//! of the server's processes working for the database. Payloads are encoded before the
//! clock starts.
//!
//! The in-process broker keeps at most 128 MiB of messages per subscription in memory (its
//! default queue): keep `gateways × batches × samples` around a million samples (about
//! 80 MB).

use crate::database::{BenchDatabase, postgres_cpu_since, postgres_cpu_times};
use crate::measure::{Summary, cpu_time, peak_rss_mib};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::store::Store;
use fieldlink_platform::store::alarms::{NewRule, RuleKind, Severity};
use fieldlink_platform::{BrokerConfig, Database, MqttUrl, Platform, PlatformConfig, Registry};
use fieldlink_wire::{Batch, EnrollRequest, Enrollment, Topics, encode_batch};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The ingest scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Gateways publishing at once.
    #[arg(long, default_value_t = 100)]
    gateways: usize,
    /// Batches per gateway.
    #[arg(long, default_value_t = 10)]
    batches: u64,
    /// Samples per batch.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Enabled alarm rules, spread over the gateways' points: `high` rules whose threshold
    /// the samples never reach, so every sample of their points is evaluated and none
    /// fires (the cost of evaluation, not of notification).
    #[arg(long, default_value_t = 0)]
    alarm_rules: usize,
    /// A PostgreSQL server's admin URL: the samples are stored there, in a database of
    /// their own, instead of SQLite (`scripts/pg-test-server start DIR` prints one).
    #[arg(long)]
    postgres: Option<String>,
}

/// A gateway's MQTT client with `options` (client id = gateway id) and a request queue of
/// `capacity`, once the broker has accepted it (10 s at most).
pub async fn connect_gateway(
    options: MqttOptions,
    capacity: usize,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let id = options.client_id();
    let (client, mut events) = AsyncClient::new(options, capacity);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, events)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("gateway {id} cannot connect: {e}"),
            Err(_) => anyhow::bail!("gateway {id}: no CONNACK"),
        }
    }
}

/// The `i`-th bench enterprise: a valid credit code of its own, one industry and district.
pub fn enterprise(i: usize) -> anyhow::Result<EnterpriseInput> {
    let code = CreditCode::complete(&format!("91420100{:09}", 900_000 + i))?;
    Ok(EnterpriseInput {
        credit_code: code.to_string(),
        name: format!("bench enterprise {i}"),
        industry: "auto-parts".to_owned(),
        district: "洪山区".to_owned(),
        in_program: false,
        ..Default::default()
    })
}

/// The platform's embedded default in `dir` (SQLite, the in-process broker), the bureau's
/// token `bench`, with what `configure` changes, until `shutdown`; and its broker's URL.
pub async fn embedded_platform(
    dir: &std::path::Path,
    shutdown: &CancellationToken,
    configure: impl FnOnce(&mut PlatformConfig),
) -> anyhow::Result<(Platform, MqttUrl)> {
    let mut config = PlatformConfig::new("127.0.0.1:0".parse()?, dir);
    config.broker = BrokerConfig::embedded("127.0.0.1:0".parse()?);
    config.admin_token = Some("bench".to_owned());
    configure(&mut config);
    let platform = Platform::start(config, shutdown.clone()).await?;
    let url = MqttUrl::parse(platform.public_mqtt_url())?;
    Ok((platform, url))
}

/// Registers `enterprise`, issues it a token for one gateway and enrolls the gateway
/// `gateway_name`, through the registry as the HTTP API does.
pub async fn enroll_one(
    registry: &Registry,
    enterprise: &EnterpriseInput,
    gateway_name: &str,
) -> anyhow::Result<Enrollment> {
    let code = CreditCode::parse(&enterprise.credit_code)?;
    registry.create(enterprise).await?;
    let token = registry
        .issue_token(
            code.as_str(),
            &TokenInput {
                expires_in_days: None,
                max_gateways: Some(1),
            },
        )
        .await?;
    Ok(registry
        .enroll(&EnrollRequest {
            token: token.token,
            gateway_name: gateway_name.to_owned(),
            hostname: None,
            agent_version: None,
        })
        .await?)
}

/// Enrolls `count` gateways, one enterprise each ([`enterprise`]).
pub async fn enroll_gateways(registry: &Registry, count: usize) -> anyhow::Result<Vec<Enrollment>> {
    let mut enrollments = Vec::with_capacity(count);
    for i in 0..count {
        enrollments.push(enroll_one(registry, &enterprise(i)?, "bench").await?);
    }
    Ok(enrollments)
}

/// Adds `count` never-firing `high` rules, round-robin over the gateways, each on one of
/// the realistic samples' points.
async fn add_alarm_rules(
    store: &Store,
    gateways: &[Enrollment],
    count: usize,
) -> anyhow::Result<()> {
    let now = fieldlink_platform::clock::now_ms();
    for i in 0..count {
        let gateway = &gateways[i % gateways.len()];
        let rule = NewRule {
            credit_code: gateway.enterprise.credit_code.clone(),
            name: format!("bench rule {i}"),
            gateway_id: gateway.gateway_id.clone(),
            device: Some("press-1".to_owned()),
            point: Some(format!("point_{:03}", (i / gateways.len()) % 100)),
            kind: RuleKind::High,
            threshold: Some(1e12),
            hysteresis: 0.0,
            for_seconds: 0,
            severity: Severity::Warning,
            channels: Vec::new(),
        };
        store.create_rule(rule, now).await?;
    }
    Ok(())
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let Some(admin_url) = &args.postgres else {
        return measure(args, None).await;
    };
    let database = BenchDatabase::create(admin_url).await?;
    let result = measure(args, Some(&database)).await;
    database.drop().await?;
    result
}

/// Runs the scenario once on SQLite, or on `postgres`.
async fn measure(args: &Args, postgres: Option<&BenchDatabase>) -> anyhow::Result<Summary> {
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, url) = embedded_platform(dir.path(), &shutdown, |config| {
        if let Some(database) = postgres {
            config.database = Database::Postgres {
                url: database.url.clone(),
                ca_file: None,
            };
        }
    })
    .await?;
    let observer = match postgres {
        Some(database) => Some((database.connect().await?, database.name.as_str())),
        None => None,
    };
    let enrollments = enroll_gateways(platform.registry(), args.gateways).await?;
    add_alarm_rules(platform.registry().store(), &enrollments, args.alarm_rules).await?;
    let gateways: Vec<(String, String)> = enrollments
        .into_iter()
        .map(|e| (e.gateway_id, e.mqtt.password))
        .collect();

    // Payloads, encoded before the clock starts.
    let samples = crate::outbox::realistic_samples(args.samples, 1_764_201_600_000);
    let mut publishers = Vec::with_capacity(gateways.len());
    for (id, password) in gateways {
        let mut batch = Batch {
            gateway: id.clone(),
            seq: 0,
            samples: samples.clone(),
        };
        let payloads: Vec<Vec<u8>> = (1..=args.batches)
            .map(|seq| {
                batch.seq = seq;
                encode_batch(&batch)
            })
            .collect();
        let mut options = MqttOptions::new(id.clone(), url.host.clone(), url.port);
        options
            .set_credentials(id.clone(), password)
            .set_inflight(20)
            .set_max_packet_size(16 << 20, 16 << 20);
        let (client, events) = connect_gateway(options, 32).await?;
        publishers.push((Topics::new(&id).data, client, events, payloads));
    }

    let total_samples = args.gateways as u64 * args.batches * args.samples as u64;
    let before = platform.ingest_stats().samples_stored;
    let postgres_cpu0 = match &observer {
        Some((db, name)) => postgres_cpu_times(db, name).await?,
        None => HashMap::new(),
    };
    let cpu0 = cpu_time();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (topic, client, mut events, payloads) in publishers {
        let expected = payloads.len();
        tasks.spawn(async move {
            let pump = tokio::spawn(async move {
                let mut acked = 0;
                while acked < expected {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                        Ok(_) => {}
                        Err(e) => return Err(anyhow::anyhow!("publisher connection failed: {e}")),
                    }
                }
                Ok(events)
            });
            for payload in payloads {
                client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                    .await?;
            }
            let _events = pump.await??;
            client.try_disconnect().ok();
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let published = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    while platform.ingest_stats().samples_stored - before < total_samples {
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest did not store everything: {:?}",
            platform.ingest_stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    let (postgres_cpu, db_bytes) = match &observer {
        Some((db, name)) => {
            let cpu = postgres_cpu_since(&postgres_cpu_times(db, name).await?, &postgres_cpu0);
            let size: i64 = db
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?
                .get(0);
            (Some(cpu.as_secs_f64()), size as u64)
        }
        None => {
            let size = std::fs::read_dir(dir.path())?
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum();
            (None, size)
        }
    };
    let db_mib = db_bytes as f64 / (1024.0 * 1024.0);
    shutdown.cancel();
    platform.wait().await?;
    let batches = (args.gateways as u64 * args.batches) as f64;
    let per_million = |seconds: f64| seconds / total_samples as f64 * 1e6;
    let mut summary = Summary::new("ingest")
        .add("samples_per_s", total_samples as f64 / elapsed, "")
        .add("batches_per_s", batches / elapsed, "")
        .add("publish_s", published, "s")
        .add("stored_s", elapsed, "s")
        .add("cpu_s_per_million_samples", per_million(cpu), "s");
    if let Some(postgres_cpu) = postgres_cpu {
        summary = summary
            .add(
                "postgres_cpu_s_per_million_samples",
                per_million(postgres_cpu),
                "s",
            )
            .add(
                "total_cpu_s_per_million_samples",
                per_million(cpu + postgres_cpu),
                "s",
            );
    }
    Ok(summary
        .add("db_mib", db_mib, "MiB")
        .add("peak_rss_mib", peak_rss_mib(), "MiB")
        .note(format!("{} alarm rules", args.alarm_rules))
        .note(if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }))
}
