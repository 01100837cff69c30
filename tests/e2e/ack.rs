//! End to end, a batch leaves the gateway only once the platform has stored it (issue 23):
//! the real agents, mosquitto with the passwords and ACL the platform manages and a small
//! `max_queued_messages`, and two platform processes sharing the ingest on PostgreSQL.
//!
//! Faults in a row, the agents publishing throughout, each one losing batches after
//! mosquitto's PUBACK to the gateway:
//! 1. one ingest instance SIGKILLed: mosquitto keeps handing its persistent session its
//!    round-robin share of the batches (platform/tests/shared_ingest.rs), queued for a
//!    restart that does not come, beyond [`QUEUED`] dropped;
//! 2. the other instance stopped too, for [`OUTAGE`]: both sessions' queues overflow;
//! 3. mosquitto restarted without persistence while the ingest is behind: what it had
//!    queued for the ingest is gone;
//! 4. one instance back, alone.
//!
//! The agents (`delete_on = "platform_ack"`, the enrolled default) keep every batch until
//! the platform's ack covers it and send again what the ack lists as missing. Ground
//! truth is each agent's own outbox: after a clean stop, every `seq` it ever numbered is
//! either stored at the platform or still in its outbox. Before issue 23 the agents deleted
//! a batch at its PUBACK, and every batch those faults dropped was lost for good.
//!
//! Before the faults, a config saved through the API reaches the first gateway through
//! mosquitto and the ACL the platform wrote, and the gateway applies it; alarm rules on its
//! toggling points then raise and clear throughout the faults, and every transition the
//! platform records reaches the test's webhook receiver once, whichever instance stored
//! the sample and whichever delivered the notification.

use crate::process::Process;
use fieldlink::enroll;
use fieldlink::status::StatusReport;
use fieldlink_outbox::{Outbox, OutboxOptions};
use fieldlink_platform::api::GatewayDetail;
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::store::alarms::AlarmEvent;
use fieldlink_testkit::PlatformClient;
use fieldlink_testkit::mosquitto::{Mosquitto, free_port};
use fieldlink_testkit::postgres::TestDatabase;
use fieldlink_testkit::webhook::WebhookReceiver;
use serde_json::json;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// The bureau's token on both instances.
const BUREAU: &str = "e2e-ack-bureau-token";
/// The ingest's MQTT password on mosquitto, given to both instances.
const INGEST_PASSWORD: &str = "e2e-ack-ingest-password";
/// The instances' shared-subscription group.
const GROUP: &str = "fieldlink-ingest";
/// Gateways, one agent process each.
const GATEWAYS: usize = 3;
/// mosquitto's `max_queued_messages`: batches a session holds before it drops them.
const QUEUED: u32 = 100;
/// How long the whole platform is down.
const OUTAGE: Duration = Duration::from_secs(60);
/// How long one ingest instance runs alone after the other's SIGKILL.
const ONE_KILLED: Duration = Duration::from_secs(15);
/// How long one condition may take to come true.
const WAIT: Duration = Duration::from_secs(120);
/// The whole test's limit.
const LIMIT: Duration = Duration::from_secs(480);
/// Simulated points, all read every [`POLL`]: about 1,000 samples/s, 40 batches/s a gateway.
const POINTS: usize = 25;
/// Toggling points (each flips every 5 to 30 s), each watched by an `equals` alarm rule.
const TOGGLES: usize = 5;
/// The simulator's poll period.
const POLL: &str = "25ms";
/// Batches an agent may hold once the platform has caught up: what arrived since its last
/// ack (acks come at most every 250 ms) and a little more.
const LIVE_TAIL: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto and FIELDLINK_TEST_POSTGRES; run by .ci/run"]
async fn batches_dropped_by_the_broker_after_its_puback_reach_the_platform() {
    let Some(database) = TestDatabase::create().await else {
        eprintln!("skipped: FIELDLINK_TEST_POSTGRES is not set");
        return;
    };
    tokio::time::timeout(LIMIT, faults_in_a_row(database.url()))
        .await
        .expect("the test exceeded its time limit");
    database.drop_database().await;
}

/// mosquitto as the platform manages it, with a small queue per session and no
/// persistence, on `port`; started again with the same files after a restart.
struct Broker {
    config: String,
    port: u16,
}

impl Broker {
    fn new(dir: &Path) -> Self {
        let port = free_port();
        // Later lines override the test kit's `allow_anonymous true`; `user root` keeps
        // mosquitto able to read the test's files when the tests run as root.
        let config = format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\npid_file {}\nuser root\n\
             max_queued_messages {QUEUED}\nlistener {port} 127.0.0.1\n",
            dir.join("passwords").display(),
            dir.join("acl").display(),
            dir.join("mosquitto.pid").display(),
        );
        std::fs::write(dir.join("passwords"), "").expect("password file");
        std::fs::write(dir.join("acl"), "").expect("ACL file");
        Broker { config, port }
    }

    fn start(&self) -> Mosquitto {
        Mosquitto::start(&self.config, &[self.port])
    }
}

