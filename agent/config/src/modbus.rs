//! Reading `modbus-tcp`, `modbus-rtu`, `modbus-ascii` and `modbus-rtu-over-tcp` devices and
//! their points.
//!
//! RTU devices that name the same serial port (or the same RTU-over-TCP address) are one
//! bus: [`Buses`] checks across devices that they agree on the line's settings and do not
//! share a unit id, since one scheduler will serve them all.

use super::error::Diagnostics;
use super::read_point_common;
use super::reader::TableReader;
use super::{DeviceKind, DeviceParts, PointInfo, parse_host_port, read_deadband_percent};
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::{
    BusLink, DataBits, Parity, PlanLimits, PointSpec, RtuDevice, SerialLine, StopBits, TcpDevice,
};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeTable;

/// The points of a device, as read by [`read_device`](super::read_device).
type Points<'a, 't, 'i> = &'a [(&'t DeTable<'i>, Range<usize>)];

/// The RTU buses seen so far in the file: which device set a line's settings first, and
/// which units are taken on it.
#[derive(Debug, Default)]
pub(super) struct Buses {
    lines: HashMap<String, BusSeen>,
}

#[derive(Debug)]
struct BusSeen {
    link: BusLink,
    first: Arc<str>,
    units: HashMap<u8, Arc<str>>,
}

impl Buses {
    /// Records `device` on the bus of `link`; reports settings that differ from the
    /// bus's first device's (at `link_span`) and a unit already taken (at `unit_span`).
    fn join(
        &mut self,
        dx: &mut Diagnostics<'_>,
        section: &str,
        device: &RtuDevice,
        link_span: Range<usize>,
        unit_span: Range<usize>,
    ) {
        let key = match &device.bus {
            BusLink::Serial(line) | BusLink::Ascii(line) => line.path.clone(),
            BusLink::Tcp(address) => format!("tcp {address}"),
        };
        let seen = self.lines.entry(key).or_insert_with(|| BusSeen {
            link: device.bus.clone(),
            first: device.name.clone(),
            units: HashMap::new(),
        });
        if seen.link != device.bus {
            let (Some(here), Some(there)) = (device.bus.serial_line(), seen.link.serial_line())
            else {
                return;
            };
            if std::mem::discriminant(&device.bus) != std::mem::discriminant(&seen.link) {
                dx.error(
                    link_span,
                    format!(
                        "{section}: serial line {} carries {} for device {:?}; one line speaks one protocol",
                        here.path,
                        framing(&seen.link),
                        &*seen.first
                    ),
                );
            } else {
                dx.error(
                    link_span,
                    format!(
                        "{section}: serial line {} is set to {} here but to {} by device {:?}; devices on one line share its `baud`, `parity`, `data_bits` and `stop_bits`",
                        here.path,
                        here.settings(),
                        there.settings(),
                        &*seen.first
                    ),
                );
            }
            return;
        }
        if let Some(other) = seen.units.get(&device.unit) {
            dx.error(
                unit_span,
                format!(
                    "{section}: unit {} is already used on {} by device {:?}; each device on a bus needs its own unit id",
                    device.unit, device.bus, &**other
                ),
            );
            return;
        }
        seen.units.insert(device.unit, device.name.clone());
    }
}

/// The protocol a link's frames belong to, for messages.
fn framing(link: &BusLink) -> &'static str {
    match link {
        BusLink::Serial(_) => "modbus-rtu",
        BusLink::Ascii(_) => "modbus-ascii",
        BusLink::Tcp(_) => "modbus-rtu-over-tcp",
    }
}

/// Keys every Modbus device has: timeout, retries and the read-planning limits.
struct Common {
    timeout: Duration,
    retries: u8,
    limits: PlanLimits,
}

fn read_common(dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>) -> Common {
    let timeout = t.positive_duration(dx, "timeout", Duration::from_secs(1));
    let retries = t.integer(dx, "retries", 0, 10).map_or(0, |r| r.value as u8);
    let max_gap = t
        .integer(dx, "max_gap", 0, 1999)
        .map_or(0, |g| g.value as u16);
    let max_registers = t
        .integer(dx, "max_registers_per_request", 1, 125)
        .map_or(125, |g| g.value as u16);
    let max_bits = t
        .integer(dx, "max_bits_per_request", 1, 2000)
        .map_or(2000, |g| g.value as u16);
    Common {
        timeout,
        retries,
        limits: PlanLimits {
            max_gap,
            max_registers,
            max_bits,
        },
    }
}

/// Reads the points of a Modbus device.
fn read_points(
    dx: &mut Diagnostics<'_>,
    t: &TableReader<'_, '_>,
    points: Points<'_, '_, '_>,
    max_registers: u16,
) -> (Vec<PointSpec>, Vec<PointInfo>) {
    read_points_of(dx, t.section(), t.span(), points, max_registers)
}

