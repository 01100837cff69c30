//! Crash restarts end to end (issue 16, fault 4): the real agent process, SIGKILLed under
//! load and restarted on the same state directory, resumes numbering above its durable
//! reservation and names the skipped numbers in its status (`resumed_after_crash`); the
//! real platform records them as crash windows, so they never count as missing batches.
//!
//! The agent runs as an operating-system process ([`crate::process`]).
//!
//! Ground truth: a recorder subscribed to the platform's broker sees every batch and status
//! the agent published, independently of the platform's bookkeeping.

use crate::process::Process;
use fieldlink::enroll;
use fieldlink_platform::api::GatewayDetail;
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::{BrokerConfig, Platform, PlatformConfig};
use fieldlink_testkit::PlatformClient;
use fieldlink_tests::{Message, Recorder};
use fieldlink_wire::Status;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bureau's token in this test.
const BUREAU: &str = "e2e-crash-bureau-token";
/// The whole test's limit.
const LIMIT: Duration = Duration::from_secs(180);
/// How long one condition may take to come true.
const WAIT: Duration = Duration::from_secs(30);
/// SIGKILLs under load.
const KILLS: usize = 5;
/// Simulated points, all read every [`POLL`]: about 1,000 samples/s, 40 batches/s.
const POINTS: usize = 25;
/// The simulator's poll period.
const POLL: &str = "25ms";

/// The bureau's side of the HTTP API: the test kit's typed client with the bureau's token.
fn bureau(platform: &Platform) -> PlatformClient {
    PlatformClient::new(format!("http://{}", platform.http_addr()))
        .with_token(BUREAU)
        .with_timeout(Duration::from_secs(10))
}

/// What a gateway's detail says of its numbering, for progress and failure messages (the
/// whole detail holds its catalogue too).
fn numbering(g: &GatewayDetail) -> String {
    let v = &g.gateway;
    format!(
        "online {}, started_at {:?}, batches {}, last_seq {:?}, missing_batches {}, gaps {:?}, crash windows {:?}",
        v.online, v.started_at, v.batches, v.last_seq, v.missing_batches, g.gaps, g.crash_windows
    )
}

