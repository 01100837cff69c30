//! The ingest over TLS to a real mosquitto (installed by `.ci/run`; `#[ignore]`d for a
//! plain `cargo test`): with the broker's CA file it connects over `mqtts://` and stores
//! what a gateway publishes; with another CA's certificate it refuses the broker and
//! stores nothing.

use crate::support::{TestPlatform, batch, bounded, code, config, publish_batches};
use fieldlink_platform::{BrokerConfig, MqttUrl};
use fieldlink_testkit::mosquitto::{Mosquitto, TestPki, free_port};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

/// mosquitto with a plain listener (the gateways' side here) and a TLS listener (the
/// ingest's), anonymous clients allowed.
fn tls_mosquitto(pki: &TestPki) -> (Mosquitto, u16, u16) {
    let (plain, tls) = (free_port(), free_port());
    let conf = format!(
        "listener {plain} 127.0.0.1\nlistener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    );
    (Mosquitto::start(&conf, &[plain, tls]), plain, tls)
}

/// A platform whose ingest reads mosquitto's TLS listener, verifying it with `ca_file`.
async fn platform_over_tls(data_dir: &Path, tls_port: u16, ca_file: &Path) -> TestPlatform {
    let mut config = config(data_dir);
    config.broker = BrokerConfig::External {
        url: MqttUrl::parse(&format!("mqtts://127.0.0.1:{tls_port}")).unwrap(),
        ca_file: Some(ca_file.to_owned()),
        username: None,
        password: None,
    };
    TestPlatform::start_with(config).await
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn the_ingest_reads_an_mqtts_broker_verified_by_its_ca_file() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let (_broker, plain, tls) = tls_mosquitto(&pki);
        let mut p = platform_over_tls(&dir.path().join("data"), tls, &pki.ca).await;
        assert_eq!(
            p.mqtt_url,
            format!("mqtts://127.0.0.1:{tls}"),
            "gateways are told the TLS URL"
        );
        let c = code(71);
        p.register(&c, "optical-laser", "东湖新技术开发区", false)
            .await;
        let token = p.token(&c, 1).await;
        let (id, _password) = p.enroll(&token, "gw0").await;
        p.wait_ingest(WAIT, |s| s["data_connected"] == true).await;
        // The subscription follows the CONNACK: publish again until stored (the platform
        // drops the duplicates).
        let gateways = MqttUrl::parse(&format!("mqtt://127.0.0.1:{plain}")).unwrap();
        let batches = [batch(&id, 1, 30), batch(&id, 2, 30)];
        let deadline = tokio::time::Instant::now() + WAIT;
        while p.ingest_stats().await["batches_stored"] != 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing stored over TLS"
            );
            publish_batches(&gateways, &id, None, &batches).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stats = p.ingest_stats().await;
        assert_eq!(stats["samples_stored"], 60, "{stats}");
        let e = p.get(&format!("/api/v1/enterprises/{c}")).await;
        assert_eq!(e["on_cloud"], true, "{e}");
        p.stop().await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn the_ingest_refuses_an_mqtts_broker_its_ca_file_does_not_vouch_for() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let (_broker, plain, tls) = tls_mosquitto(&pki);
        // A certificate of another CA as the only trust anchor.
        let mut p = platform_over_tls(&dir.path().join("data"), tls, &pki.stranger_cert).await;
        let c = code(72);
        p.register(&c, "optical-laser", "东湖新技术开发区", false)
            .await;
        let token = p.token(&c, 1).await;
        let (id, _password) = p.enroll(&token, "gw0").await;
        let gateways = MqttUrl::parse(&format!("mqtt://127.0.0.1:{plain}")).unwrap();
        publish_batches(&gateways, &id, None, &[batch(&id, 1, 30)]).await;
        // Several reconnect attempts' worth of time (the backoff starts at 250 ms).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let stats = p.ingest_stats().await;
        assert_eq!(stats["data_connected"], false, "{stats}");
        assert_eq!(stats["batches_received"], 0, "{stats}");
        assert_eq!(stats["batches_stored"], 0, "{stats}");
        p.stop().await;
    })
    .await;
}
