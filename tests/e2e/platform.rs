//! The real agent against the real platform: the bureau registers an enterprise and
//! issues a token through the platform's HTTP API, the agent's enrollment code trades the
//! token for a gateway id and MQTT credentials, and the agent, configured with nothing
//! but the enrollment, reads a simulated Modbus device and a simulator device and
//! publishes through the platform's in-process broker (and, in CI, through mosquitto with
//! the passwords and ACL the platform manages) until the platform counts the enterprise
//! as on the cloud.

use fieldlink::enroll;
use fieldlink_platform::api::GatewayDetail;
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::stats::Counts;
use fieldlink_platform::{BrokerConfig, MosquittoFiles, MqttUrl, Platform, PlatformConfig, Reload};
use fieldlink_simulator::modbus_device;
use fieldlink_testkit::PlatformClient;
use fieldlink_tests::agent_config;
use fieldlink_tests::mosquitto::{Mosquitto, free_port};
use fieldlink_wire::Quality;
use serde_json::Value as Json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bureau's token in these tests.
const BUREAU: &str = "e2e-bureau-token";
/// The whole test's limit.
const LIMIT: Duration = Duration::from_secs(90);
/// How long one condition may take to come true.
const WAIT: Duration = Duration::from_secs(30);

/// The bureau's side of the HTTP API: the test kit's typed client with the bureau's token.
fn bureau(platform: &Platform) -> PlatformClient {
    PlatformClient::new(format!("http://{}", platform.http_addr()))
        .with_token(BUREAU)
        .with_timeout(Duration::from_secs(10))
}

/// Polls the gateway's detail until `done` holds; the last answer.
async fn wait_for_gateway(
    bureau: &PlatformClient,
    gateway: &str,
    done: impl Fn(&GatewayDetail) -> bool,
) -> GatewayDetail {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = bureau.gateway(gateway).await.expect("the gateway's detail");
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "gateway {gateway} did not get there in {WAIT:?}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent config without gateway id or credentials: enrollment supplies them. The
/// broker URL is a dead port, so only the enrollment can make the agent reach the
/// platform.
fn unenrolled_config(device: std::net::SocketAddr, enroll_url: &str) -> String {
    format!(
        r#"
[platform]
mqtt = "mqtt://127.0.0.1:9"
enroll_url = "{enroll_url}"

[publish]
batch_max_samples = 50
batch_max_delay = "100ms"

[buffer]
flush_interval = "100ms"

[status]
listen = "127.0.0.1:0"

[[device]]
name = "press-1"
protocol = "modbus-tcp"
address = "{device}"
poll = "100ms"
timeout = "500ms"

[[device.point]]
name = "temperature"
address = 0
type = "f32"
unit = "°C"

[[device.point]]
name = "spindle_speed"
address = 4
type = "u16"
unit = "rpm"

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "100ms"

[[device.point]]
name = "conveyor_count"
signal = "counter"
"#
    )
}

/// A platform config on loopback ports with the bureau's token; the broker is the
/// caller's choice.
fn platform_config(dir: &Path, broker: BrokerConfig) -> PlatformConfig {
    let mut config = PlatformConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("platform"));
    config.broker = broker;
    config.admin_token = Some(BUREAU.to_owned());
    std::fs::create_dir_all(&config.data_dir).expect("platform data dir");
    config
}

#[tokio::test]
async fn an_enrolled_agent_puts_its_enterprise_on_the_cloud() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerConfig::embedded("127.0.0.1:0".parse().unwrap());
    let config = platform_config(dir.path(), broker);
    tokio::time::timeout(LIMIT, enroll_run_and_count(config, dir.path()))
        .await
        .expect("the test exceeded its time limit");
}

