//! One connection attempt: the application certificate, the server's endpoints, the
//! endpoint that fits the configured security and identity, the server's certificate
//! against the trust lists, then a session whose event loop runs on its own task.
//!
//! async-opcua's own reconnect machinery is switched off (`session_retry_limit(0)`,
//! `recreate_subscriptions(false)`): a lost session ends its event loop and the collector
//! builds a new one, with its own backoff, and re-resolves namespaces and re-creates
//! subscriptions on it. That keeps one connect attempt in flight per device, and a server
//! that reorders its namespaces on restart cannot leave stale NodeIds monitored.

use crate::device::{Identity, OpcuaDevice, Policy, PolicyChoice, SecurityMode, ServerTrust};
use crate::pki::{self, CertificateAction, PkiError, ServerCertificate};
use crate::value::status_name;
use futures_util::StreamExt;
use opcua::client::{
    Client, ClientBuilder, IdentityToken, Session, SessionEventLoop, SessionPollResult,
};
use opcua::types::{
    EndpointDescription, MessageSecurityMode, StatusCode, UserTokenPolicy, UserTokenType,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How often an idle session proves it is alive (a Read of the server state).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Failed keep-alives after which the session counts as lost (async-opcua's default, 0,
/// would never give up on a silent network).
const MAX_FAILED_KEEP_ALIVES: u64 = 3;
/// The session timeout asked of the server: how long it keeps the session (and its
/// subscriptions) for a client that went silent.
const SESSION_TIMEOUT_MS: u32 = 60_000;

/// Why a connection attempt failed; the text is the `bad` samples' error after
/// "disconnected: ".
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The application certificate could not be created or read: fix the state
    /// directory (permissions, disk).
    #[error("application certificate: {0}")]
    Certificate(#[from] PkiError),
    /// The server could not be reached or did not list its endpoints: retry with backoff.
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// The server offers no endpoint for the configured security and identity: a
    /// configuration problem, retried slowly.
    #[error("no endpoint fits: wanted {wanted}; the server offers {offered}")]
    NoEndpoint {
        /// What the configuration asks for.
        wanted: String,
        /// What the server offers.
        offered: String,
    },
    /// The server's certificate is not trusted: run the `fieldlink opcua trust` command the
    /// log names, or set `trust_server_certificate = "any"`.
    #[error("the server's certificate {thumbprint} is not trusted")]
    UntrustedServer {
        /// The certificate's thumbprint.
        thumbprint: String,
        /// Its subject.
        subject: String,
        /// Where it was stored.
        stored: PathBuf,
    },
    /// The X.509 user identity's files could not be read: fix the paths.
    #[error("user certificate: {0}")]
    UserCertificate(String),
    /// The session could not be created or activated (the server refused the identity,
    /// our certificate, or closed the connection): retry with backoff.
    #[error("{}", session_text(*.0, .1))]
    Session(StatusCode, String),
    /// No session within the device's timeout: retry with backoff.
    #[error("timeout")]
    Timeout,
}

fn session_text(status: StatusCode, context: &str) -> String {
    if context.is_empty() {
        status_name(status).to_owned()
    } else {
        format!("{}: {context}", status_name(status))
    }
}

/// The state of a session's event loop, as the collector watches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// The first connect is in progress.
    Connecting,
    /// The session is active.
    Up,
    /// The session is gone (transport closed, keep-alives failed, or the connect failed),
    /// with the status that ended it.
    Lost(StatusCode),
    /// The event loop ended after a deliberate disconnect.
    Closed,
}

/// A live session and the task driving it.
pub struct Connection {
    /// The session, for service calls.
    pub session: Arc<Session>,
    /// The event loop's state; `Lost` ends the connection.
    pub state_rx: watch::Receiver<LinkState>,
    /// The endpoint in use (its policy and mode, for logs).
    pub endpoint: EndpointDescription,
    event_loop: JoinHandle<()>,
}

impl Connection {
    /// Closes the session (deleting its subscriptions on the server) within `timeout`, then
    /// stops the event loop.
    pub async fn close(self, timeout: Duration) {
        let Connection {
            session,
            event_loop,
            ..
        } = self;
        if tokio::time::timeout(timeout, session.disconnect())
            .await
            .is_err()
        {
            debug!("session did not close in time; dropping it");
        }
        event_loop.abort();
        let _ = event_loop.await;
    }

    /// Drops a session that is already lost, without talking to the server.
    pub async fn abandon(self) {
        self.session.disable_reconnects();
        self.event_loop.abort();
        let _ = self.event_loop.await;
    }
}

/// A short name for an endpoint's security, for logs: `Basic256Sha256/sign-and-encrypt`.
pub fn describe_endpoint(endpoint: &EndpointDescription) -> String {
    let policy =
        Policy::from_uri(endpoint.security_policy_uri.as_ref()).map_or("None", Policy::as_str);
    let mode = match endpoint.security_mode {
        MessageSecurityMode::Sign => "sign",
        MessageSecurityMode::SignAndEncrypt => "sign-and-encrypt",
        _ => "none",
    };
    format!("{policy}/{mode}")
}

/// Connects to `device`'s server: one attempt, within the device's timeout.
pub async fn connect(device: &OpcuaDevice) -> Result<Connection, ConnectError> {
    match tokio::time::timeout(device.timeout * 3, connect_inner(device)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout),
    }
}

