//! The agent's TOML configuration, parsed once into a validated model. A crate of its own
//! so that the platform validates a config it pushes to a gateway with this same code.
//!
//! Parsing runs in two layers: toml's spanned document tree, then typed reading with
//! [`reader::TableReader`], which records every problem (unknown keys, wrong types, bad
//! values, rules across keys) with its file, line and column and keeps going, so that one
//! run of `fieldlink check` shows all of them. Components only ever see [`AgentConfig`].

mod error;
mod modbus;
mod model;
mod opcua;
mod plugin;
pub mod plugins;
pub mod pointtable;
mod reader;
pub mod templates;
pub mod units;

pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AgentConfig, BufferConfig, DeleteOn, DeviceConfig, DeviceKind, GatewayConfig, PlatformConfig,
    PluginDeviceConfig, PointInfo, PublishConfig, ReportDefaults, StatusConfig,
};
pub use templates::{Template, Templates};

use error::Diagnostics;
use fieldlink_simulator::{Signal, SimPoint, SimulatorDevice};
use fieldlink_wire::codec::{DEFAULT_ZSTD_LEVEL, ZSTD_LEVELS};
use fieldlink_wire::{Compression, MqttUrl, PointRole};
use reader::TableReader;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeTable;

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read; fix the path or permissions.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// The file has errors; each is listed with its position.
    #[error("{0}")]
    Invalid(#[from] ConfigErrors),
}

/// The shortest `[status] refresh`.
const STATUS_REFRESH_MIN: Duration = Duration::from_secs(1);
/// The longest `[status] refresh`, and its default: the contract's "at least every 60 s".
const STATUS_REFRESH_MAX: Duration = Duration::from_secs(60);

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.to_owned(),
        error,
    })?;
    Ok(parse(&text, &path.display().to_string())?)
}

/// Validates config `text`; `file` names it in errors. Devices may use the shipped
/// templates and those in `<state_dir>/templates/`.
pub fn parse(text: &str, file: &str) -> Result<AgentConfig, ConfigErrors> {
    parse_document(text, file, read_config)
}

/// What a config from the platform sets: `[publish]` and the `[[device]]` blocks. The other
/// sections stay in the gateway's local file: they decide how to reach the platform at all.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// `[publish]`.
    pub publish: PublishConfig,
    /// `[[device]]`, in file order.
    pub devices: Vec<DeviceConfig>,
}

/// Validates a config from the platform exactly as [`parse`] validates a file, refusing the
/// sections that only the local file may set. Devices may use the shipped templates only:
/// the platform validates with this same function and knows no gateway's own templates.
pub fn parse_remote(text: &str, file: &str) -> Result<RemoteConfig, ConfigErrors> {
    parse_document(text, file, read_remote)
}

/// `local` running the platform's `remote` config: the local file's `[gateway]`,
/// `[platform]`, `[buffer]` and `[status]`, the platform's `[publish]` and devices.
pub fn with_remote(local: &AgentConfig, remote: RemoteConfig, file: &str) -> AgentConfig {
    let mut devices = remote.devices;
    opcua::attach_pki(&mut devices, &local.gateway, file);
    AgentConfig {
        publish: remote.publish,
        devices,
        ..local.clone()
    }
}

fn parse_document<T>(
    text: &str,
    file: &str,
    read: impl FnOnce(&mut Diagnostics<'_>, &mut TableReader<'_, '_>) -> Option<T>,
) -> Result<T, ConfigErrors> {
    let mut dx = Diagnostics::new(file, text);
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        dx.syntax_errors(&syntax_errors);
        return Err(dx.into_errors());
    }
    let mut root = TableReader::new(document.get_ref(), document.span(), "config");
    let config = read(&mut dx, &mut root);
    root.finish(&mut dx);
    match config {
        Some(config) if dx.is_empty() => Ok(config),
        _ => Err(dx.into_errors()),
    }
}

/// An empty table for sections that are absent, so defaults come from one code path.
fn empty_table() -> &'static DeTable<'static> {
    static EMPTY: std::sync::OnceLock<DeTable<'static>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(DeTable::new)
}

