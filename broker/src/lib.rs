//! An in-process MQTT 3.1.1 broker (rumqttd 0.20) for the one-command demo, `cargo test`
//! and the platform's embedded default. CI and production use mosquitto or EMQX.
//!
//! [`Broker::start`] configures rumqttd as a plain-TCP MQTT 3.1.1 (protocol level 4)
//! server only, starts it on its own threads, and returns once it answers an MQTT CONNECT.
//! rumqttd logs through `tracing`; this crate installs no subscriber. rumqttd logs routine
//! events at `error` level (every client DISCONNECT shows up as `router-drop` or
//! `no-connection id N is already gone`), so binaries should filter it with
//! `rumqttd=off` (or `rumqttd=warn` at least) in their `EnvFilter`.
//!
//! What rumqttd 0.20 supports, checked in its source (`router/routing.rs`,
//! `server/broker.rs`, `protocol/v4/connect.rs`) and by this crate's tests:
//! - QoS 0 and 1 publishes, with PUBACK once the router has taken the message.
//! - Retained messages: stored per topic, delivered with the retain flag to a new
//!   subscription, cleared by an empty retained payload.
//! - Last will: read from the v4 CONNECT (topic, payload, QoS, retain flag), published
//!   (and retained if asked) as soon as the connection ends without DISCONNECT, discarded
//!   on DISCONNECT.
//! - Persistent sessions (clean session off): subscriptions are kept and QoS 1 messages
//!   published while the client is away are delivered when it comes back.
//!
//! Limitations of rumqttd that no setting removes:
//! - It cannot be stopped: its threads live until the process exits.
//! - It has no per-topic ACL (only passwords, which this crate does not configure): any
//!   client may connect under any username and publish to any topic, so gateways are not
//!   isolated from each other as with the platform's mosquitto ACL (`pattern write
//!   fieldlink/v1/%u/data` and so on).
//! - A subscriber has at most 100 unacknowledged QoS 1 messages in flight (a constant in
//!   rumqttd, whatever `max_inflight_count` says; that setting only sizes the batch of
//!   packets read from a connection at once).
//! - Retained messages are delivered only on the first SUBSCRIBE of a filter on a
//!   connection (re-subscribing sends none), and only as many as fit the subscriber's
//!   free outgoing slots, which rumqttd fixes at 100 for QoS 1: a QoS 1 subscription
//!   matching more than 100 retained topics (say `fieldlink/v1/+/status` with more than
//!   100 gateways) receives 100 of them and the rest are silently dropped.
//! - A zero-length publish clears the topic's retained message even without the retain
//!   flag.
//! - A session takeover leaves the new connection without a will. When a client
//!   reconnects with the same client id while the broker still holds its old connection
//!   (a half-open TCP connection after a network failure), rumqttd at once publishes
//!   the will it holds for that client id, which by then is the new connection's (MQTT
//!   asks for the old one's), and forgets it. If the new connection later drops without
//!   DISCONNECT, no will is published and a retained `online` status stays forever. The
//!   takeover's will can also race with the new connection's first publishes.
//! - A client that sends DISCONNECT and closes its socket at once can get another client
//!   dropped: rumqttd's router handles both the DISCONNECT and the close as disconnects
//!   of the same connection id, and connection ids are reused at once, so the second one
//!   can end the next connection (`no-connection id N` or a bare close for that client).
//!   Clients recover by reconnecting, as the agent and the platform's ingest do; a client
//!   that waits for the broker to close the connection after its DISCONNECT avoids it.
//! - Messages live in an in-memory log per subscription filter, its size the queue given to
//!   [`Broker::start_with_queue`] ([`DEFAULT_QUEUE_BYTES`] by [`Broker::start`]) in
//!   [`SEGMENT_COUNT`] segments; a subscriber that falls further behind than that loses
//!   the oldest messages even at QoS 1, after their publishers had their PUBACK. Sessions
//!   and retained messages are lost when the process exits.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

/// The largest publish payload accepted, in bytes (16 MiB).
pub const MAX_PAYLOAD_SIZE: usize = 16 * 1024 * 1024;

/// The most client connections held at once.
pub const MAX_CONNECTIONS: usize = 10_240;