async fn connect_inner(device: &OpcuaDevice) -> Result<Connection, ConnectError> {
    let pki = device.pki.clone();
    let needs_certificate = device.security.mode != SecurityMode::None;
    let action = tokio::task::spawn_blocking(move || pki::ensure_application_certificate(&pki))
        .await
        .map_err(|e| ConnectError::Certificate(PkiError::Create(e.to_string())))?;
    match action {
        Ok(CertificateAction::Kept) => {}
        Ok(CertificateAction::Created) => info!(
            device = %device.name,
            certificate = %pki::own_certificate_path(&device.pki.dir).display(),
            "created the gateway's OPC UA application certificate"
        ),
        Ok(CertificateAction::Renewed(why)) => warn!(
            device = %device.name,
            certificate = %pki::own_certificate_path(&device.pki.dir).display(),
            reason = %why,
            "renewed the gateway's OPC UA application certificate; servers that trusted the old one must trust the new one"
        ),
        // Without security the certificate is not needed; say so once per attempt at
        // debug level and go on.
        Err(e) if !needs_certificate => {
            debug!(device = %device.name, error = %e, "no application certificate (not needed without security)");
        }
        Err(e) => return Err(e.into()),
    }

    let identity = identity_token(&device.identity)?;
    let client = build_client(device);
    let endpoints = tokio::time::timeout(
        device.timeout,
        client.get_server_endpoints_from_url(device.endpoint.as_str()),
    )
    .await
    .map_err(|_| ConnectError::Unreachable("timeout".to_owned()))?
    .map_err(|e| ConnectError::Unreachable(status_name(e.status()).to_owned()))?;
    let mut endpoint = choose_endpoint(
        &endpoints,
        device.security.mode,
        device.security.policy,
        &device.identity,
    )?;

    if endpoint.security_mode != MessageSecurityMode::None {
        let dir = device.pki.dir.clone();
        let der = endpoint.server_certificate.clone();
        let trust_any = device.trust == ServerTrust::Any;
        let verdict = tokio::task::spawn_blocking(move || {
            pki::check_server_certificate(&dir, &der, trust_any)
        })
        .await
        .map_err(|e| ConnectError::Certificate(PkiError::Create(e.to_string())))??;
        if let ServerCertificate::Rejected {
            thumbprint,
            subject,
            stored,
        } = verdict
        {
            return Err(ConnectError::UntrustedServer {
                thumbprint,
                subject,
                stored,
            });
        }
    }

    // Servers often announce a host name the gateway cannot resolve; connect to the
    // address the configuration names.
    endpoint.endpoint_url = device.endpoint.as_str().into();
    let (session, event_loop) = client
        .session_builder()
        .connect_to_endpoint_directly(endpoint.clone())
        .map_err(|e| ConnectError::Session(e.status(), String::new()))?
        .user_identity_token(identity)
        .build(client.certificate_store().clone())
        .map_err(|e| ConnectError::Session(e.status(), String::new()))?;

    let (state_tx, mut state_rx) = watch::channel(LinkState::Connecting);
    let event_loop = tokio::spawn(drive(event_loop, state_tx));
    loop {
        let state = state_rx.borrow_and_update().clone();
        match state {
            LinkState::Up => break,
            LinkState::Lost(status) => {
                event_loop.abort();
                let context = match status {
                    StatusCode::BadCertificateUntrusted | StatusCode::BadSecurityChecksFailed => {
                        "the server does not trust the gateway's certificate"
                    }
                    StatusCode::BadIdentityTokenRejected
                    | StatusCode::BadUserAccessDenied
                    | StatusCode::BadIdentityTokenInvalid => "the server refused the identity",
                    _ => "",
                };
                return Err(ConnectError::Session(status, context.to_owned()));
            }
            LinkState::Connecting | LinkState::Closed => {}
        }
        if state_rx.changed().await.is_err() {
            return Err(ConnectError::Session(
                StatusCode::BadUnexpectedError,
                "the session's event loop ended".to_owned(),
            ));
        }
    }
    Ok(Connection {
        session,
        state_rx,
        endpoint,
        event_loop,
    })
}

