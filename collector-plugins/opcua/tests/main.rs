//! Integration tests of the OPC UA collector against a real, in-process async-opcua server
//! on loopback (`fieldlink_opcua::testing`), never a mock of one.

mod bad_values;
mod resilience;
mod security;
mod subscription;
mod support;
