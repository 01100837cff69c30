//! The fleet: one row per gateway in the caller's scope, with its health and its problems,
//! filtered, sorted and paged on the server so the page stays usable with thousands of
//! gateways (`GET /api/v1/gateways` and the fleet page show the same [`FleetPage`]).
//!
//! A gateway has a problem when it is offline (or never sent a status), has sent no batch
//! for [`SILENT_AFTER_MS`] (or none yet), holds [`BACKLOG_PROBLEM`] batches or more in its
//! outbox, has evicted batches, has batches missing at the platform, or has a device that
//! is not connected or whose last read failed.

use crate::clock::rfc3339;
use crate::gateway_config::{self, ConfigStanding};
use crate::role::Role;
use crate::scope;
use crate::store::{Enterprise, Gateway, Store, StoreError};
use fieldlink_wire::DeviceHealth;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// No batch for this long is a problem (1 hour).
pub const SILENT_AFTER_MS: i64 = 3_600_000;
/// A backlog of this many batches or more is a problem.
pub const BACKLOG_PROBLEM: u64 = 100;
/// Rows per page unless asked otherwise.
pub const DEFAULT_PER_PAGE: usize = 50;
/// The most rows one page holds.
pub const MAX_PER_PAGE: usize = 500;

/// What a fleet request asks for (the query string of `GET /api/v1/gateways` and of the
/// fleet page).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FleetQuery {
    /// The page, from 1.
    pub page: Option<usize>,
    /// Rows per page, 1 to [`MAX_PER_PAGE`].
    pub per_page: Option<usize>,
    /// The column to sort by.
    pub sort: Option<SortKey>,
    /// `asc` (default) or `desc`.
    pub order: Option<Order>,
    /// `true`: only the gateways with a problem.
    pub problems: Option<bool>,
    /// Only the gateways whose id, name, enterprise or enterprise name contains this.
    pub q: Option<String>,
    /// `csv` for every selected row as CSV (all pages), `json` (the API's default).
    pub format: Option<String>,
}

/// A column the fleet sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The gateway id.
    #[default]
    Gateway,
    /// The enterprise's name.
    Enterprise,
    /// Online first with `desc`.
    Online,
    /// The agent's version.
    Version,
    /// When the last batch arrived.
    LastBatch,
    /// Batches waiting in the outbox.
    Backlog,
    /// Batches evicted.
    Evicted,
    /// How many problems.
    Problems,
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One gateway's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetRow {
    /// Its id.
    pub gateway_id: String,
    /// Its name within its enterprise.
    pub name: String,
    /// Its enterprise's credit code.
    pub credit_code: String,
    /// Its enterprise's name.
    pub enterprise: String,
    /// The integrator its enterprise is assigned to.
    pub integrator: Option<String>,
    /// Online by its retained status.
    pub online: bool,
    /// The agent's version.
    pub version: Option<String>,
    /// When its last batch arrived (RFC 3339).
    pub last_batch_at: Option<String>,
    /// Batches waiting in its outbox, by its status.
    pub backlog_batches: Option<u64>,
    /// Batches its outbox evicted, by its status.
    pub evicted_batches: Option<u64>,
    /// Batches missing at the platform (open gaps).
    pub missing_batches: u64,
    /// The configuration version it applied, by its status (`null` while it runs its local
    /// file).
    pub config_version: Option<u64>,
    /// The newest config version saved for it on the platform.
    pub config_newest: Option<u64>,
    /// Where it stands with its configs ([`gateway_config::standing`]).
    pub config_standing: ConfigStanding,
    /// Why it refused the last config it received, by its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Its devices' health, by its status.
    pub devices: Vec<DeviceHealth>,
    /// Its problems.
    pub problems: Vec<Problem>,
    /// When its last batch arrived (ms since the epoch), for sorting and the pages' times.
    #[serde(skip)]
    pub last_batch_ms: Option<i64>,
}

/// Something wrong with a gateway (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Offline, or no status yet.
    Offline,
    /// No batch for [`SILENT_AFTER_MS`], or none yet.
    Silent,
    /// [`BACKLOG_PROBLEM`] batches or more waiting in its outbox.
    Backlog,
    /// Its outbox evicted batches.
    Evicted,
    /// Batches missing at the platform.
    Missing,
    /// A device is not connected.
    DeviceDown,
    /// A device's last read failed.
    DeviceError,
}

