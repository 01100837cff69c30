//! The sender's side: reads, sent marks, PUBACK acks and the platform's acks. Each takes the
//! state lock for its in-memory part only: payloads that the cache no longer holds, and the
//! entries of a segment that is not loaded, are read from the file outside it.

use std::time::Instant;

use crate::error::Fault;
use crate::index::{Found, Need};
use crate::reader::LogReader;
use crate::state::State;
use crate::{AckOutcome, PlatformAck, Record, Store};

/// Bytes read at a time when loading a segment's entries or reading small records.
const READ_CHUNK: usize = 64 * 1024;

/// Which records a read returns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Read {
    /// Not sent, `from_seq <= seq < below`, oldest first.
    Unsent { from_seq: u64, below: u64 },
    /// Any, `seq >= from_seq`, oldest first.
    Oldest { from_seq: u64 },
    /// Any, newest first.
    Newest,
}

impl Store {
    /// Runs `op` on the state, loading the segments it asks for and running it again, then
    /// brings the first and last record up to date.
    pub(crate) fn with_state<T>(
        &self,
        mut op: impl FnMut(&mut State) -> Result<T, Need>,
    ) -> Result<T, Fault> {
        self.ready()?;
        let value = loop {
            let need = match op(&mut self.lock_state()) {
                Ok(value) => break value,
                Err(need) => need,
            };
            self.load(need)?;
        };
        self.settle_ends()?;
        Ok(value)
    }

    /// Recomputes the first and last record, loading what that needs.
    pub(crate) fn settle_ends(&self) -> Result<(), Fault> {
        loop {
            let need = match self.lock_state().settle_ends() {
                Ok(()) => return Ok(()),
                Err(need) => need,
            };
            self.load(need)?;
        }
    }

    /// Loads the entries of segment `need.0` from the file, unless that is no longer needed.
    pub(crate) fn load(&self, need: Need) -> Result<(), Fault> {
        let (file, span, map) = {
            let st = self.lock_state();
            let Some(span) = st.index.span(need.0) else {
                return Ok(());
            };
            let file = st
                .file
                .clone()
                .ok_or_else(|| Fault::Internal("the store is not open".to_string()))?;
            let map = st.slot_map(span.id);
            (file, span, map)
        };
        let read = LogReader::new(&file, &map, READ_CHUNK).entries(&span, span.seqs());
        let mut st = self.lock_state();
        match read {
            Ok(entries) => {
                st.index.install(span.id, entries);
                Ok(())
            }
            // The segment was dropped meanwhile (its slot may hold other frames now).
            Err(_) if st.index.span(need.0).as_ref() != Some(&span) => Ok(()),
            Err(fault) => Err(fault),
        }
    }

    /// Applies the platform's ack (see [`crate::Outbox::apply_ack`]).
    pub(crate) fn apply_platform_ack(
        &self,
        ack: &PlatformAck<'_>,
        missing_sent_before: Instant,
    ) -> Result<AckOutcome, Fault> {
        self.ready()?;
        let mut outcome = AckOutcome::default();
        for (first, last) in ack.stored_ranges() {
            loop {
                let (deleted, need) = self.lock_state().delete_range(first, last);
                outcome.deleted_batches += deleted;
                match need {
                    Some(need) => self.load(need)?,
                    None => break,
                }
            }
        }
        {
            let mut st = self.lock_state();
            let mut returned: Vec<u64> = ack
                .missing_ranges()
                .flat_map(|(first, last)| st.sent.in_range_before(first, last, missing_sent_before))
                .collect();
            returned.sort_unstable();
            returned.dedup();
            for &seq in &returned {
                st.sent.remove(seq);
            }
            outcome.returned = returned;
        }
        self.settle_ends()?;
        Ok(outcome)
    }

    /// Up to `limit` records with `seq >= from_seq`, oldest first.
    pub(crate) fn read_oldest(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, Fault> {
        self.read(Read::Oldest { from_seq }, limit)
    }

    /// Up to `limit` records as `what` says. The payloads come from the cache (an unsent read
    /// takes them out: they are being sent) or from the file.
    pub(crate) fn read(&self, what: Read, limit: usize) -> Result<Vec<Record>, Fault> {
        self.ready()?;
        let mut out: Vec<Record> = Vec::new();
        let mut cursor = match what {
            Read::Unsent { from_seq, .. } | Read::Oldest { from_seq } => from_seq,
            Read::Newest => u64::MAX,
        };
        loop {
            let want = limit.saturating_sub(out.len());
            if want == 0 {
                return Ok(out);
            }
            let (found, need, cached, file, map) = {
                let mut st = self.lock_state();
                let State {
                    index, sent, cache, ..
                } = &mut *st;
                let (found, need) = match what {
                    Read::Unsent { below, .. } => {
                        index.scan(cursor, below, want, |seq| sent.next_unsent(seq))
                    }
                    Read::Oldest { .. } => index.scan(cursor, u64::MAX, want, |seq| seq),
                    Read::Newest => index.scan_newest(cursor, want),
                };
                let cached: Vec<Option<Vec<u8>>> = found
                    .iter()
                    .map(|f| match what {
                        Read::Unsent { .. } => cache.take(f.seq),
                        Read::Oldest { .. } | Read::Newest => cache.get(f.seq),
                    })
                    .collect();
                let first_segment = found
                    .iter()
                    .zip(&cached)
                    .filter(|(_, c)| c.is_none())
                    .map(|(f, _)| f.entry.lsn / index.geometry().segment)
                    .min();
                let map = first_segment.map(|id| st.slot_map(id));
                (found, need, cached, st.file.clone(), map)
            };
            if let Some(last) = found.last() {
                cursor = match what {
                    Read::Newest => last.seq,
                    _ => last.seq.saturating_add(1),
                };
            }
            let exhausted = need.is_none();
            out.extend(self.fill_payloads(found, cached, file.as_deref(), map.as_ref())?);
            match need {
                Some(need) => self.load(need)?,
                None if exhausted => return Ok(out),
                None => {}
            }
        }
    }

    /// Records for `found`, with the payloads in `cached` or read from the file. A record
    /// deleted since it was found (its slot may hold other frames now) is left out; one still
    /// stored that does not read back is damage.
    fn fill_payloads(
        &self,
        found: Vec<Found>,
        cached: Vec<Option<Vec<u8>>>,
        file: Option<&crate::file::LogFile>,
        map: Option<&crate::reader::SlotMap>,
    ) -> Result<Vec<Record>, Fault> {
        let mut reader = match (file, map) {
            (Some(file), Some(map)) => Some(LogReader::new(file, map, READ_CHUNK)),
            _ => None,
        };
        let mut out = Vec::with_capacity(found.len());
        for (f, payload) in found.into_iter().zip(cached) {
            let payload = match payload {
                Some(payload) => payload,
                None => {
                    let frame = match reader.as_mut() {
                        Some(reader) => reader.frame(f.entry.lsn)?,
                        None => None,
                    };
                    match frame {
                        Some((header, payload)) if header.seq == f.seq => payload,
                        _ => {
                            if self.lock_state().index.contains(f.seq) {
                                return Err(Fault::Corrupted(format!(
                                    "record {} does not read back from log position {}",
                                    f.seq, f.entry.lsn
                                )));
                            }
                            continue;
                        }
                    }
                }
            };
            out.push(Record {
                seq: f.seq,
                samples: f.entry.samples,
                payload,
                appended_at_ms: f.entry.at_ms,
            });
        }
        Ok(out)
    }
}