/// Runs a session's event loop, reporting its state; ends on the first loss (the
/// collector, not async-opcua, reconnects).
async fn drive<T>(event_loop: SessionEventLoop<T>, state_tx: watch::Sender<LinkState>)
where
    T: opcua::client::transport::Connector + Send + Sync + 'static,
{
    let stream = event_loop.enter();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(SessionPollResult::Reconnected(_)) => {
                let _ = state_tx.send(LinkState::Up);
            }
            Ok(SessionPollResult::ConnectionLost(status))
            | Ok(SessionPollResult::ReconnectFailed(status)) => {
                let _ = state_tx.send(LinkState::Lost(status));
                return;
            }
            Ok(_) => {}
            Err(status) => {
                let _ = state_tx.send(LinkState::Lost(status));
                return;
            }
        }
    }
    let _ = state_tx.send(LinkState::Closed);
}

fn build_client(device: &OpcuaDevice) -> Client {
    let trust_any = device.trust == ServerTrust::Any;
    let builder = ClientBuilder::new()
        .application_name(pki::application_name(&device.pki))
        .application_uri(pki::application_uri(&device.pki))
        .product_uri("urn:fieldlink")
        .session_name(format!("fieldlink {}", device.name))
        .pki_dir(&device.pki.dir)
        .create_sample_keypair(false)
        .trust_server_certs(trust_any)
        .verify_server_certs(!trust_any)
        .session_retry_limit(0)
        .recreate_subscriptions(false)
        .request_timeout(device.timeout)
        .keep_alive_interval(KEEP_ALIVE)
        .max_failed_keep_alive_count(MAX_FAILED_KEEP_ALIVES)
        .session_timeout(SESSION_TIMEOUT_MS);
    // The builder's configuration is valid by construction (names and URIs are set, no
    // user tokens are registered), so `client()` cannot fail; `Client::new` is its body.
    Client::new(builder.into_config())
}

fn identity_token(identity: &Identity) -> Result<IdentityToken, ConnectError> {
    Ok(match identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::UserName { user, password } => {
            IdentityToken::new_user_name(user.clone(), password.clone())
        }
        Identity::X509 {
            certificate,
            private_key,
        } => IdentityToken::new_x509_path(certificate, private_key)
            .map_err(|e| ConnectError::UserCertificate(e.to_string()))?,
    })
}

fn wanted_token(identity: &Identity) -> UserTokenType {
    match identity {
        Identity::Anonymous => UserTokenType::Anonymous,
        Identity::UserName { .. } => UserTokenType::UserName,
        Identity::X509 { .. } => UserTokenType::Certificate,
    }
}

fn supports_token(endpoint: &EndpointDescription, wanted: UserTokenType) -> bool {
    match &endpoint.user_identity_tokens {
        None => wanted == UserTokenType::Anonymous,
        Some(tokens) => tokens
            .iter()
            .any(|t: &UserTokenPolicy| t.token_type == wanted),
    }
}

/// The endpoint for the configured security mode, policy and identity: with policy
/// `auto`, the strongest non-deprecated policy offered (deprecated ones only when named).
pub fn choose_endpoint(
    endpoints: &[EndpointDescription],
    mode: SecurityMode,
    policy: PolicyChoice,
    identity: &Identity,
) -> Result<EndpointDescription, ConnectError> {
    let wanted_mode = match mode {
        SecurityMode::None => MessageSecurityMode::None,
        SecurityMode::Sign => MessageSecurityMode::Sign,
        SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    };
    let token = wanted_token(identity);
    let fits = |e: &&EndpointDescription| {
        e.security_mode == wanted_mode
            && supports_token(e, token)
            && e.endpoint_url.as_ref().starts_with("opc.tcp://")
    };
    let chosen = match (mode, policy) {
        (SecurityMode::None, _) => endpoints.iter().filter(fits).find(|e| {
            e.security_policy_uri.as_ref() == "http://opcfoundation.org/UA/SecurityPolicy#None"
        }),
        (_, PolicyChoice::Exact(p)) => endpoints
            .iter()
            .filter(fits)
            .find(|e| e.security_policy_uri.as_ref() == p.uri()),
        (_, PolicyChoice::Auto) => Policy::BY_STRENGTH
            .into_iter()
            .filter(|p| !p.is_deprecated())
            .find_map(|p| {
                endpoints
                    .iter()
                    .filter(fits)
                    .find(|e| e.security_policy_uri.as_ref() == p.uri())
            }),
    };
    chosen.cloned().ok_or_else(|| {
        let policy = match mode {
            SecurityMode::None => String::new(),
            _ => format!(" with policy {policy}"),
        };
        let token = match token {
            UserTokenType::Anonymous => "anonymous",
            UserTokenType::UserName => "user name",
            UserTokenType::Certificate => "X.509",
            UserTokenType::IssuedToken => "issued token",
        };
        let mut offered: Vec<String> = endpoints.iter().map(describe_offer).collect();
        offered.dedup();
        ConnectError::NoEndpoint {
            wanted: format!("security {mode}{policy}, {token} login"),
            offered: if offered.is_empty() {
                "no endpoints".to_owned()
            } else {
                offered.join("; ")
            },
        }
    })
}

