//! End-to-end tests: the real agent against real peers over loopback (a tokio-modbus
//! device, the in-process broker, mosquitto in CI), never mocks of them.

mod ack;
mod config_push;
mod crash;
mod dlt645;
mod interop;
mod opcua;
mod pipeline;
mod platform;
mod plc;
mod process;
mod pymodbus;
mod resilience;
mod rtu;
mod site;
mod snap7;