/// Reads `[key]`, or an empty table standing in for it.
fn section<'t, 'i>(
    dx: &mut Diagnostics<'_>,
    root: &mut TableReader<'t, 'i>,
    key: &'static str,
) -> TableReader<'t, 'i> {
    root.table(dx, key)
        .unwrap_or_else(|| TableReader::new(empty_table(), root.span(), format!("[{key}]")))
}

fn read_config(dx: &mut Diagnostics<'_>, root: &mut TableReader<'_, '_>) -> Option<AgentConfig> {
    let mut t = section(dx, root, "gateway");
    let gateway = read_gateway(dx, &mut t);
    t.finish(dx);
    let mut t = section(dx, root, "platform");
    let platform = read_platform(dx, &mut t);
    t.finish(dx);
    let mut t = section(dx, root, "publish");
    let publish = read_publish(dx, &mut t);
    t.finish(dx);
    let mut t = section(dx, root, "buffer");
    let buffer = read_buffer(dx, &mut t);
    t.finish(dx);
    let mut t = section(dx, root, "status");
    let status = read_status(dx, &mut t);
    t.finish(dx);

    let shipped = Templates::shipped();
    let library = match &gateway {
        Some(gateway) => shipped
            .with_dir(&gateway.state_dir.join("templates"))
            .unwrap_or_else(|errors| {
                dx.extend(errors);
                shipped.clone()
            }),
        None => shipped.clone(),
    };
    let mut devices = read_devices(dx, root, &library);
    if let Some(gateway) = &gateway {
        opcua::attach_pki(&mut devices, gateway, dx.file());
    }
    Some(AgentConfig {
        gateway: gateway?,
        platform: platform?,
        publish,
        buffer,
        status: status?,
        devices,
    })
}

/// The sections a config from the platform may not set.
const LOCAL_ONLY: [&str; 4] = ["gateway", "platform", "buffer", "status"];

fn read_remote(dx: &mut Diagnostics<'_>, root: &mut TableReader<'_, '_>) -> Option<RemoteConfig> {
    for key in LOCAL_ONLY {
        if let Some(value) = root.raw(key) {
            dx.error(
                value.span(),
                format!("[{key}] stays in the gateway's own file; a config from the platform holds [publish] and [[device]] only"),
            );
        }
    }
    let mut t = section(dx, root, "publish");
    let publish = read_publish(dx, &mut t);
    t.finish(dx);
    let devices = read_devices(dx, root, Templates::shipped());
    Some(RemoteConfig { publish, devices })
}

/// Reads the `[[device]]` blocks, checking what devices must not share.
fn read_devices(
    dx: &mut Diagnostics<'_>,
    root: &mut TableReader<'_, '_>,
    library: &Templates,
) -> Vec<DeviceConfig> {
    let mut devices = Vec::new();
    let mut names = HashSet::new();
    let mut buses = modbus::Buses::default();
    let mut ports = plugin::Ports::default();
    for (table, span) in root.tables(dx, "device") {
        let mut t = TableReader::new(table, span, "[[device]]");
        if let Some(device) = read_device(dx, &mut t, library, &mut buses, &mut ports) {
            if !names.insert(device.name.clone()) {
                dx.error(
                    t.span(),
                    format!("[[device]]: duplicate device name {:?}", &*device.name),
                );
            }
            devices.push(device);
        }
        t.finish(dx);
    }
    devices
}

