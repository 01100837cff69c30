//! Against a real mosquitto (installed by `.ci/run`; these tests are `#[ignore]`d for a
//! plain `cargo test`): the platform writes mosquitto's password and ACL files and
//! SIGHUPs it on every enrollment; a gateway's credentials cannot publish as another
//! gateway, unknown or rotated-out credentials are refused, and batches flow end to end.

use crate::support::{TestPlatform, batch, bounded, code, config, connect};
use fieldlink_platform::{BrokerConfig, Database, MosquittoFiles, MqttUrl, Reload};
use fieldlink_wire::topic::DATA_FILTER;
use reqwest::StatusCode;
use rumqttc::{AsyncClient, ConnectionError, Event, Packet, QoS};
use serde_json::{Value as Json, json};
use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INGEST_PASSWORD: &str = "ingest-password-for-the-test";

/// A mosquitto process, killed when dropped.
struct Mosquitto {
    child: Child,
    log: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn mosquitto_binary() -> PathBuf {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

/// Starts mosquitto with authentication and the platform's files, and waits for it.
fn start_mosquitto(dir: &Path, port: u16, files: &MosquittoFiles, pid_file: &Path) -> Mosquitto {
    let conf = dir.join("mosquitto.conf");
    let log = dir.join("mosquitto.log");
    // `user root`: when the tests run as root, do not drop privileges (the files are
    // the test's own).
    let text = format!(
        "per_listener_settings false\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
         pid_file {}\npersistence false\nuser root\nlog_dest file {}\nlog_type all\n\
         listener {port} 127.0.0.1\n",
        files.password_file.display(),
        files.acl_file.display(),
        pid_file.display(),
        log.display()
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed for the interop tests (.ci/run installs it)");
    let mosquitto = Mosquitto { child, log };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen: {}",
            std::fs::read_to_string(&mosquitto.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    mosquitto
}

/// Connects, retrying while refused: mosquitto handles the SIGHUP after enrollment
/// answered.
async fn connect_when_accepted(url: &MqttUrl, id: &str, password: &str) -> crate::support::Gateway {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match connect(url, id, Some((id, password))).await {
            Ok(gateway) => return gateway,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "{id} refused: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn refused(result: Result<crate::support::Gateway, ConnectionError>) -> bool {
    matches!(result, Err(ConnectionError::ConnectionRefused(_)))
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn mosquitto_isolates_gateways_and_refuses_strangers() {
    bounded(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let port = free_port();
        let files = MosquittoFiles {
            password_file: dir.path().join("passwords"),
            acl_file: dir.path().join("acl"),
            reload: Reload::PidFile(dir.path().join("mosquitto.pid")),
        };
        let url = MqttUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
        let mut config = config(&data_dir);
        config.broker = BrokerConfig::External {
            url: url.clone(),
            ca_file: None,
            username: None,
            password: Some(INGEST_PASSWORD.to_owned()),
        };
        config.mosquitto = Some(files.clone());
        let mut p = TestPlatform::start_with(config).await;
        assert_eq!(p.mqtt_url, url.to_string());
        let acl = std::fs::read_to_string(&files.acl_file).unwrap();
        assert!(acl.contains("pattern write fieldlink/v1/%u/data"), "{acl}");
        assert!(acl.contains("pattern read fieldlink/v1/%u/ack"), "{acl}");
        let _mosquitto =
            start_mosquitto(dir.path(), port, &files, &dir.path().join("mosquitto.pid"));
        p.wait_ingest(Duration::from_secs(40), |s| {
            s["data_connected"] == true && s["state_connected"] == true
        })
        .await;

        let c = code(31);
        p.register(&c, "petrochemical", "青山区", true).await;
        let token = p.token(&c, 2).await;
        let (a, a_password) = p.enroll(&token, "a").await;
        let (b, b_password) = p.enroll(&token, "b").await;
        let passwords = std::fs::read_to_string(&files.password_file).unwrap();
        assert!(passwords.contains(&format!("{a}:$7$101$")), "{passwords}");
        assert!(!passwords.contains(&a_password));

        // An observer with the ingest's read permission sees what reaches subscribers.
        let (observer, mut observer_events) = AsyncClient::new(
            crate::support::mqtt_options(
                &url,
                "test-observer",
                Some(("fieldlink-ingest", INGEST_PASSWORD)),
            ),
            16,
        );
        observer
            .subscribe(DATA_FILTER, QoS::AtLeastOnce)
            .await
            .unwrap();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let observer_task = tokio::spawn(async move {
            while let Ok(event) = observer_events.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = event {
                    let _ = seen_tx.send(p.topic.clone());
                }
            }
        });

        let mut gw_a = connect_when_accepted(&url, &a, &a_password).await;
        // Let the observer's subscription settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A, with its own credentials, publishes as B: mosquitto drops it.
        gw_a.publish_batch(&b, &batch(&b, 1, 10)).await;
        // Then on its own topic.
        gw_a.publish_batch(&a, &batch(&a, 1, 10)).await;
        gw_a.disconnect().await;
        let first_seen = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
            .await
            .expect("the observer sees A's batch")
            .unwrap();
        assert_eq!(
            first_seen,
            format!("fieldlink/v1/{a}/data"),
            "B's topic reached a subscriber"
        );
        p.wait_ingest(Duration::from_secs(20), |s| s["batches_stored"] == 1)
            .await;
        let stats = p.ingest_stats().await;
        assert_eq!(
            stats["gateway_mismatch"], 0,
            "the spoofed batch reached the ingest: {stats}"
        );
        assert_eq!(p.get(&format!("/api/v1/gateways/{b}")).await["batches"], 0);
        assert_eq!(p.get(&format!("/api/v1/gateways/{a}")).await["batches"], 1);

        // Strangers are refused at CONNECT.
        assert!(refused(
            connect(&url, "stranger", Some(("stranger", "guess"))).await
        ));
        assert!(refused(connect(&url, "anonymous", None).await));
        assert!(refused(connect(&url, &b, Some((&b, &a_password))).await));
        let mut gw_b = connect_when_accepted(&url, &b, &b_password).await;
        gw_b.publish_batch(&b, &batch(&b, 1, 10)).await;
        gw_b.disconnect().await;
        p.wait_ingest(Duration::from_secs(20), |s| s["batches_stored"] == 2)
            .await;

        // Re-enrollment rotates: A's old password stops working, the new one works.
        let (_, a_new_password) = p.enroll(&token, "a").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !refused(connect(&url, &a, Some((&a, &a_password))).await) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the old password still works"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        connect_when_accepted(&url, &a, &a_new_password)
            .await
            .disconnect()
            .await;

        observer_task.abort();
        p.stop().await;
    })
    .await;
}

/// Regression test: two instances managing one mosquitto's files. They used to write the
/// same `<file>.tmp` (one renamed the other's away: 500 for an enrollment already
/// committed) and to install a file made from an older read over a newer one (an
/// enrolled gateway's line vanished, and mosquitto refused it after its 201).
#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn two_instances_keep_every_enrolled_gateway_in_the_password_file() {
    const ENROLLMENTS: usize = 1000;
    const CONCURRENT_PER_INSTANCE: usize = 8;
    bounded(Duration::from_secs(600), async {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let port = free_port();
        let pid_file = dir.path().join("mosquitto.pid");
        let files = MosquittoFiles {
            password_file: dir.path().join("passwords"),
            acl_file: dir.path().join("acl"),
            reload: Reload::PidFile(pid_file.clone()),
        };
        let url = MqttUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
        let instance_config = |client_id: &str| {
            let mut config = config(&data_dir);
            config.broker = BrokerConfig::External {
                url: url.clone(),
                ca_file: None,
                username: None,
                password: Some(INGEST_PASSWORD.to_owned()),
            };
            config.mosquitto = Some(files.clone());
            config.ingest_client_id = client_id.to_owned();
            config.ingest_share_group = Some("ingest".to_owned());
            config
        };
        let mut first = TestPlatform::start_with(instance_config("ingest-1")).await;
        // The second instance shares the first's database: the same SQLite file, or the
        // same PostgreSQL database.
        let mut second_config = instance_config("ingest-2");
        if let Some(database) = &first.database {
            second_config.database = Database::Postgres {
                url: database.url().to_owned(),
                ca_file: None,
            };
        }
        let mut second = TestPlatform::start_with(second_config).await;
        let _mosquitto = start_mosquitto(dir.path(), port, &files, &pid_file);

        let c = code(32);
        first.register(&c, "auto-parts", "汉阳区", true).await;
        let token = first.token(&c, ENROLLMENTS as u32).await;

        // The watcher re-reads the file and checks that every gateway whose 201 arrived
        // before the read began is in it.
        let enrolled: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (enrolled, stop, path) =
                (enrolled.clone(), stop.clone(), files.password_file.clone());
            std::thread::spawn(move || {
                let (mut reads, mut missing) = (0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let expected = enrolled.lock().unwrap().clone();
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let present: HashSet<&str> =
                        text.lines().filter_map(|l| l.split(':').next()).collect();
                    missing.extend(
                        expected
                            .into_iter()
                            .filter(|(id, _)| !present.contains(id.as_str()))
                            .map(|(id, _)| id),
                    );
                    reads += 1;
                }
                (reads, missing)
            })
        };

        let instances = [first.base.clone(), second.base.clone()];
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for (i, base) in instances
            .iter()
            .cycle()
            .take(2 * CONCURRENT_PER_INSTANCE)
            .enumerate()
        {
            let (base, token, next, enrolled) =
                (base.clone(), token.clone(), next.clone(), enrolled.clone());
            let http = first.http.clone();
            workers.spawn(async move {
                let mut failures = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= ENROLLMENTS {
                        return failures;
                    }
                    // Worker i sends every enrollment to the same instance.
                    let response = http
                        .post(format!("{base}/api/v1/enroll"))
                        .json(&json!({"token": token, "gateway_name": format!("gw-{n}")}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let body: Json = response.json().await.unwrap_or_default();
                    if status == StatusCode::CREATED {
                        let id = body["gateway_id"].as_str().unwrap().to_owned();
                        let password = body["mqtt"]["password"].as_str().unwrap().to_owned();
                        enrolled.lock().unwrap().push((id, password));
                    } else {
                        failures.push(format!("worker {i}, gw-{n}: {status} {body}"));
                    }
                }
            });
        }
        let mut failures = Vec::new();
        while let Some(worker) = workers.join_next().await {
            failures.extend(worker.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        let (reads, missing) = watcher.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} enrollments failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert!(reads > 10, "the watcher read the file only {reads} times");
        let missing: HashSet<String> = missing.into_iter().collect();
        assert!(
            missing.is_empty(),
            "{} enrolled gateways were missing from the file at some read, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        let text = std::fs::read_to_string(&files.password_file).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.contains(":$7$")).count(),
            ENROLLMENTS + 1,
            "every gateway and the ingest"
        );
        assert!(
            text.starts_with(&format!("# fieldlink credentials version {ENROLLMENTS}\n")),
            "{}",
            &text[..80]
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

        // mosquitto took the file: both instances' ingests are connected, and the last
        // gateway enrolled connects.
        for p in [&first, &second] {
            p.wait_ingest(Duration::from_secs(40), |s| s["data_connected"] == true)
                .await;
        }
        let (last, password) = enrolled.lock().unwrap().last().unwrap().clone();
        connect_when_accepted(&url, &last, &password)
            .await
            .disconnect()
            .await;

        second.stop().await;
        first.stop().await;
    })
    .await;
}

/// Subscribes as `id` to `filter` and collects what arrives for `listen`; the SUBACK's
/// return code says whether mosquitto allowed it (mosquitto grants a denied read but
/// delivers nothing, so the messages tell).
async fn ack_listener(
    url: &MqttUrl,
    id: &str,
    password: &str,
    filter: String,
) -> (
    AsyncClient,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    tokio::task::JoinHandle<()>,
) {
    let (client, mut events) = AsyncClient::new(
        crate::support::mqtt_options(url, &format!("{filter}-listener"), Some((id, password))),
        16,
    );
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
        }
    });
    (client, rx, task)
}

/// The platform (its ingest user, the password and ACL files it writes) on a mosquitto of
/// its own in `dir`, with the ingest connected; the broker's URL and the files.
async fn platform_on_mosquitto(dir: &Path) -> (TestPlatform, MqttUrl, MosquittoFiles, Mosquitto) {
    let port = free_port();
    let pid_file = dir.join("mosquitto.pid");
    let files = MosquittoFiles {
        password_file: dir.join("passwords"),
        acl_file: dir.join("acl"),
        reload: Reload::PidFile(pid_file.clone()),
    };
    let url = MqttUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let mut config = config(&dir.join("data"));
    config.broker = BrokerConfig::External {
        url: url.clone(),
        ca_file: None,
        username: None,
        password: Some(INGEST_PASSWORD.to_owned()),
    };
    config.mosquitto = Some(files.clone());
    let p = TestPlatform::start_with(config).await;
    let mosquitto = start_mosquitto(dir, port, &files, &pid_file);
    p.wait_ingest(Duration::from_secs(40), |s| s["state_connected"] == true)
        .await;
    (p, url, files, mosquitto)
}

/// A gateway reads its own ack, which only the platform writes: not another gateway's,
/// and it cannot write one itself (mosquitto drops the publish).
#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn a_gateway_reads_its_own_ack_and_nobody_elses() {
    bounded(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, url, _files, _mosquitto) = platform_on_mosquitto(dir.path()).await;
        let c = code(33);
        p.register(&c, "biomedicine", "江夏区", false).await;
        let token = p.token(&c, 2).await;
        let (a, a_password) = p.enroll(&token, "a").await;
        let (b, b_password) = p.enroll(&token, "b").await;
        // Wait until mosquitto has the new passwords.
        connect_when_accepted(&url, &a, &a_password)
            .await
            .disconnect()
            .await;
        connect_when_accepted(&url, &b, &b_password)
            .await
            .disconnect()
            .await;

        let (_own, mut own_rx, own_task) =
            ack_listener(&url, &a, &a_password, format!("fieldlink/v1/{a}/ack")).await;
        let (_other, mut other_rx, other_task) =
            ack_listener(&url, &a, &a_password, format!("fieldlink/v1/{b}/ack")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        // A forges its own ack: mosquitto drops it.
        let mut gw_a = connect_when_accepted(&url, &a, &a_password).await;
        gw_a.publish(
            &format!("fieldlink/v1/{a}/ack"),
            br#"{"stored_through":999999,"missing":[]}"#.to_vec(),
            true,
        )
        .await;
        // Batches of both gateways: the platform acks each.
        gw_a.publish_batch(&a, &batch(&a, 1, 3)).await;
        gw_a.disconnect().await;
        let mut gw_b = connect_when_accepted(&url, &b, &b_password).await;
        gw_b.publish_batch(&b, &batch(&b, 1, 3)).await;
        gw_b.disconnect().await;

        let (topic, payload) = tokio::time::timeout(Duration::from_secs(20), own_rx.recv())
            .await
            .expect("A gets its ack")
            .unwrap();
        assert_eq!(topic, format!("fieldlink/v1/{a}/ack"));
        let ack: fieldlink_wire::Ack = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            ack.stored_through, 1,
            "the platform's ack, not the forged one"
        );
        p.wait_ingest(Duration::from_secs(20), |s| {
            s["batches_stored"] == 2 && s["acks_published"].as_u64().unwrap_or(0) >= 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(other_rx.try_recv().is_err(), "A read B's ack");
        own_task.abort();
        other_task.abort();
        p.stop().await;
    })
    .await;
}

/// A gateway reads its own config, which only the platform writes (published retained by
/// the ingest after a PUT): not another gateway's, and it cannot write its own.
#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn a_gateway_reads_its_own_config_and_nobody_elses() {
    bounded(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, url, files, _mosquitto) = platform_on_mosquitto(dir.path()).await;
        let c = code(34);
        p.register(&c, "biomedicine", "江夏区", false).await;
        let token = p.token(&c, 2).await;
        let (a, a_password) = p.enroll(&token, "a").await;
        let (b, _) = p.enroll(&token, "b").await;
        connect_when_accepted(&url, &a, &a_password)
            .await
            .disconnect()
            .await;
        let acl = std::fs::read_to_string(&files.acl_file).unwrap();
        assert!(acl.contains("pattern read fieldlink/v1/%u/config"), "{acl}");