impl Problem {
    /// Its code, as the API and the CSV write it.
    pub fn code(self) -> &'static str {
        match self {
            Problem::Offline => "offline",
            Problem::Silent => "silent",
            Problem::Backlog => "backlog",
            Problem::Evicted => "evicted",
            Problem::Missing => "missing",
            Problem::DeviceDown => "device_down",
            Problem::DeviceError => "device_error",
        }
    }
}

/// One page of the fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetPage {
    /// Gateways selected (all pages).
    pub total: usize,
    /// Of those, gateways with a problem.
    pub with_problems: usize,
    /// This page, from 1.
    pub page: usize,
    /// Rows per page.
    pub per_page: usize,
    /// The pages.
    pub pages: usize,
    /// This page's rows.
    pub rows: Vec<FleetRow>,
}

/// Why a fleet query failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The store failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `per_page` out of range.
    #[error("per_page must be 1 to {MAX_PER_PAGE}")]
    PerPage,
    /// `page` is 0.
    #[error("page must be 1 or more")]
    Page,
}

/// The row of gateway `g` of enterprise `e` at `now`, the newest config version saved for
/// it being `config_newest`.
pub fn row(g: &Gateway, e: &Enterprise, config_newest: Option<u64>, now: i64) -> FleetRow {
    let status = g.status.as_ref();
    let config = status.and_then(|s| s.status.config.as_ref());
    let config_version = config.and_then(|c| c.version);
    let config_error = config.and_then(|c| c.error.clone());
    let online = status.is_some_and(|s| s.online());
    let devices = status.map(|s| s.status.devices.clone()).unwrap_or_default();
    let backlog_batches = status.and_then(|s| s.status.backlog_batches);
    let evicted_batches = status.and_then(|s| s.status.evicted_batches);
    let mut problems = Vec::new();
    if !online {
        problems.push(Problem::Offline);
    }
    if g.last_batch_at.is_none_or(|t| now - t > SILENT_AFTER_MS) {
        problems.push(Problem::Silent);
    }
    if backlog_batches.is_some_and(|b| b >= BACKLOG_PROBLEM) {
        problems.push(Problem::Backlog);
    }
    if evicted_batches.is_some_and(|b| b > 0) {
        problems.push(Problem::Evicted);
    }
    if g.missing_batches > 0 {
        problems.push(Problem::Missing);
    }
    if devices.iter().any(|d| !d.connected) {
        problems.push(Problem::DeviceDown);
    }
    if devices.iter().any(|d| d.last_error.is_some()) {
        problems.push(Problem::DeviceError);
    }
    FleetRow {
        gateway_id: g.id.clone(),
        name: g.name.clone(),
        credit_code: e.credit_code.clone(),
        enterprise: e.name.clone(),
        integrator: e.integrator.clone(),
        online,
        version: status
            .and_then(|s| s.status.version.clone())
            .or_else(|| g.agent_version.clone()),
        last_batch_at: g.last_batch_at.map(rfc3339),
        backlog_batches,
        evicted_batches,
        missing_batches: g.missing_batches,
        config_version,
        config_newest,
        config_standing: gateway_config::standing(
            config_newest,
            config_version,
            config_error.is_some(),
        ),
        config_error,
        devices,
        problems,
        last_batch_ms: g.last_batch_at,
    }
}

/// The page `query` asks for, of the gateways `role` may see, at `now` (every selected
/// row when `all` is set, for CSV).
pub async fn load(
    store: &Store,
    role: &Role,
    query: &FleetQuery,
    now: i64,
    all: bool,
) -> Result<FleetPage, FleetError> {
    let visible: HashMap<String, Enterprise> = store
        .enterprises()
        .await?
        .into_iter()
        .filter(|e| scope::sees_enterprise(role, e))
        .map(|e| (e.credit_code.clone(), e))
        .collect();
    let gateways = store.gateways(None).await?;
    let newest = store.newest_config_versions().await?;
    page(&gateways, &visible, &newest, query, now, all)
}

