//! `protocol = "mc"`: the device's and its points' keys, validated here (the agent hands
//! the tables over through [`ConfigTable`]), and what `fieldlink check` prints.

use crate::collector::{McCollector, McDevice};
use crate::device::{Device, Family, NAMES};
use crate::frame::{MAX_WORDS, Route};
use crate::plan::{McPoint, ReadPlan};
use fieldlink_collector_api::plugin::{
    ConfigTable, DeviceBase, DeviceTable, PluginDevice, PointKind, parse_host_port,
};
use fieldlink_collector_api::{Collector, DataType, WordOrder};
use std::any::Any;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Unused words a read may span between two points unless `max_gap` says otherwise:
/// every device number below a CPU's configured range exists, and a word more costs
/// less than a request more.
pub const DEFAULT_MAX_GAP: u32 = 16;

/// The type names a word point may take.
const TYPES: &str = "bool, u16, i16, u32, i32, u64, i64, f32, f64, string";

fn parse_type(name: &str) -> Option<DataType> {
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

/// Reads an `mc` device; `None` when it has errors (all recorded in `t`).
pub fn read_device(base: DeviceBase, t: &mut dyn DeviceTable) -> Option<Arc<dyn PluginDevice>> {
    let section = t.section().to_owned();
    // MC ports are set in the PLC's parameters (no standard port), so the port is required.
    let address = t
        .required_string("address", "the PLC's HOST:PORT, e.g. \"192.168.3.39:5002\"")
        .and_then(|a| match parse_host_port(&a, 0) {
            Some(address) if !address.ends_with(":0") => Some(address),
            _ => {
                t.error(
                    "address",
                    format!("{section}: `address` must be HOST:PORT, the port the PLC's parameters open for MC protocol (binary), like \"192.168.3.39:5002\", found {a:?}"),
                );
                None
            }
        });
    let family = match t.string("family") {
        None => Family::Q,
        Some(name) => match Family::parse(&name) {
            Some(family) => family,
            None => {
                t.error(
                    "family",
                    format!(
                        "{section}: `family` must be {}, found {name:?}",
                        Family::NAMES
                    ),
                );
                Family::Q
            }
        },
    };
    let timeout = t.positive_duration("timeout", Duration::from_secs(1));
    let retries = t.integer("retries", 0, 10).map_or(0, |r| r as u8);
    let max_gap = t
        .integer("max_gap", 0, 959)
        .map_or(DEFAULT_MAX_GAP, |g| g as u32);
    let max_words = t
        .integer("max_words_per_request", 1, i64::from(MAX_WORDS))
        .map_or(MAX_WORDS, |w| w as u16);
    let route = Route {
        network: t.integer("network", 0, 255).map_or(0, |n| n as u8),
        pc: t.integer("station", 0, 255).map_or(0xFF, |n| n as u8),
        ..Route::default()
    };

    let mut points = Vec::new();
    let mut all_read = true;
    t.points(&mut |name, p| {
        let point = read_point(name, p, family, max_words);
        all_read &= point.is_some();
        let point = point?;
        let kind = PointKind {
            data_type: point.catalogue_type(),
            numeric: point.data_type.is_numeric() && point.bit.is_none() && !point.device.kind.bits,
            unit: None,
        };
        points.push(point);
        Some(kind)
    });
    if !all_read {
        return None;
    }
    Some(Arc::new(McConfig(McDevice {
        name: base.name?,
        address: address?,
        route,
        poll: base.poll,
        timeout,
        retries,
        max_gap,
        max_words,
        points,
    })))
}

fn read_point(
    name: Option<Arc<str>>,
    p: &mut dyn ConfigTable,
    family: Family,
    max_words: u16,
) -> Option<McPoint> {
    let section = p.section().to_owned();
    let device = p
        .required_string("address", &format!("a MELSEC device: {NAMES}"))
        .and_then(|a| match Device::parse(&a, family) {
            Ok(device) => Some(device),
            Err(e) => {
                p.error("address", format!("{section}: `address`: {e}"));
                None
            }
        });
    let named_type = p.string("type").and_then(|name| match parse_type(&name) {
        Some(t) => Some(t),
        None => {
            p.error(
                "type",
                format!("{section}: `type` must be one of {TYPES}, found {name:?}"),
            );
            None
        }
    });
    let length = p.integer("length", 1, i64::from(max_words));
    let order = p
        .string("order")
        .and_then(|o| match o.parse::<WordOrder>() {
            Ok(order) => Some(order),
            Err(()) => {
                p.error(
                    "order",
                    format!(
                        "{section}: `order` must be one of ABCD, CDAB, BADC, DCBA, found {o:?}"
                    ),
                );
                None
            }
        });
    let bit = p.integer("bit", 0, 31);
    let scale = p.float("scale");
    let offset = p.float("offset");
    let device = device?;
    let mut data_type = named_type.unwrap_or(if device.kind.bits {
        DataType::Bool
    } else {
        DataType::U16
    });
    match (&mut data_type, length) {
        (DataType::String { len }, Some(l)) => *len = l as u16,
        (DataType::String { .. }, None) => {
            p.error("type", format!("{section}: a string point needs `length`, its size in words (2 characters each)"));
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
    if device.kind.bits && data_type != DataType::Bool {
        p.error(
            "type",
            format!("{section}: {device} is a bit device; its points are bool (read words from D, W or R)"),
        );
        return None;
    }
    if !device.kind.bits && data_type == DataType::Bool && bit.is_none() {
        p.error(
            "type",
            format!("{section}: {device} is a word device; for one of its bits use type = \"u16\" with `bit`"),
        );
        return None;
    }
    let bit = match bit {
        None => None,
        Some(b) => {
            let width = match data_type {
                DataType::U16 => 16,
                DataType::U32 => 32,
                _ => {
                    p.error(
                        "bit",
                        format!("{section}: `bit` needs a word point of type u16 or u32"),
                    );
                    return None;
                }
            };
            if b >= width {
                p.error(
                    "bit",
                    format!(
                        "{section}: `bit` must be 0 to {} for a {data_type} value, found {b}",
                        width - 1
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
    if u64::from(device.number) + u64::from(data_type.registers())
        > u64::from(crate::device::MAX_NUMBER) + 1
    {
        p.error(
            "address",
            format!("{section}: {device} as {data_type} runs past the last device number"),
        );
        return None;
    }
    Some(McPoint {
        name: name?,
        device,
        data_type,
        // MELSEC stores 32- and 64-bit values low word first.
        order: order.unwrap_or(WordOrder::Cdab),
        bit,
        scale: scale.unwrap_or(1.0),
        offset: offset.unwrap_or(0.0),
    })
}

/// A validated `mc` device, as the agent holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct McConfig(pub McDevice);

impl PluginDevice for McConfig {
    fn protocol(&self) -> &'static str {
        "mc"
    }

    fn collector(&self) -> Box<dyn Collector> {
        Box::new(McCollector::new(self.0.clone()))
    }

    fn describe(&self) -> String {
        describe(&self.0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same(&self, other: &dyn PluginDevice) -> bool {
        other.as_any().downcast_ref::<McConfig>() == Some(self)
    }
}

/// The `fieldlink check` lines of a device.
pub fn describe(d: &McDevice) -> String {
    let mut out = String::new();
    let retries = match d.retries {
        0 => String::new(),
        1 => ", 1 retry".to_owned(),
        n => format!(", {n} retries"),
    };
    let _ = writeln!(
        out,
        "mc {} (3E binary, network {}, station {}), poll {}ms, timeout {}ms{retries}",
        d.address,
        d.route.network,
        d.route.pc,
        d.poll.as_millis(),
        d.timeout.as_millis(),
    );
    let plan = ReadPlan::new(&d.points, d.max_gap, d.max_words);
    let _ = writeln!(
        out,
        "  read plan: {} requests per cycle (max gap {} words, at most {} words per request)",
        plan.reads.len(),
        d.max_gap,
        d.max_words,
    );
    for read in &plan.reads {
        let names: Vec<&str> = read.points.iter().map(|&i| &*d.points[i].name).collect();
        let first = Device {
            kind: read.kind,
            number: read.head(),
            radix: d.points[read.points[0]].device.radix,
        };
        let _ = writeln!(
            out,
            "    {:<8} {:>4} words {}",
            first.to_string(),
            read.words,
            names.join(", "),
        );
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
        let order = if point.data_type.registers() > 1
            && !matches!(point.data_type, DataType::String { .. })
        {
            format!(" {}", point.order)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {:<24} {:<10} {}{order}{extra}",
            &*point.name,
            point.device.to_string(),
            point.data_type.as_str(),
        );
    }
    out
}
