//! Alarms on PostgreSQL: the statements (the decisions are [`crate::alarms`]'). Several
//! instances agree on each transition because every evaluation locks its gateway's row,
//! then its rules' rows (`FOR UPDATE`, in id order), in the same order as the ingest; due
//! notifications are claimed with `FOR UPDATE SKIP LOCKED`, so one instance sends each.

use super::PostgresStore;
use crate::StoreError;
use crate::alarms::{
    self, AlarmEvent, AlarmRule, AlarmTx, ChannelRow, ClaimedNotification, NewChannel, NewRule,
    RuleState, TickOutcome, Transition,
};
use crate::rows::{self, ALARM_CHANNEL_COLUMNS, ALARM_EVENT_COLUMNS, ALARM_RULE_COLUMNS};
use fieldlink_wire::Value;
use std::collections::HashMap;

/// The alarm statements inside a transaction.
pub(crate) struct PostgresAlarms<'t, 'c>(pub &'t deadpool_postgres::Transaction<'c>);

impl AlarmTx for PostgresAlarms<'_, '_> {
    async fn lock_rules(
        &mut self,
        gateways: &[&str],
        points_only: bool,
    ) -> Result<Vec<(AlarmRule, RuleState)>, StoreError> {
        if gateways.is_empty() {
            return Ok(Vec::new());
        }
        let kinds = if points_only {
            " AND kind IN ('high', 'low', 'equals', 'stale')"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {ALARM_RULE_COLUMNS} FROM alarm_rules
             WHERE enabled AND gateway_id = ANY($1){kinds} ORDER BY id FOR UPDATE"
        );
        self.0
            .query(&sql, &[&gateways])
            .await?
            .iter()
            .map(rows::alarm_rule)
            .collect()
    }

    async fn save_states(&mut self, states: &[(i64, RuleState)]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = states.iter().map(|(id, _)| *id).collect();
        let pending: Vec<Option<i64>> = states.iter().map(|(_, s)| s.pending_since).collect();
        let last: Vec<Option<i64>> = states.iter().map(|(_, s)| s.last_ts).collect();
        let active: Vec<Option<i64>> = states.iter().map(|(_, s)| s.active_event).collect();
        let notified: Vec<bool> = states.iter().map(|(_, s)| s.raise_notified).collect();
        self.0
            .execute(
                "UPDATE alarm_rules r SET pending_since = u.pending_since, last_ts = u.last_ts,
                 active_event = u.active_event, raise_notified = u.raise_notified
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BOOLEAN[])
                   AS u (id, pending_since, last_ts, active_event, raise_notified)
                 WHERE r.id = u.id",
                &[&ids, &pending, &last, &active, &notified],
            )
            .await?;
        Ok(())
    }

    async fn insert_event(
        &mut self,
        rule: &AlarmRule,
        at: i64,
        value: Option<&Value>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let row = self
            .0
            .query_one(
                "INSERT INTO alarm_events (rule_id, credit_code, state, raised_at, raised_value, recorded_at)
                 VALUES ($1, $2, 'active', $3, $4, $5) RETURNING id",
                &[&rule.id, &rule.credit_code, &at, &rows::value_text(value), &now],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn clear_event(
        &mut self,
        event: i64,
        at: i64,
        value: Option<&Value>,
    ) -> Result<(), StoreError> {
        self.0
            .execute(
                "UPDATE alarm_events SET state = 'cleared', cleared_at = $2, cleared_value = $3
                 WHERE id = $1 AND state != 'cleared'",
                &[&event, &at, &rows::value_text(value)],
            )
            .await?;
        Ok(())
    }

    async fn enqueue(
        &mut self,
        event: i64,
        transition: Transition,
        channels: &[i64],
        now: i64,
    ) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO alarm_notifications (event_id, transition, channel_id, created_at, due_at)
                 SELECT $1, $2, id, $3, $3 FROM alarm_channels WHERE id = ANY($4)
                 ON CONFLICT DO NOTHING",
                &[&event, &transition.as_str(), &now, &channels],
            )
            .await?;
        Ok(())
    }
}

fn channels_json(rule: &NewRule) -> String {
    serde_json::to_string(&rule.channels).unwrap_or_else(|_| "[]".to_owned())
}

