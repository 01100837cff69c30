//! The agent's TOML configuration, parsed once into a validated model.
//!
//! Parsing runs in two layers: toml's spanned document tree, then typed reading with
//! [`reader::TableReader`], which records every problem (unknown keys, wrong types, bad
//! values, rules across keys) with its file, line and column and keeps going, so that one
//! run of `fieldlink check` shows all of them. Components only ever see [`AgentConfig`].

mod error;
mod model;
mod reader;
pub mod units;

pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AgentConfig, BufferConfig, DeviceConfig, DeviceKind, GatewayConfig, MqttUrl, PlatformConfig,
    PointInfo, PublishConfig, StatusConfig,
};

use error::Diagnostics;
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::{PlanLimits, PointSpec, TcpDevice};
use fieldlink_simulator::{Signal, SimPoint, SimulatorDevice};
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
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has errors; each is listed with its position.
    #[error("{0}")]
    Invalid(#[from] ConfigErrors),
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse(&text, &path.display().to_string())?)
}

/// Validates config `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<AgentConfig, ConfigErrors> {
    let mut dx = Diagnostics::new(file, text);
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            dx.error(
                e.span().unwrap_or(0..0),
                format!("TOML syntax: {}", e.message().trim_end()),
            );
        }
        return Err(dx.into_errors());
    }
    let mut root = TableReader::new(document.get_ref(), document.span(), "config");
    let config = read_config(&mut dx, &mut root);
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

    let mut devices = Vec::new();
    let mut names = HashSet::new();
    for (table, span) in root.tables(dx, "device") {
        let mut t = TableReader::new(table, span, "[[device]]");
        if let Some(device) = read_device(dx, &mut t) {
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
    Some(AgentConfig {
        gateway: gateway?,
        platform: platform?,
        publish,
        buffer,
        status: status?,
        devices,
    })
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

/// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_mqtt_url(url: &str) -> Result<MqttUrl, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err("must start with mqtt:// or mqtts://".to_owned());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("IPv6 address lacks its closing ']'")?;
        match after.strip_prefix(':') {
            Some(port) => (
                host,
                port.parse().map_err(|_| format!("bad port {port:?}"))?,
            ),
            None if after.is_empty() => (host, default_port),
            None => return Err(format!("unexpected {after:?} after the host")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse().map_err(|_| format!("bad port {port:?}"))?,
            ),
            None => (rest, default_port),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err(format!("bad host {host:?}"));
    }
    Ok(MqttUrl {
        tls,
        host: host.to_owned(),
        port,
    })
}

fn read_platform(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> Option<PlatformConfig> {
    let mqtt = match t.string(dx, "mqtt") {
        Some(url) => {
            match parse_mqtt_url(url.value) {
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
    if let Some(mqtt) = &mqtt {
        if !mqtt.tls && (ca_file.is_some() || client_cert.is_some()) {
            dx.error(t.span(), "[platform]: `ca_file`, `client_cert` and `client_key` need an mqtts:// URL in `mqtt`");
        }
    }
    let enroll_url = t.string(dx, "enroll_url").map(|s| s.value.to_owned());
    let keep_alive = t.positive_duration(dx, "keep_alive", Duration::from_secs(30));
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
    PublishConfig {
        batch_max_samples,
        batch_max_delay,
        max_inflight,
        backlog_share,
        shutdown_timeout,
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
    Some(StatusConfig { listen })
}

/// The protocols a device may name.
const PROTOCOLS: &str = "modbus-tcp, simulator";

fn read_device(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> Option<DeviceConfig> {
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
    let protocol = t.required_string(dx, "protocol", PROTOCOLS);
    let poll = t.positive_duration(dx, "poll", Duration::from_secs(1));
    let points = t.tables(dx, "point");
    let device = match protocol.map(|p| p.value) {
        Some("modbus-tcp") => read_modbus_tcp(dx, t, name.clone(), poll, &points),
        Some("simulator") => read_simulator(dx, t, name.clone(), poll, &points),
        Some(other) => {
            if let Some(p) = protocol {
                dx.error(
                    p.range(),
                    format!("{section}: `protocol` must be one of {PROTOCOLS}, found {other:?}"),
                );
            }
            None
        }
        None => None,
    };
    let (kind, point_infos) = device?;
    let mut seen = HashSet::new();
    for (info, (_, span)) in point_infos.iter().zip(&points) {
        if !seen.insert(info.name.clone()) {
            dx.error(
                span.clone(),
                format!("{section}: duplicate point name {:?}", &*info.name),
            );
        }
    }
    Some(DeviceConfig {
        name: name?,
        kind,
        points: point_infos,
    })
}

type DeviceParts = (DeviceKind, Vec<PointInfo>);

fn read_modbus_tcp(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    name: Option<Arc<str>>,
    poll: Duration,
    points: &[(&DeTable<'_>, std::ops::Range<usize>)],
) -> Option<DeviceParts> {
    let section = t.section().to_owned();
    let address = t.required_string(dx, "address", "the device's HOST:PORT, e.g. \"192.168.1.10:502\"").and_then(|a| {
        match parse_host_port(a.value, 502) {
            Some(addr) => Some(addr),
            None => {
                dx.error(a.range(), format!("{section}: `address` must be HOST:PORT like \"192.168.1.10:502\", found {:?}", a.value));
                None
            }
        }
    });
    let unit = t.integer(dx, "unit", 0, 255).map_or(1, |u| u.value as u8);
    let timeout = t.positive_duration(dx, "timeout", Duration::from_secs(1));
    let max_gap = t
        .integer(dx, "max_gap", 0, 1999)
        .map_or(0, |g| g.value as u16);
    let max_registers = t
        .integer(dx, "max_registers_per_request", 1, 125)
        .map_or(125, |g| g.value as u16);
    let max_bits = t
        .integer(dx, "max_bits_per_request", 1, 2000)
        .map_or(2000, |g| g.value as u16);
    let mut specs = Vec::new();
    let mut infos = Vec::new();
    for (table, span) in points {
        let mut p = TableReader::new(table, span.clone(), format!("{section} [[device.point]]"));
        if let Some((spec, info)) = read_modbus_point(dx, &mut p, max_registers) {
            specs.push(spec);
            infos.push(info);
        }
        p.finish(dx);
    }
    if points.is_empty() {
        dx.error(
            t.span(),
            format!("{section}: a device needs at least one [[device.point]]"),
        );
    }
    let device = TcpDevice {
        name: name?,
        address: address?,
        unit,
        poll,
        timeout,
        limits: PlanLimits {
            max_gap,
            max_registers,
            max_bits,
        },
        points: specs,
    };
    Some((DeviceKind::ModbusTcp(device), infos))
}

/// Accepts `HOST:PORT`, `[V6]:PORT`, or a bare host (given `default_port`).
fn parse_host_port(text: &str, default_port: u16) -> Option<String> {
    if text.is_empty() || text.contains(['/', ' ']) {
        return None;
    }
    if let Some(v6) = text.strip_prefix('[') {
        let (_, after) = v6.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => port.parse::<u16>().ok().map(|_| text.to_owned()),
            None if after.is_empty() => Some(format!("{text}:{default_port}")),
            None => None,
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            port.parse::<u16>().ok().map(|_| text.to_owned())
        }
        Some(_) => None,
        None => Some(format!("{text}:{default_port}")),
    }
}

/// Reads the keys every point has: name, unit, deadband, heartbeat.
fn read_point_common(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    numeric: bool,
) -> Option<(Arc<str>, Option<String>, Option<f64>, Option<Duration>)> {
    let name = p
        .required_string(dx, "name", "the point's name, unique within its device")
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
        });
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
    Some((name?, unit, deadband, heartbeat))
}

fn read_modbus_point(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    max_registers: u16,
) -> Option<(PointSpec, PointInfo)> {
    let section = p.section().to_owned();
    let area = p
        .choice(dx, "area", Area::NAMES, |s| s.parse().ok())
        .map_or(Area::Holding, |a| a.value);
    let address = p.integer(dx, "address", 0, 65535);
    if !p.has("address") {
        p.missing(dx, "address", "the zero-based protocol address, 0 to 65535");
    }
    let type_at = p.choice(dx, "type", DataType::NAMES, parse_type_name);
    let length = p.integer(dx, "length", 1, i64::from(max_registers));
    let mut data_type = type_at.map_or(
        if area.is_bits() {
            DataType::Bool
        } else {
            DataType::U16
        },
        |t| t.value,
    );
    match (&mut data_type, length) {
        (DataType::String { len }, Some(l)) => *len = l.value as u16,
        (DataType::String { .. }, None) => {
            let span = type_at.map_or(p.span(), |t| t.range());
            dx.error(span, format!("{section}: a string point needs `length`, its size in registers (2 characters each)"));
        }
        (_, Some(l)) => dx.error(
            l.range(),
            format!("{section}: `length` applies to type = \"string\" only"),
        ),
        (_, None) => {}
    }
    if area.is_bits() && data_type != DataType::Bool {
        let span = type_at.map_or(p.span(), |t| t.range());
        dx.error(
            span,
            format!("{section}: type \"{data_type}\" does not fit area \"{area}\": coils and discrete inputs are single bits; use type = \"bool\""),
        );
    }
    if let Some(a) = address {
        let last = a.value + i64::from(data_type.registers()) - 1;
        if !area.is_bits() && last > 65535 {
            dx.error(
                a.range(),
                format!(
                    "{section}: address {} with type \"{data_type}\" ({} registers) runs past 65535",
                    a.value,
                    data_type.registers()
                ),
            );
        }
    }
    let order = p
        .choice(dx, "order", "ABCD, CDAB, BADC, DCBA", |s| {
            s.parse::<WordOrder>().ok()
        })
        .map_or(WordOrder::Abcd, |o| o.value);
    let numeric = data_type.is_numeric();
    let mut scaling = |dx: &mut Diagnostics<'_>, key, default| match p.float(dx, key) {
        Some(v) if !numeric => {
            dx.error(
                v.range(),
                format!("{section}: `{key}` applies to numeric types only, not \"{data_type}\""),
            );
            default
        }
        Some(v) => v.value,
        None => default,
    };
    let scale = scaling(dx, "scale", 1.0);
    let offset = scaling(dx, "offset", 0.0);
    let (name, unit, deadband, heartbeat) = read_point_common(dx, p, numeric)?;
    let address = address?.value as u16;
    let spec = PointSpec {
        name: name.clone(),
        area,
        address,
        data_type,
        order,
        scale,
        offset,
    };
    let info = PointInfo {
        name,
        data_type: data_type.as_str(),
        unit,
        deadband,
        heartbeat,
    };
    Some((spec, info))
}

fn parse_type_name(name: &str) -> Option<DataType> {
    Some(match name {
        "bool" => DataType::Bool,
        "u16" => DataType::U16,
        "i16" => DataType::I16,
        "u32" => DataType::U32,
        "i32" => DataType::I32,
        "u64" => DataType::U64,
        "i64" => DataType::I64,
        "f32" => DataType::F32,
        "f64" => DataType::F64,
        "string" => DataType::String { len: 1 },
        _ => return None,
    })
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
        let numeric = !matches!(signal, Signal::Toggle);
        if let Some((name, unit, deadband, heartbeat)) = read_point_common(dx, &mut p, numeric) {
            let data_type = match signal {
                Signal::Toggle => "bool",
                Signal::Counter => "i64",
                _ => "f64",
            };
            sim_points.push(SimPoint {
                name: name.clone(),
                signal,
            });
            infos.push(PointInfo {
                name,
                data_type,
                unit,
                deadband,
                heartbeat,
            });
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
