//! The HTTP API (version 1), JSON over HTTP; errors are `{"error", "detail"}` with a
//! fitting status. Callers carry `Authorization: Bearer <token>`: the bureau's admin token,
//! or a user's API token acting with that user's role and scope; a web UI session (cookie)
//! may make the GET calls too, so the pages' CSV links and charts use this API. Enrollment
//! carries its token in the body. Scopes are [`crate::scope`]'s: outside them a caller gets
//! 404 for what it may not see and 403 for what it may not do. Routes:
//!
//! | method and path | who | answer |
//! |---|---|---|
//! | `GET /healthz` | anyone | `ok` |
//! | `POST /api/v1/enterprises` | bureau | 201 the enterprise; 400; 409 if it exists |
//! | `GET /api/v1/enterprises` | all, scoped | the enterprises in scope, with on-cloud state and gateways; `?size=&specialised=&maturity=` ([`crate::filter`]) |
//! | `POST /api/v1/enterprises/import` | bureau | `text/csv` → 201 `{"imported"}`; 400/409 with `errors: [{line, error}]` |
//! | `GET /api/v1/enterprises/{credit_code}` | all, scoped | one enterprise, with its maturity history |
//! | `PUT /api/v1/enterprises/{credit_code}` | bureau (`size`, `specialised`), the enterprise itself (`share_data_with_bureau`) | → 200 the enterprise |
//! | `PUT /api/v1/enterprises/{credit_code}/maturity` | bureau | `{"level", "assessed_at", "assessor"}` → 200 the enterprise; kept in its history |
//! | `POST /api/v1/enterprises/{credit_code}/tokens` | bureau, its integrator | 201 `{"token", "expires_at", "max_gateways"}` |
//! | `PUT /api/v1/enterprises/{credit_code}/integrator` | bureau | `{"integrator"}` → 200 the enterprise; the assignment kept with its time |
//! | `GET /api/v1/enterprises/{credit_code}/assignments` | bureau, district, its integrator, itself | every assignment, oldest first |
//! | `GET /api/v1/enterprises/{credit_code}/evidence` | bureau, district, its integrator, itself | the acceptance evidence; `?format=html` redirects to the printable page |
//! | `PUT /api/v1/enterprises/{credit_code}/sharing` | the enterprise itself | `{"share_data_with_bureau"}` → 200 the enterprise |
//! | `POST /api/v1/integrators` | bureau | `{"credit_code", "name", "contact"?}` → 201; 400; 409 |
//! | `GET /api/v1/integrators` | bureau, district | the integrators |
//! | `POST /api/v1/users` | bureau | `{"username", "password", "role", "scope"?}` → 201 |
//! | `POST /api/v1/users/{username}/tokens` | bureau, that user | `{"expires_in_days"?}` → 201 `{"token", "expires_at"}` |
//! | `POST /api/v1/enroll` | integrator | 201 `{"gateway_id", "enterprise", "mqtt"}`; 401; 409; 429 after repeated failures from the address |
//! | `GET /api/v1/gateways` | all, scoped | the fleet: `?page=&per_page=&sort=&order=&problems=true&q=`, or every selected row with `format=csv` |
//! | `GET /api/v1/gateways/{gateway_id}` | all, scoped | status, counters, gaps, crash windows, catalogue |
//! | `GET /api/v1/gateways/{gateway_id}/latest` | who may see its values | latest sample of each point |
//! | `GET /api/v1/gateways/{gateway_id}/config` | all, scoped | `{"version", "toml", "saved", "applied_version", "error"?}` |
//! | `PUT /api/v1/gateways/{gateway_id}/config` | bureau, its integrator | TOML (`[publish]`, `[[device]]`) → 200 `{"version"}`; 400 with `errors: [{line, column, message}]`, found by the agent's own validation |
//! | `GET /api/v1/gateways/{gateway_id}/config/versions` | all, scoped | every version saved, newest first (100) |
//! | `POST /api/v1/gateways/{gateway_id}/config/rollback` | bureau, its integrator | `{"version"}` → 201 `{"version"}`: that version's text saved as the next |
//! | `GET /api/v1/templates` | all | the device templates, with their sources |
//! | `GET /api/v1/templates/{name}` | all | one template, with its file |
//! | `POST /api/v1/enterprises/{credit_code}/channels` | the enterprise, its integrator | `{"name", "kind": webhook\|wecom\|dingtalk\|feishu, "url", "secret"?}` → 201 `{"id"}`; 400 for a bad kind or URL (private addresses unless allowed) |
//! | `GET /api/v1/enterprises/{credit_code}/channels` | the enterprise, its integrator | the channels (secrets not shown) |
//! | `POST /api/v1/channels/{id}/test` | the enterprise, its integrator | sends a test message → 200 `{"delivered": true}`; 502 with the receiver's answer |
//! | `POST /api/v1/enterprises/{credit_code}/alarm-rules` | the enterprise, its integrator | a rule (DESIGN.md) → 201 `{"id"}`; 400 with the reason for an unknown gateway, device or point |
//! | `GET /api/v1/enterprises/{credit_code}/alarm-rules` | the enterprise, its integrator | the rules |
//! | `PUT /api/v1/alarm-rules/{id}` | the enterprise, its integrator | the rule (with `"enabled"`) → 200 the rule; its evaluation starts over |
//! | `GET /api/v1/enterprises/{credit_code}/alarms?state=active\|all` | the enterprise, its integrator | the events, newest first |
//! | `POST /api/v1/alarms/{id}/ack` | the enterprise, its integrator | → 200 the event; 409 if it is not active |
//! | `GET /api/v1/stats/alarms` | bureau, district | open alarms per enterprise that shares its data; the others only counted (`withheld`) |
//! | `GET /api/v1/stats/onboarding` | bureau, district (its district) | the counts (`?format=csv` or `Accept: text/csv`) |
//! | `GET /api/v1/stats/onboarding/daily?days=N` | bureau | daily series (CSV likewise) |
//! | `GET /api/v1/stats/onboarding/silent` | bureau, district (its district) | enrolled enterprises with no batch yet |
//! | `GET /api/v1/stats/ingest` | bureau | the ingest's counters, the open gaps |
//! | `GET /api/v1/stats/integrators` | bureau, district (its district) | the integrators' ranking (CSV likewise) |
//! | `GET /api/v1/stats/program` | bureau, district (its district) | every target of the plan with its progress ([`crate::program`]; CSV likewise) |
//! | `GET /api/v1/stats/monitoring?by=industry\|district&days=N` | bureau, district (its district) | the industry monitoring per group and day, withheld below 3 enterprises unless all share (CSV likewise) |
//!
//! The request's state, errors, authentication and the shared views are in [`crate::http`];
//! the server merges these routes with the web UI's (`crate::server`).

