//! The store of fieldlink versions before the segment log: a redb 4 file (format 1), read once
//! to migrate it (see "Upgrading from the redb store" in the crate docs). Its layout was:
//!
//! | table | key | value |
//! |---|---|---|
//! | `records` | `seq: u64` | `(samples: u32, appended_at_ms: i64, payload_len: u32)` |
//! | `chunks` | `(seq: u64, index: u32)` | up to 495 payload bytes |
//! | `meta` | `&str` | `u64`: `format` (1), `next_seq`, `seq_limit`, `batches`, `samples`, `payload_bytes`, `chunks`, `evicted_batches`, `evicted_samples` |
//!
//! What made such a file damaged then makes it damaged now (it is moved aside, as any damaged
//! store is): redb's integrity check, tables that are not an outbox's, a format other than 1,
//! numbering past the largest `seq`, a record at or above `next_seq`, a record whose chunks do
//! not add up. Counters out of step with the tables are recounted, as they were.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError,
};

use crate::error::Fault;
use crate::{CrashWindow, MAX_SEQ};

/// The first bytes of every redb file.
pub(crate) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

const RECORDS: TableDefinition<u64, (u32, i64, u32)> = TableDefinition::new("records");
const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// One record of the old store.
#[derive(Debug)]
pub(crate) struct OldRecord {
    pub seq: u64,
    pub samples: u32,
    pub appended_at_ms: i64,
    pub payload: Vec<u8>,
}

/// An old store, open and checked.
pub(crate) struct Legacy {
    db: Database,
    /// The `seq` the migrated store goes on from.
    pub next_seq: u64,
    pub evicted_batches: u64,
    pub evicted_samples: u64,
    /// The numbers the old store's last run skipped by stopping uncleanly.
    pub window: Option<CrashWindow>,
}

#[derive(Debug, Default)]
struct Counters {
    next_seq: u64,
    seq_limit: u64,
    batches: u64,
    samples: u64,
    payload_bytes: u64,
    chunks: u64,
    evicted_batches: u64,
    evicted_samples: u64,
}

impl Counters {
    fn load(meta: &impl ReadableTable<&'static str, u64>) -> Result<Self, Fault> {
        let get = |name: &str| -> Result<u64, Fault> {
            Ok(meta.get(name)?.map(|v| v.value()).unwrap_or_default())
        };
        Ok(Counters {
            next_seq: get("next_seq")?,
            seq_limit: get("seq_limit")?,
            batches: get("batches")?,
            samples: get("samples")?,
            payload_bytes: get("payload_bytes")?,
            chunks: get("chunks")?,
            evicted_batches: get("evicted_batches")?,
            evicted_samples: get("evicted_samples")?,
        })
    }
}

/// Payload bytes per chunk in the old store.
const CHUNK: u64 = 495;

fn open_db(path: &Path) -> Result<Database, Fault> {
    // redb checks integrity on open, but a malformed file must not take the agent down if
    // something still panics.
    let opened = catch_unwind(AssertUnwindSafe(|| {
        Database::builder()
            .set_cache_size(1024 * 1024)
            .set_check_integrity_on_open(true)
            .open(path)
    }));
    match opened {
        Ok(result) => Ok(result?),
        Err(_) => Err(Fault::Corrupted(
            "redb panicked while opening the file".to_string(),
        )),
    }
}

fn read_txn(db: &Database) -> Result<ReadTransaction, Fault> {
    Ok(db.begin_read()?)
}

