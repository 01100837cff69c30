//! A hostile Modbus TCP server: broken MBAP answers (wrong transaction or unit id, cut
//! short, a huge length, closed mid-frame, an exception, a byte count that disagrees with
//! the quantity asked) alternate with good ones. Each broken answer yields a `bad` sample
//! within the timeout, and the next good answer is read as good again, over the same
//! connection or a new one.

use crate::support::*;
use fieldlink_wire::{Quality, Sample, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The value every good answer carries.
const GOOD: u16 = 42;
/// The most a flood may write before the server gives up on the client ever stopping it.
const FLOOD_CAP: usize = 64 << 20;

/// What the hostile server does with one request.
enum Reply {
    /// Writes these bytes and waits for the next request.
    Send(Vec<u8>),
    /// Writes these bytes and closes the connection.
    SendAndClose(Vec<u8>),
    /// Writes these bytes, then garbage for as long as the client reads (up to
    /// [`FLOOD_CAP`]).
    SendAndFlood(Vec<u8>),
}

/// A raw listener answering each 12-byte read request with what `script` makes of the
/// request's number (counted across connections, from 0) and its bytes.
struct HostileServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Bytes written by floods, over all connections.
    flooded: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HostileServer {
    async fn start(script: impl Fn(usize, &[u8]) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind(any_port()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let flooded = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (counted, numbered, flood) = (
            Arc::clone(&connections),
            Arc::clone(&requests),
            Arc::clone(&flooded),
        );
        // The connections live in a set owned by the accept loop: aborting the loop
        // aborts them all.
        let task = tokio::spawn(async move {
            let mut served = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                served.spawn(serve(
                    stream,
                    Arc::clone(&script),
                    Arc::clone(&numbered),
                    Arc::clone(&flood),
                ));
            }
        });
        HostileServer {
            addr,
            connections,
            requests,
            flooded,
            task,
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<impl Fn(usize, &[u8]) -> Reply>,
    requests: Arc<AtomicUsize>,
    flooded: Arc<AtomicUsize>,
) {
    let mut request = [0u8; 12];
    while stream.read_exact(&mut request).await.is_ok() {
        let n = requests.fetch_add(1, Ordering::SeqCst);
        match script(n, &request) {
            Reply::Send(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
            Reply::SendAndFlood(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
                let garbage = [0x03u8; 8192];
                while flooded.load(Ordering::SeqCst) < FLOOD_CAP {
                    match stream.write(&garbage).await {
                        Ok(n) if n > 0 => flooded.fetch_add(n, Ordering::SeqCst),
                        _ => return,
                    };
                }
                return;
            }
        }
    }
}

/// An MBAP frame answering `request` (same transaction id, unit and protocol) with `pdu`.
fn answer(request: &[u8], pdu: &[u8]) -> Vec<u8> {
    let mut bytes = request[..4].to_vec();
    let length = u16::try_from(pdu.len() + 1).expect("short pdu");
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.push(request[6]);
    bytes.extend_from_slice(pdu);
    bytes
}

/// The good answer to a read of one holding register.
fn good(request: &[u8]) -> Vec<u8> {
    let [hi, lo] = GOOD.to_be_bytes();
    answer(request, &[0x03, 2, hi, lo])
}

/// Every even request gets `bad`'s answer, every odd one the good answer.
fn alternating(
    bad: impl Fn(&[u8]) -> Reply + Send + Sync + 'static,
) -> impl Fn(usize, &[u8]) -> Reply + Send + Sync + 'static {
    move |n, request| {
        if n % 2 == 0 {
            bad(request)
        } else {
            Reply::Send(good(request))
        }
    }
}

/// Polls one holding register of the server at `addr` until the batches have gone from
/// bad to good `rounds` times; checks each bad sample's error with `expected` and each
/// good one's value. Returns the collector, still running.
async fn bad_then_good(
    addr: SocketAddr,
    rounds: usize,
    expected: impl Fn(&str) -> bool,
) -> Collecting {
    let mut tcp = tcp_device(addr, vec![holding_u16("a", 0)]);
    tcp.poll = Duration::from_millis(50);
    tcp.timeout = Duration::from_millis(300);
    let mut collecting = Collecting::start(tcp, 64);
    let mut recoveries = 0;
    let mut last_bad = false;
    // A stuck stream keeps every later sample bad: give up after as many batches as
    // several rounds take.
    for _ in 0..rounds * 6 {
        let batch = collecting.batch().await;
        let sample: &Sample = &batch[0];
        match &sample.quality {
            Quality::Good => {
                assert_eq!(sample.value, Value::Int(i64::from(GOOD)), "{sample:?}");
                if last_bad {
                    recoveries += 1;
                    if recoveries == rounds {
                        return collecting;
                    }
                }
                last_bad = false;
            }
            Quality::Bad(error) => {
                assert!(expected(error), "unexpected error: {error}");
                assert_eq!(sample.value, Value::None);
                last_bad = true;
            }
            other => panic!("unexpected quality {other:?}"),
        }
    }
    panic!("the collector recovered {recoveries} of {rounds} times from a bad answer");
}

#[tokio::test]
async fn wrong_transaction_id_is_a_timeout_and_the_next_answer_is_good() {
    bounded(async {
        let server = HostileServer::start(alternating(|request| {
            let mut bytes = good(request);
            bytes[0] ^= 0x80;
            Reply::Send(bytes)
        }))
        .await;
        let collecting = bad_then_good(server.addr, 3, |e| e == "timeout").await;
        assert_eq!(
            server.connections.load(Ordering::SeqCst),
            1,
            "a stray answer keeps the connection"
        );
        assert!(server.requests.load(Ordering::SeqCst) >= 6);
        collecting.stop().await;
    })
    .await;
}

// Regression: the rest of a frame cut short was taken from the next answer, and every
// answer after it was read one frame out of step: the device stayed bad for good.
#[tokio::test]
async fn truncated_answer_then_silence_does_not_shift_the_answers_after_it() {
    bounded(async {
        // Every cut: inside the header, after the header, one byte short.
        for cut in [3, 7, 10] {
            let server = HostileServer::start(alternating(move |request| {
                Reply::Send(good(request)[..cut].to_vec())
            }))
            .await;
            let collecting = bad_then_good(server.addr, 3, |e| {
                e == "timeout" || e.starts_with("malformed answer: ")
            })
            .await;
            collecting.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn wrong_unit_id_is_a_protocol_error_and_keeps_the_connection() {
    bounded(async {
        let server = HostileServer::start(alternating(|request| {
            let mut bytes = good(request);
            bytes[6] = bytes[6].wrapping_add(1);
            Reply::Send(bytes)
        }))
        .await;
        let collecting = bad_then_good(server.addr, 3, |e| {
            e == "protocol error: the answer's unit or transaction id does not match"
        })
        .await;
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        assert_eq!(collecting.stats.reconnects.load(Ordering::Relaxed), 0);
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn huge_length_field_is_bad_within_the_timeout() {
    bounded(async {
        // A length of 0xFFFF, a short body, and nothing more.
        let server = HostileServer::start(alternating(|request| {
            let mut bytes = good(request);
            bytes[4..6].copy_from_slice(&[0xFF, 0xFF]);
            Reply::Send(bytes)
        }))
        .await;
        let collecting = bad_then_good(server.addr, 3, |e| {
            e == "timeout" || e.starts_with("malformed answer: ")
        })
        .await;
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn huge_length_field_followed_by_a_flood_is_not_read_without_bound() {
    bounded(async {
        let server = HostileServer::start(alternating(|request| {
            let mut bytes = good(request);
            bytes[4..6].copy_from_slice(&[0xFF, 0xFF]);
            Reply::SendAndFlood(bytes)
        }))
        .await;
        let collecting = bad_then_good(server.addr, 2, |e| {
            e.starts_with("malformed answer: ") || e.starts_with("disconnected: ")
        })
        .await;
        // The client gives up on a frame at its largest (7 + 253 bytes) or at tokio-modbus's
        // 64 KiB; what it did not read stays in the sockets' buffers. Reading on for the
        // whole timeout would take hundreds of megabytes on loopback.
        let flooded = server.flooded.load(Ordering::SeqCst);
        assert!(
            flooded < FLOOD_CAP / 2,
            "{flooded} bytes of garbage read in two floods"
        );
        assert!(server.connections.load(Ordering::SeqCst) >= 2, "recycled");
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn connection_closed_mid_frame_is_a_disconnect_and_is_reconnected() {
    bounded(async {
        let server = HostileServer::start(alternating(|request| {
            Reply::SendAndClose(good(request)[..8].to_vec())
        }))
        .await;
        let collecting = bad_then_good(server.addr, 3, |e| {
            e == "disconnected: connection closed by the device"
                || e.starts_with("malformed answer: ")
        })
        .await;
        assert!(server.connections.load(Ordering::SeqCst) >= 3);
        assert!(collecting.stats.reconnects.load(Ordering::Relaxed) >= 2);
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn exception_answer_is_bad_and_keeps_the_connection() {
    bounded(async {
        let server = HostileServer::start(alternating(|request| {
            Reply::Send(answer(request, &[0x83, 0x04]))
        }))
        .await;
        let collecting = bad_then_good(server.addr, 3, |e| {
            e == "exception 04 server device failure"
        })
        .await;
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        assert_eq!(collecting.stats.reconnects.load(Ordering::Relaxed), 0);
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn byte_count_disagreeing_with_the_quantity_is_bad_and_recycles_the_connection() {
    bounded(async {
        // Consistent frames whose byte count does not fit one register: two registers,
        // a count larger than the body, an odd count.
        let pdus: [&[u8]; 3] = [
            &[0x03, 4, 0, 1, 0, 2],
            &[0x03, 8, 0, 1],
            &[0x03, 3, 0, 1, 2],
        ];
        for pdu in pdus {
            let server = HostileServer::start(alternating(move |request| {
                Reply::Send(answer(request, pdu))
            }))
            .await;
            let collecting = bad_then_good(server.addr, 3, |e| {
                e.starts_with("malformed answer: ") && e.ends_with("; connection recycled")
            })
            .await;
            assert!(server.connections.load(Ordering::SeqCst) >= 3, "{pdu:?}");
            collecting.stop().await;
        }
    })
    .await;
}
