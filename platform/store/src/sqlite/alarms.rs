//! Alarms on SQLite: the statements (the decisions are [`crate::alarms`]'). SQLite's one
//! writer serializes the ingest, the timers and the claims, so the row locks of
//! PostgreSQL have no counterpart here.

use super::{SqliteStore, all, first, write_tx};
use crate::StoreError;
use crate::alarms::{
    self, AlarmEvent, AlarmRule, AlarmTx, ChannelRow, ClaimedNotification, NewChannel, NewRule,
    RuleState, TickOutcome, Transition,
};
use crate::ready::run_ready;
use crate::rows::{self, ALARM_CHANNEL_COLUMNS, ALARM_EVENT_COLUMNS, ALARM_RULE_COLUMNS};
use fieldlink_wire::Value;
use rusqlite::{OptionalExtension, Transaction, params, params_from_iter};
use std::collections::HashMap;

/// The alarm statements inside a write transaction.
pub(crate) struct SqliteAlarms<'t>(pub &'t Transaction<'t>);

impl AlarmTx for SqliteAlarms<'_> {
    async fn lock_rules(
        &mut self,
        gateways: &[&str],
        points_only: bool,
    ) -> Result<Vec<(AlarmRule, RuleState)>, StoreError> {
        if gateways.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; gateways.len()].join(", ");
        let kinds = if points_only {
            " AND kind IN ('high', 'low', 'equals', 'stale')"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {ALARM_RULE_COLUMNS} FROM alarm_rules
             WHERE enabled = 1 AND gateway_id IN ({marks}){kinds} ORDER BY id"
        );
        all(
            &mut self.0.prepare_cached(&sql)?,
            params_from_iter(gateways),
            |r| rows::alarm_rule(r),
        )
    }

    async fn save_states(&mut self, states: &[(i64, RuleState)]) -> Result<(), StoreError> {
        let mut stmt = self.0.prepare_cached(
            "UPDATE alarm_rules SET pending_since = ?2, last_ts = ?3, active_event = ?4,
             raise_notified = ?5 WHERE id = ?1",
        )?;
        for (rule, state) in states {
            stmt.execute(params![
                rule,
                state.pending_since,
                state.last_ts,
                state.active_event,
                state.raise_notified
            ])?;
        }
        Ok(())
    }

    async fn insert_event(
        &mut self,
        rule: &AlarmRule,
        at: i64,
        value: Option<&Value>,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO alarm_events (rule_id, credit_code, state, raised_at, raised_value, recorded_at)
                 VALUES (?1, ?2, 'active', ?3, ?4, ?5)",
            )?
            .execute(params![rule.id, rule.credit_code, at, rows::value_text(value), now])?;
        Ok(self.0.last_insert_rowid())
    }

    async fn clear_event(
        &mut self,
        event: i64,
        at: i64,
        value: Option<&Value>,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE alarm_events SET state = 'cleared', cleared_at = ?2, cleared_value = ?3
                 WHERE id = ?1 AND state != 'cleared'",
            )?
            .execute(params![event, at, rows::value_text(value)])?;
        Ok(())
    }

    async fn enqueue(
        &mut self,
        event: i64,
        transition: Transition,
        channels: &[i64],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut stmt = self.0.prepare_cached(
            "INSERT OR IGNORE INTO alarm_notifications (event_id, transition, channel_id, created_at, due_at)
             SELECT ?1, ?2, id, ?3, ?3 FROM alarm_channels WHERE id = ?4",
        )?;
        for channel in channels {
            stmt.execute(params![event, transition.as_str(), now, channel])?;
        }
        Ok(())
    }
}

/// The rule's columns to write, in `NewRule` order.
fn channels_json(rule: &NewRule) -> String {
    serde_json::to_string(&rule.channels).unwrap_or_else(|_| "[]".to_owned())
}

impl SqliteStore {
    pub(crate) async fn create_channel(&self, c: NewChannel, now: i64) -> Result<i64, StoreError> {
        self.write(move |w| {
            w.conn.execute(
                "INSERT INTO alarm_channels (credit_code, name, kind, url, secret, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![c.credit_code, c.name, c.kind, c.url, c.secret, now],
            )?;
            Ok(w.conn.last_insert_rowid())
        })
        .await
    }

