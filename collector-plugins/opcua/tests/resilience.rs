//! Server restarts and dead servers: the session is rebuilt by itself, one attempt at a
//! time, and points are bad ("disconnected") while it is down.

use crate::support::{Running, device, has_bad, has_good};
use fieldlink_opcua::testing::{FOLDER, TestServer, TestServerOptions};
use fieldlink_wire::Value;
use opcua::types::Variant;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_resumes_after_the_server_restarts_on_the_same_port_with_its_namespaces_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let counter = format!("{FOLDER}.Counter");
    let points = [("Counter", TestServer::node_text(&counter))];
    let mut run = Running::start(device(&server.endpoint(), dir.path(), &points));
    assert!(
        run.until(Duration::from_secs(15), |s| has_good(
            s,
            "Counter",
            &Value::Int(0)
        ))
        .await
    );
    server.set(&counter, Variant::Int32(1));
    assert!(
        run.until(Duration::from_secs(10), |s| has_good(
            s,
            "Counter",
            &Value::Int(1)
        ))
        .await
    );

    let mut options = server.stop().await;
    assert!(
        run.until(Duration::from_secs(30), |s| has_bad(
            s,
            "Counter",
            "disconnected"
        ))
        .await,
        "no bad sample while the server is down: {:#?}",
        run.received
    );
    assert!(!run.stats.connected.load(Ordering::Relaxed));

    // Back on the same port, the test namespace now at another index: the NodeId given by
    // URI must be resolved again, or the monitored item would point at the wrong node.
    options.shift_namespace = true;
    let server = TestServer::start(options).await;
    assert!(
        run.until(Duration::from_secs(30), |s| has_good(
            s,
            "Counter",
            &Value::Int(0)
        ))
        .await,
        "data did not resume after the restart: {:#?}",
        run.received
    );
    server.set(&counter, Variant::Int32(2));
    assert!(
        run.until(Duration::from_secs(10), |s| has_good(
            s,
            "Counter",
            &Value::Int(2)
        ))
        .await
    );
    assert!(run.stats.connected.load(Ordering::Relaxed));
    assert_eq!(
        server.session_count(),
        1,
        "more than one session after the restart"
    );
    run.stop().await;
}

/// A listener that accepts connections and never answers, counting how many are open at
/// once.
async fn silent_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("opc.tcp://{}/", listener.local_addr().unwrap());
    let (open, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, m) = (open.clone(), max.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_gets_one_connect_attempt_at_a_time_and_bad_points() {
    let (url, _open, max) = silent_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = device(&url, dir.path(), &[("p", "ns=2;s=P".to_owned())]);
    d.timeout = Duration::from_millis(300);
    let mut run = Running::start(d);
    assert!(
        run.until(Duration::from_secs(10), |s| s.len() >= 3).await,
        "fewer than three failed attempts reported"
    );
    assert!(
        run.received
            .iter()
            .all(|s| has_bad(std::slice::from_ref(s), "p", "disconnected: ")),
        "{:#?}",
        run.received
    );
    let received = run.stop().await;
    assert_eq!(max.load(Ordering::SeqCst), 1, "connect attempts overlapped");
    // Backoff: attempts spread out instead of hammering the server.
    let first = received.first().map_or(0, |s| s.ts);
    let third = received.get(2).map_or(0, |s| s.ts);
    assert!(
        third - first >= 1000,
        "three attempts within {} ms",
        third - first
    );
}