/// The same through mosquitto with the passwords and ACL the platform manages: the agent
/// gets in with the credentials its enrollment issued, and with nothing else.
#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn an_enrolled_agent_publishes_through_mosquitto_with_its_issued_credentials() {
    const INGEST_PASSWORD: &str = "e2e-ingest-password";
    let dir = tempfile::tempdir().expect("tempdir");
    let files = MosquittoFiles {
        password_file: dir.path().join("passwords"),
        acl_file: dir.path().join("acl"),
        reload: Reload::PidFile(dir.path().join("mosquitto.pid")),
    };
    // mosquitto starts with empty files; the platform fills them and sends SIGHUP.
    std::fs::write(&files.password_file, "").expect("password file");
    std::fs::write(&files.acl_file, "").expect("ACL file");
    let port = free_port();
    // Later lines override the test kit's `allow_anonymous true`; `user root` keeps
    // mosquitto able to read the test's files when the tests run as root.
    let _mosquitto = Mosquitto::start(
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\npid_file {}\nuser root\nlistener {port} 127.0.0.1\n",
            files.password_file.display(),
            files.acl_file.display(),
            dir.path().join("mosquitto.pid").display(),
        ),
        &[port],
    );
    let url = format!("mqtt://127.0.0.1:{port}");
    let broker = BrokerConfig::External {
        url: MqttUrl::parse(&url).expect("broker URL"),
        ca_file: None,
        username: None,
        password: Some(INGEST_PASSWORD.to_owned()),
    };
    let mut config = platform_config(dir.path(), broker);
    config.mosquitto = Some(files);
    // Without credentials mosquitto refuses a client: what gets through below got through
    // with the enrollment's.
    let (_client, mut events) =
        rumqttc::AsyncClient::new(rumqttc::MqttOptions::new("stranger", "127.0.0.1", port), 4);
    let refused = tokio::time::timeout(Duration::from_secs(10), events.poll())
        .await
        .expect("an answer to CONNECT");
    assert!(
        matches!(refused, Err(rumqttc::ConnectionError::ConnectionRefused(_))),
        "{refused:?}"
    );
    tokio::time::timeout(LIMIT, enroll_run_and_count(config, dir.path()))
        .await
        .expect("the test exceeded its time limit");
}

