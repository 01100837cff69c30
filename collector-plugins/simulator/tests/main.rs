//! Integration tests of the simulator: the collector against a real pipeline channel, and
//! the Modbus device against a real tokio-modbus client over loopback.

mod collector;
mod modbus_device;
