//! The bureau's API: enterprises, the credit-code check, CSV import, tokens, auth.

use crate::support::{ADMIN, TestPlatform, bounded, code};
use fieldlink_platform::credit_code::{CreditCode, CreditCodeError};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn real_credit_codes_pass_the_check() {
    // The example printed in GB 32100-2015 itself, and the codes that Huawei
    // Technologies Co., Ltd., Shenzhen Tencent Computer Systems Co., Ltd. and Alibaba
    // (China) Co., Ltd. show on their business licences and the national enterprise
    // credit information publicity system.
    for valid in [
        "91350100M000100Y43",
        "914403001922038216",
        "91440300708461136T",
        "91330100799655058B",
        " 91330100799655058b ",
    ] {
        assert!(CreditCode::parse(valid).is_ok(), "{valid}");
    }
}

#[test]
fn invalid_credit_codes_say_why() {
    assert_eq!(
        CreditCode::parse("91350100M000100Y4"),
        Err(CreditCodeError::Length { found: 17 })
    );
    assert_eq!(
        CreditCode::parse("91350100M000100Y433"),
        Err(CreditCodeError::Length { found: 19 })
    );
    // I, O, S, V and Z are not in the code's alphabet.
    assert_eq!(
        CreditCode::parse("91350100MO00100Y43"),
        Err(CreditCodeError::InvalidCharacter {
            position: 10,
            character: 'O'
        })
    );
    assert_eq!(
        CreditCode::parse("91350100M000100Y44"),
        Err(CreditCodeError::CheckCharacter {
            expected: '3',
            found: '4'
        })
    );
    // Two digits swapped: the weighted sum catches transpositions.
    assert!(matches!(
        CreditCode::parse("914403001922032816"),
        Err(CreditCodeError::CheckCharacter { .. })
    ));
    let message = CreditCode::parse("91440300708461136X")
        .unwrap_err()
        .to_string();
    assert!(message.contains("expected T"), "{message}");
}

