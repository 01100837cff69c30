//! Shared helpers: a platform on loopback ports, the test kit's typed client of its API
//! with the bureau's token (and raw requests for the error paths), and MQTT publishing as a
//! gateway.
//!
//! With `FIELDLINK_TEST_POSTGRES` set (an admin URL, see `fieldlink_testkit::postgres`),
//! every [`TestPlatform`] keeps its data in a fresh PostgreSQL database instead of SQLite,
//! so the whole suite runs on both backends. A platform restarted on the same data
//! directory after [`TestPlatform::stop_for_restart`] gets the same database back.

#![allow(dead_code)]

use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::{BrokerConfig, Database, MqttUrl, Platform, PlatformConfig};
use fieldlink_testkit::PlatformClient;
use fieldlink_testkit::platform_client::ClientError;
use fieldlink_testkit::postgres::TestDatabase;
use fieldlink_wire::{Batch, EnrollRequest, Sample, Value, encode_batch};
use reqwest::{Method, StatusCode};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The bureau token the tests configure.
pub const ADMIN: &str = "test-bureau-token";

/// Runs `test` with a deadline; a test that hangs fails instead.
pub async fn bounded<F: Future<Output = ()>>(limit: Duration, test: F) {
    tokio::time::timeout(limit, test)
        .await
        .expect("test exceeded its time limit");
}

