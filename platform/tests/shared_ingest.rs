//! Two `fieldlink-platform` processes sharing one PostgreSQL database and one MQTT shared
//! subscription (`$share/fieldlink-ingest/...`) on a real mosquitto, one of them SIGKILLed
//! mid-stream and restarted: every batch is stored exactly once (`#[ignore]`d: needs
//! mosquitto and `FIELDLINK_TEST_POSTGRES`; run by `.ci/run`).
//!
//! What mosquitto 2.0 does with a shared group's member that dies (found by trying it,
//! and asserted below): it keeps the member's persistent session, and keeps handing it
//! its round-robin share of the group's messages, queued until a client with the same id
//! comes back; the other members do not get them. So the guarantee is: nothing is lost
//! and nothing is stored twice, but the dead member's share waits for its restart (with
//! the same `--ingest-client-id`), together with the batches it had received and not
//! acknowledged (stored or not: the `(gateway, seq)` key drops the stored ones).
//! Up to mosquitto's `max_queued_messages` (1000 by default) per session: size it for the
//! longest outage of an ingest instance.

use crate::support::{bounded, code, connect, logs};
use fieldlink_platform::MqttUrl;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_testkit::PlatformClient;
use fieldlink_testkit::mosquitto::{Mosquitto, free_port};
use fieldlink_testkit::postgres::TestDatabase;
use fieldlink_wire::{Batch, EnrollRequest, Sample, Value, encode_batch};
use reqwest::Method;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "shared-ingest-bureau-token";
const GROUP: &str = "fieldlink-ingest";
const ENTERPRISES: u32 = 4;
const GATEWAYS_PER_ENTERPRISE: u32 = 5;
const BATCHES: u64 = 100;
const SAMPLES_PER_BATCH: usize = 10;
/// The seqs published while B runs, while it is dead, and after its restart.
const PHASES: [std::ops::Range<u64>; 3] = [0..40, 40..70, 70..BATCHES];
const WAIT: Duration = Duration::from_secs(60);

/// A `fieldlink-platform` child process, SIGKILLed when dropped.
struct Instance {
    child: Child,
    /// Its API, as the bureau.
    client: PlatformClient,
    log: PathBuf,
}

