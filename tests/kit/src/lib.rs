//! Test peers for fieldlink's tests: real peers on loopback, never mocks. This crate
//! does not depend on the agent, so the agent's own tests can use it too.
//!
//! - [`Recorder`]: a real MQTT subscriber that keeps every message it receives;
//! - [`LinkCutter`]: a TCP proxy between the agent and a real broker that can cut the
//!   link and refuse connections, the way a broker outage or a dead uplink looks from the
//!   gateway;
//! - [`CountingDevice`]: a Modbus device whose every answered read is a distinct value;
//! - [`mosquitto`]: a real mosquitto per test and a throwaway CA (CI-only interop tests);
//! - [`postgres`]: a fresh PostgreSQL database per test on the server named by
//!   `FIELDLINK_TEST_POSTGRES`;
//! - [`LogCapture`]: the log lines a test's code writes;
//! - [`platform_client`] (feature `platform`): a typed client of the platform's HTTP API,
//!   with the platform's own request and answer types;
//! - [`webhook`] (feature `platform`): a receiver of the platform's alarm webhooks.

mod log_capture;
pub mod mosquitto;
#[cfg(feature = "platform")]
pub mod platform_client;
pub mod postgres;
#[cfg(feature = "platform")]
pub mod webhook;

pub use log_capture::LogCapture;
#[cfg(feature = "platform")]
pub use platform_client::{ClientError, PlatformClient};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A message as the recorder received it.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The retain flag as delivered.
    pub retain: bool,
    /// When it arrived, ms since the epoch.
    pub received_ms: i64,
}

/// A real MQTT subscriber that records everything published under a filter.
pub struct Recorder {
    messages: Arc<Mutex<Vec<Message>>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Connects to `broker` and subscribes to `filter`; returns once the subscription is
    /// acknowledged (bounded to 10 s).
    pub async fn start(broker: SocketAddr, filter: &str) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "recorder-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, broker.ip().to_string(), broker.port());
        options
            .set_max_packet_size(64 << 20, 1 << 20)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 64);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let subscribed = Arc::new(AtomicBool::new(false));
        let task = {
            let (messages, stop, subscribed, filter) = (
                messages.clone(),
                stop.clone(),
                subscribed.clone(),
                filter.to_owned(),
            );
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        e = events.poll() => e,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subscribed.store(true, Ordering::SeqCst)
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            if let Ok(mut m) = messages.lock() {
                                m.push(Message {
                                    topic: p.topic.clone(),
                                    payload: p.payload.to_vec(),
                                    retain: p.retain,
                                    received_ms: now_ms(),
                                });
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        let recorder = Recorder {
            messages,
            stop,
            task: Some(task),
        };
        wait_until(Duration::from_secs(10), || {
            subscribed.load(Ordering::SeqCst)
        })
        .await;
        assert!(
            subscribed.load(Ordering::SeqCst),
            "the recorder could not subscribe to {broker}"
        );
        recorder
    }

    /// Everything received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The messages received on topics ending with `suffix`.
    pub fn on(&self, suffix: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.ends_with(suffix))
            .collect()
    }

    /// Waits (bounded) until `done` holds for the messages received; returns whether it did.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[Message]) -> bool) -> bool {
        let messages = self.messages.clone();
        wait_until(limit, move || {
            messages.lock().map(|m| done(&m)).unwrap_or(false)
        })
        .await
    }

    /// Disconnects and stops the recorder's task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `done` every 20 ms until it holds or `limit` passes; returns its last answer.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of a real server whose link can be cut and restored.
pub struct LinkCutter {
    addr: SocketAddr,
    up: Arc<tokio::sync::watch::Sender<bool>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    connections: Arc<AtomicU64>,
}

