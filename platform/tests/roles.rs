//! Roles and scopes (DESIGN.md, "Roles and scopes"): every route of the web UI and of the
//! API walked as each of the four roles, through the role's web session (pages, and the
//! API's reads) and through its bearer API token (the whole API). Outside its scope a user
//! gets 404 for what it may not see and 403 for what it may not do; nothing it is shown
//! names an enterprise or gateway outside its scope; and the bureau and the districts never
//! see the sample values of an enterprise that does not share them.
//!
//! The city ([`city`]): A (东西湖区, integrator I1, not sharing), B (洪山区, integrator I2,
//! sharing), C (洪山区, integrator I1, silent). The users: the bureau, the 洪山区 district,
//! integrator I1, and enterprise A.

use crate::support::bounded;
use crate::ui::{Browser, City, city, user_token};
use fieldlink_platform::{api, ui};
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::collections::HashSet;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// The four users, in the order of each row's expectations.
const USERS: [&str; 4] = ["bureau", "dist-hs", "int-1", "ent-a"];

const OK: StatusCode = StatusCode::OK;
const CREATED: StatusCode = StatusCode::CREATED;
const SEE_OTHER: StatusCode = StatusCode::SEE_OTHER;
const BAD: StatusCode = StatusCode::BAD_REQUEST;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
const MISSING: StatusCode = StatusCode::NOT_FOUND;
const BAD_GATEWAY: StatusCode = StatusCode::BAD_GATEWAY;

/// A valid config for a gateway: one simulated device.
const CONFIG: &str =
    "[[device]]\nname = \"sim\"\nprotocol = \"simulator\"\n[[device.point]]\nname = \"t\"\n";