mod alarms;
mod configs;
mod enroll;
mod enterprises;
mod format;
mod gateways;
mod integrators;
mod monitoring;
mod program;
mod stats;
mod templates;
mod users;

pub use crate::http::MAX_BODY_BYTES;
pub use crate::registry::IntegratorInput;
pub use alarms::{AlarmCount, AlarmCounts, ChannelInput, Created, counts as alarm_counts};
pub(crate) use alarms::{TestError, check_channel, send_test};
pub use configs::{RollbackInput, SavedConfig};
pub use enterprises::{AssignInput, EnterpriseUpdate, Imported, SharingInput};
pub use gateways::GatewayDetail;
pub use integrators::IntegratorView;
pub use stats::IngestStatsBody;
pub use templates::TemplateView;
pub use users::{CreatedToken, CreatedUser, TokenRequest, UserInput};

use crate::http::AppState;
use axum::Router;
use axum::routing::{get, post, put};
use std::sync::Arc;

/// Every route the API serves, for tests that must walk them all.
pub const ROUTES: [&str; 36] = [
    "/healthz",
    "/api/v1/enterprises",
    "/api/v1/enterprises/import",
    "/api/v1/enterprises/{credit_code}",
    "/api/v1/enterprises/{credit_code}/tokens",
    "/api/v1/enterprises/{credit_code}/integrator",
    "/api/v1/enterprises/{credit_code}/assignments",
    "/api/v1/enterprises/{credit_code}/sharing",
    "/api/v1/enterprises/{credit_code}/evidence",
    "/api/v1/integrators",
    "/api/v1/users",
    "/api/v1/users/{username}/tokens",
    "/api/v1/enroll",
    "/api/v1/gateways",
    "/api/v1/gateways/{gateway_id}",
    "/api/v1/gateways/{gateway_id}/latest",
    "/api/v1/gateways/{gateway_id}/config",
    "/api/v1/gateways/{gateway_id}/config/versions",
    "/api/v1/gateways/{gateway_id}/config/rollback",
    "/api/v1/templates",
    "/api/v1/templates/{name}",
    "/api/v1/enterprises/{credit_code}/channels",
    "/api/v1/channels/{id}/test",
    "/api/v1/enterprises/{credit_code}/alarm-rules",
    "/api/v1/alarm-rules/{id}",
    "/api/v1/enterprises/{credit_code}/alarms",
    "/api/v1/alarms/{id}/ack",
    "/api/v1/stats/alarms",
    "/api/v1/stats/onboarding",
    "/api/v1/stats/onboarding/daily",
    "/api/v1/stats/onboarding/silent",
    "/api/v1/stats/ingest",
    "/api/v1/stats/integrators",
    "/api/v1/enterprises/{credit_code}/maturity",
    "/api/v1/stats/program",
    "/api/v1/stats/monitoring",
];

