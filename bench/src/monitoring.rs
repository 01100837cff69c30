//! The industry monitoring at city scale: `GET /api/v1/stats/monitoring?by=industry&days=30`
//! and `by=district` over HTTP, as the bureau, against the embedded platform on SQLite and,
//! with `--postgres ADMIN_URL`, on a PostgreSQL database of its own (created on that
//! server, dropped after).
//!
//! Seeded through the store's API, as the ingest stores it: `--enterprises` enterprises
//! over the 8 industries and 17 districts (every third shares its data), one gateway each
//! with two machines (a press with `running`, `energy_kwh` and `output_count` points in its
//! catalogue, and a second device), and `--days` days of batches ending today, one batch
//! per gateway and day, so every enterprise reports every day: `enterprises × days`
//! enterprise-day rows, what a request reads. Figures: the median of `--requests`
//! requests of each kind, in ms, and the seeding's time. On PostgreSQL the requests are
//! timed twice: right after the seeding, before the tables have statistics (the planner
//! then sorts the window's rows instead of hashing them), and after `ANALYZE`, as after
//! any bulk load, and as autovacuum keeps a database in use.

use crate::database::BenchDatabase;
use crate::ingest::embedded_platform;
use crate::measure::{Summary, percentile};
use fieldlink_platform::catalog::{District, Industry};
use fieldlink_platform::clock::{DAY_MS, day_of, now_ms};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::secret::sha256_hex;
use fieldlink_platform::store::{
    EnrollOutcome, EnrollRequest, IncomingBatch, NewEnterprise, NewToken, Store,
};
use fieldlink_platform::{Database, PlatformConfig};
use fieldlink_testkit::PlatformClient;
use fieldlink_wire::{Sample, Value};
use reqwest::Method;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The platform's default zone (Beijing time), minutes east of UTC.
const OFFSET: i32 = 480;
/// Batches stored per transaction, as the ingest groups them.
const GROUP: usize = 100;

/// The monitoring scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Enterprises, one gateway each.
    #[arg(long, default_value_t = 4000)]
    enterprises: usize,
    /// Days of data, ending today.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Requests of each kind.
    #[arg(long, default_value_t = 5)]
    requests: usize,
    /// A PostgreSQL server's admin URL: measured there too (`scripts/pg-test-server start
    /// DIR` prints one).
    #[arg(long)]
    postgres: Option<String>,
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.requests > 0, "--requests must be at least 1");
    anyhow::ensure!((1..=90).contains(&args.days), "--days must be 1 to 90");
    let sqlite = measure(args, |_| {}, None).await?;
    let mut summary = Summary::new("monitoring")
        .add("sqlite_industry_ms", sqlite.industry_ms, "ms")
        .add("sqlite_district_ms", sqlite.district_ms, "ms")
        .add("sqlite_seed_s", sqlite.seed_s, "s");
    if let Some(admin_url) = &args.postgres {
        let database = BenchDatabase::create(admin_url).await?;
        let url = database.url.clone();
        let result = measure(
            args,
            |config| {
                config.database = Database::Postgres { url, ca_file: None };
            },
            Some(&database),
        )
        .await;
        database.drop().await?;
        let postgres = result?;
        let (unanalysed_industry_ms, unanalysed_district_ms) =
            postgres.unanalysed.unwrap_or_default();
        summary = summary
            .add("postgres_industry_ms", postgres.industry_ms, "ms")
            .add("postgres_district_ms", postgres.district_ms, "ms")
            .add(
                "postgres_unanalysed_industry_ms",
                unanalysed_industry_ms,
                "ms",
            )
            .add(
                "postgres_unanalysed_district_ms",
                unanalysed_district_ms,
                "ms",
            )
            .add("postgres_seed_s", postgres.seed_s, "s");
    }
    Ok(summary
        .note(format!("{} enterprises", args.enterprises))
        .note(format!("{} days", args.days))
        .note(format!("median of {} requests", args.requests)))
}

/// One backend's figures.
struct Figures {
    /// Seconds the seeding took.
    seed_s: f64,
    /// Median ms by industry.
    industry_ms: f64,
    /// Median ms by district.
    district_ms: f64,
    /// On PostgreSQL, the medians (by industry, by district) before `ANALYZE`.
    unanalysed: Option<(f64, f64)>,
}

/// Seeds a platform configured by `configure` and times the requests; with `postgres`
/// (its database) also before the tables are analysed.
async fn measure(
    args: &Args,
    configure: impl FnOnce(&mut PlatformConfig),
    postgres: Option<&BenchDatabase>,
) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, _) = embedded_platform(dir.path(), &shutdown, configure).await?;
    let started = Instant::now();
    seed(platform.registry().store(), args).await?;
    let seed_s = started.elapsed().as_secs_f64();
    let client =
        PlatformClient::new(format!("http://{}", platform.http_addr())).with_token("bench");
    let mut unanalysed = None;
    if let Some(database) = postgres {
        let (industry_ms, district_ms) = time_requests(&client, args).await?;
        unanalysed = Some((industry_ms, district_ms));
        database.connect().await?.batch_execute("ANALYZE").await?;
    }
    let (industry_ms, district_ms) = time_requests(&client, args).await?;
    shutdown.cancel();
    platform.wait().await?;
    Ok(Figures {
        seed_s,
        industry_ms,
        district_ms,
        unanalysed,
    })
}

