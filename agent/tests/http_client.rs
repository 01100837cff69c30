//! The command line's HTTP client against real servers on 127.0.0.1: TLS with a throwaway
//! CA (trusted, and not), a chunked answer, a server that never answers, bad URLs.

use fieldlink::http_client::{Client, HttpError, Response};
use fieldlink_testkit::mosquitto::TestPki;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The roots of the CA in the PEM file at `ca`.
fn roots(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("CA file");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("CA certificate")).expect("a root");
    }
    roots
}

/// A TLS acceptor with the PKI's server certificate (for 127.0.0.1 and localhost).
fn acceptor(pki: &TestPki) -> tokio_rustls::TlsAcceptor {
    let certs = rustls_pemfile::certs(&mut std::fs::read(&pki.server_cert).unwrap().as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate");
    let key = rustls_pemfile::private_key(&mut std::fs::read(&pki.server_key).unwrap().as_slice())
        .expect("server key")
        .expect("a key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Reads one request (head and `Content-Length` body) from `stream`, writes `answer`, and
/// returns the request as text.
async fn answer_one<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: &[u8]) -> String {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.expect("read the request");
        assert!(n > 0, "the client closed before its request was complete");
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("a length"));
    while request.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("read the body");
        assert!(n > 0, "the client closed before its body was complete");
        request.extend_from_slice(&buf[..n]);
    }
    stream.write_all(answer).await.expect("write the answer");
    stream.shutdown().await.ok();
    String::from_utf8(request).expect("a text request")
}

/// Serves one connection on a fresh port, over TLS if `tls` is given; returns the port and
/// the request it received.
async fn serve_once(
    tls: Option<tokio_rustls::TlsAcceptor>,
    answer: &'static [u8],
) -> (u16, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        match tls {
            Some(acceptor) => {
                answer_one(acceptor.accept(tcp).await.expect("handshake"), answer).await
            }
            None => answer_one(tcp, answer).await,
        }
    });
    (port, task)
}

#[tokio::test]
async fn an_https_post_reaches_a_server_the_roots_trust() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let (port, server) = serve_once(
        Some(acceptor(&pki)),
        b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
    )
    .await;
    let client = Client::with_roots(roots(&pki.ca), TIMEOUT).expect("client");
    let answer = client
        .post_json(
            &format!("https://127.0.0.1:{port}/api/v1/enroll"),
            &serde_json::json!({"token": "t-1"}),
        )
        .await
        .expect("an answer");
    assert_eq!(
        answer,
        Response {
            status: 201,
            body: "{\"ok\":true}".to_owned()
        }
    );
    let request = server.await.expect("the server");
    assert!(
        request.starts_with("POST /api/v1/enroll HTTP/1.1\r\n"),
        "{request}"
    );
    let lower = request.to_lowercase();
    assert!(
        lower.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{request}"
    );
    assert!(
        lower.contains("content-type: application/json\r\n"),
        "{request}"
    );
    assert!(
        request.ends_with("\r\n\r\n{\"token\":\"t-1\"}"),
        "{request}"
    );
}

#[tokio::test]
async fn a_server_the_roots_do_not_trust_fails_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let other = tempfile::tempdir().unwrap();
    let stranger = TestPki::generate(other.path());
    let (port, _server) = serve_once(Some(acceptor(&pki)), b"HTTP/1.1 200 OK\r\n\r\n").await;
    let client = Client::with_roots(roots(&stranger.ca), TIMEOUT).expect("client");
    let error = client
        .get(&format!("https://127.0.0.1:{port}/"))
        .await
        .expect_err("an untrusted certificate");
    assert!(matches!(error, HttpError::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_chunked_answer_is_read_whole() {
    let (port, _server) = serve_once(
        None,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    let answer = Client::plain(TIMEOUT)
        .get(&format!("http://127.0.0.1:{port}/status"))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "hello world");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, and holds the connection without a word.
    let silent = tokio::spawn(async move { listener.accept().await.map(|(tcp, _)| tcp) });
    let timeout = Duration::from_millis(300);
    let error = Client::plain(timeout)
        .get(&format!("http://127.0.0.1:{port}/status"))
        .await
        .expect_err("no answer");
    assert!(
        matches!(error, HttpError::Timeout(t) if t == timeout),
        "{error:?}"
    );
    drop(silent.await);
}

#[tokio::test]
async fn bad_urls_and_https_without_roots_are_refused_before_connecting() {
    let plain = Client::plain(TIMEOUT);
    for url in ["127.0.0.1:9810/status", "ftp://127.0.0.1/", "not a URL"] {
        let error = plain.get(url).await.expect_err(url);
        assert!(matches!(error, HttpError::BadUrl(_)), "{url}: {error:?}");
    }
    let error = plain.get("https://127.0.0.1:1/").await.expect_err("https");
    assert!(matches!(error, HttpError::NoRoots), "{error:?}");
    assert!(matches!(
        Client::with_roots(rustls::RootCertStore::empty(), TIMEOUT),
        Err(HttpError::NoRoots)
    ));
}
