//! Configuration from the platform end to end: the real agent process, enrolled with the
//! real platform (embedded broker, SQLite), takes its devices from configs saved through
//! the API. A PUT brings a new device's data to the platform; an invalid config is refused
//! with every error located, before it reaches the gateway; the gateway's status says which
//! version it runs; a rollback is a new version that the gateway applies like any other.

use crate::process::Process;
use crate::site::Site;
use fieldlink_platform::api::GatewayDetail;
use fieldlink_platform::gateway_config::{ConfigStanding, ConfigView};
use fieldlink_testkit::{ClientError, PlatformClient};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// The bureau's token in this test.
const BUREAU: &str = "e2e-config-bureau-token";
/// The whole test's limit.
const LIMIT: Duration = Duration::from_secs(120);
/// How long one condition may take to come true.
const WAIT: Duration = Duration::from_secs(30);

/// The local file: the broker comes from the enrollment (the configured one is a dead
/// port), one simulated device.
fn agent_toml(state: &Path) -> String {
    format!(
        r#"
[gateway]
state_dir = "{}"

[platform]
mqtt = "mqtt://127.0.0.1:9"

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
"#,
        state.display()
    )
}

/// The local device and a new one, as an integrator pushes them.
const WITH_OVEN: &str = r#"[publish]
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

fn describe(g: &GatewayDetail) -> String {
    format!(
        "online {}, batches {}, last_seq {:?}",
        g.gateway.online, g.gateway.batches, g.gateway.last_seq
    )
}

/// Polls the gateway's config until `done` holds (bounded by [`WAIT`]).
async fn wait_for_config(
    bureau: &PlatformClient,
    gateway: &str,
    what: &str,
    agent: &Process,
    done: impl Fn(&ConfigView) -> bool,
) -> ConfigView {
    let deadline = Instant::now() + WAIT;
    loop {
        let view = bureau.config(gateway).await.expect("the gateway's config");
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}: {view:?}\nthe agent's log ends:\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the enterprise's latest values until `device` has one newer than `after` (ms);
/// returns when it arrived.
async fn wait_for_device(
    owner: &PlatformClient,
    gateway: &str,
    device: &str,
    after: i64,
    agent: &Process,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let latest = owner.latest(gateway).await.expect("latest values");
        if latest.iter().any(|s| &*s.device == device && s.ts > after) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no sample of {device} after {after} within {WAIT:?}; latest {latest:?}\nthe agent's log ends:\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_config_brings_a_new_devices_data_to_the_platform() {
    tokio::time::timeout(LIMIT, push_roll_back_and_refuse())
        .await
        .expect("the test exceeded its time limit");
}

async fn push_roll_back_and_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), BUREAU, "91420100770000003", "line-1").await;
    let (bureau, gateway) = (&site.bureau, site.gateway.as_str());
    let code = gateway.split_once('-').map_or(gateway, |(code, _)| code);
    let owner = bureau
        .enterprise_client(code)
        .await
        .expect("the enterprise's client");
    let config_file = dir.path().join("agent.toml");
    std::fs::write(&config_file, agent_toml(&site.state)).expect("write the agent config");
    let agent = Process::agent(&config_file, dir.path().join("agent.log"));
    site.wait_for_gateway(WAIT, "publishing", Some(&agent), describe, |g| {
        g.gateway.online && g.gateway.batches > 0
    })
    .await;
    let local = wait_for_config(bureau, gateway, "the local file's state", &agent, |v| {
        v.standing() == ConfigStanding::Local
    })
    .await;
    assert_eq!((local.version, local.applied_version), (None, None));

    // An invalid config: 400, every error with its line and column, nothing saved.
    let invalid =
        WITH_OVEN.replace("signal = \"ramp\"", "signal = \"square\"") + "poll = \"fast\"\n";
    match bureau.put_config(gateway, &invalid).await {
        Err(ClientError::Status { status, body, .. }) => {
            assert_eq!(status.as_u16(), 400, "{body}");
            assert_eq!(body["error"], "invalid_config", "{body}");
            let at: Vec<(u64, u64)> = body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .map(|e| {
                    (
                        e["line"].as_u64().unwrap_or(0),
                        e["column"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            assert_eq!(at, [(19, 10), (20, 1)], "{body}");
        }
        other => panic!("an invalid config was not refused: {other:?}"),
    }
    assert!(bureau.config_versions(gateway).await.unwrap().is_empty());

    // The new device's data reaches the platform.
    let put_at = Instant::now();
    let put_ms = fieldlink_platform::clock::now_ms();
    let saved = bureau.put_config(gateway, WITH_OVEN).await.expect("saved");
    assert_eq!(saved.version, 1);
    wait_for_device(&owner, gateway, "oven", put_ms, &agent).await;
    eprintln!(
        "PUT to the new device's first sample on the platform: {:?}",
        put_at.elapsed()
    );
    let applied = wait_for_config(bureau, gateway, "v1 applied", &agent, |v| {
        v.standing() == ConfigStanding::Applied
    })
    .await;
    assert_eq!(
        (applied.version, applied.applied_version),
        (Some(1), Some(1))
    );

    // v2 drops the oven; rolling back to v1 saves v3, which the gateway applies.
    let without_oven = &WITH_OVEN[..WITH_OVEN.find("[[device]]\nname = \"oven\"").unwrap()];
    assert_eq!(
        bureau
            .put_config(gateway, without_oven)
            .await
            .unwrap()
            .version,
        2
    );
    wait_for_config(bureau, gateway, "v2 applied", &agent, |v| {
        v.applied_version == Some(2)
    })
    .await;
    let dropped_ms = fieldlink_platform::clock::now_ms();
    let rolled = bureau
        .roll_back_config(gateway, 1)
        .await
        .expect("rolled back");
    assert_eq!(rolled.version, 3);
    wait_for_config(bureau, gateway, "v3 applied", &agent, |v| {
        v.applied_version == Some(3) && v.toml.as_deref() == Some(WITH_OVEN)
    })
    .await;
    wait_for_device(&owner, gateway, "oven", dropped_ms, &agent).await;
    let versions: Vec<u64> = bureau
        .config_versions(gateway)
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [3, 2, 1]);

    let status = agent.terminate().await;
    assert!(status.success(), "SIGTERM: the agent exited with {status}");
    site.stop().await;
}
