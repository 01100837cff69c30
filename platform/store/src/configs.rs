//! Configurations pushed to gateways, every version kept. The text is validated above, in
//! the platform, with the agent's own parser; here a version is numbered (one more than
//! the gateway's newest, under the gateway's lock, so that two instances never give out
//! the same number), listed, and marked once the ingest has published it.

use crate::{Store, StoreError, dispatch};
use std::collections::HashMap;

/// One version of a gateway's configuration, without its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigVersion {
    /// The version, from 1.
    pub version: u64,
    /// SHA-256 of the text, lowercase hex.
    pub sha256: String,
    /// When it was saved (ms since the epoch).
    pub created_at: i64,
    /// Who saved it (a username, or `admin` for the admin token).
    pub created_by: String,
    /// When the ingest published it to the broker; `None` until then.
    pub published_at: Option<i64>,
}

/// A version to publish: the gateway, the version and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigToPublish {
    /// The gateway.
    pub gateway_id: String,
    /// The version.
    pub version: u64,
    /// The TOML.
    pub toml: String,
}

/// A version to save.
#[derive(Debug, Clone)]
pub struct NewConfig {
    /// The gateway.
    pub gateway_id: String,
    /// The TOML, already validated.
    pub toml: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Who saves it.
    pub created_by: String,
}

/// The columns [`crate::rows::config_version`] reads, in order.
pub(crate) const CONFIG_VERSION_COLUMNS: &str =
    "version, sha256, created_at, created_by, published_at";

impl Store {
    /// Saves a new version of a gateway's config at `now`; its number, or `None` if the
    /// gateway is not enrolled.
    pub async fn save_config(
        &self,
        config: NewConfig,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.save_config(config, now).await)
    }

    /// A gateway's config versions, newest first, at most `limit`.
    pub async fn config_versions(
        &self,
        gateway_id: &str,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        dispatch!(self, s => s.config_versions(gateway_id.to_owned(), limit).await)
    }

    /// One version of a gateway's config with its text; the newest if `version` is `None`.
    pub async fn config(
        &self,
        gateway_id: &str,
        version: Option<u64>,
    ) -> Result<Option<(ConfigVersion, String)>, StoreError> {
        dispatch!(self, s => s.config(gateway_id.to_owned(), version).await)
    }

    /// The newest version saved for each gateway that has one, by gateway id: one query
    /// for the whole fleet, however many gateways it lists.
    pub async fn newest_config_versions(&self) -> Result<HashMap<String, u64>, StoreError> {
        dispatch!(self, s => s.newest_config_versions().await)
    }

    /// The newest version of each gateway whose newest is not published yet (`all`: of
    /// every gateway with a config, to publish them again after the broker may have lost
    /// its retained messages), by gateway id after `after`, at most `limit`.
    pub async fn configs_to_publish(
        &self,
        all: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConfigToPublish>, StoreError> {
        let after = after.map(str::to_owned);
        dispatch!(self, s => s.configs_to_publish(all, after, limit).await)
    }

    /// Marks a gateway's versions up to `version` published at `now`.
    pub async fn mark_config_published(
        &self,
        gateway_id: &str,
        version: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.mark_config_published(gateway_id.to_owned(), version, now).await)
    }
}
