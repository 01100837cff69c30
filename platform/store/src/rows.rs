//! Result rows read the same way on both backends: [`Columns`] reads a column of a
//! rusqlite or a tokio-postgres row, and the mappers here turn rows of the shared column
//! lists into the store's types.

use crate::alarms::{AlarmEvent, AlarmRule, ChannelRow, EventState, RuleKind, RuleState, Severity};
use crate::columns::{
    parse_district, parse_gateway_state, parse_industry, parse_level, parse_size, parse_specialised,
};
use crate::configs::{ConfigToPublish, ConfigVersion};
use crate::integrators::{Assignment, Integrator};
use crate::numbering::{WindowNumbering, skipped_within};
use crate::profile::{Assessment, Maturity};
use crate::{
    CrashWindow, Enterprise, Gap, Gateway, OnboardingRow, SeriesBucket, StoreError, UserRow,
};
use fieldlink_platform_core::role::Role;
use fieldlink_wire::Value;
use std::collections::HashMap;

/// A result row's columns by index, whichever backend produced it.
pub(crate) trait Columns {
    /// A text column.
    fn text(&self, i: usize) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// An integer column (any width).
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A boolean column (SQLite stores 0 or 1).
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
    /// A floating-point column.
    fn float(&self, i: usize) -> Result<f64, StoreError>;
    /// A nullable floating-point column.
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError>;
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.get(i)?)
    }
    fn float(&self, i: usize) -> Result<f64, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.get(i)?)
    }
}

impl Columns for tokio_postgres::Row {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        // BIGINT, or INTEGER and SMALLINT columns, widened.
        self.try_get::<_, i64>(i)
            .or_else(|_| self.try_get::<_, i32>(i).map(i64::from))
            .or_else(|_| self.try_get::<_, i16>(i).map(i64::from))
            .map_err(StoreError::from)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        // As `int`: narrower columns widened.
        self.try_get::<_, Option<i64>>(i)
            .or_else(|_| self.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)))
            .or_else(|_| self.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)))
            .map_err(StoreError::from)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn float(&self, i: usize) -> Result<f64, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// The columns [`enterprise`] reads, in its order.
pub(crate) const ENTERPRISE_COLUMNS: &str = "credit_code, name, industry, district, in_program, registered_at, first_batch_at, last_batch_at, integrator, assigned_at, share_data_with_bureau, size, specialised, maturity_level, maturity_assessed_at";

/// An enterprise from a row of [`ENTERPRISE_COLUMNS`].
pub(crate) fn enterprise(r: &impl Columns) -> Result<Enterprise, StoreError> {
    Ok(Enterprise {
        credit_code: r.text(0)?,
        name: r.text(1)?,
        industry: parse_industry(&r.text(2)?)?,
        district: parse_district(&r.text(3)?)?,
        in_program: r.flag(4)?,
        registered_at: r.int(5)?,
        first_batch_at: r.opt_int(6)?,
        last_batch_at: r.opt_int(7)?,
        integrator: r.opt_text(8)?,
        assigned_at: r.opt_int(9)?,
        share_data_with_bureau: r.flag(10)?,
        size: parse_size(r.opt_text(11)?)?,
        specialised: parse_specialised(r.opt_text(12)?)?,
        maturity: match (r.opt_int(13)?, r.opt_int(14)?) {
            (Some(level), Some(assessed_at)) => Some(Maturity {
                level: parse_level(level)?,
                assessed_at,
            }),
            _ => None,
        },
    })
}

/// The columns [`assessment`] reads, in its order.
pub(crate) const ASSESSMENT_COLUMNS: &str = "level, assessed_at, assessor, recorded_at";

/// A maturity assessment from a row of [`ASSESSMENT_COLUMNS`].
pub(crate) fn assessment(r: &impl Columns) -> Result<Assessment, StoreError> {
    Ok(Assessment {
        level: parse_level(r.int(0)?)?,
        assessed_at: r.int(1)?,
        assessor: r.text(2)?,
        recorded_at: r.int(3)?,
    })
}

/// The columns [`user`] reads, in its order, from `users u`.
pub(crate) const USER_COLUMNS: &str = "u.username, u.role, u.scope";

/// A user from a row of [`USER_COLUMNS`]; a role or scope that does not parse is a
/// corrupt row.
pub(crate) fn user(r: &impl Columns) -> Result<UserRow, StoreError> {
    let username = r.text(0)?;
    let role = Role::parse(&r.text(1)?, r.opt_text(2)?.as_deref())
        .map_err(|e| StoreError::Corrupt(format!("user {username:?}: {e}")))?;
    Ok(UserRow { username, role })
}

/// The columns [`integrator`] reads, in its order.
pub(crate) const INTEGRATOR_COLUMNS: &str = "credit_code, name, contact, registered_at";

/// An integrator from a row of [`INTEGRATOR_COLUMNS`].
pub(crate) fn integrator(r: &impl Columns) -> Result<Integrator, StoreError> {
    Ok(Integrator {
        credit_code: r.text(0)?,
        name: r.text(1)?,
        contact: r.opt_text(2)?,
        registered_at: r.int(3)?,
    })
}

