//! The platform's web UI: server-rendered pages (minijinja templates compiled into the
//! binary) for the city's industry bureau and for each enterprise, in Simplified Chinese
//! by default with an English switch ([`i18n`]).
//!
//! Parts: the users and sessions are [`crate::accounts`]'s; `web` (the request context:
//! session cookie, language, CSRF;
//! rendering and errors); `pages` (the handlers); `fleet` (the integrators' pages);
//! `configs` (a gateway's configuration page) and `device_templates` (the templates page);
//! `alarms` (an enterprise's alarms and their acknowledgement), `alarm_rules` and
//! `alarm_channels` (its rules and notification channels, for who manages its alarms);
//! `profile` (the bureau's forms for an enterprise's size, specialised class and maturity
//! assessments);
//! `exports` (the CSV files the pages link
//! to, in the page's language; the API's CSV keeps its codes); [`format`] (times in the
//! program's zone, counts, percentages: one function each for pages and CSV); the static
//! files (uPlot, vendored from npm, our CSS/JS and the icon) are included in the binary,
//! so no page needs the internet.
//!
//! Invariants:
//! - every time a page or a UI CSV file shows is in the program's zone
//!   (`utc_offset_minutes`, Beijing time by default), charts included; the JSON keeps
//!   RFC 3339;
//! - every page but `/login`, `/lang/*`, `/static/*` and `/favicon.ico` needs a session;
//!   the bureau's pages
//!   need a bureau session; an enterprise page, its charts and its series need a bureau
//!   session or that enterprise's session, and a gateway named in a query must be one of
//!   the enterprise's own (otherwise 404, so nothing says another enterprise exists);
//! - an enterprise's alarm pages (events, rules, channels) and their forms are for who
//!   manages its alarms, the enterprise and its integrator ([`crate::scope`]); the bureau
//!   and the districts are shown open-alarm counts only, of the enterprises that share
//!   their data, never a rule's name or a value;
//! - the session cookie is `HttpOnly; Secure; SameSite=Lax`; every form that changes
//!   state carries a CSRF token (the session's, or a login cookie's for the login form);
//! - pages are sent with a strict Content-Security-Policy: scripts and styles only from
//!   `/static/`, no inline script or style;
//! - a bureau session may also make the bureau's GET calls of the JSON API
//!   ([`crate::http::auth`]); an enterprise session makes none.

mod alarm_channels;
mod alarm_rules;
mod alarms;
mod cockpit;
mod configs;
mod device_templates;
mod evidence;
mod exports;
mod fleet;
pub mod format;
pub mod i18n;
mod pages;
mod profile;
mod web;

pub use crate::accounts::{self, AccountError, Accounts, Role};

use crate::http::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The root: redirects to the user's home page, or to the login.
pub const HOME: &str = "/";
/// The login form (GET) and its submission (POST).
pub const LOGIN: &str = "/login";
/// Ends the session (POST with the CSRF token).
pub const LOGOUT: &str = "/logout";
/// Sets the language cookie and goes back (`?next=`).
pub const LANG: &str = "/lang/{lang}";
/// The static files built into the binary.
pub const STATIC: &str = "/static/{file}";
/// The bureau's dashboard.
pub const BUREAU: &str = "/bureau";
/// The bureau's wall display (1920 × 1080), refreshing itself.
pub const BUREAU_COCKPIT: &str = "/bureau/cockpit";
/// The dashboard's tables as CSV in the page's language: `onboarding`, `daily`, `silent`,
/// `program`.
pub const BUREAU_CSV: &str = "/bureau/csv/{table}";
/// The enterprises of one industry (`?format=csv` for the table).
pub const BUREAU_INDUSTRY: &str = "/bureau/industries/{industry}";
/// The enterprises of one district (`?format=csv` for the table).
pub const BUREAU_DISTRICT: &str = "/bureau/districts/{district}";
/// One enterprise: gateways, devices, points and latest values.
pub const ENTERPRISE: &str = "/enterprises/{credit_code}";
/// One point's chart page.
pub const ENTERPRISE_CHART: &str = "/enterprises/{credit_code}/chart";
/// One point's downsampled series (JSON), which the chart page loads.
pub const ENTERPRISE_SERIES: &str = "/enterprises/{credit_code}/series";
/// The icon browsers ask for by default; the pages link the same SVG from `/static/`.
pub const FAVICON: &str = "/favicon.ico";
/// An enterprise's acceptance evidence, printable.
pub const ENTERPRISE_EVIDENCE: &str = "/enterprises/{credit_code}/evidence";
/// The fleet: every gateway in scope (integrators and the bureau).
pub const FLEET: &str = "/fleet";
/// The integrators' ranking (bureau and districts).
pub const INTEGRATORS: &str = "/bureau/integrators";
/// An enterprise turns its data sharing with the bureau on or off (POST, CSRF).
pub const ENTERPRISE_SHARING: &str = "/enterprises/{credit_code}/sharing";
/// The bureau sets an enterprise's size and specialised class (POST, CSRF).
pub const ENTERPRISE_CLASSES: &str = "/enterprises/{credit_code}/classes";
/// The bureau records an enterprise's maturity assessment (POST, CSRF).
pub const ENTERPRISE_MATURITY: &str = "/enterprises/{credit_code}/maturity";

