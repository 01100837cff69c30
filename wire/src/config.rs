//! The payload of `fieldlink/v1/{gateway}/config`: a configuration the platform pushes to
//! one gateway, retained, QoS 1, written by the platform only.
//!
//! It holds the `[publish]` section and the `[[device]]` blocks as TOML text, exactly as
//! an integrator wrote them (so that errors keep their lines), a version that only grows,
//! and the text's SHA-256, which the gateway checks before it reads the text: a payload
//! damaged or cut on its way is refused, never half applied.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A configuration pushed by the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMessage {
    /// The gateway it is for: a gateway refuses a message for another.
    pub gateway: String,
    /// Its version, from 1, growing by one per change (a rollback is a new version).
    pub version: u64,
    /// The TOML: `[publish]` and `[[device]]` only.
    pub toml: String,
    /// SHA-256 of `toml`'s UTF-8 bytes, lowercase hex.
    pub sha256: String,
}

/// Why a received config message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigMessageError {
    /// Larger than [`ConfigMessage::MAX_BYTES`].
    #[error("config message of {bytes} bytes is over the limit of {limit}", limit = ConfigMessage::MAX_BYTES)]
    TooLarge {
        /// The payload's size.
        bytes: usize,
    },
    /// Not the JSON of a config message.
    #[error("config message is not valid: {0}")]
    Malformed(String),
    /// For another gateway.
    #[error("config message is for gateway {found:?}, not this one ({expected:?})")]
    OtherGateway {
        /// This gateway.
        expected: String,
        /// The one it names.
        found: String,
    },
    /// Version 0, which no platform writes.
    #[error("config message has version 0; versions start at 1")]
    ZeroVersion,
    /// The text does not match its digest.
    #[error("config message's sha256 {stated} does not match its text ({actual})")]
    Digest {
        /// The digest the message states.
        stated: String,
        /// The digest of the text received.
        actual: String,
    },
}

impl ConfigMessage {
    /// The largest payload a gateway accepts: far above any real site's devices and points,
    /// far below what would strain a gateway's memory.
    pub const MAX_BYTES: usize = 1 << 20;

    /// The message of `version` of `toml` for `gateway`, with its digest.
    pub fn new(gateway: &str, version: u64, toml: String) -> Self {
        ConfigMessage {
            gateway: gateway.to_owned(),
            version,
            sha256: sha256_hex(&toml),
            toml,
        }
    }

    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a config message serializes")
    }

    /// Reads a payload received by `gateway`: refused if oversized, malformed, for another
    /// gateway, of version 0, or damaged.
    pub fn decode(gateway: &str, payload: &[u8]) -> Result<Self, ConfigMessageError> {
        if payload.len() > Self::MAX_BYTES {
            return Err(ConfigMessageError::TooLarge {
                bytes: payload.len(),
            });
        }
        let message: ConfigMessage = serde_json::from_slice(payload)
            .map_err(|e| ConfigMessageError::Malformed(e.to_string()))?;
        if message.gateway != gateway {
            return Err(ConfigMessageError::OtherGateway {
                expected: gateway.to_owned(),
                found: message.gateway,
            });
        }
        if message.version == 0 {
            return Err(ConfigMessageError::ZeroVersion);
        }
        let actual = sha256_hex(&message.toml);
        if !actual.eq_ignore_ascii_case(&message.sha256) {
            return Err(ConfigMessageError::Digest {
                stated: message.sha256,
                actual,
            });
        }
        Ok(message)
    }
}

/// SHA-256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_and_damage_is_refused() {
        let message = ConfigMessage::new("gw-1", 3, "[publish]\n".to_owned());
        let json = message.to_json();
        assert_eq!(ConfigMessage::decode("gw-1", &json), Ok(message.clone()));

        let mut damaged = message.clone();
        damaged.toml.push_str("batch_max_samples = 5\n");
        assert!(matches!(
            ConfigMessage::decode("gw-1", &damaged.to_json()),
            Err(ConfigMessageError::Digest { .. })
        ));
        assert!(matches!(
            ConfigMessage::decode("gw-2", &json),
            Err(ConfigMessageError::OtherGateway { .. })
        ));
        assert!(matches!(
            ConfigMessage::decode("gw-1", b"{\"version\":"),
            Err(ConfigMessageError::Malformed(_))
        ));
        let zero = ConfigMessage::new("gw-1", 0, String::new());
        assert_eq!(
            ConfigMessage::decode("gw-1", &zero.to_json()),
            Err(ConfigMessageError::ZeroVersion)
        );
        let huge = vec![b' '; ConfigMessage::MAX_BYTES + 1];
        assert!(matches!(
            ConfigMessage::decode("gw-1", &huge),
            Err(ConfigMessageError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_digest_is_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