        let devices = "[[device]]\nname = \"sim\"\nprotocol = \"simulator\"\n[[device.point]]\nname = \"t\"\n";
        let saved_a = p.client.put_config(&a, devices).await.unwrap();
        let saved_b = p.client.put_config(&b, devices).await.unwrap();
        assert_eq!((saved_a.version, saved_b.version), (1, 1));
        p.wait_ingest(Duration::from_secs(20), |s| {
            s["configs_published"].as_u64().unwrap_or(0) >= 2
        })
        .await;

        // Retained: a subscription made after the publish gets A's config at once.
        let (_own, mut own_rx, own_task) =
            ack_listener(&url, &a, &a_password, format!("fieldlink/v1/{a}/config")).await;
        let (_other, mut other_rx, other_task) =
            ack_listener(&url, &a, &a_password, format!("fieldlink/v1/{b}/config")).await;
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(20), own_rx.recv())
            .await
            .expect("A gets its config")
            .unwrap();
        assert_eq!(topic, format!("fieldlink/v1/{a}/config"));
        let message = fieldlink_wire::ConfigMessage::decode(&a, &payload).expect("a valid config message");
        assert_eq!((message.version, message.toml.as_str()), (1, devices));

        // A forges its own config: mosquitto drops it, the retained one stays the platform's.
        let mut gw_a = connect_when_accepted(&url, &a, &a_password).await;
        let forged = fieldlink_wire::ConfigMessage::new(&a, 99, "[publish]\n".into());
        gw_a.publish(&format!("fieldlink/v1/{a}/config"), forged.to_json(), true)
            .await;
        gw_a.disconnect().await;
        let (_again, mut again_rx, again_task) =
            ack_listener(&url, &a, &a_password, format!("fieldlink/v1/{a}/config")).await;
        let (_, payload) = tokio::time::timeout(Duration::from_secs(20), again_rx.recv())
            .await
            .expect("the retained config")
            .unwrap();
        let retained = fieldlink_wire::ConfigMessage::decode(&a, &payload).unwrap();
        assert_eq!(retained.version, 1, "the platform's config, not the forged one");

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(other_rx.try_recv().is_err(), "A read B's config");
        for task in [own_task, other_task, again_task] {
            task.abort();
        }
        p.stop().await;
    })
    .await;
}