/// Incoming packets read from one connection before they are handed to the router in one
/// go (rumqttd's "connection buffer").
pub const CONNECTION_BUFFER_PACKETS: usize = 1_000;

/// The default size of the in-memory message log kept per subscription filter (128 MiB):
/// how far, in message bytes, a subscriber may lag behind before it loses messages.
pub const DEFAULT_QUEUE_BYTES: usize = 128 * 1024 * 1024;

/// Segments of a subscription filter's log: the oldest segment is dropped as a whole when
/// a new one is needed, so a subscriber loses messages a segment at a time.
pub const SEGMENT_COUNT: usize = 8;

/// The smallest segment rumqttd accepts (it panics below 1 KiB).
const MIN_SEGMENT_SIZE: usize = 1024;

/// How long [`Broker::start`] waits for the broker to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The remaining length of a PUBLISH may exceed its payload by the topic (at most
/// 2 + 65535 bytes) and the packet id (2 bytes).
const MAX_PACKET_SIZE: usize = MAX_PAYLOAD_SIZE + 2 + 65_535 + 2;

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address cannot be bound (port in use, address not local, no
    /// permission): choose another address or stop what holds it.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason (in the message, so not repeated as a cause).
        error: io::Error,
    },
    /// A thread for the broker could not be created: the process is out of resources.
    #[error("cannot start the broker's thread: {0}")]
    Thread(io::Error),
    /// The broker's listener stopped while starting, usually because another process
    /// took the port in the instant between the check and the bind; rumqttd has logged
    /// the reason. Retry, or choose another port.
    #[error("the MQTT broker on {addr} stopped while starting (was the port taken?)")]
    Exited {
        /// The address it was to listen on.
        addr: SocketAddr,
    },
    /// The broker did not answer an MQTT CONNECT in time; the machine is overloaded or
    /// something else answers on the port.
    #[error("the MQTT broker on {addr} did not answer within {waited:?}")]
    NotReady {
        /// The address it listens on.
        addr: SocketAddr,
        /// How long it was given.
        waited: Duration,
    },
}

/// A running in-process MQTT 3.1.1 broker.
///
/// It runs on its own threads (rumqttd's router, its listener with a single-threaded
/// tokio runtime, and the thread that started them), independent of the caller's
/// runtime. It **cannot be stopped**: dropping this value does not stop it, and its
/// threads, port and memory are held until the process exits. Start one per process
/// (or one per test), not one per task.
#[derive(Debug, Clone)]
pub struct Broker {
    addr: SocketAddr,
}

impl Broker {
    /// Starts a broker listening on `listen` with the default queue
    /// ([`DEFAULT_QUEUE_BYTES`]); see [`Broker::start_with_queue`].
    pub fn start(listen: SocketAddr) -> Result<Broker, BrokerError> {
        Self::start_with_queue(listen, DEFAULT_QUEUE_BYTES)
    }

