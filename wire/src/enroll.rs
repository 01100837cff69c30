//! The enrollment call of the platform's HTTP API (DESIGN.md, "Platform API"):
//! `POST /api/v1/enroll` with an [`EnrollRequest`] → 201 with an [`Enrollment`], or an
//! [`ErrorBody`] with 401 (unknown or expired token) or 409 (the token's gateways are used
//! up). The agent sends the request and stores the answer; the platform reads the request
//! and writes the answer: both with these types, so the two cannot drift apart.

use serde::{Deserialize, Serialize};

/// What a gateway sends to enroll: `{"token", "gateway_name", "hostname"?, "agent_version"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The enrollment token the bureau issued for the enterprise.
    pub token: String,
    /// The gateway's name within its enterprise (re-using a name re-enrolls that gateway).
    pub gateway_name: String,
    /// The gateway's host name, for the record.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The agent's version, for the record.
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// The platform's answer to an enrollment: `{"gateway_id", "enterprise": {"credit_code",
/// "name"}, "mqtt": {"url", "username", "password"}, "rotated"}`. The agent stores it in its
/// state directory as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The gateway id the platform assigned: the MQTT username and topic level.
    pub gateway_id: String,
    /// The enterprise the gateway belongs to.
    pub enterprise: EnterpriseRef,
    /// The broker and the gateway's credentials.
    pub mqtt: MqttCredentials,
    /// True if this replaced the credentials of an already enrolled gateway (an addition
    /// to the version 1 answer: absent is false).
    #[serde(default)]
    pub rotated: bool,
}

/// An enterprise's credit code and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseRef {
    /// Its unified social credit code.
    pub credit_code: String,
    /// Its registered name.
    pub name: String,
}

/// Where and as whom a gateway publishes; shown once (the platform stores only a hash of
/// the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttCredentials {
    /// The broker URL gateways can reach (`mqtt://` or `mqtts://`, see [`crate::MqttUrl`]).
    pub url: String,
    /// The MQTT username: the gateway id.
    pub username: String,
    /// The MQTT password.
    pub password: String,
}

/// An error answer of the platform's API: `{"error": code, "detail": text}` with a fitting
/// status (a CSV import adds `errors`, which this type does not read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A short machine-readable code, e.g. `invalid_token`.
    pub error: String,
    /// What went wrong, for a person.
    #[serde(default)]
    pub detail: Option<String>,
}

impl std::fmt::Display for ErrorBody {
    /// `error: detail`, or the code alone without a detail.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{}: {detail}", self.error),
            None => f.write_str(&self.error),
        }
    }
}
