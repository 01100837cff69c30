//! `fieldlink-bench SCENARIO`: the benchmark harness. Build it and the agent in release mode
//! (`cargo build --release -p fieldlink -p fieldlink-bench`), then run
//! `target/release/fieldlink-bench SCENARIO`; each scenario prints one summary line of
//! figures, measured, never asserted. Scenarios that run the agent start
//! `target/release/fieldlink` as a child process, so that its CPU time and memory are read
//! apart from the broker's and the subscriber's; city-load likewise starts
//! `target/release/fieldlink-platform`, built in a command of its own
//! (`cargo build --release -p fieldlink-platform`: built with the bench, which links the
//! platform's library, it would get the features the bench asks of their shared
//! dependencies). This machine is shared and noisy: run a scenario several times and quote
//! the median (`--runs N` does it for you).

mod agent;
mod alarm_latency;
mod backlog;
mod broker;
mod child;
mod city;
mod city_load;
mod config_push;
mod database;
mod fleet;
mod footprint;
mod ingest;
mod measure;
mod modbus_1s;
mod modbus_scale;
mod monitoring;
mod opcua;
mod outbox;
mod overload;
mod pipeline;
mod plc_scale;
mod program;
mod subscriber;
mod system;
mod wire;

use clap::{Parser, Subcommand};

/// fieldlink's benchmarks.
#[derive(Parser)]
struct Cli {
    /// Runs of the scenario; the summary reports each run and the median.
    #[arg(long, default_value_t = 1, global = true)]
    runs: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Outbox append-and-ack throughput with 1,000-sample batches.
    Outbox(outbox::Args),
    /// Simulator at full rate → agent → outbox → QoS 1 → broker → counting subscriber.
    Pipeline(pipeline::Args),
    /// 1,000 Modbus TCP devices x 100 holding registers every second.
    ModbusScale(modbus_scale::Args),
    /// 10 pymodbus devices x 100 registers every 1 s: CPU, RSS and bytes per point vs Node-RED.
    #[command(name = "modbus-1s")]
    Modbus1s(modbus_1s::Args),
    /// 1,000 S7 or MC PLCs (the simulator's) x 100 words every second.
    PlcScale(plc_scale::Args),
    /// Broker unreachable for 60 s at a fixed live rate, then back: the drain.
    Backlog(backlog::Args),
    /// Bytes per sample on the wire at 1 s polling: JSON, zstd-framed JSON and packed.
    Wire(wire::Args),
    /// Binary size and resident memory with 10 and 10,000 points.
    Footprint(footprint::Args),
    /// The platform's ingest: batches from 100 gateways stored in SQLite or PostgreSQL.
    Ingest(ingest::Args),
    /// An alarm's webhook: from the sample's publication to the receiver, p50 and p99.
    AlarmLatency(alarm_latency::Args),
    /// A config PUT through the API to the new device's first sample on the platform.
    ConfigPush(config_push::Args),
    /// The fleet's page of 2,000 gateways (`GET /api/v1/gateways`) on SQLite.
    Fleet(fleet::Args),
    /// The industry monitoring of 4,000 enterprises x 30 days over HTTP, SQLite and PostgreSQL.
    Monitoring(monitoring::Args),
    /// 10,000 OPC UA monitored items changing every second, from the in-process server.
    Opcua(opcua::Args),
    /// N gateways at a fixed rate → mosquitto → K platform instances → PostgreSQL.
    CityLoad(city_load::Args),
    /// N enrolled agents → the embedded platform storing 1/1.5 of it: puback against platform_ack.
    Overload(overload::Args),
    /// The plan's targets of the simulated city (4,000 enterprises): its figures and
    /// `GET /api/v1/stats/program`'s time.
    Program(program::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut figures = Vec::new();
    for run in 1..=cli.runs.max(1) {
        let result = runtime.block_on(async {
            match &cli.scenario {
                Scenario::Outbox(args) => outbox::run(args).await,
                Scenario::Pipeline(args) => pipeline::run(args).await,
                Scenario::ModbusScale(args) => modbus_scale::run(args).await,
                Scenario::Modbus1s(args) => modbus_1s::run(args).await,
                Scenario::PlcScale(args) => plc_scale::run(args).await,
                Scenario::Backlog(args) => backlog::run(args).await,
                Scenario::Wire(args) => wire::run(args).await,
                Scenario::Footprint(args) => footprint::run(args).await,
                Scenario::Ingest(args) => ingest::run(args).await,
                Scenario::Fleet(args) => fleet::run(args).await,
                Scenario::Monitoring(args) => monitoring::run(args).await,
                Scenario::ConfigPush(args) => config_push::run(args).await,
                Scenario::AlarmLatency(args) => alarm_latency::run(args).await,
                Scenario::Opcua(args) => opcua::run(args).await,
                Scenario::CityLoad(args) => city_load::run(args).await,
                Scenario::Overload(args) => overload::run(args).await,
                Scenario::Program(args) => program::run(args).await,
            }
        })?;
        println!("run {run}: {}", result.line());
        figures.push(result);
    }
    if figures.len() > 1 {
        println!("median: {}", measure::Summary::median(&figures).line());
    }
    Ok(())
}