/// The median ms of `--requests` requests by industry, then by district.
async fn time_requests(client: &PlatformClient, args: &Args) -> anyhow::Result<(f64, f64)> {
    let mut medians = Vec::new();
    for by in ["industry", "district"] {
        let path = format!("/api/v1/stats/monitoring?by={by}&days={}", args.days);
        let mut times = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let started = Instant::now();
            let answer = client.request(Method::GET, &path).send().await?;
            anyhow::ensure!(answer.status().is_success(), "{path}: {}", answer.status());
            let body: serde_json::Value = answer.json().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            let reported = body["total"]["days"][0]["enterprises"].as_u64();
            anyhow::ensure!(
                reported == Some(args.enterprises as u64),
                "{path}: {reported:?} enterprises reported on the first day, not {}",
                args.enterprises
            );
        }
        medians.push(percentile(&mut times, 50.0));
    }
    Ok((medians[0], medians[1]))
}

/// Registers the enterprises, enrolls a gateway for each, stores their catalogues and
/// then, day by day, one batch per gateway.
async fn seed(store: &Store, args: &Args) -> anyhow::Result<()> {
    let now = now_ms();
    let districts: Vec<District> = District::all().collect();
    let mut enterprises = Vec::with_capacity(args.enterprises);
    for i in 0..args.enterprises {
        enterprises.push(NewEnterprise {
            credit_code: CreditCode::complete(&format!("91420100{:09}", 500_000 + i))?,
            name: format!("bench enterprise {i}"),
            industry: Industry::ALL[i % Industry::ALL.len()],
            district: districts[(i * 7 + i / 8) % districts.len()],
            in_program: i % 9 == 0,
            // Monitoring does not read the plan's classes.
            size: None,
            specialised: None,
            maturity: None,
        });
    }
    let codes: Vec<String> = enterprises
        .iter()
        .map(|e| e.credit_code.to_string())
        .collect();
    if let Err(existing) = store.insert_enterprises(enterprises, now, true).await? {
        anyhow::bail!("enterprises registered already: {existing:?}");
    }
    let catalogue = serde_json::json!({"devices": [
        {"name": "press-1", "protocol": "modbus-tcp", "points": [
            {"name": "running", "type": "bool", "role": "running"},
            {"name": "energy", "type": "f64", "role": "energy_kwh"},
            {"name": "parts", "type": "u32", "role": "output_count"}]},
        {"name": "oven-1", "protocol": "modbus-tcp", "points": [
            {"name": "temperature", "type": "f32"}]}]});
    let mut gateways = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        let secret = format!("bench-token-{i}");
        let token = NewToken {
            credit_code: code.clone(),
            token_sha256: sha256_hex(&secret),
            created_at: now,
            expires_at: now + DAY_MS,
            max_gateways: 1,
        };
        anyhow::ensure!(store.insert_token(token).await?, "{code} is not registered");
        let request = EnrollRequest {
            token_sha256: sha256_hex(&secret),
            gateway_name: "line-1".to_owned(),
            hostname: None,
            agent_version: None,
            password_hash: "$7$101$bench".to_owned(),
            now,
        };
        let EnrollOutcome::Enrolled { gateway_id, .. } = store.enroll(request).await? else {
            anyhow::bail!("{code}: the gateway was not enrolled");
        };
        if i % 3 == 0 {
            store.set_share_data_with_bureau(code, true).await?;
        }
        store
            .update_meta(&gateway_id, catalogue.clone(), now, OFFSET)
            .await?;
        gateways.push(gateway_id);
    }
    let today = day_of(now, OFFSET);
    let first = today - i64::from(args.days) + 1;
    for (index, day) in (first..=today).enumerate() {
        let start = day * DAY_MS - i64::from(OFFSET) * 60_000 + 8 * 3_600_000;
        let batches: Vec<IncomingBatch> = gateways
            .iter()
            .enumerate()
            .map(|(g, gateway)| IncomingBatch {
                gateway: gateway.clone(),
                seq: index as u64 + 1,
                samples: day_samples(start, index as i64, g),
            })
            .collect();
        for group in batches.chunks(GROUP) {
            store.ingest(Arc::from(group.to_vec()), now, OFFSET).await?;
        }
    }
    Ok(())
}

/// A gateway's samples of one day from `start`: its press running 20 minutes with a stop,
/// its meter and parts counter read at the start and the end, its oven read once.
fn day_samples(start: i64, day: i64, gateway: usize) -> Vec<Sample> {
    let press: Arc<str> = "press-1".into();
    let at = |minute: i64| start + minute * 60_000;
    let good = |point: &str, minute: i64, value: Value| {
        Sample::good(press.clone(), point.into(), at(minute), value)
    };
    let kwh = (day * 80) as f64 + (gateway % 7) as f64;
    let parts = day * 400;
    vec![
        good("running", 0, Value::Bool(true)),
        good("running", 10, Value::Bool(false)),
        good("running", 15, Value::Bool(true)),
        good("running", 20, Value::Bool(true)),
        good("energy", 0, Value::Float(kwh)),
        good(
            "energy",
            20,
            Value::Float(kwh + 40.0 + (gateway % 5) as f64),
        ),
        good("parts", 0, Value::Int(parts)),
        good("parts", 20, Value::Int(parts + 150 + (gateway % 11) as i64)),
        Sample::good(
            "oven-1".into(),
            "temperature".into(),
            at(5),
            Value::Float(180.0),
        ),
    ]
}
