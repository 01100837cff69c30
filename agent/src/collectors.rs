//! Turns configured devices into running collectors, and the registry of protocol plugins:
//! a protocol crate that implements [`Plugin`] is listed in [`PLUGINS`] and nowhere else;
//! configuration, `check`, `probe` and the collectors find it here by its name.

use crate::config::{DeviceConfig, DeviceKind};
use fieldlink_collector_api::Collector;
use fieldlink_collector_api::plugin::Plugin;
use fieldlink_modbus::{ModbusRtuCollector, ModbusTcpCollector};
use fieldlink_simulator::SimulatorCollector;

/// The collector for one configured device.
pub fn build(device: &DeviceConfig) -> Box<dyn Collector> {
    match &device.kind {
        DeviceKind::ModbusTcp(tcp) => Box::new(ModbusTcpCollector::new(tcp.clone())),
        // Each device of a bus gets its own collector (and counters); they share the
        // bus's scheduler, which they find by its link.
        DeviceKind::ModbusRtu(rtu)
        | DeviceKind::ModbusAscii(rtu)
        | DeviceKind::ModbusRtuOverTcp(rtu) => Box::new(ModbusRtuCollector::new(rtu.clone())),
        DeviceKind::Opcua(opcua) => Box::new(fieldlink_opcua::OpcuaCollector::new(opcua.clone())),
        DeviceKind::Simulator(sim) => Box::new(SimulatorCollector::new(sim.clone())),
        DeviceKind::Plugin(device) => device.0.collector(),
    }
}

/// The protocol plugins.
pub static PLUGINS: &[&dyn Plugin] = &[
    &fieldlink_s7::PLUGIN,
    &fieldlink_mc::PLUGIN,
    &fieldlink_dlt645::PLUGIN,
];

/// The plugin of `protocol`, if one handles it.
pub fn plugin(protocol: &str) -> Option<&'static dyn Plugin> {
    PLUGINS.iter().copied().find(|p| p.protocol() == protocol)
}