impl Legacy {
    /// Opens the old store at `path` and checks it as the old version did on open.
    pub(crate) fn open(path: &Path) -> Result<Legacy, Fault> {
        let db = open_db(path)?;
        let txn = read_txn(&db)?;
        let had_tables = txn.list_tables()?.next().is_some();
        let meta = match txn.open_table(META) {
            Ok(meta) => Some(meta),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let format = match &meta {
            Some(meta) => meta.get("format")?.map(|v| v.value()),
            None => None,
        };
        let mut c = match (format, &meta) {
            (Some(1), Some(meta)) => Counters::load(meta)?,
            (Some(other), _) => {
                return Err(Fault::Incompatible(format!(
                    "outbox format {other}; this version reads formats 1 and 2"
                )));
            }
            (None, _) if had_tables => {
                return Err(Fault::Corrupted(
                    "a redb file, but not an outbox store".to_string(),
                ));
            }
            (None, _) => Counters::default(),
        };
        let (records, chunks) = match (txn.open_table(RECORDS), txn.open_table(CHUNKS)) {
            (Ok(r), Ok(ch)) => (r.len()?, ch.len()?),
            (Err(TableError::TableDoesNotExist(_)), _)
            | (_, Err(TableError::TableDoesNotExist(_))) => (0, 0),
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        // A record holds at most u32::MAX samples and bytes: larger sums are out of step too.
        let past_records = |sum: u64| sum > c.batches.saturating_mul(u64::from(u32::MAX));
        let newest = match txn.open_table(RECORDS) {
            Ok(table) => table.last()?.map(|(k, _)| k.value()),
            Err(_) => None,
        };
        if c.batches != records
            || c.chunks != chunks
            || past_records(c.samples)
            || past_records(c.payload_bytes)
        {
            tracing::warn!(path = %path.display(), "outbox counters disagree with the tables; recounting");
            c.next_seq = c
                .next_seq
                .max(newest.map_or(0, |seq| seq.saturating_add(1)));
        }
        let durable_seq = c.next_seq.max(1);
        let next_seq = c.next_seq.max(c.seq_limit).max(1);
        if next_seq > MAX_SEQ || newest.is_some_and(|seq| seq >= next_seq) {
            return Err(Fault::Corrupted(format!(
                "next_seq {next_seq} is past the largest seq ({MAX_SEQ}) or not above the newest record ({newest:?})"
            )));
        }
        drop(txn);
        Ok(Legacy {
            db,
            next_seq,
            evicted_batches: c.evicted_batches,
            evicted_samples: c.evicted_samples,
            window: (next_seq > durable_seq).then_some(CrashWindow {
                durable_seq,
                resumed_seq: next_seq,
            }),
        })
    }

    /// The first record with `seq >= from`, if any.
    pub(crate) fn record_from(&self, from: u64) -> Result<Option<OldRecord>, Fault> {
        let txn = read_txn(&self.db)?;
        let records = match txn.open_table(RECORDS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(entry) = records.range(from..)?.next() else {
            return Ok(None);
        };
        let (k, v) = entry?;
        let seq = k.value();
        let (samples, appended_at_ms, len) = v.value();
        let chunks = txn.open_table(CHUNKS)?;
        let mut payload = Vec::with_capacity(len as usize);
        let mut expected = 0u32;
        for entry in chunks.range((seq, 0)..=(seq, u32::MAX))? {
            let (key, chunk) = entry?;
            if key.value().1 != expected {
                return Err(Fault::Corrupted(format!(
                    "record {seq} is missing chunk {expected}"
                )));
            }
            payload.extend_from_slice(chunk.value());
            expected += 1;
        }
        if payload.len() as u64 != u64::from(len)
            || u64::from(expected) != u64::from(len).div_ceil(CHUNK)
        {
            return Err(Fault::Corrupted(format!(
                "record {seq} should hold {len} bytes, its chunks hold {}",
                payload.len()
            )));
        }
        Ok(Some(OldRecord {
            seq,
            samples,
            appended_at_ms,
            payload,
        }))
    }
}

/// Tries to read the numbering of a damaged old store without writing to it.
pub(crate) fn read_old_seq(path: &Path) -> Option<u64> {
    let read = || -> Result<Option<u64>, Fault> {
        let db = Database::builder()
            .set_cache_size(1024 * 1024)
            .open_read_only(path)?;
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let c = Counters::load(&meta)?;
        let seq = c.next_seq.max(c.seq_limit);
        // A damaged counter must not seed the fresh store past the largest seq.
        Ok((1..=MAX_SEQ).contains(&seq).then_some(seq))
    };
    catch_unwind(read).ok()?.ok()?
}
