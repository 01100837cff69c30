//! `protocol = "dlt645"`: the device's and its points' keys, validated here, and what
//! `fieldlink check` prints.

use crate::collector::{Dlt645Collector, Dlt645Device, MeterPoint, plan};
use crate::frame::MeterAddress;
use crate::ident::{self, DataId};
use fieldlink_collector_api::Collector;
use fieldlink_collector_api::plugin::{
    ConfigTable, DeviceBase, DeviceTable, PluginDevice, PointKind, SerialClaim,
};
use fieldlink_serial::line::read_line;
use fieldlink_serial::{DataBits, Parity};
use std::any::Any;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Reads a `dlt645` device; `None` when it has errors (all recorded in `t`).
pub fn read_device(base: DeviceBase, t: &mut dyn DeviceTable) -> Option<Arc<dyn PluginDevice>> {
    let section = t.section().to_owned();
    // The standard's defaults: 2400 baud, 8 data bits, even parity, 1 stop bit.
    let line = read_line(t, 2400, Parity::Even, DataBits::Eight);
    let meter = t
        .required_string("meter", "the meter's 12-digit address, as printed on it")
        .and_then(|m| match m.parse::<MeterAddress>() {
            Ok(MeterAddress::BROADCAST) => {
                t.error(
                    "meter",
                    format!("{section}: `meter` must be the meter's own address; the wildcard answers only with one meter on the line (use it with fieldlink probe to find the address)"),
                );
                None
            }
            Ok(meter) => Some(meter),
            Err(e) => {
                t.error("meter", format!("{section}: `meter`: {e}"));
                None
            }
        });
    let timeout = t.positive_duration("timeout", Duration::from_secs(1));
    let retries = t.integer("retries", 0, 10).map_or(0, |r| r as u8);
    let block_reads = match t.string("block_reads") {
        None => false,
        Some(v) if v == "on" => true,
        Some(v) if v == "off" => false,
        Some(v) => {
            t.error(
                "block_reads",
                format!("{section}: `block_reads` must be \"on\" or \"off\", found {v:?}"),
            );
            false
        }
    };
    let mut points = Vec::new();
    let mut all_read = true;
    t.points(&mut |name, p| {
        let point = read_point(name, p);
        all_read &= point.is_some();
        let point = point?;
        let kind = PointKind {
            data_type: if point.format.decimals == 0 && point.scale == 1.0 && point.offset == 0.0 {
                "i64"
            } else {
                "f64"
            },
            numeric: true,
            unit: Some(point.format.unit).filter(|u| !u.is_empty()),
        };
        points.push(point);
        Some(kind)
    });
    if !all_read {
        return None;
    }
    Some(Arc::new(Dlt645Config(Dlt645Device {
        name: base.name?,
        line: line?,
        meter: meter?,
        poll: base.poll,
        timeout,
        retries,
        block_reads,
        points,
    })))
}

fn read_point(name: Option<Arc<str>>, p: &mut dyn ConfigTable) -> Option<MeterPoint> {
    let section = p.section().to_owned();
    let id = p
        .required_string(
            "address",
            "a data identifier, 8 hexadecimal digits such as \"00010000\"",
        )
        .and_then(|a| match a.parse::<DataId>() {
            Ok(id) => Some(id),
            Err(e) => {
                p.error("address", format!("{section}: `address`: {e}"));
                None
            }
        });
    for key in ["type", "order", "bit", "length"] {
        if p.has(key) {
            p.error(
                key,
                format!("{section}: `{key}` does not apply to dlt645: the data identifier's type comes from the standard's table"),
            );
        }
    }
    let scale = p.float("scale");
    let offset = p.float("offset");
    let id = id?;
    let Some(format) = ident::lookup(id) else {
        p.error(
            "address",
            format!("{section}: data identifier {id} is not in fieldlink's table of DL/T 645-2007 identifiers (energies 000x0000, voltages 0201xx00, currents 0202xx00, powers 0203xx00-0205xx00, power factors 0206xx00, 028000xx)"),
        );
        return None;
    };
    Some(MeterPoint {
        name: name?,
        id,
        format,
        scale: scale.unwrap_or(1.0),
        offset: offset.unwrap_or(0.0),
    })
}

/// A validated `dlt645` device, as the agent holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dlt645Config(pub Dlt645Device);

impl PluginDevice for Dlt645Config {
    fn protocol(&self) -> &'static str {
        "dlt645"
    }

    fn collector(&self) -> Box<dyn Collector> {
        Box::new(Dlt645Collector::new(self.0.clone()))
    }

    fn describe(&self) -> String {
        describe(&self.0)
    }

    fn serial(&self) -> Option<SerialClaim> {
        Some(SerialClaim {
            path: self.0.line.path.clone(),
            settings: self.0.line.settings(),
            protocol: "dlt645",
            station: format!("meter {}", self.0.meter),
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same(&self, other: &dyn PluginDevice) -> bool {
        other.as_any().downcast_ref::<Dlt645Config>() == Some(self)
    }
}

/// The `fieldlink check` lines of a device.
pub fn describe(d: &Dlt645Device) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dlt645 {} meter {}, poll {}ms, timeout {}ms{}",
        d.line,
        d.meter,
        d.poll.as_millis(),
        d.timeout.as_millis(),
        if d.block_reads { ", block reads" } else { "" },
    );
    let reads = plan(&d.points, d.block_reads);
    let _ = writeln!(out, "  read plan: {} requests per cycle", reads.len());
    for read in &reads {
        let names: Vec<&str> = read
            .points
            .iter()
            .map(|&(i, _)| &*d.points[i].name)
            .collect();
        let _ = writeln!(out, "    {}  {}", read.id, names.join(", "));
    }
    let _ = writeln!(out, "  points:");
    for point in &d.points {
        let f = point.format;
        let digits = usize::from(f.bytes) * 2 - usize::from(f.decimals);
        let layout = format!(
            "{}{}{}",
            "X".repeat(digits),
            if f.decimals > 0 { "." } else { "" },
            "X".repeat(usize::from(f.decimals))
        );
        let scaling = if point.scale != 1.0 || point.offset != 0.0 {
            format!(" x{} {:+}", point.scale, point.offset)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {:<24} {}  {layout}{} [{}]{scaling}  {}",
            &*point.name,
            point.id,
            if f.signed { " signed" } else { "" },
            f.unit,
            f.name,
        );
    }
    out
}