/// Checks a template's points as a Modbus device's (with the protocol's largest request),
/// returning their descriptions; `span` is where a template without points is reported.
pub(super) fn read_template_points(
    dx: &mut Diagnostics<'_>,
    section: &str,
    span: Range<usize>,
    points: Points<'_, '_, '_>,
) -> Vec<PointInfo> {
    read_points_of(
        dx,
        section,
        span,
        points,
        PlanLimits::default().max_registers,
    )
    .1
}

fn read_points_of(
    dx: &mut Diagnostics<'_>,
    section: &str,
    span: Range<usize>,
    points: Points<'_, '_, '_>,
    max_registers: u16,
) -> (Vec<PointSpec>, Vec<PointInfo>) {
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
            span,
            format!("{section}: a device needs at least one [[device.point]]"),
        );
    }
    (specs, infos)
}

/// Reads a `modbus-tcp` device.
pub(super) fn read_modbus_tcp(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    name: Option<Arc<str>>,
    poll: Duration,
    points: Points<'_, '_, '_>,
) -> Option<DeviceParts> {
    let address = read_address(
        dx,
        t,
        502,
        "the device's HOST:PORT, e.g. \"192.168.1.10:502\"",
    );
    // 0 and 255 too: TCP gateways differ in which unit id they expect for themselves.
    let unit = t.integer(dx, "unit", 0, 255).map_or(1, |u| u.value as u8);
    let common = read_common(dx, t);
    let (specs, infos) = read_points(dx, t, points, common.limits.max_registers);
    let device = TcpDevice {
        name: name?,
        address: address?.0,
        unit,
        poll,
        timeout: common.timeout,
        retries: common.retries,
        limits: common.limits,
        points: specs,
    };
    Some((DeviceKind::ModbusTcp(device), infos))
}

/// Reads `address` as HOST:PORT, with its span.
fn read_address(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    default_port: u16,
    expected: &str,
) -> Option<(String, Range<usize>)> {
    let section = t.section().to_owned();
    let a = t.required_string(dx, "address", expected)?;
    match parse_host_port(a.value, default_port) {
        Some(address) => Some((address, a.range())),
        None => {
            dx.error(
                a.range(),
                format!(
                    "{section}: `address` must be HOST:PORT like \"192.168.1.10:{default_port}\", found {:?}",
                    a.value
                ),
            );
            None
        }
    }
}

/// Which RTU link a device's protocol names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RtuOver {
    /// `modbus-rtu`: a local serial port.
    Serial,
    /// `modbus-ascii`: a local serial port, ASCII framing.
    Ascii,
    /// `modbus-rtu-over-tcp`: a serial device server.
    Tcp,
}

/// The baud rates a serial port can be set to (POSIX and Linux), for the error message.
const BAUDS: [u32; 14] = [
    1200, 2400, 4800, 9600, 14_400, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 500_000,
    921_600, 1_000_000,
];

/// Reads a `modbus-rtu` or `modbus-rtu-over-tcp` device, and records it on its bus.
pub(super) fn read_modbus_rtu(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    over: RtuOver,
    name: Option<Arc<str>>,
    poll: Duration,
    points: Points<'_, '_, '_>,
    buses: &mut Buses,
) -> Option<DeviceParts> {
    let section = t.section().to_owned();
    let link = match over {
        RtuOver::Serial => read_serial_line(dx, t, DataBits::Eight)
            .map(|(line, span)| (BusLink::Serial(line), span)),
        RtuOver::Ascii => read_serial_line(dx, t, DataBits::Seven)
            .map(|(line, span)| (BusLink::Ascii(line), span)),
        RtuOver::Tcp => read_address(
            dx,
            t,
            502,
            "the serial device server's HOST:PORT, e.g. \"192.168.1.30:502\"",
        )
        .map(|(address, span)| (BusLink::Tcp(address), span)),
    };
    // Units 1 to 247 only: 0 is the broadcast address, which no slave answers, and 248
    // to 255 are reserved on serial lines.
    let unit_at = t.integer(dx, "unit", 1, 247);
    let unit = unit_at.map_or(1, |u| u.value as u8);
    let common = read_common(dx, t);
    let (specs, infos) = read_points(dx, t, points, common.limits.max_registers);
    let (link, link_span) = link?;
    let device = RtuDevice {
        name: name?,
        bus: link,
        unit,
        poll,
        timeout: common.timeout,
        retries: common.retries,
        limits: common.limits,
        points: specs,
    };
    let unit_span = unit_at.map_or(t.span(), |u| u.range());
    buses.join(dx, &section, &device, link_span, unit_span);
    let kind = match over {
        RtuOver::Serial => DeviceKind::ModbusRtu(device),
        RtuOver::Ascii => DeviceKind::ModbusAscii(device),
        RtuOver::Tcp => DeviceKind::ModbusRtuOverTcp(device),
    };
    Some((kind, infos))
}

