//! The broker hook over HTTP, as EMQX calls it: a gateway authenticates with its
//! enrollment password and may publish only under its own id; the ingest user
//! authenticates with the platform's broker password; a call without the hook's token is
//! refused; without a token configured the routes do not exist.

use crate::support::{TestPlatform, bounded, code, config};
use fieldlink_platform::{BrokerConfig, MqttUrl};
use fieldlink_testkit::mosquitto::free_port;
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use std::time::Duration;

const HOOK: &str = "broker-hook-token";

async fn call(
    platform: &TestPlatform,
    path: &str,
    token: Option<&str>,
    body: Json,
) -> (StatusCode, Json) {
    let mut request = platform
        .http
        .post(format!("{}/api/v1/broker/{path}", platform.base))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Json::Null))
}

#[tokio::test]
async fn the_hook_authenticates_gateways_and_the_ingest_and_confines_gateways_to_their_topics() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        // A broker that is not there: the ingest retries in the background; the hook is
        // what is tested, with the ingest's credentials it knows.
        config.broker = BrokerConfig::External {
            url: MqttUrl::parse(&format!("mqtt://127.0.0.1:{}", free_port())).unwrap(),
            ca_file: None,
            username: Some("fieldlink-ingest".to_owned()),
            password: Some("ingest-secret".to_owned()),
        };
        config.broker_hook_token = Some(HOOK.to_owned());
        let mut platform = TestPlatform::start_with(config).await;
        let enterprise = code(7001);
        platform
            .register(&enterprise, "auto-parts", "东湖新技术开发区", true)
            .await;
        let token = platform.token(&enterprise, 2).await;
        let (gateway, password) = platform.enroll(&token, "line-1").await;

        let authn = |user: &str, pw: &str| json!({"username": user, "password": pw, "clientid": user});
        let allow = json!({"result": "allow", "is_superuser": false});
        let deny = json!({"result": "deny", "is_superuser": false});
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn(&gateway, &password)).await,
            (StatusCode::OK, allow.clone())
        );
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn(&gateway, "wrong")).await,
            (StatusCode::OK, deny.clone())
        );
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn("not-enrolled", &password)).await,
            (StatusCode::OK, deny.clone())
        );
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn("fieldlink-ingest", "ingest-secret")).await,
            (StatusCode::OK, allow)
        );
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn("fieldlink-ingest", "guess")).await,
            (StatusCode::OK, deny)
        );

        // Re-enrolling rotates the password: the old one stops working at once.
        let (_, rotated) = platform.enroll(&token, "line-1").await;
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn(&gateway, &password)).await.1["result"],
            "deny"
        );
        assert_eq!(
            call(&platform, "authn", Some(HOOK), authn(&gateway, &rotated)).await.1["result"],
            "allow"
        );

        let authz = |user: &str, topic: String, action: &str| {
            json!({"username": user, "topic": topic, "action": action})
        };
        let verdict = |body: Json| async { call(&platform, "authz", Some(HOOK), body).await.1["result"].clone() };
        assert_eq!(verdict(authz(&gateway, format!("fieldlink/v1/{gateway}/data"), "publish")).await, "allow");
        assert_eq!(verdict(authz(&gateway, "fieldlink/v1/other-gw/data".into(), "publish")).await, "deny");
        assert_eq!(verdict(authz(&gateway, "fieldlink/v1/#".into(), "subscribe")).await, "deny");
        // Its own config it reads; another gateway's it does not, and it writes none.
        assert_eq!(verdict(authz(&gateway, format!("fieldlink/v1/{gateway}/config"), "subscribe")).await, "allow");
        assert_eq!(verdict(authz(&gateway, "fieldlink/v1/other-gw/config".into(), "subscribe")).await, "deny");
        assert_eq!(verdict(authz(&gateway, format!("fieldlink/v1/{gateway}/config"), "publish")).await, "deny");
        assert_eq!(
            verdict(authz("fieldlink-ingest", format!("fieldlink/v1/{gateway}/config"), "publish")).await,
            "allow"
        );
        assert_eq!(
            verdict(authz("fieldlink-ingest", "$share/fieldlink-ingest/fieldlink/v1/+/data".into(), "subscribe")).await,
            "allow"
        );

        // The broker must present the token.
        let (status, _) = call(&platform, "authn", None, authn(&gateway, &rotated)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&platform, "authz", Some("wrong"), authz(&gateway, String::new(), "publish")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        platform.stop().await;

        // Without a hook token the routes are off.
        let off_dir = tempfile::tempdir().unwrap();
        let mut off = TestPlatform::start(off_dir.path()).await;
        let (status, _) = call(&off, "authn", Some(HOOK), authn(&gateway, &rotated)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        off.stop().await;
    })
    .await;
}
