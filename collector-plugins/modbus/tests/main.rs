//! Integration tests of the Modbus collectors against real tokio-modbus servers on
//! loopback (TCP, RTU over TCP, RTU and ASCII on a pseudo-terminal). One test binary with modules, to keep link time down.

mod support;

mod ascii;
mod connection;
mod failure_log;
mod failures;
mod malformed;
mod rtu;
mod schedule;
mod values;
