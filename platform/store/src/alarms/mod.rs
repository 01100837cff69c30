//! Alarms as stored (DESIGN.md, "Alarms"): an enterprise's channels and rules, each rule's
//! evaluation state (on its row), the events it raised, kept through `active →
//! acknowledged → cleared`, and the notifications to deliver, a persistent queue.
//!
//! Rules are evaluated once per stored sample, in the transaction that stores it, under
//! the gateway's row lock ([`evaluate_samples`], step 5 of [`crate::ingest`]): a duplicate
//! batch is not stored, so it never fires twice, and instances agree because they take
//! the same locks. The timers ([`Store::alarm_tick`]) run on the one instance that holds
//! the lease in `alarm_leader`, renewed every tick and taken over once it lapses; they take
//! the same locks. A transition enqueues one notification per channel (unique by event,
//! transition and channel); instances claim due notifications for a while, so one sends
//! each, and a claim that lapses (its instance died) is taken again.

pub mod engine;

use crate::{Store, StoreError, dispatch};
use engine::{GatewayFacts, LATE_NOTIFY_MS, Step};
use fieldlink_wire::{Sample, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A value above a threshold.
    High,
    /// A value below a threshold.
    Low,
    /// A value equal to a threshold (bools and states).
    Equals,
    /// A point without samples.
    Stale,
    /// A gateway offline or silent.
    GatewayOffline,
    /// A device disconnected.
    DeviceDown,
}

impl RuleKind {
    /// Every kind, for messages.
    pub const ALL: [RuleKind; 6] = [
        RuleKind::High,
        RuleKind::Low,
        RuleKind::Equals,
        RuleKind::Stale,
        RuleKind::GatewayOffline,
        RuleKind::DeviceDown,
    ];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::High => "high",
            RuleKind::Low => "low",
            RuleKind::Equals => "equals",
            RuleKind::Stale => "stale",
            RuleKind::GatewayOffline => "gateway_offline",
            RuleKind::DeviceDown => "device_down",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// True if samples drive it (it names a point); false for the clock's kinds.
    pub fn watches_point(self) -> bool {
        matches!(
            self,
            RuleKind::High | RuleKind::Low | RuleKind::Equals | RuleKind::Stale
        )
    }

    /// True if it compares values with a threshold.
    pub fn has_threshold(self) -> bool {
        matches!(self, RuleKind::High | RuleKind::Low | RuleKind::Equals)
    }

    /// True if it takes a hysteresis: how far back past the threshold a value clears.
    pub fn has_hysteresis(self) -> bool {
        matches!(self, RuleKind::High | RuleKind::Low)
    }
}

/// How serious an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// Every severity.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity named `name`.
    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A rule to save (validated above, against the gateway's catalogue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRule {
    /// Its enterprise.
    pub credit_code: String,
    /// Its name, in notifications.
    pub name: String,
    /// The gateway watched.
    pub gateway_id: String,
    /// The device watched (point kinds and `device_down`).
    pub device: Option<String>,
    /// The point watched (point kinds).
    pub point: Option<String>,
    /// What it watches.
    pub kind: RuleKind,
    /// The threshold (`high`, `low`, `equals`).
    pub threshold: Option<f64>,
    /// How far back past the threshold the value must go to clear (`high`, `low`).
    pub hysteresis: f64,
    /// How long the condition must hold before it raises.
    pub for_seconds: i64,
    /// How serious.
    pub severity: Severity,
    /// The channels notified, by id.
    pub channels: Vec<i64>,
}

/// A saved rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRule {
    /// Its id.
    pub id: i64,
    /// Its enterprise.
    pub credit_code: String,
    /// Its name.
    pub name: String,
    /// The gateway watched.
    pub gateway_id: String,
    /// The device watched.
    pub device: Option<String>,
    /// The point watched.
    pub point: Option<String>,
    /// What it watches.
    pub kind: RuleKind,
    /// The threshold.
    pub threshold: Option<f64>,
    /// The hysteresis.
    pub hysteresis: f64,
    /// How long the condition must hold.
    pub for_seconds: i64,
    /// How serious.
    pub severity: Severity,
    /// The channels notified.
    pub channels: Vec<i64>,
    /// False while disabled: not evaluated.
    pub enabled: bool,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
    /// When it was last changed.
    pub updated_at: i64,
}

impl AlarmRule {
    /// Its settings, to save them again unchanged (enabling or disabling it).
    pub fn settings(&self) -> NewRule {
        NewRule {
            credit_code: self.credit_code.clone(),
            name: self.name.clone(),
            gateway_id: self.gateway_id.clone(),
            device: self.device.clone(),
            point: self.point.clone(),
            kind: self.kind,
            threshold: self.threshold,
            hysteresis: self.hysteresis,
            for_seconds: self.for_seconds,
            severity: self.severity,
            channels: self.channels.clone(),
        }
    }
}

