//! `protocol = "s7"`: the device's and its points' keys, validated here (the agent hands
//! the tables over through [`ConfigTable`]), and what `fieldlink check` prints.

use crate::address::{Address, FORMS, Width};
use crate::collector::{S7Collector, S7Device};
use crate::connection::{ConnectionType, DEFAULT_PDU_SIZE, Tsaps, format_tsap, parse_tsap};
use crate::plan::ReadPlan;
use crate::point::{S7Point, S7Type};
use fieldlink_collector_api::Collector;
use fieldlink_collector_api::plugin::{
    ConfigTable, DeviceBase, DeviceTable, PluginDevice, PointKind, parse_host_port,
};
use std::any::Any;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// The ISO-on-TCP port.
pub const PORT: u16 = 102;
/// Unused bytes a range may read between two points unless `max_gap` says otherwise:
/// reading a few bytes more costs nothing, a request more costs a round trip, and the
/// bytes between two points of one area always exist.
pub const DEFAULT_MAX_GAP: u32 = 16;

/// Reads an `s7` device; `None` when it has errors (all recorded in `t`).
pub fn read_device(base: DeviceBase, t: &mut dyn DeviceTable) -> Option<Arc<dyn PluginDevice>> {
    let section = t.section().to_owned();
    let address = t
        .required_string("address", "the PLC's HOST or HOST:PORT, e.g. \"192.168.0.1\"")
        .and_then(|a| match parse_host_port(&a, PORT) {
            Some(address) => Some(address),
            None => {
                t.error(
                    "address",
                    format!("{section}: `address` must be HOST or HOST:PORT like \"192.168.0.1\" (port {PORT} by default), found {a:?}"),
                );
                None
            }
        });
    let tsaps = read_tsaps(t, &section);
    let timeout = t.positive_duration("timeout", Duration::from_secs(1));
    let retries = t.integer("retries", 0, 10).map_or(0, |r| r as u8);
    let max_gap = t
        .integer("max_gap", 0, 1024)
        .map_or(DEFAULT_MAX_GAP, |g| g as u32);
    let pdu_size = t
        .integer("pdu_size", 240, 960)
        .map_or(DEFAULT_PDU_SIZE, |p| p as u16);

    let mut points = Vec::new();
    let mut all_read = true;
    t.points(&mut |name, p| {
        let point = read_point(name, p);
        all_read &= point.is_some();
        let point = point?;
        let kind = PointKind {
            data_type: point.catalogue_type(),
            numeric: point.data_type.is_numeric() && point.bit.is_none(),
            unit: None,
        };
        points.push(point);
        Some(kind)
    });
    if !all_read {
        return None;
    }
    let device = S7Device {
        name: base.name?,
        address: address?,
        tsaps: tsaps?,
        poll: base.poll,
        timeout,
        retries,
        max_gap,
        pdu_size,
        points,
    };
    Some(Arc::new(S7Config(device)))
}

/// Reads `rack`, `slot` and `connection`, or `local_tsap` and `remote_tsap` (LOGO!, S7-200
/// with a CP 243-1, or a CPU configured with its own TSAPs).
fn read_tsaps(t: &mut dyn DeviceTable, section: &str) -> Option<Tsaps> {
    let rack = t.integer("rack", 0, 7);
    let slot = t.integer("slot", 0, 31);
    let kind = match t.string("connection") {
        Some(name) => match ConnectionType::parse(&name) {
            Some(kind) => kind,
            None => {
                t.error(
                    "connection",
                    format!(
                        "{section}: `connection` must be one of {}, found {name:?}",
                        ConnectionType::NAMES
                    ),
                );
                return None;
            }
        },
        None => ConnectionType::Pg,
    };
    let mut tsap = |key: &'static str| {
        let text = t.string(key)?;
        let parsed = parse_tsap(&text);
        if parsed.is_none() {
            t.error(
                key,
                format!("{section}: `{key}` must be two hexadecimal bytes as Siemens tools write them, like \"02.00\", found {text:?}"),
            );
        }
        Some(parsed)
    };
    let local = tsap("local_tsap");
    let remote = tsap("remote_tsap");
    match (local, remote) {
        (None, None) => Some(Tsaps::rack_slot(
            rack.map_or(0, |r| r as u8),
            slot.map_or(1, |s| s as u8),
            kind,
        )),
        (Some(local), Some(remote)) => {
            if rack.is_some() || slot.is_some() {
                t.error(
                    "remote_tsap",
                    format!("{section}: give either `rack` and `slot` or `local_tsap` and `remote_tsap`, not both"),
                );
                return None;
            }
            Some(Tsaps {
                local: local?,
                remote: remote?,
            })
        }
        _ => {
            t.error(
                "remote_tsap",
                format!("{section}: `local_tsap` and `remote_tsap` go together (LOGO!: \"01.00\" and \"02.00\")"),
            );
            None
        }
    }
}

