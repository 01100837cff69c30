//! A fresh PostgreSQL database per test, on the server that `FIELDLINK_TEST_POSTGRES`
//! names (an admin URL such as `postgres://postgres@127.0.0.1:55432/postgres`;
//! `scripts/pg-test-server` starts such a server, `.ci/run` does in CI).
//!
//! Without the variable the PostgreSQL tests skip ([`TestDatabase::create`] answers
//! `None`), unless `FIELDLINK_REQUIRE_POSTGRES=1` says they must run (CI), when they fail.
//! Each database has a unique random name, so tests run in parallel and never see each
//! other's data; [`TestDatabase::drop_database`] removes it.
//!
//! [`TlsServer`] starts a server of its own with TLS required, for the tests of the
//! platform's verified TLS to PostgreSQL.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable holding the admin URL of the test server.
pub const URL_VAR: &str = "FIELDLINK_TEST_POSTGRES";
/// The environment variable that, set to `1`, makes a missing [`URL_VAR`] a failure.
pub const REQUIRE_VAR: &str = "FIELDLINK_REQUIRE_POSTGRES";

/// The bound of every connection and statement of this module.
const LIMIT: Duration = Duration::from_secs(30);

/// A database created for one test on the test server.
///
/// Dropped without [`TestDatabase::drop_database`] (a failing test unwinding, say), it is
/// dropped on a helper thread with its own runtime, best effort: if the server cannot be
/// reached then, the database is left behind (the server is a throwaway one).
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    url: String,
    name: String,
    dropped: bool,
}

/// The admin URL from [`URL_VAR`], or `None` when it is unset or empty.
///
/// # Panics
/// When it is unset and [`REQUIRE_VAR`] is `1`.
pub fn admin_url() -> Option<String> {
    let url = std::env::var(URL_VAR)
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        panic!(
            "{REQUIRE_VAR}=1 but {URL_VAR} is not set: start a server with \
             `scripts/pg-test-server start DIR` and export the URL it prints as {URL_VAR}"
        );
    }
    url
}

impl TestDatabase {
    /// Creates a database with a fresh unique name, or `None` when no test server is
    /// configured (see [`admin_url`]).
    ///
    /// # Panics
    /// When the server cannot be reached or refuses to create the database.
    pub async fn create() -> Option<TestDatabase> {
        let admin_url = admin_url()?;
        let name = unique_name();
        let Some(url) = database_url(&admin_url, &name) else {
            panic!("{URL_VAR} is not a postgres://host[:port]/dbname URL: {admin_url:?}");
        };
        let admin = connect(&admin_url).await;
        // The name is ours ([a-z0-9_]), so quoting it is enough.
        let created = tokio::time::timeout(
            LIMIT,
            admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")),
        )
        .await;
        match created {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("cannot create the test database {name} on {admin_url}: {e}"),
            Err(_) => {
                panic!("creating the test database {name} on {admin_url} took over {LIMIT:?}")
            }
        }
        Some(TestDatabase {
            admin_url,
            url,
            name,
            dropped: false,
        })
    }

    /// The URL of this database (the admin URL with its name in place of the admin's).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client connected to this database (its connection is driven by a spawned task).
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// Drops the database, ending the sessions still connected to it (`WITH (FORCE)`).
    ///
    /// # Panics
    /// When the server cannot be reached or refuses.
    pub async fn drop_database(mut self) {
        self.dropped = true;
        if let Err(why) = drop_named(&self.admin_url, &self.name).await {
            panic!("cannot drop the test database {}: {why}", self.name);
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop cannot await: a thread with its own runtime does, and this waits for it
        // (bounded by LIMIT), so nothing outlives the test.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let helper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(drop_named(&admin_url, &name))
        });
        if let Ok(Err(why)) = helper.join() {
            eprintln!("test database {} left behind: {why}", self.name);
        }
    }
}

/// A PostgreSQL server of its own with TLS on (started by `scripts/pg-test-server` with a
/// certificate and key), which refuses TCP clients that do not use TLS; stopped on drop.
#[derive(Debug)]
pub struct TlsServer {
    data_dir: std::path::PathBuf,
    admin_url: String,
}

