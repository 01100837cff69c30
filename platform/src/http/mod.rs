//! What every HTTP handler shares, below the API, the web UI and the broker hook: the
//! state ([`AppState`]), the error answer ([`error`]), who is asking ([`auth`]) and the
//! views of enterprises and gateways both the API and the UI show ([`views`]).

pub mod auth;
pub mod error;
pub mod views;

pub use auth::Principal;
pub use error::ApiError;

use crate::accounts::Accounts;
use crate::config::Targets;
use crate::ingest::IngestCounters;
use crate::limiter::FailureLimiter;
use crate::registry::Registry;
use crate::store::Store;
use std::sync::Arc;

/// Compresses answers with gzip when the client accepts it (`Accept-Encoding`): pages,
/// CSV, JSON, scripts and styles (the uPlot bundle shrinks from 50 kB to about 22 kB);
/// not images (except SVG) nor bodies under 32 bytes (tower-http's default predicate).
pub fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
}

/// The largest request body accepted (413 beyond): a CSV import of the whole city's
/// enterprises fits many times over.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What the handlers share.
pub struct AppState {
    /// The registry.
    pub registry: Registry,
    /// The store.
    pub store: Store,
    /// SHA-256 of the bureau's token.
    pub admin_token_sha256: String,
    /// The ingest's counters.
    pub counters: Arc<IngestCounters>,
    /// The program's targets.
    pub targets: Targets,
    /// The program's time zone, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// The web UI's users and sessions.
    pub accounts: Accounts,
    /// Failed logins and enrollments per client address.
    pub failures: FailureLimiter,
    /// The alarm channels' sender (the "send test message" button).
    pub webhooks: crate::alarms::channel::Sender,
    /// Alarm channels may name loopback and private addresses.
    pub allow_private_webhooks: bool,
}
