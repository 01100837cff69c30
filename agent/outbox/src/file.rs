//! The store's file: positional reads and writes (safe from several threads at once), fsync,
//! the lock that keeps a second process out, and a switch that makes writes fail as on a full
//! disk, so that tests can exercise that path for real.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Fault;

/// When set, every write and every growth of the file fails with `ErrorKind::StorageFull`, as
/// ENOSPC does. Shared between the file and whoever injects the fault.
#[derive(Debug, Default, Clone)]
pub(crate) struct DiskFullSwitch(Arc<AtomicBool>);

impl DiskFullSwitch {
    /// Makes writes fail as on a full disk, or work again.
    #[cfg(test)]
    pub(crate) fn set(&self, full: bool) {
        self.0.store(full, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        } else {
            Ok(())
        }
    }
}

/// The open, locked file.
#[derive(Debug)]
pub(crate) struct LogFile {
    file: File,
    full: DiskFullSwitch,
}

impl LogFile {
    /// Opens (or creates) `path` and locks it against other processes and other `Outbox`es of
    /// this one.
    pub(crate) fn open(path: &Path, full: DiskFullSwitch) -> Result<Self, Fault> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(LogFile { file, full }),
            Err(TryLockError::WouldBlock) => Err(Fault::Locked),
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// Creates `path` anew (truncating any file there), locked.
    pub(crate) fn create(path: &Path, full: DiskFullSwitch) -> Result<Self, Fault> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(LogFile { file, full }),
            Err(TryLockError::WouldBlock) => Err(Fault::Locked),
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// The file's length.
    pub(crate) fn len(&self) -> Result<u64, Fault> {
        Ok(self.file.metadata()?.len())
    }

    /// Reads exactly `buf.len()` bytes at `offset`; a file that ends before is damaged.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Fault> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Fault::Corrupted(format!(
                    "the file ends before byte {} (it was truncated)",
                    offset + buf.len() as u64
                ))
            } else {
                e.into()
            }
        })
    }

    /// Reads up to `buf.len()` bytes at `offset`, fewer where the file ends; returns how many.
    pub(crate) fn read_some_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Fault> {
        let mut got = 0;
        while got < buf.len() {
            match self.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(got)
    }

    /// Writes all of `buf` at `offset`.
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Fault> {
        self.full.check()?;
        self.file.write_all_at(buf, offset)?;
        Ok(())
    }

    /// Makes every write so far durable (data, and the length when it grew).
    pub(crate) fn sync(&self) -> Result<(), Fault> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Cuts the file to `len` bytes.
    pub(crate) fn truncate(&self, len: u64) -> Result<(), Fault> {
        self.file.set_len(len)?;
        Ok(())
    }
}

/// Makes a rename or a creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Fault> {
    File::open(dir)?.sync_all()?;
    Ok(())
}
