//! The outbox opening a hostile file. `Outbox::open` never panics: it opens the file, or
//! reports the damage and moves the file aside, or refuses a format it does not know; once
//! open, append, read, ack and flush work (a damage met at run time is reported once, and
//! the next call recovers).
//!
//! The file is one of: arbitrary bytes; a real store (a segment log) with some bytes
//! overwritten and maybe truncated (the superblocks' and frames' checksums catch most of
//! that); or a valid redb file whose outbox tables hold arbitrary contents, as the redb store
//! of earlier versions left them, which opening migrates (what no checksum catches: counters
//! out of step, records whose chunks are missing, extreme sequence numbers and lengths).

#![no_main]

use arbitrary::Arbitrary;
use fieldlink_outbox::{MIN_MAX_BYTES, Outbox, OutboxError, OutboxOptions};
use libfuzzer_sys::fuzz_target;
use redb::{Database, TableDefinition};
use std::path::Path;
use std::sync::OnceLock;

// The redb store's tables (agent/outbox/src/legacy.rs).
const RECORDS: TableDefinition<u64, (u32, i64, u32)> = TableDefinition::new("records");
const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_KEYS: [&str; 9] = [
    "format",
    "next_seq",
    "seq_limit",
    "batches",
    "samples",
    "payload_bytes",
    "chunks",
    "evicted_batches",
    "evicted_samples",
];

#[derive(Debug, Arbitrary)]
enum File {
    Raw(Vec<u8>),
    Patched {
        truncate_to: Option<u32>,
        patches: Vec<(u32, Vec<u8>)>,
    },
    Tables {
        meta: Vec<(u8, u64)>,
        records: Vec<(u64, (u32, i64, u32))>,
        chunks: Vec<((u64, u32), Vec<u8>)>,
    },
}

fuzz_target!(|file: File| {
    catch_panics();
    let dir = tempfile::Builder::new()
        .prefix("fieldlink-fuzz-outbox")
        .tempdir_in(scratch_dir())
        .expect("temporary directory");
    let path = dir.path().join("outbox.redb");
    write_file(&path, &file);

    let opts = OutboxOptions::new(&path, MIN_MAX_BYTES);
    let (outbox, report) = match Outbox::open(opts) {
        Ok(opened) => opened,
        Err(OutboxError::Incompatible { .. }) => return,
        Err(e) => panic!("open failed: {e}"),
    };
    if let Some(aside) = &report.moved_aside {
        assert!(aside.exists(), "moved to {}, not there", aside.display());
        assert!(report.error.is_some());
        assert_eq!(report.pending_batches, 0);
    }

    // An append works, at the latest on the second try (the first may meet the damage).
    let payload = b"{\"gateway\":\"gw\",\"seq\":1,\"samples\":[]}".to_vec();
    let seq = match outbox.append(1, |_| payload.clone()) {
        Ok(seq) => seq,
        Err(first) => outbox
            .append(1, |_| payload.clone())
            .unwrap_or_else(|e| panic!("append failed twice: {first}; then {e}")),
    };
    // Reading may meet a damaged record: reported once, and the next call recovers.
    let newest = outbox
        .newest(1)
        .or_else(|_| outbox.newest(1))
        .unwrap_or_else(|e| panic!("newest failed twice: {e}"));
    if report.moved_aside.is_some() || report.pending_batches == 0 {
        assert_eq!(newest.first().map(|r| r.seq), Some(seq));
    }
    let _ = outbox.oldest(0, 8);
    match outbox.ack(seq) {
        Ok(()) | Err(OutboxError::Corrupted { .. }) => {}
        Err(e) => panic!("ack failed: {e}"),
    }
    let _ = outbox.flush();
    drop(outbox);
});

/// redb may panic on a malformed file (an old store being migrated); the outbox catches that
/// while opening and treats the file as damaged, so a panic it catches is no failure here. One that escapes still is:
/// libFuzzer's harness aborts on it. This hook prints the message instead of aborting.
fn catch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic (the outbox may catch it): {info}");
        }));
    });
}

/// A directory in memory if there is one: the outbox fsyncs on open.
fn scratch_dir() -> &'static Path {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm } else { Path::new("/tmp") }
}

fn write_file(path: &Path, file: &File) {
    match file {
        File::Raw(bytes) => std::fs::write(path, bytes).expect("write"),
        File::Patched {
            truncate_to,
            patches,
        } => {
            let mut bytes = template().to_vec();
            for (at, patch) in patches {
                let at = *at as usize % bytes.len();
                let end = (at + patch.len()).min(bytes.len());
                bytes[at..end].copy_from_slice(&patch[..end - at]);
            }
            if let Some(len) = truncate_to {
                bytes.truncate(*len as usize % (bytes.len() + 1));
            }
            std::fs::write(path, bytes).expect("write")
        }
        File::Tables {
            meta,
            records,
            chunks,
        } => {
            let db = Database::create(path).expect("create");
            let txn = db.begin_write().expect("write");
            {
                let mut t = txn.open_table(META).expect("meta");
                for &(key, value) in meta {
                    // Mostly a real key; now and then a stray one.
                    match META_KEYS.get(usize::from(key)) {
                        Some(name) => t.insert(*name, value),
                        None => t.insert("stray", value),
                    }
                    .expect("insert");
                }
                let mut t = txn.open_table(RECORDS).expect("records");
                for (seq, value) in records {
                    t.insert(seq, value).expect("insert");
                }
                let mut t = txn.open_table(CHUNKS).expect("chunks");
                for (key, chunk) in chunks {
                    t.insert(key, chunk.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
    }
}

/// A real store: a few records appended, some acked, closed cleanly.
fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir_in(scratch_dir()).expect("temporary directory");
        let path = dir.path().join("outbox.redb");
        let (outbox, _) = Outbox::open(OutboxOptions::new(&path, MIN_MAX_BYTES)).expect("open");
        for i in 0..12u32 {
            outbox
                .append(i, |seq| {
                    format!("record {seq} ")
                        .repeat(1 + 60 * i as usize)
                        .into_bytes()
                })
                .expect("append");
        }
        outbox.ack(2).expect("ack");
        outbox.ack(3).expect("ack");
        outbox.flush().expect("flush");
        drop(outbox);
        std::fs::read(&path).expect("read")
    })
}
