//! Devices of plugin protocols (S7, MC, DL/T 645): the agent reads what every device has
//! and hands the rest of the tables to the protocol's plugin through
//! [`ConfigTable`](fieldlink_collector_api::plugin::ConfigTable), which records the
//! plugin's errors here, with their file, line and column like every other error.

use super::error::Diagnostics;
use super::reader::TableReader;
use super::{DeviceKind, DeviceParts, PluginDeviceConfig, PointInfo};
use super::{read_deadband_percent, read_point_name, read_point_rules};
use fieldlink_collector_api::plugin::{
    ConfigTable, DeviceBase, DeviceTable, Plugin, PointReader, SerialClaim,
};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeTable;

/// One table as a plugin sees it: the agent's reader and diagnostics.
struct Table<'r, 'a, 't, 'i> {
    dx: &'r mut Diagnostics<'a>,
    t: &'r mut TableReader<'t, 'i>,
}

impl ConfigTable for Table<'_, '_, '_, '_> {
    fn section(&self) -> &str {
        self.t.section()
    }

    fn has(&mut self, key: &'static str) -> bool {
        self.t.has(key)
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        self.t.string(self.dx, key).map(|s| s.value.to_owned())
    }

    fn required_string(&mut self, key: &'static str, expected: &str) -> Option<String> {
        self.t
            .required_string(self.dx, key, expected)
            .map(|s| s.value.to_owned())
    }

    fn integer(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        self.t.integer(self.dx, key, min, max).map(|i| i.value)
    }

    fn float(&mut self, key: &'static str) -> Option<f64> {
        self.t.float(self.dx, key).map(|f| f.value)
    }

    fn positive_duration(&mut self, key: &'static str, default: Duration) -> Duration {
        self.t.positive_duration(self.dx, key, default)
    }

    fn error(&mut self, key: &'static str, message: String) {
        // The key's value locates the message, or the table when the key is absent.
        let span = match self.t.raw(key) {
            Some(value) => value.span(),
            None => self.t.span(),
        };
        self.dx.error(span, message);
    }
}

/// A device table with its point tables.
struct Device<'r, 'a, 't, 'i> {
    table: Table<'r, 'a, 't, 'i>,
    // Points may borrow from a template's text as well as the config's: their own lifetime.
    points: &'r [(&'r DeTable<'r>, Range<usize>)],
    infos: Vec<PointInfo>,
}

impl ConfigTable for Device<'_, '_, '_, '_> {
    fn section(&self) -> &str {
        self.table.section()
    }
    fn has(&mut self, key: &'static str) -> bool {
        self.table.has(key)
    }
    fn string(&mut self, key: &'static str) -> Option<String> {
        self.table.string(key)
    }
    fn required_string(&mut self, key: &'static str, expected: &str) -> Option<String> {
        self.table.required_string(key, expected)
    }
    fn integer(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        self.table.integer(key, min, max)
    }
    fn float(&mut self, key: &'static str) -> Option<f64> {
        self.table.float(key)
    }
    fn positive_duration(&mut self, key: &'static str, default: Duration) -> Duration {
        self.table.positive_duration(key, default)
    }
    fn error(&mut self, key: &'static str, message: String) {
        self.table.error(key, message);
    }
}

impl DeviceTable for Device<'_, '_, '_, '_> {
    fn points(&mut self, read: &mut PointReader<'_>) {
        let section = self.table.t.section().to_owned();
        if self.points.is_empty() {
            let span = self.table.t.span();
            self.table.dx.error(
                span,
                format!("{section}: a device needs at least one [[device.point]]"),
            );
        }
        for (table, span) in self.points {
            let mut p =
                TableReader::new(table, span.clone(), format!("{section} [[device.point]]"));
            let name = read_point_name(self.table.dx, &mut p);
            let kind = read(
                name.clone(),
                &mut Table {
                    dx: self.table.dx,
                    t: &mut p,
                },
            );
            let numeric = kind.is_some_and(|k| k.numeric);
            let deadband_percent = read_deadband_percent(self.table.dx, &mut p, numeric);
            let mut rules = read_point_rules(self.table.dx, &mut p, numeric);
            if let (Some(kind), Some(name)) = (kind, name) {
                // A plugin may know a point's unit from its protocol (DL/T 645's data ids).
                rules.unit = rules.unit.or_else(|| kind.unit.map(str::to_owned));
                self.infos
                    .push(rules.into_info(name, kind.data_type, deadband_percent));
            }
            p.finish(self.table.dx);
        }
    }
}

/// Reads a device of `plugin`'s protocol.
pub(super) fn read_plugin_device<'r, 'a, 't, 'i>(
    dx: &'r mut Diagnostics<'a>,
    t: &'r mut TableReader<'t, 'i>,
    plugin: &dyn Plugin,
    name: Option<Arc<str>>,
    poll: Duration,
    points: &'r [(&'r DeTable<'r>, Range<usize>)],
) -> Option<DeviceParts> {
    let mut device = Device {
        table: Table { dx, t },
        points,
        infos: Vec::new(),
    };
    let base = DeviceBase { name, poll };
    let read = plugin.read_device(base, &mut device);
    let infos = device.infos;
    Some((DeviceKind::Plugin(PluginDeviceConfig(read?)), infos))
}

/// The serial ports claimed so far, for the rule that one port carries one protocol and
/// each device its own station address (Modbus devices are claimed too, so that a meter
/// and a Modbus slave never share a line; their own bus checks cover the rest).
#[derive(Debug, Default)]
pub(super) struct Ports {
    seen: HashMap<String, Port>,
}

/// A port as its first device claimed it: the claim, that device, and the stations taken
/// on it (by the device that took each).
type Port = (SerialClaim, Arc<str>, HashMap<String, Arc<str>>);

impl Ports {
    /// Records `device`'s claim; reports a port another device uses with other settings
    /// or another protocol, or a station address already taken on it.
    pub(super) fn claim(
        &mut self,
        dx: &mut Diagnostics<'_>,
        span: Range<usize>,
        device: &Arc<str>,
        claim: SerialClaim,
    ) {
        let section = format!("[[device]] {:?}", &**device);
        let is_modbus = |protocol: &str| protocol.starts_with("modbus");
        let (first, first_device, stations) = self
            .seen
            .entry(claim.path.clone())
            .or_insert_with(|| (claim.clone(), device.clone(), HashMap::new()));
        if is_modbus(first.protocol) && is_modbus(claim.protocol) {
            // Modbus buses check their own lines (settings, units, RTU against ASCII).
        } else if first.protocol != claim.protocol {
            dx.error(
                span,
                format!(
                    "{section}: serial line {} carries {} for device {:?}; one line speaks one protocol",
                    claim.path, first.protocol, &**first_device
                ),
            );
        } else if first.settings != claim.settings {
            dx.error(
                span,
                format!(
                    "{section}: serial line {} is set to {} here but to {} by device {:?}; devices on one line share its `baud`, `parity`, `data_bits` and `stop_bits`",
                    claim.path, claim.settings, first.settings, &**first_device
                ),
            );
        } else if let Some(other) = stations.get(&claim.station) {
            dx.error(
                span,
                format!(
                    "{section}: {} is already used on {} by device {:?}; each device on a line needs its own address",
                    claim.station, claim.path, &**other
                ),
            );
        } else {
            stations.insert(claim.station, device.clone());
        }
    }
}
