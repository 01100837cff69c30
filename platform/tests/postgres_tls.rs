//! TLS between the platform and PostgreSQL, against a server of its own that refuses TCP
//! clients without TLS (`TlsServer`, a throwaway CA from `TestPki`): the store opens over
//! TLS when the server's certificate verifies against `--database-ca-file`, and refuses a
//! server that its CA file, or without one the system's roots, do not vouch for, whatever
//! the `sslmode`. `#[ignore]`d with the other PostgreSQL tests; `.ci/run` runs it.

use crate::support::bounded;
use fieldlink_platform::Database;
use fieldlink_platform::store::Store;
use fieldlink_testkit::mosquitto::{TestPki, free_port};
use fieldlink_testkit::postgres::{TlsServer, admin_url};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Opens the store on `url` with `ca_file`; the error as its message.
async fn open(url: String, ca_file: Option<&Path>, data_dir: &Path) -> Result<Store, String> {
    let database = Database::parse(&url, ca_file.map(Path::to_owned)).expect("a postgres URL");
    Store::open(&database, data_dir)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (FIELDLINK_TEST_POSTGRES and its server binaries); run by .ci/run"]
async fn the_store_uses_postgres_over_tls_only_with_a_server_its_ca_vouches_for() {
    if admin_url().is_none() {
        eprintln!("skipped: no PostgreSQL test server configured");
        return;
    }
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        // As root the server runs as the postgres user, which must reach its data dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pki = TestPki::generate(dir.path());
        let server = TlsServer::start(
            &dir.path().join("pg"),
            free_port(),
            &pki.server_cert,
            &pki.server_key,
        );
        let url = |mode: &str| format!("{}?sslmode={mode}", server.admin_url());
        let data = dir.path().join("data");

        let store = open(url("require"), Some(&pki.ca), &data)
            .await
            .expect("the store opens over TLS with the server's CA");
        let enterprises = store.enterprises().await.expect("a query over TLS");
        assert!(enterprises.is_empty(), "a fresh database: {enterprises:?}");
        drop(store);
        // The same server refuses a client without TLS, so the store above used TLS.
        let plain = open(url("disable"), None, &data).await.err();
        assert!(
            plain
                .as_deref()
                .is_some_and(|e| e.contains("no encryption")),
            "plain TCP refused: {plain:?}"
        );

        for (mode, ca_file, case) in [
            (
                "require",
                Some(pki.stranger_cert.as_path()),
                "another CA's file",
            ),
            (
                "prefer",
                Some(pki.stranger_cert.as_path()),
                "another CA's file, prefer",
            ),
            ("require", None, "the system's roots"),
            ("prefer", None, "the system's roots, prefer"),
        ] {
            let refused = open(url(mode), ca_file, &data).await.err();
            // Without a CA file on a host with no system roots at all, `require` stops
            // before connecting; everything else must be the handshake's refusal.
            let no_roots = ca_file.is_none()
                && refused
                    .as_deref()
                    .is_some_and(|e| e.contains("no trusted CA certificates"));
            assert!(
                no_roots
                    || refused
                        .as_deref()
                        .is_some_and(|e| e.contains("invalid peer certificate")),
                "{case}: an unverified server is refused, naming the certificate: {refused:?}"
            );
        }
        // `prefer` with the right CA file: TLS, verified.
        open(url("prefer"), Some(&pki.ca), &data)
            .await
            .expect("prefer uses the TLS the server offers");
    })
    .await;
}
