//! How a protocol plugs into the agent without the agent knowing it.
//!
//! A protocol crate (S7, MC, DL/T 645, ...) exports one [`Plugin`]. The agent keeps a list
//! of them and, for a `[[device]]` whose `protocol` a plugin names, hands the plugin the
//! device's table and its point tables through [`ConfigTable`], a narrow view of the TOML
//! that records every problem with its file, line and column. The plugin validates its
//! own keys and returns a [`PluginDevice`]: the running [`Collector`], the lines
//! `fieldlink check` prints, and what cross-device checks need (a serial port it claims).
//! `fieldlink probe PROTOCOL TARGET` goes to [`Plugin::probe`].
//!
//! What every device has, whatever its protocol, stays with the agent: `name`, `poll`,
//! the reporting rules (`deadband`, `deadband_percent`, `heartbeat`) and each point's
//! `name` and `unit`. A plugin reads only its own keys; keys nobody reads are reported as
//! unknown, as everywhere else in the file.

use crate::Collector;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One TOML table (a `[[device]]` or a `[[device.point]]`) as a plugin sees it. Every
/// getter marks its key as known and records a wrong type or an out-of-range value
/// itself (returning `None`), so that the plugin goes on reading and all errors of a file
/// come out at once.
pub trait ConfigTable {
    /// The table's name as messages give it: `[[device]] "press-1"` or
    /// `[[device]] "press-1" [[device.point]]`. Start every message with it.
    fn section(&self) -> &str;
    /// True if `key` is present.
    fn has(&mut self, key: &'static str) -> bool;
    /// A string.
    fn string(&mut self, key: &'static str) -> Option<String>;
    /// A string that must be present; its absence is reported with what was `expected`.
    fn required_string(&mut self, key: &'static str, expected: &str) -> Option<String>;
    /// An integer within `min..=max`.
    fn integer(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64>;
    /// A finite number (integers are accepted).
    fn float(&mut self, key: &'static str) -> Option<f64>;
    /// A positive duration such as `"500ms"`, or `default` when absent.
    fn positive_duration(&mut self, key: &'static str, default: Duration) -> Duration;
    /// Records an error at `key`'s value, or at the table when the key is absent.
    fn error(&mut self, key: &'static str, message: String);
}

/// What the agent knows of a device before its plugin reads it.
#[derive(Debug, Clone)]
pub struct DeviceBase {
    /// The device's name (validated), the `device` of its samples; `None` when the name
    /// itself was wrong (already reported): read on to report the other keys' errors.
    pub name: Option<Arc<str>>,
    /// How often its points are read (`poll`).
    pub poll: Duration,
}

/// What a plugin tells the agent about one point it has read: its catalogue type and
/// whether it is a number (deadbands apply to numbers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointKind {
    /// The type's name in the catalogue (`bool`, `f32`, ...).
    pub data_type: &'static str,
    /// True when the values are numbers.
    pub numeric: bool,
    /// The unit the protocol itself gives the point (a DL/T 645 data identifier's), used
    /// when the point sets no `unit`.
    pub unit: Option<&'static str>,
}

/// Reads a device's point tables for a plugin: `read` is called once per
/// `[[device.point]]`, with the point's name (`None` when the name is missing or wrong,
/// already reported) and its table. It returns the point's kind, or `None` if the point
/// has errors (already reported).
pub type PointReader<'a> =
    dyn FnMut(Option<Arc<str>>, &mut dyn ConfigTable) -> Option<PointKind> + 'a;

/// The device table and a way to read its points, as handed to [`Plugin::read_device`].
pub trait DeviceTable: ConfigTable {
    /// Calls `read` for each point table in file order (see [`PointReader`]); reports a
    /// device without points.
    fn points(&mut self, read: &mut PointReader<'_>);
}

/// A serial port a device uses, for the checks across devices: every device on one port
/// must agree on its settings and protocol, and have its own station address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialClaim {
    /// The port's path.
    pub path: String,
    /// Its settings as a label writes them (`2400 8E1`).
    pub settings: String,
    /// The protocol the device speaks on it.
    pub protocol: &'static str,
    /// The device's station address on the line (unit id, meter address).
    pub station: String,
}

/// A validated device of a plugin's protocol, ready to run.
pub trait PluginDevice: fmt::Debug + Send + Sync + 'static {
    /// The protocol's configuration name.
    fn protocol(&self) -> &'static str;
    /// A new collector for this device.
    fn collector(&self) -> Box<dyn Collector>;
    /// What `fieldlink check` prints after the device's name: the connection settings on
    /// the first line, then the read plan and the points, each line indented by two.
    fn describe(&self) -> String;
    /// The serial port the device uses, if any.
    fn serial(&self) -> Option<SerialClaim> {
        None
    }
    /// The device as `Any`, for [`PluginDevice::same`].
    fn as_any(&self) -> &dyn Any;
    /// True when `other` is the same device with the same settings (a reload keeps it
    /// running). Implement it as `other.as_any().downcast_ref() == Some(self)`.
    fn same(&self, other: &dyn PluginDevice) -> bool;
}

/// What `fieldlink probe PROTOCOL TARGET` asks of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Where the device is, as typed (`tcp://HOST[:PORT]`, `serial:///dev/ttyUSB0?...`).
    pub target: String,
    /// What to read, in the protocol's notation (`DB1.DBW0`, `D100`, `00010000`).
    pub address: Option<String>,
    /// How many items (bytes, words) to read from there.
    pub count: Option<u16>,
    /// How long the connection and the answer may take.
    pub timeout: Duration,
    /// The protocol's own settings by key (`rack`, `slot`, `family`, `meter`).
    pub settings: BTreeMap<String, String>,
}

/// Why a probe failed; the text tells the integrator what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// The future [`Plugin::probe`] returns.
pub type ProbeFuture = Pin<Box<dyn Future<Output = Result<String, ProbeError>> + Send + 'static>>;

/// Accepts `HOST:PORT`, `[V6]:PORT`, or a bare host (given `default_port`); `None` for
/// anything else. The address is resolved again at every connect, not here.
pub fn parse_host_port(text: &str, default_port: u16) -> Option<String> {
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

/// `s` as a TOML basic string, for the `[[device.point]]` blocks the tools print.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float short enough for a probe's column: plain when moderate, scientific when very
/// large or small; `single` prints an f32's shortest form.
pub fn narrow_float(v: f64, single: bool) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs();
    match (
        magnitude != 0.0 && !(1e-4..1e9).contains(&magnitude),
        single,
    ) {
        (true, true) => format!("{:e}", v as f32),
        (true, false) => format!("{v:e}"),
        (false, true) => (v as f32).to_string(),
        (false, false) => v.to_string(),
    }
}

/// The `HOST:PORT` of a probe target `tcp://HOST[:PORT]`.
pub fn tcp_target(target: &str, default_port: u16) -> Result<String, ProbeError> {
    target
        .strip_prefix("tcp://")
        .and_then(|rest| parse_host_port(rest.trim_end_matches('/'), default_port))
        .ok_or_else(|| {
            ProbeError(format!(
                "bad target {target:?}: expected tcp://HOST or tcp://HOST:{default_port}"
            ))
        })
}

/// A protocol's entry point, as the agent's registry lists it.
pub trait Plugin: Send + Sync {
    /// The `protocol` value it handles.
    fn protocol(&self) -> &'static str;
    /// The settings its probe takes (`--set KEY=VALUE`, and the `--rack`, `--slot`,
    /// `--family`, `--meter` flags), each with what it means; the agent refuses others.
    fn probe_settings(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// Reads and validates a `[[device]]` of this protocol; `None` when it has errors
    /// (all recorded through `table`).
    fn read_device(
        &self,
        base: DeviceBase,
        table: &mut dyn DeviceTable,
    ) -> Option<Arc<dyn PluginDevice>>;
    /// Reads once what `request` names and returns the table to print.
    fn probe(&self, request: ProbeRequest) -> ProbeFuture;
}