#[tokio::test]
async fn enterprises_are_created_listed_and_conflict() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let (status, body) = p
            .post(
                "/api/v1/enterprises",
                json!({"credit_code": "91350100M000100Y43", "name": "示例精密机械有限公司",
                       "industry": "auto-parts", "district": "武汉经济技术开发区", "in_program": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["credit_code"], "91350100M000100Y43");
        assert_eq!(body["pilot"], true);
        assert_eq!(body["district_kind"], "functional-zone");
        assert_eq!(body["on_cloud"], false);

        let (status, body) = p
            .post(
                "/api/v1/enterprises",
                json!({"credit_code": "91350100M000100Y43", "name": "again",
                       "industry": "auto-parts", "district": "洪山区"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "exists");

        for (field, value, error) in [
            ("credit_code", "91350100M000100Y44", "invalid_credit_code"),
            ("industry", "toys", "invalid_industry"),
            ("district", "洪山", "invalid_district"),
        ] {
            let mut request = json!({"credit_code": "914403001922038216", "name": "X",
                                     "industry": "biomedicine", "district": "洪山区"});
            request[field] = json!(value);
            let (status, body) = p.post("/api/v1/enterprises", request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], error);
            assert!(body["detail"].as_str().unwrap().len() > 10, "{body}");
        }
        let (_, body) = p
            .post(
                "/api/v1/enterprises",
                json!({"credit_code": "91350100M000100Y44", "name": "X", "industry": "biomedicine", "district": "洪山区"}),
            )
            .await;
        assert_eq!(
            body["detail"],
            "invalid credit code: wrong check character: expected 3, found 4"
        );

        let list = p.get("/api/v1/enterprises").await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["name"], "示例精密机械有限公司");
        assert_eq!(list[0]["gateways"], json!([]));
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_bureau_api_needs_the_bearer_token() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        for (method, path) in [
            (Method::GET, "/api/v1/enterprises"),
            (Method::POST, "/api/v1/enterprises"),
            (Method::POST, "/api/v1/enterprises/import"),
            (
                Method::POST,
                "/api/v1/enterprises/91350100M000100Y43/tokens",
            ),
            (Method::GET, "/api/v1/stats/onboarding"),
            (Method::GET, "/api/v1/stats/ingest"),
        ] {
            let url = format!("{}{path}", p.base);
            let without = p.http.request(method.clone(), &url).send().await.unwrap();
            assert_eq!(without.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(without.headers()["www-authenticate"], "Bearer");
            let body: serde_json::Value = without.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized");
            let wrong = p
                .http
                .request(method.clone(), &url)
                .bearer_auth(format!("{ADMIN}x"))
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
            let basic = p
                .http
                .request(method, &url)
                .basic_auth("bureau", Some(ADMIN))
                .send()
                .await
                .unwrap();
            assert_eq!(basic.status(), StatusCode::UNAUTHORIZED, "{path}");
        }
        // Enrollment is authorised by its token, not the bureau's.
        let (status, body) = p.try_enroll("no-such-token", "line-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_token");
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn csv_import_reports_every_bad_line_and_imports_nothing() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let import = |text: String| {
            p.bureau(Method::POST, "/api/v1/enterprises/import")
                .header("content-type", "text/csv")
                .body(text)
                .send()
        };
        let bad = format!(
            "credit_code,name,industry,district,in_program\n\
             {},一号企业,optical-laser,江岸区,true\n\
             91350100M000100Y44,坏校验位,auto-parts,洪山区,false\n\
             {},二号企业,food-processing,黄陂区,否\n\
             {},三号企业,steel,黄陂区,no\n\
             {},四号企业,biomedicine,光谷,no\n\
             {},重复,biomedicine,新洲区,maybe\n\
             {},\"名称, 带逗号\",textile-apparel,长江新区,1\n\
             {},重复,biomedicine,新洲区,0\n",
            code(1),
            code(2),
            code(3),
            code(4),
            code(5),
            code(6),
            code(1)
        );
        let response = import(bad).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_csv");
        let lines: Vec<u64> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [3, 5, 6, 7, 9], "{body}");
        let errors = body["errors"].to_string();
        assert!(errors.contains("expected 3"), "{errors}");
        assert!(errors.contains("steel"), "{errors}");
        assert!(errors.contains("光谷"), "{errors}");
        assert!(errors.contains("maybe"), "{errors}");
        assert!(errors.contains("also on line 2"), "{errors}");
        assert_eq!(p.get("/api/v1/enterprises").await, json!([]));

        let good = format!(
            "\u{feff}name,credit_code,industry,district\n\
             一号企业,{},optical-laser,江岸区\n\
             \"名称, 带逗号\",{},textile-apparel,长江新区\n",
            code(1),
            code(6)
        );
        let response = import(good.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["imported"], 2);
        let list = p.get("/api/v1/enterprises").await;
        assert_eq!(list.as_array().unwrap().len(), 2);
        assert!(list.to_string().contains("名称, 带逗号"));

        let again = import(good).await.unwrap();
        assert_eq!(again.status(), StatusCode::CONFLICT);

        let header = import("code,name\nx,y\n".to_owned()).await.unwrap();
        assert_eq!(header.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = header.json().await.unwrap();
        assert_eq!(body["errors"][0]["line"], 1, "{body}");
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tokens_are_issued_with_limits_and_stored_only_as_hashes() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let c = code(7);
        p.register(&c, "new-materials", "青山区", false).await;
        let (status, body) = p
            .post(
                &format!("/api/v1/enterprises/{c}/tokens"),
                json!({"expires_in_days": 7, "max_gateways": 3}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().unwrap().to_owned();
        assert!(token.len() >= 43, "at least 256 bits: {token}");
        assert_eq!(body["max_gateways"], 3);
        assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

        // Defaults, and an empty body.
        let response = p
            .bureau(Method::POST, &format!("/api/v1/enterprises/{c}/tokens"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["max_gateways"], 1);
        assert_ne!(body["token"], token.as_str());

        for bad in [
            json!({"expires_in_days": 0}),
            json!({"expires_in_days": 366}),
            json!({"max_gateways": 0}),
            json!({"max_gateways": 3, "extra": 1}),
        ] {
            let (status, body) = p
                .post(&format!("/api/v1/enterprises/{c}/tokens"), bad.clone())
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        let (status, _) = p
            .post(
                &format!("/api/v1/enterprises/{}/tokens", code(8)),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The database holds the token's SHA-256, never the token.
        let db = p.stored_bytes().await;
        p.stop().await;
        assert!(
            !contains(&db, token.as_bytes()),
            "the plain token is stored"
        );
        let digest = fieldlink_platform::secret::sha256_hex(&token);
        assert!(
            contains(&db, digest.as_bytes()),
            "the token's hash is stored"
        );
    })
    .await;
}

/// True if `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read_whole() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let huge = vec![b'x'; fieldlink_platform::api::MAX_BODY_BYTES + 1];
        for (path, content_type) in [
            ("/api/v1/enroll", "application/json"),
            ("/api/v1/enterprises", "application/json"),
            ("/api/v1/enterprises/import", "text/csv"),
            ("/api/v1/users", "application/json"),
            ("/login", "application/x-www-form-urlencoded"),
        ] {
            let response = p
                .bureau(Method::POST, path)
                .header("content-type", content_type)
                .body(huge.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "POST {path}"
            );
        }
        // Just under the limit is read (and refused for what it says).
        let response = p
            .http
            .post(format!("{}/api/v1/enroll", p.base))
            .header("content-type", "application/json")
            .body(vec![b' '; fieldlink_platform::api::MAX_BODY_BYTES - 10])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        p.stop().await;
    })
    .await;
}