    pub(crate) async fn channels(
        &self,
        credit_code: String,
    ) -> Result<Vec<ChannelRow>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ALARM_CHANNEL_COLUMNS} FROM alarm_channels WHERE credit_code = ?1 ORDER BY id"
            );
            all(&mut c.prepare_cached(&sql)?, [credit_code], |r| rows::alarm_channel(r))
        })
        .await
    }

    pub(crate) async fn channel(&self, id: i64) -> Result<Option<ChannelRow>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {ALARM_CHANNEL_COLUMNS} FROM alarm_channels WHERE id = ?1");
            first(&mut c.prepare_cached(&sql)?, [id], |r| {
                rows::alarm_channel(r)
            })
        })
        .await
    }

    pub(crate) async fn create_rule(&self, rule: NewRule, now: i64) -> Result<i64, StoreError> {
        self.write(move |w| {
            w.conn.execute(
                "INSERT INTO alarm_rules (credit_code, name, gateway_id, device, point, kind, threshold,
                 hysteresis, for_seconds, severity, channels, enabled, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?12)",
                params![
                    rule.credit_code,
                    rule.name,
                    rule.gateway_id,
                    rule.device,
                    rule.point,
                    rule.kind.as_str(),
                    rule.threshold,
                    rule.hysteresis,
                    rule.for_seconds,
                    rule.severity.as_str(),
                    channels_json(&rule),
                    now
                ],
            )?;
            Ok(w.conn.last_insert_rowid())
        })
        .await
    }

    pub(crate) async fn update_rule(
        &self,
        id: i64,
        rule: NewRule,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let active: Option<Option<i64>> = tx
                .query_row("SELECT active_event FROM alarm_rules WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let Some(active) = active else {
                return Ok(false);
            };
            if let Some(event) = active {
                tx.execute(
                    "UPDATE alarm_events SET state = 'cleared', cleared_at = ?2 WHERE id = ?1 AND state != 'cleared'",
                    params![event, now],
                )?;
            }
            tx.execute(
                "UPDATE alarm_rules SET name = ?2, gateway_id = ?3, device = ?4, point = ?5, kind = ?6,
                 threshold = ?7, hysteresis = ?8, for_seconds = ?9, severity = ?10, channels = ?11,
                 enabled = ?12, updated_at = ?13, pending_since = NULL, last_ts = NULL,
                 active_event = NULL, raise_notified = 0 WHERE id = ?1",
                params![
                    id,
                    rule.name,
                    rule.gateway_id,
                    rule.device,
                    rule.point,
                    rule.kind.as_str(),
                    rule.threshold,
                    rule.hysteresis,
                    rule.for_seconds,
                    rule.severity.as_str(),
                    channels_json(&rule),
                    enabled,
                    now
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn rules(&self, credit_code: String) -> Result<Vec<AlarmRule>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ALARM_RULE_COLUMNS} FROM alarm_rules WHERE credit_code = ?1 ORDER BY id"
            );
            all(&mut c.prepare_cached(&sql)?, [credit_code], |r| {
                rows::alarm_rule(r).map(|(rule, _)| rule)
            })
        })
        .await
    }

    pub(crate) async fn rule(&self, id: i64) -> Result<Option<AlarmRule>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {ALARM_RULE_COLUMNS} FROM alarm_rules WHERE id = ?1");
            first(&mut c.prepare_cached(&sql)?, [id], |r| {
                rows::alarm_rule(r).map(|(rule, _)| rule)
            })
        })
        .await
    }

    pub(crate) async fn alarm_events(
        &self,
        credit_code: Option<String>,
        id: Option<i64>,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<AlarmEvent>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ALARM_EVENT_COLUMNS} FROM alarm_events e JOIN alarm_rules r ON r.id = e.rule_id
                 WHERE (?1 IS NULL OR e.credit_code = ?1) AND (?2 IS NULL OR e.id = ?2)
                   AND (NOT ?3 OR e.state != 'cleared')
                 ORDER BY e.id DESC LIMIT ?4"
            );
            all(
                &mut c.prepare_cached(&sql)?,
                params![credit_code, id, open_only, limit],
                |r| rows::alarm_event(r),
            )
        })
        .await
    }

    pub(crate) async fn acknowledge(
        &self,
        id: i64,
        by: String,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |w| {
            Ok(w.conn.execute(
                "UPDATE alarm_events SET state = 'acknowledged', acknowledged_at = ?2, acknowledged_by = ?3
                 WHERE id = ?1 AND state = 'active'",
                params![id, now, by],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn open_alarm_counts(
        &self,
    ) -> Result<HashMap<String, (u64, u64)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT credit_code, SUM(state = 'active'), SUM(state = 'acknowledged')
                 FROM alarm_events WHERE state != 'cleared' GROUP BY credit_code",
            )?;
            let counts = all(&mut stmt, [], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64),
                ))
            })?;
            Ok(counts.into_iter().collect())
        })
        .await
    }

    pub(crate) async fn claim_notifications(
        &self,
        instance: String,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let claimed: Vec<(i64, i64, String, i64, i64)> = all(
                &mut tx.prepare_cached(
                    "SELECT id, event_id, transition, channel_id, attempts FROM alarm_notifications
                     WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= ?1
                       AND (claimed_until IS NULL OR claimed_until < ?1)
                     ORDER BY id LIMIT ?2",
                )?,
                params![now, limit],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let mut claim = tx.prepare_cached(
                "UPDATE alarm_notifications SET claimed_by = ?2, claimed_until = ?3 WHERE id = ?1",
            )?;
            let event_sql = format!(
                "SELECT {ALARM_EVENT_COLUMNS} FROM alarm_events e JOIN alarm_rules r ON r.id = e.rule_id WHERE e.id = ?1"
            );
            let channel_sql = format!("SELECT {ALARM_CHANNEL_COLUMNS} FROM alarm_channels WHERE id = ?1");
            let mut out = Vec::with_capacity(claimed.len());
            for (id, event, transition, channel, attempts) in claimed {
                claim.execute(params![id, instance, now + lease_ms])?;
                let event = first(&mut tx.prepare_cached(&event_sql)?, [event], |r| rows::alarm_event(r))?;
                let channel = first(&mut tx.prepare_cached(&channel_sql)?, [channel], |r| {
                    rows::alarm_channel(r)
                })?;
                let transition = Transition::parse(&transition)
                    .ok_or_else(|| StoreError::Corrupt(format!("notification transition {transition:?}")))?;
                if let (Some(event), Some(channel)) = (event, channel) {
                    out.push(ClaimedNotification { id, event, transition, channel, attempts });
                }
            }
            drop(claim);
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    pub(crate) async fn settle_notification(
        &self,
        id: i64,
        instance: String,
        now: i64,
        outcome: Result<(), (Option<i64>, String)>,
    ) -> Result<(), StoreError> {
        self.write(move |w| {
            match outcome {
                Ok(()) => w.conn.execute(
                    "UPDATE alarm_notifications SET delivered_at = ?3, attempts = attempts + 1,
                     claimed_by = NULL, claimed_until = NULL WHERE id = ?1 AND claimed_by = ?2",
                    params![id, instance, now],
                )?,
                Err((Some(retry_at), error)) => w.conn.execute(
                    "UPDATE alarm_notifications SET due_at = ?3, attempts = attempts + 1, last_error = ?4,
                     claimed_by = NULL, claimed_until = NULL WHERE id = ?1 AND claimed_by = ?2",
                    params![id, instance, retry_at, error],
                )?,
                Err((None, error)) => w.conn.execute(
                    "UPDATE alarm_notifications SET failed_at = ?3, attempts = attempts + 1, last_error = ?4,
                     claimed_by = NULL, claimed_until = NULL WHERE id = ?1 AND claimed_by = ?2",
                    params![id, instance, now, error],
                )?,
            };
            Ok(())
        })
        .await
    }

    pub(crate) async fn pending_notifications(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM alarm_notifications WHERE delivered_at IS NULL AND failed_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
        .await
    }

    pub(crate) async fn alarm_tick(
        &self,
        instance: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<TickOutcome, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let leader = tx.execute(
                "INSERT INTO alarm_leader (id, holder, until) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE alarm_leader.holder = excluded.holder OR alarm_leader.until < ?3",
                params![instance, now + lease_ms, now],
            )? > 0;
            let mut outcome = TickOutcome {
                leader,
                ..TickOutcome::default()
            };
            if leader {
                let gateways = all(
                    &mut tx.prepare_cached(
                        "SELECT g.id, g.status, g.status_at, g.last_batch_at FROM gateways g
                         WHERE g.id IN (SELECT gateway_id FROM alarm_rules WHERE enabled = 1
                           AND (kind IN ('stale', 'gateway_offline', 'device_down')
                                OR (pending_since IS NOT NULL AND active_event IS NULL)))
                         ORDER BY g.id",
                    )?,
                    [],
                    |r| {
                        let status: Option<String> = r.get(1)?;
                        let facts = alarms::facts(status.as_deref(), r.get(2)?, r.get(3)?);
                        Ok((r.get::<_, String>(0)?, facts))
                    },
                )?;
                let mut statements = SqliteAlarms(&tx);
                for (gateway, facts) in gateways {
                    let done = run_ready(alarms::evaluate_tick(
                        &mut statements,
                        &gateway,
                        Some(&facts),
                        now,
                    ))?;
                    outcome.raised += done.raised;
                    outcome.cleared += done.cleared;
                }
            }
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }
}
