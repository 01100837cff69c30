//! What `fieldlink check` prints: the devices, their points and the Modbus read plan.

use crate::config::units::format_duration;
use crate::config::{AgentConfig, DeviceConfig, DeviceKind};
use fieldlink_modbus::{PlanLimits, PointSpec, ReadPlan};
use std::fmt::Write;

/// A human-readable summary of a valid configuration.
pub fn report(config: &AgentConfig) -> String {
    let mut out = String::new();
    let gateway = config
        .gateway
        .id
        .as_deref()
        .unwrap_or("(set by enrollment)");
    let _ = writeln!(
        out,
        "gateway {gateway}: publishes to {} ; state in {}",
        config.platform.mqtt,
        config.gateway.state_dir.display()
    );
    let _ = writeln!(
        out,
        "batches of up to {} samples or {}; outbox capped at {} MiB, flushed every {}",
        config.publish.batch_max_samples,
        format_duration(config.publish.batch_max_delay),
        config.buffer.max_size >> 20,
        format_duration(config.buffer.flush_interval),
    );
    let total_points: usize = config.devices.iter().map(|d| d.points.len()).sum();
    let _ = writeln!(
        out,
        "{} devices, {} points",
        config.devices.len(),
        total_points
    );
    for device in &config.devices {
        let _ = writeln!(out);
        match &device.kind {
            DeviceKind::ModbusTcp(tcp) => {
                let header = format!(
                    "device {:?}: modbus-tcp {} unit {}, poll {}, timeout {}{}",
                    &*device.name,
                    tcp.address,
                    tcp.unit,
                    format_duration(tcp.poll),
                    format_duration(tcp.timeout),
                    retries(tcp.retries),
                );
                modbus_report(&mut out, &header, &tcp.points, tcp.limits, device);
            }
            DeviceKind::ModbusRtu(rtu)
            | DeviceKind::ModbusAscii(rtu)
            | DeviceKind::ModbusRtuOverTcp(rtu) => {
                let header = format!(
                    "device {:?}: {} {} unit {}, poll {}, timeout {}{}",
                    &*device.name,
                    device.kind.protocol(),
                    match &rtu.bus {
                        fieldlink_modbus::BusLink::Serial(line)
                        | fieldlink_modbus::BusLink::Ascii(line) => line.to_string(),
                        fieldlink_modbus::BusLink::Tcp(address) => address.clone(),
                    },
                    rtu.unit,
                    format_duration(rtu.poll),
                    format_duration(rtu.timeout),
                    retries(rtu.retries),
                );
                modbus_report(&mut out, &header, &rtu.points, rtu.limits, device);
            }
            DeviceKind::Opcua(opcua) => opcua_report(&mut out, &device.name, opcua),
            DeviceKind::Plugin(plugin) => {
                let _ = write!(out, "device {:?}: {}", &*device.name, plugin.0.describe());
            }
            DeviceKind::Simulator(sim) => {
                let _ = writeln!(
                    out,
                    "device {:?}: simulator, poll {}",
                    &*device.name,
                    format_duration(sim.poll)
                );
                for point in &sim.points {
                    let _ = writeln!(out, "    {:<24} {:?}", &*point.name, point.signal);
                }
            }
        }
    }
    out
}

/// The lines of an OPC UA device: connection settings, then one line per point.
fn opcua_report(out: &mut String, name: &str, device: &fieldlink_opcua::OpcuaDevice) {
    use fieldlink_opcua::{Mode, SecurityMode, ServerTrust};
    let mode = match device.mode {
        Mode::Subscription {
            publishing_interval,
        } => format!(
            "subscription, publishing {}",
            format_duration(publishing_interval)
        ),
        Mode::Poll { period } => format!("poll {}", format_duration(period)),
    };
    let security = match device.security.mode {
        SecurityMode::None => "security none".to_owned(),
        m => format!("security {m}, policy {}", device.security.policy),
    };
    let _ = writeln!(
        out,
        "device {name:?}: opcua {}, {mode}, timeout {}",
        device.endpoint,
        format_duration(device.timeout)
    );
    let trust = match device.trust {
        ServerTrust::TrustedOnly => "trusted server certificates only",
        ServerTrust::Any => "ANY server certificate (trust_server_certificate = \"any\")",
    };
    let _ = writeln!(
        out,
        "  {security}, login {}, {trust}; certificates in {}",
        device.identity.describe(),
        device.pki.dir.display()
    );
    let _ = writeln!(out, "  points:");
    for point in &device.points {
        let mut extra = String::new();
        if let Mode::Subscription { .. } = device.mode {
            extra = format!(
                " sampling {}, queue {}",
                format_duration(point.sampling_interval),
                point.queue_size
            );
            match point.deadband {
                Some(fieldlink_opcua::Deadband::Absolute(d)) => {
                    let _ = write!(extra, ", deadband {d}");
                }
                Some(fieldlink_opcua::Deadband::Percent(p)) => {
                    let _ = write!(extra, ", deadband {p}%");
                }
                None => {}
            }
        }
        let _ = writeln!(out, "    {:<24} {}{extra}", &*point.name, point.node);
    }
}

/// `, 2 retries` when a device retries requests.
fn retries(n: u8) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 retry".to_owned(),
        n => format!(", {n} retries"),
    }
}

/// The lines of a Modbus device: `header`, its read plan, then one line per point.
fn modbus_report(
    out: &mut String,
    header: &str,
    points: &[PointSpec],
    limits: PlanLimits,
    device: &DeviceConfig,
) {
    let plan = ReadPlan::new(points, limits);
    let _ = writeln!(out, "{header}");
    let _ = writeln!(
        out,
        "  read plan: {} requests per cycle (max gap {}, at most {} registers / {} bits per request)",
        plan.requests.len(),
        limits.max_gap,
        limits.max_registers,
        limits.max_bits,
    );
    for request in &plan.requests {
        let unit = if request.area.is_bits() {
            "bits"
        } else {
            "registers"
        };
        let names: Vec<&str> = request.points.iter().map(|&i| &*points[i].name).collect();
        let _ = writeln!(
            out,
            "    {:<8} {:>5}..{:<5} {:>4} {unit:<9} {}",
            request.area.as_str(),
            request.address,
            u32::from(request.address) + u32::from(request.quantity) - 1,
            request.quantity,
            names.join(", "),
        );
    }
    match &device.template {
        Some(template) => {
            let _ = writeln!(
                out,
                "  points (template {template:?}, then the device's own):"
            );
        }
        None => {
            let _ = writeln!(out, "  points:");
        }
    }
    for (spec, info) in points.iter().zip(&device.points) {
        let scaling = if let Some(bit) = spec.bit {
            format!(" bit {bit}")
        } else if spec.scale != 1.0 || spec.offset != 0.0 {
            format!(" x{} {:+}", spec.scale, spec.offset)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {:<24} {:<8} {:>5} {:<6} {}{scaling}{}{}",
            &*spec.name,
            spec.area.as_str(),
            spec.address,
            spec.data_type.as_str(),
            spec.order,
            info.unit
                .as_deref()
                .map(|u| format!(" [{u}]"))
                .unwrap_or_default(),
            info.role
                .map(|r| format!(" role {}", r.as_str()))
                .unwrap_or_default(),
        );
    }
}
