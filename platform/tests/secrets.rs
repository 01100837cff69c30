//! Secrets never reach the logs: with every target at TRACE, a run through enrollment,
//! user creation, a failed and a good login and a gateway connecting logs none of the
//! bureau token, the enrollment token, the gateway's MQTT password, the user's password
//! (right or wrong) or the session cookie.

use crate::support::{ADMIN, TestPlatform, bounded, code};
use crate::ui::Browser;
use fieldlink_testkit::LogCapture;
use reqwest::{Method, StatusCode};
use std::time::Duration;

#[tokio::test]
async fn no_secret_is_logged_even_at_trace() {
    // A current-thread runtime: the platform's tasks log into the capture.
    let capture = LogCapture::default();
    let guard = capture.install_at(tracing::Level::TRACE);
    let mut secrets: Vec<(&str, String)> = vec![("bureau token", ADMIN.to_owned())];
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let enterprise = code(9101);
        p.register(&enterprise, "auto-parts", "江夏区", true).await;
        let token = p.token(&enterprise, 2).await;
        let (gateway, password) = p.enroll(&token, "line-1").await;
        secrets.push(("enrollment token", token.clone()));
        secrets.push(("gateway password", password.clone()));
        let (_, rotated) = p.enroll(&token, "line-1").await;
        secrets.push(("rotated gateway password", rotated.clone()));

        let user_password = "Sup3r-secret user password";
        let response = p
            .bureau(Method::POST, "/api/v1/users")
            .json(&serde_json::json!({"username": "ops-1", "password": user_password, "role": "bureau"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        secrets.push(("user password", user_password.to_owned()));
        let (status, answer) = p
            .post("/api/v1/users/ops-1/tokens", serde_json::json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let api_token = answer["token"].as_str().unwrap().to_owned();
        // Used once, so its check passes through the code that could log it.
        let used = p
            .http
            .get(format!("{}/api/v1/stats/ingest", p.base))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(used.status(), StatusCode::OK);
        secrets.push(("user API token", api_token));
        let mut browser = Browser::new(&p);
        let wrong = "a wrong guess of the password";
        assert_eq!(
            browser.login("ops-1", wrong).await.status,
            StatusCode::UNAUTHORIZED
        );
        secrets.push(("wrong password", wrong.to_owned()));
        assert_eq!(
            browser.login("ops-1", user_password).await.status,
            StatusCode::SEE_OTHER
        );
        secrets.push(("session cookie", browser.cookies["fl_session"].clone()));

        let mut gw = crate::support::connect(&p.mqtt, &gateway, Some((&gateway, &rotated)))
            .await
            .expect("the gateway connects");
        gw.publish_batch(&gateway, &crate::support::batch(&gateway, 0, 3))
            .await;
        p.wait_ingest(Duration::from_secs(20), |s| s["batches_stored"] == 1)
            .await;
        gw.disconnect().await;
        p.stop().await;
    })
    .await;
    drop(guard);
    let logs = capture.lines().join("\n");
    assert!(
        logs.contains("gateway enrolled") && logs.contains("login refused"),
        "the capture saw the platform's logs:\n{logs}"
    );
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "the {what} is in the logs");
    }
}