/// Reads `serial`, `baud`, `parity`, `data_bits` and `stop_bits`. The defaults are the
/// Modbus serial line specification's: 19200 baud, even parity, `data_bits` as given (8 for
/// RTU, 7 for ASCII), 1 stop bit.
pub(super) fn read_serial_line(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    data_bits: DataBits,
) -> Option<(SerialLine, Range<usize>)> {
    read_serial_line_with(dx, t, 19_200, Parity::Even, data_bits)
}

/// [`read_serial_line`] with the protocol's own defaults (DL/T 645's are 2400 8E1).
pub(super) fn read_serial_line_with(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    default_baud: u32,
    default_parity: Parity,
    default_data_bits: DataBits,
) -> Option<(SerialLine, Range<usize>)> {
    let section = t.section().to_owned();
    let path = t
        .required_string(dx, "serial", "the serial port, e.g. \"/dev/ttyUSB0\"")
        .and_then(|p| {
            if p.value.trim().is_empty() || p.value.chars().any(char::is_control) {
                dx.error(
                    p.range(),
                    format!("{section}: `serial` must be a device path like \"/dev/ttyUSB0\""),
                );
                None
            } else {
                Some((p.value.to_owned(), p.range()))
            }
        });
    let baud = match t.integer(dx, "baud", 1, i64::from(u32::MAX)) {
        Some(b) if BAUDS.contains(&(b.value as u32)) => b.value as u32,
        Some(b) => {
            let bauds: Vec<String> = BAUDS.iter().map(u32::to_string).collect();
            dx.error(
                b.range(),
                format!(
                    "{section}: `baud` must be one of {}, found {}",
                    bauds.join(", "),
                    b.value
                ),
            );
            default_baud
        }
        None => default_baud,
    };
    let parity = t
        .choice(dx, "parity", Parity::NAMES, |s| s.parse().ok())
        .map_or(default_parity, |p| p.value);
    let data_bits = match t.integer(dx, "data_bits", 7, 8) {
        Some(d) if d.value == 7 => DataBits::Seven,
        Some(_) => DataBits::Eight,
        None => default_data_bits,
    };
    let stop_bits = match t.integer(dx, "stop_bits", 1, 2) {
        Some(s) if s.value == 2 => StopBits::Two,
        _ => StopBits::One,
    };
    let (path, span) = path?;
    let line = SerialLine {
        path,
        baud,
        parity,
        data_bits,
        stop_bits,
    };
    Some((line, span))
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
    let bit = read_bit(dx, p, area, data_type, type_at.map(|t| t.range()));
    let numeric = data_type.is_numeric() && bit.is_none();
    let mut scaling = |dx: &mut Diagnostics<'_>, key, default| match p.float(dx, key) {
        Some(v) if bit.is_some() => {
            dx.error(
                v.range(),
                format!("{section}: `{key}` does not apply to a `bit` point, which is a bool"),
            );
            default
        }
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
    let deadband_percent = read_deadband_percent(dx, p, numeric);
    let (name, rules) = read_point_common(dx, p, numeric)?;
    let address = address?.value as u16;
    let spec = PointSpec {
        name: name.clone(),
        area,
        address,
        data_type,
        order,
        scale,
        offset,
        bit,
    };
    let info_type = if bit.is_some() {
        "bool"
    } else {
        data_type.as_str()
    };
    let info = rules.into_info(name, info_type, deadband_percent);
    Some((spec, info))
}

/// Reads `bit = N`: bit N (least significant = 0) of a 16- or 32-bit register point,
/// which then publishes a bool. `type` stays the register's (`u16` or `u32`, the default
/// being `u16`) so that `order` still places a 32-bit value's words.
fn read_bit(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    area: Area,
    data_type: DataType,
    type_span: Option<Range<usize>>,
) -> Option<u8> {
    let section = p.section().to_owned();
    let bit = p.integer(dx, "bit", 0, 31)?;
    let width = match data_type {
        DataType::U16 => 16,
        DataType::U32 => 32,
        _ => {
            dx.error(
                type_span.unwrap_or(bit.range()),
                format!("{section}: `bit` needs type = \"u16\" or \"u32\" (the register holding the bit), not \"{data_type}\""),
            );
            return None;
        }
    };
    if area.is_bits() {
        dx.error(
            bit.range(),
            format!("{section}: `bit` picks a bit of a register; a {area} is a bit already"),
        );
        return None;
    }
    if bit.value >= width {
        dx.error(
            bit.range(),
            format!(
                "{section}: `bit` must be 0 to {} for a {data_type} register, found {}",
                width - 1,
                bit.value
            ),
        );
        return None;
    }
    Some(bit.value as u8)
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