impl PostgresStore {
    pub(crate) async fn create_channel(&self, c: NewChannel, now: i64) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO alarm_channels (credit_code, name, kind, url, secret, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&c.credit_code, &c.name, &c.kind, &c.url, &c.secret, &now],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    pub(crate) async fn channels(
        &self,
        credit_code: String,
    ) -> Result<Vec<ChannelRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ALARM_CHANNEL_COLUMNS} FROM alarm_channels WHERE credit_code = $1 ORDER BY id"
        );
        client
            .query(&sql, &[&credit_code])
            .await?
            .iter()
            .map(rows::alarm_channel)
            .collect()
    }

    pub(crate) async fn channel(&self, id: i64) -> Result<Option<ChannelRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ALARM_CHANNEL_COLUMNS} FROM alarm_channels WHERE id = $1");
        client
            .query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(rows::alarm_channel)
            .transpose()
    }

    pub(crate) async fn create_rule(&self, rule: NewRule, now: i64) -> Result<i64, StoreError> {
        let rule = &rule;
        self.retrying("create an alarm rule", |mut client| async move {
            let tx = client.transaction().await?;
            // The gateway's row first, in the ingest's lock order: the insert's foreign-key
            // checks lock the enterprise's and the gateway's rows, and taking the
            // enterprise's first would deadlock with an ingest holding the gateway's.
            tx.query_opt("SELECT 1 FROM gateways WHERE id = $1 FOR UPDATE", &[&rule.gateway_id])
                .await?;
            let row = tx
                .query_one(
                    "INSERT INTO alarm_rules (credit_code, name, gateway_id, device, point, kind, threshold,
                     hysteresis, for_seconds, severity, channels, enabled, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, $12, $12) RETURNING id",
                    &[
                        &rule.credit_code,
                        &rule.name,
                        &rule.gateway_id,
                        &rule.device,
                        &rule.point,
                        &rule.kind.as_str(),
                        &rule.threshold,
                        &rule.hysteresis,
                        &rule.for_seconds,
                        &rule.severity.as_str(),
                        &channels_json(rule),
                        &now,
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok(row.try_get(0)?)
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
        let rule = &rule;
        self.retrying("update an alarm rule", |mut client| async move {
            let tx = client.transaction().await?;
            // The gateway's row first, then the rule's: the ingest's order.
            tx.query_opt(
                "SELECT 1 FROM gateways WHERE id = (SELECT gateway_id FROM alarm_rules WHERE id = $1) FOR UPDATE",
                &[&id],
            )
            .await?;
            let Some(row) = tx
                .query_opt("SELECT active_event FROM alarm_rules WHERE id = $1 FOR UPDATE", &[&id])
                .await?
            else {
                return Ok(false);
            };
            let active: Option<i64> = row.try_get(0)?;
            if let Some(event) = active {
                tx.execute(
                    "UPDATE alarm_events SET state = 'cleared', cleared_at = $2 WHERE id = $1 AND state != 'cleared'",
                    &[&event, &now],
                )
                .await?;
            }
            tx.execute(
                "UPDATE alarm_rules SET name = $2, gateway_id = $3, device = $4, point = $5, kind = $6,
                 threshold = $7, hysteresis = $8, for_seconds = $9, severity = $10, channels = $11,
                 enabled = $12, updated_at = $13, pending_since = NULL, last_ts = NULL,
                 active_event = NULL, raise_notified = FALSE WHERE id = $1",
                &[
                    &id,
                    &rule.name,
                    &rule.gateway_id,
                    &rule.device,
                    &rule.point,
                    &rule.kind.as_str(),
                    &rule.threshold,
                    &rule.hysteresis,
                    &rule.for_seconds,
                    &rule.severity.as_str(),
                    &channels_json(rule),
                    &enabled,
                    &now,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn rules(&self, credit_code: String) -> Result<Vec<AlarmRule>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ALARM_RULE_COLUMNS} FROM alarm_rules WHERE credit_code = $1 ORDER BY id"
        );
        client
            .query(&sql, &[&credit_code])
            .await?
            .iter()
            .map(|r| rows::alarm_rule(r).map(|(rule, _)| rule))
            .collect()
    }

    pub(crate) async fn rule(&self, id: i64) -> Result<Option<AlarmRule>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ALARM_RULE_COLUMNS} FROM alarm_rules WHERE id = $1");
        client
            .query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(|r| rows::alarm_rule(r).map(|(rule, _)| rule))
            .transpose()
    }

    pub(crate) async fn alarm_events(
        &self,
        credit_code: Option<String>,
        id: Option<i64>,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<AlarmEvent>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ALARM_EVENT_COLUMNS} FROM alarm_events e JOIN alarm_rules r ON r.id = e.rule_id
             WHERE ($1::TEXT IS NULL OR e.credit_code = $1) AND ($2::BIGINT IS NULL OR e.id = $2)
               AND (NOT $3 OR e.state != 'cleared')
             ORDER BY e.id DESC LIMIT $4"
        );
        client
            .query(&sql, &[&credit_code, &id, &open_only, &i64::from(limit)])
            .await?
            .iter()
            .map(rows::alarm_event)
            .collect()
    }

    pub(crate) async fn acknowledge(
        &self,
        id: i64,
        by: String,
        now: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE alarm_events SET state = 'acknowledged', acknowledged_at = $2, acknowledged_by = $3
                 WHERE id = $1 AND state = 'active'",
                &[&id, &now, &by],
            )
            .await?
            > 0)
    }

    pub(crate) async fn open_alarm_counts(
        &self,
    ) -> Result<HashMap<String, (u64, u64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT credit_code, COUNT(*) FILTER (WHERE state = 'active'),
                 COUNT(*) FILTER (WHERE state = 'acknowledged')
                 FROM alarm_events WHERE state != 'cleared' GROUP BY credit_code",
                &[],
            )
            .await?;
        let mut counts = HashMap::new();
        for row in rows {
            let active: i64 = row.try_get(1)?;
            let acknowledged: i64 = row.try_get(2)?;
            counts.insert(row.try_get(0)?, (active as u64, acknowledged as u64));
        }
        Ok(counts)
    }

    pub(crate) async fn claim_notifications(
        &self,
        instance: String,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        let client = self.client().await?;
        let claimed = client
            .query(
                "UPDATE alarm_notifications SET claimed_by = $2, claimed_until = $3
                 WHERE id IN (SELECT id FROM alarm_notifications
                              WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= $1
                                AND (claimed_until IS NULL OR claimed_until < $1)
                              ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING id, event_id, transition, channel_id, attempts",
                &[&now, &instance, &(now + lease_ms), &i64::from(limit)],
            )
            .await?;
        let event_sql = format!(
            "SELECT {ALARM_EVENT_COLUMNS} FROM alarm_events e JOIN alarm_rules r ON r.id = e.rule_id WHERE e.id = $1"
        );
        let channel_sql =
            format!("SELECT {ALARM_CHANNEL_COLUMNS} FROM alarm_channels WHERE id = $1");
        let mut out = Vec::with_capacity(claimed.len());
        for row in claimed {
            let (id, event, transition, channel, attempts): (i64, i64, String, i64, i64) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            let transition = Transition::parse(&transition).ok_or_else(|| {
                StoreError::Corrupt(format!("notification transition {transition:?}"))
            })?;
            let event = client.query_opt(&event_sql, &[&event]).await?;
            let channel = client.query_opt(&channel_sql, &[&channel]).await?;
            if let (Some(event), Some(channel)) = (event, channel) {
                out.push(ClaimedNotification {
                    id,
                    event: rows::alarm_event(&event)?,
                    transition,
                    channel: rows::alarm_channel(&channel)?,
                    attempts,
                });
            }
        }
        out.sort_by_key(|n| n.id);
        Ok(out)
    }

    pub(crate) async fn settle_notification(
        &self,
        id: i64,
        instance: String,
        now: i64,
        outcome: Result<(), (Option<i64>, String)>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        match outcome {
            Ok(()) => {
                client
                    .execute(
                        "UPDATE alarm_notifications SET delivered_at = $3, attempts = attempts + 1,
                         claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $2",
                        &[&id, &instance, &now],
                    )
                    .await?
            }
            Err((Some(retry_at), error)) => {
                client
                    .execute(
                        "UPDATE alarm_notifications SET due_at = $3, attempts = attempts + 1, last_error = $4,
                         claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $2",
                        &[&id, &instance, &retry_at, &error],
                    )
                    .await?
            }
            Err((None, error)) => {
                client
                    .execute(
                        "UPDATE alarm_notifications SET failed_at = $3, attempts = attempts + 1, last_error = $4,
                         claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $2",
                        &[&id, &instance, &now, &error],
                    )
                    .await?
            }
        };
        Ok(())
    }

    pub(crate) async fn pending_notifications(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM alarm_notifications WHERE delivered_at IS NULL AND failed_at IS NULL",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    pub(crate) async fn alarm_tick(
        &self,
        instance: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<TickOutcome, StoreError> {
        let client = self.client().await?;
        let leader = client
            .execute(
                "INSERT INTO alarm_leader (id, holder, until) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                 WHERE alarm_leader.holder = EXCLUDED.holder OR alarm_leader.until < $3",
                &[&instance, &(now + lease_ms), &now],
            )
            .await?
            > 0;
        let mut outcome = TickOutcome {
            leader,
            ..TickOutcome::default()
        };
        if !leader {
            return Ok(outcome);
        }
        let gateways: Vec<String> = client
            .query(
                "SELECT DISTINCT gateway_id FROM alarm_rules WHERE enabled
                   AND (kind IN ('stale', 'gateway_offline', 'device_down')
                        OR (pending_since IS NOT NULL AND active_event IS NULL))
                 ORDER BY gateway_id",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        drop(client);
        for gateway in &gateways {
            let done = self
                .retrying("evaluate alarm timers", |mut client| async move {
                    let tx = client.transaction().await?;
                    let Some(row) = tx
                        .query_opt(
                            "SELECT status, status_at, last_batch_at FROM gateways WHERE id = $1 FOR UPDATE",
                            &[gateway],
                        )
                        .await?
                    else {
                        return Ok(Default::default());
                    };
                    let status: Option<String> = row.try_get(0)?;
                    let facts = alarms::facts(status.as_deref(), row.try_get(1)?, row.try_get(2)?);
                    let done = alarms::evaluate_tick(&mut PostgresAlarms(&tx), gateway, Some(&facts), now).await?;
                    tx.commit().await?;
                    Ok(done)
                })
                .await?;
            outcome.raised += done.raised;
            outcome.cleared += done.cleared;
        }
        Ok(outcome)
    }
}