    /// Starts a broker listening on `listen` that keeps up to `queue_bytes` of messages for
    /// each subscription filter (at least [`SEGMENT_COUNT`] KiB), and waits (at most
    /// [`READY_TIMEOUT`]) until it answers an MQTT CONNECT. Port 0 picks a free port. This
    /// blocks the calling thread, usually for a few milliseconds.
    pub fn start_with_queue(listen: SocketAddr, queue_bytes: usize) -> Result<Broker, BrokerError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        // With port 0 another process may grab the picked port before rumqttd binds it;
        // then pick again.
        let attempts = if listen.port() == 0 { 3 } else { 1 };
        let mut failure = None;
        for _ in 0..attempts {
            let addr = reserve(listen)?;
            let thread = spawn(addr, queue_bytes)?;
            match wait_ready(addr, &thread, deadline) {
                Ok(()) => return Ok(Broker { addr }),
                Err(e @ BrokerError::Exited { .. }) => failure = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(failure.unwrap_or(BrokerError::Exited { addr: listen }))
    }

    /// The address the broker listens on, with the port it got.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL for clients on this host, e.g. `mqtt://127.0.0.1:1883` (loopback when the
    /// broker listens on all interfaces).
    pub fn url(&self) -> String {
        format!("mqtt://{}", connectable(self.addr))
    }
}

/// Checks that `listen` can be bound and returns it with the port filled in. The socket is
/// closed again at once because rumqttd binds by address.
fn reserve(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let bind_error = |error| BrokerError::Bind {
        addr: listen,
        error,
    };
    let listener = TcpListener::bind(listen).map_err(bind_error)?;
    listener.local_addr().map_err(bind_error)
}

/// Starts rumqttd on `addr`; the returned thread ends only if its listener fails.
fn spawn(addr: SocketAddr, queue_bytes: usize) -> Result<JoinHandle<()>, BrokerError> {
    let config = config(addr, queue_bytes);
    thread::Builder::new()
        .name(format!("mqtt-broker-{}", addr.port()))
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(%addr, error = %e, "in-process MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)
}

/// rumqttd's configuration: one plain-TCP v4 listener on `addr`, generous limits, and
/// `queue_bytes` of log per subscription filter.
fn config(addr: SocketAddr, queue_bytes: usize) -> Config {
    let connections = ConnectionSettings {
        // Time from TCP accept to the CONNECT packet.
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PACKET_SIZE,
        max_inflight_count: CONNECTION_BUFFER_PACKETS,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: format!("mqtt-v4-{}", addr.port()),
        listen: addr,
        tls: None,
        // No pause between accepts: the demo and tests connect many clients at once.
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: MAX_CONNECTIONS,
            max_outgoing_packet_count: 200,
            max_segment_size: (queue_bytes / SEGMENT_COUNT).max(MIN_SEGMENT_SIZE),
            max_segment_count: SEGMENT_COUNT,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("fieldlink".to_owned(), server)])),
        ..Config::default()
    }
}

/// Polls `addr` with an MQTT CONNECT until the broker answers, its thread ends, or the
/// deadline passes.
fn wait_ready(
    addr: SocketAddr,
    thread: &JoinHandle<()>,
    deadline: Instant,
) -> Result<(), BrokerError> {
    let target = connectable(addr);
    loop {
        if thread.is_finished() {
            return Err(BrokerError::Exited { addr });
        }
        if let Ok(true) = probe(target) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::NotReady {
                addr,
                waited: READY_TIMEOUT,
            });
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// One MQTT 3.1.1 CONNECT and CONNACK exchange: true if the broker accepted. A full
/// handshake (rather than a bare TCP connect) proves the router is up and keeps rumqttd
/// from logging a failed connection.
fn probe(addr: SocketAddr) -> io::Result<bool> {
    const CLIENT_ID: &[u8] = b"fieldlink-broker-probe";
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let client_id_len = CLIENT_ID.len() as u8;
    let mut connect = Vec::with_capacity(14 + CLIENT_ID.len());
    // Fixed header: CONNECT, remaining length.
    connect.extend_from_slice(&[0x10, 12 + client_id_len]);
    // Protocol name "MQTT", level 4 (3.1.1), flags: clean session, keep alive 10 s.
    connect.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0a]);
    // Payload: the client id.
    connect.extend_from_slice(&[0x00, client_id_len]);
    connect.extend_from_slice(CLIENT_ID);
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    // Closing without DISCONNECT is quieter: rumqttd logs a DISCONNECT followed by the
    // close as an error, a bare close at info level. The probe has no will to fire.
    Ok(connack[0] == 0x20 && connack[1] == 0x02 && connack[3] == 0x00)
}

/// `addr` with an unspecified IP replaced by the loopback address of its family.
fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_uses_loopback_for_unspecified_addresses() {
        let url = |addr: &str| {
            Broker {
                addr: addr.parse().unwrap(),
            }
            .url()
        };
        assert_eq!(url("0.0.0.0:1883"), "mqtt://127.0.0.1:1883");
        assert_eq!(url("[::]:1883"), "mqtt://[::1]:1883");
        assert_eq!(url("192.0.2.7:1884"), "mqtt://192.0.2.7:1884");
    }

    #[test]
    fn a_taken_port_is_a_bind_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(matches!(Broker::start(addr), Err(BrokerError::Bind { .. })));
    }
}
