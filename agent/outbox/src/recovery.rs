//! Opening a store: creating it, recovering it from its durable superblock, migrating an old
//! redb store, rebuilding it under a new cap, or moving a damaged file aside (see "Recovery"
//! in the crate docs).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Fault;
use crate::file::{LogFile, sync_dir};
use crate::frame::Kind;
use crate::geometry::{Geometry, HEADER_AREA, MAX_SLOTS};
use crate::index::{Entry, Index};
use crate::legacy::{self, Legacy, REDB_MAGIC};
use crate::reader::{LogReader, SlotMap};
use crate::superblock::{Found, Superblock};
use crate::{CrashWindow, MAX_SEQ, OpenReport, Store, Terms, now_ms};

/// Bytes read at a time while recovery scans the log.
const SCAN_CHUNK: usize = 1 << 20;

/// A store just opened.
pub(crate) struct Opened {
    pub store: Store,
    pub report: OpenReport,
}

/// Opens the store at `terms.path` (see the module docs). Numbering goes on at `floor` at
/// least: a reopen after a failure passes the `seq` its handle was at.
pub(crate) fn open(terms: &Terms, floor: u64) -> Result<Opened, Fault> {
    let path = &terms.path;
    let damage = match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return create(terms, path, floor.max(1)),
        Err(e) => return Err(e.into()),
        Ok(meta) if meta.len() == 0 => "the file is empty (zero-length)".to_string(),
        Ok(_) => {
            let file = LogFile::open(path, terms.disk_full.clone())?;
            let mut area = vec![0u8; HEADER_AREA as usize];
            let got = file.read_some_at(&mut area, 0)?;
            area.truncate(got);
            let outcome = if area.starts_with(&REDB_MAGIC) {
                // redb takes its own lock on the file.
                drop(file);
                migrate(terms)
            } else {
                match Superblock::find(&area) {
                    Found::Store(sb) => recover(terms, file, sb),
                    Found::OtherFormat(format) => {
                        return Err(Fault::Incompatible(format!(
                            "outbox format {format}; this version reads formats 1 and 2"
                        )));
                    }
                    Found::Damaged(reason) => Err(Fault::Corrupted(reason)),
                }
            };
            match outcome {
                Ok(opened) => return Ok(opened),
                Err(fault) if fault.is_damage() => fault.text(),
                Err(fault) => return Err(fault),
            }
        }
    };
    // The fresh store goes on above every seq the damaged one may have handed out.
    let seed = read_old_seq(path).unwrap_or_else(clock_seed).max(floor);
    let aside = move_aside(path)?;
    tracing::error!(
        path = %path.display(),
        moved_to = %aside.display(),
        error = %damage,
        next_seq = seed,
        "outbox file damaged: moved it aside and started a fresh store"
    );
    let mut opened = create(terms, path, seed)?;
    opened.report.moved_aside = Some(aside);
    opened.report.error = Some(damage);
    Ok(opened)
}

/// A new, empty store at `path`, numbering from `seed`.
fn create(terms: &Terms, path: &Path, seed: u64) -> Result<Opened, Fault> {
    let geometry = Geometry::for_cap(terms.max_bytes);
    let file = LogFile::create(path, terms.disk_full.clone())?;
    let sb = Superblock {
        generation: 1,
        segment: geometry.segment,
        next_seq: seed,
        seq_limit: seed,
        evicted_batches: 0,
        evicted_samples: 0,
        tail: 0,
        head: 0,
        slots: Vec::new(),
    };
    // Generation 1 goes to the second copy: the file is as long as its header area.
    file.write_at(&sb.encode(), sb.offset())?;
    file.sync()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    let index = Index::new(geometry, terms.index_budget());
    let store = Store::new(terms, Arc::new(file), geometry, index, &sb, HEADER_AREA);
    Ok(Opened {
        store,
        report: OpenReport {
            moved_aside: None,
            error: None,
            pending_batches: 0,
            next_seq: seed,
            resumed_after_crash: None,
        },
    })
}

