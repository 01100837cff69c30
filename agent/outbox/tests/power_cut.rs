//! A power cut, not just kill -9: writes not yet fsync'd reach the disk in any order and any
//! subset of 512-byte sectors, and the file's length may or may not have changed. Whatever
//! survives, the store opens as of a durable commit: the last one before the cut, or, if the
//! cut fell while a commit's superblock was being written, that commit or the one before.

use std::path::Path;

use fieldlink_outbox::Record;
use proptest::prelude::*;

use crate::{BIG, all, open, payload};

/// The disk's unit of atomic writes.
const SECTOR: usize = 512;

/// The first bytes of the file: the two superblock copies.
const HEADER_AREA: usize = 8192;

/// What a phase does before its copy of the file is taken.
#[derive(Debug, Clone)]
struct Phase {
    /// Payload lengths to append.
    appends: Vec<usize>,
    /// Every how many stored records one is acked (the oldest), 0 for none.
    ack_every: usize,
}

fn phase() -> impl Strategy<Value = Phase> {
    (prop::collection::vec(100usize..20_000, 1..40), 0usize..4)
        .prop_map(|(appends, ack_every)| Phase { appends, ack_every })
}

fn run(outbox: &fieldlink_outbox::Outbox, phase: &Phase) {
    for (i, &len) in phase.appends.iter().enumerate() {
        outbox.append(1, |seq| payload(seq, len)).expect("append");
        if phase.ack_every > 0 && i % phase.ack_every == 0 {
            let oldest = outbox.oldest(0, 1).expect("read");
            outbox.ack(oldest[0].seq).expect("ack");
        }
    }
}

/// The file's bytes now (the outbox is open: this is what reached the file).
fn image(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read the open file")
}

/// What a power cut leaves of `synced` (the file as of its last fsync) and `written` (what
/// had been written since): each sector from either, the length of either.
fn cut(synced: &[u8], written: &[u8], picks: &[bool], longer: bool, keep_header: bool) -> Vec<u8> {
    let len = if longer {
        synced.len().max(written.len())
    } else {
        synced.len().min(written.len())
    };
    let mut out = vec![0u8; len];
    for (i, chunk) in out.chunks_mut(SECTOR).enumerate() {
        let at = i * SECTOR;
        let from_written = picks[i % picks.len()] && !(keep_header && at < HEADER_AREA);
        let source = if from_written && at < written.len() {
            written
        } else if at < synced.len() {
            synced
        } else {
            written
        };
        let end = (at + chunk.len()).min(source.len());
        if at < end {
            chunk[..end - at].copy_from_slice(&source[at..end]);
        }
    }
    out
}

/// Opens `bytes` as a store and returns its records.
fn recover(dir: &Path, name: &str, bytes: &[u8]) -> Result<Vec<Record>, TestCaseError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the image");
    let (outbox, report) = open(&path, BIG);
    prop_assert!(
        report.moved_aside.is_none(),
        "{name}: the store was damaged: {:?}",
        report.error
    );
    let records = all(&outbox);
    drop(outbox);
    Ok(records)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Commit A, then appends and acks, commit B, then appends and acks not yet committed:
    /// a cut before B's superblock recovers A, a cut while it is written A or B, a cut after
    /// it B, whichever of the unsynced sectors reached the disk.
    #[test]
    fn a_power_cut_recovers_a_durable_commit(
        a in phase(),
        b in phase(),
        c in phase(),
        picks in prop::collection::vec(any::<bool>(), 1..64),
        longer in any::<bool>(),
    ) {
        let dir = crate::tempdir();
        let path = dir.path().join("outbox.redb");
        let (outbox, _) = open(&path, BIG);
        run(&outbox, &a);
        outbox.flush().unwrap();
        let state_a = all(&outbox);
        let file_a = image(&path);
        run(&outbox, &b);
        let file_b_unsynced = image(&path);
        outbox.flush().unwrap();
        let state_b = all(&outbox);
        let file_b = image(&path);
        run(&outbox, &c);
        let file_c = image(&path);
        // Only A and B committed (no seq reservation, no room to make).
        prop_assume!(file_b_unsynced[..HEADER_AREA] == file_a[..HEADER_AREA]);
        prop_assume!(file_c[..HEADER_AREA] == file_b[..HEADER_AREA]);
        drop(outbox);

        // Before B's first fsync returned: its writes partly there, the header A's.
        let got = recover(dir.path(), "before_b", &cut(&file_a, &file_b_unsynced, &picks, longer, true))?;
        prop_assert!(got == state_a, "cut before B: not A's records");
        // While B's superblock was written: its data synced, its header copy torn or not, and
        // the file not yet shortened (that follows the commit).
        let mut synced_b = file_b.clone();
        if file_b_unsynced.len() > synced_b.len() {
            synced_b.extend_from_slice(&file_b_unsynced[synced_b.len()..]);
        }
        let torn: Vec<u8> = synced_b[..HEADER_AREA]
            .chunks(SECTOR)
            .zip(file_a[..HEADER_AREA].chunks(SECTOR))
            .enumerate()
            .flat_map(|(i, (new, old))| if picks[i % picks.len()] { new } else { old })
            .copied()
            .chain(synced_b[HEADER_AREA..].iter().copied())
            .collect();
        let got = recover(dir.path(), "during_b", &torn)?;
        prop_assert!(got == state_a || got == state_b, "cut during B: neither A's nor B's records");
        // After B: the appends since partly there.
        let got = recover(dir.path(), "after_b", &cut(&file_b, &file_c, &picks, longer, true))?;
        prop_assert!(got == state_b, "cut after B: not B's records");
    }
}
