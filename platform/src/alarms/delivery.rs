//! Delivery of alarm notifications from the persistent queue (`alarm_notifications`).
//!
//! Each instance runs a worker: every [`POLL`] it claims the due notifications (for
//! [`CLAIM`], so no other instance takes them meanwhile) and sends them, at most [`SENDS`]
//! at once, each bounded by the sender's timeout: a receiver that hangs holds one slot for
//! that long and never slows the ingest, which only writes the queue. A success is marked
//! delivered; a failure worth retrying is due again after a backoff that grows with the
//! attempts; a permanent one (the vendor refused the message) is marked failed with its
//! reason. A platform restart loses nothing: the queue is in the database, and a claim
//! whose instance died lapses and is taken again. Each notification carries its id
//! (`X-Fieldlink-Delivery`), so a receiver can drop the repeat that a crash between
//! sending and marking may cause.

use super::channel::{
    Channel, ChannelError, ChannelKind, Condition, Notification, Sender, backoff, message_zh,
};
use crate::clock::now_ms;
use crate::store::alarms::{AlarmRule, ChannelRow, ClaimedNotification, RuleKind, Transition};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the queue is looked at.
pub const POLL: Duration = Duration::from_millis(200);
/// How long a claim keeps other instances off a notification: above the sender's timeout.
pub const CLAIM: Duration = Duration::from_secs(60);
/// Sends in flight at once per instance.
pub const SENDS: usize = 16;

/// What a rule's kind and numbers say in a raise's message.
fn condition(rule: &AlarmRule) -> Condition {
    let threshold = rule.threshold.unwrap_or(0.0);
    let seconds = u64::try_from(rule.for_seconds).unwrap_or(0);
    match rule.kind {
        RuleKind::High => Condition::Above(threshold),
        RuleKind::Low => Condition::Below(threshold),
        RuleKind::Equals => Condition::Equals(threshold),
        RuleKind::Stale => Condition::Stale(seconds),
        RuleKind::GatewayOffline => Condition::GatewayOffline(seconds),
        RuleKind::DeviceDown => Condition::DeviceDown,
    }
}

/// A stored channel as the sender takes it.
pub fn channel_of(row: &ChannelRow) -> Result<Channel, ChannelError> {
    Ok(Channel {
        kind: ChannelKind::parse(&row.kind)?,
        url: row.url.clone(),
        secret: row.secret.clone(),
    })
}

/// The channel and the message of a claimed notification.
async fn prepare(
    store: &Store,
    claimed: &ClaimedNotification,
) -> Result<(Channel, Notification), String> {
    let channel = channel_of(&claimed.channel).map_err(|e| e.to_string())?;
    let event = &claimed.event;
    let rule = store
        .rule(event.rule_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("rule {} is gone", event.rule_id))?;
    let enterprise_name = store
        .enterprise(&event.credit_code)
        .await
        .map_err(|e| e.to_string())?
        .map(|e| e.name)
        .unwrap_or_default();
    let (value, ts) = match claimed.transition {
        Transition::Raised => (event.value.as_ref(), event.raised_at),
        Transition::Cleared => (
            event.cleared_value.as_ref(),
            event.cleared_at.unwrap_or(event.raised_at),
        ),
    };
    let mut notification = Notification {
        enterprise: event.credit_code.clone(),
        enterprise_name,
        rule: event.rule.clone(),
        severity: event.severity,
        state: claimed.transition,
        gateway: event.gateway.clone(),
        device: event.device.clone(),
        point: event.point.clone(),
        value: value.and_then(|v| serde_json::to_value(v).ok()),
        ts,
        message: String::new(),
        test: false,
        delivery: Some(claimed.id),
    };
    notification.message = message_zh(&notification, &condition(&rule));
    Ok((channel, notification))
}

/// Sends one claimed notification and settles it in the queue.
async fn deliver(
    store: Store,
    sender: Sender,
    instance: String,
    claimed: ClaimedNotification,
) -> Result<(), StoreError> {
    let outcome = match prepare(&store, &claimed).await {
        Ok((channel, notification)) => sender
            .send(&channel, &notification, now_ms())
            .await
            .map_err(|e| {
                let retry = e.is_retryable().then(|| {
                    let attempt = u32::try_from(claimed.attempts).unwrap_or(u32::MAX);
                    now_ms() + backoff(attempt).as_millis() as i64
                });
                (retry, e.to_string())
            }),
        Err(reason) => Err((None, reason)),
    };
    match &outcome {
        Ok(()) => tracing::debug!(notification = claimed.id, "alarm notification delivered"),
        Err((Some(_), e)) => {
            tracing::warn!(notification = claimed.id, channel = claimed.channel.id, error = %e, "alarm notification not delivered; retrying later")
        }
        Err((None, e)) => {
            tracing::error!(notification = claimed.id, channel = claimed.channel.id, error = %e, "alarm notification refused by its receiver; given up")
        }
    }
    store
        .settle_notification(claimed.id, &instance, now_ms(), outcome)
        .await
}

/// Delivers until `shutdown` fires, then lets the sends in flight finish (each bounded by
/// the sender's timeout). `stored` wakes it when the ingest has stored a group, which may
/// have enqueued notifications; it polls anyway every [`POLL`], for the timers' and the
/// other instances' notifications and the retries.
pub async fn run(
    store: Store,
    sender: Sender,
    instance: String,
    stored: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let claim_ms = CLAIM.as_millis() as i64;
    let mut sends = JoinSet::new();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stored.notified() => {}
            Some(done) = sends.join_next(), if !sends.is_empty() => {
                if let Ok(Err(e)) = done {
                    tracing::warn!(error = %e, "cannot settle an alarm notification; it is sent again once its claim lapses");
                }
                continue;
            }
            () = shutdown.cancelled() => break,
        }
        let free = SENDS.saturating_sub(sends.len());
        if free == 0 {
            continue;
        }
        match store
            .claim_notifications(&instance, now_ms(), claim_ms, free as u32)
            .await
        {
            Ok(claimed) => {
                for notification in claimed {
                    sends.spawn(deliver(
                        store.clone(),
                        sender.clone(),
                        instance.clone(),
                        notification,
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the alarm notification queue; retrying")
            }
        }
    }
    while sends.join_next().await.is_some() {}
}
