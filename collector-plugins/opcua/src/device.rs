//! The validated settings of one OPC UA device, as the agent's configuration hands them to
//! the collector. Nothing here is re-parsed later.

use crate::node::NodeAddress;
use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// An OPC UA server and the points to read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpcuaDevice {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// The server's endpoint URL, `opc.tcp://HOST:PORT[/PATH]`.
    pub endpoint: String,
    /// Subscriptions (the default) or cyclic reads.
    pub mode: Mode,
    /// How long one request (and a connect) may take.
    pub timeout: Duration,
    /// Message security and policy.
    pub security: Security,
    /// Who the session logs in as.
    pub identity: Identity,
    /// Which server certificates are accepted.
    pub trust: ServerTrust,
    /// Where the application certificate and the trust lists live, and whose they are.
    pub pki: Pki,
    /// The points, in configuration order.
    pub points: Vec<OpcuaPoint>,
}

/// How values are collected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// One subscription with a monitored item per point; the server reports changes.
    Subscription {
        /// The subscription's publishing interval.
        publishing_interval: Duration,
    },
    /// Every point is read with the Read service once per period.
    Poll {
        /// The read period.
        period: Duration,
    },
}

/// One point: a variable's Value attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct OpcuaPoint {
    /// The point's configured name.
    pub name: Arc<str>,
    /// The variable's NodeId.
    pub node: NodeAddress,
    /// How often the server samples the variable (subscriptions only).
    pub sampling_interval: Duration,
    /// How many samples the server queues between publishes (subscriptions only).
    pub queue_size: NonZeroU32,
    /// The server-side data-change filter (subscriptions only).
    pub deadband: Option<Deadband>,
}

/// A data-change filter's deadband (Part 4, 7.22.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    /// Report a change larger than this, in the variable's units.
    Absolute(f64),
    /// Report a change larger than this percentage of the variable's EURange.
    Percent(f64),
}

/// Message security of the secure channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// none, sign, or sign-and-encrypt.
    pub mode: SecurityMode,
    /// The security policy; `Auto` takes the strongest the server offers for `mode`.
    pub policy: PolicyChoice,
}

/// The message security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// No signatures, no encryption.
    #[default]
    None,
    /// Messages are signed.
    Sign,
    /// Messages are signed and encrypted.
    SignAndEncrypt,
}

impl SecurityMode {
    /// The configuration names, for error messages.
    pub const NAMES: &'static str = "none, sign, sign-and-encrypt";

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::None => "none",
            SecurityMode::Sign => "sign",
            SecurityMode::SignAndEncrypt => "sign-and-encrypt",
        }
    }
}

impl FromStr for SecurityMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "none" => Ok(SecurityMode::None),
            "sign" => Ok(SecurityMode::Sign),
            "sign-and-encrypt" => Ok(SecurityMode::SignAndEncrypt),
            _ => Err(()),
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security policy, or the strongest one offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyChoice {
    /// The strongest non-deprecated policy the server offers for the security mode.
    #[default]
    Auto,
    /// Exactly this policy.
    Exact(Policy),
}

/// The security policies async-opcua implements, strongest first in [`Policy::BY_STRENGTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Aes256_Sha256_RsaPss.
    Aes256Sha256RsaPss,
    /// Basic256Sha256.
    Basic256Sha256,
    /// Aes128_Sha256_RsaOaep.
    Aes128Sha256RsaOaep,
    /// Basic256 (deprecated by the specification: SHA-1).
    Basic256,
    /// Basic128Rsa15 (deprecated by the specification: SHA-1).
    Basic128Rsa15,
}

impl Policy {
    /// Policies from strongest to weakest; `auto` picks the first the server offers among
    /// the non-deprecated ones.
    pub const BY_STRENGTH: [Policy; 5] = [
        Policy::Aes256Sha256RsaPss,
        Policy::Basic256Sha256,
        Policy::Aes128Sha256RsaOaep,
        Policy::Basic256,
        Policy::Basic128Rsa15,
    ];

    /// The configuration names, for error messages.
    pub const NAMES: &'static str =
        "auto, Aes256Sha256RsaPss, Basic256Sha256, Aes128Sha256RsaOaep, Basic256, Basic128Rsa15";