/// Installs a log subscriber once (RUST_LOG-style filter in FIELDLINK_LOG; quiet default).
pub fn logs() {
    // reqwest is built with rustls but no crypto provider (the workspace's choice): the
    // tests speak plain HTTP, but building a client needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = std::env::var("FIELDLINK_LOG").unwrap_or_else(|_| "warn,rumqttd=off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// A platform running in this process.
pub struct TestPlatform {
    pub platform: Option<Platform>,
    pub base: String,
    pub mqtt: MqttUrl,
    pub mqtt_url: String,
    pub shutdown: CancellationToken,
    pub data_dir: PathBuf,
    /// The typed client of the API, with the bureau's token.
    pub client: PlatformClient,
    /// Its HTTP client, for raw requests.
    pub http: reqwest::Client,
    /// Its PostgreSQL database when `FIELDLINK_TEST_POSTGRES` is set (else SQLite).
    pub database: Option<TestDatabase>,
}

/// What became of the PostgreSQL database of a stopped platform, by data directory.
enum Parked {
    /// Kept by [`TestPlatform::stop_for_restart`] for the next platform on the directory.
    Kept(TestDatabase),
    /// Dropped by [`TestPlatform::stop`]: a restart there would find an empty database.
    Dropped,
}

/// Databases of stopped platforms, by data directory.
static PARKED: Mutex<Option<HashMap<PathBuf, Parked>>> = Mutex::new(None);

fn parked<T>(f: impl FnOnce(&mut HashMap<PathBuf, Parked>) -> T) -> T {
    let mut parked = PARKED.lock().unwrap_or_else(PoisonError::into_inner);
    f(parked.get_or_insert_with(HashMap::new))
}

/// The database for a platform on `data_dir`: the one kept for it by
/// [`TestPlatform::stop_for_restart`], else a new one; `None` without a test server.
async fn database_for(data_dir: &Path) -> Option<TestDatabase> {
    match parked(|p| p.remove(data_dir)) {
        Some(Parked::Kept(database)) => Some(database),
        Some(Parked::Dropped) => panic!(
            "the database of {} was dropped when its platform stopped: stop it with \
             stop_for_restart() to start another platform on the same data",
            data_dir.display()
        ),
        None => TestDatabase::create().await,
    }
}

/// A config with an in-process broker and the HTTP API on free ports.
pub fn config(data_dir: &Path) -> PlatformConfig {
    let mut config = PlatformConfig::new("127.0.0.1:0".parse().unwrap(), data_dir);
    config.broker = BrokerConfig::embedded("127.0.0.1:0".parse().unwrap());
    config.admin_token = Some(ADMIN.to_owned());
    config
}

impl TestPlatform {
    /// Starts a platform with an in-process broker.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(config(data_dir)).await
    }

    /// Starts a platform with `config`; with `FIELDLINK_TEST_POSTGRES` set and no database
    /// chosen in `config`, on a PostgreSQL database of its own (see [`database_for`]).
    pub async fn start_with(mut config: PlatformConfig) -> Self {
        logs();
        let shutdown = CancellationToken::new();
        let data_dir = config.data_dir.clone();
        let database = match config.database {
            Database::Sqlite => database_for(&data_dir).await,
            Database::Postgres { .. } => None,
        };
        if let Some(database) = &database {
            config.database = Database::Postgres {
                url: database.url().to_owned(),
                ca_file: None,
            };
        }
        let platform = Platform::start(config, shutdown.clone())
            .await
            .expect("platform starts");
        let mqtt_url = platform.public_mqtt_url().to_owned();
        let client =
            PlatformClient::new(format!("http://{}", platform.http_addr())).with_token(ADMIN);
        TestPlatform {
            base: client.base().to_owned(),
            mqtt: MqttUrl::parse(&mqtt_url).expect("a mqtt:// URL"),
            mqtt_url,
            platform: Some(platform),
            shutdown,
            data_dir,
            http: client.http().clone(),
            client,
            database,
        }
    }

    /// Stops the platform gracefully, waits for it, and drops its PostgreSQL database.
    pub async fn stop(&mut self) {
        self.shut_down().await;
        if let Some(database) = self.database.take() {
            parked(|p| p.insert(self.data_dir.clone(), Parked::Dropped));
            tokio::time::timeout(Duration::from_secs(40), database.drop_database())
                .await
                .expect("the test database is dropped in time");
        }
    }

    /// Stops the platform gracefully and waits for it, keeping its data for the next
    /// platform started on the same data directory (its PostgreSQL database included).
    pub async fn stop_for_restart(&mut self) {
        self.shut_down().await;
        if let Some(database) = self.database.take() {
            parked(|p| p.insert(self.data_dir.clone(), Parked::Kept(database)));
        }
    }

    async fn shut_down(&mut self) {
        self.shutdown.cancel();
        if let Some(platform) = self.platform.take() {
            tokio::time::timeout(Duration::from_secs(20), platform.wait())
                .await
                .expect("platform stops in time")
                .expect("platform stops cleanly");
        }
    }

    /// Every stored byte of the platform's data: the SQLite files and write-ahead logs
    /// of its data directory, or every row of every table of its PostgreSQL database as
    /// text. For checks that a secret is never stored in the clear.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        let Some(database) = &self.database else {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(&self.data_dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".sqlite3") || name.ends_with(".sqlite3-wal") {
                    bytes.extend(std::fs::read(&path).unwrap());
                }
            }
            return bytes;
        };
        let client = database.client().await;
        let tables = client
            .query(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
                 FROM information_schema.tables
                 WHERE table_type = 'BASE TABLE'
                   AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                &[],
            )
            .await
            .unwrap();
        let mut bytes = Vec::new();
        for table in tables {
            let table: String = table.get(0);
            for row in client
                .query(&format!("SELECT t::text FROM {table} t"), &[])
                .await
                .unwrap()
            {
                bytes.extend(row.get::<_, String>(0).into_bytes());
                bytes.push(b'\n');
            }
        }
        bytes
    }

    /// A request with the bureau's token.
    pub fn bureau(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, path)
    }

    /// GET as the bureau, expecting 200 and JSON.
    pub async fn get(&self, path: &str) -> Json {
        self.client.get_json(path).await.unwrap()
    }

    /// The latest values of `gateway`, read as its enterprise: the bureau reads sample
    /// values only of enterprises that share them.
    pub async fn latest(&self, gateway: &str) -> Json {
        let code = gateway.split_once('-').map_or(gateway, |(code, _)| code);
        let owner = self.client.enterprise_client(code).await.unwrap();
        owner
            .get_json(&format!("/api/v1/gateways/{gateway}/latest"))
            .await
            .unwrap()
    }

    /// POST JSON as the bureau; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: Json) -> (StatusCode, Json) {
        self.client.post_json(path, &body).await.unwrap()
    }

    /// Registers an enterprise; panics unless 201.
    pub async fn register(&self, code: &str, industry: &str, district: &str, in_program: bool) {
        let input = EnterpriseInput {
            credit_code: code.to_owned(),
            name: format!("企业 {code}"),
            industry: industry.to_owned(),
            district: district.to_owned(),
            in_program,
            ..Default::default()
        };
        self.client.register_enterprise(&input).await.unwrap();
    }

    /// Issues a token for `max_gateways` gateways; panics unless 201.
    pub async fn token(&self, code: &str, max_gateways: u32) -> String {
        let input = TokenInput {
            expires_in_days: None,
            max_gateways: Some(max_gateways),
        };
        self.client.issue_token(code, &input).await.unwrap().token
    }

    /// Calls the enrollment endpoint (no bureau token): the status and the JSON answer.
    pub async fn try_enroll(&self, token: &str, gateway_name: &str) -> (StatusCode, Json) {
        match self
            .client
            .enroll(&enroll_request(token, gateway_name))
            .await
        {
            Ok(enrollment) => (
                StatusCode::CREATED,
                serde_json::to_value(enrollment).unwrap(),
            ),
            Err(ClientError::Status { status, body, .. }) => (status, body),
            Err(e) => panic!("{e}"),
        }
    }

    /// Enrolls; panics unless 201. Returns (gateway id, password).
    pub async fn enroll(&self, token: &str, gateway_name: &str) -> (String, String) {
        let request = enroll_request(token, gateway_name);
        let enrollment = self.client.enroll(&request).await.unwrap();
        (enrollment.gateway_id, enrollment.mqtt.password)
    }

    /// The ingest's counters, and the open gaps, as JSON.
    pub async fn ingest_stats(&self) -> Json {
        self.get("/api/v1/stats/ingest").await
    }

    /// Polls the ingest's counters until `done` holds (at most `limit`).
    pub async fn wait_ingest(&self, limit: Duration, done: impl Fn(&Json) -> bool) -> Json {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let stats = self.ingest_stats().await;
            if done(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ingest did not get there in {limit:?}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The enrollment request of the tests' gateways.
fn enroll_request(token: &str, gateway_name: &str) -> EnrollRequest {
    EnrollRequest {
        token: token.to_owned(),
        gateway_name: gateway_name.to_owned(),
        hostname: Some("ipc-1".to_owned()),
        agent_version: Some("0.1.0".to_owned()),
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A valid credit code of Wuhan (区划 420100) with a 9-digit serial.
pub fn code(serial: u32) -> String {
    CreditCode::complete(&format!("91420100{serial:09}"))
        .unwrap()
        .to_string()
}

/// A batch of `count` samples in the contract's shape.
pub fn batch(gateway: &str, seq: u64, count: usize) -> Batch {
    let device: Arc<str> = "press-1".into();
    let samples = (0..count)
        .map(|i| {
            let point: Arc<str> = format!("p{:02}", i % 10).into();
            let ts = 1_764_201_600_000 + (i / 10) as i64 * 1000;
            match i % 3 {
                0 => Sample::good(device.clone(), point, ts, Value::Float(20.0 + i as f64)),
                1 => Sample::good(device.clone(), point, ts, Value::Int(i as i64)),
                _ => Sample::good(device.clone(), point, ts, Value::Bool(i % 2 == 0)),
            }
        })
        .collect();
    Batch {
        gateway: gateway.to_owned(),
        seq,
        samples,
    }
}

/// A connected MQTT client as a gateway, with its event loop driven in the background.
pub struct Gateway {
    pub client: AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

/// MQTT options for `client_id` with optional credentials.
pub fn mqtt_options(
    url: &MqttUrl,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(16 << 20, 16 << 20);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    options
}

/// Connects; the CONNACK's refusal (or any connection error) is the error.
pub async fn connect(
    url: &MqttUrl,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> Result<Gateway, ConnectionError> {
    let (client, mut events) = AsyncClient::new(mqtt_options(url, client_id, credentials), 64);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => panic!("no CONNACK within 10 s"),
        }
    }
    let (ack_tx, acks) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    let _ = ack_tx.send(());
                }
                Ok(_) => {}
                // Including after our DISCONNECT: the task ends when the broker closes
                // the connection (see `Gateway::disconnect`).
                Err(_) => return,
            }
        }
    });
    Ok(Gateway { client, acks, task })
}

