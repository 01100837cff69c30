//! Interop with a real mosquitto, over plain TCP, TLS and mutual TLS. These need
//! mosquitto installed; `.ci/run` installs it and runs them with `--ignored`.

use fieldlink_tests::mosquitto::{Mosquitto, TestPki, free_port};
use fieldlink_tests::{
    CountingDevice, Recorder, agent_config, counted_values, counting_config, loss_report,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs the agent with `platform` (a `[platform]` table body) against a counting device,
/// recording from mosquitto's plain listener `plain`, until `for_at_least` samples arrive
/// or the wait ends (5 s when none are expected); returns the good values delivered.
async fn run_agent(gateway: &str, platform: &str, plain: u16, for_at_least: usize) -> Vec<u64> {
    let device = CountingDevice::start(loopback(0)).await;
    let recorder = Recorder::start(loopback(plain), &format!("fieldlink/v1/{gateway}/#")).await;
    let state = tempfile::tempdir().expect("tempdir");
    let toml = counting_config(gateway, device.addr(), loopback(plain), "20ms");
    let toml = toml.replace(
        &format!("[platform]\nmqtt = \"mqtt://{}\"\n", loopback(plain)),
        &format!("[platform]\n{platform}\n"),
    );
    let config = agent_config(&toml, state.path());
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));
    let limit = Duration::from_secs(if for_at_least <= 1 { 5 } else { 15 });
    recorder
        .wait_for(limit, |m| counted_values(m).0.len() >= for_at_least)
        .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let served = device.stop().await;
    let (values, _) = counted_values(&recorder.messages());
    if !values.is_empty() {
        let (missing, _) = loss_report(&values, served);
        assert!(missing.is_empty(), "samples lost: {missing:?}");
    }
    recorder.stop().await;
    values
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn the_agent_publishes_to_mosquitto() {
    let port = free_port();
    let _broker = Mosquitto::start(&format!("listener {port} 127.0.0.1"), &[port]);
    let values = run_agent(
        "gw-plain",
        &format!("mqtt = \"mqtt://127.0.0.1:{port}\""),
        port,
        50,
    )
    .await;
    assert!(values.len() >= 50, "only {} samples arrived", values.len());
}

fn tls_broker(pki: &TestPki, require_certificate: bool) -> (Mosquitto, u16, u16) {
    let (plain, tls) = (free_port(), free_port());
    let conf = format!(
        "listener {plain} 127.0.0.1\nlistener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    );
    (Mosquitto::start(&conf, &[plain, tls]), plain, tls)
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn tls_verifies_the_broker_against_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path());
    let (_broker, plain, tls) = tls_broker(&pki, false);
    let platform = format!(
        "mqtt = \"mqtts://127.0.0.1:{tls}\"\nca_file = \"{}\"",
        pki.ca.display()
    );
    let values = run_agent("gw-tls", &platform, plain, 20).await;
    assert!(
        values.len() >= 20,
        "only {} samples arrived over TLS",
        values.len()
    );
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn tls_refuses_a_broker_its_ca_did_not_sign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path());
    let (_broker, plain, tls) = tls_broker(&pki, false);
    // The stranger's certificate is not a CA for the server: verification must fail.
    let platform = format!(
        "mqtt = \"mqtts://127.0.0.1:{tls}\"\nca_file = \"{}\"",
        pki.stranger_cert.display()
    );
    let values = run_agent("gw-untrusted", &platform, plain, 1).await;
    assert!(
        values.is_empty(),
        "data went to a broker that could not be verified"
    );
}

#[tokio::test]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path());
    let (_broker, plain, tls) = tls_broker(&pki, true);
    let base = format!(
        "mqtt = \"mqtts://127.0.0.1:{tls}\"\nca_file = \"{}\"",
        pki.ca.display()
    );
    let with_cert = format!(
        "{base}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let values = run_agent("gw-mtls", &with_cert, plain, 20).await;
    assert!(
        values.len() >= 20,
        "only {} samples arrived over mutual TLS",
        values.len()
    );

    let stranger = format!(
        "{base}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        pki.stranger_cert.display(),
        pki.stranger_key.display()
    );
    assert!(
        run_agent("gw-stranger", &stranger, plain, 1)
            .await
            .is_empty(),
        "a certificate from another CA was accepted"
    );
    assert!(
        run_agent("gw-nocert", &base, plain, 1).await.is_empty(),
        "a client without a certificate was accepted"
    );
}