/// What a step sends.
enum Body {
    /// Nothing (a page's POST gets the session's CSRF token).
    None,
    /// JSON (API writes).
    Json(Json),
    /// Text (a config's TOML).
    Text(&'static str),
    /// Form fields besides the CSRF token (pages).
    Form(Vec<(&'static str, String)>),
}

/// One request of the walk and what each of [`USERS`] gets.
struct Step {
    route: &'static str,
    method: Method,
    path: String,
    body: Body,
    expect: [StatusCode; 4],
}

fn step(route: &'static str, method: Method, path: String, expect: [StatusCode; 4]) -> Step {
    Step {
        route,
        method,
        path,
        body: Body::None,
        expect,
    }
}

fn write(
    route: &'static str,
    method: Method,
    path: String,
    body: Json,
    expect: [StatusCode; 4],
) -> Step {
    Step {
        route,
        method,
        path,
        body: Body::Json(body),
        expect,
    }
}

fn with(
    route: &'static str,
    method: Method,
    path: String,
    body: Body,
    expect: [StatusCode; 4],
) -> Step {
    Step {
        route,
        method,
        path,
        body,
        expect,
    }
}

/// The pages, walked with each user's session (the form routes get the session's CSRF
/// token); the sharing form is posted without `share`, so A keeps not sharing.
fn pages(c: &City) -> Vec<Step> {
    let (a, b, cc) = (&c.a, &c.b, &c.c);
    let a_point = format!("gateway={}&device=press-1&point=temperature", c.gw_a);
    let b_point = format!("gateway={}&device=press-1&point=temperature", c.gw_b);
    let all = |s| [s; 4];
    vec![
        step(ui::HOME, Method::GET, "/".into(), all(SEE_OTHER)),
        step(
            ui::LOGIN,
            Method::GET,
            "/login?next=/".into(),
            all(SEE_OTHER),
        ),
        step(
            ui::LANG,
            Method::GET,
            "/lang/zh-CN?next=/".into(),
            all(SEE_OTHER),
        ),
        step(ui::STATIC, Method::GET, "/static/app.css".into(), all(OK)),
        step(
            ui::STATIC,
            Method::GET,
            "/static/cockpit.js".into(),
            all(OK),
        ),
        step(ui::FAVICON, Method::GET, "/favicon.ico".into(), all(OK)),
        step(
            ui::BUREAU,
            Method::GET,
            "/bureau".into(),
            [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::BUREAU_COCKPIT,
            Method::GET,
            "/bureau/cockpit".into(),
            [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::BUREAU_CSV,
            Method::GET,
            "/bureau/csv/silent".into(),
            [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::BUREAU_INDUSTRY,
            Method::GET,
            "/bureau/industries/auto-parts".into(),
            [OK, OK, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::BUREAU_DISTRICT,
            Method::GET,
            "/bureau/districts/%E6%B4%AA%E5%B1%B1%E5%8C%BA".into(),
            [OK, OK, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::BUREAU_DISTRICT,
            Method::GET,
            "/bureau/districts/%E4%B8%9C%E8%A5%BF%E6%B9%96%E5%8C%BA".into(),
            [OK, MISSING, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::ENTERPRISE,
            Method::GET,
            format!("/enterprises/{a}"),
            [OK, MISSING, OK, OK],
        ),
        step(
            ui::ENTERPRISE,
            Method::GET,
            format!("/enterprises/{b}"),
            [OK, OK, MISSING, MISSING],
        ),
        step(
            ui::ENTERPRISE,
            Method::GET,
            format!("/enterprises/{cc}"),
            [OK, OK, OK, MISSING],
        ),
        step(
            ui::ENTERPRISE_CHART,
            Method::GET,
            format!("/enterprises/{a}/chart?{a_point}"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        step(
            ui::ENTERPRISE_CHART,
            Method::GET,
            format!("/enterprises/{b}/chart?{b_point}"),
            [OK, OK, MISSING, MISSING],
        ),
        step(
            ui::ENTERPRISE_SERIES,
            Method::GET,
            format!("/enterprises/{a}/series?{a_point}"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        step(
            ui::ENTERPRISE_SERIES,
            Method::GET,
            format!("/enterprises/{b}/series?{b_point}"),
            [OK, OK, MISSING, MISSING],
        ),
        step(ui::FLEET, Method::GET, "/fleet".into(), all(OK)),
        step(
            ui::FLEET,
            Method::GET,
            "/fleet?problems=true&sort=backlog&order=desc".into(),
            all(OK),
        ),
        step(
            ui::INTEGRATORS,
            Method::GET,
            "/bureau/integrators".into(),
            [OK, OK, FORBIDDEN, FORBIDDEN],
        ),
        step(
            ui::ENTERPRISE_SHARING,
            Method::POST,
            format!("/enterprises/{a}/sharing"),
            [FORBIDDEN, MISSING, FORBIDDEN, SEE_OTHER],
        ),
        step(
            ui::ENTERPRISE_EVIDENCE,
            Method::GET,
            format!("/enterprises/{a}/evidence"),
            [OK, MISSING, OK, OK],
        ),
        step(
            ui::ENTERPRISE_EVIDENCE,
            Method::GET,
            format!("/enterprises/{b}/evidence"),
            [OK, OK, MISSING, MISSING],
        ),
        step(
            ui::GATEWAY_CONFIG,
            Method::GET,
            format!("/gateways/{}/config", c.gw_a),
            [OK, MISSING, OK, OK],
        ),
        step(
            ui::GATEWAY_CONFIG,
            Method::GET,
            format!("/gateways/{}/config", c.gw_b),
            [OK, OK, MISSING, MISSING],
        ),
        with(
            ui::GATEWAY_CONFIG,
            Method::POST,
            format!("/gateways/{}/config", c.gw_a),
            Body::Form(vec![("toml", CONFIG.to_owned())]),
            [SEE_OTHER, MISSING, SEE_OTHER, FORBIDDEN],
        ),
        with(
            ui::GATEWAY_CONFIG,
            Method::POST,
            format!("/gateways/{}/config", c.gw_b),
            Body::Form(vec![("toml", CONFIG.to_owned())]),
            [SEE_OTHER, FORBIDDEN, MISSING, MISSING],
        ),
        with(
            ui::GATEWAY_CONFIG_ROLLBACK,
            Method::POST,
            format!("/gateways/{}/config/rollback", c.gw_a),
            Body::Form(vec![("version", "1".to_owned())]),
            [SEE_OTHER, MISSING, SEE_OTHER, FORBIDDEN],
        ),
        step(ui::TEMPLATES, Method::GET, "/templates".into(), all(OK)),
        // The plan's classes and assessments: the bureau's forms; a district sees its own
        // enterprises' (403), no other's (404).
        with(
            ui::ENTERPRISE_CLASSES,
            Method::POST,
            format!("/enterprises/{a}/classes"),
            Body::Form(vec![
                ("size", "above".to_owned()),
                ("specialised", String::new()),
            ]),
            [SEE_OTHER, MISSING, FORBIDDEN, FORBIDDEN],
        ),
        with(
            ui::ENTERPRISE_CLASSES,
            Method::POST,
            format!("/enterprises/{b}/classes"),
            Body::Form(vec![("size", "huge".to_owned())]),
            [BAD, FORBIDDEN, MISSING, MISSING],
        ),
        with(
            ui::ENTERPRISE_MATURITY,
            Method::POST,
            format!("/enterprises/{b}/maturity"),
            assessment_form("2"),
            [SEE_OTHER, FORBIDDEN, MISSING, MISSING],
        ),
        with(
            ui::ENTERPRISE_MATURITY,
            Method::POST,
            format!("/enterprises/{a}/maturity"),
            assessment_form("7"),
            [BAD, MISSING, FORBIDDEN, FORBIDDEN],
        ),
        // Alarms: managed by A and its integrator; the bureau sees A (403), the district
        // does not (404). Channel 1 and rule 1 are the integrator's, made here first.
        step(
            ui::ENTERPRISE_ALARMS,
            Method::GET,
            format!("/enterprises/{a}/alarms?state=all"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        step(
            ui::ENTERPRISE_ALARMS,
            Method::GET,
            format!("/enterprises/{b}/alarms"),
            [FORBIDDEN, FORBIDDEN, MISSING, MISSING],
        ),
        step(
            ui::ENTERPRISE_ALARM_CHANNELS,
            Method::GET,
            format!("/enterprises/{a}/alarm-channels"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        with(
            ui::ENTERPRISE_ALARM_CHANNELS,
            Method::POST,
            format!("/enterprises/{a}/alarm-channels"),
            channel_form("https://203.0.113.10/hook"),
            [FORBIDDEN, MISSING, SEE_OTHER, SEE_OTHER],
        ),
        with(
            ui::ENTERPRISE_ALARM_CHANNELS,
            Method::POST,
            format!("/enterprises/{a}/alarm-channels"),
            channel_form("http://127.0.0.1:9/hook"),
            [FORBIDDEN, MISSING, BAD, BAD],
        ),
        with(
            ui::ENTERPRISE_ALARM_CHANNELS,
            Method::POST,
            format!("/enterprises/{b}/alarm-channels"),
            channel_form("https://203.0.113.10/hook"),
            [FORBIDDEN, FORBIDDEN, MISSING, MISSING],
        ),
        step(
            ui::ALARM_CHANNEL_TEST,
            Method::POST,
            "/alarm-channels/1/test".into(),
            [MISSING, MISSING, BAD_GATEWAY, BAD_GATEWAY],
        ),
        step(
            ui::ENTERPRISE_ALARM_RULES,
            Method::GET,
            format!("/enterprises/{a}/alarm-rules"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        with(
            ui::ENTERPRISE_ALARM_RULES,
            Method::POST,
            format!("/enterprises/{a}/alarm-rules"),
            rule_form(&c.gw_a, "temperature"),
            [FORBIDDEN, MISSING, SEE_OTHER, SEE_OTHER],
        ),
        with(
            ui::ENTERPRISE_ALARM_RULES,
            Method::POST,
            format!("/enterprises/{a}/alarm-rules"),
            rule_form(&c.gw_a, "no-such-point"),
            [FORBIDDEN, MISSING, BAD, BAD],
        ),
        with(
            ui::ENTERPRISE_ALARM_RULES,
            Method::POST,
            format!("/enterprises/{b}/alarm-rules"),
            rule_form(&c.gw_b, "temperature"),
            [FORBIDDEN, FORBIDDEN, MISSING, MISSING],
        ),
        step(
            ui::ALARM_RULE,
            Method::GET,
            "/alarm-rules/1".into(),
            [MISSING, MISSING, OK, OK],
        ),
        with(
            ui::ALARM_RULE,
            Method::POST,
            "/alarm-rules/1".into(),
            rule_form(&c.gw_a, "temperature"),
            [MISSING, MISSING, SEE_OTHER, SEE_OTHER],
        ),
        with(
            ui::ALARM_RULE_ENABLED,
            Method::POST,
            "/alarm-rules/1/enabled".into(),
            Body::Form(vec![("enabled", "true".to_owned())]),
            [MISSING, MISSING, SEE_OTHER, SEE_OTHER],
        ),
        step(
            ui::ALARM_ACK,
            Method::POST,
            "/alarms/1/ack".into(),
            all(MISSING),
        ),
        step(ui::LOGOUT, Method::POST, "/logout".into(), all(SEE_OTHER)),
    ]
}

/// The assessment form's fields: `level`, assessed on 2025-03-01.
fn assessment_form(level: &str) -> Body {
    Body::Form(vec![
        ("level", level.to_owned()),
        ("assessed_at", "2025-03-01".to_owned()),
        ("assessor", "评估院".to_owned()),
    ])
}

/// The channel form's fields: a webhook to `url`.
fn channel_form(url: &str) -> Body {
    Body::Form(vec![
        ("name", "值班群".to_owned()),
        ("kind", "webhook".to_owned()),
        ("url", url.to_owned()),
    ])
}

/// The rule form's fields: above 80 on `point` of device press-1 of `gateway`.
fn rule_form(gateway: &str, point: &str) -> Body {
    Body::Form(vec![
        ("name", "高温".to_owned()),
        ("target", json!([gateway, "press-1", point]).to_string()),
        ("kind", "high".to_owned()),
        ("threshold", "80".to_owned()),
        ("hysteresis", "2".to_owned()),
        ("for_seconds", "0".to_owned()),
        ("severity", "warning".to_owned()),
    ])
}

/// The API, walked with each user's bearer token; each user's reads again with its
/// session. Writes that would change the city are sent with bodies they must refuse.
fn api_steps(c: &City) -> Vec<Step> {
    let (a, b, cc, gw_a, gw_b) = (&c.a, &c.b, &c.c, &c.gw_a, &c.gw_b);
    let rule_a = json!({"name": "高温", "gateway": gw_a, "device": "press-1",
                        "point": "temperature", "kind": "high", "threshold": 80,
                        "hysteresis": 2, "severity": "warning", "channels": []});
    let all = |s| [s; 4];
    let bureau_city = [OK, OK, FORBIDDEN, FORBIDDEN];
    vec![
        step("/healthz", Method::GET, "/healthz".into(), all(OK)),
        step(
            "/api/v1/enterprises",
            Method::GET,
            "/api/v1/enterprises".into(),
            all(OK),
        ),
        write(
            "/api/v1/enterprises",
            Method::POST,
            "/api/v1/enterprises".into(),
            json!({}),
            [BAD, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        write(
            "/api/v1/enterprises/import",
            Method::POST,
            "/api/v1/enterprises/import".into(),
            json!("x"),
            [BAD, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            "/api/v1/enterprises/{credit_code}",
            Method::GET,
            format!("/api/v1/enterprises/{a}"),
            [OK, MISSING, OK, OK],
        ),
        step(
            "/api/v1/enterprises/{credit_code}",
            Method::GET,
            format!("/api/v1/enterprises/{b}"),
            [OK, OK, MISSING, MISSING],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/tokens",
            Method::POST,
            format!("/api/v1/enterprises/{a}/tokens"),
            json!({}),
            [CREATED, MISSING, CREATED, FORBIDDEN],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/tokens",
            Method::POST,
            format!("/api/v1/enterprises/{b}/tokens"),
            json!({}),
            [CREATED, FORBIDDEN, MISSING, MISSING],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/integrator",
            Method::PUT,
            format!("/api/v1/enterprises/{cc}/integrator"),
            json!({"integrator": c.i1}),
            [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            "/api/v1/enterprises/{credit_code}/evidence",
            Method::GET,
            format!("/api/v1/enterprises/{a}/evidence"),
            [OK, MISSING, OK, OK],
        ),
        step(
            "/api/v1/enterprises/{credit_code}/evidence",
            Method::GET,
            format!("/api/v1/enterprises/{b}/evidence"),
            [OK, OK, MISSING, MISSING],
        ),
        step(
            "/api/v1/enterprises/{credit_code}/assignments",
            Method::GET,
            format!("/api/v1/enterprises/{a}/assignments"),
            [OK, MISSING, OK, OK],
        ),
        write(
            "/api/v1/enterprises/{credit_code}",
            Method::PUT,
            format!("/api/v1/enterprises/{a}"),
            json!({"size": "above", "specialised": "provincial"}),
            [OK, MISSING, FORBIDDEN, FORBIDDEN],
        ),
        write(
            "/api/v1/enterprises/{credit_code}",
            Method::PUT,
            format!("/api/v1/enterprises/{b}"),
            json!({"size": "above"}),
            [OK, FORBIDDEN, MISSING, MISSING],
        ),
        write(
            "/api/v1/enterprises/{credit_code}",
            Method::PUT,
            format!("/api/v1/enterprises/{a}"),
            json!({"share_data_with_bureau": false}),
            [FORBIDDEN, MISSING, FORBIDDEN, OK],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/maturity",
            Method::PUT,
            format!("/api/v1/enterprises/{a}/maturity"),
            json!({"level": 3, "assessed_at": "2025-03-01", "assessor": "评估院"}),
            [OK, MISSING, FORBIDDEN, FORBIDDEN],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/maturity",
            Method::PUT,
            format!("/api/v1/enterprises/{b}/maturity"),
            json!({"level": 0, "assessed_at": "2025-03-01", "assessor": "评估院"}),
            [BAD, FORBIDDEN, MISSING, MISSING],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/sharing",
            Method::PUT,
            format!("/api/v1/enterprises/{a}/sharing"),
            json!({"share_data_with_bureau": false}),
            [FORBIDDEN, MISSING, FORBIDDEN, OK],
        ),
        write(
            "/api/v1/integrators",
            Method::POST,
            "/api/v1/integrators".into(),
            json!({}),
            [BAD, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            "/api/v1/integrators",
            Method::GET,
            "/api/v1/integrators".into(),
            bureau_city,
        ),
        write(
            "/api/v1/users",
            Method::POST,
            "/api/v1/users".into(),
            json!({}),
            [BAD, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        write(
            "/api/v1/users/{username}/tokens",
            Method::POST,
            "/api/v1/users/bureau/tokens".into(),
            json!({}),
            [CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        write(
            "/api/v1/enroll",
            Method::POST,
            "/api/v1/enroll".into(),
            json!({}),
            all(BAD),
        ),
        step(
            "/api/v1/gateways",
            Method::GET,
            "/api/v1/gateways".into(),
            all(OK),
        ),
        step(
            "/api/v1/gateways",
            Method::GET,
            "/api/v1/gateways?format=csv".into(),
            all(OK),
        ),
        step(
            "/api/v1/gateways/{gateway_id}",
            Method::GET,
            format!("/api/v1/gateways/{gw_a}"),
            [OK, MISSING, OK, OK],
        ),
        step(
            "/api/v1/gateways/{gateway_id}",
            Method::GET,
            format!("/api/v1/gateways/{gw_b}"),
            [OK, OK, MISSING, MISSING],
        ),
        step(
            "/api/v1/gateways/{gateway_id}/latest",
            Method::GET,
            format!("/api/v1/gateways/{gw_a}/latest"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        step(
            "/api/v1/gateways/{gateway_id}/latest",
            Method::GET,
            format!("/api/v1/gateways/{gw_b}/latest"),
            [OK, OK, MISSING, MISSING],
        ),
        step(
            "/api/v1/gateways/{gateway_id}/config",
            Method::GET,
            format!("/api/v1/gateways/{gw_a}/config"),
            [OK, MISSING, OK, OK],
        ),
        step(
            "/api/v1/gateways/{gateway_id}/config",
            Method::GET,
            format!("/api/v1/gateways/{gw_b}/config"),
            [OK, OK, MISSING, MISSING],
        ),
        with(
            "/api/v1/gateways/{gateway_id}/config",
            Method::PUT,
            format!("/api/v1/gateways/{gw_a}/config"),
            Body::Text(CONFIG),
            [OK, MISSING, OK, FORBIDDEN],
        ),
        with(
            "/api/v1/gateways/{gateway_id}/config",
            Method::PUT,
            format!("/api/v1/gateways/{gw_b}/config"),
            Body::Text(CONFIG),
            [OK, FORBIDDEN, MISSING, MISSING],
        ),
        step(
            "/api/v1/gateways/{gateway_id}/config/versions",
            Method::GET,
            format!("/api/v1/gateways/{gw_a}/config/versions"),
            [OK, MISSING, OK, OK],
        ),
        step(
            "/api/v1/gateways/{gateway_id}/config/versions",
            Method::GET,
            format!("/api/v1/gateways/{gw_b}/config/versions"),
            [OK, OK, MISSING, MISSING],
        ),
        write(
            "/api/v1/gateways/{gateway_id}/config/rollback",
            Method::POST,
            format!("/api/v1/gateways/{gw_a}/config/rollback"),
            json!({"version": 1}),
            [CREATED, MISSING, CREATED, FORBIDDEN],
        ),
        write(
            "/api/v1/gateways/{gateway_id}/config/rollback",
            Method::POST,
            format!("/api/v1/gateways/{gw_b}/config/rollback"),
            json!({"version": 1}),
            [CREATED, FORBIDDEN, MISSING, MISSING],
        ),
        step(
            "/api/v1/templates",
            Method::GET,
            "/api/v1/templates".into(),
            all(OK),
        ),
        step(
            "/api/v1/templates/{name}",
            Method::GET,
            "/api/v1/templates/eastron-sdm630".into(),
            all(OK),
        ),
        step(
            "/api/v1/templates/{name}",
            Method::GET,
            "/api/v1/templates/no-such-template".into(),
            all(MISSING),
        ),
        write(
            "/api/v1/enterprises/{credit_code}/channels",
            Method::POST,
            format!("/api/v1/enterprises/{a}/channels"),
            json!({"name": "值班群", "kind": "webhook", "url": "https://203.0.113.10/hook"}),
            [FORBIDDEN, MISSING, CREATED, CREATED],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/channels",
            Method::POST,
            format!("/api/v1/enterprises/{b}/channels"),
            json!({"name": "值班群", "kind": "webhook", "url": "https://203.0.113.10/hook"}),
            [FORBIDDEN, FORBIDDEN, MISSING, MISSING],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/channels",
            Method::POST,
            format!("/api/v1/enterprises/{a}/channels"),
            json!({"name": "内网", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
            [FORBIDDEN, MISSING, BAD, BAD],
        ),
        step(
            "/api/v1/enterprises/{credit_code}/channels",
            Method::GET,
            format!("/api/v1/enterprises/{a}/channels"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        step(
            "/api/v1/channels/{id}/test",
            Method::POST,
            "/api/v1/channels/1/test".into(),
            [MISSING, MISSING, BAD_GATEWAY, BAD_GATEWAY],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/alarm-rules",
            Method::POST,
            format!("/api/v1/enterprises/{a}/alarm-rules"),
            rule_a.clone(),
            [FORBIDDEN, MISSING, CREATED, CREATED],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/alarm-rules",
            Method::POST,
            format!("/api/v1/enterprises/{a}/alarm-rules"),
            json!({"name": "x", "gateway": gw_a, "device": "press-1", "point": "no-such-point",
                   "kind": "high", "threshold": 1, "severity": "info"}),
            [FORBIDDEN, MISSING, BAD, BAD],
        ),
        write(
            "/api/v1/enterprises/{credit_code}/alarm-rules",
            Method::POST,
            format!("/api/v1/enterprises/{b}/alarm-rules"),
            rule_a.clone(),
            [FORBIDDEN, FORBIDDEN, MISSING, MISSING],
        ),
        step(
            "/api/v1/enterprises/{credit_code}/alarm-rules",
            Method::GET,
            format!("/api/v1/enterprises/{a}/alarm-rules"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        write(
            "/api/v1/alarm-rules/{id}",
            Method::PUT,
            "/api/v1/alarm-rules/1".into(),
            rule_a,
            [MISSING, MISSING, OK, OK],
        ),
        step(
            "/api/v1/enterprises/{credit_code}/alarms",
            Method::GET,
            format!("/api/v1/enterprises/{a}/alarms?state=all"),
            [FORBIDDEN, MISSING, OK, OK],
        ),
        step(
            "/api/v1/alarms/{id}/ack",
            Method::POST,
            "/api/v1/alarms/1/ack".into(),
            all(MISSING),
        ),
        step(
            "/api/v1/stats/alarms",
            Method::GET,
            "/api/v1/stats/alarms".into(),
            [OK, OK, FORBIDDEN, FORBIDDEN],
        ),
        step(
            "/api/v1/stats/onboarding",
            Method::GET,
            "/api/v1/stats/onboarding".into(),
            bureau_city,
        ),
        step(
            "/api/v1/stats/onboarding/daily",
            Method::GET,
            "/api/v1/stats/onboarding/daily".into(),
            [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            "/api/v1/stats/onboarding/silent",
            Method::GET,
            "/api/v1/stats/onboarding/silent".into(),
            bureau_city,
        ),
        step(
            "/api/v1/stats/ingest",
            Method::GET,
            "/api/v1/stats/ingest".into(),
            [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        ),
        step(
            "/api/v1/stats/integrators",
            Method::GET,
            "/api/v1/stats/integrators?format=csv".into(),
            bureau_city,
        ),
        step(
            "/api/v1/stats/program",
            Method::GET,
            "/api/v1/stats/program".into(),
            bureau_city,
        ),
        step(
            "/api/v1/stats/program",
            Method::GET,
            "/api/v1/stats/program?format=csv".into(),
            bureau_city,
        ),
        step(
            "/api/v1/enterprises",
            Method::GET,
            "/api/v1/enterprises?size=above&maturity=3".into(),
            all(OK),
        ),
        step(
            "/api/v1/stats/monitoring",
            Method::GET,
            "/api/v1/stats/monitoring?by=district&days=30".into(),
            bureau_city,
        ),
    ]
}

/// What user `i` may not be shown: the enterprises and gateways outside its scope.
fn secrets(c: &City, user: &str) -> Vec<String> {
    match user {
        "dist-hs" => vec![c.a.clone(), c.gw_a.clone()],
        "int-1" => vec![c.b.clone(), c.gw_b.clone()],
        "ent-a" => vec![c.b.clone(), c.gw_b.clone(), c.c.clone()],
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn every_route_as_each_role_answers_within_its_scope() {
    bounded(LIMIT, async {
        let c = city().await;
        let p = &c.p;
        let (pages, api) = (pages(&c), api_steps(&c));
        let walked: HashSet<&str> = pages.iter().chain(&api).map(|s| s.route).collect();
        let every: HashSet<&str> = ui::ROUTES
            .iter()
            .chain(api::ROUTES.iter())
            .copied()
            .collect();
        assert_eq!(walked, every, "the walk must cover every route");

        for (i, user) in USERS.iter().enumerate() {
            let hidden = secrets(&c, user);
            let shown_ok = |what: &str, path: &str, body: &str| {
                for secret in &hidden {
                    assert!(
                        path.contains(secret.as_str()) || !body.contains(secret.as_str()),
                        "{user}: {what} {path} shows {secret}"
                    );
                }
            };
            // The pages, with the user's session.
            let mut browser = Browser::logged_in(p, user).await;
            let csrf = browser.get("/fleet").await.hidden("csrf");
            for s in &pages {
                let mut fields = vec![("csrf", csrf.as_str())];
                if let Body::Form(more) = &s.body {
                    fields.extend(more.iter().map(|(k, v)| (*k, v.as_str())));
                }
                let form = (s.method == Method::POST).then_some(&fields[..]);
                let page = browser.send(s.method.clone(), &s.path, form).await;
                assert_eq!(
                    page.status, s.expect[i],
                    "{user}: {} {}: {}",
                    s.method, s.path, page.body
                );
                shown_ok(s.method.as_str(), &s.path, &page.body);
            }
            // The API with the user's token; its reads again with a session.
            let token = user_token(p, user).await;
            let mut browser = Browser::logged_in(p, user).await;
            for s in &api {
                let mut request = p
                    .http
                    .request(s.method.clone(), format!("{}{}", p.base, s.path))
                    .bearer_auth(&token);
                request = match &s.body {
                    Body::Json(body) => request.json(body),
                    Body::Text(text) => request
                        .header(reqwest::header::CONTENT_TYPE, "application/toml")
                        .body(*text),
                    Body::None | Body::Form(_) => request,
                };
                let answer = request.send().await.unwrap();
                let status = answer.status();
                let body = answer.text().await.unwrap();
                assert_eq!(
                    status, s.expect[i],
                    "{user} (token): {} {}: {body}",
                    s.method, s.path
                );
                shown_ok("token", &s.path, &body);
                if s.method == Method::GET {
                    let page = browser.get(&s.path).await;
                    assert_eq!(
                        page.status, s.expect[i],
                        "{user} (session): GET {}: {}",
                        s.path, page.body
                    );
                    shown_ok("session", &s.path, &page.body);
                }
            }
            // A session may not write through the API: its forms carry CSRF tokens, the
            // API's JSON does not.
            let session_write = browser
                .send(
                    Method::POST,
                    &format!("/api/v1/enterprises/{}/tokens", c.a),
                    None,
                )
                .await;
            assert_eq!(session_write.status, StatusCode::UNAUTHORIZED, "{user}");
        }
    })
    .await;
}

#[tokio::test]
async fn each_role_lists_exactly_its_scope_and_values_follow_the_enterprises_choice() {
    bounded(LIMIT, async {
        let c = city().await;
        let p = &c.p;
        let listed = |body: &Json, field: &str| -> HashSet<String> {
            body.as_array()
                .unwrap()
                .iter()
                .map(|e| e[field].as_str().unwrap().to_owned())
                .collect()
        };
        let set = |items: &[&String]| items.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        for (user, enterprises) in [
            ("bureau", set(&[&c.a, &c.b, &c.c])),
            ("dist-hs", set(&[&c.b, &c.c])),
            ("int-1", set(&[&c.a, &c.c])),
            ("ent-a", set(&[&c.a])),
        ] {
            let token = user_token(p, user).await;
            let get = |path: String| {
                let request = p.http.get(format!("{}{path}", p.base)).bearer_auth(&token);
                async move { request.send().await.unwrap().json::<Json>().await.unwrap() }
            };
            let list = get("/api/v1/enterprises".into()).await;
            assert_eq!(listed(&list, "credit_code"), enterprises, "{user}");
            let fleet = get("/api/v1/gateways?per_page=500".into()).await;
            let fleet_enterprises: HashSet<String> = fleet["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["credit_code"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(fleet_enterprises, enterprises, "{user}: {fleet}");
            assert_eq!(
                fleet["total"].as_u64(),
                Some(enterprises.len() as u64),
                "{user}"
            );
        }

        // The district's counts are its district's: B and C registered, B on the cloud.
        let district = user_token(p, "dist-hs").await;
        let counts: Json = p
            .http
            .get(format!("{}/api/v1/stats/onboarding", p.base))
            .bearer_auth(&district)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(counts["total"]["registered"], 2, "{counts}");
        assert_eq!(counts["total"]["on_cloud"], 1, "{counts}");
        // Its home page says the same.
        let mut district_user = Browser::logged_in(p, "dist-hs").await;
        let home = district_user.get("/").await;
        let page = district_user.get(home.location()).await;
        assert!(
            page.body
                .contains("已登记 2 · 已接入网关 2 · 已上云 1 · 近 7 天活跃 1"),
            "{}",
            page.body
        );
        // Its ranking lists the integrators serving it, counted there: I1 (C), I2 (B).
        let ranking: Json = p
            .http
            .get(format!("{}/api/v1/stats/integrators", p.base))
            .bearer_auth(&district)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let assigned: Vec<(String, u64)> = ranking
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["integrator"].as_str().unwrap().to_owned(),
                    l["assigned"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            assigned,
            [(c.i2.clone(), 1), (c.i1.clone(), 1)],
            "{ranking}"
        );

        // A's values: not for the bureau until A shares them, then for the bureau too.
        let mut bureau = Browser::logged_in(p, "bureau").await;
        let page = bureau.get(&format!("/enterprises/{}", c.a)).await;
        assert!(page.body.contains("id=\"values-hidden\""), "{}", page.body);
        assert!(!page.body.contains("class=\"points\""));
        let mut owner = Browser::logged_in(p, "ent-a").await;
        let own = owner.get(&format!("/enterprises/{}", c.a)).await;
        assert!(own.body.contains("class=\"points\""));
        let csrf = own.hidden("csrf");
        let shared = owner
            .post(
                &format!("/enterprises/{}/sharing", c.a),
                &[("csrf", csrf.as_str()), ("share", "on")],
            )
            .await;
        assert_eq!(shared.status, StatusCode::SEE_OTHER);
        let page = bureau.get(&format!("/enterprises/{}", c.a)).await;
        assert!(page.body.contains("class=\"points\""), "{}", page.body);
        let latest = bureau
            .get(&format!("/api/v1/gateways/{}/latest", c.gw_a))
            .await;
        assert_eq!(latest.status, StatusCode::OK);
        // The integrator's token issues an enrollment token for its own enterprise only.
        let integrator = user_token(p, "int-1").await;
        for (enterprise, expect) in [(&c.c, StatusCode::CREATED), (&c.b, StatusCode::NOT_FOUND)] {
            let answer = p
                .http
                .post(format!("{}/api/v1/enterprises/{enterprise}/tokens", p.base))
                .bearer_auth(&integrator)
                .json(&json!({"max_gateways": 1}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), expect, "{enterprise}");
        }
        // A's acceptance evidence, from stored data: 6,000 samples in 6 batches on one day,
        // all numbered batches stored, one gateway with one device and one point.
        let evidence = p
            .get(&format!("/api/v1/enterprises/{}/evidence", c.a))
            .await;
        assert_eq!(
            evidence["enterprise"]["credit_code"],
            c.a.as_str(),
            "{evidence}"
        );
        assert_eq!(
            evidence["integrator"]["credit_code"],
            c.i1.as_str(),
            "{evidence}"
        );
        assert_eq!(evidence["samples_30d"], 6000, "{evidence}");
        assert_eq!(evidence["completeness_30d"], 1.0, "{evidence}");
        assert_eq!(evidence["days_with_data_30d"], 1, "{evidence}");
        assert_eq!(evidence["gateways"][0]["devices"], 1, "{evidence}");
        assert_eq!(evidence["gateways"][0]["points"], 1, "{evidence}");
        for field in [
            "registered_at",
            "assigned_at",
            "first_enrolled_at",
            "on_cloud_since",
        ] {
            assert!(evidence[field].is_string(), "{field}: {evidence}");
        }
        let html = format!("/api/v1/enterprises/{}/evidence?format=html", c.a);
        let redirect = bureau.get(&html).await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER);
        assert_eq!(
            redirect.location(),
            format!("/enterprises/{}/evidence", c.a)
        );
        let page = bureau.get(redirect.location()).await;
        assert!(page.body.contains("企业上云验收材料"), "{}", page.body);
        assert!(page.body.contains("6,000"), "{}", page.body);

        // Every assignment is kept with its time: C moved from I1 to I2 and back.
        for integrator in [&c.i2, &c.i1] {
            let moved = p
                .bureau(
                    Method::PUT,
                    &format!("/api/v1/enterprises/{}/integrator", c.c),
                )
                .json(&json!({ "integrator": integrator }))
                .send()
                .await
                .unwrap();
            assert_eq!(moved.status(), StatusCode::OK);
        }
        let history = p
            .get(&format!("/api/v1/enterprises/{}/assignments", c.c))
            .await;
        let integrators: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["integrator"].as_str().unwrap())
            .collect();
        assert_eq!(
            integrators,
            [c.i1.as_str(), c.i2.as_str(), c.i1.as_str()],
            "{history}"
        );
    })
    .await;
}
