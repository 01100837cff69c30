//! A PostgreSQL database of its own for one bench run (created on the server of an admin
//! URL, dropped after), and the CPU time of the server's processes working for it.

use crate::measure::Process;
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A database of its own on the server, for one run.
pub(crate) struct BenchDatabase {
    admin_url: String,
    /// Its name.
    pub(crate) name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl BenchDatabase {
    /// Creates `fieldlink_bench_PID_N` on the server of `admin_url`.
    pub(crate) async fn create(admin_url: &str) -> anyhow::Result<BenchDatabase> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "fieldlink_bench_{}_{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(admin_url, &name)?;
        let admin = connect_db(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        Ok(BenchDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// A connection to it.
    pub(crate) async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect_db(&self.url).await
    }

    /// Drops it, closing any connection left.
    pub(crate) async fn drop(self) -> anyhow::Result<()> {
        let admin = connect_db(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("cannot drop the database {}", self.name))
    }
}

async fn connect_db(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// `url` with its database name replaced by `name` (its query string kept).
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("--database: {url:?} is not a postgres:// URL");
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

/// The CPU time so far of each PostgreSQL process working for `database`: its backends and
/// the server's own processes (writer, checkpointer, WAL writer, autovacuum), which have no
/// database; other databases' backends are someone else's load on a shared server.
pub(crate) async fn postgres_cpu_times(
    db: &tokio_postgres::Client,
    database: &str,
) -> anyhow::Result<HashMap<u32, Duration>> {
    let pids = db
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 OR datname IS NULL",
            &[&database],
        )
        .await?;
    Ok(pids
        .iter()
        .filter_map(|r| u32::try_from(r.get::<_, i32>(0)).ok())
        .map(|pid| (pid, Process { pid }.cpu_time()))
        .collect())
}

/// The CPU time spent between two [`postgres_cpu_times`] readings (a process that started
/// in between counts whole).
pub(crate) fn postgres_cpu_since(
    later: &HashMap<u32, Duration>,
    earlier: &HashMap<u32, Duration>,
) -> Duration {
    later
        .iter()
        .map(|(pid, &t)| t.saturating_sub(earlier.get(pid).copied().unwrap_or_default()))
        .sum()
}
