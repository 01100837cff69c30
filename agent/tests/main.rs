//! Integration tests of the agent library (config and check); end-to-end tests against
//! real peers live in the workspace's `tests/` crate.

mod broker_faults;
mod check;
mod config;
mod delivery;
mod faults;
mod http_client;
mod modbus;
mod plugins;
mod points;
mod probe;
mod remote_config;
mod service;
mod status;
