//! The in-memory index of the log: which records are stored, where, and which are deleted.
//!
//! The log is cut into segments (see [`crate::geometry`]); a record belongs to the segment its
//! frame starts in. Every segment from the durable tail's to the head's is resident: its slot,
//! the `seq`s of its records (as runs of consecutive numbers: one run, unless a crash window or
//! a migration left a gap), one bit per record for "deleted", and the count, samples and
//! payload bytes of its live records. That is a few bytes per record. Where each record's frame
//! starts, its length, sample count and append time ([`Entry`], 24 bytes) are loaded per
//! segment on demand and dropped again, least recently used first, once the loaded entries
//! pass a budget: the head segment's stay loaded (appends go there). So the index's memory is
//! bounded by the budget plus the bits, whatever the backlog.
//!
//! An operation that needs a segment's entries that are not loaded says so ([`Need`]) without
//! changing anything, or after a part of its work that a retry does not repeat; the caller
//! loads the segment (outside its lock) and calls again.

use std::collections::VecDeque;

use crate::geometry::Geometry;

/// Where a record's frame is, and what the record counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub lsn: u64,
    pub at_ms: i64,
    pub len: u32,
    pub samples: u32,
}

const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// The entries of this segment must be loaded before the operation can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Need(pub u64);

/// A live record found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub seq: u64,
    pub entry: Entry,
}

/// What a segment knows of its frames before its entries are loaded: enough to find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// The segment's id (its position in the log divided by the segment size).
    pub id: u64,
    /// Where the first frame that starts in it starts.
    pub first_frame: u64,
    /// Records that start in it.
    pub count: u32,
    /// Their `seq`s, as runs `(first, count)`.
    pub runs: Vec<(u64, u32)>,
}

impl Span {
    /// The `seq`s of the segment's records, in order.
    pub(crate) fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs
            .iter()
            .flat_map(|&(first, n)| (0..u64::from(n)).map(move |i| first + i))
    }
}

#[derive(Debug)]
struct Segment {
    id: u64,
    slot: u16,
    first_frame: Option<u64>,
    /// `(first seq, count)` of the records that start here, ascending.
    runs: Vec<(u64, u32)>,
    count: u32,
    deleted: Vec<u64>,
    live: u32,
    live_samples: u64,
    live_bytes: u64,
    /// All records ever indexed here, deleted or not (to settle the sums after recovery).
    total_samples: u64,
    total_bytes: u64,
    /// The live sums are not known yet (recovery marked deletions without the entries).
    stale: bool,
    entries: Option<Vec<Entry>>,
    used: u64,
}

impl Segment {
    fn new(id: u64, slot: u16) -> Self {
        Segment {
            id,
            slot,
            first_frame: None,
            runs: Vec::new(),
            count: 0,
            deleted: Vec::new(),
            live: 0,
            live_samples: 0,
            live_bytes: 0,
            total_samples: 0,
            total_bytes: 0,
            stale: false,
            entries: Some(Vec::new()),
            used: 0,
        }
    }

    fn first_seq(&self) -> Option<u64> {
        self.runs.first().map(|&(s, _)| s)
    }

    fn last_seq(&self) -> Option<u64> {
        self.runs.last().map(|&(s, n)| s + u64::from(n) - 1)
    }

    fn seq_at(&self, mut pos: u32) -> u64 {
        for &(first, n) in &self.runs {
            if pos < n {
                return first + u64::from(pos);
            }
            pos -= n;
        }
        u64::MAX
    }

    /// The position of `seq`, or of the first record after it, among this segment's records.
    fn pos_from(&self, seq: u64) -> u32 {
        let mut pos = 0;
        for &(first, n) in &self.runs {
            if seq < first {
                return pos;
            }
            if seq < first + u64::from(n) {
                return pos + (seq - first) as u32;
            }
            pos += n;
        }
        pos
    }

    fn pos_of(&self, seq: u64) -> Option<u32> {
        let pos = self.pos_from(seq);
        (pos < self.count && self.seq_at(pos) == seq).then_some(pos)
    }

    fn is_deleted(&self, pos: u32) -> bool {
        self.deleted[(pos / 64) as usize] & (1 << (pos % 64)) != 0
    }

