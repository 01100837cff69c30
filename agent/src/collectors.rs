//! Turns configured devices into running collectors.

use crate::config::{DeviceConfig, DeviceKind};
use fieldlink_collector_api::Collector;
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
