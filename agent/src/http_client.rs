//! One HTTP/1.1 request and its answer, for the two the command line makes:
//! `fieldlink enroll`'s POST to the platform (https, or http on a trusted network) and
//! `fieldlink status`'s GET of the agent's local endpoint.
//!
//! A connection per request, straight to the server the URL names: no proxy, no redirect,
//! no cookie, as the agent's MQTT connection. It is written on hyper's connection API,
//! already in the binary for the status endpoint, and the agent's rustls with the ring
//! provider; a general client (reqwest, with its connection pool, proxy detection and
//! platform verifier) cost 0.45 MB of the binary for these two requests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::{Host, Position, Url};

/// The largest answer read; a longer one is refused rather than held in memory.
const MAX_BODY_BYTES: usize = 16 << 20;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http(s)://HOST[:PORT][/PATH]`: correct it.
    #[error("bad URL {0:?}: expected https://HOST[:PORT][/PATH] (or http://)")]
    BadUrl(String),
    /// An https URL for a client without trusted roots (see [`Client::plain`]).
    #[error("https is not available here: no trusted CA certificates")]
    NoRoots,
    /// The server could not be reached (DNS, refused, unreachable): check the address.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed (an untrusted or mismatched certificate, say).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The exchange failed: the connection broke, or the answer is not HTTP/1.1.
    #[error("{0}")]
    Http(String),
    /// No complete answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// An answer: its status code and its body (read whole, as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, as UTF-8 (invalid sequences replaced).
    pub body: String,
}

/// Makes requests, each within a timeout; https ones against the roots it was built with.
#[derive(Clone)]
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Client {
    /// A client for http URLs only, such as the agent's own status endpoint.
    pub fn plain(timeout: Duration) -> Self {
        Client { tls: None, timeout }
    }

    /// A client trusting `roots` for https.
    pub fn with_roots(roots: rustls::RootCertStore, timeout: Duration) -> Result<Self, HttpError> {
        if roots.is_empty() {
            return Err(HttpError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(std::io::Error::other(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            tls: Some(Arc::new(config)),
            timeout,
        })
    }

    /// A client trusting the system's CA certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR`
    /// are honoured), as browsers and the MQTT connection without `ca_file` do.
    pub fn with_system_roots(timeout: Duration) -> Result<Self, HttpError> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable entries in the system bundle are skipped, as browsers do.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        Self::with_roots(roots, timeout)
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.request(Method::GET, url, None).await
    }

    /// `POST url` with `body` as JSON.
    pub async fn post_json(
        &self,
        url: &str,
        body: &impl serde::Serialize,
    ) -> Result<Response, HttpError> {
        let json = serde_json::to_vec(body).map_err(|e| HttpError::Http(e.to_string()))?;
        self.request(Method::POST, url, Some(json)).await
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Response, HttpError> {
        let bad_url = || HttpError::BadUrl(url.to_owned());
        let parsed = Url::parse(url).map_err(|_| bad_url())?;
        let (host, server_name) = match parsed.host() {
            Some(Host::Domain(name)) => (
                name.to_owned(),
                ServerName::try_from(name.to_owned()).map_err(|_| bad_url())?,
            ),
            Some(Host::Ipv4(ip)) => (ip.to_string(), ServerName::IpAddress(ip.into())),
            Some(Host::Ipv6(ip)) => (ip.to_string(), ServerName::IpAddress(ip.into())),
            None => return Err(bad_url()),
        };
        let port = parsed.port_or_known_default().ok_or_else(bad_url)?;
        let request = Request::builder()
            .method(method)
            .uri(&parsed[Position::BeforePath..Position::AfterQuery])
            .header(HOST, &parsed[Position::BeforeHost..Position::AfterPort])
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("fieldlink/", env!("CARGO_PKG_VERSION"))),
            );
        let request = match json {
            Some(json) => request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Full::new(Bytes::from(json))),
            None => request.body(Full::new(Bytes::new())),
        }
        .map_err(|_| bad_url())?;
        let tls = match parsed.scheme() {
            "http" => None,
            "https" => Some(self.tls.clone().ok_or(HttpError::NoRoots)?),
            _ => return Err(bad_url()),
        };
        let exchange = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(HttpError::Connect)?;
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(tcp),
                Some(config) => Box::new(
                    tokio_rustls::TlsConnector::from(config)
                        .connect(server_name, tcp)
                        .await
                        .map_err(HttpError::Tls)?,
                ),
            };
            exchange(stream, request).await
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))?
    }
}

/// A connection, plain or TLS: one type, so that hyper's client is compiled once.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Sends `request` over `stream` and reads the whole answer, driving the connection
/// meanwhile; the connection closes when this returns.
async fn exchange(
    stream: Box<dyn Stream>,
    request: Request<Full<Bytes>>,
) -> Result<Response, HttpError> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_error)?;
    let answer = async {
        let response = sender.send_request(request).await.map_err(http_error)?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Http(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::pin!(answer, connection);
    tokio::select! {
        result = &mut answer => result,
        // The connection ends before the answer only on an error, which the answer
        // future reports too; its own error is the more precise.
        ended = &mut connection => match ended {
            Err(e) => Err(http_error(e)),
            Ok(()) => answer.await,
        },
    }
}

/// hyper's error with its causes ("connection closed before message completed: ...").
fn http_error(e: hyper::Error) -> HttpError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    HttpError::Http(text)
}