    /// The policy's name as the specification writes it (and the configuration accepts).
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Aes256Sha256RsaPss => "Aes256Sha256RsaPss",
            Policy::Basic256Sha256 => "Basic256Sha256",
            Policy::Aes128Sha256RsaOaep => "Aes128Sha256RsaOaep",
            Policy::Basic256 => "Basic256",
            Policy::Basic128Rsa15 => "Basic128Rsa15",
        }
    }

    /// True for the policies the specification has deprecated (SHA-1 based).
    pub fn is_deprecated(self) -> bool {
        matches!(self, Policy::Basic256 | Policy::Basic128Rsa15)
    }

    /// The policy's URI, as endpoints announce it.
    pub fn uri(self) -> &'static str {
        match self {
            Policy::Aes256Sha256RsaPss => {
                "http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss"
            }
            Policy::Basic256Sha256 => "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
            Policy::Aes128Sha256RsaOaep => {
                "http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep"
            }
            Policy::Basic256 => "http://opcfoundation.org/UA/SecurityPolicy#Basic256",
            Policy::Basic128Rsa15 => "http://opcfoundation.org/UA/SecurityPolicy#Basic128Rsa15",
        }
    }

    /// The policy with this URI, if it is one of ours.
    pub fn from_uri(uri: &str) -> Option<Policy> {
        Policy::BY_STRENGTH.into_iter().find(|p| p.uri() == uri)
    }
}

impl FromStr for PolicyChoice {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s == "auto" {
            return Ok(PolicyChoice::Auto);
        }
        // The URI's fragment spelling (with underscores) is accepted as well.
        let plain = s.rsplit('#').next().unwrap_or(s).replace('_', "");
        Policy::BY_STRENGTH
            .into_iter()
            .find(|p| p.as_str() == plain)
            .map(PolicyChoice::Exact)
            .ok_or(())
    }
}

impl fmt::Display for PolicyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyChoice::Auto => f.write_str("auto"),
            PolicyChoice::Exact(p) => f.write_str(p.as_str()),
        }
    }
}

/// The user identity of the session.
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// No user.
    Anonymous,
    /// User name and password (the password is encrypted with the server's certificate
    /// when the endpoint's token policy asks for it).
    UserName {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// An X.509 user certificate and its private key.
    X509 {
        /// The certificate file (DER or PEM).
        certificate: PathBuf,
        /// The private key file (PEM).
        private_key: PathBuf,
    },
}

impl Identity {
    /// A short description for logs, without secrets.
    pub fn describe(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".to_owned(),
            Identity::UserName { user, .. } => format!("user {user:?}"),
            Identity::X509 { certificate, .. } => {
                format!("X.509 certificate {}", certificate.display())
            }
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        f.write_str(&self.describe())
    }
}

/// Which server certificates the collector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerTrust {
    /// Only certificates in `pki/trusted`; an unknown one is stored in `pki/rejected` and
    /// the connection refused until `fieldlink opcua trust` moves it.
    #[default]
    TrustedOnly,
    /// Any certificate (stored in `pki/trusted` on first sight); hostname, validity and
    /// application URI checks are skipped. An explicit opt-in, logged at warn level.
    Any,
}

impl ServerTrust {
    /// The configuration names, for error messages.
    pub const NAMES: &'static str = "trusted, any";
}

impl FromStr for ServerTrust {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "trusted" => Ok(ServerTrust::TrustedOnly),
            "any" => Ok(ServerTrust::Any),
            _ => Err(()),
        }
    }
}

/// The gateway's OPC UA application identity and certificate store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// The PKI directory (`state_dir/pki`): `own/cert.der`, `private/private.pem`,
    /// `trusted/`, `rejected/`.
    pub dir: PathBuf,
    /// The gateway id, in the application certificate's subject and SAN; `None` before
    /// enrollment supplies one (the host name stands in).
    pub gateway_id: Option<String>,
    /// The config file the agent runs with, for the `fieldlink opcua trust` hint in logs.
    pub config_file: String,
}

impl Pki {
    /// The PKI of a gateway whose state lives in `state_dir`.
    pub fn new(state_dir: &std::path::Path, gateway_id: Option<String>, config_file: &str) -> Self {
        Pki {
            dir: state_dir.join("pki"),
            gateway_id,
            config_file: config_file.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_by_name_and_by_uri_fragment() {
        assert_eq!("auto".parse(), Ok(PolicyChoice::Auto));
        assert_eq!(
            "Basic256Sha256".parse(),
            Ok(PolicyChoice::Exact(Policy::Basic256Sha256))
        );
        assert_eq!(
            "Aes128_Sha256_RsaOaep".parse(),
            Ok(PolicyChoice::Exact(Policy::Aes128Sha256RsaOaep))
        );
        assert_eq!("Basic512".parse::<PolicyChoice>(), Err(()));
        for p in Policy::BY_STRENGTH {
            assert_eq!(Policy::from_uri(p.uri()), Some(p));
        }
    }

    #[test]
    fn identity_debug_hides_the_password() {
        let id = Identity::UserName {
            user: "op".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{id:?}").contains("s3cret"));
    }
}