/// An assignment from a row `integrator, assigned_at`.
pub(crate) fn assignment(r: &impl Columns) -> Result<Assignment, StoreError> {
    Ok(Assignment {
        integrator: r.text(0)?,
        assigned_at: r.int(1)?,
    })
}

/// A gateway's numbering over a window from a row `gateway, stored, samples, first_seq,
/// last_seq`, with the crash windows of every gateway.
pub(crate) fn window_numbering(
    r: &impl Columns,
    crashes: &HashMap<String, Vec<(u64, u64)>>,
) -> Result<WindowNumbering, StoreError> {
    let gateway = r.text(0)?;
    let (first_seq, last_seq) = (r.int(3)?.unsigned_abs(), r.int(4)?.unsigned_abs());
    let crash_skipped = crashes
        .get(&gateway)
        .map_or(0, |w| skipped_within(w, first_seq, last_seq));
    Ok(WindowNumbering {
        stored: r.int(1)?.unsigned_abs(),
        samples: r.int(2)?.unsigned_abs(),
        first_seq,
        last_seq,
        crash_skipped,
        gateway,
    })
}

/// The columns [`gateway`] reads, in its order, from `gateways g`.
pub(crate) const GATEWAY_COLUMNS: &str =
    "g.id, g.credit_code, g.name, g.hostname, g.agent_version, g.enrolled_at,
    g.credentials_issued_at, g.first_batch_at, g.last_batch_at, g.batches, g.samples, g.max_seq,
    CAST((SELECT COALESCE(SUM(last_seq - first_seq + 1), 0) FROM gaps WHERE gaps.gateway = g.id) AS BIGINT),
    g.status, g.status_at, g.meta";

/// A gateway from a row of [`GATEWAY_COLUMNS`].
pub(crate) fn gateway(r: &impl Columns) -> Result<Gateway, StoreError> {
    let (status, meta) = parse_gateway_state(r.opt_text(13)?, r.opt_int(14)?, r.opt_text(15)?)?;
    Ok(Gateway {
        id: r.text(0)?,
        credit_code: r.text(1)?,
        name: r.text(2)?,
        hostname: r.opt_text(3)?,
        agent_version: r.opt_text(4)?,
        enrolled_at: r.int(5)?,
        credentials_issued_at: r.int(6)?,
        first_batch_at: r.opt_int(7)?,
        last_batch_at: r.opt_int(8)?,
        batches: r.int(9)?.unsigned_abs(),
        samples: r.int(10)?.unsigned_abs(),
        max_seq: r.opt_int(11)?.map(i64::unsigned_abs),
        missing_batches: r.int(12)?.unsigned_abs(),
        status,
        meta,
    })
}

/// An enterprise's onboarding state from a row `industry, district, in_program, enrolled,
/// on_cloud, active, size, specialised, maturity_level`.
pub(crate) fn onboarding(r: &impl Columns) -> Result<OnboardingRow, StoreError> {
    Ok(OnboardingRow {
        industry: parse_industry(&r.text(0)?)?,
        district: parse_district(&r.text(1)?)?,
        in_program: r.flag(2)?,
        enrolled: r.flag(3)?,
        on_cloud: r.flag(4)?,
        active: r.flag(5)?,
        size: parse_size(r.opt_text(6)?)?,
        specialised: parse_specialised(r.opt_text(7)?)?,
        maturity: r.opt_int(8)?.map(parse_level).transpose()?,
    })
}

/// A gap from a row `first_seq, last_seq`.
pub(crate) fn gap(r: &impl Columns) -> Result<Gap, StoreError> {
    Ok(Gap {
        first_seq: r.int(0)?.unsigned_abs(),
        last_seq: r.int(1)?.unsigned_abs(),
    })
}

/// A crash window from a row `first_seq, last_seq, recorded_at`.
pub(crate) fn crash_window(r: &impl Columns) -> Result<CrashWindow, StoreError> {
    Ok(CrashWindow {
        first_seq: r.int(0)?.unsigned_abs(),
        last_seq: r.int(1)?.unsigned_abs(),
        recorded_at: r.int(2)?,
    })
}

/// A row of [`crate::configs::CONFIG_VERSION_COLUMNS`].
pub(crate) fn config_version(r: &impl Columns) -> Result<ConfigVersion, StoreError> {
    Ok(ConfigVersion {
        version: r.int(0)?.unsigned_abs(),
        sha256: r.text(1)?,
        created_at: r.int(2)?,
        created_by: r.text(3)?,
        published_at: r.opt_int(4)?,
    })
}

/// A row `(gateway_id, version)`.
pub(crate) fn gateway_version(r: &impl Columns) -> Result<(String, u64), StoreError> {
    Ok((r.text(0)?, r.int(1)?.unsigned_abs()))
}

/// A row `(gateway_id, version, toml)`.
pub(crate) fn config_to_publish(r: &impl Columns) -> Result<ConfigToPublish, StoreError> {
    Ok(ConfigToPublish {
        gateway_id: r.text(0)?,
        version: r.int(1)?.unsigned_abs(),
        toml: r.text(2)?,
    })
}