/// The page `query` asks for, of the gateways of the enterprises `visible` holds (by
/// credit code), their newest config versions being `newest` (by gateway id), at `now`;
/// every selected row (unpaged) when `all` is set, for CSV.
pub fn page(
    gateways: &[Gateway],
    visible: &HashMap<String, Enterprise>,
    newest: &HashMap<String, u64>,
    query: &FleetQuery,
    now: i64,
    all: bool,
) -> Result<FleetPage, FleetError> {
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(FleetError::PerPage);
    }
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(FleetError::Page);
    }
    let needle = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let mut rows: Vec<FleetRow> = gateways
        .iter()
        .filter_map(|g| {
            let e = visible.get(&g.credit_code)?;
            Some(row(g, e, newest.get(&g.id).copied(), now))
        })
        .filter(|r| {
            needle.as_deref().is_none_or(|n| {
                [&r.gateway_id, &r.name, &r.credit_code, &r.enterprise]
                    .iter()
                    .any(|field| field.to_lowercase().contains(n))
            })
        })
        .collect();
    let with_problems = rows.iter().filter(|r| !r.problems.is_empty()).count();
    if query.problems == Some(true) {
        rows.retain(|r| !r.problems.is_empty());
    }
    sort(
        &mut rows,
        query.sort.unwrap_or_default(),
        query.order.unwrap_or_default(),
    );
    let total = rows.len();
    let pages = total.div_ceil(per_page).max(1);
    let rows = if all {
        rows
    } else {
        rows.into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect()
    };
    Ok(FleetPage {
        total,
        with_problems,
        page,
        per_page,
        pages,
        rows,
    })
}

/// Sorts by `key` in `order`, ties by gateway id.
fn sort(rows: &mut [FleetRow], key: SortKey, order: Order) {
    rows.sort_by(|a, b| {
        let by = match key {
            SortKey::Gateway => std::cmp::Ordering::Equal,
            SortKey::Enterprise => a.enterprise.cmp(&b.enterprise),
            SortKey::Online => a.online.cmp(&b.online),
            SortKey::Version => a.version.cmp(&b.version),
            SortKey::LastBatch => a.last_batch_ms.cmp(&b.last_batch_ms),
            SortKey::Backlog => a.backlog_batches.cmp(&b.backlog_batches),
            SortKey::Evicted => a.evicted_batches.cmp(&b.evicted_batches),
            SortKey::Problems => a.problems.len().cmp(&b.problems.len()),
        }
        .then_with(|| a.gateway_id.cmp(&b.gateway_id));
        match order {
            Order::Asc => by,
            Order::Desc => by.reverse(),
        }
    });
}

/// Every row as CSV, with the API's field names as its header; devices as
/// `name:up|down` lists.
pub fn to_csv(rows: &[FleetRow]) -> String {
    let optional = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let lines: Vec<[String; 16]> = rows
        .iter()
        .map(|r| {
            let devices: Vec<String> = r
                .devices
                .iter()
                .map(|d| format!("{}:{}", d.name, if d.connected { "up" } else { "down" }))
                .collect();
            [
                r.gateway_id.clone(),
                r.name.clone(),
                r.credit_code.clone(),
                r.enterprise.clone(),
                r.integrator.clone().unwrap_or_default(),
                r.online.to_string(),
                r.version.clone().unwrap_or_default(),
                r.last_batch_at.clone().unwrap_or_default(),
                optional(r.backlog_batches),
                optional(r.evicted_batches),
                r.missing_batches.to_string(),
                optional(r.config_version),
                optional(r.config_newest),
                r.config_standing.code().to_owned(),
                devices.join(" "),
                r.problems
                    .iter()
                    .map(|p| p.code())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    crate::stats::to_csv(
        &[
            "gateway_id",
            "name",
            "credit_code",
            "enterprise",
            "integrator",
            "online",
            "version",
            "last_batch_at",
            "backlog_batches",
            "evicted_batches",
            "missing_batches",
            "config_version",
            "config_newest",
            "config_standing",
            "devices",
            "problems",
        ],
        lines.iter().map(|l| l.as_slice()),
    )
}