/// A gateway's configuration page (GET) and a save of its editor (POST, CSRF): for who
/// sees the gateway; saving for who installs for its enterprise.
pub const GATEWAY_CONFIG: &str = "/gateways/{gateway_id}/config";
/// Saves an older version of a gateway's config as the next (POST, CSRF).
pub const GATEWAY_CONFIG_ROLLBACK: &str = "/gateways/{gateway_id}/config/rollback";
/// The device templates, with their sources, points and files.
pub const TEMPLATES: &str = "/templates";

/// An enterprise's alarms (`?state=active|all`): for who manages them.
pub const ENTERPRISE_ALARMS: &str = "/enterprises/{credit_code}/alarms";
/// Acknowledges an active alarm (POST, CSRF).
pub const ALARM_ACK: &str = "/alarms/{id}/ack";
/// An enterprise's alarm rules with the form for a new one (GET), its submission (POST).
pub const ENTERPRISE_ALARM_RULES: &str = "/enterprises/{credit_code}/alarm-rules";
/// The rules page with the form prefilled with one rule (GET), its submission (POST).
pub const ALARM_RULE: &str = "/alarm-rules/{id}";
/// Enables or disables a rule (POST, CSRF, `enabled=true|false`).
pub const ALARM_RULE_ENABLED: &str = "/alarm-rules/{id}/enabled";
/// An enterprise's notification channels with the form for a new one (GET), its
/// submission (POST).
pub const ENTERPRISE_ALARM_CHANNELS: &str = "/enterprises/{credit_code}/alarm-channels";
/// Sends a test message through a channel and shows the outcome (POST, CSRF).
pub const ALARM_CHANNEL_TEST: &str = "/alarm-channels/{id}/test";

/// Every route the UI adds, for tests that must walk them all.
pub const ROUTES: [&str; 30] = [
    HOME,
    LOGIN,
    LOGOUT,
    LANG,
    STATIC,
    BUREAU,
    BUREAU_COCKPIT,
    BUREAU_INDUSTRY,
    BUREAU_DISTRICT,
    ENTERPRISE,
    ENTERPRISE_CHART,
    ENTERPRISE_SERIES,
    BUREAU_CSV,
    FAVICON,
    FLEET,
    INTEGRATORS,
    ENTERPRISE_SHARING,
    ENTERPRISE_EVIDENCE,
    GATEWAY_CONFIG,
    GATEWAY_CONFIG_ROLLBACK,
    TEMPLATES,
    ENTERPRISE_ALARMS,
    ALARM_ACK,
    ENTERPRISE_ALARM_RULES,
    ALARM_RULE,
    ALARM_RULE_ENABLED,
    ENTERPRISE_ALARM_CHANNELS,
    ALARM_CHANNEL_TEST,
    ENTERPRISE_CLASSES,
    ENTERPRISE_MATURITY,
];

/// The UI's routes, merged into the API's router.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(HOME, get(pages::home))
        .route(LOGIN, get(pages::login_form).post(pages::login))
        .route(LOGOUT, post(pages::logout))
        .route(LANG, get(pages::set_lang))
        .route(STATIC, get(web::static_file))
        .route(BUREAU, get(pages::dashboard))
        .route(BUREAU_COCKPIT, get(cockpit::cockpit))
        .route(BUREAU_INDUSTRY, get(pages::industry))
        .route(BUREAU_DISTRICT, get(pages::district))
        .route(ENTERPRISE, get(pages::enterprise))
        .route(ENTERPRISE_CHART, get(pages::chart))
        .route(ENTERPRISE_SERIES, get(pages::series))
        .route(BUREAU_CSV, get(exports::bureau_csv))
        .route(FAVICON, get(web::favicon))
        .route(FLEET, get(fleet::fleet))
        .route(INTEGRATORS, get(fleet::integrators))
        .route(ENTERPRISE_SHARING, post(fleet::set_sharing))
        .route(ENTERPRISE_EVIDENCE, get(evidence::evidence))
        .route(GATEWAY_CONFIG, get(configs::config).post(configs::save))
        .route(GATEWAY_CONFIG_ROLLBACK, post(configs::roll_back))
        .route(TEMPLATES, get(device_templates::templates))
        .route(ENTERPRISE_ALARMS, get(alarms::alarms))
        .route(ALARM_ACK, post(alarms::acknowledge))
        .route(
            ENTERPRISE_ALARM_RULES,
            get(alarm_rules::rules_page).post(alarm_rules::create),
        )
        .route(ALARM_RULE, get(alarm_rules::edit).post(alarm_rules::update))
        .route(ALARM_RULE_ENABLED, post(alarm_rules::set_enabled))
        .route(
            ENTERPRISE_ALARM_CHANNELS,
            get(alarm_channels::channels_page).post(alarm_channels::create),
        )
        .route(ALARM_CHANNEL_TEST, post(alarm_channels::test))
        .route(ENTERPRISE_CLASSES, post(profile::set_classes))
        .route(ENTERPRISE_MATURITY, post(profile::record_maturity))
}
