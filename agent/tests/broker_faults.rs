//! A broker that misbehaves on the wire: it refuses the connection, drops it right after
//! CONNACK, or takes PUBLISHes and never acknowledges them. The agent keeps running,
//! reconnects with backoff, holds back no more than its in-flight window, deletes nothing
//! that was not acknowledged, and delivers everything once a real broker answers on the
//! same port.

use crate::faults::loopback;
use fieldlink_broker::Broker;
use fieldlink_testkit::mosquitto::free_port;
use fieldlink_testkit::{CountingDevice, Recorder, counted_values, counting_config, loss_report};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// The agent's in-flight window in these tests (`[publish] max_inflight`).
const MAX_INFLIGHT: u64 = 4;
/// PUBLISHes besides batches at the start of each session: the birth status and the meta.
const CONTROL_MESSAGES: u64 = 2;

/// What the fake broker does with each new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers CONNECT with a CONNACK carrying this refusal code, then closes.
    Refuse(u8),
    /// Accepts the CONNECT, then closes at once.
    DropAfterConnack,
    /// Accepts the CONNECT and every PUBLISH, and never sends a PUBACK (PINGREQs are
    /// answered, so the session stays up).
    NeverPuback,
    /// Passes the connection through to a real broker.
    Forward(SocketAddr),
}

/// A raw TCP server on a fixed port playing a misbehaving MQTT 3.1.1 broker until it is
/// told to forward to a real one. Switching closes every misbehaving connection.
struct FakeBroker {
    addr: SocketAddr,
    behaviour: watch::Sender<Behaviour>,
    /// Connections accepted while misbehaving.
    connections: Arc<AtomicU64>,
    /// PUBLISHes received on each misbehaving connection, in accept order.
    publishes: Arc<Mutex<Vec<u64>>>,
    task: JoinHandle<()>,
}

impl FakeBroker {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind(loopback()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (behaviour, behaviour_rx) = watch::channel(behaviour);
        let connections = Arc::new(AtomicU64::new(0));
        let publishes = Arc::new(Mutex::new(Vec::new()));
        let (counted, published) = (Arc::clone(&connections), Arc::clone(&publishes));
        // The connections live in a set owned by the accept loop: aborting the loop
        // aborts them all.
        let task = tokio::spawn(async move {
            let mut served = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let now = *behaviour_rx.borrow();
                if let Behaviour::Forward(upstream) = now {
                    served.spawn(forward(stream, upstream));
                    continue;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let slot = {
                    let mut all = published.lock().expect("publishes");
                    all.push(0);
                    all.len() - 1
                };
                let mut changed = behaviour_rx.clone();
                let published = Arc::clone(&published);
                served.spawn(async move {
                    tokio::select! {
                        _ = misbehave(stream, now, &published, slot) => {}
                        _ = changed.changed() => {}
                    }
                });
                while served.try_join_next().is_some() {}
            }
        });
        FakeBroker {
            addr,
            behaviour,
            connections,
            publishes,
            task,
        }
    }