/// The API's routes (the server adds the UI's, the body limit and the fallback).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/v1/enterprises",
            post(enterprises::create).get(enterprises::list),
        )
        .route("/api/v1/enterprises/import", post(enterprises::import))
        .route(
            "/api/v1/enterprises/{credit_code}",
            get(enterprises::get).put(enterprises::update),
        )
        .route(
            "/api/v1/enterprises/{credit_code}/tokens",
            post(enterprises::issue_token),
        )
        .route(
            "/api/v1/enterprises/{credit_code}/integrator",
            put(enterprises::assign),
        )
        .route(
            "/api/v1/enterprises/{credit_code}/assignments",
            get(enterprises::assignments),
        )
        .route(
            "/api/v1/enterprises/{credit_code}/sharing",
            put(enterprises::set_sharing),
        )
        .route(
            "/api/v1/enterprises/{credit_code}/evidence",
            get(enterprises::evidence),
        )
        .route(
            "/api/v1/integrators",
            post(integrators::create).get(integrators::list),
        )
        .route("/api/v1/users", post(users::create))
        .route("/api/v1/users/{username}/tokens", post(users::create_token))
        .route("/api/v1/enroll", post(enroll::enroll))
        .route("/api/v1/gateways", get(gateways::list))
        .route("/api/v1/gateways/{gateway_id}", get(gateways::get))
        .route(
            "/api/v1/gateways/{gateway_id}/latest",
            get(gateways::latest),
        )
        .route(
            "/api/v1/gateways/{gateway_id}/config",
            get(configs::get).put(configs::put),
        )
        .route(
            "/api/v1/gateways/{gateway_id}/config/versions",
            get(configs::versions),
        )
        .route(
            "/api/v1/gateways/{gateway_id}/config/rollback",
            post(configs::roll_back),
        )
        .route(
            "/api/v1/enterprises/{credit_code}/channels",
            post(alarms::create_channel).get(alarms::channels),
        )
        .route("/api/v1/channels/{id}/test", post(alarms::test_channel))
        .route(
            "/api/v1/enterprises/{credit_code}/alarm-rules",
            post(alarms::create_rule).get(alarms::rules),
        )
        .route("/api/v1/alarm-rules/{id}", put(alarms::update_rule))
        .route(
            "/api/v1/enterprises/{credit_code}/alarms",
            get(alarms::alarms),
        )
        .route("/api/v1/alarms/{id}/ack", post(alarms::acknowledge))
        .route("/api/v1/stats/alarms", get(alarms::stats))
        .route("/api/v1/templates", get(templates::list))
        .route("/api/v1/templates/{name}", get(templates::get))
        .route("/api/v1/stats/onboarding", get(stats::onboarding))
        .route(
            "/api/v1/stats/onboarding/daily",
            get(stats::onboarding_daily),
        )
        .route("/api/v1/stats/onboarding/silent", get(stats::silent))
        .route("/api/v1/stats/ingest", get(stats::ingest))
        .route("/api/v1/stats/integrators", get(integrators::ranking))
        .route(
            "/api/v1/enterprises/{credit_code}/maturity",
            put(enterprises::record_maturity),
        )
        .route("/api/v1/stats/program", get(program::program))
        .route("/api/v1/stats/monitoring", get(monitoring::monitoring))
}