impl LinkCutter {
    /// Listens on a loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the link cutter");
        let addr = listener.local_addr().expect("link cutter address");
        let (up, _) = tokio::sync::watch::channel(true);
        let up = Arc::new(up);
        let stop = CancellationToken::new();
        let connections = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(proxy(
            listener,
            upstream,
            up.clone(),
            stop.clone(),
            connections.clone(),
        ));
        LinkCutter {
            addr,
            up,
            stop,
            task: Some(task),
            connections,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted while the link was up.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Closes every connection and refuses new ones until [`LinkCutter::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Stops the proxy and closes its connections.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LinkCutter {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn proxy(
    listener: TcpListener,
    upstream: SocketAddr,
    up: Arc<tokio::sync::watch::Sender<bool>>,
    stop: CancellationToken,
    connections: Arc<AtomicU64>,
) {
    let mut links = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((mut client, _)) = accepted else {
            continue;
        };
        if !*up.borrow() {
            let _ = client.shutdown().await;
            continue;
        }
        connections.fetch_add(1, Ordering::SeqCst);
        let mut up_rx = up.subscribe();
        let stop = stop.clone();
        links.spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = up_rx.wait_for(|up| !*up) => {}
                () = stop.cancelled() => {}
            }
        });
        while links.try_join_next().is_some() {}
    }
    links.shutdown().await;
}

/// A real Modbus TCP device whose holding registers 0-1 hold, as a big-endian u32, how
/// many reads it has answered (1 for the first). Every answered read is thus a distinct
/// value: a delivered set `1..=served` with no gap proves that nothing was lost.
pub struct CountingDevice {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

struct CountingService {
    served: Arc<AtomicU64>,
}

impl tokio_modbus::server::Service for CountingService {
    type Request = tokio_modbus::Request<'static>;
    type Response = tokio_modbus::Response;
    type Exception = tokio_modbus::ExceptionCode;
    type Future = std::future::Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        std::future::ready(match request {
            tokio_modbus::Request::ReadHoldingRegisters(0, 2) => {
                let n = self.served.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(tokio_modbus::Response::ReadHoldingRegisters(vec![
                    (n >> 16) as u16,
                    n as u16,
                ]))
            }
            _ => Err(tokio_modbus::ExceptionCode::IllegalDataAddress),
        })
    }
}

impl CountingDevice {
    /// Serves on `addr` (port 0 for any free port).
    pub async fn start(addr: SocketAddr) -> Self {
        Self::start_counting_from(addr, Arc::new(AtomicU64::new(0))).await
    }

    async fn start_counting_from(addr: SocketAddr, served: Arc<AtomicU64>) -> Self {
        let listener = bind_retrying(addr).await;
        let addr = listener.local_addr().expect("device address");
        let stop = CancellationToken::new();
        let service = Arc::new(CountingService {
            served: served.clone(),
        });
        let connections = Arc::new(AtomicU64::new(0));
        let task = {
            let (stop, connections) = (stop.clone(), connections.clone());
            tokio::spawn(async move {
                let server = tokio_modbus::server::tcp::Server::new(listener);
                let on_connected = |stream: TcpStream, _peer: SocketAddr| {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let service = service.clone();
                    async move { std::io::Result::Ok(Some((service, stream))) }
                };
                tokio::select! {
                    _ = server.serve(&on_connected, |_err| {}) => {}
                    () = stop.cancelled() => {}
                }
            })
        };
        CountingDevice {
            addr,
            served,
            connections,
            stop,
            task: Some(task),
        }
    }

    /// Where the device listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted since this incarnation started.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Reads answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops the device: the port closes and its connections drop.
    pub async fn stop(mut self) -> u64 {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.served()
    }

    /// Stops the device and starts it again on the same port, keeping its count.
    pub async fn restart(self, down_for: Duration) -> Self {
        let (addr, served) = (self.addr, self.served.clone());
        self.stop().await;
        tokio::time::sleep(down_for).await;
        Self::start_counting_from(addr, served).await
    }
}

impl Drop for CountingDevice {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `addr`, retrying for a few seconds while the port is still in use.
async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("cannot bind {addr}");
}

/// An agent config reading one [`CountingDevice`] every `poll`.
pub fn counting_config(
    gateway: &str,
    device: SocketAddr,
    broker: SocketAddr,
    poll: &str,
) -> String {
    format!(
        r#"
[gateway]
id = "{gateway}"

[platform]
mqtt = "mqtt://{broker}"

[publish]
batch_max_samples = 50
batch_max_delay = "100ms"
shutdown_timeout = "20s"

[buffer]
flush_interval = "200ms"

[[device]]
name = "counter"
protocol = "modbus-tcp"
address = "{device}"
poll = "{poll}"
timeout = "500ms"

[[device.point]]
name = "reads"
address = 0
type = "u32"
"#
    )
}

/// What the counting device's samples in `messages` show: the good values delivered
/// (with repeats), and how many samples were bad.
pub fn counted_values(messages: &[Message]) -> (Vec<u64>, usize) {
    let mut values = Vec::new();
    let mut bad = 0;
    for m in messages.iter().filter(|m| m.topic.ends_with("/data")) {
        let batch = fieldlink_wire::decode_batch(&m.payload).expect("a valid batch");
        for s in batch.samples {
            match s.value {
                fieldlink_wire::Value::Int(v) => values.push(v as u64),
                _ => bad += 1,
            }
        }
    }
    (values, bad)
}

/// The longest time from a sample's read (`ts`) to its batch's arrival at the recorder, in
/// ms, over every data message: what an outage or a restart delays delivery by.
pub fn max_delivery_delay_ms(messages: &[Message]) -> i64 {
    messages
        .iter()
        .filter(|m| m.topic.ends_with("/data"))
        .filter_map(|m| {
            let batch = fieldlink_wire::decode_batch(&m.payload).ok()?;
            batch.samples.iter().map(|s| m.received_ms - s.ts).max()
        })
        .max()
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Missing and duplicate counts of `values` against `1..=served`. The last read may be
/// answered by the device while the agent's collector is being cancelled, so a missing
/// `served` alone is not counted as a loss.
pub fn loss_report(values: &[u64], served: u64) -> (Vec<u64>, usize) {
    let unique: std::collections::BTreeSet<u64> = values.iter().copied().collect();
    let missing = (1..served).filter(|v| !unique.contains(v)).collect();
    (missing, values.len() - unique.len())
}
