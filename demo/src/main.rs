//! `cargo run -p fieldlink-demo`: fieldlink end to end with nothing installed.
//!
//! Starts a simulated press on a loopback Modbus TCP port, an in-process MQTT broker, and
//! the agent with `config/demo.toml` pointed at both; then subscribes to the gateway's
//! topics and prints a line per batch (how many samples, which seq, a few latest values)
//! until Ctrl-C, or for `--seconds N`.

use anyhow::Context;
use fieldlink::config::DeviceKind;
use fieldlink_broker::Broker;
use fieldlink_simulator::modbus_device;
use fieldlink_wire::{Batch, Value, decode_batch};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The demo's settings from the command line.
struct Args {
    config: PathBuf,
    seconds: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        config: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml")),
        seconds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => args.config = it.next().context("--config needs a file")?.into(),
            "--seconds" => {
                args.seconds = Some(
                    it.next()
                        .context("--seconds needs a number")?
                        .parse()
                        .context("--seconds needs a number")?,
                )
            }
            "-h" | "--help" => {
                println!(
                    "fieldlink-demo [--config FILE] [--seconds N]: simulated device + in-process broker + agent"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIELDLINK_LOG")
                .unwrap_or_else(|_| "info,rumqttd=off".into()),
        )
        .init();

    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("cannot start the in-process broker")?;
    let device_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulated device")?;
    let device_addr = device_listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let device = tokio::spawn(modbus_device::serve(
        device_listener,
        modbus_device::demo_register_map(),
        shutdown.child_token(),
    ));

    let mut config = fieldlink::config::load(&args.config)?;
    config.platform.mqtt =
        fieldlink::config::parse_mqtt_url(&broker.url()).map_err(anyhow::Error::msg)?;
    for d in &mut config.devices {
        if let DeviceKind::ModbusTcp(tcp) = &mut d.kind {
            tcp.address = device_addr.to_string();
        }
    }
    let gateway = config
        .gateway
        .id
        .clone()
        .context("config/demo.toml must set [gateway] id")?;
    println!("fieldlink demo");
    println!("  simulated Modbus TCP device  {device_addr}");
    println!("  in-process MQTT broker       {}", broker.url());
    println!(
        "  agent state                  {}",
        config.gateway.state_dir.display()
    );
    println!(
        "  watch it with: mosquitto_sub -h 127.0.0.1 -p {} -t 'fieldlink/v1/#' -v",
        broker.addr().port()
    );
    println!("Ctrl-C stops it.\n");

    let watcher = tokio::spawn(watch(broker.addr(), gateway, shutdown.child_token()));
    let agent = tokio::spawn(fieldlink::run(config, shutdown.child_token()));
    match args.seconds {
        Some(s) => tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(s)) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    shutdown.cancel();
    agent.await.context("the agent task failed")??;
    let batches = watcher.await.context("the watcher failed")?;
    device.await.context("the device task failed")??;
    println!("\ndemo stopped after {batches} batches");
    anyhow::ensure!(batches > 0, "no batch arrived at the broker");
    Ok(())
}

/// Subscribes to the gateway's topics and prints what arrives; returns the batch count.
async fn watch(broker: SocketAddr, gateway: String, shutdown: CancellationToken) -> u64 {
    let mut options = MqttOptions::new(
        "fieldlink-demo-watch",
        broker.ip().to_string(),
        broker.port(),
    );
    options.set_max_packet_size(64 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 16);
    let mut batches = 0;
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => {
                // Give the agent's final batches a moment to arrive.
                match tokio::time::timeout(Duration::from_millis(500), events.poll()).await {
                    Ok(e) => e,
                    Err(_) => return batches,
                }
            }
            e = events.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client
                    .subscribe(format!("fieldlink/v1/{gateway}/#"), QoS::AtLeastOnce)
                    .await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/data") => {
                match decode_batch(&p.payload) {
                    Ok(batch) => {
                        batches += 1;
                        print_batch(&batch, &mut latest);
                    }
                    Err(e) => println!("undecodable batch: {e}"),
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                println!("{} {}", p.topic, String::from_utf8_lossy(&p.payload));
            }
            Ok(_) => {}
            Err(_) => {
                if shutdown.is_cancelled() {
                    return batches;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn print_batch(batch: &Batch, latest: &mut BTreeMap<String, String>) {
    let bad = batch
        .samples
        .iter()
        .filter(|s| s.quality.as_str() != "good")
        .count();
    for s in &batch.samples {
        let value = match &s.value {
            Value::Float(f) => format!("{f:.2}"),
            Value::Text(t) => format!("{t:?}"),
            Value::None => "—".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
        };
        latest.insert(format!("{}/{}", s.device, s.point), value);
    }
    let shown: Vec<String> = latest
        .iter()
        .take(6)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "batch seq={:<5} samples={:<4} bad={bad}  {}",
        batch.seq,
        batch.samples.len(),
        shown.join(" ")
    );
}
