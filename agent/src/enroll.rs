//! Enrollment on the gateway: `fieldlink enroll` trades a one-time token for a gateway id
//! and MQTT credentials (`POST /api/v1/enroll`) and stores them in `state_dir`, readable by
//! the agent's user alone; `fieldlink run` then uses them without the config being edited.
//! The request and the answer are the contract's types ([`fieldlink_wire::enroll`]), the
//! platform's own.

use crate::config::AgentConfig;
use crate::http_client::{Client, HttpError, Response};
use fieldlink_wire::MqttUrl;
use fieldlink_wire::enroll::{EnrollRequest, Enrollment, ErrorBody};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file under `state_dir` that holds the enrollment.
pub const FILE_NAME: &str = "enrollment.json";

/// How long the platform has to answer, connection and TLS included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why enrollment failed; each says what the integrator does next.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The URL is not an http(s) URL.
    #[error(
        "bad platform URL {0:?}: expected https://HOST[:PORT] (or http:// on a trusted network)"
    )]
    BadUrl(String),
    /// The platform could not be reached (DNS, refused, TLS verification, timeout).
    #[error("cannot reach the platform at {url}: {detail}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong, with its causes.
        detail: String,
    },
    /// The token is unknown or expired: ask the bureau for a new one.
    #[error("the platform refused the token (unknown or expired): {0}")]
    TokenRefused(String),
    /// The token's gateways are used up: ask for a token with more gateways.
    #[error("the token has no gateways left: {0}")]
    TokenUsedUp(String),
    /// The platform answered with another error.
    #[error("the platform answered {status}: {detail}")]
    Platform {
        /// The HTTP status.
        status: u16,
        /// The platform's error text.
        detail: String,
    },
    /// The answer is not what the contract says (wrong platform version?).
    #[error("the platform's answer is not a valid enrollment: {0}")]
    BadAnswer(String),
    /// The state directory could not be written.
    #[error("cannot store the enrollment in {path}: {error}")]
    Store {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
}

/// Calls `POST {url}/api/v1/enroll` with `token` for the gateway named `gateway_name`.
pub async fn request(
    url: &str,
    token: &str,
    gateway_name: &str,
) -> Result<Enrollment, EnrollError> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(EnrollError::BadUrl(url.to_owned()));
    }
    let unreachable = |url: &str, e: HttpError| match e {
        HttpError::BadUrl(_) => EnrollError::BadUrl(base.to_owned()),
        e => EnrollError::Unreachable {
            url: url.to_owned(),
            detail: e.to_string(),
        },
    };
    let client = Client::with_system_roots(TIMEOUT).map_err(|e| unreachable(base, e))?;
    let body = EnrollRequest {
        token: token.to_owned(),
        gateway_name: gateway_name.to_owned(),
        hostname: std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned()),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    };
    let endpoint = format!("{base}/api/v1/enroll");
    let Response { status, body: text } = client
        .post_json(&endpoint, &body)
        .await
        .map_err(|e| unreachable(&endpoint, e))?;
    if status == 201 || status == 200 {
        let enrollment: Enrollment =
            serde_json::from_str(&text).map_err(|e| EnrollError::BadAnswer(e.to_string()))?;
        if !fieldlink_wire::topic::is_valid_gateway_id(&enrollment.gateway_id) {
            return Err(EnrollError::BadAnswer(format!(
                "gateway id {:?} cannot be a topic level",
                enrollment.gateway_id
            )));
        }
        MqttUrl::parse(&enrollment.mqtt.url).map_err(|why| {
            EnrollError::BadAnswer(format!("mqtt url {:?} {why}", enrollment.mqtt.url))
        })?;
        return Ok(enrollment);
    }
    let detail = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.to_string())
        .unwrap_or_else(|_| text.chars().take(200).collect());
    Err(match status {
        401 => EnrollError::TokenRefused(detail),
        409 => EnrollError::TokenUsedUp(detail),
        _ => EnrollError::Platform { status, detail },
    })
}

/// The enrollment file of a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Stores `enrollment` under `state_dir`, mode 0600 (the directory 0700), replacing any
/// earlier one atomically.
pub fn store(state_dir: &Path, enrollment: &Enrollment) -> Result<PathBuf, EnrollError> {
    let io = |error| EnrollError::Store {
        path: path(state_dir),
        error,
    };
    let json = serde_json::to_vec_pretty(enrollment).map_err(|e| io(std::io::Error::other(e)))?;
    crate::state_file::write(state_dir, FILE_NAME, &json).map_err(io)
}

/// The stored enrollment, if the gateway is enrolled.
pub fn load(state_dir: &Path) -> Result<Option<Enrollment>, EnrollError> {
    let file = path(state_dir);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EnrollError::BadAnswer(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(EnrollError::Store { path: file, error }),
    }
}

/// Applies an enrollment to a config: the gateway id, the broker URL and the credentials
/// come from the platform (they are rotated by re-enrolling, not by editing the config).
pub fn apply(config: &mut AgentConfig, enrollment: &Enrollment) -> Result<(), EnrollError> {
    let url = MqttUrl::parse(&enrollment.mqtt.url)
        .map_err(|why| EnrollError::BadAnswer(format!("mqtt url {why}")))?;
    config.gateway.id = Some(enrollment.gateway_id.clone());
    config.platform.mqtt = url;
    config.platform.username = Some(enrollment.mqtt.username.clone());
    config.platform.password = Some(enrollment.mqtt.password.clone());
    Ok(())
}
