//! The retained `status`, `meta` and `ack` payloads.

use serde::{Deserialize, Serialize};

/// Whether a gateway is connected; the broker publishes `offline` as the will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayState {
    /// The agent is connected and publishing.
    Online,
    /// The agent stopped or lost its connection.
    Offline,
}

/// The payload of `fieldlink/v1/{gateway}/status`. The will is `{"state":"offline"}`
/// alone, so every field but `state` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Online or offline.
    pub state: GatewayState,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the agent started, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Batches waiting in the outbox when this status was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_batches: Option<u64>,
    /// Batches evicted from the outbox since its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_batches: Option<u64>,
    /// Of `backlog_batches`, those the broker took that await the platform's ack (always 0
    /// with `delete_on = "puback"`; absent from the will and from agents older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_ack_batches: Option<u64>,
    /// How long the batch awaiting the platform's ack the longest has waited since the
    /// broker took it, in whole seconds; absent while none awaits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_awaiting_ack_age_s: Option<u64>,
    /// Set in the statuses of a run that began after an unclean stop (kill -9, power cut):
    /// the sequence numbers the crash skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_after_crash: Option<ResumedAfterCrash>,
    /// The configuration from the platform that the gateway runs (absent in the will and
    /// from agents older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigState>,
    /// Every configured device's health, in configuration order (empty in the will and
    /// from agents older than this field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceHealth>,
}

/// One device's health as its collector counts it, in the gateway's `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    /// The device's name, as in `meta`.
    pub name: String,
    /// Its protocol, as configured (`modbus-tcp`, `simulator`, ...).
    pub protocol: String,
    /// True while the transport to the device is up.
    pub connected: bool,
    /// When a read last succeeded, ms since the Unix epoch; `null` before the first.
    pub last_good_ms: Option<i64>,
    /// Failed reads and failed or lost connections since its collector started.
    pub errors: u64,
    /// Why the device does not answer, while it does not (at most
    /// [`DeviceHealth::LAST_ERROR_MAX_CHARS`] characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl DeviceHealth {
    /// The longest `last_error`, in characters: it keeps the status of a gateway with
    /// hundreds of failing devices within a few hundred KB.
    pub const LAST_ERROR_MAX_CHARS: usize = 200;

    /// `error` cut to at most [`Self::LAST_ERROR_MAX_CHARS`] characters.
    pub fn bounded_error(error: &str) -> &str {
        match error.char_indices().nth(Self::LAST_ERROR_MAX_CHARS) {
            Some((end, _)) => &error[..end],
            None => error,
        }
    }
}

/// Which configuration from the platform (`fieldlink/v1/{gateway}/config`) the gateway
/// runs. Both fields are `null` while it has applied none and runs its local file alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    /// The version applied.
    pub version: Option<u64>,
    /// When it was applied, ms since the Unix epoch.
    pub applied_at: Option<i64>,
    /// Why the last configuration received was refused (the running one stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The sequence numbers an unclean stop skipped: every `seq` in `durable_seq..resumed_seq`
/// was reserved by the run that crashed and may or may not have been published, so a
/// receiver treats the ones it never gets as a crash window, not as missing batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumedAfterCrash {
    /// The first `seq` that the crashed run had not made durable.
    pub durable_seq: u64,
    /// The first `seq` of the run after the crash.
    pub resumed_seq: u64,
}

impl ResumedAfterCrash {
    /// The skipped numbers as an inclusive range, or `None` when the crash skipped none.
    pub fn window(&self) -> Option<(u64, u64)> {
        (self.resumed_seq > self.durable_seq).then(|| (self.durable_seq, self.resumed_seq - 1))
    }
}

impl Status {
    /// The last-will payload: `{"state":"offline"}`.
    pub fn offline() -> Self {
        Status {
            state: GatewayState::Offline,
            version: None,
            started_at: None,
            backlog_batches: None,
            evicted_batches: None,
            awaiting_ack_batches: None,
            oldest_awaiting_ack_age_s: None,
            resumed_after_crash: None,
            config: None,
            devices: Vec::new(),
        }
    }
}

/// The payload of `fieldlink/v1/{gateway}/meta`: the device and point catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The gateway's devices, in configuration order.
    pub devices: Vec<DeviceMeta>,
}

