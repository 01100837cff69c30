//! Enrollment: credentials, gateway ids, token expiry and limits, rotation.

use crate::registry::contains;
use crate::support::{TestPlatform, bounded, code};
use fieldlink_platform::clock::now_ms;
use fieldlink_platform::secret::sha256_hex;
use fieldlink_platform::store::NewToken;
use fieldlink_wire::topic::is_valid_gateway_id;
use reqwest::StatusCode;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn enrollment_hands_out_broker_credentials_once() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let c = code(11);
        p.register(&c, "optical-laser", "东湖新技术开发区", true)
            .await;
        let token = p.token(&c, 2).await;
        let (status, body) = p.try_enroll(&token, "line-1").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["gateway_id"].as_str().unwrap();
        assert_eq!(id, format!("{c}-line-1"));
        assert!(is_valid_gateway_id(id));
        assert_eq!(body["enterprise"]["credit_code"], c.as_str());
        assert_eq!(body["enterprise"]["name"], format!("企业 {c}"));
        assert_eq!(body["mqtt"]["url"], p.mqtt_url.as_str());
        assert_eq!(body["mqtt"]["username"], id);
        let password = body["mqtt"]["password"].as_str().unwrap().to_owned();
        assert!(password.len() >= 32);

        // A Chinese name gets a stable, topic-safe id.
        let (status, body) = p.try_enroll(&token, "二号车间 网关").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id2 = body["gateway_id"].as_str().unwrap().to_owned();
        assert!(is_valid_gateway_id(&id2) && id2.starts_with(&c), "{id2}");

        let enterprise = p.get(&format!("/api/v1/enterprises/{c}")).await;
        assert_eq!(enterprise["enrolled"], true);
        assert_eq!(enterprise["gateways"].as_array().unwrap().len(), 2);
        assert_eq!(enterprise["gateways"][0]["online"], false);

        let (status, body) = p.try_enroll(&token, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        let db = p.stored_bytes().await;
        p.stop().await;
        assert!(
            !contains(&db, password.as_bytes()),
            "the plain password is stored"
        );
        assert!(
            contains(&db, b"$7$101$"),
            "mosquitto-format hashes are stored"
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_enrolls_at_most_its_gateways_and_reenrolling_rotates() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let c = code(12);
        p.register(&c, "auto-parts", "汉阳区", false).await;
        let token = p.token(&c, 2).await;
        let (a, a_password) = p.enroll(&token, "a").await;
        p.enroll(&token, "b").await;
        let (status, body) = p.try_enroll(&token, "c").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "token_used_up");

        // Re-enrolling "a" takes no new slot and replaces its password.
        let (status, body) = p.try_enroll(&token, "a").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["gateway_id"], a.as_str());
        assert_eq!(body["rotated"], true);
        assert_ne!(body["mqtt"]["password"], a_password.as_str());

        // Another token of the same enterprise has its own slots.
        let second = p.token(&c, 1).await;
        p.enroll(&second, "c").await;
        let enterprise = p.get(&format!("/api/v1/enterprises/{c}")).await;
        assert_eq!(enterprise["gateways"].as_array().unwrap().len(), 3);
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn expired_and_unknown_tokens_are_401() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let c = code(13);
        p.register(&c, "biomedicine", "江夏区", false).await;
        // A token that expired a minute ago, stored as the API would store it.
        let expired = "expired-token-for-the-test-0123456789abcdef";
        let store = p.platform.as_ref().unwrap().registry().store().clone();
        assert!(
            store
                .insert_token(NewToken {
                    credit_code: c.clone(),
                    token_sha256: sha256_hex(expired),
                    created_at: now_ms() - 86_400_000,
                    expires_at: now_ms() - 60_000,
                    max_gateways: 5,
                })
                .await
                .unwrap()
        );
        let (status, body) = p.try_enroll(expired, "line-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "token_expired");
        assert!(body["detail"].as_str().unwrap().contains("expired"));

        let valid = p.token(&c, 1).await;
        let (status, body) = p.try_enroll(&format!("{valid}x"), "line-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_token");
        let (status, _) = p.try_enroll(&valid, "line-1").await;
        assert_eq!(status, StatusCode::CREATED);
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn repeated_failed_enrollments_close_the_address_for_a_while() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let c = code(14);
        p.register(&c, "biomedicine", "江夏区", false).await;
        let valid = p.token(&c, 3).await;
        // Successes never count: enrolling several gateways is not slowed.
        for name in ["line-1", "line-2"] {
            let (status, _) = p.try_enroll(&valid, name).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        for attempt in 0..fieldlink_platform::limiter::MAX_FAILURES {
            let (status, body) = p.try_enroll(&format!("guess-{attempt}"), "x").await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "attempt {attempt}: {body}"
            );
        }
        let response = p
            .http
            .post(format!("{}/api/v1/enroll", p.base))
            .json(&serde_json::json!({"token": valid, "gateway_name": "line-3"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 60 && retry <= 900, "Retry-After {retry}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_many_failures");
        p.stop().await;
    })
    .await;
}
