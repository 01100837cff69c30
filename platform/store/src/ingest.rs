//! Storing a group of batches: the decisions, made once for both backends. A backend runs
//! the statements of [`IngestTx`] inside one transaction; [`store_group`] decides, in this
//! order (PostgreSQL's lock order, which SQLite's single writer keeps trivially):
//!
//! 1. which gateways are enrolled (batches of others are dropped);
//! 2. which batches are new: the dedup rows `(gateway, seq)` are inserted in key order and
//!    the key says which were stored before (also earlier in the same group);
//! 3. the points' ids, then the new batches' samples (rows no other group writes);
//! 4. the group's gateways are locked in id order, and each new batch moves its gateway's
//!    highest `seq` in arrival order: a jump opens a gap (less the gateway's crash windows),
//!    a late batch splits the gap that holds it;
//! 5. per-minute aggregates and each point's newest sample, the machines' monitoring days
//!    ([`crate::monitoring::record`]), then the alarm rules of the group's gateways on its
//!    new samples ([`crate::alarms::evaluate_samples`]);
//! 6. the gateways' counters, then (in credit-code order) their enterprises' on-cloud times,
//!    active day and monitoring days.

use crate::alarms::{self, AlarmTx};
use crate::columns::{
    MINUTE_MS, MinuteAggregate, SeqStep, hull, numeric, seq_step, split_gap, subtract_ranges,
};
use crate::monitoring::{self, GroupGateway, MonitorTx};
use crate::{BatchOutcome, IncomingBatch, StoreError};
use fieldlink_platform_core::clock::day_of;
use fieldlink_wire::Sample;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A point by its gateway, device and name, as the group's batches hold them.
pub(crate) type PointKey<'b> = (&'b str, &'b str, &'b str);

/// A gateway's row as the group locks it.
#[derive(Debug, Clone)]
pub(crate) struct LockedGateway {
    /// Its enterprise.
    pub credit_code: String,
    /// The highest `seq` stored before this group.
    pub max_seq: Option<i64>,
    /// The version of its points' roles ([`crate::monitoring`]).
    pub roles_version: i64,
}

/// A gateway's share of the group: its enterprise, its new highest `seq`, and how many
/// batches and samples the group stored for it.
#[derive(Debug, Clone)]
pub(crate) struct GatewayTally {
    /// Its enterprise.
    pub credit_code: String,
    /// Its highest `seq` after the group.
    pub max_seq: Option<i64>,
    /// Batches the group stored.
    pub batches: i64,
    /// Samples the group stored.
    pub samples: i64,
    /// The version of its points' roles.
    pub roles_version: i64,
}

/// An open gap's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GapRow {
    /// The first missing `seq`.
    pub first: i64,
    /// The last missing `seq`.
    pub last: i64,
    /// When it was found missing.
    pub detected_at: i64,
    /// When it was reported as stale, if it was.
    pub reported_at: Option<i64>,
}

