//! fieldlink-platform: the receiving end of fieldlink. It knows which enterprise each
//! gateway belongs to, receives the gateways' batches over MQTT, stores them, and counts
//! the enterprises on the cloud for the city's industry bureau.
//!
//! Parts, in the data's path:
//! - [`registry`]: enterprises (credit code checked by [`credit_code`], industry and
//!   district from [`catalog`]), enrollment tokens, gateway enrollment; [`mosquitto`]
//!   keeps an external mosquitto's password and ACL files in step;
//! - [`broker_hook`]: the same rules over HTTP for a clustered broker (EMQX's HTTP
//!   authentication and authorization);
//! - [`ingest`]: the MQTT subscriber (persistent session, manual acknowledgements after
//!   the database commit, duplicates dropped by `(gateway, seq)`, gaps recorded), over
//!   TLS to an `mqtts://` broker with [`tls`];
//! - [`store`]: the one storage interface (SQLite in WAL mode, or PostgreSQL for several
//!   instances);
//! - [`stats`]: the onboarding counts; [`program`]: every target of the plan with its
//!   progress; [`monitoring`]: the industry monitoring from the figures the ingest keeps;
//!   [`filter`]: lists of enterprises by the plan's classes; [`accounts`]: the web UI's
//!   users and sessions;
//! - [`alarms`]: alarm notifications, with [`alarms::channel`] sending them to webhooks
//!   and the WeCom, DingTalk and Feishu group robots;
//! - [`http`]: what every HTTP handler shares (state, errors, who is asking, views), with
//!   [`api`] (the HTTP API), [`ui`] (the web UI: the bureau's dashboard, each enterprise's
//!   pages) and [`broker_hook`] over it;
//! - [`server`]: the wiring; [`Platform`] starts it all, [`run`] runs it until the
//!   shutdown token fires.
//!
//! Layers, each using only those before it: the leaves (`catalog`, `credit_code`, `clock`,
//! `secret`, `config`, `tls`, `limiter`) → `store` → the domain (`registry`, `mosquitto`,
//! `stats`, `program`, `monitoring`, `filter`, `accounts`, `broker_acl`) → `ingest` and `gap_watch`, and `http` with `api`, `ui` and
//! `broker_hook` over it → `server`.
//!
//! Invariants: secrets (enrollment tokens, MQTT passwords, the bureau token) are stored
//! only as hashes and never logged; a batch is acknowledged to the broker only after the
//! transaction that stores it commits; the platform never depends on the agent crate,
//! only on the wire contract.

pub use fieldlink_platform_core::{catalog, clock, credit_code, profile, role, secret, tls};
pub use fieldlink_platform_store as store;

pub mod accounts;
pub mod alarms;
pub mod api;
pub mod broker_acl;
pub mod broker_hook;
pub mod cli;
pub mod config;
pub mod evidence;
pub mod filter;
pub mod fleet;
pub mod gap_watch;
pub mod gateway_config;
pub mod http;
pub mod ingest;
pub mod limiter;
pub mod monitoring;
pub mod mosquitto;
pub mod program;
pub mod ranking;
pub mod registry;
pub mod scope;
pub mod server;
pub mod stats;
pub mod ui;

pub use config::{
    BrokerConfig, Database, MosquittoFiles, MqttUrl, PlatformConfig, Reload, Targets,
};
pub use ingest::IngestStats;
pub use registry::Registry;
pub use server::{Platform, PlatformError, run};
