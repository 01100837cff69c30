//! The web UI over HTTP as a browser uses it (cookies, forms, redirects): accounts and
//! sessions, CSRF, the login rate limit, the isolation of enterprise users on every page
//! and API route, the bureau's figures against the counts API, the enterprise page, the
//! downsampled series, the language switch; and, `#[ignore]`d, the same pages in headless
//! Chromium with screenshots (`platform/tests/ui_chromium.py`).

use crate::support::{TestPlatform, bounded, code, config, connect, publish_batches};
use fieldlink_platform::{PlatformConfig, ui};
use fieldlink_wire::{
    Batch, DeviceMeta, GatewayState, Meta, PointMeta, PointRole, Sample, Status, Topics, Value,
};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
const WAIT: Duration = Duration::from_secs(20);
/// Every user's password in these tests.
const PASSWORD: &str = "correct horse battery";
/// Samples of the charted point: one a second, ending a minute ago.
const CHART_SAMPLES: i64 = 6000;

/// A platform with three enterprises, two integrators and their users:
/// A (electrical-equipment, 东西湖区, in the program, integrator I1, above size, provincial
/// specialised, maturity level 3) with a gateway that sent status, catalogue and data;
/// B (auto-parts, 洪山区, integrator I2, sharing its data with the bureau, above size, a
/// little giant at level 2) likewise; C (food-processing, 洪山区, integrator I1, below size,
/// not specialised, never assessed) enrolled but silent. Users: `bureau` (bureau), `ent-a`
/// (A), `ent-b` (B), `dist-hs` (洪山区), `int-1` (I1).
pub struct City {
    pub p: TestPlatform,
    pub a: String,
    pub b: String,
    pub c: String,
    pub i1: String,
    pub i2: String,
    pub gw_a: String,
    pub gw_b: String,
    pub pw_a: String,
    pub pw_b: String,
    /// When A's first charted sample was read (ms).
    pub first_sample: i64,
    _dir: tempfile::TempDir,
}

/// Registers, enrolls, publishes and creates the users of [`City`].
pub async fn city() -> City {
    city_with(|_| {}).await
}

