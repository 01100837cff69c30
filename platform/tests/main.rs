//! fieldlink-platform's integration tests: the HTTP API, the ingest through a real MQTT
//! broker (in-process rumqttd; mosquitto, plain and TLS, for the `#[ignore]`d ones, run
//! by `.ci/run`),
//! and a city-scale simulation. Every test is bounded by a timeout.
//!
//! On SQLite by default; with `FIELDLINK_TEST_POSTGRES` set (an admin URL of a throwaway
//! server, `scripts/pg-test-server`) every platform of the suite runs on a fresh
//! PostgreSQL database instead, and the `#[ignore]`d `store::postgres_*` and
//! `shared_ingest` tests (two platform processes, one database) can run.

mod support;

mod alarms;
mod backlog;
mod broker_hook;
mod city;
mod enroll;
mod ingest;
mod monitoring;
mod mosquitto;
mod postgres_tls;
mod program;
mod registry;
mod roles;
mod secrets;
mod shared_ingest;
mod store;
mod tls;
mod ui;
