//! Turns configured devices into running collectors.

use crate::config::{DeviceConfig, DeviceKind};
use fieldlink_collector_api::Collector;
use fieldlink_modbus::ModbusTcpCollector;
use fieldlink_simulator::SimulatorCollector;

/// The collector for one configured device.
pub fn build(device: &DeviceConfig) -> Box<dyn Collector> {
    match &device.kind {
        DeviceKind::ModbusTcp(tcp) => Box::new(ModbusTcpCollector::new(tcp.clone())),
        DeviceKind::Simulator(sim) => Box::new(SimulatorCollector::new(sim.clone())),
    }
}
