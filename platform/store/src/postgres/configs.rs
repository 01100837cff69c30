//! Gateway configurations on PostgreSQL: the statements.

use super::PostgresStore;
use crate::configs::{CONFIG_VERSION_COLUMNS, ConfigToPublish, ConfigVersion, NewConfig};
use crate::{StoreError, rows};
use std::collections::HashMap;

impl PostgresStore {
    pub(crate) async fn save_config(
        &self,
        config: NewConfig,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let config = &config;
        self.retrying("save a gateway config", |mut client| async move {
            let tx = client.transaction().await?;
            // The gateway's row lock: two instances saving at once number one after the other.
            if tx
                .query_opt(
                    "SELECT 1 FROM gateways WHERE id = $1 FOR UPDATE",
                    &[&config.gateway_id],
                )
                .await?
                .is_none()
            {
                return Ok(None);
            }
            let version: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM gateway_configs WHERE gateway_id = $1",
                    &[&config.gateway_id],
                )
                .await?
                .try_get(0)?;
            tx.execute(
                "INSERT INTO gateway_configs (gateway_id, version, toml, sha256, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &config.gateway_id,
                    &version,
                    &config.toml,
                    &config.sha256,
                    &now,
                    &config.created_by,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(version as u64))
        })
        .await
    }

    pub(crate) async fn config_versions(
        &self,
        gateway_id: String,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {CONFIG_VERSION_COLUMNS} FROM gateway_configs
             WHERE gateway_id = $1 ORDER BY version DESC LIMIT $2"
        );
        client
            .query(&sql, &[&gateway_id, &i64::from(limit)])
            .await?
            .iter()
            .map(rows::config_version)
            .collect()
    }

    pub(crate) async fn config(
        &self,
        gateway_id: String,
        version: Option<u64>,
    ) -> Result<Option<(ConfigVersion, String)>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {CONFIG_VERSION_COLUMNS}, toml FROM gateway_configs
             WHERE gateway_id = $1 AND ($2::BIGINT IS NULL OR version = $2)
             ORDER BY version DESC LIMIT 1"
        );
        let version = version.map(|v| v as i64);
        match client.query_opt(&sql, &[&gateway_id, &version]).await? {
            Some(row) => Ok(Some((rows::config_version(&row)?, row.try_get(5)?))),
            None => Ok(None),
        }
    }

    pub(crate) async fn newest_config_versions(&self) -> Result<HashMap<String, u64>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT gateway_id, MAX(version) FROM gateway_configs GROUP BY gateway_id",
                &[],
            )
            .await?
            .iter()
            .map(rows::gateway_version)
            .collect()
    }

    pub(crate) async fn configs_to_publish(
        &self,
        every: bool,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<ConfigToPublish>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT c.gateway_id, c.version, c.toml FROM gateway_configs c
                 WHERE c.version = (SELECT MAX(version) FROM gateway_configs n
                                    WHERE n.gateway_id = c.gateway_id)
                   AND ($1 OR c.published_at IS NULL)
                   AND ($3::TEXT IS NULL OR c.gateway_id > $3)
                 ORDER BY c.gateway_id LIMIT $2",
                &[&every, &i64::from(limit), &after],
            )
            .await?
            .iter()
            .map(rows::config_to_publish)
            .collect()
    }

    pub(crate) async fn mark_config_published(
        &self,
        gateway_id: String,
        version: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE gateway_configs SET published_at = $3
                 WHERE gateway_id = $1 AND version <= $2 AND published_at IS NULL",
                &[&gateway_id, &(version as i64), &now],
            )
            .await?;
        Ok(())
    }
}
