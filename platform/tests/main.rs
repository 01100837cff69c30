//! fieldlink-platform's integration tests: the HTTP API, the ingest through a real MQTT
//! broker (in-process rumqttd; mosquitto, plain and TLS, for the `#[ignore]`d ones, run
//! by `.ci/run`),
//! and a city-scale simulation. Every test is bounded by a timeout.

mod support;

mod city;
mod enroll;
mod ingest;
mod mosquitto;
mod registry;
mod tls;
mod ui;