/// Recovers a store from its durable superblock: reads every frame from `tail` to `head`
/// (each must be whole and in place), and lowers a crash's reservation.
fn recover(terms: &Terms, file: LogFile, sb: Superblock) -> Result<Opened, Fault> {
    let corrupt = |what: String| Fault::Corrupted(what);
    if sb.next_seq > MAX_SEQ || sb.seq_limit > MAX_SEQ {
        return Err(corrupt(format!(
            "numbering at {} (reserved to {}) is past the largest seq ({MAX_SEQ})",
            sb.next_seq, sb.seq_limit
        )));
    }
    if sb.segment < 4096 || !sb.segment.is_multiple_of(4096) || sb.tail > sb.head {
        return Err(corrupt(format!(
            "segments of {} bytes, tail {} after head {}",
            sb.segment, sb.tail, sb.head
        )));
    }
    let segments = Superblock::segments(sb.segment, sb.tail, sb.head);
    let mut seen = vec![false; MAX_SLOTS as usize];
    let slots_ok = sb.slots.iter().all(|&s| {
        let fresh = (u64::from(s) < MAX_SLOTS) && !seen[usize::from(s)];
        if fresh {
            seen[usize::from(s)] = true;
        }
        fresh
    });
    if !slots_ok || sb.slots.len() as u64 != segments.end - segments.start {
        return Err(corrupt(
            "the superblock's slot map does not add up".to_string(),
        ));
    }
    let fits = Geometry::with_segment(terms.max_bytes, sb.segment)
        .filter(|g| sb.slots.iter().all(|&s| u64::from(s) < g.slots));
    // A store that no longer fits its cap is read with the slots it has, then rebuilt.
    let geometry = fits.unwrap_or(Geometry {
        segment: sb.segment,
        slots: MAX_SLOTS,
    });
    let mut index = Index::new(geometry, terms.index_budget());
    for (id, &slot) in segments.clone().zip(&sb.slots) {
        index.add_segment(id, slot);
    }
    let map = SlotMap::new(geometry, segments.start, sb.slots.clone());
    let mut reader = LogReader::new(&file, &map, SCAN_CHUNK);
    let mut lsn = sb.tail;
    let mut last_seq: Option<u64> = None;
    while lsn < sb.head {
        let (header, payload) = reader.frame(lsn)?.ok_or_else(|| {
            corrupt(format!(
                "no whole frame at log position {lsn}, below the durable head {}",
                sb.head
            ))
        })?;
        let next = lsn + header.frame_len();
        if next > sb.head {
            return Err(corrupt(format!(
                "the frame at {lsn} runs past the durable head"
            )));
        }
        index.frame_at(lsn);
        match header.kind {
            Kind::Record => {
                if last_seq.is_some_and(|s| s >= header.seq) || header.seq >= sb.next_seq {
                    return Err(corrupt(format!(
                        "record {} at {lsn} is out of order (after {last_seq:?}, next_seq {})",
                        header.seq, sb.next_seq
                    )));
                }
                index.push(
                    header.seq,
                    Entry {
                        lsn,
                        at_ms: header.appended_at_ms,
                        len: header.payload_len,
                        samples: header.samples,
                    },
                );
                last_seq = Some(header.seq);
            }
            Kind::Ack => {
                let ranges = crate::frame::ack_ranges(&payload)
                    .ok_or_else(|| corrupt(format!("the ack frame at {lsn} is malformed")))?;
                for (first, last) in ranges {
                    index.mark_deleted(first, last);
                }
            }
        }
        if next / sb.segment != lsn / sb.segment {
            index.settle_budget(next / sb.segment);
        }
        lsn = next;
    }
    while let Err(need) = index.settle() {
        let span = index
            .span(need.0)
            .ok_or_else(|| Fault::Internal(format!("segment {} cannot be loaded", need.0)))?;
        let mut reader = LogReader::new(&file, &map, SCAN_CHUNK);
        let entries = reader.entries(&span, span.seqs())?;
        index.install(span.id, entries);
    }
    index.settle_budget(index.last_segment().unwrap_or(0));

    let durable_seq = sb.next_seq.max(1);
    let next_seq = durable_seq.max(sb.seq_limit);
    let window = (next_seq > durable_seq).then_some(CrashWindow {
        durable_seq,
        resumed_seq: next_seq,
    });
    let file_len = file.len()?;
    let resumed = Superblock {
        next_seq,
        seq_limit: next_seq,
        ..sb.clone()
    };
    let store = Store::new(terms, Arc::new(file), geometry, index, &resumed, file_len);
    store.recovered_from(&sb);
    store.settle_ends()?;
    let Some(fitting) = fits else {
        return rebuild(terms, &store, window);
    };
    if window.is_some() {
        // The reservation is lowered durably, so that only this open reports the window.
        store.commit()?;
    }
    store.fit_file(fitting)?;
    let report = OpenReport {
        moved_aside: None,
        error: None,
        pending_batches: store.pending_batches(),
        next_seq,
        resumed_after_crash: window,
    };
    Ok(Opened { store, report })
}