/// A rule's evaluation state, kept on its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleState {
    /// Since when (data time) the raising condition holds, while it waits `for_seconds`.
    pub pending_since: Option<i64>,
    /// The newest sample time evaluated.
    pub last_ts: Option<i64>,
    /// The event in force, if raised.
    pub active_event: Option<i64>,
    /// True if the event in force was notified.
    pub raise_notified: bool,
}

/// A channel to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    /// Its enterprise.
    pub credit_code: String,
    /// Its name.
    pub name: String,
    /// `webhook`, `wecom`, `dingtalk` or `feishu` (validated above).
    pub kind: String,
    /// Where to send.
    pub url: String,
    /// The robot's signing secret, if any.
    pub secret: Option<String>,
}

/// A saved channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRow {
    /// Its id.
    pub id: i64,
    /// Its enterprise.
    pub credit_code: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Where to send.
    pub url: String,
    /// The signing secret.
    #[serde(skip_serializing)]
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: i64,
}

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Raised, nobody acknowledged it yet.
    Active,
    /// Raised and acknowledged.
    Acknowledged,
    /// Over.
    Cleared,
}

impl EventState {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Active => "active",
            EventState::Acknowledged => "acknowledged",
            EventState::Cleared => "cleared",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<EventState> {
        [
            EventState::Active,
            EventState::Acknowledged,
            EventState::Cleared,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One alarm event, with its rule's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// Its id.
    pub id: i64,
    /// Its rule's id.
    pub rule_id: i64,
    /// Its rule's name.
    pub rule: String,
    /// Its rule's kind.
    pub kind: RuleKind,
    /// Its rule's severity.
    pub severity: Severity,
    /// Its enterprise.
    pub credit_code: String,
    /// The gateway.
    pub gateway: String,
    /// The device, if the rule names one.
    pub device: Option<String>,
    /// The point, if the rule names one.
    pub point: Option<String>,
    /// Where it stands.
    pub state: EventState,
    /// When it was raised, by the data's clock.
    pub raised_at: i64,
    /// The value that raised it.
    pub value: Option<Value>,
    /// When the platform recorded it.
    pub recorded_at: i64,
    /// When it was acknowledged.
    pub acknowledged_at: Option<i64>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When it cleared, by the data's clock.
    pub cleared_at: Option<i64>,
    /// The value that cleared it.
    pub cleared_value: Option<Value>,
}

/// A notification's transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The event was raised.
    Raised,
    /// The event cleared.
    Cleared,
}

impl Transition {
    /// Its name in the database and the payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raised => "raised",
            Transition::Cleared => "cleared",
        }
    }

    /// The transition named `name`.
    pub fn parse(name: &str) -> Option<Transition> {
        match name {
            "raised" => Some(Transition::Raised),
            "cleared" => Some(Transition::Cleared),
            _ => None,
        }
    }
}

/// A notification claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedNotification {
    /// Its id (a receiver may use it to drop a repeat).
    pub id: i64,
    /// What it is about.
    pub event: AlarmEvent,
    /// Which transition.
    pub transition: Transition,
    /// Where it goes.
    pub channel: ChannelRow,
    /// Attempts before this one.
    pub attempts: i64,
}

/// What a timer tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// True if this instance holds the timers' lease.
    pub leader: bool,
    /// Events raised.
    pub raised: u64,
    /// Events cleared.
    pub cleared: u64,
}

/// The statements of evaluating rules, inside a transaction that holds the locks of the
/// rules' gateways.
pub(crate) trait AlarmTx {
    /// The enabled rules of `gateways` (of the point kinds only if `points_only`) with
    /// their state, each rule's row locked, in id order.
    async fn lock_rules(
        &mut self,
        gateways: &[&str],
        points_only: bool,
    ) -> Result<Vec<(AlarmRule, RuleState)>, StoreError>;
    /// Saves rules' states (one statement on PostgreSQL, whatever their number).
    async fn save_states(&mut self, states: &[(i64, RuleState)]) -> Result<(), StoreError>;
    /// Records an event of `rule` raised at `at`; its id.
    async fn insert_event(
        &mut self,
        rule: &AlarmRule,
        at: i64,
        value: Option<&Value>,
        now: i64,
    ) -> Result<i64, StoreError>;
    /// Clears `event` at `at`.
    async fn clear_event(
        &mut self,
        event: i64,
        at: i64,
        value: Option<&Value>,
    ) -> Result<(), StoreError>;
    /// Enqueues `transition` of `event` for each of `channels`, due at `now` (once: a
    /// second enqueue of the same is ignored).
    async fn enqueue(
        &mut self,
        event: i64,
        transition: Transition,
        channels: &[i64],
        now: i64,
    ) -> Result<(), StoreError>;
}