impl TlsServer {
    /// Initialises a cluster in `data_dir` (which must not exist yet) serving `cert` and
    /// `key` (PEM) on loopback `port`. Needs PostgreSQL's server binaries; as root the
    /// server runs as the `postgres` user, so every parent of `data_dir` must let it in.
    ///
    /// # Panics
    /// When the server does not start; the message has the script's output.
    pub fn start(
        data_dir: &std::path::Path,
        port: u16,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> TlsServer {
        let mut command = std::process::Command::new(script());
        command
            .arg("start")
            .arg(data_dir)
            .arg(port.to_string())
            .arg(cert)
            .arg(key);
        let output = match command.output() {
            Ok(output) => output,
            Err(e) => panic!("cannot run {}: {e}", script().display()),
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let server = TlsServer {
            data_dir: data_dir.to_owned(),
            admin_url: stdout.trim().to_owned(),
        };
        assert!(
            output.status.success(),
            "the TLS test server did not start: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        server
    }

    /// The admin URL (`postgres://postgres@127.0.0.1:PORT/postgres`), without `sslmode`.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        // The script stops the server with `pg_ctl -w` (bounded by pg_ctl's own timeout).
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(&self.data_dir)
            .status();
    }
}

/// `scripts/pg-test-server` in this workspace.
fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-server")
}

/// Connects to `url` (bounded) and spawns the task that drives the connection.
///
/// # Panics
/// When the server cannot be reached or refuses the connection.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    match try_connect(url).await {
        Ok(client) => client,
        Err(why) => panic!("cannot connect to the test PostgreSQL server at {url}: {why}"),
    }
}

async fn try_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(LIMIT);
    let (client, connection) = tokio::time::timeout(LIMIT, config.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| format!("no connection within {LIMIT:?}"))?
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "test database connection ended");
        }
    });
    Ok(client)
}

async fn drop_named(admin_url: &str, name: &str) -> Result<(), String> {
    let admin = try_connect(admin_url).await?;
    tokio::time::timeout(
        LIMIT,
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")),
    )
    .await
    .map_err(|_| format!("no answer within {LIMIT:?}"))?
    .map_err(|e| e.to_string())
}

/// `fl_test_<pid>_<counter>_<random>`: unique within the process by the counter, across
/// processes (and leftovers of earlier runs) by the pid and the random part.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "fl_test_{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        hasher.finish() as u32
    )
}

/// `url` (`postgres://authority[/dbname][?query]`) naming database `name` instead; `None`
/// if it is not such a URL.
fn database_url(url: &str, name: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "postgres" && scheme != "postgresql" {
        return None;
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return None;
    }
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_replaces_the_admin_one() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:55432/postgres", "t1").as_deref(),
            Some("postgres://postgres@127.0.0.1:55432/t1")
        );
        assert_eq!(
            database_url("postgresql://u:p@h/admin?sslmode=disable", "t2").as_deref(),
            Some("postgresql://u:p@h/t2?sslmode=disable")
        );
        assert_eq!(
            database_url("postgres://h:5432", "t3").as_deref(),
            Some("postgres://h:5432/t3")
        );
        assert_eq!(database_url("host=h dbname=x", "t4"), None);
        assert_eq!(database_url("mysql://h/x", "t5"), None);
    }

    /// Needs FIELDLINK_TEST_POSTGRES (skips without it).
    #[tokio::test]
    async fn a_database_is_created_empty_and_dropped_by_either_path() {
        let exists = |admin: tokio_postgres::Client, name: String| async move {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .expect("query pg_database");
            row.get::<_, i64>(0) == 1
        };
        let Some(db) = TestDatabase::create().await else {
            eprintln!("skipped: {URL_VAR} is not set");
            return;
        };
        let admin_url = admin_url().expect("set");
        let client = db.client().await;
        client
            .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .await
            .expect("the new database is writable");
        let name = db.name().to_owned();
        assert!(exists(connect(&admin_url).await, name.clone()).await);
        // Dropped while a session is still connected: FORCE ends it.
        db.drop_database().await;
        assert!(!exists(connect(&admin_url).await, name).await);

        let db = TestDatabase::create().await.expect("created");
        let name = db.name().to_owned();
        drop(db);
        assert!(!exists(connect(&admin_url).await, name).await);
    }

    #[test]
    fn names_are_unique_and_plain() {
        let (a, b) = (unique_name(), unique_name());
        assert_ne!(a, b);
        assert!(a.len() < 64, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
    }
}
