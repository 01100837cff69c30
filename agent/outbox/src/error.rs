//! The outbox's error type, how a failure inside the outbox is classified before it is given
//! a path, and the mapping of redb's errors (met while migrating an old store) onto it.

use std::io;
use std::path::PathBuf;

/// What went wrong in an outbox operation. Each variant says how the caller reacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The file system holding the store is full or over quota, or the file may not grow
    /// (ENOSPC, EDQUOT, EFBIG).
    ///
    /// Report it (status, metrics, a log line) and keep running: later calls succeed once space
    /// is freed, after the store is reopened from its file, which the outbox does by itself.
    /// Records appended since the last successful [`flush`](crate::Outbox::flush) may have been
    /// lost; acks since then may be undone (the records come back and are sent again).
    #[error("disk full: cannot write the outbox file {}: {error}", path.display())]
    DiskFull {
        /// The store's file.
        path: PathBuf,
        /// The error the file system returned (in the message, so not repeated as a cause).
        error: io::Error,
    },

    /// Reading or writing the store failed for another reason than a full disk (EIO, a
    /// permission changed under us, ...).
    ///
    /// Report it and retry later, as for [`DiskFull`](Self::DiskFull); the same loss applies. If
    /// it persists, the storage is failing.
    #[error("I/O error on the outbox file {}: {error}", path.display())]
    Io {
        /// The store's file.
        path: PathBuf,
        /// The underlying error (in the message, so not repeated as a cause).
        error: io::Error,
    },

    /// The store was found damaged while running (a checksum mismatch, a malformed record).
    ///
    /// Report it and keep running: the next call reopens the file and, if it is found damaged,
    /// moves it aside and starts a fresh store without reusing any sequence number (logged as an
    /// error; the records in the damaged file are not sent).
    #[error("the outbox file {} is damaged: {detail}", path.display())]
    Corrupted {
        /// The store's file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },

    /// Another process (or another `Outbox` in this one) has the file open.
    ///
    /// Fatal at startup: two agents must not share a state directory. Stop and tell the operator.
    #[error("the outbox file {} is in use by another process", path.display())]
    Locked {
        /// The store's file.
        path: PathBuf,
    },

    /// The file is a store in a format this version cannot read (written by a newer fieldlink,
    /// or by a redb older than the one format 1 used). It is left untouched.
    ///
    /// Fatal at startup: run the fieldlink version that wrote it, or move the file away by hand.
    #[error("the outbox file {} has an unsupported format: {detail}", path.display())]
    Incompatible {
        /// The store's file.
        path: PathBuf,
        /// Which format was found.
        detail: String,
    },

    /// The options cannot work (for example `max_bytes` below the minimum store size).
    ///
    /// A configuration error: report it to whoever wrote the configuration.
    #[error("invalid outbox options: {0}")]
    InvalidOptions(String),

    /// One record is too large for the configured size cap.
    ///
    /// Nothing was stored and no sequence number was used. Split the batch (fewer samples per
    /// batch) or raise the cap.
    #[error("a record of {bytes} bytes is too large for the outbox (at most {max} bytes)")]
    RecordTooLarge {
        /// The payload's size.
        bytes: u64,
        /// The largest payload the current cap accepts.
        max: u64,
    },

    /// An outbox invariant did not hold (or redb, reading an old store, reported something
    /// that cannot happen). A bug: report it with the message; retrying may work.
    #[error("internal outbox error: {0}")]
    Internal(String),
}

/// How a failure is to be treated, before it is given a path.
#[derive(Debug)]
pub(crate) enum Fault {
    DiskFull(io::Error),
    Io(io::Error),
    Corrupted(String),
    Locked,
    Incompatible(String),
    TooLarge { bytes: u64, max: u64 },
    Internal(String),
}

impl Fault {
    /// Whether the file must be dropped and reopened (recovering its last durable commit)
    /// before it can be used again: after a failed write or fsync the file's contents past
    /// that commit are not to be trusted, and a damaged record means recovery must look.
    pub(crate) fn needs_reopen(&self) -> bool {
        matches!(
            self,
            Fault::DiskFull(_) | Fault::Io(_) | Fault::Corrupted(_)
        )
    }

    /// Whether this error, met while opening an existing file, means the file is damaged (and
    /// is to be moved aside), rather than that it could not be opened right now.
    pub(crate) fn is_damage(&self) -> bool {
        matches!(self, Fault::Corrupted(_))
    }

    /// What went wrong, in words.
    pub(crate) fn text(&self) -> String {
        match self {
            Fault::DiskFull(e) | Fault::Io(e) => e.to_string(),
            Fault::Corrupted(s) | Fault::Incompatible(s) | Fault::Internal(s) => s.clone(),
            Fault::Locked => "in use by another process".to_string(),
            Fault::TooLarge { bytes, max } => format!("record of {bytes} bytes, at most {max}"),
        }
    }

    /// The caller's error, naming the store's file.
    pub(crate) fn into_error(self, path: &std::path::Path) -> OutboxError {
        let path = path.to_path_buf();
        match self {
            Fault::DiskFull(error) => OutboxError::DiskFull { path, error },
            Fault::Io(error) => OutboxError::Io { path, error },
            Fault::Corrupted(detail) => OutboxError::Corrupted { path, detail },
            Fault::Locked => OutboxError::Locked { path },
            Fault::Incompatible(detail) => OutboxError::Incompatible { path, detail },
            Fault::TooLarge { bytes, max } => OutboxError::RecordTooLarge { bytes, max },
            Fault::Internal(detail) => OutboxError::Internal(detail),
        }
    }
}

/// Whether an I/O error means "no space to write" (the file system is full or over quota, or
/// the file may not grow).
pub(crate) fn is_storage_full(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

impl From<io::Error> for Fault {
    fn from(err: io::Error) -> Self {
        if is_storage_full(&err) {
            Fault::DiskFull(err)
        } else if matches!(
            err.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        ) {
            // redb reports "not a redb database" (bad magic number) as InvalidData, and a read
            // past the end of a truncated file comes back as UnexpectedEof.
            Fault::Corrupted(err.to_string())
        } else {
            Fault::Io(err)
        }
    }
}

impl From<redb::Error> for Fault {
    fn from(err: redb::Error) -> Self {
        match err {
            redb::Error::Io(err) => err.into(),
            redb::Error::Corrupted(detail) => Fault::Corrupted(detail),
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Fault::Locked,
            redb::Error::UpgradeRequired(version) => {
                Fault::Incompatible(format!("redb file format {version} needs an upgrade"))
            }
            // A latched earlier I/O failure: the cause was reported when it happened.
            redb::Error::PreviousIo => Fault::Io(io::Error::other(
                "an earlier I/O error left the store unusable until it is reopened",
            )),
            redb::Error::TableTypeMismatch { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)
            | redb::Error::TypeDefinitionChanged { .. } => {
                Fault::Corrupted(format!("not an outbox store: {err}"))
            }
            other => Fault::Internal(other.to_string()),
        }
    }
}

macro_rules! fault_from_redb {
    ($($ty:ty),*) => {
        $(impl From<$ty> for Fault {
            fn from(err: $ty) -> Self {
                redb::Error::from(err).into()
            }
        })*
    };
}

fault_from_redb!(
    redb::DatabaseError,
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);