/// What evaluating a group or a tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Transitions {
    /// Events raised.
    pub raised: u64,
    /// Events cleared.
    pub cleared: u64,
}

/// Applies `step` of `rule`: the event and its notifications (see the engine's note on
/// late data).
async fn apply<T: AlarmTx>(
    tx: &mut T,
    rule: &AlarmRule,
    state: &mut RuleState,
    step: Step,
    now: i64,
    done: &mut Transitions,
) -> Result<(), StoreError> {
    match step {
        Step::Raise { at, value } => {
            let event = tx.insert_event(rule, at, value.as_ref(), now).await?;
            let news = at >= now - LATE_NOTIFY_MS;
            if news {
                tx.enqueue(event, Transition::Raised, &rule.channels, now)
                    .await?;
            }
            state.active_event = Some(event);
            state.raise_notified = news;
            done.raised += 1;
        }
        Step::Clear { at, value } => {
            if let Some(event) = state.active_event.take() {
                tx.clear_event(event, at, value.as_ref()).await?;
                if state.raise_notified {
                    tx.enqueue(event, Transition::Cleared, &rule.channels, now)
                        .await?;
                }
                state.raise_notified = false;
                done.cleared += 1;
            }
        }
    }
    Ok(())
}

/// An alarm still active after a group, raised by data too old to be news when it
/// arrived: notified once now, as the problem it still is.
async fn notify_if_still_active<T: AlarmTx>(
    tx: &mut T,
    rule: &AlarmRule,
    state: &mut RuleState,
    now: i64,
) -> Result<(), StoreError> {
    if let (Some(event), false) = (state.active_event, state.raise_notified) {
        tx.enqueue(event, Transition::Raised, &rule.channels, now)
            .await?;
        state.raise_notified = true;
    }
    Ok(())
}

/// Evaluates the point rules of the group's gateways on the group's new samples (step 5
/// of storing a group, under the gateways' locks).
pub(crate) async fn evaluate_samples<T: AlarmTx>(
    tx: &mut T,
    samples: &[(&str, &Sample)],
    gateways: &[&str],
    now: i64,
) -> Result<Transitions, StoreError> {
    let mut done = Transitions::default();
    let rules = tx.lock_rules(gateways, true).await?;
    if rules.is_empty() {
        return Ok(done);
    }
    // The samples by point, once: rules look theirs up instead of scanning the group.
    let mut by_point: HashMap<(&str, &str, &str), Vec<&Sample>> = HashMap::new();
    for &(gateway, sample) in samples {
        by_point
            .entry((gateway, &*sample.device, &*sample.point))
            .or_default()
            .push(sample);
    }
    for list in by_point.values_mut() {
        list.sort_by_key(|s| s.ts);
    }
    let mut changed = Vec::new();
    for (rule, mut state) in rules {
        let (Some(device), Some(point)) = (rule.device.as_deref(), rule.point.as_deref()) else {
            continue;
        };
        let Some(mine) = by_point.get(&(rule.gateway_id.as_str(), device, point)) else {
            continue;
        };
        let before = state.clone();
        for sample in mine.iter() {
            if let Some(step) = engine::on_sample(&rule, &mut state, sample.ts, &sample.value) {
                apply(tx, &rule, &mut state, step, now, &mut done).await?;
            }
        }
        notify_if_still_active(tx, &rule, &mut state, now).await?;
        if state != before {
            changed.push((rule.id, state));
        }
    }
    tx.save_states(&changed).await?;
    Ok(done)
}

/// Evaluates every rule of `gateway` on the clock at `now` (under the gateway's lock).
pub(crate) async fn evaluate_tick<T: AlarmTx>(
    tx: &mut T,
    gateway: &str,
    facts: Option<&GatewayFacts>,
    now: i64,
) -> Result<Transitions, StoreError> {
    let mut done = Transitions::default();
    let mut changed = Vec::new();
    for (rule, mut state) in tx.lock_rules(&[gateway], false).await? {
        let before = state.clone();
        if let Some(step) = engine::on_tick(&rule, &mut state, now, facts) {
            apply(tx, &rule, &mut state, step, now, &mut done).await?;
            notify_if_still_active(tx, &rule, &mut state, now).await?;
        }
        if state != before {
            changed.push((rule.id, state));
        }
    }
    tx.save_states(&changed).await?;
    Ok(done)
}