/// Reads one point; `None` when it has errors (recorded in `p`).
fn read_point(name: Option<Arc<str>>, p: &mut dyn ConfigTable) -> Option<S7Point> {
    let section = p.section().to_owned();
    let address = p
        .required_string("address", &format!("a Siemens address: {FORMS}"))
        .and_then(|a| match a.parse::<Address>() {
            Ok(address) => Some(address),
            Err(e) => {
                p.error("address", format!("{section}: `address`: {e}"));
                None
            }
        });
    let named_type = p
        .string("type")
        .and_then(|name| match S7Type::parse(&name) {
            Some(t) => Some(t),
            None => {
                p.error(
                    "type",
                    format!(
                        "{section}: `type` must be one of {}, found {name:?}",
                        S7Type::NAMES
                    ),
                );
                None
            }
        });
    let length = p.integer("length", 1, 254);
    if p.has("order") {
        p.error(
            "order",
            format!("{section}: S7 CPUs store values big-endian; `order` does not apply"),
        );
    }
    let bit = p.integer("bit", 0, 31);
    let scale = p.float("scale");
    let offset = p.float("offset");
    let address = address?;
    let mut data_type = named_type.unwrap_or(S7Type::default_for(address.width));
    match (&mut data_type, length) {
        (S7Type::String { len }, Some(l)) => *len = l as u8,
        (S7Type::String { .. }, None) => {
            p.error("type", format!("{section}: a string point needs `length`, the STRING's declared length in characters (1 to 254)"));
            return None;
        }
        (_, Some(_)) => {
            p.error(
                "length",
                format!("{section}: `length` applies to type = \"string\" only"),
            );
            return None;
        }
        (_, None) => {}
    }
    if !data_type.fits(address.width) {
        let hint = match address.width {
            Width::Bit(_) => "a bit address is a bool".to_owned(),
            Width::Byte => {
                "a byte address (B) takes u8 or i8, or u64, i64, f64 and string starting there"
                    .to_owned()
            }
            Width::Word => "a word address (W) takes u16 or i16".to_owned(),
            Width::DWord => {
                "a double word address (D) takes u32, i32 or f32 (or u64, i64, f64 starting there)"
                    .to_owned()
            }
        };
        p.error(
            "type",
            format!(
                "{section}: type \"{}\" does not fit {address}: {hint}",
                data_type.as_str()
            ),
        );
        return None;
    }
    let end = address.byte
        + if matches!(address.width, Width::Bit(_)) {
            1
        } else {
            data_type.bytes()
        };
    if end - 1 > crate::address::MAX_BYTE {
        p.error(
            "address",
            format!(
                "{section}: {address} as {} runs past the end of the area",
                data_type.as_str()
            ),
        );
        return None;
    }
    let bit = match bit {
        None => None,
        Some(b) => {
            let width = match data_type {
                S7Type::U16 => 16,
                S7Type::U32 => 32,
                _ => {
                    p.error("bit", format!("{section}: `bit` needs a u16 (W) or u32 (D) point, not {address} as \"{}\"", data_type.as_str()));
                    return None;
                }
            };
            if b >= width {
                p.error(
                    "bit",
                    format!(
                        "{section}: `bit` must be 0 to {} for a {} value, found {b}",
                        width - 1,
                        data_type.as_str()
                    ),
                );
                return None;
            }
            Some(b as u8)
        }
    };
    let numeric = data_type.is_numeric() && bit.is_none();
    for (key, value) in [("scale", scale), ("offset", offset)] {
        if value.is_some() && !numeric {
            p.error(
                key,
                format!("{section}: `{key}` applies to numeric points only"),
            );
            return None;
        }
    }
    Some(S7Point {
        name: name?,
        address,
        data_type,
        bit,
        scale: scale.unwrap_or(1.0),
        offset: offset.unwrap_or(0.0),
    })
}

/// A validated `s7` device, as the agent holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct S7Config(pub S7Device);

impl PluginDevice for S7Config {
    fn protocol(&self) -> &'static str {
        "s7"
    }

    fn collector(&self) -> Box<dyn Collector> {
        Box::new(S7Collector::new(self.0.clone()))
    }

    fn describe(&self) -> String {
        describe(&self.0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same(&self, other: &dyn PluginDevice) -> bool {
        other.as_any().downcast_ref::<S7Config>() == Some(self)
    }
}

/// The `fieldlink check` lines of a device.
pub fn describe(d: &S7Device) -> String {
    let mut out = String::new();
    let retries = match d.retries {
        0 => String::new(),
        1 => ", 1 retry".to_owned(),
        n => format!(", {n} retries"),
    };
    let _ = writeln!(
        out,
        "s7 {} TSAPs {} -> {}, poll {}, timeout {}{retries}",
        d.address,
        format_tsap(d.tsaps.local),
        format_tsap(d.tsaps.remote),
        human(d.poll),
        human(d.timeout),
    );
    let plan = ReadPlan::new(&d.points, d.max_gap, d.pdu_size);
    let items: usize = plan.requests.iter().map(|r| r.items.len()).sum();
    let _ = writeln!(
        out,
        "  read plan: {} requests per cycle, {items} items (PDU {} bytes as asked; planned again for the PDU the PLC grants; max gap {} bytes)",
        plan.requests.len(),
        d.pdu_size,
        d.max_gap,
    );
    for (n, request) in plan.requests.iter().enumerate() {
        for item in &request.items {
            let range = &plan.ranges[item.range];
            let names: Vec<&str> = range.points.iter().map(|&i| &*d.points[i].name).collect();
            let _ = writeln!(
                out,
                "    #{:<3} {:<6} bytes {:>5}..{:<5} {:>4} bytes {}",
                n + 1,
                range.area.to_string(),
                item.spec.start,
                item.spec.start + u32::from(item.spec.len) - 1,
                item.spec.len,
                names.join(", "),
            );
        }
    }
    let _ = writeln!(out, "  points:");
    for point in &d.points {
        let extra = match point.bit {
            Some(bit) => format!(" bit {bit}"),
            None if point.scale != 1.0 || point.offset != 0.0 => {
                format!(" x{} {:+}", point.scale, point.offset)
            }
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "    {:<24} {:<14} {}{extra}",
            &*point.name,
            point.address.to_string(),
            point.data_type.as_str(),
        );
    }
    out
}

/// A duration as configuration writes it (`500ms`, `2s`, `1m`).
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