/// The statements on a gateway's gaps and crash windows, inside a transaction that holds
/// the gateway's row lock.
pub(crate) trait GapTx {
    /// The crash windows of `gateway` that overlap `first..=last`.
    async fn crash_windows(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError>;
    /// Opens the gap `first..=last` (replacing one that starts there).
    async fn open_gap(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
        detected_at: i64,
    ) -> Result<(), StoreError>;
    /// Deletes and returns the open gaps of `gateway` that overlap `first..=last`.
    async fn take_gaps(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<GapRow>, StoreError>;
    /// Inserts a gap row as it is (a part of a gap that was split).
    async fn insert_gap(&mut self, gateway: &str, gap: GapRow) -> Result<(), StoreError>;
}

/// The statements of storing one group, inside its transaction.
pub(crate) trait IngestTx {
    /// The gap statements of the same transaction.
    type Gaps: GapTx;
    /// The alarm statements of the same transaction.
    type Alarms: AlarmTx;
    /// The monitoring statements of the same transaction.
    type Monitor: MonitorTx;
    /// The gap statements, in the same transaction.
    fn gaps(&mut self) -> &mut Self::Gaps;
    /// The alarm statements, in the same transaction.
    fn alarms(&mut self) -> &mut Self::Alarms;
    /// The monitoring statements, in the same transaction.
    fn monitor(&mut self) -> &mut Self::Monitor;
    /// The enrolled gateways among `ids`.
    async fn enrolled(&mut self, ids: &[&str]) -> Result<HashSet<String>, StoreError>;
    /// Inserts the dedup rows `(gateway, seq, samples)` (in key order); the keys that were
    /// not there before.
    async fn insert_dedup(
        &mut self,
        rows: &[(&str, i64, i64)],
        received_at: i64,
    ) -> Result<HashSet<(String, i64)>, StoreError>;
    /// The ids of the points of `batches`, created where missing.
    async fn point_ids<'b>(
        &mut self,
        batches: &[&'b IncomingBatch],
    ) -> Result<HashMap<PointKey<'b>, i64>, StoreError>;
    /// Inserts samples, each with its point's id.
    async fn insert_samples(&mut self, samples: &[(i64, &Sample)]) -> Result<(), StoreError>;
    /// Locks the rows of `ids` (in id order) and reads them.
    async fn lock_gateways(
        &mut self,
        ids: &[&str],
    ) -> Result<BTreeMap<String, LockedGateway>, StoreError>;
    /// Merges per-minute aggregates, by `(point id, minute)`.
    async fn upsert_minutes(
        &mut self,
        minutes: &BTreeMap<(i64, i64), MinuteAggregate>,
    ) -> Result<(), StoreError>;
    /// Makes each sample its point's latest value unless a newer one is.
    async fn update_latest(&mut self, newest: &BTreeMap<i64, &Sample>) -> Result<(), StoreError>;
    /// Adds the tallies to the gateways' counters and sets their highest `seq`.
    async fn update_gateways(
        &mut self,
        tallies: &BTreeMap<String, GatewayTally>,
        received_at: i64,
    ) -> Result<(), StoreError>;
    /// Locks the enterprises (in credit-code order), moves their on-cloud times and records
    /// their active day.
    async fn update_enterprises(
        &mut self,
        codes: &[&str],
        received_at: i64,
        day: i64,
    ) -> Result<(), StoreError>;
}

/// How a batch of a group arrived, before its gateway's row is locked.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    /// Its gateway is not enrolled.
    UnknownGateway,
    /// Stored before (or earlier in the group).
    Duplicate,
    /// New: its dedup row was inserted by this group.
    New,
}

impl Arrival {
    /// The outcome of a batch that is not stored; `None` for a new one.
    fn unstored(self) -> Option<BatchOutcome> {
        match self {
            Arrival::UnknownGateway => Some(BatchOutcome::UnknownGateway),
            Arrival::Duplicate => Some(BatchOutcome::Duplicate),
            Arrival::New => None,
        }
    }
}

/// Stores `batches` with `tx`'s statements; one outcome per batch, in order. Days (the
/// enterprises' active day, the monitoring's) are local to `utc_offset_minutes`.
pub(crate) async fn store_group<T: IngestTx>(
    tx: &mut T,
    batches: &[IncomingBatch],
    received_at: i64,
    utc_offset_minutes: i32,
) -> Result<Vec<BatchOutcome>, StoreError> {
    // 1. The enrolled gateways (rows are never deleted; locked only in step 4).
    let enrolled = tx.enrolled(&gateway_ids(batches.iter())).await?;

    // 2. The dedup rows, in key order, so two groups holding the same batches wait for
    // each other in one order and never deadlock.
    let mut rows: Vec<(&str, i64, i64)> = Vec::new();
    let mut seen = HashSet::new();
    for batch in batches.iter().filter(|b| enrolled.contains(&b.gateway)) {
        let key = (batch.gateway.as_str(), seq_of(batch)?);
        if seen.insert(key) {
            rows.push((key.0, key.1, batch.samples.len() as i64));
        }
    }
    rows.sort_unstable();
    let mut new = tx.insert_dedup(&rows, received_at).await?;
    let arrivals: Vec<Arrival> = batches
        .iter()
        .map(|batch| {
            Ok(if !enrolled.contains(&batch.gateway) {
                Arrival::UnknownGateway
            } else if new.remove(&(batch.gateway.clone(), seq_of(batch)?)) {
                Arrival::New
            } else {
                Arrival::Duplicate
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let stored: Vec<&IncomingBatch> = batches
        .iter()
        .zip(&arrivals)
        .filter(|(_, a)| matches!(a, Arrival::New))
        .map(|(b, _)| b)
        .collect();
    if stored.is_empty() {
        return Ok(arrivals.iter().filter_map(|a| a.unstored()).collect());
    }

    // 3. Point ids, then the samples.
    let ids = tx.point_ids(&stored).await?;
    let mut samples = Vec::with_capacity(stored.iter().map(|b| b.samples.len()).sum());
    for batch in &stored {
        for sample in &batch.samples {
            samples.push((point_id_of(&ids, batch, sample)?, sample));
        }
    }
    tx.insert_samples(&samples).await?;

    // 4. The gateways, locked; outcomes in order, gaps as each batch moves its gateway.
    let mut tallies: BTreeMap<String, GatewayTally> = tx
        .lock_gateways(&gateway_ids(stored.iter().copied()))
        .await?
        .into_iter()
        .map(|(id, row)| {
            let tally = GatewayTally {
                credit_code: row.credit_code,
                max_seq: row.max_seq,
                batches: 0,
                samples: 0,
                roles_version: row.roles_version,
            };
            (id, tally)
        })
        .collect();
    let mut outcomes = Vec::with_capacity(batches.len());
    for (batch, arrival) in batches.iter().zip(&arrivals) {
        if let Some(outcome) = arrival.unstored() {
            outcomes.push(outcome);
            continue;
        }
        let Some(tally) = tallies.get_mut(&batch.gateway) else {
            return Err(StoreError::Corrupt(format!(
                "gateway {} vanished while storing its batch",
                batch.gateway
            )));
        };
        let seq = seq_of(batch)?;
        let mut filled = false;
        let gap = match seq_step(tally.max_seq, seq) {
            SeqStep::Ahead => {
                tally.max_seq = Some(seq);
                None
            }
            SeqStep::Jump { first, last } => {
                tally.max_seq = Some(seq);
                open_gaps(tx.gaps(), &batch.gateway, first, last, received_at).await?
            }
            SeqStep::Late => {
                filled = fill_gap(tx.gaps(), &batch.gateway, seq).await?;
                None
            }
        };
        tally.batches += 1;
        tally.samples += batch.samples.len() as i64;
        outcomes.push(BatchOutcome::Stored {
            samples: batch.samples.len() as u64,
            gap,
            filled,
        });
    }

    // 5. Per-minute aggregates and latest values (rows of the locked gateways' points).
    let mut minutes: BTreeMap<(i64, i64), MinuteAggregate> = BTreeMap::new();
    let mut newest: BTreeMap<i64, &Sample> = BTreeMap::new();
    for &(point_id, sample) in &samples {
        if let Some(v) = numeric(&sample.value) {
            minutes
                .entry((point_id, sample.ts.div_euclid(MINUTE_MS)))
                .and_modify(|m| m.add(v))
                .or_insert_with(|| MinuteAggregate::of(v));
        }
        match newest.get(&point_id) {
            Some(s) if s.ts > sample.ts => {}
            _ => {
                newest.insert(point_id, sample);
            }
        }
    }
    tx.upsert_minutes(&minutes).await?;
    tx.update_latest(&newest).await?;
    let group_gateways = tallies
        .iter()
        .map(|(id, t)| {
            let gateway = GroupGateway {
                credit_code: &t.credit_code,
                roles_version: t.roles_version,
            };
            (id.as_str(), gateway)
        })
        .collect();
    let enterprise_days = monitoring::record(
        tx.monitor(),
        &stored,
        &samples,
        &group_gateways,
        utc_offset_minutes,
    )
    .await?;
    let by_gateway: Vec<(&str, &Sample)> = stored
        .iter()
        .flat_map(|b| b.samples.iter().map(|s| (b.gateway.as_str(), s)))
        .collect();
    let gateways = gateway_ids(stored.iter().copied());
    alarms::evaluate_samples(tx.alarms(), &by_gateway, &gateways, received_at).await?;

    // 6. Counters, then the enterprises.
    tallies.retain(|_, t| t.batches > 0);
    tx.update_gateways(&tallies, received_at).await?;
    let codes: BTreeSet<&str> = tallies.values().map(|t| t.credit_code.as_str()).collect();
    let codes: Vec<&str> = codes.into_iter().collect();
    tx.update_enterprises(&codes, received_at, day_of(received_at, utc_offset_minutes))
        .await?;
    tx.monitor().add_enterprise_days(&enterprise_days).await?;
    Ok(outcomes)
}

/// Opens the gaps of a jump over `first..=last`, less the gateway's crash windows (numbers
/// reserved by a run that crashed, never sent); the range they span, if any.
async fn open_gaps<T: GapTx>(
    tx: &mut T,
    gateway: &str,
    first: i64,
    last: i64,
    detected_at: i64,
) -> Result<Option<crate::Gap>, StoreError> {
    let windows = tx.crash_windows(gateway, first, last).await?;
    let missing = subtract_ranges(first, last, &windows);
    for &(first, last) in &missing {
        tx.open_gap(gateway, first, last, detected_at).await?;
    }
    Ok(hull(&missing))
}

/// A late batch `seq` arrived: takes it out of the gap that holds it, if any (the rest of
/// the gap keeps its detection and report times); true if one did.
async fn fill_gap<T: GapTx>(tx: &mut T, gateway: &str, seq: i64) -> Result<bool, StoreError> {
    let taken = tx.take_gaps(gateway, seq, seq).await?;
    for gap in &taken {
        for (first, last) in split_gap(gap.first, gap.last, seq) {
            let part = GapRow {
                first,
                last,
                ..*gap
            };
            tx.insert_gap(gateway, part).await?;
        }
    }
    Ok(!taken.is_empty())
}

/// Records the crash window `first..=last` and takes its numbers out of the gateway's open
/// gaps (the parts outside it stay, with their times). The caller holds the gateway's row
/// lock and has recorded the window.
pub(crate) async fn close_crash_window<T: GapTx>(
    tx: &mut T,
    gateway: &str,
    first: i64,
    last: i64,
) -> Result<(), StoreError> {
    for gap in tx.take_gaps(gateway, first, last).await? {
        for (f, l) in subtract_ranges(gap.first, gap.last, &[(first, last)]) {
            let part = GapRow {
                first: f,
                last: l,
                ..gap
            };
            tx.insert_gap(gateway, part).await?;
        }
    }
    Ok(())
}

/// The gateways of `batches`, each once, in id order (the lock order).
pub(crate) fn gateway_ids<'b>(batches: impl Iterator<Item = &'b IncomingBatch>) -> Vec<&'b str> {
    let ids: BTreeSet<&str> = batches.map(|b| b.gateway.as_str()).collect();
    ids.into_iter().collect()
}

/// A batch's `seq` as the databases store it.
fn seq_of(batch: &IncomingBatch) -> Result<i64, StoreError> {
    i64::try_from(batch.seq)
        .map_err(|_| StoreError::Corrupt(format!("seq {} out of range", batch.seq)))
}

/// The id of `sample`'s point, from the ids found for the group.
fn point_id_of(
    ids: &HashMap<PointKey<'_>, i64>,
    batch: &IncomingBatch,
    sample: &Sample,
) -> Result<i64, StoreError> {
    let key = (
        batch.gateway.as_str(),
        sample.device.as_ref(),
        sample.point.as_ref(),
    );
    ids.get(&key).copied().ok_or_else(|| {
        StoreError::Corrupt(format!("no id for point {}/{}/{}", key.0, key.1, key.2))
    })
}
