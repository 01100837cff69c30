//! Configuring gateways from the platform (DESIGN.md, "Configuration from the platform"):
//! a config's TOML holds `[publish]` and the `[[device]]` blocks, is validated with the
//! agent's own code (`fieldlink_config::parse_remote`, the very function the gateway runs
//! on receipt), and is saved as the gateway's next version; the ingest publishes it
//! retained on the gateway's `config` topic ([`crate::ingest`]). What the gateway runs,
//! or why it refused one, comes back in its status. Every version is kept; a rollback
//! saves an older version's text as a new version, so versions only grow, as the agent
//! requires. The API and the web UI both go through here.

use crate::store::{ConfigVersion, Gateway, NewConfig, Store, StoreError};
use fieldlink_config::ConfigErrors;
use fieldlink_wire::ConfigMessage;
use serde::{Deserialize, Serialize};

/// The name a pushed config has in its errors, as the agent names it.
pub const FILE_LABEL: &str = "config";

/// The largest TOML accepted: what fits in a config message with its JSON around it.
pub const MAX_TOML_BYTES: usize = ConfigMessage::MAX_BYTES / 2;

/// Why a config was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The TOML does not pass the agent's validation: every error, located.
    #[error("the config is invalid:\n{0}")]
    Invalid(ConfigErrors),
    /// Larger than [`MAX_TOML_BYTES`].
    #[error("the config is {0} bytes; at most {MAX_TOML_BYTES} are accepted")]
    TooLarge(usize),
    /// No such gateway, or no such version to roll back to.
    #[error("{0}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One located problem of a config, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The located problems of `errors`.
pub fn located(errors: &ConfigErrors) -> Vec<LocatedError> {
    errors
        .0
        .iter()
        .map(|e| LocatedError {
            line: e.line,
            column: e.column,
            message: e.message.clone(),
        })
        .collect()
}

/// Checks `toml` exactly as the gateway will.
pub fn validate(toml: &str) -> Result<(), SaveError> {
    if toml.len() > MAX_TOML_BYTES {
        return Err(SaveError::TooLarge(toml.len()));
    }
    fieldlink_config::parse_remote(toml, FILE_LABEL)
        .map(drop)
        .map_err(SaveError::Invalid)
}

/// Validates `toml` and saves it as the next version of `gateway_id`'s config, by `by`.
pub async fn save(
    store: &Store,
    gateway_id: &str,
    toml: String,
    by: &str,
    now: i64,
) -> Result<u64, SaveError> {
    validate(&toml)?;
    let config = NewConfig {
        gateway_id: gateway_id.to_owned(),
        sha256: fieldlink_wire::config::sha256_hex(&toml),
        toml,
        created_by: by.to_owned(),
    };
    store
        .save_config(config, now)
        .await?
        .ok_or_else(|| SaveError::NotFound(format!("no gateway {gateway_id}")))
}

/// Saves version `version`'s text again as the next version (validated again: the
/// templates it names may have changed since).
pub async fn roll_back(
    store: &Store,
    gateway_id: &str,
    version: u64,
    by: &str,
    now: i64,
) -> Result<u64, SaveError> {
    let (_, toml) = store
        .config(gateway_id, Some(version))
        .await?
        .ok_or_else(|| {
            SaveError::NotFound(format!(
                "gateway {gateway_id} has no config version {version}"
            ))
        })?;
    save(store, gateway_id, toml, by, now).await
}

/// A gateway's config as the platform shows it: the newest version saved and what the
/// gateway says it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    /// The newest version saved; `None` if none was.
    pub version: Option<u64>,
    /// Its text.
    pub toml: Option<String>,
    /// When it was saved, and by whom.
    pub saved: Option<ConfigVersion>,
    /// The version the gateway's latest status says it runs.
    pub applied_version: Option<u64>,
    /// Why the gateway refused the last config it received, as its status says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a gateway stands with its configs, for the fleet and the gateway's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigStanding {
    /// No config saved on the platform: the gateway runs its local file.
    Local,
    /// The gateway runs the newest version.
    Applied,
    /// The newest version is not applied yet (not delivered, or the gateway is offline).
    Pending,
    /// The gateway refused a config; it runs an older one (or its local file).
    Refused,
}

impl ConfigStanding {
    /// Its code, as the API and the CSV write it.
    pub fn code(self) -> &'static str {
        match self {
            ConfigStanding::Local => "local",
            ConfigStanding::Applied => "applied",
            ConfigStanding::Pending => "pending",
            ConfigStanding::Refused => "refused",
        }
    }
}

impl ConfigView {
    /// The view of `gateway`'s config, its newest version being `newest`.
    pub fn of(gateway: &Gateway, newest: Option<(ConfigVersion, String)>) -> Self {
        let state = gateway
            .status
            .as_ref()
            .and_then(|s| s.status.config.clone());
        let (version, saved, toml) = match newest {
            Some((saved, toml)) => (Some(saved.version), Some(saved), Some(toml)),
            None => (None, None, None),
        };
        ConfigView {
            version,
            toml,
            saved,
            applied_version: state.as_ref().and_then(|s| s.version),
            error: state.and_then(|s| s.error),
        }
    }

    /// Where the gateway stands.
    pub fn standing(&self) -> ConfigStanding {
        standing(self.version, self.applied_version, self.error.is_some())
    }
}

/// Where a gateway stands, given the newest version saved, the one it runs and whether
/// its status names a refusal.
pub fn standing(newest: Option<u64>, applied: Option<u64>, refused: bool) -> ConfigStanding {
    match newest {
        None => ConfigStanding::Local,
        Some(v) if applied == Some(v) => ConfigStanding::Applied,
        Some(_) if refused => ConfigStanding::Refused,
        Some(_) => ConfigStanding::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_follows_the_newest_version_and_the_status() {
        assert_eq!(standing(None, Some(3), false), ConfigStanding::Local);
        assert_eq!(standing(Some(3), Some(3), false), ConfigStanding::Applied);
        assert_eq!(standing(Some(4), Some(3), false), ConfigStanding::Pending);
        assert_eq!(standing(Some(4), Some(3), true), ConfigStanding::Refused);
        assert_eq!(standing(Some(1), None, false), ConfigStanding::Pending);
        for s in [
            ConfigStanding::Local,
            ConfigStanding::Applied,
            ConfigStanding::Pending,
            ConfigStanding::Refused,
        ] {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.code().into()));
        }
    }

    #[test]
    fn validation_is_the_agents_with_every_error_located() {
        let errors = match validate("[gateway]\nid = \"x\"\n[[device]]\nname = \"d\"\n") {
            Err(SaveError::Invalid(errors)) => located(&errors),
            other => panic!("{other:?}"),
        };
        let at: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(at, [(1, 1), (3, 1)], "{errors:?}");
        assert!(matches!(
            validate(&"#".repeat(MAX_TOML_BYTES + 1)),
            Err(SaveError::TooLarge(_))
        ));
    }
}
