//! What `fieldlink check` prints: the devices, their points and the Modbus read plan.

use crate::config::units::format_duration;
use crate::config::{AgentConfig, DeviceKind};
use fieldlink_modbus::ReadPlan;
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
                let plan = ReadPlan::new(&tcp.points, tcp.limits);
                let _ = writeln!(
                    out,
                    "device {:?}: modbus-tcp {} unit {}, poll {}, timeout {}",
                    &*device.name,
                    tcp.address,
                    tcp.unit,
                    format_duration(tcp.poll),
                    format_duration(tcp.timeout),
                );
                let _ = writeln!(
                    out,
                    "  read plan: {} requests per cycle (max gap {}, at most {} registers / {} bits per request)",
                    plan.requests.len(),
                    tcp.limits.max_gap,
                    tcp.limits.max_registers,
                    tcp.limits.max_bits,
                );
                for request in &plan.requests {
                    let unit = if request.area.is_bits() {
                        "bits"
                    } else {
                        "registers"
                    };
                    let names: Vec<&str> = request
                        .points
                        .iter()
                        .map(|&i| &*tcp.points[i].name)
                        .collect();
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
                let _ = writeln!(out, "  points:");
                for (spec, info) in tcp.points.iter().zip(&device.points) {
                    let scaling = if spec.scale != 1.0 || spec.offset != 0.0 {
                        format!(" x{} {:+}", spec.scale, spec.offset)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "    {:<24} {:<8} {:>5} {:<6} {}{scaling}{}",
                        &*spec.name,
                        spec.area.as_str(),
                        spec.address,
                        spec.data_type.as_str(),
                        spec.order,
                        info.unit
                            .as_deref()
                            .map(|u| format!(" [{u}]"))
                            .unwrap_or_default(),
                    );
                }
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