/// Registers an enterprise and issues a token through the API, enrolls a gateway with the
/// agent's enrollment code, runs the agent, and checks what the platform stored and counts.
async fn enroll_run_and_count(config: PlatformConfig, dir: &Path) {
    let shutdown = CancellationToken::new();
    let platform = Platform::start(config, shutdown.clone())
        .await
        .expect("the platform starts");
    let bureau = bureau(&platform);

    // The bureau registers the enterprise (a credit code with a valid check character)
    // and issues a token for one gateway.
    let code = CreditCode::complete("91420100770000001")
        .expect("a completable credit code")
        .to_string();
    bureau
        .register_enterprise(&EnterpriseInput {
            credit_code: code.clone(),
            name: "武汉端到端精密部件有限公司".to_owned(),
            industry: "auto-parts".to_owned(),
            district: "洪山区".to_owned(),
            in_program: true,
            ..Default::default()
        })
        .await
        .expect("the enterprise is registered");
    let token = bureau
        .issue_token(
            &code,
            &TokenInput {
                max_gateways: Some(1),
                expires_in_days: Some(1),
            },
        )
        .await
        .expect("a token")
        .token;
    let before = bureau.onboarding().await.expect("the counts");
    assert_eq!(before.total.registered, 1, "{before:?}");
    assert_eq!(before.total.on_cloud, 0, "{before:?}");

    // The gateway: what `fieldlink enroll --config FILE --url URL --token TOKEN --name
    // line-1` does, then the config as written plus what the state directory holds.
    let stop = CancellationToken::new();
    let device_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the device");
    let device_addr = device_listener.local_addr().expect("device address");
    let device = tokio::spawn(modbus_device::serve(
        device_listener,
        modbus_device::demo_register_map(),
        stop.clone(),
    ));
    let state = dir.join("gateway-state");
    let agent_config = agent_config(&unenrolled_config(device_addr, bureau.base()), &state);
    assert_eq!(agent_config.gateway.id, None, "the config names no gateway");
    let url = agent_config
        .platform
        .enroll_url
        .clone()
        .expect("enroll_url");
    let enrollment = enroll::request(&url, &token, "line-1")
        .await
        .expect("enrollment succeeds");
    let gateway = enrollment.gateway_id.clone();
    assert_eq!(gateway, format!("{code}-line-1"));
    assert_eq!(enrollment.enterprise.credit_code, code);
    assert_eq!(enrollment.mqtt.url, platform.public_mqtt_url());
    assert_eq!(enrollment.mqtt.username, gateway);
    let stored = enroll::store(&state, &enrollment).expect("enrollment stored");
    let mode = std::fs::metadata(&stored)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the credentials are the agent user's alone"
    );
    // The token was for one gateway: a second one is refused.
    let used_up = enroll::request(&url, &token, "line-2").await;
    assert!(
        matches!(used_up, Err(enroll::EnrollError::TokenUsedUp(_))),
        "{used_up:?}"
    );
    let silent = bureau.onboarding().await.expect("the counts");
    assert_eq!(silent.total.enrolled, 1, "{silent:?}");
    assert_eq!(silent.total.on_cloud, 0, "enrolled is not on the cloud yet");

    let agent = tokio::spawn(fieldlink::run(agent_config, stop.clone()));

    // Batches arrive and are stored under the enrolled gateway; the retained status says
    // online and the catalogue names both devices.
    let live = wait_for_gateway(&bureau, &gateway, |g| {
        g.gateway.batches >= 3 && g.gateway.online && g.meta.as_ref().is_some_and(Json::is_object)
    })
    .await;
    assert_eq!(live.credit_code, code.as_str());
    let meta = live.meta.as_ref().expect("the catalogue");
    let devices: Vec<&str> = meta["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(devices, ["press-1", "line-sim"], "{meta}");
    // The enterprise reads its own values (the bureau would need it to share them).
    let owner = bureau
        .enterprise_client(&code)
        .await
        .expect("a client of the enterprise");
    let latest = owner.latest(&gateway).await.expect("latest values");
    let points: Vec<String> = latest
        .iter()
        .map(|s| format!("{}/{}", s.device, s.point))
        .collect();
    for point in [
        "press-1/temperature",
        "press-1/spindle_speed",
        "line-sim/conveyor_count",
    ] {
        assert!(
            points.iter().any(|p| p == point),
            "{point} missing from {latest:?}"
        );
    }
    assert!(
        latest.iter().all(|s| s.quality == Quality::Good),
        "{latest:?}"
    );
    // An enrolled gateway sends packed batches unless configured otherwise: every batch
    // stored was decoded from one (a batch is decoded before it is stored).
    let ingest = platform.ingest_stats();
    assert!(
        ingest.packed >= 3 && ingest.packed >= ingest.batches_stored,
        "{ingest:?}"
    );

    // The bureau's counts: on the cloud and active, in its industry, district and the
    // program.
    let stats = bureau.onboarding().await.expect("the counts");
    for (group, counts) in [("total", stats.total), ("in_program", stats.in_program)] {
        assert_eq!(counts.on_cloud, 1, "{group}: {stats:?}");
        assert_eq!(counts.active, 1, "{group}: {stats:?}");
        assert_eq!(counts.silent, 0, "{group}: {stats:?}");
    }
    let industry = |code: &str| -> Counts {
        stats
            .by_industry
            .iter()
            .find(|r| r.industry.code() == code)
            .map(|r| r.counts)
            .unwrap_or_else(|| panic!("no {code} in by_industry: {stats:?}"))
    };
    let district = |name: &str| -> Counts {
        stats
            .by_district
            .iter()
            .find(|r| r.district.name() == name)
            .map(|r| r.counts)
            .unwrap_or_else(|| panic!("no {name} in by_district: {stats:?}"))
    };
    assert_eq!(industry("auto-parts").on_cloud, 1);
    assert_eq!(industry("biomedicine").on_cloud, 0);
    assert_eq!(district("洪山区").on_cloud, 1);
    assert_eq!(district("江岸区").on_cloud, 0);
    let enterprise = bureau.enterprise(&code).await.expect("the enterprise");
    assert!(enterprise.on_cloud, "{enterprise:?}");
    assert!(enterprise.active, "{enterprise:?}");

    // A clean stop: the agent publishes what it holds and says offline; the platform has
    // every batch once, with no gap.
    stop.cancel();
    agent.await.expect("agent task").expect("the agent ran");
    device
        .await
        .expect("device task")
        .expect("the device served");
    let offline = wait_for_gateway(&bureau, &gateway, |g| !g.gateway.online)
        .await
        .gateway;
    let batches = offline.batches;
    assert_eq!(offline.last_seq, Some(batches), "{offline:?}");
    assert_eq!(offline.missing_batches, 0, "{offline:?}");
    assert!(offline.samples >= batches, "{offline:?}");
    let ingest = bureau
        .ingest_stats()
        .await
        .expect("the ingest's counters")
        .counters;
    assert_eq!(ingest.batches_stored, batches, "{ingest:?}");
    for (rejected, count) in [
        ("unknown_gateway", ingest.unknown_gateway),
        ("gateway_mismatch", ingest.gateway_mismatch),
        ("undecodable", ingest.undecodable),
        ("duplicates", ingest.duplicates),
    ] {
        assert_eq!(count, 0, "{rejected}: {ingest:?}");
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), platform.wait())
        .await
        .expect("the platform stops in time")
        .expect("the platform stops cleanly");
}
