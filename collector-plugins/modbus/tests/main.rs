//! Integration tests of the Modbus TCP collector against a real tokio-modbus server on
//! loopback. One test binary with modules, to keep link time down.

mod support;

mod connection;
mod failures;
mod schedule;
mod values;
