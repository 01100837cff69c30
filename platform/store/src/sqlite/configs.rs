//! Gateway configurations on SQLite: the statements.

use super::{SqliteStore, all, first, write_tx};
use crate::configs::{CONFIG_VERSION_COLUMNS, ConfigToPublish, ConfigVersion, NewConfig};
use crate::{StoreError, rows};
use rusqlite::params;
use std::collections::HashMap;

impl SqliteStore {
    pub(crate) async fn save_config(
        &self,
        config: NewConfig,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        self.write(move |w| {
            // The write transaction holds SQLite's one writer lock: the number is unique.
            let tx = write_tx(&mut w.conn)?;
            if !tx
                .prepare_cached("SELECT 1 FROM gateways WHERE id = ?1")?
                .exists([&config.gateway_id])?
            {
                return Ok(None);
            }
            let version: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM gateway_configs WHERE gateway_id = ?1",
                )?
                .query_row([&config.gateway_id], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO gateway_configs (gateway_id, version, toml, sha256, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                config.gateway_id,
                version,
                config.toml,
                config.sha256,
                now,
                config.created_by
            ])?;
            tx.commit()?;
            Ok(Some(version as u64))
        })
        .await
    }

    pub(crate) async fn config_versions(
        &self,
        gateway_id: String,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {CONFIG_VERSION_COLUMNS} FROM gateway_configs
                 WHERE gateway_id = ?1 ORDER BY version DESC LIMIT ?2"
            );
            all(
                &mut c.prepare_cached(&sql)?,
                params![gateway_id, limit],
                |r| rows::config_version(r),
            )
        })
        .await
    }

    pub(crate) async fn config(
        &self,
        gateway_id: String,
        version: Option<u64>,
    ) -> Result<Option<(ConfigVersion, String)>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {CONFIG_VERSION_COLUMNS}, toml FROM gateway_configs
                 WHERE gateway_id = ?1 AND (?2 IS NULL OR version = ?2)
                 ORDER BY version DESC LIMIT 1"
            );
            let version = version.map(|v| v as i64);
            first(
                &mut c.prepare_cached(&sql)?,
                params![gateway_id, version],
                |r| Ok((rows::config_version(r)?, r.get(5)?)),
            )
        })
        .await
    }

    pub(crate) async fn newest_config_versions(&self) -> Result<HashMap<String, u64>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT gateway_id, MAX(version) FROM gateway_configs GROUP BY gateway_id",
            )?;
            Ok(all(&mut stmt, [], |r| rows::gateway_version(r))?
                .into_iter()
                .collect())
        })
        .await
    }

    pub(crate) async fn configs_to_publish(
        &self,
        every: bool,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<ConfigToPublish>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.gateway_id, c.version, c.toml FROM gateway_configs c
                 WHERE c.version = (SELECT MAX(version) FROM gateway_configs n
                                    WHERE n.gateway_id = c.gateway_id)
                   AND (?1 OR c.published_at IS NULL)
                   AND (?3 IS NULL OR c.gateway_id > ?3)
                 ORDER BY c.gateway_id LIMIT ?2",
            )?;
            all(&mut stmt, params![every, limit, after], |r| {
                rows::config_to_publish(r)
            })
        })
        .await
    }

    pub(crate) async fn mark_config_published(
        &self,
        gateway_id: String,
        version: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |w| {
            w.conn
                .prepare_cached(
                    "UPDATE gateway_configs SET published_at = ?3
                     WHERE gateway_id = ?1 AND version <= ?2 AND published_at IS NULL",
                )?
                .execute(params![gateway_id, version as i64, now])?;
            Ok(())
        })
        .await
    }
}