impl Gateway {
    /// Publishes at QoS 1 and waits for the PUBACK; an error if the connection dropped.
    pub async fn try_publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), String> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), self.acks.recv()).await {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err("connection lost before the PUBACK".to_owned()),
            Err(_) => Err("no PUBACK within 10 s".to_owned()),
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.try_publish(topic, payload, retain)
            .await
            .expect("published");
    }

    /// Publishes a batch on `topic_gateway`'s data topic.
    pub async fn publish_batch(&mut self, topic_gateway: &str, batch: &Batch) {
        let topic = fieldlink_wire::Topics::new(topic_gateway).data;
        self.publish(&topic, encode_batch(batch), false).await;
    }

    /// Disconnects cleanly: sends DISCONNECT and keeps the socket open until the broker
    /// closes it. Closing first races in rumqttd: its router then sees two disconnects
    /// for the connection id, and the second one drops whichever client has been given
    /// that id again in the meantime (the next gateway to connect).
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Publishes batches as one gateway over a fresh connection, then disconnects. Like the
/// agent, it reconnects and sends everything again if the connection drops (rumqttd
/// sometimes closes a new connection under heavy connect/disconnect churn); the platform
/// drops the duplicates.
pub async fn publish_batches(
    url: &MqttUrl,
    gateway: &str,
    password: Option<&str>,
    batches: &[Batch],
) {
    let credentials = password.map(|p| (gateway, p));
    let topic = fieldlink_wire::Topics::new(gateway).data;
    let mut last_error = String::new();
    for _attempt in 0..5 {
        let mut client = match connect(url, gateway, credentials).await {
            Ok(client) => client,
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut sent = Ok(());
        for b in batches {
            sent = client.try_publish(&topic, encode_batch(b), false).await;
            if sent.is_err() {
                break;
            }
        }
        match sent {
            Ok(()) => return client.disconnect().await,
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{gateway} could not publish: {last_error}");
}