impl Instance {
    /// Starts an instance and waits (bounded) until its HTTP API answers.
    async fn start(dir: &Path, name: &str, database_url: &str, broker: &MqttUrl) -> Instance {
        let listen = format!("127.0.0.1:{}", free_port());
        let data_dir = dir.join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = dir.join(format!("{name}.log"));
        // Appending: a restarted instance's log follows its first life's.
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fieldlink-platform"))
            .args(["--database", database_url])
            .args(["--broker", &broker.to_string()])
            .args(["--ingest-share-group", GROUP])
            .args(["--ingest-client-id", &format!("ingest-{name}")])
            .args(["--listen", &listen])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--admin-token", TOKEN])
            .env("FIELDLINK_LOG", "info,rumqttd=off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start fieldlink-platform");
        let mut instance = Instance {
            child,
            client: PlatformClient::new(format!("http://{listen}")).with_token(TOKEN),
            log,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = instance
                .client
                .request(Method::GET, "/healthz")
                .send()
                .await
                && r.status().is_success()
            {
                return instance;
            }
            if let Ok(Some(status)) = instance.child.try_wait() {
                panic!("instance {name} exited ({status}): {}", instance.log_text());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance {name} did not answer in 30 s: {}",
                instance.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no goodbye: the broker sees the connection drop.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Json {
        self.client.get_json(path).await.unwrap()
    }

    async fn ingest_stats(&self) -> Json {
        self.get("/api/v1/stats/ingest").await
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A batch of `SAMPLES_PER_BATCH` readings taken now (inside the retention period).
fn batch(gateway: &str, seq: u64) -> Batch {
    let ts = fieldlink_platform::clock::now_ms();
    let samples = (0..SAMPLES_PER_BATCH)
        .map(|i| {
            Sample::good(
                "press-1".into(),
                format!("p{i}").into(),
                ts,
                Value::Float(seq as f64),
            )
        })
        .collect();
    Batch {
        gateway: gateway.to_owned(),
        seq,
        samples,
    }
}

/// Batches (`gateway`, `seq`) stored in the database, of `gateways`.
async fn stored_batches(db: &tokio_postgres::Client, gateways: &[String]) -> i64 {
    db.query_one(
        "SELECT count(*) FROM batches WHERE gateway = ANY($1)",
        &[&gateways],
    )
    .await
    .unwrap()
    .get(0)
}

/// Publishes `seqs` of every gateway, each gateway on its own connection at QoS 1 (a
/// PUBACK awaited per batch), paced, counting acknowledged batches in `acked`.
async fn publish_phase(
    clients: Vec<(String, crate::support::Gateway)>,
    seqs: std::ops::Range<u64>,
    acked: Arc<AtomicUsize>,
) -> Vec<(String, crate::support::Gateway)> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(id, mut client)| {
            let (seqs, acked) = (seqs.clone(), acked.clone());
            tokio::spawn(async move {
                let topic = fieldlink_wire::Topics::new(&id).data;
                for seq in seqs {
                    client
                        .publish(&topic, encode_batch(&batch(&id, seq)), false)
                        .await;
                    acked.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (id, client)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.expect("a publisher failed"));
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto and FIELDLINK_TEST_POSTGRES; run by .ci/run"]
async fn two_instances_share_the_ingest_and_a_killed_one_loses_and_repeats_nothing() {
    logs();
    let Some(database) = TestDatabase::create().await else {
        eprintln!("skipped: FIELDLINK_TEST_POSTGRES is not set");
        return;
    };
    bounded(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let _mosquitto = Mosquitto::start(&format!("listener {port} 127.0.0.1"), &[port]);
        let broker = MqttUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
        let db = database.client().await;

        // A migrates the fresh database; B starts on it afterwards.
        let a = Instance::start(dir.path(), "a", database.url(), &broker).await;
        let b = Instance::start(dir.path(), "b", database.url(), &broker).await;

        // The registry through A; B sees the same database.
        let mut gateways = Vec::new();
        for e in 0..=ENTERPRISES {
            let c = code(9000 + e);
            let enterprise = EnterpriseInput {
                credit_code: c.clone(),
                name: format!("企业 {c}"),
                industry: "auto-parts".to_owned(),
                district: "洪山区".to_owned(),
                in_program: e % 2 == 0,
                ..Default::default()
            };
            a.client.register_enterprise(&enterprise).await.unwrap();
            let tokens = TokenInput {
                expires_in_days: None,
                max_gateways: Some(GATEWAYS_PER_ENTERPRISE),
            };
            let token = a.client.issue_token(&c, &tokens).await.unwrap().token;
            for g in 0..GATEWAYS_PER_ENTERPRISE {
                let request = EnrollRequest {
                    token: token.clone(),
                    gateway_name: format!("line-{g}"),
                    hostname: None,
                    agent_version: None,
                };
                let enrolled = a.client.enroll(&request).await.unwrap();
                gateways.push(enrolled.gateway_id);
            }
        }
        // The last enterprise's first gateway probes the subscriptions; the rest publish.
        let probe = gateways.split_off(gateways.len() - GATEWAYS_PER_ENTERPRISE as usize)[0].clone();
        assert_eq!(gateways.len(), (ENTERPRISES * GATEWAYS_PER_ENTERPRISE) as usize);
        let g0 = b.get(&format!("/api/v1/gateways/{}", gateways[0])).await;
        assert_eq!(g0["batches"], 0, "B reads what A registered: {g0}");

        // Both subscriptions are live once the round robin has handed each a probe.
        let mut prober = connect(&broker, &probe, None).await.unwrap();
        let probe_topic = fieldlink_wire::Topics::new(&probe).data;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for seq in 0.. {
            prober
                .publish(&probe_topic, encode_batch(&batch(&probe, seq)), false)
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (sa, sb) = (a.ingest_stats().await, b.ingest_stats().await);
            if sa["batches_stored"].as_u64() > Some(0) && sb["batches_stored"].as_u64() > Some(0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the shared subscription did not reach both instances: A {sa}, B {sb}"
            );
        }
        prober.disconnect().await;

        let mut clients = Vec::new();
        for id in &gateways {
            clients.push((id.clone(), connect(&broker, id, None).await.unwrap()));
        }
        let total = gateways.len() * BATCHES as usize;
        let acked = Arc::new(AtomicUsize::new(0));

        // Phase 1, B killed in the middle of it.
        let phase = tokio::spawn(publish_phase(clients, PHASES[0].clone(), acked.clone()));
        let kill_at = gateways.len() * PHASES[0].clone().count() * 2 / 5;
        assert!(
            fieldlink_testkit::wait_until(WAIT, || acked.load(Ordering::SeqCst) >= kill_at).await,
            "publishing stalled"
        );
        let b_before = b.ingest_stats().await;
        assert!(
            b_before["batches_stored"].as_u64() > Some(0),
            "B took part: {b_before}"
        );
        b.kill();
        let killed_at = tokio::time::Instant::now();
        let clients = phase.await.unwrap();

        // Phase 2, B dead: its share waits in its session; A does not get it.
        let clients = publish_phase(clients, PHASES[1].clone(), acked.clone()).await;
        let published = acked.load(Ordering::SeqCst);
        let mut stored = stored_batches(&db, &gateways).await;
        let mut stable_since = tokio::time::Instant::now();
        while stable_since.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = stored_batches(&db, &gateways).await;
            if now != stored {
                (stored, stable_since) = (now, tokio::time::Instant::now());
            }
            assert!(killed_at.elapsed() < WAIT, "A never settled");
        }
        assert!(
            (stored as usize) < published,
            "with B dead, A stored all {published} batches published ({stored}): mosquitto \
             handed B's share to A, which this test says it does not"
        );
        eprintln!(
            "B dead: {published} batches acknowledged by mosquitto, {stored} stored by A, the \
             rest queued for B's session"
        );

        // B back with the same client id, at least 2 s after its death; phase 3.
        tokio::time::sleep_until(killed_at + Duration::from_secs(2)).await;
        let b = Instance::start(dir.path(), "b", database.url(), &broker).await;
        let clients = publish_phase(clients, PHASES[2].clone(), acked.clone()).await;
        assert_eq!(acked.load(Ordering::SeqCst), total);
        for (_, client) in clients {
            client.disconnect().await;
        }

        // Every (gateway, seq) exactly once: the dedup rows, the samples, the counters.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stored = stored_batches(&db, &gateways).await;
            if stored as usize == total {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{stored} of {total} batches stored; A: {}, B: {}\nB's log:\n{}",
                a.ingest_stats().await,
                b.ingest_stats().await,
                b.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let samples: i64 = db
            .query_one(
                "SELECT count(*) FROM samples s JOIN points p ON p.id = s.point_id
                 WHERE p.gateway = ANY($1)",
                &[&gateways],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(samples as usize, total * SAMPLES_PER_BATCH);
        for id in &gateways {
            let g = a.get(&format!("/api/v1/gateways/{id}")).await;
            assert_eq!(g["batches"], BATCHES, "{g}");
            assert_eq!(g["samples"], BATCHES * SAMPLES_PER_BATCH as u64, "{g}");
            assert_eq!(g["last_seq"], BATCHES - 1, "{g}");
            assert_eq!(g["missing_batches"], 0, "{g}");
        }

        // Both shared the work: A, and B after its restart (what was queued for it, and
        // its share of phase 3).
        let (sa, sb) = (a.ingest_stats().await, b.ingest_stats().await);
        assert!(sa["batches_stored"].as_u64() > Some(0), "A: {sa}");
        assert!(sb["batches_stored"].as_u64() > Some(0), "B: {sb}");
        // The gaps each instance saw (batches out of order between them) are all filled,
        // and both read that from the database.
        let none_open = serde_json::json!({"gaps": 0, "missing_batches": 0});
        assert_eq!(sa["open_gaps"], none_open, "A: {sa}");
        assert_eq!(sb["open_gaps"], none_open, "B: {sb}");
        eprintln!(
            "A stored {}, B before its death {}, B after its restart {} (duplicates dropped: A {}, B {}; \
             transient gaps: A {}, B {}; late batches: A {}, B {})",
            sa["batches_stored"],
            b_before["batches_stored"],
            sb["batches_stored"],
            sa["duplicates"],
            sb["duplicates"],
            sa["gaps"],
            sb["gaps"],
            sa["late_batches"],
            sb["late_batches"]
        );
        drop(db);
        drop((a, b));
    })
    .await;
    database.drop_database().await;
}
