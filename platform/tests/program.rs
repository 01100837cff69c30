//! The plan's classes and targets over the HTTP API: an enterprise's size, specialised
//! class and maturity assessments (registration, CSV import, `PUT`), each validated and
//! kept by who may set them; the enterprise list filtered by them; and
//! `GET /api/v1/stats/program` against a seeded city whose figures are worked out by hand,
//! for the bureau and for each district's users.

use crate::support::{ADMIN, TestPlatform, batch, bounded, code, publish_batches};
use fieldlink_platform::clock::{DAY_MS, now_ms, rfc3339};
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";

/// A call as the holder of `token`: the status and the JSON answer.
async fn call(
    p: &TestPlatform,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Json>,
) -> (StatusCode, Json) {
    let mut request = p
        .http
        .request(method, format!("{}{path}", p.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
    )
}

/// Creates the user `username` of `role` in `scope` and returns an API token of it.
async fn user(p: &TestPlatform, username: &str, role: &str, scope: Option<&str>) -> String {
    let (status, body) = p
        .post(
            "/api/v1/users",
            json!({"username": username, "password": PASSWORD, "role": role, "scope": scope}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = p
        .post(&format!("/api/v1/users/{username}/tokens"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn classes_and_assessments_are_validated_kept_and_set_by_the_bureau_only() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let (a, b) = (code(301), code(302));
        // Registered with its classes and an assessment; B without any: nothing recorded.
        let (status, body) = p
            .post(
                "/api/v1/enterprises",
                json!({"credit_code": a, "name": "甲", "industry": "auto-parts",
                       "district": "洪山区", "in_program": true, "size": "above",
                       "specialised": "little_giant",
                       "maturity": {"level": 2, "assessed_at": "2025-03-01", "assessor": "评估院"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            (&body["size"], &body["specialised"], &body["maturity"]["level"]),
            (&json!("above"), &json!("little_giant"), &json!(2)),
            "{body}"
        );
        // A date is the start of that day in the program's zone (UTC+08:00).
        assert_eq!(body["maturity"]["assessed_at"], "2025-02-28T16:00:00.000Z");
        assert_eq!(body["maturity_history"].as_array().unwrap().len(), 1);
        p.register(&b, "biomedicine", "江岸区", false).await;
        let got = p.get(&format!("/api/v1/enterprises/{b}")).await;
        assert_eq!(
            (&got["size"], &got["specialised"], &got["maturity"], &got["maturity_history"]),
            (&Json::Null, &Json::Null, &Json::Null, &json!([])),
            "{got}"
        );

        for (body, words) in [
            (json!({"size": "big"}), "unknown size \"big\""),
            (json!({"specialised": "national"}), "unknown specialised class"),
            (json!({}), "nothing to change"),
            (json!({"size": "above", "name": "x"}), "unknown field"),
        ] {
            let answer = p
                .bureau(Method::PUT, &format!("/api/v1/enterprises/{b}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
            let error: Json = answer.json().await.unwrap();
            assert!(error["detail"].as_str().unwrap().contains(words), "{body}: {error}");
        }
        let tomorrow = rfc3339(now_ms() + DAY_MS);
        for (body, field) in [
            (json!({"level": 0, "assessed_at": "2025-03-01", "assessor": "评估院"}), "level"),
            (json!({"level": 5, "assessed_at": "2025-03-01", "assessor": "评估院"}), "level"),
            (json!({"level": 2, "assessed_at": tomorrow, "assessor": "评估院"}), "assessed_at"),
            (json!({"level": 2, "assessed_at": "2025-02-30", "assessor": "评估院"}), "assessed_at"),
            (json!({"level": 2, "assessed_at": "yesterday", "assessor": "评估院"}), "assessed_at"),
            (json!({"level": 2, "assessed_at": "2025-03-01", "assessor": "  "}), "assessor"),
            (json!({"level": 2, "assessed_at": "2025-03-01"}), "assessor"),
        ] {
            let (status, error) = call(
                &p,
                ADMIN,
                Method::PUT,
                &format!("/api/v1/enterprises/{b}/maturity"),
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
            assert!(error["detail"].as_str().unwrap().contains(field), "{body}: {error}");
        }
        // A bad assessment at registration refuses the registration.
        let (status, body) = p
            .post(
                "/api/v1/enterprises",
                json!({"credit_code": code(303), "name": "丙", "industry": "auto-parts",
                       "district": "洪山区", "maturity": {"level": 9, "assessed_at": "2025-03-01", "assessor": "x"}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = call(
            &p,
            ADMIN,
            Method::PUT,
            &format!("/api/v1/enterprises/{}/maturity", code(304)),
            Some(json!({"level": 2, "assessed_at": "2025-03-01", "assessor": "x"})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The bureau sets B's classes one at a time; its assessments are kept, the newest by
        // date current whatever the order they are recorded in.
        for body in [json!({"size": "below"}), json!({"specialised": "provincial"})] {
            let (status, got) = call(&p, ADMIN, Method::PUT, &format!("/api/v1/enterprises/{b}"), Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{got}");
        }
        for (level, at) in [(3, "2025-05-01T10:00:00+08:00"), (1, "2024-11-20")] {
            let (status, got) = call(
                &p,
                ADMIN,
                Method::PUT,
                &format!("/api/v1/enterprises/{b}/maturity"),
                Some(json!({"level": level, "assessed_at": at, "assessor": " 第三方评估机构 "})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{got}");
        }
        let got = p.get(&format!("/api/v1/enterprises/{b}")).await;
        assert_eq!((&got["size"], &got["specialised"]), (&json!("below"), &json!("provincial")));
        assert_eq!(got["maturity"], json!({"level": 3, "assessed_at": "2025-05-01T02:00:00.000Z"}));
        let levels: Vec<(u64, &str)> = got["maturity_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["level"].as_u64().unwrap(), h["assessor"].as_str().unwrap()))
            .collect();
        assert_eq!(levels, [(3, "第三方评估机构"), (1, "第三方评估机构")]);
        // The list carries the current maturity, not the history.
        let list = p.get("/api/v1/enterprises").await;
        let listed = list.as_array().unwrap().iter().find(|e| e["credit_code"] == b.as_str()).unwrap();
        assert_eq!(listed["maturity"]["level"], 3);
        assert!(listed.get("maturity_history").is_none(), "{listed}");

        // Who may: the bureau sets classes and assessments; the district of B sees B and
        // may not (403), another district does not see it (404); B itself may set its
        // sharing through the same call, not its classes.
        let hongshan = user(&p, "dist-hs", "district", Some("洪山区")).await;
        let jiangan = user(&p, "dist-ja", "district", Some("江岸区")).await;
        let owner = user(&p, "ent-b", "enterprise", Some(&b)).await;
        let maturity = json!({"level": 2, "assessed_at": "2025-03-01", "assessor": "x"});
        for (token, method, path, body, expect) in [
            (&jiangan, Method::PUT, format!("/api/v1/enterprises/{b}"), json!({"size": "above"}), StatusCode::FORBIDDEN),
            (&hongshan, Method::PUT, format!("/api/v1/enterprises/{b}"), json!({"size": "above"}), StatusCode::NOT_FOUND),
            (&jiangan, Method::PUT, format!("/api/v1/enterprises/{b}/maturity"), maturity.clone(), StatusCode::FORBIDDEN),
            (&hongshan, Method::PUT, format!("/api/v1/enterprises/{b}/maturity"), maturity.clone(), StatusCode::NOT_FOUND),
            (&owner, Method::PUT, format!("/api/v1/enterprises/{b}"), json!({"specialised": "none"}), StatusCode::FORBIDDEN),
            (&owner, Method::PUT, format!("/api/v1/enterprises/{b}/maturity"), maturity.clone(), StatusCode::FORBIDDEN),
            (&owner, Method::PUT, format!("/api/v1/enterprises/{b}"), json!({"size": "above", "share_data_with_bureau": true}), StatusCode::FORBIDDEN),
            (&owner, Method::PUT, format!("/api/v1/enterprises/{b}"), json!({"share_data_with_bureau": true}), StatusCode::OK),
        ] {
            let (status, got) = call(&p, token, method.clone(), &path, Some(body.clone())).await;
            assert_eq!(status, expect, "{method} {path} {body}: {got}");
        }
        let (status, got) = call(&p, ADMIN, Method::PUT, &format!("/api/v1/enterprises/{b}"), Some(json!({"share_data_with_bureau": false}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "the bureau does not set the sharing: {got}");
        let got = p.get(&format!("/api/v1/enterprises/{b}")).await;
        assert_eq!(
            (&got["size"], &got["specialised"], &got["share_data_with_bureau"], &got["maturity"]["level"]),
            (&json!("below"), &json!("provincial"), &json!(true), &json!(3)),
            "nothing refused changed anything: {got}"
        );
        // The district reads the classes and the history of its enterprises.
        let (status, got) = call(&p, &jiangan, Method::GET, &format!("/api/v1/enterprises/{b}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["maturity_history"].as_array().unwrap().len(), 2);
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_enterprise_list_filters_by_size_class_and_maturity() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let csv = format!(
            "credit_code,name,industry,district,size,specialised,maturity_level,assessed_at,assessor\n\
             {},甲,auto-parts,洪山区,above,little_giant,3,2025-03-01,评估院\n\
             {},乙,auto-parts,洪山区,below,none,2,2025-03-01,评估院\n\
             {},丙,auto-parts,江岸区,above,provincial,,,\n\
             {},丁,auto-parts,江岸区,,,,,\n",
            code(311),
            code(312),
            code(313),
            code(314)
        );
        let answer = p
            .bureau(Method::POST, "/api/v1/enterprises/import")
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        let names = |list: Json| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect()
        };
        for (query, expect) in [
            ("", vec!["甲", "乙", "丙", "丁"]),
            ("?size=above", vec!["甲", "丙"]),
            ("?size=unknown", vec!["丁"]),
            ("?specialised=little_giant", vec!["甲"]),
            ("?specialised=unknown", vec!["丁"]),
            ("?maturity=2", vec!["乙"]),
            ("?maturity=none", vec!["丙", "丁"]),
            ("?size=above&maturity=none", vec!["丙"]),
            ("?size=&specialised=&maturity=", vec!["甲", "乙", "丙", "丁"]),
        ] {
            let got = names(p.get(&format!("/api/v1/enterprises{query}")).await);
            assert_eq!(got, expect, "{query}");
        }
        // A district's list is its own enterprises, filtered the same way.
        let district = user(&p, "dist-ja", "district", Some("江岸区")).await;
        let (status, list) = call(&p, &district, Method::GET, "/api/v1/enterprises?size=above", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(names(list), ["丙"]);
        for bad in ["?size=huge", "?specialised=yes", "?maturity=5", "?maturity=unknown"] {
            let (status, body) = call(&p, ADMIN, Method::GET, &format!("/api/v1/enterprises{bad}"), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        p.stop().await;
    })
    .await;
}

/// One enterprise of the seeded city: district, industry, in the program, on the cloud,
/// size, specialised class, maturity level.
type Seed = (
    &'static str,
    &'static str,
    bool,
    bool,
    &'static str,
    &'static str,
    Option<u8>,
);

/// The seeded city: three districts. The expected figures in
/// [`program_figures_match_a_seeded_city_per_district`] are worked out from this table by
/// hand.
const SEEDS: [Seed; 15] = [
    // 洪山区: 1-6
    ("洪山区", "auto-parts", true, true, "above", "none", Some(3)),
    (
        "洪山区",
        "auto-parts",
        true,
        true,
        "below",
        "provincial",
        Some(2),
    ),
    (
        "洪山区",
        "biomedicine",
        true,
        false,
        "below",
        "none",
        Some(1),
    ),
    (
        "洪山区",
        "biomedicine",
        false,
        true,
        "above",
        "little_giant",
        Some(3),
    ),
    (
        "洪山区",
        "optical-laser",
        false,
        false,
        "above",
        "little_giant",
        Some(2),
    ),
    ("洪山区", "optical-laser", true, false, "", "", None),
    // 江岸区: 7-11 (7 is assessed at 2 on import, then at 4 later, then at 1 earlier)
    (
        "江岸区",
        "auto-parts",
        true,
        true,
        "above",
        "provincial",
        Some(2),
    ),
    (
        "江岸区",
        "food-processing",
        false,
        true,
        "below",
        "none",
        None,
    ),
    (
        "江岸区",
        "food-processing",
        true,
        true,
        "below",
        "none",
        Some(2),
    ),
    (
        "江岸区",
        "auto-parts",
        false,
        false,
        "above",
        "little_giant",
        Some(4),
    ),
    (
        "江岸区",
        "petrochemical",
        false,
        false,
        "",
        "provincial",
        Some(1),
    ),
    // 东湖新技术开发区: 12-15
    (
        "东湖新技术开发区",
        "optical-laser",
        true,
        true,
        "above",
        "little_giant",
        Some(3),
    ),
    (
        "东湖新技术开发区",
        "optical-laser",
        true,
        true,
        "above",
        "none",
        Some(1),
    ),
    (
        "东湖新技术开发区",
        "new-materials",
        false,
        true,
        "below",
        "provincial",
        Some(3),
    ),
    (
        "东湖新技术开发区",
        "new-materials",
        false,
        false,
        "below",
        "none",
        None,
    ),
];

/// A target's figures: (achieved, base, goal_count, goal_share, met).
type Figures = (u64, u64, Option<u64>, Option<f64>, bool);

/// The target `id`'s figures in a program answer, checking its progress against them.
fn figures_of(program: &Json, id: &str) -> Figures {
    let t = program["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no target {id}: {program}"));
    let figures = (
        t["achieved"].as_u64().unwrap(),
        t["base"].as_u64().unwrap(),
        t["goal_count"].as_u64(),
        t["goal_share"].as_f64(),
        t["met"].as_bool().unwrap(),
    );
    let (achieved, base, goal_count, goal_share, _) = figures;
    let progress = t["progress"].as_f64();
    match (goal_count, goal_share) {
        (Some(goal), None) => assert_eq!(progress, Some(achieved as f64 / goal as f64), "{id}"),
        (None, Some(share)) if base > 0 => {
            let expect = achieved as f64 / base as f64 / share;
            assert!((progress.unwrap() - expect).abs() < 1e-9, "{id}: {t}");
        }
        (None, Some(_)) => assert_eq!(progress, Some(0.0), "{id}"),
        _ => assert!(t["progress"].is_null(), "{id}: {t}"),
    }
    figures
}

#[tokio::test]
async fn program_figures_match_a_seeded_city_per_district() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let codes: Vec<String> = (0..SEEDS.len() as u32).map(|i| code(400 + i)).collect();
        let mut csv = String::from(
            "统一社会信用代码,企业名称,行业,区域,改造企业,规模,专精特新,数字化水平等级,评估日期,评估机构\n",
        );
        for (c, (district, industry, in_program, _, size, specialised, level)) in codes.iter().zip(SEEDS) {
            let (level, date, assessor) = match level {
                Some(l) => (l.to_string(), "2025-04-01", "评估院"),
                None => (String::new(), "", ""),
            };
            csv.push_str(&format!(
                "{c},企业 {c},{industry},{district},{},{size},{specialised},{level},{date},{assessor}\n",
                if in_program { "是" } else { "否" }
            ));
        }
        let answer = p
            .bureau(Method::POST, "/api/v1/enterprises/import")
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED, "{}", answer.text().await.unwrap());
        // Enterprise 7 is assessed again: level 4 later (current), level 1 earlier (history).
        for (level, date) in [(4, "2025-06-01"), (1, "2024-12-01")] {
            let (status, body) = call(
                &p,
                ADMIN,
                Method::PUT,
                &format!("/api/v1/enterprises/{}/maturity", codes[6]),
                Some(json!({"level": level, "assessed_at": date, "assessor": "复评机构"})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        // The enterprises on the cloud deliver a batch each.
        let on_cloud: Vec<&String> = codes.iter().zip(SEEDS).filter(|(_, s)| s.3).map(|(c, _)| c).collect();
        for c in &on_cloud {
            let (gateway, password) = p.enroll(&p.token(c, 1).await, "line-1").await;
            publish_batches(&p.mqtt, &gateway, Some(&password), &[batch(&gateway, 1, 3)]).await;
        }
        p.wait_ingest(WAIT, |s| s["batches_stored"] == on_cloud.len() as u64).await;

        // The city, as the bureau sees it; the count goals are the plan's.
        let city = p.get("/api/v1/stats/program").await;
        assert_eq!(city["district"], Json::Null);
        assert!(city["computed_at"].as_i64().unwrap() > now_ms() - 60_000);
        let ids: Vec<&str> = city["targets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "on_cloud_in_program",
                "on_cloud_key_industries",
                "on_cloud_industry:optical-laser",
                "on_cloud_industry:electrical-equipment",
                "on_cloud_industry:auto-parts",
                "on_cloud_industry:biomedicine",
                "on_cloud_industry:petrochemical",
                "on_cloud_industry:new-materials",
                "on_cloud_industry:food-processing",
                "on_cloud_industry:textile-apparel",
                "maturity_l2_transformed",
                "maturity_l3_above_or_provincial",
                "maturity_l3_little_giant",
            ]
        );
        let expect_city: [(&str, Figures); 13] = [
            ("on_cloud_in_program", (6, 8, Some(480), None, false)),
            ("on_cloud_key_industries", (9, 15, Some(4000), None, false)),
            ("on_cloud_industry:optical-laser", (2, 4, Some(1000), None, false)),
            ("on_cloud_industry:electrical-equipment", (0, 0, Some(1000), None, false)),
            ("on_cloud_industry:auto-parts", (3, 4, Some(1000), None, false)),
            ("on_cloud_industry:biomedicine", (1, 2, Some(1000), None, false)),
            ("on_cloud_industry:petrochemical", (0, 1, Some(1000), None, false)),
            ("on_cloud_industry:new-materials", (1, 2, Some(1000), None, false)),
            ("on_cloud_industry:food-processing", (2, 2, Some(1000), None, false)),
            ("on_cloud_industry:textile-apparel", (0, 0, Some(1000), None, false)),
            ("maturity_l2_transformed", (5, 8, None, Some(1.0), false)),
            ("maturity_l3_above_or_provincial", (6, 10, None, Some(0.5), true)),
            ("maturity_l3_little_giant", (3, 4, None, Some(0.7), true)),
        ];
        for (id, expect) in expect_city {
            assert_eq!(figures_of(&city, id), expect, "city: {id}");
        }

        // Each district, as its own users see it: its enterprises only, no count goals.
        let per_district: [(&str, [(&str, Figures); 6]); 3] = [
            ("洪山区", [
                ("on_cloud_in_program", (2, 4, None, None, false)),
                ("on_cloud_key_industries", (3, 6, None, None, false)),
                ("on_cloud_industry:biomedicine", (1, 2, None, None, false)),
                ("maturity_l2_transformed", (2, 4, None, Some(1.0), false)),
                ("maturity_l3_above_or_provincial", (2, 4, None, Some(0.5), true)),
                ("maturity_l3_little_giant", (1, 2, None, Some(0.7), false)),
            ]),
            ("江岸区", [
                ("on_cloud_in_program", (2, 2, None, None, false)),
                ("on_cloud_key_industries", (3, 5, None, None, false)),
                ("on_cloud_industry:auto-parts", (1, 2, None, None, false)),
                ("maturity_l2_transformed", (2, 2, None, Some(1.0), true)),
                ("maturity_l3_above_or_provincial", (2, 3, None, Some(0.5), true)),
                ("maturity_l3_little_giant", (1, 1, None, Some(0.7), true)),
            ]),
            ("东湖新技术开发区", [
                ("on_cloud_in_program", (2, 2, None, None, false)),
                ("on_cloud_key_industries", (3, 4, None, None, false)),
                ("on_cloud_industry:optical-laser", (2, 2, None, None, false)),
                ("maturity_l2_transformed", (1, 2, None, Some(1.0), false)),
                ("maturity_l3_above_or_provincial", (2, 3, None, Some(0.5), true)),
                ("maturity_l3_little_giant", (1, 1, None, Some(0.7), true)),
            ]),
        ];
        for (i, (district, expect)) in per_district.iter().enumerate() {
            let token = user(&p, &format!("district-{i}"), "district", Some(district)).await;
            let (status, figures) = call(&p, &token, Method::GET, "/api/v1/stats/program", None).await;
            assert_eq!(status, StatusCode::OK, "{figures}");
            assert_eq!(figures["district"], *district);
            for (id, expect) in expect {
                assert_eq!(figures_of(&figures, id), *expect, "{district}: {id}");
            }
            let (status, csv) = call(&p, &token, Method::GET, "/api/v1/stats/program?format=csv", None).await;
            assert_eq!(status, StatusCode::OK);
            let csv = csv.as_str().unwrap().trim_start_matches('\u{feff}').to_owned();
            assert_eq!(csv.lines().count(), 1 + 13, "{csv}");
            let l2 = csv.lines().find(|l| l.starts_with("maturity_l2_transformed,")).unwrap();
            let (achieved, base, _, _, met) = expect[3].1;
            assert!(
                l2.starts_with(&format!("maturity_l2_transformed,改造企业数字化水平达二级及以上,{achieved},{base},,1,"))
                    && l2.ends_with(&format!(",{met}")),
                "{district}: {l2}"
            );
        }
        // The three districts' bases add up to the city's (no enterprise elsewhere).
        let (status, csv) = call(&p, ADMIN, Method::GET, "/api/v1/stats/program?format=csv", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            csv.as_str().unwrap().contains("\non_cloud_in_program,改造企业上云,6,8,480,,0.0125,false\n"),
            "{csv}"
        );
        // Integrators and enterprises have no program figures.
        let integrator_code = code(499);
        let (status, _) = p
            .post("/api/v1/integrators", json!({"credit_code": integrator_code, "name": "集成商"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let integrator = user(&p, "int-1", "integrator", Some(&integrator_code)).await;
        let enterprise = user(&p, "ent-1", "enterprise", Some(&codes[0])).await;
        for token in [&integrator, &enterprise] {
            let (status, _) = call(&p, token, Method::GET, "/api/v1/stats/program", None).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        p.stop().await;
    })
    .await;
}