impl Store {
    /// Saves a channel at `now`; its id.
    pub async fn create_channel(&self, channel: NewChannel, now: i64) -> Result<i64, StoreError> {
        dispatch!(self, s => s.create_channel(channel, now).await)
    }

    /// The channels of an enterprise.
    pub async fn channels(&self, credit_code: &str) -> Result<Vec<ChannelRow>, StoreError> {
        dispatch!(self, s => s.channels(credit_code.to_owned()).await)
    }

    /// One channel.
    pub async fn channel(&self, id: i64) -> Result<Option<ChannelRow>, StoreError> {
        dispatch!(self, s => s.channel(id).await)
    }

    /// Saves a rule at `now`; its id.
    pub async fn create_rule(&self, rule: NewRule, now: i64) -> Result<i64, StoreError> {
        dispatch!(self, s => s.create_rule(rule, now).await)
    }

    /// Replaces rule `id`'s settings (and enables or disables it) at `now`; its evaluation
    /// starts over, and an event in force clears. False if there is no such rule.
    pub async fn update_rule(
        &self,
        id: i64,
        rule: NewRule,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.update_rule(id, rule, enabled, now).await)
    }

    /// The rules of an enterprise.
    pub async fn rules(&self, credit_code: &str) -> Result<Vec<AlarmRule>, StoreError> {
        dispatch!(self, s => s.rules(credit_code.to_owned()).await)
    }

    /// One rule.
    pub async fn rule(&self, id: i64) -> Result<Option<AlarmRule>, StoreError> {
        dispatch!(self, s => s.rule(id).await)
    }

    /// An enterprise's events, newest first: those not cleared if `open_only`, at most
    /// `limit`.
    pub async fn alarm_events(
        &self,
        credit_code: &str,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<AlarmEvent>, StoreError> {
        dispatch!(self, s => s.alarm_events(Some(credit_code.to_owned()), None, open_only, limit).await)
    }

    /// One event.
    pub async fn alarm_event(&self, id: i64) -> Result<Option<AlarmEvent>, StoreError> {
        Ok(
            dispatch!(self, s => s.alarm_events(None, Some(id), false, 1).await)?
                .into_iter()
                .next(),
        )
    }

    /// Acknowledges an active event by `by` at `now`; false if it is not active.
    pub async fn acknowledge(&self, id: i64, by: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.acknowledge(id, by.to_owned(), now).await)
    }

    /// The events not cleared, per enterprise: `(active, acknowledged)`.
    pub async fn open_alarm_counts(&self) -> Result<HashMap<String, (u64, u64)>, StoreError> {
        dispatch!(self, s => s.open_alarm_counts().await)
    }

    /// Claims up to `limit` due notifications for `instance` until `now + lease_ms`.
    pub async fn claim_notifications(
        &self,
        instance: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        dispatch!(self, s => s.claim_notifications(instance.to_owned(), now, lease_ms, limit).await)
    }

    /// Settles a claimed notification: delivered (`Ok`), due again at `retry_at`, or
    /// failed for good (`retry_at` `None`) with the error. Only the claim's holder settles.
    pub async fn settle_notification(
        &self,
        id: i64,
        instance: &str,
        now: i64,
        outcome: Result<(), (Option<i64>, String)>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.settle_notification(id, instance.to_owned(), now, outcome).await)
    }

    /// The notifications not delivered nor failed (the queue's length).
    pub async fn pending_notifications(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.pending_notifications().await)
    }

    /// One tick of the alarm timers for `instance` at `now`: renews or takes the lease
    /// (`lease_ms` long) and, if held, evaluates the clock's rules and the pending ones.
    pub async fn alarm_tick(
        &self,
        instance: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<TickOutcome, StoreError> {
        dispatch!(self, s => s.alarm_tick(instance.to_owned(), now, lease_ms).await)
    }
}

/// The facts of a gateway's row for the timers: its status JSON and last batch.
pub(crate) fn facts(
    status: Option<&str>,
    status_at: Option<i64>,
    last_batch_at: Option<i64>,
) -> GatewayFacts {
    let status: Option<fieldlink_wire::Status> = status.and_then(|s| serde_json::from_str(s).ok());
    GatewayFacts {
        online: status
            .as_ref()
            .is_some_and(|s| s.state == fieldlink_wire::GatewayState::Online),
        status_at,
        last_batch_at,
        devices: status
            .map(|s| {
                s.devices
                    .into_iter()
                    .map(|d| (d.name, d.connected, d.last_good_ms))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