    /// Closes the misbehaving connections and passes new ones through to `broker`.
    fn forward_to(&self, broker: SocketAddr) {
        self.behaviour.send_replace(Behaviour::Forward(broker));
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// PUBLISHes received on each misbehaving connection.
    fn publishes(&self) -> Vec<u64> {
        self.publishes.lock().expect("publishes").clone()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// One MQTT control packet: its first byte and its body.
async fn read_packet(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let first = stream.read_u8().await?;
    let mut length = 0usize;
    for shift in [0, 7, 14, 21] {
        let byte = stream.read_u8().await?;
        length |= usize::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await?;
            return Ok((first, body));
        }
    }
    Err(std::io::Error::other("remaining length over 4 bytes"))
}

async fn misbehave(
    mut stream: TcpStream,
    behaviour: Behaviour,
    publishes: &Mutex<Vec<u64>>,
    slot: usize,
) -> std::io::Result<()> {
    let (first, _) = read_packet(&mut stream).await?;
    assert_eq!(first >> 4, 1, "the first packet is a CONNECT");
    match behaviour {
        Behaviour::Refuse(code) => {
            stream.write_all(&[0x20, 2, 0, code]).await?;
            Ok(())
        }
        Behaviour::DropAfterConnack => {
            stream.write_all(&[0x20, 2, 0, 0]).await?;
            Ok(())
        }
        Behaviour::NeverPuback => {
            stream.write_all(&[0x20, 2, 0, 0]).await?;
            loop {
                let (first, _) = read_packet(&mut stream).await?;
                match first >> 4 {
                    3 => publishes.lock().expect("publishes")[slot] += 1,
                    12 => stream.write_all(&[0xD0, 0]).await?,
                    14 => return Ok(()),
                    _ => {}
                }
            }
        }
        Behaviour::Forward(_) => unreachable!("forwarded connections do not misbehave"),
    }
}

/// An agent running in this process against `broker`, reading a [`CountingDevice`].
struct RunningAgent {
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), fieldlink::RunError>>>,
    status_port: u16,
    _state: tempfile::TempDir,
}

impl RunningAgent {
    fn start(gateway: &str, device: SocketAddr, broker: SocketAddr) -> Self {
        let state = tempfile::tempdir().expect("tempdir");
        let status_port = free_port();
        let toml = counting_config(gateway, device, broker, "20ms").replace(
            "[publish]\n",
            &format!("[publish]\nmax_inflight = {MAX_INFLIGHT}\n"),
        );
        let toml = format!("{toml}\n[status]\nlisten = \"127.0.0.1:{status_port}\"\n");
        let mut config =
            fieldlink::config::parse(&toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        config.gateway.state_dir = state.path().to_owned();
        let stop = CancellationToken::new();
        let task = tokio::spawn(fieldlink::run(config, stop.clone()));
        RunningAgent {
            stop,
            task: Some(task),
            status_port,
            _state: state,
        }
    }

    /// The agent's `/status`, once its endpoint answers.
    async fn status(&self) -> serde_json::Value {
        for _ in 0..100 {
            if let Some(body) = get(self.status_port, "/status").await {
                return serde_json::from_str(&body).expect("status JSON");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no /status on port {}", self.status_port);
    }

    /// Stops the agent; it must exit cleanly within 30 s.
    async fn stop(mut self) {
        self.stop.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the agent stops within 30 s")
            .expect("the agent does not panic")
            .expect("the agent runs");
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A plain HTTP/1.0 GET's body.
async fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}

/// Puts the real broker behind the fake one's port and checks that every read the device
/// answered is delivered, then stops everything.
async fn real_broker_gets_everything(
    fake: FakeBroker,
    broker: &Broker,
    recorder: Recorder,
    device: CountingDevice,
    agent: RunningAgent,
) {
    let served_before = device.served();
    assert!(served_before > 0, "the device was read meanwhile");
    fake.forward_to(broker.addr());
    assert!(
        recorder
            .wait_for(Duration::from_secs(30), |m| counted_values(m)
                .0
                .contains(&served_before))
            .await,
        "what was buffered was not delivered once the broker answered"
    );
    agent.stop().await;
    let served = device.stop().await;
    recorder
        .wait_for(Duration::from_secs(5), |m| {
            counted_values(m).0.len() as u64 + 1 >= served
        })
        .await;
    let (values, _) = counted_values(&recorder.messages());
    let (missing, _) = loss_report(&values, served);
    assert!(
        missing.is_empty(),
        "{} of {served} samples lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_with_backoff_and_nothing_is_lost() {
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-refused/#").await;
    let device = CountingDevice::start(loopback()).await;
    // 5: not authorized.
    let fake = FakeBroker::start(Behaviour::Refuse(5)).await;
    let agent = RunningAgent::start("gw-refused", device.addr(), fake.addr);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = fake.connections();
    // 250 ms doubling, each delay half to all of its step: at most 6 attempts in 4 s.
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} connection attempts in 4 s"
    );
    let status = agent.status().await;
    assert_eq!(status["mqtt"]["connected"], false);
    assert_eq!(status["mqtt"]["published_batches"], 0);
    assert!(
        status["outbox"]["batches"].as_u64() > Some(0),
        "the outbox keeps what could not be sent: {status}"
    );
    real_broker_gets_everything(fake, &broker, recorder, device, agent).await;
}

// Regression: the backoff was reset at every CONNACK, so a broker that accepts and then
// drops every connection (a duplicate client id, an overloaded broker) was reconnected to
// four times a second forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_connack_is_retried_with_growing_backoff() {
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-dropped/#").await;
    let device = CountingDevice::start(loopback()).await;
    let fake = FakeBroker::start(Behaviour::DropAfterConnack).await;
    let agent = RunningAgent::start("gw-dropped", device.addr(), fake.addr);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = fake.connections();
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} connections in 4 s: the backoff does not grow"
    );
    let status = agent.status().await;
    assert_eq!(status["mqtt"]["published_batches"], 0);
    assert!(status["mqtt"]["reconnects"].as_u64() >= Some(2), "{status}");
    assert!(status["outbox"]["batches"].as_u64() > Some(0), "{status}");
    real_broker_gets_everything(fake, &broker, recorder, device, agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_acknowledges_gets_one_window_and_nothing_is_deleted() {
    let broker = Broker::start(loopback()).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-noack/#").await;
    let device = CountingDevice::start(loopback()).await;
    let fake = FakeBroker::start(Behaviour::NeverPuback).await;
    let agent = RunningAgent::start("gw-noack", device.addr(), fake.addr);

    // Batches come every 100 ms or so: after 2 s there are far more than a window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = agent.status().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = agent.status().await;
    assert_eq!(fake.connections(), 1, "the session is kept while it is up");
    let window = MAX_INFLIGHT + CONTROL_MESSAGES;
    let sent = fake.publishes();
    assert!(
        sent[0] >= MAX_INFLIGHT && sent[0] <= window,
        "{} PUBLISHes without a PUBACK, the window is {window}",
        sent[0]
    );
    for status in [&first, &second] {
        assert_eq!(status["mqtt"]["connected"], true, "{status}");
        assert_eq!(status["mqtt"]["published_batches"], 0, "{status}");
        assert!(
            status["mqtt"]["in_flight"].as_u64() <= Some(MAX_INFLIGHT),
            "{status}"
        );
    }
    let (before, after) = (
        first["outbox"]["batches"].as_u64().unwrap_or(0),
        second["outbox"]["batches"].as_u64().unwrap_or(0),
    );
    assert!(
        after > before && before > MAX_INFLIGHT,
        "the outbox keeps every unacknowledged batch: {before} then {after}"
    );
    real_broker_gets_everything(fake, &broker, recorder, device, agent).await;
}
