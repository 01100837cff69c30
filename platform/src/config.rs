//! The platform's configuration: what `fieldlink-platform`'s flags set, and what the demo
//! and the tests build directly with [`PlatformConfig::new`].

pub use fieldlink_platform_store::{Database, DatabaseUrlError, redact_password};
pub use fieldlink_wire::{MqttUrl, MqttUrlError};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The MQTT broker's username for the platform's own ingest client when the platform
/// manages mosquitto's password file.
pub const DEFAULT_INGEST_USERNAME: &str = "fieldlink-ingest";

/// Everything the platform needs to run.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Where the HTTP API listens (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where SQLite (unless [`Self::database`] is PostgreSQL) and the generated secrets live.
    pub data_dir: PathBuf,
    /// The database every store (registry, samples, accounts, sessions) lives in.
    pub database: Database,
    /// Run the MQTT ingest (false for an HTTP-only instance of a scaled-out platform).
    pub ingest: bool,
    /// The broker the ingest reads from.
    pub broker: BrokerConfig,
    /// The MQTT URL handed to enrolled gateways; defaults to the broker's URL.
    pub public_mqtt_url: Option<String>,
    /// The bureau's bearer token. Without one, a token is generated once and kept in
    /// `DATA_DIR/admin-token` (mode 0600).
    pub admin_token: Option<String>,
    /// mosquitto's password and ACL files to keep in step with enrollments, if any.
    pub mosquitto: Option<MosquittoFiles>,
    /// The bearer token a clustered broker (EMQX) presents to the broker hook; without
    /// one the hook's routes are off.
    pub broker_hook_token: Option<String>,
    /// The MQTT client id of the ingest's persistent session; one per ingest instance.
    pub ingest_client_id: String,
    /// An MQTT shared-subscription group: several ingest instances with the same group
    /// split the batches between them (`$share/GROUP/fieldlink/v1/+/data`, EMQX).
    pub ingest_share_group: Option<String>,
    /// How long samples (and the batch ids that deduplicate them) are kept.
    pub retention: Duration,
    /// How often old samples are pruned.
    pub prune_interval: Duration,
    /// How long a gap (missing batches) may stay open before it is logged as a warning.
    pub gap_grace: Duration,
    /// The program's targets, shown beside the counts.
    pub targets: Targets,
    /// The program's time zone for daily counts, in minutes east of UTC (China Standard
    /// Time, UTC+08:00, by default; China has no daylight saving time).
    pub utc_offset_minutes: i32,
    /// Let alarm channels send to loopback and private addresses (on-premises receivers);
    /// off, such URLs are refused when saved and when sent to.
    pub allow_private_webhooks: bool,
}

impl PlatformConfig {
    /// A configuration with the defaults: in-process broker on 127.0.0.1:1883, 30 days
    /// of retention, the plan's targets.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        PlatformConfig {
            listen,
            data_dir: data_dir.into(),
            database: Database::Sqlite,
            ingest: true,
            broker: BrokerConfig::embedded(SocketAddr::from(([127, 0, 0, 1], 1883))),
            public_mqtt_url: None,
            admin_token: None,
            mosquitto: None,
            broker_hook_token: None,
            ingest_client_id: "fieldlink-platform-ingest".to_owned(),
            ingest_share_group: None,
            retention: Duration::from_secs(30 * 86_400),
            prune_interval: Duration::from_secs(3600),
            gap_grace: Duration::from_secs(600),
            targets: Targets::default(),
            utc_offset_minutes: 8 * 60,
            allow_private_webhooks: false,
        }
    }
}

/// Which MQTT broker the platform uses.
#[derive(Debug, Clone)]
pub enum BrokerConfig {
    /// An in-process rumqttd broker listening here (port 0 picks a free port). It has no
    /// authentication or ACL: any client may publish as any gateway.
    Embedded {
        /// The broker's listen address.
        listen: SocketAddr,
        /// How many bytes of messages the broker keeps for a subscription that falls behind
        /// (the ingest, while it stores slower than the gateways publish); beyond, the oldest
        /// are dropped after the gateways had their PUBACK. Bounds the broker's memory.
        queue_bytes: usize,
    },
    /// An external broker (mosquitto, EMQX) at this address.
    External {
        /// Host, port and TLS, from a `mqtt://host:port` or `mqtts://host:port` URL.
        url: MqttUrl,
        /// PEM CA certificates to verify an `mqtts://` broker with, instead of the
        /// system's roots.
        ca_file: Option<PathBuf>,
        /// The ingest client's username, if the broker asks for one.
        username: Option<String>,
        /// The ingest client's password. When the platform manages mosquitto's password
        /// file and none is given, one is generated and kept in `DATA_DIR/ingest-mqtt-password`.
        password: Option<String>,
    },
}

impl BrokerConfig {
    /// An in-process broker on `listen` with the default queue (128 MiB).
    pub fn embedded(listen: SocketAddr) -> Self {
        BrokerConfig::Embedded {
            listen,
            queue_bytes: fieldlink_broker::DEFAULT_QUEUE_BYTES,
        }
    }
}

/// mosquitto's files the platform rewrites on every enrollment, and how mosquitto is told.
#[derive(Debug, Clone)]
pub struct MosquittoFiles {
    /// mosquitto's `password_file`.
    pub password_file: PathBuf,
    /// mosquitto's `acl_file`.
    pub acl_file: PathBuf,
    /// How mosquitto is made to re-read them.
    pub reload: Reload,
}

/// How mosquitto is made to re-read its password and ACL files.
#[derive(Debug, Clone)]
pub enum Reload {
    /// Not at all (mosquitto is reloaded by other means).
    None,
    /// SIGHUP to the process whose id is in this file (mosquitto's `pid_file`).
    PidFile(PathBuf),
    /// Run this command with `sh -c` (e.g. `systemctl reload mosquitto`).
    Command(String),
}

/// The program's targets (the plan's by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Targets {
    /// In-program (transformed) enterprises on the cloud.
    pub in_program_on_cloud: u64,
    /// Enterprises of the key industries on the cloud.
    pub key_industries_on_cloud: u64,
    /// Enterprises on the cloud per industry.
    pub per_industry_on_cloud: u64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            in_program_on_cloud: 480,
            key_industries_on_cloud: 4000,
            per_industry_on_cloud: 1000,
        }
    }
}