/// Polls the gateway's detail until `done` holds (bounded by [`WAIT`]); the last answer. A
/// timeout panics with `what`, the answer's numbering and the end of the running agent's log.
async fn wait_for_gateway(
    bureau: &PlatformClient,
    gateway: &str,
    what: &str,
    agent: Option<&Process>,
    mut done: impl FnMut(&GatewayDetail) -> bool,
) -> GatewayDetail {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = bureau.gateway(gateway).await.expect("the gateway's detail");
        if done(&answer) {
            return answer;
        }
        if Instant::now() >= deadline {
            let log = agent.map(Process::log_tail).unwrap_or_default();
            panic!(
                "{what}: not within {WAIT:?}: {}\nthe agent's log ends:\n{log}",
                numbering(&answer)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The agent's config: enrollment supplies the gateway id and the broker (the configured
/// one is a dead port); one simulator device of [`POINTS`] points read every [`POLL`] and
/// a flush every 500 ms, so a kill finds published batches that were not yet durable.
fn agent_toml(state: &Path) -> String {
    let mut toml = format!(
        r#"
[gateway]
state_dir = "{}"

[platform]
mqtt = "mqtt://127.0.0.1:9"

[publish]
batch_max_samples = 25
batch_max_delay = "100ms"
shutdown_timeout = "20s"

[buffer]
flush_interval = "500ms"

[status]
listen = "127.0.0.1:0"

[[device]]
name = "line-sim"
protocol = "simulator"
poll = "{POLL}"
"#,
        state.display()
    );
    let signals = ["sine", "ramp", "counter", "toggle", "random-walk"];
    for (i, signal) in signals.iter().cycle().take(POINTS).enumerate() {
        write!(
            toml,
            "\n[[device.point]]\nname = \"p{i:02}\"\nsignal = \"{signal}\"\n"
        )
        .expect("write to a String");
    }
    toml
}

/// A random pause in `[min_ms, max_ms)`, so that each kill lands at another moment of the
/// agent's collect, append, publish and flush cycle.
fn random_pause(min_ms: u64, max_ms: u64) -> Duration {
    let random = RandomState::new().hash_one(std::time::Instant::now());
    Duration::from_millis(min_ms + random % (max_ms - min_ms))
}

/// The distinct seqs of the batches in `messages`.
fn published_seqs(messages: &[Message]) -> BTreeSet<u64> {
    messages
        .iter()
        .filter(|m| m.topic.ends_with("/data"))
        .map(|m| {
            fieldlink_wire::decode_batch(&m.payload)
                .expect("a valid batch")
                .seq
        })
        .collect()
}

/// The windows the agent's statuses announced (`resumed_after_crash`), as inclusive ranges.
fn announced_windows(messages: &[Message]) -> BTreeSet<(u64, u64)> {
    messages
        .iter()
        .filter(|m| m.topic.ends_with("/status"))
        .filter_map(|m| serde_json::from_slice::<Status>(&m.payload).ok())
        .filter_map(|s| s.resumed_after_crash?.window())
        .collect()
}

/// Regression test of issue 16, fault 4: numbers reserved before a crash were counted as
/// missing batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_five_times_under_load_leaves_crash_windows_and_no_missing_batches() {
    tokio::time::timeout(LIMIT, kill_five_times_and_count())
        .await
        .expect("the test exceeded its time limit");
}

async fn kill_five_times_and_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config =
        PlatformConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("platform"));
    config.broker = BrokerConfig::embedded("127.0.0.1:0".parse().unwrap());
    config.admin_token = Some(BUREAU.to_owned());
    std::fs::create_dir_all(&config.data_dir).expect("platform data dir");
    let shutdown = CancellationToken::new();
    let platform = Platform::start(config, shutdown.clone())
        .await
        .expect("the platform starts");
    let bureau = bureau(&platform);

    // An enterprise, a token, and the gateway enrolled with the agent's enrollment code.
    let code = CreditCode::complete("91420100770000002")
        .expect("a completable credit code")
        .to_string();
    bureau
        .register_enterprise(&EnterpriseInput {
            credit_code: code.clone(),
            name: "武汉断电重启测试有限公司".to_owned(),
            industry: "auto-parts".to_owned(),
            district: "洪山区".to_owned(),
            in_program: false,
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
    let state = dir.path().join("gateway-state");
    let enrollment = enroll::request(bureau.base(), &token, "line-1")
        .await
        .expect("enrollment succeeds");
    enroll::store(&state, &enrollment).expect("enrollment stored");
    let gateway = enrollment.gateway_id;
    let config_file = dir.path().join("agent.toml");
    std::fs::write(&config_file, agent_toml(&state)).expect("write the agent config");

    // The embedded broker has no ACL: the recorder subscribes beside the ingest.
    let broker: SocketAddr = platform
        .public_mqtt_url()
        .strip_prefix("mqtt://")
        .and_then(|a| a.parse().ok())
        .expect("the embedded broker's mqtt://IP:PORT");
    let recorder = Recorder::start(broker, &format!("fieldlink/v1/{gateway}/#")).await;
    let started = Instant::now();

    // Run 0 (a fresh state directory) and runs 1 to 4 are killed under load, each once it
    // is publishing; runs 1 to 5 start after a kill and must have announced their window.
    // A run's first batch reserves 1,024 numbers, so every kill leaves a window: it could
    // be empty only if it landed just as a block of 1,024 was used up, and a run numbers
    // a few hundred batches here at most.
    let mut agent = Process::agent(&config_file, dir.path().join("agent-0.log"));
    wait_for_gateway(&bureau, &gateway, "run 0 publishing", Some(&agent), |g| {
        g.gateway.online && g.gateway.batches >= 5
    })
    .await;
    for kill in 1..=KILLS {
        let pause = random_pause(200, 1500);
        tokio::time::sleep(pause).await;
        let before = bureau
            .gateway(&gateway)
            .await
            .expect("the gateway's detail");
        let status = agent.kill().await;
        assert!(
            !status.success(),
            "kill {kill}: the agent exited with {status}"
        );
        eprintln!(
            "kill {kill}: {pause:?} into its publishing, last stored seq {}",
            before.gateway.last_seq.unwrap_or(0)
        );
        agent = Process::agent(&config_file, dir.path().join(format!("agent-{kill}.log")));
        // The new run's status names the numbers it skipped (the broker routed it)...
        let announced = recorder
            .wait_for(WAIT, |m| announced_windows(m).len() == kill)
            .await;
        assert!(
            announced,
            "run {kill} announced no new crash window; its log ends:\n{}",
            agent.log_tail()
        );
        let window = announced_windows(&recorder.messages())
            .last()
            .copied()
            .expect("a window");
        // ...reached the platform, and the run publishes above the window. Nothing here
        // asks the platform for its crash windows: without them the test runs to the end
        // and shows what the platform counts missing.
        wait_for_gateway(
            &bureau,
            &gateway,
            &format!("run {kill}'s status and batches above {window:?}"),
            Some(&agent),
            |g| {
                g.gateway.online
                    && g.gateway.started_at != before.gateway.started_at
                    && g.gateway.last_seq > Some(window.1)
            },
        )
        .await;
        eprintln!("run {kill}: resumed after the crash window {window:?}");
    }

    // A clean stop of run 5; the platform then has every batch the broker routed.
    tokio::time::sleep(random_pause(200, 1500)).await;
    let status = agent.terminate().await;
    assert!(status.success(), "SIGTERM: the agent exited with {status}");
    let mut published = BTreeSet::new();
    let detail = wait_for_gateway(
        &bureau,
        &gateway,
        "everything stored after the clean stop",
        None,
        |g| {
            published = published_seqs(&recorder.messages());
            !g.gateway.online
                && g.gateway.batches == published.len() as u64
                && g.gateway.last_seq == published.last().copied()
        },
    )
    .await;
    let ingest = bureau.ingest_stats().await.expect("the ingest's stats");
    let messages = recorder.messages();
    recorder.stop().await;
    eprintln!(
        "{KILLS} kills in {:?}: {} batches stored up to seq {}, {} duplicates dropped",
        started.elapsed(),
        detail.gateway.batches,
        detail.gateway.last_seq.unwrap_or(0),
        ingest.counters.duplicates
    );

    // Nothing counted missing, no gap open, anywhere.
    let counted = numbering(&detail);
    assert_eq!(detail.gateway.missing_batches, 0, "{counted}");
    assert!(detail.gaps.is_empty(), "{counted}");
    let open = ingest
        .open_gaps
        .expect("the open gaps (the database answers)");
    assert_eq!((open.gaps, open.missing_batches), (0, 0), "{open:?}");

    // Exactly one crash window per kill, each a range, disjoint, and the ones the agent
    // announced.
    let mut windows: Vec<(u64, u64)> = detail
        .crash_windows
        .iter()
        .map(|w| (w.first_seq, w.last_seq))
        .collect();
    windows.sort_unstable();
    assert_eq!(windows.len(), KILLS, "{counted}");
    assert_eq!(ingest.counters.crash_windows, KILLS as u64, "{ingest:?}");
    for (first, last) in &windows {
        assert!(first <= last, "window {first}..={last}: {counted}");
    }
    for pair in windows.windows(2) {
        assert!(pair[0].1 < pair[1].0, "overlapping windows {pair:?}");
    }
    assert_eq!(
        windows.iter().copied().collect::<BTreeSet<_>>(),
        announced_windows(&messages),
        "the platform's windows are not the ones the agent's statuses named"
    );

    // The batches stored (those the broker routed: the platform stored as many, and it
    // stores only what it receives) and the windows' numbers cover 1..=max seq, and the
    // windows are what closes it: without them numbers would be missing.
    let in_window = |seq: u64| windows.iter().any(|&(f, l)| (f..=l).contains(&seq));
    let max_seq = *published.last().expect("batches published");
    let holes: Vec<u64> = (1..=max_seq)
        .filter(|s| !published.contains(s) && !in_window(*s))
        .collect();
    assert!(
        holes.is_empty(),
        "seqs neither stored nor in a crash window: {holes:?}"
    );
    let skipped = (1..=max_seq)
        .filter(|s| !published.contains(s) && in_window(*s))
        .count();
    assert!(
        skipped > 0,
        "no number was skipped: the test did not exercise crash windows"
    );
    eprintln!("{skipped} numbers skipped in crash windows {windows:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), platform.wait())
        .await
        .expect("the platform stops in time")
        .expect("the platform stops cleanly");
}