fn describe_offer(endpoint: &EndpointDescription) -> String {
    let tokens: Vec<&str> = endpoint
        .user_identity_tokens
        .iter()
        .flatten()
        .map(|t| match t.token_type {
            UserTokenType::Anonymous => "anonymous",
            UserTokenType::UserName => "user name",
            UserTokenType::Certificate => "X.509",
            UserTokenType::IssuedToken => "issued token",
        })
        .collect();
    format!("{} ({})", describe_endpoint(endpoint), tokens.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(
        policy: &str,
        mode: MessageSecurityMode,
        tokens: &[UserTokenType],
    ) -> EndpointDescription {
        EndpointDescription {
            endpoint_url: "opc.tcp://plc:4840/".into(),
            security_mode: mode,
            security_policy_uri: policy.into(),
            user_identity_tokens: Some(
                tokens
                    .iter()
                    .map(|&token_type| UserTokenPolicy {
                        token_type,
                        ..UserTokenPolicy::default()
                    })
                    .collect(),
            ),
            ..EndpointDescription::default()
        }
    }

    fn offered() -> Vec<EndpointDescription> {
        use MessageSecurityMode::{None, SignAndEncrypt};
        use UserTokenType::{Anonymous, UserName};
        vec![
            endpoint(
                "http://opcfoundation.org/UA/SecurityPolicy#None",
                None,
                &[Anonymous],
            ),
            endpoint(
                Policy::Basic128Rsa15.uri(),
                SignAndEncrypt,
                &[Anonymous, UserName],
            ),
            endpoint(
                Policy::Aes128Sha256RsaOaep.uri(),
                SignAndEncrypt,
                &[Anonymous, UserName],
            ),
            endpoint(Policy::Basic256Sha256.uri(), SignAndEncrypt, &[UserName]),
        ]
    }

    #[test]
    fn auto_takes_the_strongest_policy_that_fits_the_identity() {
        let user = Identity::UserName {
            user: "u".into(),
            password: "p".into(),
        };
        let e = choose_endpoint(
            &offered(),
            SecurityMode::SignAndEncrypt,
            PolicyChoice::Auto,
            &user,
        )
        .unwrap();
        assert_eq!(e.security_policy_uri.as_ref(), Policy::Basic256Sha256.uri());
        // Anonymous is not offered on Basic256Sha256: the next strongest non-deprecated one.
        let e = choose_endpoint(
            &offered(),
            SecurityMode::SignAndEncrypt,
            PolicyChoice::Auto,
            &Identity::Anonymous,
        )
        .unwrap();
        assert_eq!(
            e.security_policy_uri.as_ref(),
            Policy::Aes128Sha256RsaOaep.uri()
        );
    }

    #[test]
    fn an_explicit_policy_is_taken_even_when_deprecated() {
        let e = choose_endpoint(
            &offered(),
            SecurityMode::SignAndEncrypt,
            PolicyChoice::Exact(Policy::Basic128Rsa15),
            &Identity::Anonymous,
        )
        .unwrap();
        assert_eq!(e.security_policy_uri.as_ref(), Policy::Basic128Rsa15.uri());
    }

    #[test]
    fn no_fitting_endpoint_says_what_was_wanted_and_offered() {
        let err = choose_endpoint(
            &offered(),
            SecurityMode::Sign,
            PolicyChoice::Auto,
            &Identity::Anonymous,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("wanted security sign with policy auto, anonymous login"),
            "{text}"
        );
        assert!(
            text.contains("Basic256Sha256/sign-and-encrypt (user name)"),
            "{text}"
        );
    }
}