/// Starts platform instance `name` (its ingest's client id `ingest-{session}`) and waits
/// (bounded) until its API answers.
async fn platform(
    dir: &Path,
    name: &str,
    session: &str,
    database: &str,
    broker: &Broker,
) -> (Process, PlatformClient) {
    let listen = format!("127.0.0.1:{}", free_port());
    let data_dir = dir.join(format!("platform-{session}"));
    std::fs::create_dir_all(&data_dir).expect("platform data dir");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let client_id = format!("ingest-{session}");
    let (passwords, acl, pid) = (
        dir.join("passwords"),
        dir.join("acl"),
        dir.join("mosquitto.pid"),
    );
    let args: Vec<&OsStr> = vec![
        "--listen".as_ref(),
        listen.as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--database".as_ref(),
        database.as_ref(),
        "--broker".as_ref(),
        url.as_ref(),
        "--admin-token".as_ref(),
        BUREAU.as_ref(),
        "--mosquitto-password-file".as_ref(),
        passwords.as_os_str(),
        "--mosquitto-acl-file".as_ref(),
        acl.as_os_str(),
        "--mosquitto-pid-file".as_ref(),
        pid.as_os_str(),
        "--ingest-share-group".as_ref(),
        GROUP.as_ref(),
        "--ingest-client-id".as_ref(),
        client_id.as_ref(),
    ];
    let process = Process::platform(
        &args,
        &[
            ("FIELDLINK_PLATFORM_BROKER_PASSWORD", INGEST_PASSWORD),
            // The alarm webhooks go to this test's receiver on loopback.
            ("FIELDLINK_PLATFORM_ALLOW_PRIVATE_WEBHOOKS", "1"),
        ],
        dir.join(format!("{name}.log")),
    );
    let client = PlatformClient::new(format!("http://{listen}"))
        .with_token(BUREAU)
        .with_timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.ingest_stats().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "platform {name} did not answer in 30 s; its log ends:\n{}",
            process.log_tail()
        );
        sleep(Duration::from_millis(50)).await;
    }
    (process, client)
}

/// One gateway: its agent process, its state directory and its status endpoint.
struct Gateway {
    id: String,
    state: PathBuf,
    status_port: u16,
    agent: Option<Process>,
}

impl Gateway {
    /// The agent's `/status`.
    async fn status(&self) -> StatusReport {
        let url = format!("http://127.0.0.1:{}/status", self.status_port);
        let answer = reqwest::get(&url).await.expect("the agent's /status");
        answer.json().await.expect("a status report")
    }

    fn log_tail(&self) -> String {
        self.agent
            .as_ref()
            .map(Process::log_tail)
            .unwrap_or_default()
    }
}

/// The agent's config: enrollment supplies the gateway id and the broker (the configured
/// one is a dead port); one simulator device of [`POINTS`] points read every [`POLL`].
fn agent_toml(state: &Path, status_port: u16) -> String {
    format!(
        r#"
[gateway]
state_dir = "{}"

[platform]
mqtt = "mqtt://127.0.0.1:9"

[status]
listen = "127.0.0.1:{status_port}"

{}"#,
        state.display(),
        publish_and_devices()
    )
}

/// The agent's `[publish]` section and its device: what a config from the platform holds.
fn publish_and_devices() -> String {
    let mut toml = format!(
        r#"[publish]
batch_max_samples = 25
batch_max_delay = "100ms"
ack_timeout = "20s"
shutdown_timeout = "20s"

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "{POLL}"
"#
    );
    for i in 0..POINTS {
        write!(
            toml,
            "\n[[device.point]]\nname = \"p{i:02}\"\nsignal = \"counter\"\n"
        )
        .expect("write to a String");
    }
    for i in 0..TOGGLES {
        write!(
            toml,
            "\n[[device.point]]\nname = \"t{i}\"\nsignal = \"toggle\"\n"
        )
        .expect("write to a String");
    }
    toml
}

/// Every `seq` in `1..=last_seq` is stored, by the platform's own bookkeeping.
fn stored_without_holes(d: &GatewayDetail) -> bool {
    let v = &d.gateway;
    v.missing_batches == 0
        && d.gaps.is_empty()
        && d.crash_windows.is_empty()
        && v.last_seq.is_some_and(|last| last == v.batches)
}