    fn set_deleted(&mut self, pos: u32) {
        self.deleted[(pos / 64) as usize] |= 1 << (pos % 64);
    }

    fn entry(&self, pos: u32) -> Result<Entry, Need> {
        self.entries
            .as_ref()
            .map(|e| e[pos as usize])
            .ok_or(Need(self.id))
    }

    /// Deletes the live record at `pos`; returns its samples and payload length.
    fn delete(&mut self, pos: u32) -> Result<(u32, u64), Need> {
        let e = self.entry(pos)?;
        self.set_deleted(pos);
        self.live -= 1;
        self.live_samples -= u64::from(e.samples);
        self.live_bytes -= u64::from(e.len);
        Ok((e.samples, u64::from(e.len)))
    }

    fn loaded_bytes(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |e| e.capacity() * ENTRY_BYTES)
    }
}

/// The index. See the module docs.
#[derive(Debug)]
pub(crate) struct Index {
    geometry: Geometry,
    /// Consecutive segments, from the durable tail's to the head's.
    segments: VecDeque<Segment>,
    /// For the segments that have records: `(first seq, id)`, ascending.
    by_seq: VecDeque<(u64, u64)>,
    slot_used: Vec<bool>,
    /// Live records, their samples and payload bytes.
    pub batches: u64,
    pub samples: u64,
    pub payload_bytes: u64,
    loaded: usize,
    budget: usize,
    tick: u64,
}

impl Index {
    /// An empty index; loaded entries beyond the head segment's take at most about `budget`
    /// bytes.
    pub(crate) fn new(geometry: Geometry, budget: usize) -> Self {
        Index {
            geometry,
            segments: VecDeque::new(),
            by_seq: VecDeque::new(),
            slot_used: vec![false; geometry.slots as usize],
            batches: 0,
            samples: 0,
            payload_bytes: 0,
            loaded: 0,
            budget,
            tick: 0,
        }
    }

    /// The file's layout.
    pub(crate) fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn idx(&self, id: u64) -> Option<usize> {
        let front = self.segments.front()?.id;
        let i = usize::try_from(id.checked_sub(front)?).ok()?;
        (i < self.segments.len()).then_some(i)
    }

    // ----- segments and slots -----

