//! Integration tests of the outbox, against real files in a temporary directory.

mod basics;
mod cap;
mod concurrency;
mod damage;
mod durability;
mod log;
mod migration;
mod model;
mod power_cut;
mod states;
mod throughput;

use std::path::{Path, PathBuf};

use fieldlink_outbox::{OpenReport, Outbox, OutboxOptions, Record};

/// A temporary directory, on tmpfs where there is one: the tests check what reaches the file,
/// not how long fsync takes (the crash tests copy the file, see [`crash`]).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary directory")
}

/// A cap large enough that nothing is evicted in tests that are not about the cap.
pub const BIG: u64 = 64 * 1024 * 1024;

pub fn opts(path: &Path, max_bytes: u64) -> OutboxOptions {
    OutboxOptions::new(path, max_bytes)
}

pub fn open(path: &Path, max_bytes: u64) -> (Outbox, OpenReport) {
    Outbox::open(opts(path, max_bytes)).expect("open outbox")
}

/// A payload that names its seq, so that a record read back can be checked against it.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = format!("seq={seq};").into_bytes();
    p.resize(len, b'a' + (seq % 26) as u8);
    p
}

pub fn append(outbox: &Outbox, len: usize) -> u64 {
    outbox.append(1, |seq| payload(seq, len)).expect("append")
}

pub fn all(outbox: &Outbox) -> Vec<Record> {
    outbox.oldest(0, usize::MAX).expect("read")
}

pub fn seqs(outbox: &Outbox) -> Vec<u64> {
    all(outbox).into_iter().map(|r| r.seq).collect()
}

/// What kill -9 leaves behind: a copy of the file taken while the outbox is open holds exactly
/// what reached the file (redb writes its header only on durable commits). Returns the copy's
/// path; the original outbox is dropped afterwards and its file abandoned.
pub fn crash(outbox: Outbox, path: &Path, n: usize) -> PathBuf {
    let copy = path.with_extension(format!("crash{n}"));
    std::fs::copy(path, &copy).expect("copy the open file");
    drop(outbox);
    copy
}