async fn faults_in_a_row(database: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let broker = Broker::new(dir);
    let mut mosquitto = broker.start();
    let (a, bureau) = platform(dir, "a", "a", database, &broker).await;
    let (b, _) = platform(dir, "b", "b", database, &broker).await;

    let code = CreditCode::complete("91420100770000003")
        .expect("a completable credit code")
        .to_string();
    bureau
        .register_enterprise(&EnterpriseInput {
            credit_code: code.clone(),
            name: "武汉端到端确认测试有限公司".to_owned(),
            industry: "auto-parts".to_owned(),
            district: "东西湖区".to_owned(),
            in_program: true,
            ..Default::default()
        })
        .await
        .expect("the enterprise is registered");
    let token = bureau
        .issue_token(
            &code,
            &TokenInput {
                max_gateways: Some(GATEWAYS as u32),
                expires_in_days: Some(1),
            },
        )
        .await
        .expect("a token")
        .token;
    let mut gateways = Vec::new();
    for i in 0..GATEWAYS {
        let state = dir.join(format!("gateway-{i}"));
        let enrollment = enroll::request(bureau.base(), &token, &format!("line-{i}"))
            .await
            .expect("enrollment succeeds");
        enroll::store(&state, &enrollment).expect("enrollment stored");
        let status_port = free_port();
        let config = dir.join(format!("agent-{i}.toml"));
        std::fs::write(&config, agent_toml(&state, status_port)).expect("agent config");
        let agent = Process::agent(&config, dir.join(format!("agent-{i}.log")));
        gateways.push(Gateway {
            id: enrollment.gateway_id,
            state,
            status_port,
            agent: Some(agent),
        });
    }
    for g in &gateways {
        wait_until(&bureau, g, "publishing through both instances", |d, _| {
            d.gateway.batches >= 40
        })
        .await;
    }

    // A config from the platform reaches a gateway through mosquitto and the ACL the
    // platform wrote: the first gateway gets a second device.
    let pushed = format!(
        "{}\n[[device]]\nname = \"oven\"\nprotocol = \"simulator\"\npoll = \"1s\"\n\n[[device.point]]\nname = \"temperature\"\n",
        publish_and_devices()
    );
    let saved = bureau
        .put_config(&gateways[0].id, &pushed)
        .await
        .expect("the config is saved");
    let deadline = Instant::now() + WAIT;
    while bureau
        .config(&gateways[0].id)
        .await
        .expect("the config")
        .applied_version
        != Some(saved.version)
    {
        assert!(
            Instant::now() < deadline,
            "config v{} not applied within {WAIT:?}",
            saved.version
        );
        sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "config v{} applied by {} through mosquitto",
        saved.version, gateways[0].id
    );

    // Alarms through the same faults: a rule on each toggling point of the first gateway,
    // raised and cleared by the ingest of either instance, notified to a webhook.
    let receiver = WebhookReceiver::start()
        .await
        .expect("the webhook receiver");
    let owner = bureau
        .enterprise_client(&code)
        .await
        .expect("the enterprise's client");
    let (status, channel) = owner
        .post_json(
            &format!("/api/v1/enterprises/{code}/channels"),
            &json!({"name": "值班群", "kind": "webhook", "url": receiver.url()}),
        )
        .await
        .expect("the channel");
    assert_eq!(status.as_u16(), 201, "{channel}");
    for i in 0..TOGGLES {
        let rule = json!({"name": format!("t{i} 动作"), "gateway": gateways[0].id, "device": "line-sim",
                          "point": format!("t{i}"), "kind": "equals", "threshold": 1,
                          "severity": "info", "channels": [channel["id"]]});
        let (status, answer) = owner
            .post_json(&format!("/api/v1/enterprises/{code}/alarm-rules"), &rule)
            .await
            .expect("a rule");
        assert_eq!(status.as_u16(), 201, "{answer}");
    }

    eprintln!("fault 1: instance b SIGKILLed; a alone for {ONE_KILLED:?}");
    b.kill().await;
    sleep(ONE_KILLED).await;
    eprintln!("fault 2: instance a stopped too; the platform down for {OUTAGE:?}");
    let stopped = a.terminate().await;
    assert!(stopped.success(), "instance a stopped with {stopped}");
    sleep(OUTAGE).await;
    eprintln!("fault 3: mosquitto restarted without persistence, the ingest's queues in it");
    drop(mosquitto);
    mosquitto = broker.start();
    eprintln!("recovery: instance a back, alone");
    let (a, bureau) = platform(dir, "a-again", "a", database, &broker).await;

    // Caught up: the platform holds everything below what it last stored, and each agent
    // holds no more than its live tail.
    let mut reports = Vec::new();
    for g in &gateways {
        let status = wait_until(&bureau, g, "the platform caught up", |d, s| {
            stored_without_holes(d) && s.outbox.batches <= LIVE_TAIL
        })
        .await;
        reports.push(status);
    }
    for g in &mut gateways {
        let agent = g.agent.take().expect("the agent runs");
        let exit = agent.terminate().await;
        assert!(exit.success(), "{}: the agent exited with {exit}", g.id);
    }

    // Ground truth: each seq the agent numbered is stored or still in its outbox.
    let mut lines = Vec::new();
    for (g, report) in gateways.iter().zip(&reports) {
        let detail = bureau.gateway(&g.id).await.expect("the gateway's detail");
        assert!(stored_without_holes(&detail), "{}: {detail:?}", g.id);
        let stored_through = detail.gateway.last_seq.unwrap_or(0);
        let (outbox, opened) =
            Outbox::open(OutboxOptions::new(g.state.join("outbox.redb"), 1 << 30))
                .expect("the agent's outbox");
        let kept: Vec<u64> = outbox
            .oldest(0, usize::MAX)
            .expect("read the outbox")
            .into_iter()
            .map(|r| r.seq)
            .collect();
        let numbered = opened.next_seq - 1;
        let lost: Vec<u64> = (stored_through + 1..=numbered)
            .filter(|seq| kept.binary_search(seq).is_err())
            .collect();
        let stats = outbox.stats();
        assert_eq!(stats.evicted_batches, 0, "{}: evictions", g.id);
        assert!(
            lost.is_empty(),
            "{}: {} batches neither stored nor kept, from {:?}",
            g.id,
            lost.len(),
            lost.first()
        );
        lines.push(format!(
            "{}: numbered {numbered}, stored {} ({} samples), kept {} (the unacknowledged tail), \
             lost 0; sends acknowledged by mosquitto {}, deleted on the platform's ack {}, \
             resent {}",
            g.id,
            detail.gateway.batches,
            detail.gateway.samples,
            kept.len(),
            report.mqtt.published_batches,
            report.mqtt.platform_acknowledged_batches,
            report.mqtt.resent_batches,
        ));
    }
    let stats = bureau.ingest_stats().await.expect("ingest stats");
    eprintln!("{}", lines.join("\n"));
    eprintln!(
        "instance a after its restart: batches received {}, stored {}, duplicates {}, acks published {}",
        stats.counters.batches_received,
        stats.counters.batches_stored,
        stats.counters.duplicates,
        stats.counters.acks_published,
    );
    // Each transition the platform recorded was delivered, once.
    let owner = bureau
        .enterprise_client(&code)
        .await
        .expect("the enterprise's client of the instance back");
    let events: Vec<AlarmEvent> = serde_json::from_value(
        owner
            .get_json(&format!("/api/v1/enterprises/{code}/alarms?state=all"))
            .await
            .expect("the alarms"),
    )
    .expect("alarm events");
    let expected = events.len() + events.iter().filter(|e| e.cleared_at.is_some()).count();
    let deadline = Instant::now() + WAIT;
    while receiver.deliveries().len() < expected {
        assert!(
            Instant::now() < deadline,
            "{} of {expected} alarm notifications delivered",
            receiver.deliveries().len()
        );
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(1)).await;
    let deliveries = receiver.deliveries();
    let mut ids: Vec<String> = deliveries
        .iter()
        .map(|d| d.id.clone().expect("a delivery id"))
        .collect();
    ids.sort();
    ids.dedup();
    eprintln!(
        "alarms: {} events, {expected} transitions, {} notifications delivered ({} distinct)",
        events.len(),
        deliveries.len(),
        ids.len()
    );
    assert!(
        expected >= 2 * TOGGLES,
        "too few transitions to say anything: {expected}"
    );
    assert_eq!(
        (ids.len(), deliveries.len()),
        (expected, expected),
        "each transition delivered once"
    );
    drop(a);
    drop(mosquitto);
}

/// Polls the platform's view of `g` and its agent's status until `done` holds (bounded by
/// [`WAIT`]); the agent's last status. A timeout panics with `what`, both views and the end
/// of the agent's log.
async fn wait_until(
    bureau: &PlatformClient,
    g: &Gateway,
    what: &str,
    done: impl Fn(&GatewayDetail, &StatusReport) -> bool,
) -> StatusReport {
    let deadline = Instant::now() + WAIT;
    loop {
        let detail = bureau.gateway(&g.id).await.expect("the gateway's detail");
        let status = g.status().await;
        if done(&detail, &status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {what}: not within {WAIT:?}: {:?}, gaps {:?}; outbox {:?}\nthe agent's log ends:\n{}",
            g.id,
            detail.gateway,
            detail.gaps,
            status.outbox,
            g.log_tail()
        );
        sleep(Duration::from_millis(200)).await;
    }
}
