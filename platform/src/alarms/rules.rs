//! An alarm rule as the API and the web UI take it, checked before it is saved: its gateway
//! must be the enterprise's, the device and point it names must be in that gateway's
//! catalogue (its retained `meta`), its channels the enterprise's, and its numbers sane.
//! A rule on an unknown gateway, device or point is refused, with the reason.

use crate::store::alarms::{NewRule, RuleKind, Severity};
use crate::store::{Store, StoreError};
use fieldlink_wire::Meta;
use serde::{Deserialize, Serialize};

/// The longest `for_seconds`: a week.
pub const MAX_FOR_SECONDS: i64 = 7 * 24 * 3600;

/// A rule as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// Its name, in notifications.
    pub name: String,
    /// The gateway watched.
    pub gateway: String,
    /// The device (point kinds and `device_down`).
    #[serde(default)]
    pub device: Option<String>,
    /// The point (point kinds).
    #[serde(default)]
    pub point: Option<String>,
    /// `high`, `low`, `equals`, `stale`, `gateway_offline` or `device_down`.
    pub kind: String,
    /// The threshold (`high`, `low`, `equals`).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The hysteresis (`high`, `low`); 0 if absent.
    #[serde(default)]
    pub hysteresis: Option<f64>,
    /// How long the condition must hold; 0 if absent (`stale` needs one).
    #[serde(default)]
    pub for_seconds: Option<i64>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The channels notified, by id.
    #[serde(default)]
    pub channels: Vec<i64>,
    /// False to save it disabled (edits); true if absent.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Why a rule was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The rule is not valid: the reason.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(reason: impl Into<String>) -> RuleError {
    RuleError::Invalid(reason.into())
}

/// Checks `input` as a rule of enterprise `credit_code`.
pub async fn validate(
    store: &Store,
    credit_code: &str,
    input: &RuleInput,
) -> Result<NewRule, RuleError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid(
            "`name` must be 1 to 100 characters without control characters",
        ));
    }
    let kind = RuleKind::parse(&input.kind).ok_or_else(|| {
        let kinds: Vec<&str> = RuleKind::ALL.iter().map(|k| k.as_str()).collect();
        invalid(format!(
            "`kind` must be one of {}, found {:?}",
            kinds.join(", "),
            input.kind
        ))
    })?;
    let severity = Severity::parse(&input.severity).ok_or_else(|| {
        invalid(format!(
            "`severity` must be info, warning or critical, found {:?}",
            input.severity
        ))
    })?;
    let gateway = match store.gateway(&input.gateway, 0).await? {
        Some((gateway, _)) if gateway.credit_code == credit_code => gateway,
        _ => {
            return Err(invalid(format!(
                "unknown gateway {:?}: not one of this enterprise's",
                input.gateway
            )));
        }
    };
    let meta: Option<Meta> = gateway
        .meta
        .as_ref()
        .and_then(|m| serde_json::from_value(m.clone()).ok());
    let needs_device = kind.watches_point() || kind == RuleKind::DeviceDown;
    let (device, point) = match (needs_device, &input.device, &input.point) {
        (false, None, None) => (None, None),
        (false, _, _) => return Err(invalid("a gateway_offline rule names no device or point")),
        (true, None, _) => return Err(invalid(format!("a {} rule needs `device`", kind.as_str()))),
        (true, Some(device), point) => {
            let meta = meta.as_ref().ok_or_else(|| {
                invalid(format!(
                    "gateway {} has not published its catalogue yet: its devices and points are unknown",
                    gateway.id
                ))
            })?;
            let found = meta
                .devices
                .iter()
                .find(|d| &d.name == device)
                .ok_or_else(|| {
                    invalid(format!(
                        "unknown device {device:?}: gateway {} has no such device",
                        gateway.id
                    ))
                })?;
            match (kind.watches_point(), point) {
                (true, None) => {
                    return Err(invalid(format!("a {} rule needs `point`", kind.as_str())));
                }
                (true, Some(point)) => {
                    if !found.points.iter().any(|p| &p.name == point) {
                        return Err(invalid(format!(
                            "unknown point {point:?}: device {device:?} has no such point"
                        )));
                    }
                    (Some(device.clone()), Some(point.clone()))
                }
                (false, Some(_)) => return Err(invalid("a device_down rule names no point")),
                (false, None) => (Some(device.clone()), None),
            }
        }
    };
    let threshold = match (kind.has_threshold(), input.threshold) {
        (true, Some(t)) if t.is_finite() => Some(t),
        (true, _) => {
            return Err(invalid(format!(
                "a {} rule needs a finite `threshold`",
                kind.as_str()
            )));
        }
        (false, Some(_)) => {
            return Err(invalid(format!(
                "a {} rule takes no `threshold`",
                kind.as_str()
            )));
        }
        (false, None) => None,
    };
    let hysteresis = input.hysteresis.unwrap_or(0.0);
    if !hysteresis.is_finite() || hysteresis < 0.0 {
        return Err(invalid("`hysteresis` must be 0 or more"));
    }
    if hysteresis > 0.0 && !kind.has_hysteresis() {
        return Err(invalid("`hysteresis` applies to high and low rules only"));
    }
    let for_seconds = input.for_seconds.unwrap_or(0);
    if !(0..=MAX_FOR_SECONDS).contains(&for_seconds) {
        return Err(invalid(format!(
            "`for_seconds` must be from 0 to {MAX_FOR_SECONDS}"
        )));
    }
    if for_seconds == 0 && kind == RuleKind::Stale {
        return Err(invalid(
            "a stale rule needs `for_seconds`: how long without a sample",
        ));
    }
    let own = store.channels(credit_code).await?;
    for id in &input.channels {
        if !own.iter().any(|c| c.id == *id) {
            return Err(invalid(format!(
                "unknown channel {id}: not one of this enterprise's"
            )));
        }
    }
    Ok(NewRule {
        credit_code: credit_code.to_owned(),
        name: name.to_owned(),
        gateway_id: gateway.id,
        device,
        point,
        kind,
        threshold,
        hysteresis,
        for_seconds,
        severity,
        channels: input.channels.clone(),
    })
}