/// One device of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMeta {
    /// The device's name.
    pub name: String,
    /// Its protocol, as configured (`modbus-tcp`, `simulator`, ...).
    pub protocol: String,
    /// Its points, in configuration order.
    pub points: Vec<PointMeta>,
}

/// One point of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointMeta {
    /// The point's name.
    pub name: String,
    /// Its data type as configured (`f32`, `bool`, ...).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Its engineering unit, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// What the point means to the platform's monitoring, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<PointRole>,
}

/// What a point means to the platform's industry monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointRole {
    /// True while the machine runs (a bool).
    Running,
    /// An active-energy counter in kWh (a number that only grows, but for resets).
    EnergyKwh,
    /// A production counter (a number that only grows, but for resets).
    OutputCount,
    /// True while the machine is in fault (a bool).
    Fault,
}

impl PointRole {
    /// Every role's configuration name, for messages.
    pub const NAMES: &'static str = "running, energy_kwh, output_count, fault";

    /// Its configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            PointRole::Running => "running",
            PointRole::EnergyKwh => "energy_kwh",
            PointRole::OutputCount => "output_count",
            PointRole::Fault => "fault",
        }
    }

    /// True if the point must be a bool; otherwise it must be a number.
    pub fn is_bool(self) -> bool {
        matches!(self, PointRole::Running | PointRole::Fault)
    }
}

impl std::str::FromStr for PointRole {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        [
            PointRole::Running,
            PointRole::EnergyKwh,
            PointRole::OutputCount,
            PointRole::Fault,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or(())
    }
}

/// The payload of `fieldlink/v1/{gateway}/ack`, retained, written by the platform after the
/// transaction that stored a gateway's batches commits: what of the gateway's numbering it
/// holds. A gateway deletes a batch from its outbox once an ack covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Every `seq` up to this one is stored, or was skipped by a crash (a crash window).
    pub stored_through: u64,
    /// Ranges `[first, last]` above `stored_through` known to be missing: numbered by the
    /// gateway, never stored (at most [`Ack::MAX_MISSING`], the oldest first).
    pub missing: Vec<(u64, u64)>,
    /// The highest `seq` stored. Every `seq` between `stored_through` and it that is not
    /// in `missing` is stored too (an addition to DESIGN.md's `ack`: without it a gateway
    /// could not tell a batch stored behind a gap it can no longer fill, say one its outbox
    /// evicted, from one not received yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_max: Option<u64>,
}

/// What an [`Ack`] says of one `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// Stored (or skipped by a crash): the batch may be deleted.
    Stored,
    /// Known to be missing: the batch should be sent again.
    Missing,
    /// Not known yet: sent after the ack was made, or the ack's list of missing ranges was
    /// cut short.
    Unknown,
}

impl Ack {
    /// The most missing ranges one ack lists.
    pub const MAX_MISSING: usize = 100;

    /// The ack of what a receiver holding `stored` (ascending, distinct) says: every `seq`
    /// through the first gap, the gaps above it, and the highest stored. For receivers that
    /// keep a gateway's numbers in memory; the platform derives the same from its database.
    pub fn of_stored(stored: impl IntoIterator<Item = u64>) -> Ack {
        let (mut through, mut previous, mut in_prefix) = (0, 0, true);
        let mut missing = Vec::new();
        for seq in stored {
            if in_prefix && seq == through + 1 {
                through = seq;
            } else {
                in_prefix = false;
                if seq > previous + 1 && missing.len() < Self::MAX_MISSING {
                    missing.push((previous + 1, seq - 1));
                }
            }
            previous = seq;
        }
        Ack {
            stored_through: through,
            missing,
            stored_max: (previous > 0).then_some(previous),
        }
    }

    /// What this ack says of `seq`.
    pub fn state(&self, seq: u64) -> AckState {
        if seq <= self.stored_through {
            AckState::Stored
        } else if self.missing.iter().any(|&(a, b)| (a..=b).contains(&seq)) {
            AckState::Missing
        } else if self.stored_max.is_some_and(|max| seq <= max) && !self.beyond_the_list(seq) {
            AckState::Stored
        } else {
            AckState::Unknown
        }
    }

    /// True if the list of missing ranges was cut short before `seq`: gaps past the last
    /// listed range are not listed, so nothing is known of `seq`.
    fn beyond_the_list(&self, seq: u64) -> bool {
        self.missing.len() >= Self::MAX_MISSING
            && self.missing.last().is_some_and(|&(_, last)| seq > last)
    }
}