/// [`city`] on a platform whose config `tweak` changed.
pub async fn city_with(tweak: impl FnOnce(&mut PlatformConfig)) -> City {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let p = TestPlatform::start_with(cfg).await;
    let (a, b, c) = (code(801), code(802), code(803));
    p.register(&a, "electrical-equipment", "东西湖区", true)
        .await;
    p.register(&b, "auto-parts", "洪山区", false).await;
    p.register(&c, "food-processing", "洪山区", false).await;
    let (gw_a, pw_a) = p.enroll(&p.token(&a, 1).await, "line-1").await;
    let (gw_b, pw_b) = p.enroll(&p.token(&b, 1).await, "line-1").await;
    p.enroll(&p.token(&c, 1).await, "line-1").await;
    let now = fieldlink_platform::clock::now_ms();
    for (gw, pw, backlog) in [(&gw_a, &pw_a, 3), (&gw_b, &pw_b, 0)] {
        let topics = Topics::new(gw);
        let mut client = connect(&p.mqtt, gw, Some((gw, pw))).await.unwrap();
        let status = Status {
            state: GatewayState::Online,
            version: Some("0.9.7".into()),
            started_at: Some(now - 60_000),
            backlog_batches: Some(backlog),
            evicted_batches: Some(0),
            ..Status::offline()
        };
        client
            .publish(&topics.status, serde_json::to_vec(&status).unwrap(), true)
            .await;
        let meta = Meta {
            devices: vec![DeviceMeta {
                name: "press-1".into(),
                protocol: "modbus-tcp".into(),
                points: vec![PointMeta {
                    name: "temperature".into(),
                    data_type: "f32".into(),
                    unit: Some("°C".into()),
                    role: None,
                }],
            }],
        };
        client
            .publish(&topics.meta, serde_json::to_vec(&meta).unwrap(), true)
            .await;
        client.disconnect().await;
    }
    // A's temperature: value i at second i, the last one a minute ago.
    let device: Arc<str> = "press-1".into();
    let point: Arc<str> = "temperature".into();
    let first = now - 60_000 - (CHART_SAMPLES - 1) * 1000;
    let batches: Vec<Batch> = (0..CHART_SAMPLES)
        .collect::<Vec<_>>()
        .chunks(1000)
        .enumerate()
        .map(|(seq, chunk)| Batch {
            gateway: gw_a.clone(),
            seq: seq as u64 + 1,
            samples: chunk
                .iter()
                .map(|&i| {
                    Sample::good(
                        device.clone(),
                        point.clone(),
                        first + i * 1000,
                        Value::Float(i as f64),
                    )
                })
                .collect(),
        })
        .collect();
    publish_batches(&p.mqtt, &gw_a, Some(&pw_a), &batches).await;
    let b_batch = Batch {
        gateway: gw_b.clone(),
        seq: 1,
        samples: vec![Sample::good(
            device.clone(),
            point.clone(),
            now - 5000,
            Value::Float(-3.5),
        )],
    };
    publish_batches(&p.mqtt, &gw_b, Some(&pw_b), &[b_batch]).await;
    p.wait_ingest(WAIT, |s| {
        s["batches_stored"] == 7 && s["status_updates"] == 2 && s["meta_updates"] == 2
    })
    .await;
    let (i1, i2) = (code(901), code(902));
    for (integrator, name) in [(&i1, "一号集成"), (&i2, "二号集成")] {
        let (status, body) = p
            .post(
                "/api/v1/integrators",
                json!({"credit_code": integrator, "name": name}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for (enterprise, integrator) in [(&a, &i1), (&b, &i2), (&c, &i1)] {
        let answer = p
            .bureau(
                Method::PUT,
                &format!("/api/v1/enterprises/{enterprise}/integrator"),
            )
            .json(&json!({ "integrator": integrator }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let users: [(&str, &str, Option<&str>); 5] = [
        ("bureau", "bureau", None),
        ("ent-a", "enterprise", Some(&a)),
        ("ent-b", "enterprise", Some(&b)),
        ("dist-hs", "district", Some("洪山区")),
        ("int-1", "integrator", Some(&i1)),
    ];
    for (name, role, scope) in users {
        let (status, body) = p
            .post(
                "/api/v1/users",
                json!({"username": name, "password": PASSWORD, "role": role, "scope": scope}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The bureau records the enterprises' classes and A's and B's assessments.
    let assessed = fieldlink_platform::clock::rfc3339(now - 30 * 86_400_000);
    for (enterprise, size, specialised, level) in [
        (&a, "above", "provincial", Some(3)),
        (&b, "above", "little_giant", Some(2)),
        (&c, "below", "none", None),
    ] {
        let answer = p
            .bureau(Method::PUT, &format!("/api/v1/enterprises/{enterprise}"))
            .json(&json!({"size": size, "specialised": specialised}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        if let Some(level) = level {
            let answer = p
                .bureau(Method::PUT, &format!("/api/v1/enterprises/{enterprise}/maturity"))
                .json(&json!({"level": level, "assessed_at": assessed, "assessor": "武汉市中小企业数字化评估中心"}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
        }
    }
    // B shares its data with the bureau: its own call, with its own token.
    let ent_b = user_token(&p, "ent-b").await;
    let shared = p
        .http
        .put(format!("{}/api/v1/enterprises/{b}/sharing", p.base))
        .bearer_auth(&ent_b)
        .json(&json!({"share_data_with_bureau": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(shared.status(), StatusCode::OK);
    City {
        p,
        a,
        b,
        c,
        i1,
        i2,
        gw_a,
        gw_b,
        pw_a,
        pw_b,
        first_sample: first,
        _dir: dir,
    }
}

/// A bearer API token acting as `username`, made by the bureau.
pub async fn user_token(p: &TestPlatform, username: &str) -> String {
    let (status, body) = p
        .post(&format!("/api/v1/users/{username}/tokens"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A browser: follows no redirects, keeps cookies by name.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

/// A response, read.
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` header.
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `Set-Cookie` header for `name`, whole.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the hidden form field `name`.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&marker).expect("the hidden field") + marker.len();
        self.body[at..at + self.body[at..].find('"').unwrap()].to_owned()
    }
}

impl Browser {
    /// A browser with no cookies.
    pub fn new(p: &TestPlatform) -> Self {
        Browser {
            base: p.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// Sends a request with the cookies; stores the cookies the answer sets.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(COOKIE, jar.join("; "));
        }
        if let Some(fields) = form {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}={}", ui_encode(k), ui_encode(v)))
                .collect();
            request = request
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.join("&"));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    /// GET.
    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    /// POST a form.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Logs in through the form; the answer to the POST.
    pub async fn login(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.hidden("csrf");
        self.post(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        )
        .await
    }

    /// A browser logged in as `username`.
    pub async fn logged_in(p: &TestPlatform, username: &str) -> Browser {
        let mut browser = Browser::new(p);
        let answer = browser.login(username, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        browser
    }
}

/// Form encoding (every byte but unreserved ones escaped).
fn ui_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `data-figure` cells of a page: figure name → the number shown.
pub fn figures(html: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut rest = html;
    while let Some(at) = rest.find("data-figure=\"") {
        rest = &rest[at + 13..];
        let name_end = rest.find('"').unwrap();
        let name = rest[..name_end].to_owned();
        let value_start = rest.find('>').unwrap() + 1;
        let value_end = value_start + rest[value_start..].find('<').unwrap();
        // Counts carry thousands separators (`4,000`).
        let shown = rest[value_start..value_end].trim().replace(',', "");
        out.insert(name, shown.parse().unwrap());
    }
    out
}

/// The `data-program` cells of a page: `target id.achieved` or `.base` → the number shown.
pub fn program_figures(html: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut rest = html;
    while let Some(at) = rest.find("data-program=\"") {
        rest = &rest[at + 14..];
        let name = rest[..rest.find('"').unwrap()].to_owned();
        let value_start = rest.find('>').unwrap() + 1;
        let value_end = value_start + rest[value_start..].find('<').unwrap();
        out.insert(
            name,
            rest[value_start..value_end]
                .trim()
                .replace(',', "")
                .parse()
                .unwrap(),
        );
    }
    out
}

/// The program API's number for a figure name (`on_cloud_in_program.achieved`).
pub fn program_figure(program: &Json, name: &str) -> u64 {
    let (id, field) = name.rsplit_once('.').unwrap();
    let target = program["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{name}: no target {id}"));
    target[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}: {target}"))
}

/// The counts API's number for a figure name (`total.on_cloud`,
/// `by_industry.auto-parts.active`, `by_district.洪山区.silent`).
pub fn api_figure(stats: &Json, name: &str) -> u64 {
    let parts: Vec<&str> = name.split('.').collect();
    let value = match parts.as_slice() {
        [scope, count] => &stats[scope][count],
        [list, key, count] => {
            let field = if *list == "by_industry" {
                "industry"
            } else {
                "district"
            };
            let row = stats[list]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r[field] == *key)
                .unwrap_or_else(|| panic!("{name}: no row {key}"));
            &row[count]
        }
        _ => panic!("figure {name}"),
    };
    value.as_u64().unwrap_or_else(|| panic!("{name}: {value}"))
}

#[tokio::test]
async fn login_sets_secure_session_cookies_kept_in_the_database_and_logout_ends_them() {
    bounded(LIMIT, async {
        let mut city = city().await;
        let p = &city.p;
        let mut browser = Browser::new(p);
        let page = browser.get("/bureau").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/login?next=%2Fbureau");

        let form = browser.get("/login").await;
        let csrf_cookie = form.set_cookie("fl_login_csrf").unwrap();
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(csrf_cookie.contains(attribute), "{csrf_cookie}");
        }
        let csrf = form.hidden("csrf");
        assert_eq!(browser.cookies["fl_login_csrf"], csrf);
        let csp = form.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(form.body.contains("<html lang=\"zh-CN\">"));

        assert!(!form.body.contains("id=\"insecure\""));
        // Over plain HTTP to another host the browser would drop the Secure cookie: the
        // form says so (behind an HTTPS proxy it does not).
        for (proto, warned) in [("http", true), ("https", false)] {
            let page = p
                .http
                .get(format!("{}/login", p.base))
                .header("host", "platform.example.org:8080")
                .header("x-forwarded-proto", proto)
                .send()
                .await
                .unwrap();
            let warning = page.text().await.unwrap().contains("id=\"insecure\"");
            assert_eq!(warning, warned, "{proto}");
        }

        // A forged login form (no matching CSRF cookie value) is refused.
        let forged = browser
            .post(
                "/login",
                &[
                    ("username", "bureau"),
                    ("password", PASSWORD),
                    ("csrf", "forged"),
                ],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert!(forged.set_cookie("fl_session").is_none());

        let wrong = browser.login("bureau", "wrong password!").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.body.contains("用户名或密码错误"));
        assert!(wrong.set_cookie("fl_session").is_none());

        let ok = browser.login("bureau", PASSWORD).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        let session = ok.set_cookie("fl_session").unwrap();
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(session.contains(attribute), "{session}");
        }
        assert_eq!(browser.get("/").await.location(), "/bureau");
        assert_eq!(browser.get("/bureau").await.status, StatusCode::OK);

        // Hashes, not passwords; session digests, not tokens; in SQLite, a file for the
        // platform alone.
        let token = browser.cookies["fl_session"].clone();
        let digest = fieldlink_platform::secret::sha256_hex(&token);
        let (hashes, stored) = match &city.p.database {
            None => {
                let file = city.p.data_dir.join(ui::accounts::FILE_NAME);
                for private in [&file, &city.p.data_dir.join("platform.sqlite3")] {
                    let mode = std::os::unix::fs::PermissionsExt::mode(
                        &std::fs::metadata(private).unwrap().permissions(),
                    );
                    assert_eq!(mode & 0o777, 0o600, "{}", private.display());
                }
                let db = rusqlite::Connection::open(&file).unwrap();
                let hashes: Vec<String> = db
                    .prepare("SELECT password_hash FROM users")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let stored: i64 = db
                    .query_row(
                        "SELECT COUNT(*) FROM sessions WHERE token_sha256 = ?1",
                        [&digest],
                        |r| r.get(0),
                    )
                    .unwrap();
                (hashes, stored)
            }
            Some(database) => {
                // Everything is in PostgreSQL: no SQLite file beside it.
                let file = city.p.data_dir.join(ui::accounts::FILE_NAME);
                assert!(!file.exists(), "{} exists", file.display());
                let db = database.client().await;
                let hashes: Vec<String> = db
                    .query("SELECT password_hash FROM users", &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let stored: i64 = db
                    .query_one(
                        "SELECT COUNT(*) FROM sessions WHERE token_sha256 = $1",
                        &[&digest],
                    )
                    .await
                    .unwrap()
                    .get(0);
                (hashes, stored)
            }
        };
        assert_eq!(hashes.len(), 5);
        assert!(
            hashes.iter().all(|h| h.starts_with("$argon2id$")),
            "{hashes:?}"
        );
        assert_eq!(stored, 1);

        // The session outlives a restart: it is in the database, not in memory.
        city.p.stop_for_restart().await;
        let restarted = TestPlatform::start(&city.p.data_dir.clone()).await;
        let mut browser = Browser {
            base: restarted.base.clone(),
            ..browser
        };
        let page = browser.get("/bureau").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = page.hidden("csrf");

        // Logout needs the session's CSRF token.
        let forged = browser.post("/logout", &[("csrf", "forged")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert_eq!(browser.get("/bureau").await.status, StatusCode::OK);
        let out = browser.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert_eq!(out.location(), "/login");
        // The old token is dead on the server even if a client kept it.
        browser.cookies.insert("fl_session".into(), token);
        assert_eq!(browser.get("/bureau").await.status, StatusCode::SEE_OTHER);
        let mut restarted = restarted;
        restarted.stop().await;
    })
    .await;
}

#[tokio::test]
async fn logins_are_locked_after_five_failures() {
    bounded(LIMIT, async {
        let city = city().await;
        let mut browser = Browser::new(&city.p);
        for _ in 0..ui::accounts::MAX_FAILURES {
            assert_eq!(
                browser.login("ent-a", "not the password").await.status,
                StatusCode::UNAUTHORIZED
            );
        }
        let locked = browser.login("ent-a", PASSWORD).await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(locked.set_cookie("fl_session").is_none());
        // Another user is not affected.
        assert_eq!(
            browser.login("ent-b", PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
    })
    .await;
}

#[tokio::test]
async fn the_users_api_needs_the_bureau_token_and_checks_its_input() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let anonymous = p
            .http
            .post(format!("{}/api/v1/users", p.base))
            .json(&json!({"username": "x-user", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        for (body, status, error) in [
            (
                json!({"username": "ent-a", "password": PASSWORD, "role": "bureau"}),
                StatusCode::CONFLICT,
                "exists",
            ),
            (
                json!({"username": "new-user", "password": "short", "role": "bureau"}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                json!({"username": "a b", "password": PASSWORD, "role": "bureau"}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD, "role": "enterprise", "scope": "123"}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD, "role": "enterprise", "scope": code(999)}),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD, "role": "integrator", "scope": code(998)}),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD, "role": "district", "scope": "Gotham"}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD, "role": "bureau", "scope": "洪山区"}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD, "role": "x"}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                json!({"username": "new-user", "password": PASSWORD}),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
        ] {
            let (got, answer) = p.post("/api/v1/users", body.clone()).await;
            assert_eq!(
                (got, answer["error"].as_str()),
                (status, Some(error)),
                "{body} → {answer}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_dashboard_shows_the_counts_api_figures_and_drills_down() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let mut bureau = Browser::logged_in(p, "bureau").await;
        let page = bureau.get("/bureau").await;
        assert_eq!(page.status, StatusCode::OK);
        let stats = p.get("/api/v1/stats/onboarding").await;
        let shown = figures(&page.body);
        // 2 scopes + 8 industries + 17 districts, 5 counts each.
        assert_eq!(shown.len(), (2 + 8 + 17) * 5);
        for (name, value) in &shown {
            assert_eq!(*value, api_figure(&stats, name), "{name}");
        }
        assert_eq!(shown["total.on_cloud"], 2);
        assert_eq!(shown["total.silent"], 1);
        assert_eq!(shown["in_program.on_cloud"], 1);
        assert_eq!(shown["by_district.洪山区.registered"], 2);
        // The plan's targets: each one's figures are the program API's.
        let program = p.get("/api/v1/stats/program").await;
        let shown = program_figures(&page.body);
        assert_eq!(shown.len(), (2 + 8 + 3) * 2);
        for (name, value) in &shown {
            assert_eq!(*value, program_figure(&program, name), "{name}");
        }
        // A is the one in the program, at level 3; A and B are above size; B is a little
        // giant at level 2.
        assert_eq!(shown["maturity_l2_transformed.achieved"], 1);
        assert_eq!(shown["maturity_l3_above_or_provincial.base"], 2);
        assert_eq!(shown["maturity_l3_above_or_provincial.achieved"], 1);
        assert_eq!(shown["maturity_l3_little_giant.base"], 1);
        assert_eq!(shown["maturity_l3_little_giant.achieved"], 0);
        let targets = &page.body[page.body.find("id=\"program-targets\"").unwrap()..];
        assert!(targets.contains("改造企业数字化水平达二级及以上"), "{targets}");
        assert!(targets.contains("≥ 70%"), "{targets}");
        let csv = bureau.get("/bureau/csv/program").await;
        let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(lines[0], "目标,已达成,基数,目标值,完成度（%）,是否达标");
        assert_eq!(lines[11], "改造企业数字化水平达二级及以上,1,1,100%,100.0,是");
        assert_eq!(lines.len(), 1 + 13);
        // Pilot marks: 4 industries; progress against the targets.
        assert_eq!(page.body.matches("tag pilot").count(), 4);
        // Shares keep two significant digits (1 of 480 is not 0.2%).
        assert!(
            page.body
                .contains("<progress max=\"480\" value=\"1\"></progress> 0.21%")
        );
        assert!(
            page.body
                .contains("<progress max=\"1000\" value=\"1\"></progress> 0.1%")
        );
        assert!(
            page.body.contains("<td>1,000</td>"),
            "the target has a separator"
        );
        // The silent list names C only.
        let silent = &page.body[page.body.find("id=\"silent\"").unwrap()..];
        assert!(silent.contains(&city.c) && !silent.contains(&city.a) && !silent.contains(&city.b));
        // The CSV links are the UI's own (in the page's language); the API's CSV, which a
        // bureau session may read but not write, keeps its codes for programs.
        for link in [
            "/bureau/csv/onboarding",
            "/bureau/csv/daily",
            "/bureau/csv/silent",
            "/bureau/csv/program",
        ] {
            assert!(page.body.contains(&format!("href=\"{link}\"")), "{link}");
            let csv = bureau.get(link).await;
            assert_eq!(csv.status, StatusCode::OK, "{link}");
            assert!(
                csv.headers[CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/csv")
            );
        }
        assert!(
            !page.body.contains("format=csv"),
            "no link to the API's CSV"
        );
        assert_eq!(
            bureau.get("/bureau/csv/nothing").await.status,
            StatusCode::NOT_FOUND
        );
        for (api, header) in [
            ("/api/v1/stats/onboarding?format=csv", "scope,group,pilot,"),
            (
                "/api/v1/stats/onboarding/daily?days=90&format=csv",
                "date,on_cloud,",
            ),
            (
                "/api/v1/stats/onboarding/silent?format=csv",
                "credit_code,name,",
            ),
        ] {
            let csv = bureau.get(api).await;
            assert_eq!(csv.status, StatusCode::OK, "{api}");
            assert!(
                csv.body.trim_start_matches('\u{feff}').starts_with(header),
                "{api}"
            );
        }
        let daily = bureau.get("/api/v1/stats/onboarding/daily?days=90").await;
        assert_eq!(daily.status, StatusCode::OK);
        let write = bureau
            .send(
                Method::POST,
                "/api/v1/enterprises/import",
                Some(&[("x", "y")]),
            )
            .await;
        assert_eq!(write.status, StatusCode::UNAUTHORIZED);

        // Drill-down: 洪山区 holds B and C; auto-parts holds B; both export CSV.
        let district = bureau
            .get("/bureau/districts/%E6%B4%AA%E5%B1%B1%E5%8C%BA")
            .await;
        assert_eq!(district.status, StatusCode::OK);
        assert!(district.body.contains(&city.b) && district.body.contains(&city.c));
        assert!(!district.body.contains(&city.a));
        let industry = bureau.get("/bureau/industries/auto-parts").await;
        assert!(industry.body.contains(&city.b) && !industry.body.contains(&city.c));
        let csv = bureau.get("/bureau/industries/auto-parts?format=csv").await;
        assert_eq!(csv.status, StatusCode::OK);
        let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(
            lines[0],
            "统一社会信用代码,企业,行业,区域,改造企业,规模,专精特新,数字化水平,网关,已上云,近 7 天活跃,上云时间,最近上数"
        );
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].starts_with(&format!(
                "{},企业 {},汽车零部件,洪山区,否,规模以上,国家级“小巨人”,2,1,是,是,",
                city.b, city.b
            )),
            "{}",
            lines[1]
        );
        assert_eq!(
            bureau.get("/bureau/industries/steel").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            bureau.get("/bureau/districts/nowhere").await.status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}

#[tokio::test]
async fn the_enterprise_page_shows_gateways_points_and_switches_language() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let mut user = Browser::logged_in(p, "ent-a").await;
        let path = format!("/enterprises/{}", city.a);
        let page = user.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let gateways = &page.body[page.body.find("id=\"gateways\"").unwrap()..];
        for expected in [
            "在线",
            "0.9.7",
            "line-1",
            &city.gw_a,
            "<td class=\"num\">3</td>",
            "<td class=\"num\">0</td>",
        ] {
            assert!(gateways.contains(expected), "{expected}");
        }
        // The latest value (5999, a minute old), its unit and quality, and the chart link.
        let points = &page.body[page.body.find("class=\"points\"").unwrap()..];
        for expected in [
            "press-1",
            "temperature",
            ">5999<",
            "°C",
            "正常",
            "1 分钟前",
            "/chart?gateway=",
        ] {
            assert!(points.contains(expected), "{expected}: {points}");
        }

        let english = user.get(&format!("/lang/en?next={path}")).await;
        assert_eq!(english.status, StatusCode::SEE_OTHER);
        assert_eq!(english.location(), path);
        assert_eq!(user.cookies["fl_lang"], "en");
        let page = user.get(&path).await;
        assert!(page.body.contains("<html lang=\"en\">"));
        for expected in ["Gateways", "online", "Latest value", "1 min ago", "中文"] {
            assert!(page.body.contains(expected), "{expected}");
        }
        assert!(!page.body.contains("在线"));
        // Unknown languages and foreign redirects are refused.
        assert_eq!(user.get("/lang/fr").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            user.get("/lang/zh-CN?next=//evil.example").await.location(),
            "/"
        );
    })
    .await;
}

/// The plan's classes on the enterprise page: everyone who sees the enterprise sees its
/// size, class, current maturity and history; the bureau alone gets the forms, whose
/// refused assessment comes back with its input and why, recording nothing; and the
/// district's list filters by them.
#[tokio::test]
async fn the_bureau_records_classes_and_assessments_on_the_enterprise_page() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let path = format!("/enterprises/{}", city.c);
        let mut bureau = Browser::logged_in(p, "bureau").await;
        let page = bureau.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        for expected in [
            "<dd id=\"size\" data-value=\"below\">规模以下</dd>",
            "<dd id=\"specialised\" data-value=\"none\">非专精特新</dd>",
            "<dd id=\"maturity\" data-value=\"\">未评估</dd>",
            "id=\"no-assessments\"",
            "id=\"classes-form\"",
            "id=\"maturity-form\"",
        ] {
            assert!(page.body.contains(expected), "{expected}: {}", page.body);
        }
        let csrf = page.hidden("csrf");
        // The size changes; the empty class choice leaves the class as it is.
        let saved = bureau
            .post(
                &format!("{path}/classes"),
                &[
                    ("csrf", csrf.as_str()),
                    ("size", "above"),
                    ("specialised", ""),
                ],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        assert_eq!(saved.location(), path);
        let yesterday =
            ui::format::local_date(fieldlink_platform::clock::now_ms() - 86_400_000, 480);
        let recorded = bureau
            .post(
                &format!("{path}/maturity"),
                &[
                    ("csrf", csrf.as_str()),
                    ("level", "3"),
                    ("assessed_at", yesterday.as_str()),
                    ("assessor", "省评估中心"),
                ],
            )
            .await;
        assert_eq!(recorded.status, StatusCode::SEE_OTHER);
        let page = bureau.get(&path).await;
        for expected in [
            "<dd id=\"size\" data-value=\"above\">规模以上</dd>".to_owned(),
            "<dd id=\"specialised\" data-value=\"none\">非专精特新</dd>".to_owned(),
            format!("<dd id=\"maturity\" data-value=\"3\">3 级 · {yesterday}</dd>"),
            "省评估中心".to_owned(),
        ] {
            assert!(page.body.contains(&expected), "{expected}: {}", page.body);
        }
        assert_eq!(page.body.matches("<tr data-level=").count(), 1);
        // A date in the future is refused: the form comes back with the input and why.
        let tomorrow =
            ui::format::local_date(fieldlink_platform::clock::now_ms() + 2 * 86_400_000, 480);
        let refused = bureau
            .post(
                &format!("{path}/maturity"),
                &[
                    ("csrf", csrf.as_str()),
                    ("level", "4"),
                    ("assessed_at", tomorrow.as_str()),
                    ("assessor", "未来评估所"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(
            refused.body.contains("id=\"assessment-error\""),
            "{}",
            refused.body
        );
        assert!(
            refused.body.contains("is in the future"),
            "{}",
            refused.body
        );
        assert!(
            refused.body.contains("value=\"未来评估所\""),
            "the input is kept"
        );
        assert!(refused.body.contains(&format!("value=\"{tomorrow}\"")));
        assert!(refused.body.contains("<option value=\"4\" selected>"));
        let forged = bureau
            .post(
                &format!("{path}/maturity"),
                &[
                    ("csrf", "forged"),
                    ("level", "4"),
                    ("assessed_at", yesterday.as_str()),
                    ("assessor", "x"),
                ],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let api = p.get(&format!("/api/v1/enterprises/{}", city.c)).await;
        assert_eq!(
            api["maturity_history"].as_array().unwrap().len(),
            1,
            "{api}"
        );
        assert_eq!(api["size"], "above");

        // The district sees the same without the forms; in English too.
        let mut district = Browser::logged_in(p, "dist-hs").await;
        let page = district.get(&path).await;
        assert!(page.body.contains("省评估中心") && page.body.contains("3 级"));
        assert!(
            !page.body.contains("id=\"classes-form\"")
                && !page.body.contains("id=\"maturity-form\"")
        );
        district.get(&format!("/lang/en?next={path}")).await;
        let page = district.get(&path).await;
        assert!(
            page.body.contains(">above designated size<"),
            "{}",
            page.body
        );
        assert!(page.body.contains(">not specialised<") && page.body.contains("level 3"));

        // The district's list by maturity: C is at 3, B at 2.
        let list = "/bureau/districts/%E6%B4%AA%E5%B1%B1%E5%8C%BA";
        let page = district.get(&format!("{list}?maturity=3")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(&city.c) && !page.body.contains(&city.b));
        assert!(
            page.body.contains("maturity=3&amp;format=csv")
                || page.body.contains("maturity=3&format=csv"),
            "{}",
            page.body
        );
        let page = district
            .get(&format!("{list}?specialised=little_giant"))
            .await;
        assert!(page.body.contains(&city.b) && !page.body.contains(&city.c));
        let csv = district.get(&format!("{list}?size=above&format=csv")).await;
        assert_eq!(
            csv.body.trim_start_matches('\u{feff}').lines().count(),
            1 + 2,
            "{}",
            csv.body
        );
        assert_eq!(
            district.get(&format!("{list}?maturity=9")).await.status,
            StatusCode::BAD_REQUEST
        );
    })
    .await;
}

/// The series is reduced on the server: a bucket of consecutive samples has their min,
/// max and mean, and no sample is lost or counted twice.
#[tokio::test]
async fn the_series_is_downsampled_to_min_max_mean_per_bucket() {
    bounded(LIMIT, async {
        let city = city().await;
        let mut user = Browser::logged_in(&city.p, "ent-a").await;
        let base = format!(
            "/enterprises/{}/series?gateway={}&device=press-1&point=temperature",
            city.a, city.gw_a
        );
        let page = user.get(&format!("{base}&hours=2&buckets=120")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let s: Json = serde_json::from_str(&page.body).unwrap();
        assert_eq!(s["bucket_ms"], 60_000);
        assert_eq!(s["samples"], CHART_SAMPLES);
        let (t, min, max, avg) = (
            s["t"].as_array().unwrap(),
            s["min"].as_array().unwrap(),
            s["max"].as_array().unwrap(),
            s["avg"].as_array().unwrap(),
        );
        assert!((100..=102).contains(&t.len()), "{} buckets", t.len());
        assert_eq!(min[0], 0.0);
        assert_eq!(max[max.len() - 1], (CHART_SAMPLES - 1) as f64);
        for i in 0..t.len() {
            let (lo, hi, mean) = (
                min[i].as_f64().unwrap(),
                max[i].as_f64().unwrap(),
                avg[i].as_f64().unwrap(),
            );
            assert!(hi - lo <= 59.0, "bucket {i} spans more than a minute");
            assert_eq!(mean, (lo + hi) / 2.0, "bucket {i}");
            if i > 0 {
                assert_eq!(
                    lo,
                    max[i - 1].as_f64().unwrap() + 1.0,
                    "bucket {i} follows on"
                );
                let step = t[i].as_f64().unwrap() - t[i - 1].as_f64().unwrap();
                assert!(
                    (step - 60.0).abs() < 1e-3,
                    "bucket {i} starts {step} s after the last"
                );
            }
        }
        // The default window (fitted to the data) holds them all; 1 h holds the last 59
        // minutes' worth.
        let day: Json = serde_json::from_str(&user.get(&base).await.body).unwrap();
        assert_eq!(day["samples"], CHART_SAMPLES);
        assert!(day["t"].as_array().unwrap().len() <= 600);
        let hour: Json =
            serde_json::from_str(&user.get(&format!("{base}&hours=1")).await.body).unwrap();
        assert!(
            (3530..=3541).contains(&hour["samples"].as_i64().unwrap()),
            "{}",
            hour["samples"]
        );
        for bad in ["&hours=0", "&hours=100000"] {
            assert_eq!(
                user.get(&format!("{base}{bad}")).await.status,
                StatusCode::BAD_REQUEST
            );
        }
        // Minute buckets come from per-minute aggregates kept at ingest: a late batch (a
        // gateway's backlog) lands in minutes already aggregated, and both paths agree.
        let late = Batch {
            gateway: city.gw_a.clone(),
            seq: 100,
            samples: vec![Sample::good(
                "press-1".into(),
                "temperature".into(),
                city.first_sample,
                Value::Float(-100.0),
            )],
        };
        publish_batches(&city.p.mqtt, &city.gw_a, Some(&city.pw_a), &[late]).await;
        city.p.wait_ingest(WAIT, |s| s["batches_stored"] == 8).await;
        let minutes: Json =
            serde_json::from_str(&user.get(&format!("{base}&hours=2&buckets=120")).await.body)
                .unwrap();
        let seconds: Json =
            serde_json::from_str(&user.get(&format!("{base}&hours=2&buckets=2000")).await.body)
                .unwrap();
        assert_eq!(minutes["bucket_ms"], 60_000);
        assert_eq!(seconds["bucket_ms"], 3_600);
        for s in [&minutes, &seconds] {
            assert_eq!(s["samples"], CHART_SAMPLES + 1);
            assert_eq!(s["min"][0], -100.0);
            let max = s["max"].as_array().unwrap();
            assert_eq!(max[max.len() - 1], (CHART_SAMPLES - 1) as f64);
        }
        // The first minute holds samples 0..n and the late one.
        let minute_end = (city.first_sample / 60_000 + 1) * 60_000;
        let n = (minute_end - city.first_sample + 999) / 1000;
        let expected = (-100.0 + (0..n).sum::<i64>() as f64) / (n + 1) as f64;
        assert_eq!(minutes["avg"][0], expected);

        let no_point = format!("/enterprises/{}/series?gateway={}", city.a, city.gw_a);
        assert_eq!(user.get(&no_point).await.status, StatusCode::BAD_REQUEST);
        // The chart library is served by the binary itself (no CDN).
        let js = user.get("/static/uPlot.iife.min.js").await;
        assert_eq!(js.status, StatusCode::OK);
        assert!(js.body.contains("uPlot"));
        assert_eq!(
            user.get("/static/nope.js").await.status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}

/// An RFC 3339 UTC time as the API writes it (`2026-12-07T03:36:29.726Z`), in ms since
/// the epoch (Howard Hinnant's `days_from_civil`).
fn rfc3339_ms(text: &str) -> i64 {
    let n = |at: std::ops::Range<usize>| text[at].parse::<i64>().unwrap();
    let (month, day) = (n(5..7), n(8..10));
    let year = n(0..4) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let ms = days * 86_400_000 + n(11..13) * 3_600_000 + n(14..16) * 60_000 + n(17..19) * 1000;
    let ms = ms + n(20..23);
    assert_eq!(fieldlink_platform::clock::rfc3339(ms), text);
    ms
}

/// The API's RFC 3339 UTC time as the pages and the UI's CSV write it: Beijing time.
fn beijing(rfc3339: &str) -> String {
    ui::format::local_time(rfc3339_ms(rfc3339), 8 * 60)
}

/// The ISO 8601 date-times (`2026-12-07T…`) in `html` outside `datetime="…"` attributes,
/// which machines read and people do not see.
fn visible_iso_times(html: &str) -> Vec<String> {
    let mut shown = String::new();
    let mut rest = html;
    while let Some(at) = rest.find("datetime=\"") {
        shown.push_str(&rest[..at]);
        rest = &rest[at + 10..];
        rest = &rest[rest.find('"').map_or(rest.len(), |end| end + 1)..];
    }
    shown.push_str(rest);
    let bytes = shown.as_bytes();
    let pattern = b"dddd-dd-ddT";
    (0..bytes.len().saturating_sub(pattern.len()))
        .filter(|&i| {
            pattern.iter().enumerate().all(|(k, &p)| match p {
                b'd' => bytes[i + k].is_ascii_digit(),
                other => bytes[i + k] == other,
            })
        })
        .map(|i| String::from_utf8_lossy(&bytes[i..(i + 24).min(bytes.len())]).into_owned())
        .collect()
}

/// A `YYYY-MM-DD HH:MM` time.
fn is_local_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 16
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Regression: pages printed `2026-12-07T03:36:29.726Z` (UTC, 8 hours behind the reader).
#[tokio::test]
async fn pages_and_csv_show_beijing_times_with_ages() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let mut bureau = Browser::logged_in(p, "bureau").await;
        // A does not share its values with the bureau: its own user reads them.
        let mut owner = Browser::logged_in(p, "ent-a").await;

        // A's latest value was read at a known instant: the enterprise page says when, in
        // Beijing time, and how long ago.
        let read = city.first_sample + (CHART_SAMPLES - 1) * 1000;
        let page = owner.get(&format!("/enterprises/{}", city.a)).await;
        let shown = ui::format::local_time(read, 480);
        assert!(
            page.body.contains(&format!(
                ">{shown}</time> <span class=\"ago\">1 分钟前</span>"
            )),
            "{shown}"
        );
        let a = p.get(&format!("/api/v1/enterprises/{}", city.a)).await;
        let since = beijing(a["on_cloud_since"].as_str().unwrap());
        assert!(page.body.contains(&since), "on the cloud since {since}");
        let seen = beijing(a["gateways"][0]["status_at"].as_str().unwrap());
        let last = beijing(a["gateways"][0]["last_batch_at"].as_str().unwrap());
        assert!(
            page.body.contains(&seen) || page.body.contains(&last),
            "last seen"
        );

        // The silent list on the dashboard, and its CSV.
        let c = p.get(&format!("/api/v1/enterprises/{}", city.c)).await;
        let enrolled = beijing(c["gateways"][0]["enrolled_at"].as_str().unwrap());
        let dashboard = bureau.get("/bureau").await;
        assert!(
            dashboard.body.contains(&format!(">{enrolled}</time>")),
            "{enrolled}"
        );
        let silent = bureau.get("/bureau/csv/silent").await;
        let lines: Vec<&str> = silent.body.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(
            lines[0],
            "企业,统一社会信用代码,行业,区域,改造企业,网关,首次接入"
        );
        assert_eq!(
            lines[1],
            format!("企业 {0},{0},食品加工,洪山区,否,1,{enrolled}", city.c)
        );

        // The drill-down and its CSV: B's last data, in Beijing time.
        let b = p.get(&format!("/api/v1/enterprises/{}", city.b)).await;
        let b_last = beijing(b["last_batch_at"].as_str().unwrap());
        let district = "/bureau/districts/%E6%B4%AA%E5%B1%B1%E5%8C%BA";
        let group = bureau.get(district).await;
        assert!(
            group.body.contains(&format!(">{b_last}</time>")),
            "{b_last}"
        );
        let csv = bureau.get(&format!("{district}?format=csv")).await;
        let row = csv
            .body
            .lines()
            .find(|l| l.starts_with(&city.b))
            .unwrap()
            .to_owned();
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[11], beijing(b["on_cloud_since"].as_str().unwrap()));
        assert_eq!(fields[12], b_last);
        assert!(is_local_time(fields[12]), "{row}");

        // No page shows a UTC ISO time, in either language; ages are in the language.
        let chart = format!(
            "/enterprises/{}/chart?gateway={}&device=press-1&point=temperature",
            city.a, city.gw_a
        );
        let bureau_pages = [
            "/bureau".to_owned(),
            district.to_owned(),
            "/bureau/industries/auto-parts".to_owned(),
            "/fleet".to_owned(),
            "/bureau/integrators".to_owned(),
            format!("/enterprises/{}", city.a),
            format!("/enterprises/{}", city.c),
        ];
        let owner_pages = [format!("/enterprises/{}", city.a), chart];
        for lang in ["zh-CN", "en"] {
            for (browser, pages) in [
                (&mut bureau, &bureau_pages[..]),
                (&mut owner, &owner_pages[..]),
            ] {
                browser.get(&format!("/lang/{lang}?next=/")).await;
                for path in pages {
                    let page = browser.get(path).await;
                    assert_eq!(page.status, StatusCode::OK, "{path}");
                    assert_eq!(
                        visible_iso_times(&page.body),
                        Vec::<String>::new(),
                        "{lang} {path}"
                    );
                }
            }
        }
        let english = owner.get(&format!("/enterprises/{}", city.a)).await;
        assert!(english.body.contains(&format!(
            ">{shown}</time> <span class=\"ago\">1 min ago</span>"
        )));
    })
    .await;
}

/// The UI's CSV files speak the page's language; the API's keep their codes.
#[tokio::test]
async fn the_uis_csv_headers_are_in_the_pages_language() {
    bounded(LIMIT, async {
        let city = city().await;
        let mut bureau = Browser::logged_in(&city.p, "bureau").await;
        let header = |csv: &Page| {
            csv.body
                .trim_start_matches('\u{feff}')
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let zh = [
            ("/bureau/csv/onboarding", "范围,名称,试点行业,已登记,已接入网关,已上云,近 7 天活跃,已接入未上数,目标,完成度,上云率"),
            ("/bureau/csv/daily", "日期,已上云,改造企业已上云,当日新上云,近 7 天活跃,改造企业近 7 天活跃"),
            ("/bureau/csv/silent", "企业,统一社会信用代码,行业,区域,改造企业,网关,首次接入"),
            ("/bureau/industries/auto-parts?format=csv", "统一社会信用代码,企业,行业,区域,改造企业,规模,专精特新,数字化水平,网关,已上云,近 7 天活跃,上云时间,最近上数"),
            ("/bureau/csv/program", "目标,已达成,基数,目标值,完成度（%）,是否达标"),
            ("/fleet?format=csv", "网关编号,网关,企业,统一社会信用代码,状态,采集程序版本,最近上数,积压批次,丢弃批次,缺失批次,配置版本,配置,设备,问题"),
            ("/bureau/integrators?format=csv", "服务商,统一社会信用代码,已分配企业,已接入网关,已上云,近 7 天活跃,分配到首条数据（中位天数）,7 日数据完整率（%）"),
        ];
        for (path, expected) in zh {
            let csv = bureau.get(path).await;
            assert_eq!(csv.status, StatusCode::OK, "{path}");
            assert!(csv.body.starts_with('\u{feff}'), "{path}: a byte-order mark");
            assert_eq!(header(&csv), expected, "{path}");
        }
        let onboarding = bureau.get("/bureau/csv/onboarding").await;
        let lines: Vec<&str> = onboarding.body.lines().collect();
        assert_eq!(lines.len(), 1 + 2 + 8 + 17);
        assert_eq!(lines[1], "总体情况,全部企业,,3,3,2,2,1,4000,0.05%,66.7%");
        assert_eq!(lines[2], "总体情况,改造企业,,1,1,1,1,0,480,0.21%,100%");
        assert!(lines.contains(&"行业,汽车零部件,是,1,1,1,1,0,1000,0.1%,100%"), "{lines:?}");
        assert!(lines.contains(&"区域,洪山区,,2,2,1,1,1,,,50.0%"), "{lines:?}");

        bureau.get("/lang/en?next=/").await;
        let english = [
            ("/bureau/csv/onboarding", "Scope,Name,Pilot industry,Registered,Enrolled,On the cloud,Active (7 days),\"Enrolled, silent\",Target,Progress,Share on the cloud"),
            ("/bureau/csv/daily", "Date,On the cloud,\"In the program, on the cloud\",New on the cloud,Active (7 days),\"In the program, active (7 days)\""),
            ("/bureau/csv/silent", "Enterprise,Credit code,Industry,District,Enterprises in the program,Gateways,First enrolled"),
            ("/bureau/csv/program", "Target,Achieved,Base,Goal,Progress (%),Met"),
        ];
        for (path, expected) in english {
            assert_eq!(header(&bureau.get(path).await), expected, "{path}");
        }
        let csv = bureau.get("/bureau/industries/auto-parts?format=csv").await;
        assert!(
            csv.body.contains(",automotive parts,洪山区,no,above designated size,national little giant,2,1,yes,yes,"),
            "{}",
            csv.body
        );
        // The fleet's rows: C's gateway, silent, with its problems in English.
        let fleet = bureau.get("/fleet?format=csv").await;
        let c_row = fleet
            .body
            .lines()
            .find(|l| l.contains(&city.c))
            .unwrap_or_else(|| panic!("{}", fleet.body))
            .to_owned();
        assert!(c_row.contains("offline no data for 1 h"), "{c_row}");
    })
    .await;
}

/// Regression: 1 of 4,000 was shown as `0.0%`, and counts had no separators.
#[tokio::test]
async fn counts_have_separators_and_small_shares_keep_their_precision() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        // 3,999 more enterprises in A's district: 1 of its 4,000 is on the cloud.
        let mut import = String::from("credit_code,name,industry,district,in_program\n");
        for serial in 10_000..13_999 {
            let code = code(serial);
            import.push_str(&format!(
                "{code},企业 {code},electrical-equipment,东西湖区,false\n"
            ));
        }
        let answer = p
            .bureau(Method::POST, "/api/v1/enterprises/import")
            .header(CONTENT_TYPE, "text/csv")
            .body(import)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        let mut bureau = Browser::logged_in(p, "bureau").await;
        let page = bureau.get("/bureau").await;
        for expected in [
            "data-figure=\"by_district.东西湖区.registered\">4,000<",
            "data-figure=\"total.registered\">4,002<",
            "data-figure=\"by_industry.electrical-equipment.registered\">4,000<",
            "<progress max=\"4000\" value=\"1\"></progress> 0.025%",
        ] {
            assert!(page.body.contains(expected), "{expected}");
        }
        assert!(!page.body.contains(" 0.0%"));
        // The CSV keeps bare numbers (a spreadsheet reads them as numbers) and the share.
        let csv = bureau.get("/bureau/csv/onboarding").await;
        assert!(
            csv.body
                .contains("\n区域,东西湖区,,4000,1,1,1,0,,,0.025%\n"),
            "{}",
            csv.body
        );
        bureau.get("/lang/en?next=/").await;
        let english = bureau.get("/bureau").await;
        assert!(
            english
                .body
                .contains("data-figure=\"by_district.东西湖区.registered\">4,000<")
        );
    })
    .await;
}

/// Text answers are gzipped for a client that accepts it, and only then.
#[tokio::test]
async fn text_answers_are_gzipped_when_the_client_accepts_it() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let bureau = Browser::logged_in(p, "bureau").await;
        let session = format!("fl_session={}", bureau.cookies["fl_session"]);
        for path in [
            "/login",
            "/bureau",
            "/bureau/csv/onboarding",
            "/static/app.js",
            "/static/uPlot.iife.min.js",
            "/static/app.css",
            "/api/v1/stats/onboarding",
        ] {
            let get = |encoding: Option<&str>| {
                let mut request = p
                    .http
                    .get(format!("{}{path}", p.base))
                    .header(COOKIE, &session);
                if let Some(encoding) = encoding {
                    request = request.header("accept-encoding", encoding);
                }
                request.send()
            };
            let plain = get(None).await.unwrap();
            assert_eq!(plain.status(), StatusCode::OK, "{path}");
            assert!(plain.headers().get("content-encoding").is_none(), "{path}");
            let plain_len = plain.bytes().await.unwrap().len();
            for encoding in ["gzip", "gzip, deflate, br, zstd"] {
                let zipped = get(Some(encoding)).await.unwrap();
                assert_eq!(zipped.status(), StatusCode::OK, "{path}");
                assert_eq!(
                    zipped.headers()["content-encoding"],
                    "gzip",
                    "{path} {encoding}"
                );
                assert!(
                    zipped.headers()["vary"]
                        .to_str()
                        .unwrap()
                        .contains("accept-encoding")
                );
                if path == "/bureau" {
                    assert!(zipped.headers().contains_key("content-security-policy"));
                }
                let body = zipped.bytes().await.unwrap();
                assert!(body.starts_with(&[0x1f, 0x8b]), "{path}: a gzip stream");
                assert!(
                    body.len() < plain_len,
                    "{path}: {} ≥ {plain_len}",
                    body.len()
                );
            }
            let identity = get(Some("identity")).await.unwrap();
            assert!(
                identity.headers().get("content-encoding").is_none(),
                "{path}"
            );
        }
    })
    .await;
}

/// Regression: every first visit asked for `/favicon.ico` and got a 404.
#[tokio::test]
async fn the_icon_is_served_and_linked_from_every_page() {
    bounded(LIMIT, async {
        let city = city().await;
        let mut user = Browser::new(&city.p);
        for path in ["/favicon.ico", "/static/favicon.svg"] {
            let icon = user.get(path).await;
            assert_eq!(icon.status, StatusCode::OK, "{path}");
            assert_eq!(icon.headers[CONTENT_TYPE], "image/svg+xml", "{path}");
            assert!(icon.body.starts_with("<svg"), "{path}");
        }
        let link = "<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">";
        assert!(user.get("/login").await.body.contains(link));
        let mut user = Browser::logged_in(&city.p, "ent-a").await;
        for path in [
            format!("/enterprises/{}", city.a),
            format!(
                "/enterprises/{}/chart?gateway={}&device=press-1&point=temperature",
                city.a, city.gw_a
            ),
            "/bureau".to_owned(),
            "/nowhere-but-a-page".to_owned(),
            format!("/enterprises/{}", city.b),
        ] {
            let page = user.get(&path).await;
            if page.headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
            {
                assert!(page.body.contains(link), "{path}");
            }
        }
    })
    .await;
}

/// After a wrong password the form keeps the user name (escaped) and asks for the
/// password alone.
#[tokio::test]
async fn a_failed_login_keeps_the_user_name() {
    bounded(LIMIT, async {
        let city = city().await;
        let mut browser = Browser::new(&city.p);
        let wrong = browser.login("bureau", "not the password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(
            wrong.body.contains("name=\"username\" value=\"bureau\""),
            "{}",
            wrong.body
        );
        assert!(
            wrong
                .body
                .contains("autocomplete=\"current-password\" required autofocus")
        );
        let odd = browser.login("<b>\"x", "not the password").await;
        assert!(
            odd.body.contains("value=\"&lt;b&gt;&quot;x\""),
            "{}",
            odd.body
        );
        let fresh = browser.get("/login").await;
        assert!(fresh.body.contains("name=\"username\" value=\"\""));
        assert!(
            fresh
                .body
                .contains("autocomplete=\"username\" required autofocus")
        );
    })
    .await;
}

/// Regression: a new point's chart opened on 24 hours with its samples as three dots at
/// the right edge. The default window starts at the point's first sample.
#[tokio::test]
async fn a_new_points_chart_opens_on_the_data_it_has() {
    bounded(LIMIT, async {
        let city = city().await;
        let mut bureau = Browser::logged_in(&city.p, "bureau").await;
        // A does not share its values with the bureau: its integrator reads them.
        let mut integrator = Browser::logged_in(&city.p, "int-1").await;
        let series = |code: &str, gateway: &str, hours: &str| {
            format!("/enterprises/{code}/series?gateway={gateway}&device=press-1&point=temperature{hours}")
        };
        let window = |s: &Json| s["to"].as_i64().unwrap() - s["from"].as_i64().unwrap();
        // B's point has one sample, seconds old: the window is seconds long.
        let b: Json = serde_json::from_str(&bureau.get(&series(&city.b, &city.gw_b, "")).await.body).unwrap();
        assert_eq!(b["samples"], 1);
        assert!(window(&b) < 5 * 60_000, "{b}");
        let t = b["t"][0].as_f64().unwrap() * 1000.0;
        assert!(t >= b["from"].as_f64().unwrap() && t < b["to"].as_f64().unwrap(), "{b}");
        // A's has 100 minutes: the window starts just before its first sample.
        let a: Json = serde_json::from_str(&integrator.get(&series(&city.a, &city.gw_a, "")).await.body).unwrap();
        assert_eq!(a["samples"], CHART_SAMPLES);
        let from = a["from"].as_i64().unwrap();
        assert!(from <= city.first_sample, "{from} > {}", city.first_sample);
        assert!(city.first_sample - from <= window(&a) / 20, "{a}");
        // A window asked for is kept.
        let day: Json = serde_json::from_str(&integrator.get(&series(&city.a, &city.gw_a, "&hours=24")).await.body).unwrap();
        assert_eq!(window(&day), 24 * 3_600_000);
        // The chart page offers the fitted window first, as the current one.
        let chart = bureau
            .get(&format!("/enterprises/{}/chart?gateway={}&device=press-1&point=temperature", city.b, city.gw_b))
            .await;
        assert!(chart.body.contains("aria-current=\"page\">自动</a>"), "{}", chart.body);
        let url = &chart.body[chart.body.find("data-url=\"").unwrap()..];
        let url = &url[..url.find("\" ").unwrap()];
        assert!(url.contains("point=temperature") && !url.contains("hours"), "{url}");
    })
    .await;
}

/// An x-axis label of a chart: `HH:MM`, `HH:MM:SS`, or a date: `12月7日`, `2026年`,
/// `2026年12月` in Chinese, `12-07`, `2026`, `2026-12` in English. Never `10:40am` or
/// `12/7/26`.
fn is_tick_label(label: &str, english: bool) -> bool {
    let digits = label.chars().filter(char::is_ascii_digit).count();
    let rest: String = label.chars().filter(|c| !c.is_ascii_digit()).collect();
    let clock = (rest == ":" && digits == 4) || (rest == "::" && digits == 6);
    let clock = clock && label[..2].parse::<u32>().is_ok_and(|h| h < 24);
    let date = if english {
        matches!((rest.as_str(), digits), ("-", 4 | 6) | ("", 4))
    } else {
        matches!(rest.as_str(), "月日" | "年" | "年月") && digits >= 2
    };
    clock || date
}

/// Headless Chromium (Debian's `chromium`, driven by `tests/ui_chromium.py` over the
/// DevTools pipe) logs in as the bureau, an integrator and an enterprise (the pages, a
/// gateway's config page, the templates page and the enterprise's alarms, rules and
/// channels among them): the dashboard's figures
/// equal the counts API, both charts draw, no page scrolls sideways at 1366×768 nor on a
/// 390 px phone, where no table cell is squeezed onto more lines than it has; the charts'
/// legends show the latest values without a hover, their axes a 24-hour clock and the
/// page's dates, in Beijing time though the browser runs in New York's zone. The
/// screenshots land in `$FIELDLINK_UI_SCREENSHOTS` (default `target/ui-screenshots`).
/// Without chromium it is skipped, unless `FIELDLINK_REQUIRE_CHROMIUM=1` (CI).
#[tokio::test]
#[ignore = "needs chromium and python3 (CI installs them)"]
async fn chromium_shows_the_counts_and_charts() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    if let Err(e) = std::process::Command::new(&chromium)
        .arg("--version")
        .output()
    {
        let required = std::env::var("FIELDLINK_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "chromium is required (FIELDLINK_REQUIRE_CHROMIUM=1) but cannot be run: {e}; install it with `apt-get install -y chromium fonts-wqy-microhei`"
        );
        eprintln!("SKIPPED: {chromium} not found ({e}); install it to test the UI in a browser");
        return;
    }
    bounded(Duration::from_secs(240), async {
        let city = city().await;
        let out = std::env::var_os("FIELDLINK_UI_SCREENSHOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
            });
        let chart = format!(
            "/enterprises/{}/chart?gateway={}&device=press-1&point=temperature",
            city.a, city.gw_a
        );
        // A's gateway has a config, so its page shows a text, a version and the picker.
        let saved = city
            .p
            .bureau(Method::PUT, &format!("/api/v1/gateways/{}/config", city.gw_a))
            .body(sim_config("sim"))
            .send()
            .await
            .unwrap();
        assert_eq!(saved.status(), StatusCode::OK);
        let config = format!("/gateways/{}/config", city.gw_a);
        let alarms = alarm_examples(&city).await;
        let parts = machine_signals(&city).await;
        let rules = format!("/enterprises/{}/alarm-rules", city.a);
        let channels = format!("/enterprises/{}/alarm-channels", city.a);
        let jobs = json!([
            {"name": "enterprise-alarms", "username": "ent-a", "password": PASSWORD, "path": alarms},
            {"name": "enterprise-alarms-phone", "username": "ent-a", "password": PASSWORD, "path": alarms, "width": 390, "height": 844},
            {"name": "enterprise-alarms-en-phone", "username": "ent-a", "password": PASSWORD, "path": format!("/lang/en?next={}", ui_encode(&alarms)), "width": 390, "height": 844},
            {"name": "enterprise-alarm-rules", "username": "ent-a", "password": PASSWORD, "path": rules},
            {"name": "enterprise-alarm-rules-phone", "username": "ent-a", "password": PASSWORD, "path": rules, "width": 390, "height": 844},
            {"name": "enterprise-alarm-channels-phone", "username": "ent-a", "password": PASSWORD, "path": channels, "width": 390, "height": 844},
            {"name": "integrator-config", "username": "int-1", "password": PASSWORD, "path": config},
            {"name": "integrator-config-phone", "username": "int-1", "password": PASSWORD, "path": config, "width": 390, "height": 844},
            {"name": "enterprise-config-phone", "username": "ent-a", "password": PASSWORD, "path": config, "width": 390, "height": 844},
            {"name": "templates", "username": "int-1", "password": PASSWORD, "path": "/templates"},
            {"name": "templates-phone", "username": "int-1", "password": PASSWORD, "path": "/templates", "width": 390, "height": 844},
            {"name": "bureau-dashboard", "username": "bureau", "password": PASSWORD, "path": "/bureau"},
            {"name": "bureau-cockpit", "username": "bureau", "password": PASSWORD, "path": "/bureau/cockpit", "width": 1920, "height": 1080},
            {"name": "bureau-dashboard-en", "username": "bureau", "password": PASSWORD, "path": "/lang/en?next=/bureau"},
            {"name": "bureau-district", "username": "bureau", "password": PASSWORD, "path": "/bureau/districts/%E6%B4%AA%E5%B1%B1%E5%8C%BA"},
            {"name": "enterprise", "username": "ent-a", "password": PASSWORD, "path": format!("/enterprises/{}", city.a)},
            {"name": "enterprise-chart", "username": "ent-a", "password": PASSWORD, "path": chart},
            {"name": "enterprise-chart-en", "username": "ent-a", "password": PASSWORD, "path": format!("/lang/en?next={}", ui_encode(&chart))},
            {"name": "bureau-dashboard-phone", "username": "bureau", "password": PASSWORD, "path": "/bureau", "width": 390, "height": 844},
            {"name": "bureau-dashboard-en-phone", "username": "bureau", "password": PASSWORD, "path": "/lang/en?next=/bureau", "width": 390, "height": 844},
            {"name": "enterprise-phone", "username": "ent-a", "password": PASSWORD, "path": format!("/enterprises/{}", city.a), "width": 390, "height": 844},
            {"name": "enterprise-chart-phone", "username": "ent-a", "password": PASSWORD, "path": chart, "width": 390, "height": 844},
            {"name": "bureau-fleet", "username": "bureau", "password": PASSWORD, "path": "/fleet"},
            {"name": "bureau-integrators", "username": "bureau", "password": PASSWORD, "path": "/bureau/integrators"},
            {"name": "bureau-enterprise-not-shared", "username": "bureau", "password": PASSWORD, "path": format!("/enterprises/{}", city.a)},
            {"name": "bureau-enterprise-phone", "username": "bureau", "password": PASSWORD, "path": format!("/enterprises/{}", city.a), "width": 390, "height": 844},
            {"name": "integrator-fleet", "username": "int-1", "password": PASSWORD, "path": "/fleet"},
            {"name": "integrator-fleet-phone", "username": "int-1", "password": PASSWORD, "path": "/fleet", "width": 390, "height": 844},
            {"name": "district-dashboard", "username": "dist-hs", "password": PASSWORD, "path": "/bureau/districts/%E6%B4%AA%E5%B1%B1%E5%8C%BA"},
            {"name": "evidence", "username": "int-1", "password": PASSWORD, "path": format!("/enterprises/{}/evidence", city.a), "pdf": true},
            {"name": "district-integrators", "username": "dist-hs", "password": PASSWORD, "path": "/bureau/integrators"},
        ]);
        let (base, dir, script) = (
            city.p.base.clone(),
            out.clone(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui_chromium.py"),
        );
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .arg(script)
                .arg(base)
                .arg(dir)
                .arg(jobs.to_string())
                .output()
        })
        .await
        .unwrap()
        .expect("python3 runs");
        assert!(
            output.status.success(),
            "ui_chromium.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let reports: Json = serde_json::from_slice(&output.stdout).unwrap();
        let stats = city.p.get("/api/v1/stats/onboarding").await;
        let program = city.p.get("/api/v1/stats/program").await;
        for name in ["bureau-dashboard", "bureau-dashboard-en"] {
            let figures = reports[name]["figures"].as_object().unwrap();
            assert_eq!(figures.len(), (2 + 8 + 17) * 5, "{name}");
            for (figure, value) in figures {
                assert_eq!(value.as_u64(), Some(api_figure(&stats, figure)), "{name}: {figure}");
            }
            let shown = reports[name]["program"].as_object().unwrap();
            assert_eq!(shown.len(), (2 + 8 + 3) * 2, "{name}");
            for (figure, value) in shown {
                assert_eq!(value.as_u64(), Some(program_figure(&program, figure)), "{name}: {figure}");
            }
        }
        check_cockpit(&city, &reports["bureau-cockpit"], parts).await;
        assert_eq!(reports["bureau-dashboard"]["lang"], "zh-CN");
        assert_eq!(reports["bureau-dashboard-en"]["lang"], "en");
        assert_eq!(reports["enterprise"]["path"], format!("/enterprises/{}", city.a));
        for (name, report) in reports.as_object().unwrap() {
            assert_eq!(report["hscroll"], false, "{name} scrolls sideways");
            assert_eq!(report["squeezed"], json!([]), "{name}: squeezed table cells");
            assert_eq!(report["unwrapped"], 0, "{name}: a table outside a scrolling wrapper");
            assert!(
                report["charts"].as_array().unwrap().iter().all(|c| c == "1"),
                "{name}: {report}"
            );
            let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{name}.png");
        }
        let charts = [
            "bureau-dashboard",
            "bureau-dashboard-en",
            "bureau-dashboard-phone",
            "bureau-dashboard-en-phone",
            "enterprise-chart",
            "enterprise-chart-en",
            "enterprise-chart-phone",
        ];
        for name in charts {
            let report = &reports[name];
            assert_eq!(report["canvases"], 1, "{name}: {report}");
            // Without a hover the legend shows the latest values, not `--`.
            let legend = report["legend"].as_array().unwrap();
            assert!(legend.len() >= 3, "{name}: {report}");
            assert!(
                legend.iter().all(|v| v != "--" && v != ""),
                "{name}: legend {legend:?}"
            );
            let ticks = report["ticks"][0].as_str().unwrap();
            assert!(!ticks.is_empty(), "{name}: no x-axis labels");
            for label in ticks.split(['|', '\n']) {
                assert!(is_tick_label(label, name.contains("-en")), "{name}: tick {label:?} in {ticks}");
            }
        }
        // The point chart's x axis is a clock (its window is the point's 100 minutes),
        // its latest time Beijing's whatever the browser's zone; the daily chart's, dates.
        let last = city.first_sample + (CHART_SAMPLES - 1) * 1000;
        let minutes: Vec<String> = (0..3)
            .map(|k| ui::format::local_time(last - k * 60_000, 480))
            .collect();
        for name in ["enterprise-chart", "enterprise-chart-en", "enterprise-chart-phone"] {
            let report = &reports[name];
            assert!(report["ticks"][0].as_str().unwrap().contains(':'), "{name}: {report}");
            let at = report["legend"][0].as_str().unwrap();
            assert!(minutes.iter().any(|m| at.starts_with(m.as_str())), "{name}: {at} not in {minutes:?}");
        }
        let today = ui::format::local_time(fieldlink_platform::clock::now_ms(), 480);
        for name in ["bureau-dashboard", "bureau-dashboard-en"] {
            let report = &reports[name];
            assert!(!report["ticks"][0].as_str().unwrap().contains(':'), "{name}: {report}");
            assert_eq!(report["legend"][0], today[..10], "{name}");
        }
        assert!(reports["bureau-dashboard"]["ticks"][0].as_str().unwrap().contains('月'));
        let pdf = std::fs::read(out.join("evidence.pdf")).unwrap();
        assert!(pdf.starts_with(b"%PDF"), "evidence.pdf");
        println!("screenshots in {}", out.display());
    })
    .await;
}

/// The cockpit at 1920 × 1080 fits the screen exactly, nothing clipped, and shows the
/// API's figures: the totals, every district's tile, every industry, every program target.
async fn check_cockpit(city: &City, report: &Json, parts: u64) {
    assert_eq!(report["lang"], "zh-CN");
    assert_eq!(report["height"], 1080, "the cockpit scrolls: {report}");
    assert_eq!(
        report["clipped"],
        json!([]),
        "cockpit panels overflow: {report}"
    );
    let figures = report["figures"].as_object().unwrap();
    let shown = |name: &str| {
        figures
            .get(name)
            .and_then(Json::as_u64)
            .unwrap_or_else(|| panic!("the cockpit does not show {name}: {report}"))
    };
    let stats = city.p.get("/api/v1/stats/onboarding").await;
    assert_eq!(
        shown("kpi.registered"),
        stats["total"]["registered"].as_u64().unwrap()
    );
    assert_eq!(
        shown("kpi.on_cloud"),
        stats["total"]["on_cloud"].as_u64().unwrap()
    );
    assert_eq!(
        shown("kpi.active"),
        stats["total"]["active"].as_u64().unwrap()
    );
    for d in stats["by_district"].as_array().unwrap() {
        let name = format!("district.{}.on_cloud", d["district"].as_str().unwrap());
        assert_eq!(shown(&name), d["on_cloud"].as_u64().unwrap(), "{name}");
    }
    for i in stats["by_industry"].as_array().unwrap() {
        let name = format!("industry.{}.on_cloud", i["industry"].as_str().unwrap());
        assert_eq!(shown(&name), i["on_cloud"].as_u64().unwrap(), "{name}");
    }
    let program = city.p.get("/api/v1/stats/program").await;
    let mut targets = 0;
    for t in program["targets"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        if id.starts_with("on_cloud_industry:") {
            continue;
        }
        targets += 1;
        let name = format!("program.{id}.achieved");
        assert_eq!(shown(&name), t["achieved"].as_u64().unwrap(), "{name}");
    }
    assert!(targets >= 5, "{program}");
    // Today's monitoring: the counts always, the values only where not withheld.
    let monitoring = city
        .p
        .get("/api/v1/stats/monitoring?by=industry&days=7")
        .await;
    let today = |days: &Json| days.as_array().unwrap().last().unwrap().clone();
    let total = today(&monitoring["total"]["days"]);
    assert_eq!(
        shown("monitoring.enterprises"),
        total["enterprises"].as_u64().unwrap()
    );
    assert_eq!(
        shown("monitoring.machines"),
        total["machines"].as_u64().unwrap()
    );
    assert_eq!(shown("kpi.machines"), total["machines"].as_u64().unwrap());
    for g in monitoring["groups"].as_array().unwrap() {
        let name = format!("monitoring.{}.machines", g["group"].as_str().unwrap());
        assert_eq!(
            shown(&name),
            today(&g["days"])["machines"].as_u64().unwrap(),
            "{name}"
        );
    }
    // B (auto-parts) shares its data: its output is shown; A's group is withheld.
    let auto_parts = monitoring["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "auto-parts")
        .map(|g| today(&g["days"]))
        .unwrap();
    assert_eq!(auto_parts["withheld"], false, "{monitoring}");
    assert_eq!(
        auto_parts["output"].as_f64(),
        Some(parts as f64),
        "{monitoring}"
    );
    assert_eq!(shown("monitoring.auto-parts.output"), parts);
}

/// B's press reports its machine signals for the last hour (of today), a sample a minute:
/// running but for 10 minutes, 3 kWh and 5 parts a running minute (B shares its data, so
/// the cockpit shows its industry's figures). Returns the parts made.
async fn machine_signals(city: &City) -> u64 {
    let p = &city.p;
    let point = |name: &str, data_type: &str, role| PointMeta {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
        unit: None,
        role,
    };
    let meta = Meta {
        devices: vec![DeviceMeta {
            name: "press-1".into(),
            protocol: "modbus-tcp".into(),
            points: vec![
                point("temperature", "f32", None),
                point("running", "bool", Some(PointRole::Running)),
                point("energy", "f32", Some(PointRole::EnergyKwh)),
                point("parts", "u32", Some(PointRole::OutputCount)),
            ]
            .into_iter()
            .map(|mut m| {
                m.unit = (m.name == "temperature").then(|| "°C".to_owned());
                m
            })
            .collect(),
        }],
    };
    let before = p.ingest_stats().await;
    let mut client = connect(&p.mqtt, &city.gw_b, Some((&city.gw_b, &city.pw_b)))
        .await
        .unwrap();
    client
        .publish(
            &Topics::new(&city.gw_b).meta,
            serde_json::to_vec(&meta).unwrap(),
            true,
        )
        .await;
    client.disconnect().await;
    let metas = before["meta_updates"].as_u64().unwrap() + 1;
    p.wait_ingest(WAIT, |s| s["meta_updates"].as_u64() >= Some(metas))
        .await;
    // Within today in Beijing whatever the time: the minutes before now, but not before
    // today's local midnight.
    let now = fieldlink_platform::clock::now_ms();
    let midnight = now - (now + 8 * 3_600_000).rem_euclid(86_400_000);
    let start = (now - 3_600_000).max(midnight + 1000);
    let minutes = ((now - start) / 60_000).min(60);
    let (mut energy, mut parts) = (1000.0, 0u64);
    let device: Arc<str> = "press-1".into();
    let mut samples = Vec::new();
    for m in 0..=minutes {
        let ts = start + m * 60_000;
        let running = !(20..30).contains(&m);
        samples.push(Sample::good(
            device.clone(),
            "running".into(),
            ts,
            Value::Bool(running),
        ));
        samples.push(Sample::good(
            device.clone(),
            "energy".into(),
            ts,
            Value::Float(energy),
        ));
        samples.push(Sample::good(
            device.clone(),
            "parts".into(),
            ts,
            Value::UInt(parts),
        ));
        if running && m < minutes {
            energy += 3.0;
            parts += 5;
        }
    }
    let batch = Batch {
        gateway: city.gw_b.clone(),
        seq: 2,
        samples,
    };
    publish_batches(&p.mqtt, &city.gw_b, Some(&city.pw_b), &[batch]).await;
    let stored = before["batches_stored"].as_u64().unwrap() + 1;
    p.wait_ingest(WAIT, |s| s["batches_stored"].as_u64() >= Some(stored))
        .await;
    parts
}

/// A's alarms for the screenshots, made through the API as A: a channel and three rules on
/// press-1's temperature, then 95 °C (raising the warning and the info) with the warning
/// acknowledged, then 150 °C (raising the critical, clearing the info): one alarm of each
/// state. The alarms page that lists them all.
async fn alarm_examples(city: &City) -> String {
    let p = &city.p;
    let token = user_token(p, "ent-a").await;
    let post = |path: String, body: Json| {
        let request = p
            .http
            .post(format!("{}{path}", p.base))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let answer = request.send().await.unwrap();
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.json::<Json>().await.unwrap()
        }
    };
    let a = &city.a;
    let channel = post(
        format!("/api/v1/enterprises/{a}/channels"),
        json!({"name": "设备科飞书群", "kind": "feishu",
               "url": "https://203.0.113.10/open-apis/bot/v2/hook/0f9e8d7c-6b5a-4321-9876-abcdef012345"}),
    )
    .await["id"]
        .clone();
    for (name, kind, threshold, severity) in [
        ("炉温过高", "high", 100, "critical"),
        ("炉温偏高", "high", 90, "warning"),
        ("炉温未达工艺温度", "low", 120, "info"),
    ] {
        post(
            format!("/api/v1/enterprises/{a}/alarm-rules"),
            json!({"name": name, "gateway": city.gw_a, "device": "press-1", "point": "temperature",
                   "kind": kind, "threshold": threshold, "severity": severity, "channels": [channel]}),
        )
        .await;
    }
    // Between the charted samples (half a second off theirs), so that the charts' latest
    // values and times stay the ones the chromium test checks.
    let at = city.first_sample + 3_000_500;
    publish_temperature(p, &city.gw_a, &city.pw_a, 7, at, 95.0).await;
    let deadline = std::time::Instant::now() + WAIT;
    let events = loop {
        let answer = p
            .http
            .get(format!("{}/api/v1/enterprises/{a}/alarms", p.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Json>()
            .await
            .unwrap();
        if answer.as_array().unwrap().len() == 2 {
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let warning = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["rule"] == "炉温偏高")
        .unwrap();
    post(format!("/api/v1/alarms/{}/ack", warning["id"]), json!({})).await;
    publish_temperature(p, &city.gw_a, &city.pw_a, 8, at + 30_000, 150.0).await;
    p.wait_ingest(WAIT, |s| s["batches_stored"] == 9).await;
    format!("/enterprises/{a}/alarms?state=all")
}

/// The fleet shows each device's health from the agent's status: a device that is down
/// makes its gateway a problem, and its last good read, errors and last error are in the
/// row; "problems only" keeps that gateway and drops the healthy one.
#[tokio::test]
async fn the_fleet_shows_each_devices_health_and_its_problems() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let now = fieldlink_platform::clock::now_ms();
        let status = Status {
            state: GatewayState::Online,
            version: Some("0.9.8".into()),
            devices: vec![
                fieldlink_wire::DeviceHealth {
                    name: "press-1".into(),
                    protocol: "modbus-tcp".into(),
                    connected: true,
                    last_good_ms: Some(now),
                    errors: 0,
                    last_error: None,
                },
                fieldlink_wire::DeviceHealth {
                    name: "oven-2".into(),
                    protocol: "s7".into(),
                    connected: false,
                    last_good_ms: Some(now - 600_000),
                    errors: 17,
                    last_error: Some("connection refused (os error 111)".into()),
                },
            ],
            ..Status::offline()
        };
        let mut client = connect(&p.mqtt, &city.gw_a, Some((&city.gw_a, &city.pw_a)))
            .await
            .unwrap();
        client
            .publish(
                &Topics::new(&city.gw_a).status,
                serde_json::to_vec(&status).unwrap(),
                true,
            )
            .await;
        client.disconnect().await;
        p.wait_ingest(WAIT, |s| s["status_updates"] == 3).await;

        let fleet = p.get("/api/v1/gateways?problems=true").await;
        let row = fleet["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["gateway_id"] == city.gw_a.as_str())
            .unwrap_or_else(|| panic!("{fleet}"));
        assert_eq!(
            row["devices"][1]["last_error"],
            "connection refused (os error 111)"
        );
        assert_eq!(
            row["problems"],
            json!(["device_down", "device_error"]),
            "{row}"
        );
        assert!(
            !fleet["rows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["gateway_id"] == city.gw_b.as_str()),
            "B's gateway is healthy: {fleet}"
        );
        let mut integrator = Browser::logged_in(p, "int-1").await;
        let page = integrator.get("/fleet?problems=true").await;
        assert_eq!(page.status, StatusCode::OK);
        let at = page
            .body
            .find(&format!("data-gateway=\"{}\"", city.gw_a))
            .unwrap();
        let row = &page.body[at..at + page.body[at..].find("</tr>").unwrap()];
        assert!(row.contains(">1/2<"), "{row}");
        assert!(row.contains("oven-2: 离线 · 最近成功读取 "), "{row}");
        assert!(
            row.contains("错误次数 17 · connection refused (os error 111)"),
            "{row}"
        );
        assert!(row.contains("设备断开"), "{row}");
    })
    .await;
}

/// A valid config: one simulated device named `device`.
fn sim_config(device: &str) -> String {
    format!(
        "[[device]]\nname = \"{device}\"\nprotocol = \"simulator\"\n\n[[device.point]]\nname = \"t\"\n"
    )
}

/// `text` as the templates write it into a page (minijinja's HTML escaping).
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The row of `gateway` in a fleet page.
fn fleet_row<'a>(page: &'a Page, gateway: &str) -> &'a str {
    let at = page
        .body
        .find(&format!("data-gateway=\"{gateway}\""))
        .unwrap_or_else(|| panic!("no row for {gateway}: {}", page.body));
    &page.body[at..at + page.body[at..].find("</tr>").unwrap()]
}

/// A's gateway reports in its status that it runs config `version` (and refused a newer
/// one for `error`); `updates` is the ingest's status count once it has it.
async fn report_config(city: &City, version: u64, error: Option<&str>, updates: u64) {
    let p = &city.p;
    let status = Status {
        state: GatewayState::Online,
        version: Some("0.9.8".into()),
        config: Some(fieldlink_wire::ConfigState {
            version: Some(version),
            applied_at: Some(fieldlink_platform::clock::now_ms()),
            error: error.map(str::to_owned),
        }),
        ..Status::offline()
    };
    let mut client = connect(&p.mqtt, &city.gw_a, Some((&city.gw_a, &city.pw_a)))
        .await
        .unwrap();
    client
        .publish(
            &Topics::new(&city.gw_a).status,
            serde_json::to_vec(&status).unwrap(),
            true,
        )
        .await;
    client.disconnect().await;
    p.wait_ingest(WAIT, |s| s["status_updates"] == updates)
        .await;
}

/// The integrator edits A's gateway's config on its page: an invalid text comes back
/// kept, with every error at its line and column and those lines marked; a valid one is
/// saved as v1, pending until the gateway runs it; a rollback saves the old text as the
/// next version. The fleet shows each standing and links the page; the enterprise reads
/// the page but has no editor and may not post.
#[tokio::test]
async fn the_config_page_validates_saves_rolls_back_and_shows_the_standing() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        let page_path = format!("/gateways/{}/config", city.gw_a);
        let mut integrator = Browser::logged_in(p, "int-1").await;
        let page = integrator.get(&page_path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("data-standing=\"local\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("id=\"save\""));
        // The picker offers every shipped template with its block.
        for template in fieldlink_config::Templates::shipped().iter() {
            assert!(
                page.body.contains(&format!(
                    "<option value=\"{}\" data-skeleton=",
                    template.name
                )),
                "{}",
                template.name
            );
        }
        let csrf = page.hidden("csrf");

        // Invalid: `[gateway]` belongs to the local file, the device has no protocol.
        let invalid = "[gateway]\nid = \"x\"\n[[device]]\nname = \"d\"\n";
        let refused = integrator
            .post(&page_path, &[("csrf", &csrf), ("toml", invalid)])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        let body = &refused.body;
        assert!(
            body.contains(&format!(">\n{}</textarea>", html(invalid))),
            "the text is kept: {body}"
        );
        assert!(body.contains("配置有 2 处错误"), "{body}");
        for line in [1, 3] {
            assert!(
                body.contains(&format!("第 {line} 行第 1 列: ")),
                "{line}: {body}"
            );
            assert!(
                body.contains(&format!("<div class=\"line bad\" id=\"L{line}\"")),
                "{line}: {body}"
            );
            assert!(body.contains(&format!("<span class=\"bad\">{line}</span>")));
        }
        assert!(body.contains("<div class=\"line\" id=\"L2\""), "{body}");
        assert_eq!(
            p.get(&format!("/api/v1/gateways/{}/config", city.gw_a))
                .await["version"],
            Json::Null
        );

        // Valid, as a browser sends a textarea (CRLF): saved as v1 with LF, pending.
        let v1 = sim_config("sim");
        let saved = integrator
            .post(
                &page_path,
                &[("csrf", &csrf), ("toml", &v1.replace('\n', "\r\n"))],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
        assert_eq!(saved.location(), page_path);
        let page = integrator.get(&page_path).await;
        assert!(
            page.body.contains("data-standing=\"pending\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("v1 待应用"), "{}", page.body);
        assert!(page.body.contains(&format!(">\n{}</textarea>", html(&v1))));
        let api = p
            .get(&format!("/api/v1/gateways/{}/config", city.gw_a))
            .await;
        assert_eq!(
            (api["version"].as_u64(), api["toml"].as_str()),
            (Some(1), Some(v1.as_str()))
        );

        // v2, then back to v1: saved as v3 with v1's text; every older version has a button.
        let saved = integrator
            .post(
                &page_path,
                &[("csrf", &csrf), ("toml", &sim_config("sim-2"))],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        let rolled = integrator
            .post(
                &format!("{page_path}/rollback"),
                &[("csrf", &csrf), ("version", "1")],
            )
            .await;
        assert_eq!(rolled.status, StatusCode::SEE_OTHER, "{}", rolled.body);
        assert_eq!(rolled.location(), page_path);
        let api = p
            .get(&format!("/api/v1/gateways/{}/config", city.gw_a))
            .await;
        assert_eq!(
            (api["version"].as_u64(), api["toml"].as_str()),
            (Some(3), Some(v1.as_str()))
        );
        let page = integrator.get(&page_path).await;
        for v in [3, 2, 1] {
            assert!(
                page.body.contains(&format!("<tr data-version=\"{v}\">")),
                "{v}"
            );
        }
        assert_eq!(page.body.matches("name=\"version\" value=").count(), 2);
        assert!(page.body.contains("name=\"version\" value=\"1\""));
        assert!(!page.body.contains("name=\"version\" value=\"3\""));

        // The fleet: pending, then applied when the status says so, then refused.
        let fleet = integrator.get("/fleet").await;
        let row = fleet_row(&fleet, &city.gw_a);
        assert!(row.contains("v3 待应用"), "{row}");
        assert!(row.contains(&format!("href=\"{page_path}\"")), "{row}");
        report_config(&city, 3, None, 3).await;
        let fleet = integrator.get("/fleet").await;
        assert!(fleet_row(&fleet, &city.gw_a).contains("v3 已应用"));
        let page = integrator.get(&page_path).await;
        assert!(page.body.contains("data-standing=\"applied\""));
        assert!(page.body.contains("<span class=\"tag ok\">运行中</span>"));
        let saved = integrator
            .post(
                &page_path,
                &[("csrf", &csrf), ("toml", &sim_config("sim-4"))],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        let why = "config v4: device \"sim-4\": port busy";
        report_config(&city, 3, Some(why), 4).await;
        let fleet = integrator.get("/fleet").await;
        let row = fleet_row(&fleet, &city.gw_a);
        assert!(row.contains("已拒绝"), "{row}");
        assert!(row.contains(&format!("title=\"{}\"", html(why))), "{row}");
        let page = integrator.get(&page_path).await;
        assert!(page.body.contains("data-standing=\"refused\""));
        assert!(page.body.contains(&html(why)));
        let csv = integrator.get("/fleet?format=csv").await;
        assert!(csv.body.contains("已拒绝"), "{}", csv.body);

        // The enterprise reads its gateway's config and may change nothing.
        let mut owner = Browser::logged_in(p, "ent-a").await;
        let page = owner.get(&page_path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("id=\"read-only\""));
        assert!(!page.body.contains("id=\"save\""));
        assert!(!page.body.contains("name=\"toml\""));
        assert!(!page.body.contains("name=\"version\""));
        assert!(
            page.body.contains("<code>name = &quot;sim-4&quot;</code>"),
            "{}",
            page.body
        );
        let csrf = page.hidden("csrf");
        let post = owner
            .post(&page_path, &[("csrf", &csrf), ("toml", &sim_config("x"))])
            .await;
        assert_eq!(post.status, StatusCode::FORBIDDEN);
        let post = owner
            .post(
                &format!("{page_path}/rollback"),
                &[("csrf", &csrf), ("version", "1")],
            )
            .await;
        assert_eq!(post.status, StatusCode::FORBIDDEN);
        // Nor may the integrator post without the session's token.
        let post = integrator
            .post(
                &page_path,
                &[("csrf", "forged"), ("toml", &sim_config("x"))],
            )
            .await;
        assert_eq!(post.status, StatusCode::FORBIDDEN);
        assert_eq!(
            p.get(&format!("/api/v1/gateways/{}/config", city.gw_a))
                .await["version"],
            4
        );
    })
    .await;
}

/// Every logged-in user may read the templates page: each shipped template with its
/// source, its points, its file and the block that uses it; examples are marked.
#[tokio::test]
async fn the_templates_page_lists_every_shipped_template_with_its_source() {
    bounded(LIMIT, async {
        let city = city().await;
        let p = &city.p;
        assert_eq!(
            Browser::new(p).get("/templates").await.status,
            StatusCode::SEE_OTHER
        );
        let mut owner = Browser::logged_in(p, "ent-b").await;
        let page = owner.get("/templates").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let shipped = fieldlink_config::Templates::shipped();
        assert!(shipped.iter().count() >= 10);
        for t in shipped.iter() {
            let at = page
                .body
                .find(&format!("<section class=\"template\" id=\"{}\">", t.name))
                .unwrap_or_else(|| panic!("{}", t.name));
            let section = &page.body[at..at + page.body[at..].find("</section>").unwrap()];
            assert!(section.contains(&html(&t.source)), "{}: {section}", t.name);
            assert!(section.contains(&html(&t.title)), "{}", t.name);
            assert!(section.contains(&t.points.join(", ")), "{}", t.name);
            assert_eq!(section.contains(">示例</span>"), t.example, "{}", t.name);
            assert!(section.contains(&html(&format!("template = \"{}\"", t.name))));
            assert!(
                section.contains(&html(t.text().lines().next().unwrap())),
                "{}",
                t.name
            );
        }
        assert!(
            shipped.iter().any(|t| t.example),
            "the library marks its examples"
        );
    })
    .await;
}

/// The `data-NAME="..."` values of a page, in order (ids of listed alarms, rules, channels).
fn data_values(html: &str, name: &str) -> Vec<String> {
    let marker = format!("data-{name}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// Waits (bounded by [`WAIT`]) until `path` shows `text` to `browser`; the page.
async fn page_showing(browser: &mut Browser, path: &str, text: &str) -> Page {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = browser.get(path).await;
        if page.body.contains(text) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never showed {text}: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One sample of press-1's temperature, published by `gateway` as batch `seq`.
async fn publish_temperature(
    p: &TestPlatform,
    gateway: &str,
    password: &str,
    seq: u64,
    ts: i64,
    value: f64,
) {
    let batch = Batch {
        gateway: gateway.to_owned(),
        seq,
        samples: vec![Sample::good(
            "press-1".into(),
            "temperature".into(),
            ts,
            Value::Float(value),
        )],
    };
    publish_batches(&p.mqtt, gateway, Some(password), &[batch]).await;
}

/// An enterprise user manages its alarms from the pages: a channel to a real receiver
/// (refused first with the reason in place) gets the test message; a rule refused with
/// its reason in place and the values kept, then created through the form, is raised by a
/// batch over MQTT and listed on the alarms page in local time, where it is acknowledged.
/// Its integrator sees the active alarm on the fleet, linked; the bureau sees counts of the
/// enterprises that share their data only, never a rule's name or a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_are_managed_from_the_pages_and_only_counted_for_the_bureau() {
    bounded(LIMIT, async {
        let city = city_with(|cfg| cfg.allow_private_webhooks = true).await;
        let p = &city.p;
        let received = fieldlink_testkit::webhook::WebhookReceiver::start().await.unwrap();
        let hook = received.url().to_owned();
        let mut owner = Browser::logged_in(p, "ent-a").await;
        let a = &city.a;

        // The enterprise page leads to the alarms, which lead to the channels and rules.
        let home = owner.get(&format!("/enterprises/{a}")).await;
        assert!(home.body.contains("id=\"alarm-summary\""), "{}", home.body);
        assert!(home.body.contains(&format!("href=\"/enterprises/{a}/alarms\"")));
        let alarms = owner.get(&format!("/enterprises/{a}/alarms")).await;
        assert_eq!(alarms.status, StatusCode::OK);
        assert!(alarms.body.contains("id=\"no-alarms\""), "{}", alarms.body);
        for link in ["alarm-rules", "alarm-channels"] {
            assert!(alarms.body.contains(&format!("href=\"/enterprises/{a}/{link}\"")), "{link}");
        }
        let csrf = alarms.hidden("csrf");

        // A channel: a bad URL is refused in place with the values kept, then saved.
        let channels = format!("/enterprises/{a}/alarm-channels");
        let refused = owner
            .post(&channels, &[("csrf", &csrf), ("name", "值班群"), ("kind", "webhook"), ("url", "ftp://example.com/hook")])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.body.contains("id=\"channel-error\""), "{}", refused.body);
        assert!(refused.body.contains(&html("http:// or https://")), "{}", refused.body);
        assert!(refused.body.contains("value=\"值班群\""), "{}", refused.body);
        assert!(refused.body.contains(&format!("value=\"{}\"", html("ftp://example.com/hook"))), "{}", refused.body);
        let saved = owner
            .post(&channels, &[("csrf", &csrf), ("name", "值班群"), ("kind", "webhook"), ("url", &hook)])
            .await;
        assert_eq!((saved.status, saved.location()), (StatusCode::SEE_OTHER, channels.as_str()));
        let list = owner.get(&channels).await;
        let ids = data_values(&list.body, "channel");
        assert_eq!(ids.len(), 1, "{}", list.body);
        let channel = &ids[0];

        // Its test message reaches the receiver; the page says so.
        let tested = owner.post(&format!("/alarm-channels/{channel}/test"), &[("csrf", &csrf)]).await;
        assert_eq!(tested.status, StatusCode::OK, "{}", tested.body);
        assert!(tested.body.contains("data-delivered=\"true\""), "{}", tested.body);
        assert!(tested.body.contains("测试消息已送达"), "{}", tested.body);
        let bodies = received.wait_for(WAIT, "the test message", |b| !b.is_empty()).await;
        assert_eq!((bodies[0]["test"].as_bool(), bodies[0]["enterprise"].as_str()), (Some(true), Some(a.as_str())));

        // A rule: the form offers A's gateway, device and point; one without a threshold
        // is refused with the reason in place and what was typed kept.
        let rules = format!("/enterprises/{a}/alarm-rules");
        let form = owner.get(&rules).await;
        assert!(form.body.contains(&html("line-1 / press-1 / temperature (°C)")), "{}", form.body);
        for kind in ["高于阈值", "低于阈值", "等于", "无数据", "网关离线", "设备断线"] {
            assert!(form.body.contains(kind), "{kind}");
        }
        let target = json!([city.gw_a, "press-1", "temperature"]).to_string();
        let rule = |threshold: &'static str| {
            vec![
                ("csrf", csrf.clone()),
                ("name", "炉温过高".to_owned()),
                ("target", target.clone()),
                ("kind", "high".to_owned()),
                ("threshold", threshold.to_owned()),
                ("hysteresis", "5".to_owned()),
                ("for_seconds", "0".to_owned()),
                ("severity", "critical".to_owned()),
                ("channels", channel.clone()),
            ]
        };
        let refused_rule = rule("");
        let pairs: Vec<(&str, &str)> = refused_rule.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = owner.post(&rules, &pairs).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.body.contains("id=\"rule-error\""), "{}", refused.body);
        assert!(refused.body.contains("needs a finite `threshold`"), "{}", refused.body);
        assert!(refused.body.contains("value=\"炉温过高\"") && refused.body.contains("value=\"5\""), "{}", refused.body);
        assert!(refused.body.contains(&format!("value=\"{channel}\" checked")), "{}", refused.body);
        let created_rule = rule("100");
        let pairs: Vec<(&str, &str)> = created_rule.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let created = owner.post(&rules, &pairs).await;
        assert_eq!((created.status, created.location()), (StatusCode::SEE_OTHER, rules.as_str()), "{}", created.body);
        let list = owner.get(&rules).await;
        assert_eq!(data_values(&list.body, "rule").len(), 1, "{}", list.body);
        assert!(list.body.contains("阈值 100 · 回差 5") && list.body.contains("值班群"), "{}", list.body);

        // B shares its data: an alarm of its own, which the bureau may count.
        let ent_b = user_token(p, "ent-b").await;
        let b_rule = p
            .http
            .post(format!("{}/api/v1/enterprises/{}/alarm-rules", p.base, city.b))
            .bearer_auth(&ent_b)
            .json(&json!({"name": "B 高温", "gateway": city.gw_b, "device": "press-1", "point": "temperature",
                          "kind": "high", "threshold": 10, "severity": "warning"}))
            .send()
            .await
            .unwrap();
        assert_eq!(b_rule.status(), StatusCode::CREATED);

        // 150 °C raises A's rule: listed active, in local time, and notified.
        let now = fieldlink_platform::clock::now_ms();
        publish_temperature(p, &city.gw_a, &city.pw_a, 7, now - 1000, 150.0).await;
        publish_temperature(p, &city.gw_b, &city.pw_b, 2, now - 1000, 20.0).await;
        let alarms_path = format!("/enterprises/{a}/alarms");
        let page = page_showing(&mut owner, &alarms_path, "data-state=\"active\"").await;
        let row = &page.body[page.body.find("data-state=\"active\"").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        for shown in ["炉温过高", "sev-critical", "严重", "150", &html("line-1 / press-1 / temperature"), "未确认"] {
            assert!(row.contains(shown), "{shown}: {row}");
        }
        assert!(row.contains(&ui::format::local_time(now - 1000, 480)), "{row}");
        assert_eq!(figures(&page.body)["alarms.active"], 1);
        received.wait_for(WAIT, "the raise", |b| b.iter().any(|n| n["rule"] == "炉温过高")).await;

        // The integrator sees it on the fleet, linked to the alarms page.
        let mut integrator = Browser::logged_in(p, "int-1").await;
        let fleet = integrator.get("/fleet").await;
        let a_row = fleet_row(&fleet, &city.gw_a);
        assert!(a_row.contains("data-alarms=\"1\""), "{a_row}");
        assert!(a_row.contains(&format!("href=\"/enterprises/{a}/alarms\"")), "{a_row}");
        assert_eq!(integrator.get(&alarms_path).await.status, StatusCode::OK);

        // The bureau: B's count, A withheld; no rule names, no values, no alarms page.
        let mut bureau = Browser::logged_in(p, "bureau").await;
        let dashboard = page_showing(&mut bureau, "/bureau", &format!("data-enterprise=\"{}\"", city.b)).await;
        let section = &dashboard.body[dashboard.body.find("id=\"open-alarms\"").unwrap()..];
        let section = &section[..section.find("</section>").unwrap()];
        assert!(!section.contains(a.as_str()), "{section}");
        assert!(section.contains("id=\"alarms-withheld\""), "{section}");
        let fleet = bureau.get("/fleet").await;
        assert!(fleet_row(&fleet, &city.gw_a).contains("data-alarms=\"\""), "A is not shared");
        assert!(fleet_row(&fleet, &city.gw_b).contains("data-alarms=\"1\""));
        assert!(!fleet_row(&fleet, &city.gw_b).contains("/alarms\""), "no link for the bureau");
        let mut district = Browser::logged_in(p, "dist-hs").await;
        let home = district.get("/").await;
        let hongshan = district.get(home.location()).await;
        assert!(hongshan.body.contains("data-alarms=\"1\""), "{}", hongshan.body);
        for (who, page) in [("bureau", &dashboard), ("bureau", &fleet), ("district", &hongshan)] {
            for secret in ["炉温过高", "B 高温", "sev-"] {
                assert!(!page.body.contains(secret), "{who} sees {secret}");
            }
        }
        assert_eq!(bureau.get(&alarms_path).await.status, StatusCode::FORBIDDEN);

        // Acknowledged from the page: no longer active, acknowledged by ent-a.
        let event = data_values(&page.body, "alarm").remove(0);
        let acked = owner.post(&format!("/alarms/{event}/ack"), &[("csrf", &csrf)]).await;
        assert_eq!((acked.status, acked.location()), (StatusCode::SEE_OTHER, alarms_path.as_str()));
        let page = owner.get(&alarms_path).await;
        assert_eq!(data_values(&page.body, "state"), ["acknowledged"], "{}", page.body);
        assert!(page.body.contains("<span class=\"note\">ent-a</span>"), "{}", page.body);
        assert!(!page.body.contains("class=\"ack\""), "{}", page.body);
        let counts = figures(&page.body);
        assert_eq!((counts["alarms.active"], counts["alarms.acknowledged"]), (0, 1));
        let fleet = integrator.get("/fleet").await;
        assert!(fleet_row(&fleet, &city.gw_a).contains("data-alarms=\"0\""));

        // Switched off and edited through the same form, prefilled.
        let rule_id = data_values(&list.body, "rule").remove(0);
        let off = owner.post(&format!("/alarm-rules/{rule_id}/enabled"), &[("csrf", &csrf), ("enabled", "false")]).await;
        assert_eq!(off.status, StatusCode::SEE_OTHER);
        assert!(owner.get(&rules).await.body.contains("data-enabled=\"false\""));
        let edit = owner.get(&format!("/alarm-rules/{rule_id}")).await;
        assert!(edit.body.contains("value=\"炉温过高\"") && edit.body.contains("value=\"100\""), "{}", edit.body);
        assert!(edit.body.contains(&format!("action=\"{}\"", html(&format!("/alarm-rules/{rule_id}")))));
        drop(received);
    })
    .await;
}