/// Migrates the old redb store at `terms.path` into a segment log in its place.
fn migrate(terms: &Terms) -> Result<Opened, Fault> {
    let old = Legacy::open(&terms.path)?;
    let started = std::time::Instant::now();
    let opened = copy_into_new(
        terms,
        old.next_seq,
        (old.evicted_batches, old.evicted_samples),
        old.window,
        |from| {
            Ok(old
                .record_from(from)?
                .map(|r| (r.seq, r.samples, r.appended_at_ms, r.payload)))
        },
    )?;
    tracing::info!(
        path = %terms.path.display(),
        batches = opened.report.pending_batches,
        next_seq = opened.report.next_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "migrated the outbox from the redb store to the segment log"
    );
    Ok(opened)
}

/// Rebuilds `store` (recovered, but not fitting this cap) as a new file in its place.
fn rebuild(terms: &Terms, store: &Store, window: Option<CrashWindow>) -> Result<Opened, Fault> {
    let (evicted_batches, evicted_samples, next_seq) = store.counters();
    let opened = copy_into_new(
        terms,
        next_seq,
        (evicted_batches, evicted_samples),
        window,
        |from| {
            Ok(store
                .read_oldest(from, 1)?
                .pop()
                .map(|r| (r.seq, r.samples, r.appended_at_ms, r.payload)))
        },
    )?;
    tracing::info!(
        path = %terms.path.display(),
        batches = opened.report.pending_batches,
        "rebuilt the outbox file for its new size cap"
    );
    Ok(opened)
}

/// Writes the records `next(from)` yields (oldest first, each the first at or after `from`)
/// into a new store beside `terms.path`, evicting the oldest if they do not fit, then puts it
/// in the path's place.
fn copy_into_new(
    terms: &Terms,
    next_seq: u64,
    evicted: (u64, u64),
    window: Option<CrashWindow>,
    next: impl FnMut(u64) -> Result<Option<(u64, u32, i64, Vec<u8>)>, Fault>,
) -> Result<Opened, Fault> {
    let mut name = OsString::from(terms.path.as_os_str());
    name.push(".rebuilding");
    let temp = PathBuf::from(name);
    let copied = copy_records(terms, &temp, next_seq, evicted, next);
    let store = match copied {
        Ok(store) => store,
        Err(fault) => {
            // A copy cut short (a full disk): give the space back; the old file is intact.
            let _ = fs::remove_file(&temp);
            return Err(fault);
        }
    };
    fs::rename(&temp, &terms.path)?;
    if let Some(dir) = terms.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    let report = OpenReport {
        moved_aside: None,
        error: None,
        pending_batches: store.pending_batches(),
        next_seq,
        resumed_after_crash: window,
    };
    Ok(Opened { store, report })
}

/// Creates a store at `temp` and copies the records `next` yields into it.
fn copy_records(
    terms: &Terms,
    temp: &Path,
    next_seq: u64,
    evicted: (u64, u64),
    mut next: impl FnMut(u64) -> Result<Option<(u64, u32, i64, Vec<u8>)>, Fault>,
) -> Result<Store, Fault> {
    let Opened { store, .. } = create(terms, temp, next_seq)?;
    let mut from = 0;
    while let Some((seq, samples, at_ms, payload)) = next(from)? {
        from = seq.saturating_add(1);
        store.copy_record(seq, samples, at_ms, payload)?;
    }
    store.close_copy(next_seq, evicted)?;
    Ok(store)
}

/// Tries to read the numbering of a damaged file without writing to it.
fn read_old_seq(path: &Path) -> Option<u64> {
    let area = {
        let mut area = vec![0u8; HEADER_AREA as usize];
        let file = fs::File::open(path).ok()?;
        let got = std::os::unix::fs::FileExt::read_at(&file, &mut area, 0).ok()?;
        area.truncate(got);
        area
    };
    if area.starts_with(&REDB_MAGIC) {
        return legacy::read_old_seq(path);
    }
    match Superblock::find(&area) {
        Found::Store(sb) => {
            let seq = sb.next_seq.max(sb.seq_limit);
            (1..=MAX_SEQ).contains(&seq).then_some(seq)
        }
        _ => None,
    }
}

/// A `seq` above any an earlier store can have handed out: ms since the epoch × 1000.
fn clock_seed() -> u64 {
    u64::try_from(now_ms())
        .unwrap_or(0)
        .saturating_mul(1000)
        .max(1)
}

fn move_aside(path: &Path) -> Result<PathBuf, Fault> {
    let mut ms = u64::try_from(now_ms()).unwrap_or(0);
    loop {
        let mut name = OsString::from(path.as_os_str());
        name.push(format!(".damaged-{ms}"));
        let aside = PathBuf::from(name);
        if !aside.exists() {
            fs::rename(path, &aside)?;
            return Ok(aside);
        }
        ms += 1;
    }
}
