//! Configuration from the platform: the time from `PUT /api/v1/gateways/{id}/config` to the
//! new device's first sample on the platform. The platform runs at its embedded default
//! (SQLite, in-process broker) in this process; the agent is the release binary, enrolled
//! with it. Each of `--pushes` rounds saves a config that adds one simulated device (the
//! earlier ones stay) and polls the enterprise's latest values every 5 ms until the new
//! device has one. Figures: the median, the fastest and the slowest round, in ms.

use crate::agent::Agent;
use crate::ingest::{embedded_platform, enroll_one};
use crate::measure::{Summary, percentile};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::EnterpriseInput;
use fieldlink_testkit::PlatformClient;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The scenario's settings.
#[derive(clap::Args)]
pub struct Args {
    /// Configs pushed, each adding a device.
    #[arg(long, default_value_t = 5)]
    pushes: usize,
}

/// How long one round may take before the scenario fails.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// The agent's local file: the broker and the id come from the enrollment.
fn local_config(state: &std::path::Path) -> String {
    format!(
        "[gateway]\nstate_dir = \"{}\"\n\n[publish]\nbatch_max_delay = \"100ms\"\n\n[status]\nlisten = \"127.0.0.1:0\"\n\n\
         [[device]]\nname = \"line-sim\"\nprotocol = \"simulator\"\npoll = \"100ms\"\n\n[[device.point]]\nname = \"ambient\"\n",
        state.display()
    )
}

/// The pushed config of round `round`: devices `new-1` to `new-{round}`, polled every 100 ms.
fn pushed_config(round: usize) -> String {
    let mut toml = String::from("[publish]\nbatch_max_delay = \"100ms\"\n");
    for device in 1..=round {
        let _ = write!(
            toml,
            "\n[[device]]\nname = \"new-{device}\"\nprotocol = \"simulator\"\npoll = \"100ms\"\n\n[[device.point]]\nname = \"value\"\n"
        );
    }
    toml
}

/// Runs the scenario once.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.pushes > 0, "--pushes must be at least 1");
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (platform, _) = embedded_platform(dir.path(), &shutdown, |_| {}).await?;
    let code = CreditCode::complete("91420100770000777")?;
    let enterprise = EnterpriseInput {
        credit_code: code.to_string(),
        name: "配置下发测试企业".to_owned(),
        industry: "auto-parts".to_owned(),
        district: "洪山区".to_owned(),
        in_program: false,
        ..Default::default()
    };
    let enrollment = enroll_one(platform.registry(), &enterprise, "line-1").await?;
    let gateway = enrollment.gateway_id.clone();
    let mut stored = Ok(());
    let mut agent = Agent::start(|state| {
        stored = fieldlink::enroll::store(state, &enrollment).map(drop);
        local_config(state)
    })?;
    stored?;
    let bureau =
        PlatformClient::new(format!("http://{}", platform.http_addr())).with_token("bench");
    let owner = bureau.enterprise_client(code.as_str()).await?;

    let mut rounds = Vec::with_capacity(args.pushes);
    for round in 1..=args.pushes {
        let device = format!("new-{round}");
        let started = Instant::now();
        bureau.put_config(&gateway, &pushed_config(round)).await?;
        loop {
            let latest = owner.latest(&gateway).await?;
            if latest.iter().any(|s| *s.device == device) {
                break;
            }
            if started.elapsed() > ROUND_LIMIT {
                agent.check_running()?;
                anyhow::bail!(
                    "round {round}: no sample of {device} within {ROUND_LIMIT:?}; the agent's log:\n{}",
                    agent.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!("push {round}: {ms:.0} ms to {device}'s first sample");
        rounds.push(ms);
    }
    drop(agent);
    shutdown.cancel();
    platform.wait().await?;
    let (min, max) = (
        rounds.iter().copied().fold(f64::INFINITY, f64::min),
        rounds.iter().copied().fold(0.0, f64::max),
    );
    Ok(Summary::new("config-push")
        .add(
            "put_to_first_sample_median",
            percentile(&mut rounds, 50.0),
            "ms",
        )
        .add("fastest", min, "ms")
        .add("slowest", max, "ms")
        .note(format!("{} pushes", args.pushes)))
}
