//! The validated configuration model: what the rest of the agent is handed. Every value
//! here has been checked; nothing downstream re-parses strings.

use fieldlink_collector_api::plugin::PluginDevice;
use fieldlink_modbus::{RtuDevice, TcpDevice};
use fieldlink_simulator::SimulatorDevice;
use fieldlink_wire::{Compression, MqttUrl, PointRole};
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `[gateway]`.
    pub gateway: GatewayConfig,
    /// `[platform]`.
    pub platform: PlatformConfig,
    /// `[publish]`.
    pub publish: PublishConfig,
    /// `[buffer]`.
    pub buffer: BufferConfig,
    /// `[status]`.
    pub status: StatusConfig,
    /// `[[device]]`, in file order.
    pub devices: Vec<DeviceConfig>,
}

/// `[gateway]`: identity and where state lives.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// The gateway id; `None` until enrollment supplies one.
    pub id: Option<String>,
    /// The directory holding the outbox and enrollment state.
    pub state_dir: PathBuf,
}

/// `[platform]`: the broker and credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    /// The broker's URL.
    pub mqtt: MqttUrl,
    /// MQTT username (by contract, the gateway id).
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<String>,
    /// PEM file of CA certificates to verify the broker with, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// The platform's enrollment URL.
    pub enroll_url: Option<String>,
    /// MQTT keep-alive interval.
    pub keep_alive: Duration,
}

/// `[publish]`: how samples are cut into batches and sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    /// A batch is cut when it holds this many samples...
    pub batch_max_samples: NonZeroUsize,
    /// ... or when its oldest sample has waited this long.
    pub batch_max_delay: Duration,
    /// Unacknowledged QoS 1 publishes allowed at once.
    pub max_inflight: NonZeroU16,
    /// The share of the in-flight window a draining backlog may use while live data flows.
    pub backlog_share: f64,
    /// How long SIGTERM may spend publishing before exiting.
    pub shutdown_timeout: Duration,
    /// How batches are framed on the wire: plain JSON, zstd-framed JSON, or packed, with a
    /// zstd level in 1..=19; `None`: not set, decided at start (packed for an enrolled
    /// gateway, plain JSON otherwise).
    pub compression: Option<Compression>,
    /// When a sent batch leaves the outbox; `None`: not set, decided at start (the platform's
    /// ack for an enrolled gateway, the broker's PUBACK otherwise).
    pub delete_on: Option<DeleteOn>,
    /// How long a batch the broker took may wait for the platform's ack before it is sent
    /// again (with `delete_on = "platform_ack"`).
    pub ack_timeout: Duration,
}

/// `[publish] delete_on`: what lets a sent batch leave the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOn {
    /// The platform's ack says it is stored (end to end; the fieldlink platform).
    PlatformAck,
    /// The broker's PUBACK (for receivers that publish no ack).
    Puback,
}

/// `[buffer]`: the durable outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferConfig {
    /// The cap on the outbox's size on disk.
    pub max_size: u64,
    /// How often appended batches are made durable (fsync).
    pub flush_interval: Duration,
}

/// `[status]`: the local status endpoint, and the retained status on MQTT.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusConfig {
    /// Where the local status endpoint listens.
    pub listen: SocketAddr,
    /// How often the retained MQTT status goes out again when nothing changed.
    pub refresh: Duration,
}

/// One `[[device]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// The device's name.
    pub name: Arc<str>,
    /// Its protocol and protocol settings.
    pub kind: DeviceKind,
    /// Its points' descriptions and reporting rules, in file order.
    pub points: Vec<PointInfo>,
    /// Reporting rules for the points that do not set their own.
    pub report: ReportDefaults,
    /// The template its points start from, if it names one.
    pub template: Option<Arc<str>>,
}

/// A device's report-by-exception defaults (`deadband`, `deadband_percent`, `heartbeat` on
/// the `[[device]]`): a point that sets neither deadband takes the device's deadbands, a
/// point without a heartbeat takes the device's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReportDefaults {
    /// Publish only changes larger than this (numbers).
    pub deadband: Option<f64>,
    /// Publish only changes larger than this percentage of the last published value's
    /// magnitude (numbers).
    pub deadband_percent: Option<f64>,
    /// ... but at least this often.
    pub heartbeat: Option<Duration>,
}

/// A device's protocol-specific settings, ready for its collector.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceKind {
    /// `protocol = "modbus-tcp"`.
    ModbusTcp(TcpDevice),
    /// `protocol = "modbus-rtu"`: a unit on a local serial line.
    ModbusRtu(RtuDevice),
    /// `protocol = "modbus-ascii"`: a unit on a local serial line, ASCII framing.
    ModbusAscii(RtuDevice),
    /// `protocol = "modbus-rtu-over-tcp"`: a unit behind a serial device server that
    /// passes RTU frames through TCP.
    ModbusRtuOverTcp(RtuDevice),
    /// `protocol = "opcua"`.
    Opcua(fieldlink_opcua::OpcuaDevice),
    /// `protocol = "simulator"`.
    Simulator(SimulatorDevice),
    /// A protocol of a plugin (`s7`, `mc`, `dlt645`): the plugin validated it and runs it.
    Plugin(PluginDeviceConfig),
}

/// A device of a plugin's protocol, as its plugin validated it.
#[derive(Debug, Clone)]
pub struct PluginDeviceConfig(pub Arc<dyn PluginDevice>);

impl PartialEq for PluginDeviceConfig {
    /// The same settings: a reload keeps the device running.
    fn eq(&self, other: &Self) -> bool {
        self.0.same(&*other.0)
    }
}

impl DeviceKind {
    /// The protocol's configuration name.
    pub fn protocol(&self) -> &'static str {
        match self {
            DeviceKind::ModbusTcp(_) => "modbus-tcp",
            DeviceKind::ModbusRtu(_) => "modbus-rtu",
            DeviceKind::ModbusAscii(_) => "modbus-ascii",
            DeviceKind::ModbusRtuOverTcp(_) => "modbus-rtu-over-tcp",
            DeviceKind::Opcua(_) => "opcua",
            DeviceKind::Simulator(_) => "simulator",
            DeviceKind::Plugin(device) => device.0.protocol(),
        }
    }
}

/// What every point has whatever its protocol: its catalogue entry and reporting rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PointInfo {
    /// The point's name.
    pub name: Arc<str>,
    /// Its data type's configuration name, for the catalogue.
    pub data_type: &'static str,
    /// Its engineering unit.
    pub unit: Option<String>,
    /// Report by exception: publish only changes larger than this.
    pub deadband: Option<f64>,
    /// ... or than this percentage of the last published value's magnitude.
    pub deadband_percent: Option<f64>,
    /// ... but at least this often.
    pub heartbeat: Option<Duration>,
    /// What the point means to the platform's monitoring.
    pub role: Option<PointRole>,
}
