//! Secure endpoints, user login, the application certificate, and server certificates
//! that are not trusted yet.

use crate::support::{Running, device, has_bad, has_good};
use fieldlink_opcua::testing::{FOLDER, PASSWORD, TestServer, TestServerOptions, USER};
use fieldlink_opcua::{Identity, Policy, PolicyChoice, SecurityMode, ServerTrust, pki};
use fieldlink_wire::Value;
use opcua::crypto::CertificateStore;
use std::time::Duration;

fn secure_options(dir: &std::path::Path) -> TestServerOptions {
    TestServerOptions {
        secure: true,
        ..TestServerOptions::new(&dir.join("server"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_is_rejected_until_fieldlink_opcua_trust_then_sign_and_encrypt_with_login_works()
 {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(secure_options(dir.path())).await;
    let name = format!("{FOLDER}.Double");
    let mut d = device(
        &server.endpoint(),
        dir.path(),
        &[("Double", TestServer::node_text(&name))],
    );
    d.security.mode = SecurityMode::SignAndEncrypt;
    d.security.policy = PolicyChoice::Exact(Policy::Basic256Sha256);
    d.identity = Identity::UserName {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
    };
    let pki_dir = d.pki.dir.clone();
    let mut run = Running::start(d);

    // Rejected by default: bad samples that say why, and the certificate kept under
    // pki/rejected for the trust command.
    let thumbprint = server.certificate_thumbprint();
    assert!(
        run.until(Duration::from_secs(20), |s| has_bad(
            s,
            "Double",
            &format!("disconnected: the server's certificate {thumbprint} is not trusted")
        ))
        .await,
        "{:#?}",
        run.received
    );
    let listed = pki::list(&pki_dir).unwrap();
    assert!(
        listed
            .iter()
            .any(|c| !c.trusted && c.thumbprint == thumbprint),
        "{listed:#?}"
    );
    assert_eq!(
        server.session_count(),
        0,
        "a session was opened with an untrusted server"
    );

    // The application certificate was created on first start, naming the gateway.
    let own = CertificateStore::read_cert(&pki::own_certificate_path(&pki_dir)).unwrap();
    assert!(
        own.is_application_uri_valid("urn:fieldlink:gw-test")
            .is_ok()
    );

    // `fieldlink opcua trust <first 8 hex digits>`: the next attempt connects.
    let trusted = pki::trust(&pki_dir, &thumbprint[..8]).unwrap();
    assert!(trusted.starts_with(pki_dir.join("trusted")));
    assert!(
        run.until(Duration::from_secs(30), |s| has_good(
            s,
            "Double",
            &Value::Float(2.25)
        ))
        .await,
        "no data after trusting the server: {:#?}",
        run.received
    );
    assert_eq!(server.session_count(), 1);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_bad_sample_with_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(secure_options(dir.path())).await;
    let mut d = device(
        &server.endpoint(),
        dir.path(),
        &[("Double", TestServer::node_text(&format!("{FOLDER}.Double")))],
    );
    d.security.mode = SecurityMode::SignAndEncrypt;
    d.identity = Identity::UserName {
        user: USER.to_owned(),
        password: "wrong".to_owned(),
    };
    // Explicit opt-in: the server's certificate is accepted (and remembered) unseen.
    d.trust = ServerTrust::Any;
    let mut run = Running::start(d);
    assert!(
        run.until(Duration::from_secs(20), |s| has_bad(
            s,
            "Double",
            "disconnected: Bad"
        ))
        .await,
        "{:#?}",
        run.received
    );
    let text = format!("{:?}", run.received.last().map(|s| &s.quality));
    assert!(
        text.contains("BadUserAccessDenied") || text.contains("BadIdentityTokenRejected"),
        "{text}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_auto_takes_the_strongest_offered_and_sign_only_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(secure_options(dir.path())).await;
    let mut d = device(
        &server.endpoint(),
        dir.path(),
        &[("Double", TestServer::node_text(&format!("{FOLDER}.Double")))],
    );
    d.security.mode = SecurityMode::Sign;
    d.identity = Identity::UserName {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
    };
    d.trust = ServerTrust::Any;
    let mut run = Running::start(d);
    assert!(
        run.until(Duration::from_secs(20), |s| has_good(
            s,
            "Double",
            &Value::Float(2.25)
        ))
        .await,
        "{:#?}",
        run.received
    );
    run.stop().await;
    // "any" remembers the certificate in pki/trusted.
    let listed = pki::list(&dir.path().join("pki")).unwrap();
    assert!(listed.iter().any(|c| c.trusted), "{listed:#?}");
}
