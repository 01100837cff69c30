//! Secure endpoints, user login, the application certificate, and server certificates
//! that are not trusted yet.

use crate::support::{Running, device, has_bad, has_good};
use fieldlink_opcua::testing::{
    FOLDER, PASSWORD, TestServer, TestServerOptions, USER, create_certificate,
};
use fieldlink_opcua::{Identity, Policy, PolicyChoice, SecurityMode, ServerTrust, pki};
use fieldlink_wire::Value;
use opcua::crypto::CertificateStore;
use std::path::Path;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_user_certificate_logs_in_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (user_cert, user_key) = create_certificate(dir.path(), "operator", "urn:plant:operator");
    let (other_cert, other_key) = create_certificate(dir.path(), "stranger", "urn:plant:stranger");
    let server = TestServer::start(TestServerOptions {
        user_certificate: Some(user_cert.clone()),
        ..secure_options(dir.path())
    })
    .await;
    let x509_device = |certificate, private_key| {
        let mut d = device(
            &server.endpoint(),
            dir.path(),
            &[("Double", TestServer::node_text(&format!("{FOLDER}.Double")))],
        );
        d.security.mode = SecurityMode::SignAndEncrypt;
        d.identity = Identity::X509 {
            certificate,
            private_key,
        };
        d.trust = ServerTrust::Any;
        d
    };

    // A certificate the server does not know: refused, and the sample says so.
    let mut run = Running::start(x509_device(other_cert, other_key));
    assert!(
        run.until(Duration::from_secs(20), |s| has_bad(
            s,
            "Double",
            "disconnected: BadIdentityTokenRejected: the server refused the identity"
        ))
        .await,
        "{:#?}",
        run.received
    );
    run.stop().await;

    let mut run = Running::start(x509_device(user_cert, user_key));
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
}

/// Replaces `target` with a copy of `source` in one rename, as an operator's tooling should.
fn replace_file(source: &Path, target: &Path) {
    let temporary = target.with_extension("incoming");
    std::fs::copy(source, &temporary).unwrap();
    std::fs::rename(&temporary, target).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificates_take_effect_on_the_next_reconnect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let mut d = device("opc.tcp://127.0.0.1:1/", &state, &[]);
    let pki_dir = d.pki.dir.clone();
    let own_cert = pki::own_certificate_path(&pki_dir);
    let own_key = pki_dir.join("private").join("private.pem");
    pki::ensure_application_certificate(&d.pki).unwrap();

    // The server trusts only the gateway's current certificate, and the gateway only the
    // server's.
    let options = TestServerOptions {
        trust_any_client: false,
        ..secure_options(&dir.path().join("first"))
    };
    options.trust_only_clients(&[&own_cert]);
    let server = TestServer::start(options).await;
    pki::trust(&pki_dir, server.certificate_path().to_str().unwrap()).unwrap();
    let old_server_cert = pki_dir
        .join("trusted")
        .join(CertificateStore::cert_file_name(
            &CertificateStore::read_cert(&server.certificate_path()).unwrap(),
        ));
    assert!(old_server_cert.exists());
    d = device(
        &server.endpoint(),
        &state,
        &[("Double", TestServer::node_text(&format!("{FOLDER}.Double")))],
    );
    d.security.mode = SecurityMode::SignAndEncrypt;
    d.identity = Identity::UserName {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
    };
    let mut run = Running::start(d);
    let good = |s: &[fieldlink_wire::Sample]| has_good(s, "Double", &Value::Float(2.25));
    assert!(
        run.until(Duration::from_secs(20), good).await,
        "{:#?}",
        run.received
    );

    // While the agent runs: its certificate and key files are replaced, the server trusts
    // only the new certificate, and the server comes back with a certificate of its own.
    let (new_cert, new_key) =
        create_certificate(dir.path(), "gateway-new", "urn:fieldlink:gw-test");
    replace_file(&new_key, &own_key);
    replace_file(&new_cert, &own_cert);
    let mut options = server.stop().await;
    options.pki_dir = dir.path().join("second").join("server");
    options.trust_only_clients(&[&new_cert]);
    let server = TestServer::start(options).await;
    let thumbprint = server.certificate_thumbprint();
    assert!(
        run.until(Duration::from_secs(30), |s| has_bad(
            s,
            "Double",
            &format!("disconnected: the server's certificate {thumbprint} is not trusted")
        ))
        .await,
        "{:#?}",
        run.received
    );

    // The operator swaps the trusted server certificate: the next attempt connects with the
    // new application certificate (the server would refuse the old one).
    std::fs::remove_file(&old_server_cert).unwrap();
    pki::trust(&pki_dir, server.certificate_path().to_str().unwrap()).unwrap();
    assert!(
        run.until(Duration::from_secs(30), good).await,
        "no data after the certificates were replaced: {:#?}",
        run.received
    );
    assert_eq!(server.session_count(), 1);
    // The agent kept the operator's certificate rather than making its own.
    assert_eq!(
        std::fs::read(&own_cert).unwrap(),
        std::fs::read(&new_cert).unwrap()
    );
    run.stop().await;
}