/// One bucket of a series query's row `(bucket index, min, max, avg, count)`, the bucket
/// starting `index` buckets after `from`.
pub(crate) fn series_bucket(
    r: &impl Columns,
    from: i64,
    bucket_ms: i64,
) -> Result<SeriesBucket, StoreError> {
    Ok(SeriesBucket {
        start: from + r.int(0)? * bucket_ms,
        min: r.float(1)?,
        max: r.float(2)?,
        avg: r.float(3)?,
        count: r.int(4)?.unsigned_abs(),
    })
}

/// The columns [`alarm_rule`] reads, in its order.
pub(crate) const ALARM_RULE_COLUMNS: &str = "id, credit_code, name, gateway_id, device, point, kind, threshold, hysteresis, for_seconds, severity, channels, enabled, created_at, updated_at, pending_since, last_ts, active_event, raise_notified";

/// A row of [`ALARM_RULE_COLUMNS`]: the rule and its evaluation state.
pub(crate) fn alarm_rule(r: &impl Columns) -> Result<(AlarmRule, RuleState), StoreError> {
    let corrupt =
        |what: &str, found: String| StoreError::Corrupt(format!("alarm rule: {what} {found:?}"));
    let kind = r.text(6)?;
    let severity = r.text(10)?;
    let channels = r.text(11)?;
    let rule = AlarmRule {
        id: r.int(0)?,
        credit_code: r.text(1)?,
        name: r.text(2)?,
        gateway_id: r.text(3)?,
        device: r.opt_text(4)?,
        point: r.opt_text(5)?,
        kind: RuleKind::parse(&kind).ok_or_else(|| corrupt("kind", kind.clone()))?,
        threshold: r.opt_float(7)?,
        hysteresis: r.float(8)?,
        for_seconds: r.int(9)?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| corrupt("severity", severity.clone()))?,
        channels: serde_json::from_str(&channels)
            .map_err(|_| corrupt("channels", channels.clone()))?,
        enabled: r.flag(12)?,
        created_at: r.int(13)?,
        updated_at: r.int(14)?,
    };
    let state = RuleState {
        pending_since: r.opt_int(15)?,
        last_ts: r.opt_int(16)?,
        active_event: r.opt_int(17)?,
        raise_notified: r.flag(18)?,
    };
    Ok((rule, state))
}

/// The columns [`alarm_event`] reads, of `alarm_events e JOIN alarm_rules r`.
pub(crate) const ALARM_EVENT_COLUMNS: &str = "e.id, e.rule_id, r.name, r.kind, r.severity, e.credit_code, r.gateway_id, r.device, r.point, e.state, e.raised_at, e.raised_value, e.recorded_at, e.acknowledged_at, e.acknowledged_by, e.cleared_at, e.cleared_value";

/// A row of [`ALARM_EVENT_COLUMNS`].
pub(crate) fn alarm_event(r: &impl Columns) -> Result<AlarmEvent, StoreError> {
    let corrupt =
        |what: &str, found: String| StoreError::Corrupt(format!("alarm event: {what} {found:?}"));
    let value = |i: usize| -> Result<Option<Value>, StoreError> {
        r.opt_text(i)?
            .map(|text| serde_json::from_str(&text).map_err(|_| corrupt("value", text)))
            .transpose()
    };
    let kind = r.text(3)?;
    let severity = r.text(4)?;
    let state = r.text(9)?;
    Ok(AlarmEvent {
        id: r.int(0)?,
        rule_id: r.int(1)?,
        rule: r.text(2)?,
        kind: RuleKind::parse(&kind).ok_or_else(|| corrupt("kind", kind.clone()))?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| corrupt("severity", severity.clone()))?,
        credit_code: r.text(5)?,
        gateway: r.text(6)?,
        device: r.opt_text(7)?,
        point: r.opt_text(8)?,
        state: EventState::parse(&state).ok_or_else(|| corrupt("state", state.clone()))?,
        raised_at: r.int(10)?,
        value: value(11)?,
        recorded_at: r.int(12)?,
        acknowledged_at: r.opt_int(13)?,
        acknowledged_by: r.opt_text(14)?,
        cleared_at: r.opt_int(15)?,
        cleared_value: value(16)?,
    })
}

/// The columns [`alarm_channel`] reads, in its order.
pub(crate) const ALARM_CHANNEL_COLUMNS: &str =
    "id, credit_code, name, kind, url, secret, created_at";

/// A row of [`ALARM_CHANNEL_COLUMNS`].
pub(crate) fn alarm_channel(r: &impl Columns) -> Result<ChannelRow, StoreError> {
    Ok(ChannelRow {
        id: r.int(0)?,
        credit_code: r.text(1)?,
        name: r.text(2)?,
        kind: r.text(3)?,
        url: r.text(4)?,
        secret: r.opt_text(5)?,
        created_at: r.int(6)?,
    })
}

/// A value as the alarm tables keep it (JSON text).
pub(crate) fn value_text(value: Option<&Value>) -> Option<String> {
    value.and_then(|v| serde_json::to_string(v).ok())
}