    /// The segments from the first resident one, and the slot of each.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (u64, u16)> + '_ {
        self.segments.iter().map(|s| (s.id, s.slot))
    }

    /// The id of the last resident segment (the head's), if any.
    pub(crate) fn last_segment(&self) -> Option<u64> {
        self.segments.back().map(|s| s.id)
    }

    /// The slot segment `id` is in, if resident.
    pub(crate) fn slot_of(&self, id: u64) -> Option<u16> {
        self.idx(id).map(|i| self.segments[i].slot)
    }

    /// The lowest slot no resident segment uses.
    pub(crate) fn free_slot(&self) -> Option<u16> {
        self.slot_used
            .iter()
            .position(|used| !used)
            .map(|s| s as u16)
    }

    /// Slots no resident segment uses.
    pub(crate) fn free_slots(&self) -> u64 {
        self.slot_used.iter().filter(|used| !**used).count() as u64
    }

    /// One past the highest slot in use.
    pub(crate) fn slots_in_use_end(&self) -> u64 {
        self.slot_used
            .iter()
            .rposition(|used| *used)
            .map_or(0, |s| s as u64 + 1)
    }

    /// Adds segment `id` (the next after the last) in `slot`; the entries of earlier
    /// segments beyond the budget are unloaded.
    pub(crate) fn add_segment(&mut self, id: u64, slot: u16) {
        debug_assert!(self.segments.back().is_none_or(|s| s.id + 1 == id));
        self.slot_used[usize::from(slot)] = true;
        let mut segment = Segment::new(id, slot);
        self.tick += 1;
        segment.used = self.tick;
        self.segments.push_back(segment);
        self.shed(id);
    }

    /// Drops the segments before `id` (none of their records is live: the durable tail has
    /// passed them), which frees their slots.
    pub(crate) fn drop_before(&mut self, id: u64) {
        while let Some(front) = self.segments.front() {
            if front.id >= id {
                break;
            }
            debug_assert_eq!(front.live, 0, "dropping a segment with live records");
            let front = self.segments.pop_front().expect("front");
            self.slot_used[usize::from(front.slot)] = false;
            self.loaded -= front.loaded_bytes();
            while self.by_seq.front().is_some_and(|&(_, sid)| sid <= front.id) {
                self.by_seq.pop_front();
            }
        }
    }

    /// Where the bytes `[lsn, lsn + len)` are in the file, as `(offset, length)` pieces.
    pub(crate) fn pieces(&self, lsn: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let seg = self.geometry.segment;
        let mut pieces = Vec::with_capacity(1);
        let (mut at, end) = (lsn, lsn + len);
        while at < end {
            let id = at / seg;
            let slot = self.slot_of(id)?;
            let within = at - id * seg;
            let n = (seg - within).min(end - at);
            pieces.push((self.geometry.slot_offset(slot) + within, n));
            at += n;
        }
        Some(pieces)
    }

    // ----- records -----

    /// Indexes a record appended (or found by recovery) at `entry.lsn`; its segment must be
    /// resident. `seq` is above every indexed `seq`.
    pub(crate) fn push(&mut self, seq: u64, entry: Entry) {
        let id = entry.lsn / self.geometry.segment;
        let Some(i) = self.idx(id) else {
            debug_assert!(false, "record in a segment that is not resident");
            return;
        };
        let segment = &mut self.segments[i];
        if segment.count == 0 {
            self.by_seq.push_back((seq, id));
        }
        match segment.runs.last_mut() {
            Some((first, n)) if *first + u64::from(*n) == seq => *n += 1,
            _ => segment.runs.push((seq, 1)),
        }
        if segment.count.is_multiple_of(64) {
            segment.deleted.push(0);
        }
        segment.count += 1;
        segment.live += 1;
        segment.live_samples += u64::from(entry.samples);
        segment.live_bytes += u64::from(entry.len);
        segment.total_samples += u64::from(entry.samples);
        segment.total_bytes += u64::from(entry.len);
        if let Some(entries) = segment.entries.as_mut() {
            let before = entries.capacity();
            entries.push(entry);
            self.loaded += (entries.capacity() - before) * ENTRY_BYTES;
        }
        self.batches += 1;
        self.samples += u64::from(entry.samples);
        self.payload_bytes += u64::from(entry.len);
    }

    /// Notes that a frame (of any kind) starts at `lsn`; its segment must be resident.
    pub(crate) fn frame_at(&mut self, lsn: u64) {
        if let Some(i) = self.idx(lsn / self.geometry.segment) {
            self.segments[i].first_frame.get_or_insert(lsn);
        }
    }

    /// The segment and position of `seq`, if it is indexed (deleted or not).
    fn locate(&self, seq: u64) -> Option<(usize, u32)> {
        let k = self.by_seq.partition_point(|&(first, _)| first <= seq);
        let &(_, id) = self.by_seq.get(k.checked_sub(1)?)?;
        let i = self.idx(id)?;
        Some((i, self.segments[i].pos_of(seq)?))
    }

    /// Whether `seq` is stored (indexed and not deleted).
    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.locate(seq)
            .is_some_and(|(i, pos)| !self.segments[i].is_deleted(pos))
    }

    /// Deletes `seq` if stored; returns its samples and payload length.
    pub(crate) fn delete(&mut self, seq: u64) -> Result<Option<(u32, u64)>, Need> {
        let Some((i, pos)) = self.locate(seq) else {
            return Ok(None);
        };
        if self.segments[i].is_deleted(pos) {
            return Ok(None);
        }
        let (samples, len) = self.segments[i].delete(pos)?;
        self.touch(i);
        self.batches -= 1;
        self.samples -= u64::from(samples);
        self.payload_bytes -= len;
        Ok(Some((samples, len)))
    }

    /// Deletes every stored record with `first <= seq <= last`. Returns how many it deleted,
    /// and the segment it needs loaded to go on, if it stopped short (a retry goes on where it
    /// stopped: what it deleted is deleted).
    pub(crate) fn delete_range(&mut self, first: u64, last: u64) -> (u64, Option<Need>) {
        let mut deleted = 0;
        let start = self
            .by_seq
            .partition_point(|&(f, _)| f <= first)
            .saturating_sub(1);
        let ids: Vec<u64> = self.by_seq.iter().skip(start).map(|&(_, id)| id).collect();
        for id in ids {
            let Some(i) = self.idx(id) else { continue };
            let segment = &self.segments[i];
            let (Some(lo), Some(hi)) = (segment.first_seq(), segment.last_seq()) else {
                continue;
            };
            if lo > last {
                break;
            }
            if hi < first || segment.live == 0 {
                continue;
            }
            if first <= lo && hi <= last {
                // Every record of the segment is in the range: no entries needed.
                let segment = &mut self.segments[i];
                for pos in 0..segment.count {
                    segment.set_deleted(pos);
                }
                deleted += u64::from(segment.live);
                self.batches -= u64::from(segment.live);
                self.samples -= segment.live_samples;
                self.payload_bytes -= segment.live_bytes;
                segment.live = 0;
                segment.live_samples = 0;
                segment.live_bytes = 0;
                continue;
            }
            if self.segments[i].entries.is_none() {
                return (deleted, Some(Need(id)));
            }
            let from = self.segments[i].pos_from(first);
            for pos in from..self.segments[i].count {
                let segment = &mut self.segments[i];
                if segment.seq_at(pos) > last {
                    break;
                }
                if segment.is_deleted(pos) {
                    continue;
                }
                if let Ok((samples, len)) = segment.delete(pos) {
                    deleted += 1;
                    self.batches -= 1;
                    self.samples -= u64::from(samples);
                    self.payload_bytes -= len;
                }
            }
            self.touch(i);
        }
        (deleted, None)
    }

    /// Evicts every live record of the oldest segment that has any; returns the first and last
    /// `seq` of that segment, and the records and samples evicted.
    pub(crate) fn evict_oldest_segment(&mut self) -> Option<(u64, u64, u64, u64)> {
        let i = self.segments.iter().position(|s| s.live > 0)?;
        let segment = &mut self.segments[i];
        for pos in 0..segment.count {
            segment.set_deleted(pos);
        }
        let evicted = (
            segment.first_seq()?,
            segment.last_seq()?,
            u64::from(segment.live),
            segment.live_samples,
        );
        self.batches -= u64::from(segment.live);
        self.samples -= segment.live_samples;
        self.payload_bytes -= segment.live_bytes;
        segment.live = 0;
        segment.live_samples = 0;
        segment.live_bytes = 0;
        Some(evicted)
    }

    /// Where recovery may start reading after this state, and the lowest `seq` it then reads:
    /// the first frame of the oldest segment with a live record (every record before it is
    /// deleted) and that segment's first `seq`; or `end` and `next_seq` if none is live.
    pub(crate) fn tail(&self, end: u64, next_seq: u64) -> (u64, u64) {
        self.segments
            .iter()
            .find(|s| s.live > 0)
            .and_then(|s| Some((s.first_frame?, s.first_seq()?)))
            .unwrap_or((end, next_seq))
    }

    /// The oldest stored record: its `seq` and append time.
    pub(crate) fn oldest(&mut self) -> Result<Option<(u64, i64)>, Need> {
        let Some(i) = self.segments.iter().position(|s| s.live > 0) else {
            return Ok(None);
        };
        let segment = &self.segments[i];
        let pos = (0..segment.count)
            .find(|&p| !segment.is_deleted(p))
            .unwrap_or(0);
        let entry = segment.entry(pos)?;
        let seq = segment.seq_at(pos);
        self.touch(i);
        Ok(Some((seq, entry.at_ms)))
    }

    /// The newest stored record's `seq`.
    pub(crate) fn newest(&self) -> Option<u64> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.live > 0)
            .and_then(|s| {
                (0..s.count)
                    .rev()
                    .find(|&p| !s.is_deleted(p))
                    .map(|p| s.seq_at(p))
            })
    }

    /// Up to `limit` stored records with `from <= seq < below`, oldest first, stepping over
    /// those `skip` says to: `skip(seq)` is `seq` itself to keep it, or the next `seq` worth
    /// looking at. Stops short (with what it found, and the segment it needs) at the first
    /// segment whose entries are not loaded, so that each call makes progress whatever the
    /// budget.
    pub(crate) fn scan(
        &mut self,
        from: u64,
        below: u64,
        limit: usize,
        skip: impl Fn(u64) -> u64,
    ) -> (Vec<Found>, Option<Need>) {
        let mut out = Vec::new();
        let mut seq = from;
        let mut k = self
            .by_seq
            .partition_point(|&(f, _)| f <= seq)
            .saturating_sub(1);
        while out.len() < limit && seq < below && k < self.by_seq.len() {
            let id = self.by_seq[k].1;
            let Some(i) = self.idx(id) else {
                k += 1;
                continue;
            };
            let mut pos = self.segments[i].pos_from(seq);
            let mut touched = false;
            while pos < self.segments[i].count && out.len() < limit {
                let segment = &self.segments[i];
                let s = segment.seq_at(pos);
                if s >= below {
                    seq = below;
                    break;
                }
                if segment.is_deleted(pos) {
                    pos += 1;
                    continue;
                }
                let next = skip(s);
                if next != s {
                    if next <= segment.last_seq().unwrap_or(0) {
                        pos = segment.pos_from(next);
                        continue;
                    }
                    seq = next;
                    break;
                }
                match segment.entry(pos) {
                    Ok(entry) => out.push(Found { seq: s, entry }),
                    Err(need) => {
                        if touched {
                            self.touch(i);
                        }
                        return (out, Some(need));
                    }
                }
                touched = true;
                pos += 1;
                seq = s + 1;
            }
            if touched {
                self.touch(i);
            }
            if pos >= self.segments[i].count {
                k += 1;
                if let Some(&(f, _)) = self.by_seq.get(k) {
                    seq = seq.max(f);
                }
            } else {
                k = self
                    .by_seq
                    .partition_point(|&(f, _)| f <= seq)
                    .saturating_sub(1);
            }
        }
        (out, None)
    }

    /// Up to `limit` stored records with `seq < below`, newest first. Stops short as
    /// [`Self::scan`] does.
    pub(crate) fn scan_newest(&mut self, below: u64, limit: usize) -> (Vec<Found>, Option<Need>) {
        let mut out = Vec::new();
        for i in (0..self.segments.len()).rev() {
            if out.len() >= limit {
                break;
            }
            let segment = &self.segments[i];
            if segment.live == 0 || segment.first_seq().is_none_or(|first| first >= below) {
                continue;
            }
            for pos in (0..segment.count).rev() {
                if out.len() >= limit {
                    break;
                }
                let seq = segment.seq_at(pos);
                if seq >= below || segment.is_deleted(pos) {
                    continue;
                }
                match segment.entry(pos) {
                    Ok(entry) => out.push(Found { seq, entry }),
                    Err(need) => return (out, Some(need)),
                }
            }
            self.touch(i);
        }
        (out, None)
    }

    // ----- loading -----

    /// What the loader needs to read segment `id`'s entries, if it is resident and not loaded.
    pub(crate) fn span(&self, id: u64) -> Option<Span> {
        let segment = &self.segments[self.idx(id)?];
        if segment.entries.is_some() {
            return None;
        }
        Some(Span {
            id,
            first_frame: segment.first_frame?,
            count: segment.count,
            runs: segment.runs.clone(),
        })
    }

    /// Installs the entries the loader read for segment `id` (in position order), if the
    /// segment is still resident, unloaded, and they are as many as its records.
    pub(crate) fn install(&mut self, id: u64, entries: Vec<Entry>) -> bool {
        let Some(i) = self.idx(id) else { return false };
        let segment = &mut self.segments[i];
        if segment.entries.is_some() || entries.len() != segment.count as usize {
            return false;
        }
        self.loaded += entries.capacity() * ENTRY_BYTES;
        segment.entries = Some(entries);
        self.touch(i);
        self.shed(self.segments.back().map_or(0, |s| s.id));
        true
    }

    fn touch(&mut self, i: usize) {
        self.tick += 1;
        self.segments[i].used = self.tick;
    }

    /// Unloads the least recently used entries until the loaded ones fit the budget; never
    /// those of segment `keep_from` and after, nor the ones used last.
    fn shed(&mut self, keep_from: u64) {
        while self.loaded > self.budget {
            let tick = self.tick;
            let victim = self
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.id < keep_from && s.entries.is_some() && s.used < tick)
                .min_by_key(|(_, s)| s.used)
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            let bytes = self.segments[i].loaded_bytes();
            self.segments[i].entries = None;
            self.loaded -= bytes;
        }
    }

    /// Bytes of loaded entries.
    #[cfg(test)]
    pub(crate) fn loaded_bytes(&self) -> usize {
        self.loaded
    }

    /// Unloads entries beyond the budget, but none of segment `keep_from` and after (recovery
    /// calls this as its scan leaves each segment, and with the head's once done).
    pub(crate) fn settle_budget(&mut self, keep_from: u64) {
        self.tick += 1;
        self.shed(keep_from);
    }

    // ----- recovery -----

    /// Marks the records with `first <= seq <= last` deleted without their entries; the live
    /// sums are settled afterwards by [`Self::settle`].
    pub(crate) fn mark_deleted(&mut self, first: u64, last: u64) {
        let start = self
            .by_seq
            .partition_point(|&(f, _)| f <= first)
            .saturating_sub(1);
        let ids: Vec<u64> = self.by_seq.iter().skip(start).map(|&(_, id)| id).collect();
        for id in ids {
            let Some(i) = self.idx(id) else { continue };
            let segment = &mut self.segments[i];
            if segment.first_seq().is_some_and(|lo| lo > last) {
                break;
            }
            let from = segment.pos_from(first);
            for pos in from..segment.count {
                if segment.seq_at(pos) > last {
                    break;
                }
                if !segment.is_deleted(pos) {
                    segment.set_deleted(pos);
                    segment.stale = true;
                }
            }
        }
    }

    /// Recomputes the live sums of the segments [`Self::mark_deleted`] touched: from the
    /// totals when all or none of a segment's records are deleted, from its entries otherwise.
    pub(crate) fn settle(&mut self) -> Result<(), Need> {
        for i in 0..self.segments.len() {
            let segment = &self.segments[i];
            if !segment.stale {
                continue;
            }
            let dead = (0..segment.count)
                .filter(|&p| segment.is_deleted(p))
                .count() as u32;
            let (live, samples, bytes) = if dead == segment.count {
                (0, 0, 0)
            } else if dead == 0 {
                (segment.count, segment.total_samples, segment.total_bytes)
            } else {
                let entries = segment.entries.as_ref().ok_or(Need(segment.id))?;
                let mut sums = (0u32, 0u64, 0u64);
                for (pos, e) in entries.iter().enumerate() {
                    if !segment.is_deleted(pos as u32) {
                        sums.0 += 1;
                        sums.1 += u64::from(e.samples);
                        sums.2 += u64::from(e.len);
                    }
                }
                sums
            };
            let segment = &mut self.segments[i];
            self.batches = self.batches - u64::from(segment.live) + u64::from(live);
            self.samples = self.samples - segment.live_samples + samples;
            self.payload_bytes = self.payload_bytes - segment.live_bytes + bytes;
            segment.live = live;
            segment.live_samples = samples;
            segment.live_bytes = bytes;
            segment.stale = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        Index::new(
            Geometry {
                segment: 1000,
                slots: 8,
            },
            1 << 20,
        )
    }

    fn entry(lsn: u64, len: u32) -> Entry {
        Entry {
            lsn,
            at_ms: lsn as i64,
            len,
            samples: 2,
        }
    }

    /// Records 1..=9, three per segment, segments 0, 1, 2 in slots 5, 3, 0.
    fn filled() -> Index {
        let mut ix = index();
        for (id, slot) in [(0, 5), (1, 3), (2, 0)] {
            ix.add_segment(id, slot);
        }
        for seq in 1..=9u64 {
            let lsn = (seq - 1) / 3 * 1000 + (seq - 1) % 3 * 300;
            ix.frame_at(lsn);
            ix.push(seq, entry(lsn, 100));
        }
        ix
    }

    #[test]
    fn deletes_by_seq_and_by_range_keep_the_sums() {
        let mut ix = filled();
        assert_eq!((ix.batches, ix.samples, ix.payload_bytes), (9, 18, 900));
        assert_eq!(ix.delete(5), Ok(Some((2, 100))));
        assert_eq!(ix.delete(5), Ok(None));
        assert_eq!(ix.delete_range(2, 7), (5, None));
        assert_eq!((ix.batches, ix.samples, ix.payload_bytes), (3, 6, 300));
        assert!(ix.contains(1) && !ix.contains(4) && ix.contains(8));
        assert_eq!(ix.oldest(), Ok(Some((1, 0))));
        assert_eq!(ix.newest(), Some(9));
        assert_eq!(ix.tail(3000, 10), (0, 1));
        ix.delete(1).unwrap();
        // Segment 0 has nothing live: the tail moves to segment 2's first frame.
        assert_eq!(ix.tail(3000, 10), (2000, 7));
        ix.delete_range(8, 9);
        assert_eq!(ix.tail(3000, 10), (3000, 10));
    }

    #[test]
    fn a_scan_steps_over_deleted_and_skipped_records() {
        let mut ix = filled();
        ix.delete(2).unwrap();
        let (found, need) = ix.scan(1, 9, 10, |s| if s == 4 { 6 } else { s });
        assert_eq!(need, None);
        let seqs: Vec<u64> = found.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![1, 3, 6, 7, 8]);
        let (found, _) = ix.scan(0, u64::MAX, 2, |s| s);
        assert_eq!(found.len(), 2);
        let (newest, _) = ix.scan_newest(u64::MAX, 3);
        let seqs: Vec<u64> = newest.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![9, 8, 7]);
    }

    #[test]
    fn unloaded_entries_are_asked_for_and_installed() {
        let mut ix = filled();
        ix.budget = 0;
        ix.settle_budget(2);
        // Everything but the head segment was unloaded.
        assert_eq!(ix.delete(4), Err(Need(1)));
        let (found, need) = ix.scan(1, 10, 10, |s| s);
        assert!(found.is_empty());
        assert_eq!(need, Some(Need(0)));
        let span = ix.span(1).expect("unloaded");
        assert_eq!((span.first_frame, span.count), (1000, 3));
        let entries = (0..3).map(|p| entry(1000 + p * 300, 100)).collect();
        assert!(ix.install(1, entries));
        assert_eq!(ix.delete(4), Ok(Some((2, 100))));
        // A whole segment in a range needs no entries.
        assert_eq!(ix.delete_range(1, 3), (3, None));
        assert_eq!(ix.evict_oldest_segment(), Some((4, 6, 2, 4)));
        assert_eq!(ix.batches, 3);
    }

    #[test]
    fn recovery_marks_then_settles() {
        let mut ix = filled();
        ix.mark_deleted(2, 3);
        ix.mark_deleted(4, 6);
        assert_eq!(ix.settle(), Ok(()));
        assert_eq!((ix.batches, ix.samples, ix.payload_bytes), (4, 8, 400));
        assert!(!ix.contains(5));
    }

    #[test]
    fn pieces_follow_the_slots() {
        let ix = filled();
        assert_eq!(
            ix.pieces(900, 200),
            Some(vec![(8192 + 5 * 1000 + 900, 100), (8192 + 3 * 1000, 100)])
        );
        assert_eq!(ix.pieces(2950, 100), None, "segment 3 is not resident");
    }

    #[test]
    fn dropping_segments_frees_their_slots() {
        let mut ix = filled();
        assert_eq!(ix.free_slot(), Some(1));
        ix.delete_range(1, 6);
        ix.drop_before(2);
        assert_eq!(ix.slot_of(0), None);
        assert_eq!(ix.free_slot(), Some(1));
        assert!(!ix.slot_used[3] && !ix.slot_used[5]);
        assert_eq!(ix.slots_in_use_end(), 1);
    }
}