/// Checks a template's `[[point]]` tables as a Modbus device's points, returning their
/// names; `root` is the template file.
fn check_template_points(
    dx: &mut Diagnostics<'_>,
    root: &TableReader<'_, '_>,
    section: &str,
    points: &[(&DeTable<'_>, std::ops::Range<usize>)],
) -> Vec<String> {
    let infos = modbus::read_template_points(dx, section, root.span(), points);
    let mut seen = HashSet::new();
    for (info, (table, span)) in infos.iter().zip(points) {
        if !seen.insert(info.name.clone()) {
            dx.error(
                span.clone(),
                format!("{section}: duplicate point name {:?}", &*info.name),
            );
        }
        if let Some(role) = info.role {
            let at = table.get("role").map_or(span.clone(), |r| r.span());
            check_role(dx, section, info, role, at);
        }
    }
    infos.iter().map(|i| i.name.to_string()).collect()
}

fn read_gateway(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> Option<GatewayConfig> {
    let id = t.string(dx, "id").and_then(|id| {
        if fieldlink_wire::topic::is_valid_gateway_id(id.value) {
            Some(id.value.to_owned())
        } else {
            dx.error(
                id.range(),
                format!(
                    "[gateway]: `id` must be 1 to 64 letters, digits, '-', '_' or '.' (it is an MQTT topic level), found {:?}",
                    id.value
                ),
            );
            None
        }
    });
    let state_dir = t.string(dx, "state_dir").map_or_else(
        || PathBuf::from("/var/lib/fieldlink"),
        |s| PathBuf::from(s.value),
    );
    Some(GatewayConfig { id, state_dir })
}

fn read_platform(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> Option<PlatformConfig> {
    let mqtt = match t.string(dx, "mqtt") {
        Some(url) => {
            match MqttUrl::parse(url.value) {
                Ok(u) => Some(u),
                Err(why) => {
                    dx.error(url.range(), format!("[platform]: `mqtt` {why} (expected mqtt://HOST:PORT or mqtts://HOST:PORT)"));
                    None
                }
            }
        }
        None => Some(MqttUrl {
            tls: false,
            host: "127.0.0.1".to_owned(),
            port: 1883,
        }),
    };
    let path = |dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>, key| {
        t.string(dx, key).map(|s| PathBuf::from(s.value))
    };
    let username = t.string(dx, "username").map(|s| s.value.to_owned());
    let password = t.string(dx, "password").map(|s| s.value.to_owned());
    let ca_file = path(dx, t, "ca_file");
    let client_cert = path(dx, t, "client_cert");
    let client_key = path(dx, t, "client_key");
    if client_cert.is_some() != client_key.is_some() {
        dx.error(t.span(), "[platform]: `client_cert` and `client_key` go together: set both for mutual TLS, or neither");
    }
    if let Some(mqtt) = &mqtt
        && !mqtt.tls
        && (ca_file.is_some() || client_cert.is_some())
    {
        dx.error(
            t.span(),
            "[platform]: `ca_file`, `client_cert` and `client_key` need an mqtts:// URL in `mqtt`",
        );
    }
    let enroll_url = t.string(dx, "enroll_url").map(|s| s.value.to_owned());
    // MQTT carries the keep-alive in 16 bits of whole seconds; rumqttc refuses (panics on)
    // less than a second and truncates more than 65535.
    let keep_alive = match t.duration(dx, "keep_alive") {
        Some(k) if !(1..=u64::from(u16::MAX)).contains(&k.value.as_secs()) => {
            dx.error(
                k.range(),
                "[platform]: `keep_alive` must be from \"1s\" to \"65535s\" (MQTT's limit)",
            );
            Duration::from_secs(30)
        }
        Some(k) => k.value,
        None => Duration::from_secs(30),
    };
    Some(PlatformConfig {
        mqtt: mqtt?,
        username,
        password,
        ca_file,
        client_cert,
        client_key,
        enroll_url,
        keep_alive,
    })
}

fn read_publish(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> PublishConfig {
    let batch_max_samples = t
        .integer(dx, "batch_max_samples", 1, 100_000)
        .and_then(|n| NonZeroUsize::new(usize::try_from(n.value).ok()?))
        .unwrap_or(NonZeroUsize::new(1000).expect("1000 is not zero"));
    let batch_max_delay = t.positive_duration(dx, "batch_max_delay", Duration::from_secs(1));
    let max_inflight = t
        .integer(dx, "max_inflight", 1, 1000)
        .and_then(|n| NonZeroU16::new(u16::try_from(n.value).ok()?))
        .unwrap_or(NonZeroU16::new(32).expect("32 is not zero"));
    let backlog_share = match t.float(dx, "backlog_share") {
        Some(share) if share.value > 0.0 && share.value <= 1.0 => share.value,
        Some(share) => {
            dx.error(
                share.range(),
                "[publish]: `backlog_share` must be above 0 and at most 1 (e.g. 0.5)",
            );
            0.5
        }
        None => 0.5,
    };
    let shutdown_timeout = t
        .duration(dx, "shutdown_timeout")
        .map_or(Duration::from_secs(10), |d| d.value);
    /// The framings `compression` names, without their level.
    #[derive(Clone, Copy, PartialEq)]
    enum Framing {
        Json,
        Zstd,
        Packed,
    }
    let framing = t
        .choice(
            dx,
            "compression",
            "\"none\", \"zstd\", \"packed\"",
            |s| match s {
                "none" => Some(Framing::Json),
                "zstd" => Some(Framing::Zstd),
                "packed" => Some(Framing::Packed),
                _ => None,
            },
        )
        .map(|c| c.value);
    let (min, max) = (*ZSTD_LEVELS.start(), *ZSTD_LEVELS.end());
    let level = t.integer(dx, "compression_level", min.into(), max.into());
    // Within ZSTD_LEVELS, checked above.
    let level_or_default = level
        .as_ref()
        .map_or(DEFAULT_ZSTD_LEVEL, |l| l.value as i32);
    let compression = match framing {
        Some(Framing::Zstd) => Some(Compression::Zstd {
            level: level_or_default,
        }),
        Some(Framing::Packed) => Some(Compression::Packed {
            level: level_or_default,
        }),
        json_or_unset => {
            if let Some(level) = level {
                dx.error(
                    level.range(),
                    "[publish]: `compression_level` applies only with compression = \"zstd\" or \"packed\"",
                );
            }
            json_or_unset.map(|_| Compression::None)
        }
    };
    let delete_on = t
        .choice(
            dx,
            "delete_on",
            "\"platform_ack\", \"puback\"",
            |s| match s {
                "platform_ack" => Some(DeleteOn::PlatformAck),
                "puback" => Some(DeleteOn::Puback),
                _ => None,
            },
        )
        .map(|d| d.value);
    let ack_timeout = t.positive_duration(dx, "ack_timeout", Duration::from_secs(60));
    PublishConfig {
        batch_max_samples,
        batch_max_delay,
        max_inflight,
        backlog_share,
        shutdown_timeout,
        compression,
        delete_on,
        ack_timeout,
    }
}

fn read_buffer(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> BufferConfig {
    const MIN_SIZE: u64 = 1 << 20;
    let max_size = match t.size(dx, "max_size") {
        Some(s) if s.value < MIN_SIZE => {
            dx.error(s.range(), "[buffer]: `max_size` must be at least \"1MiB\"");
            MIN_SIZE
        }
        Some(s) => s.value,
        None => 1 << 30,
    };
    let flush_interval = t.positive_duration(dx, "flush_interval", Duration::from_secs(1));
    BufferConfig {
        max_size,
        flush_interval,
    }
}

fn read_status(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> Option<StatusConfig> {
    let listen = match t.string(dx, "listen") {
        Some(s) => {
            match s.value.parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    dx.error(s.range(), format!("[status]: `listen` must be IP:PORT like \"127.0.0.1:9810\", found {:?}", s.value));
                    return None;
                }
            }
        }
        None => SocketAddr::from(([127, 0, 0, 1], 9810)),
    };
    // The contract (DESIGN.md) promises receivers a status at least every 60 s; below a
    // second the refresh would outrun the coalescing of changes.
    let refresh = match t.duration(dx, "refresh") {
        Some(r) if !(STATUS_REFRESH_MIN..=STATUS_REFRESH_MAX).contains(&r.value) => {
            dx.error(
                r.range(),
                "[status]: `refresh` must be from \"1s\" to \"60s\" (receivers count on a status at least every 60 s)",
            );
            STATUS_REFRESH_MAX
        }
        Some(r) => r.value,
        None => STATUS_REFRESH_MAX,
    };
    Some(StatusConfig { listen, refresh })
}

/// The protocols a device may name: the built-in ones and the plugins'.
fn protocols() -> String {
    let mut names = vec![
        "modbus-tcp",
        "modbus-rtu",
        "modbus-ascii",
        "modbus-rtu-over-tcp",
        "opcua",
        "simulator",
    ];
    names.extend(crate::plugins::PLUGINS.iter().map(|p| p.protocol()));
    names.join(", ")
}

/// The serial port a device uses, for the checks across protocols.
fn serial_claim(kind: &DeviceKind) -> Option<fieldlink_collector_api::plugin::SerialClaim> {
    let (rtu, protocol) = match kind {
        DeviceKind::ModbusRtu(rtu) => (rtu, "modbus-rtu"),
        DeviceKind::ModbusAscii(rtu) => (rtu, "modbus-ascii"),
        DeviceKind::Plugin(device) => return device.0.serial(),
        _ => return None,
    };
    let line = rtu.bus.serial_line()?;
    Some(fieldlink_collector_api::plugin::SerialClaim {
        path: line.path.clone(),
        settings: line.settings(),
        protocol,
        station: format!("unit {}", rtu.unit),
    })
}

fn read_device(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    library: &Templates,
    buses: &mut modbus::Buses,
    ports: &mut plugin::Ports,
) -> Option<DeviceConfig> {
    let name = t
        .required_string(dx, "name", "a unique device name")
        .and_then(|n| {
            if n.value.trim().is_empty() || n.value.chars().any(char::is_control) {
                dx.error(
                    n.range(),
                    "[[device]]: `name` must be non-empty text without control characters",
                );
                None
            } else {
                Some(Arc::<str>::from(n.value))
            }
        });
    let section = match &name {
        Some(n) => format!("[[device]] {:?}", &**n),
        None => "[[device]]".to_owned(),
    };
    t.set_section(&section);
    let protocols = protocols();
    let protocol = t.required_string(dx, "protocol", &protocols);
    let poll = t.positive_duration(dx, "poll", Duration::from_secs(1));
    let report = read_report_defaults(dx, t);
    let own_points = t.tables(dx, "point");
    let template = templates::template_of(dx, t, library, protocol.map(|p| p.value));
    let template_points = template
        .as_ref()
        .map(|(template, at)| template.points_at(at))
        .unwrap_or_default();
    // The device's and its template's tables borrow from two texts: the shorter lifetime.
    let points: Vec<(&DeTable<'_>, std::ops::Range<usize>)> = match &template {
        Some((_, at)) => templates::merge(&template_points, at, own_points),
        None => own_points,
    };
    let device = match protocol.map(|p| p.value) {
        Some("modbus-tcp") => modbus::read_modbus_tcp(dx, t, name.clone(), poll, &points),
        Some("modbus-rtu") => {
            let over = modbus::RtuOver::Serial;
            modbus::read_modbus_rtu(dx, t, over, name.clone(), poll, &points, buses)
        }
        Some("modbus-ascii") => {
            let over = modbus::RtuOver::Ascii;
            modbus::read_modbus_rtu(dx, t, over, name.clone(), poll, &points, buses)
        }
        Some("modbus-rtu-over-tcp") => {
            let over = modbus::RtuOver::Tcp;
            modbus::read_modbus_rtu(dx, t, over, name.clone(), poll, &points, buses)
        }
        Some("opcua") => opcua::read_opcua(dx, t, name.clone(), poll, &points),
        Some("simulator") => read_simulator(dx, t, name.clone(), poll, &points),
        Some(other) => match crate::plugins::plugin(other) {
            Some(plugin) => plugin::read_plugin_device(dx, t, plugin, name.clone(), poll, &points),
            None => {
                if let Some(p) = protocol {
                    dx.error(
                        p.range(),
                        format!(
                            "{section}: `protocol` must be one of {protocols}, found {other:?}"
                        ),
                    );
                }
                None
            }
        },
        None => None,
    };
    let (kind, point_infos) = device?;
    if let (Some(claim), Some(name)) = (serial_claim(&kind), &name) {
        let span = t.raw("serial").map_or(t.span(), |s| s.span());
        ports.claim(dx, span, name, claim);
    }
    let mut seen = HashSet::new();
    for (info, (table, span)) in point_infos.iter().zip(&points) {
        if !seen.insert(info.name.clone()) {
            dx.error(
                span.clone(),
                format!("{section}: duplicate point name {:?}", &*info.name),
            );
        }
        if let Some(role) = info.role {
            check_role(
                dx,
                &section,
                info,
                role,
                table.get("role").map_or(span.clone(), |r| r.span()),
            );
        }
    }
    Some(DeviceConfig {
        name: name?,
        kind,
        points: point_infos,
        report,
        template: template.map(|(t, _)| Arc::from(t.name.as_str())),
    })
}

/// Refuses a `role` that does not fit the point's type: `running` and `fault` are bools,
/// `energy_kwh` and `output_count` are numbers. An OPC UA point's type is the server's, so
/// it is checked when its values arrive, by the platform.
fn check_role(
    dx: &mut Diagnostics<'_>,
    section: &str,
    info: &PointInfo,
    role: PointRole,
    span: std::ops::Range<usize>,
) {
    let fits = match info.data_type {
        "opcua" => true,
        "bool" => role.is_bool(),
        "string" => false,
        _ => !role.is_bool(),
    };
    if !fits {
        let wants = if role.is_bool() { "a bool" } else { "a number" };
        dx.error(
            span,
            format!(
                "{section} point {:?}: role \"{}\" needs {wants}, not type \"{}\"",
                &*info.name,
                role.as_str(),
                info.data_type
            ),
        );
    }
}

/// Reads a device's report-by-exception defaults, which apply to its points that do not
/// set their own.
fn read_report_defaults(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> ReportDefaults {
    let section = t.section().to_owned();
    let deadband = t.float(dx, "deadband").and_then(|d| {
        if d.value < 0.0 {
            dx.error(
                d.range(),
                format!("{section}: `deadband` must not be negative"),
            );
            None
        } else {
            Some(d.value)
        }
    });
    let deadband_percent = read_deadband_percent(dx, t, true);
    let heartbeat = t.duration(dx, "heartbeat").map(|h| h.value);
    ReportDefaults {
        deadband,
        deadband_percent,
        heartbeat,
    }
}

/// Reads `deadband_percent`: report by exception relative to the last published value,
/// 0 to 100 (numbers only).
fn read_deadband_percent(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    numeric: bool,
) -> Option<f64> {
    let section = p.section().to_owned();
    let d = p.float(dx, "deadband_percent")?;
    if !(0.0..=100.0).contains(&d.value) {
        dx.error(
            d.range(),
            format!("{section}: `deadband_percent` must be from 0 to 100 (percent of the last published value)"),
        );
        None
    } else if !numeric {
        dx.error(d.range(), format!("{section}: `deadband_percent` applies to numbers only; booleans and strings publish on change"));
        None
    } else {
        Some(d.value)
    }
}

type DeviceParts = (DeviceKind, Vec<PointInfo>);

/// Accepts `HOST:PORT`, `[V6]:PORT`, or a bare host (given `default_port`).
pub fn parse_host_port(text: &str, default_port: u16) -> Option<String> {
    fieldlink_collector_api::plugin::parse_host_port(text, default_port)
}

/// The keys every point may have besides its name and its protocol's address.
pub(crate) struct PointRules {
    unit: Option<String>,
    deadband: Option<f64>,
    heartbeat: Option<Duration>,
    role: Option<PointRole>,
}

impl PointRules {
    /// The catalogue's and report-by-exception's view of the point `name`.
    fn into_info(
        self,
        name: Arc<str>,
        data_type: &'static str,
        deadband_percent: Option<f64>,
    ) -> PointInfo {
        PointInfo {
            name,
            data_type,
            unit: self.unit,
            deadband: self.deadband,
            deadband_percent,
            heartbeat: self.heartbeat,
            role: self.role,
        }
    }
}

/// Reads the keys every point has: its name and its [`PointRules`].
fn read_point_common(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    numeric: bool,
) -> Option<(Arc<str>, PointRules)> {
    let name = read_point_name(dx, p);
    let rules = read_point_rules(dx, p, numeric);
    Some((name?, rules))
}

/// Reads a point's `name`.
fn read_point_name(dx: &mut Diagnostics<'_>, p: &mut TableReader<'_, '_>) -> Option<Arc<str>> {
    p.required_string(dx, "name", "the point's name, unique within its device")
        .and_then(|n| {
            if n.value.trim().is_empty() || n.value.chars().any(char::is_control) {
                dx.error(
                    n.range(),
                    format!(
                        "{}: `name` must be non-empty text without control characters",
                        p.section()
                    ),
                );
                None
            } else {
                Some(Arc::<str>::from(n.value))
            }
        })
}

/// Reads a point's `unit`, `deadband`, `heartbeat` and `role`.
fn read_point_rules(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    numeric: bool,
) -> PointRules {
    let unit = p.string(dx, "unit").map(|u| u.value.to_owned());
    let deadband = p.float(dx, "deadband").and_then(|d| {
        if d.value < 0.0 {
            dx.error(d.range(), format!("{}: `deadband` must not be negative", p.section()));
            None
        } else if !numeric {
            dx.error(d.range(), format!("{}: `deadband` applies to numbers only; booleans and strings publish on change", p.section()));
            None
        } else {
            Some(d.value)
        }
    });
    let heartbeat = p.duration(dx, "heartbeat").map(|h| h.value);
    let role = p
        .choice(dx, "role", PointRole::NAMES, |s| s.parse().ok())
        .map(|r| r.value);
    PointRules {
        unit,
        deadband,
        heartbeat,
        role,
    }
}

fn read_simulator(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    name: Option<Arc<str>>,
    poll: Duration,
    points: &[(&DeTable<'_>, std::ops::Range<usize>)],
) -> Option<DeviceParts> {
    let section = t.section().to_owned();
    let mut sim_points = Vec::new();
    let mut infos = Vec::new();
    for (table, span) in points {
        let mut p = TableReader::new(table, span.clone(), format!("{section} [[device.point]]"));
        let signal = p
            .choice(dx, "signal", Signal::NAMES, |s| s.parse().ok())
            .map_or(Signal::default(), |s| s.value);
        let data_type = signal.data_type();
        let numeric = data_type != "bool";
        let deadband_percent = read_deadband_percent(dx, &mut p, numeric);
        if let Some((name, rules)) = read_point_common(dx, &mut p, numeric) {
            sim_points.push(SimPoint {
                name: name.clone(),
                signal,
            });
            infos.push(rules.into_info(name, data_type, deadband_percent));
        }
        p.finish(dx);
    }
    if points.is_empty() {
        dx.error(
            t.span(),
            format!("{section}: a device needs at least one [[device.point]]"),
        );
    }
    let device = SimulatorDevice {
        name: name?,
        poll,
        points: sim_points,
    };
    Some((DeviceKind::Simulator(device), infos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found reviewing what the `config` fuzz target accepts): a keep-alive under
    /// a second passed validation and then panicked in rumqttc when the publisher started;
    /// one over 65535 s was silently truncated to 16 bits.
    #[test]
    fn keep_alive_outside_what_mqtt_carries_is_refused() {
        let config = |keep_alive: &str| {
            format!("[gateway]\nid = \"gw\"\n[platform]\nkeep_alive = \"{keep_alive}\"\n")
        };
        for bad in ["500ms", "999ms", "65536s", "1d"] {
            let errors = parse(&config(bad), "agent.toml").expect_err(bad);
            assert_eq!(errors.0.len(), 1, "{bad}: {errors}");
            assert_eq!((errors.0[0].line, errors.0[0].column), (4, 14), "{bad}");
            assert!(errors.0[0].message.contains("`keep_alive`"), "{errors}");
        }
        for good in ["1s", "1500ms", "30s", "65535s"] {
            let parsed = parse(&config(good), "agent.toml").expect(good);
            assert_eq!(
                Some(parsed.platform.keep_alive),
                units::parse_duration(good)
            );
        }
    }

    /// A shutdown timeout of thousands of years passed validation, and with the broker down
    /// the agent then never finished stopping (it drains until the timeout).
    #[test]
    fn durations_over_a_year_are_refused_where_written() {
        let config = |shutdown: &str| {
            format!("[gateway]\nid = \"gw\"\n[publish]\nshutdown_timeout = \"{shutdown}\"\n")
        };
        for bad in ["366d", "213503982334d", "18446744073709551615ms"] {
            let errors = parse(&config(bad), "agent.toml").expect_err(bad);
            assert_eq!(errors.0.len(), 1, "{bad}: {errors}");
            assert_eq!((errors.0[0].line, errors.0[0].column), (4, 20), "{bad}");
            assert!(
                errors.0[0]
                    .message
                    .contains("`shutdown_timeout` must be at most 365d"),
                "{errors}"
            );
        }
        let parsed = parse(&config("365d"), "agent.toml").expect("a year");
        assert_eq!(parsed.publish.shutdown_timeout, reader::MAX_DURATION);
    }
}
