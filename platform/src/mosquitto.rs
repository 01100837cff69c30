//! Keeps an external mosquitto's `password_file` and `acl_file` in step with the
//! enrolled gateways, and makes mosquitto re-read them.
//!
//! The password file holds one `username:$7$...` line per gateway (username = gateway id)
//! plus the platform's own ingest user. The hashes are mosquitto 2.x's PBKDF2-SHA512
//! format, computed in-process (see [`crate::secret::mosquitto_hash`]) rather than by
//! `mosquitto_passwd`, so the platform needs no mosquitto tools on its host and the
//! plain password never reaches a command line. The ACL file states the rules of
//! [`crate::broker_acl`].
//!
//! Both files are replaced atomically (written beside, then renamed), with mode 0640:
//! give them the group mosquitto runs as when the platform runs as another user.
//! mosquitto re-reads both on SIGHUP (`Reload::PidFile`), or by whatever command the
//! operator configures (`Reload::Command`, e.g. `systemctl reload mosquitto`).
//!
//! Any number of platform instances may manage the same files (behind a load balancer,
//! each with the `--mosquitto-*` flags). Three rules keep them from undoing each other:
//! - each write goes to a temporary file of its own (process id and a counter in its
//!   name), so no instance renames another's half-written file away;
//! - an exclusive lock on `<password_file>.lock` (`flock`, which holds across processes
//!   on one host) is held from reading the credentials out of the database until
//!   mosquitto was told to reload, so the instance that writes last also read last;
//! - the password file's first line carries the credentials' version from the database
//!   (raised by every enrollment, [`crate::store::Credentials`]), and a file is never
//!   replaced by one of an older version, should the lock not hold (a file system
//!   without `flock`).

use crate::config::{MosquittoFiles, Reload};
use crate::store::{Store, StoreError};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Why mosquitto's files could not be updated. The enrollment that triggered it failed
/// (500); the integrator retries, which rotates the credentials again.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    /// The gateways' credentials could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be written (directory missing, no permission, disk full).
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// mosquitto could not be told to reload (pid file missing or stale, command failed).
    #[error("cannot make mosquitto reload: {0}")]
    Reload(String),
}

/// Writes mosquitto's password and ACL files and makes it reload.
pub struct MosquittoSync {
    files: MosquittoFiles,
    ingest_username: String,
    ingest_password_hash: String,
    store: Store,
    lock: tokio::sync::Mutex<()>,
}

impl MosquittoSync {
    /// A syncer for `files`, with the ingest's username and its password's `$7$` hash.
    pub fn new(
        files: MosquittoFiles,
        ingest_username: String,
        ingest_password_hash: String,
        store: Store,
    ) -> Self {
        MosquittoSync {
            files,
            ingest_username,
            ingest_password_hash,
            store,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Rewrites both files from the store and makes mosquitto reload them. Calls are
    /// serialised, here and across processes, so the last enrollment's credentials always
    /// end up in the file.
    pub async fn sync(&self) -> Result<(), MosquittoError> {
        let _guard = self.lock.lock().await;
        let lock_path = lock_path(&self.files.password_file);
        let lock = tokio::task::spawn_blocking(move || lock_exclusive(&lock_path))
            .await
            .map_err(|e| MosquittoError::Reload(e.to_string()))??;
        let credentials = self.store.credentials().await?;
        let passwords = password_file(
            credentials.version,
            &self.ingest_username,
            &self.ingest_password_hash,
            &credentials.users,
        );
        let acl = crate::broker_acl::mosquitto_acl(&self.ingest_username);
        let files = self.files.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let installed = installed_version(&files.password_file);
            if installed.is_some_and(|installed| installed > credentials.version) {
                return Ok(installed);
            }
            write_atomically(&files.password_file, passwords.as_bytes())?;
            write_atomically(&files.acl_file, acl.as_bytes())?;
            reload(&files.reload)?;
            drop(lock);
            Ok::<_, MosquittoError>(None)
        })
        .await
        .map_err(|e| MosquittoError::Reload(e.to_string()))??;
        match installed {
            Some(newer) => tracing::debug!(
                ours = credentials.version,
                installed = newer,
                "mosquitto password file already newer; left as it is"
            ),
            None => tracing::debug!(
                gateways = credentials.users.len(),
                version = credentials.version,
                "mosquitto password and ACL files updated"
            ),
        }
        Ok(())
    }
}

/// The first line of the password file: mosquitto skips lines that start with `#`.
const VERSION_LINE: &str = "# fieldlink credentials version ";

/// The password file's text: the version line, the ingest's user, then one line per
/// gateway.
fn password_file(
    version: u64,
    ingest_username: &str,
    ingest_password_hash: &str,
    users: &[(String, String)],
) -> String {
    let mut text = format!("{VERSION_LINE}{version}\n{ingest_username}:{ingest_password_hash}\n");
    for (username, hash) in users {
        text.push_str(username);
        text.push(':');
        text.push_str(hash);
        text.push('\n');
    }
    text
}

/// The credentials' version of the password file at `path`, if it has one.
fn installed_version(path: &Path) -> Option<u64> {
    let mut first = String::new();
    std::io::BufReader::new(std::fs::File::open(path).ok()?)
        .read_line(&mut first)
        .ok()?;
    first.strip_prefix(VERSION_LINE)?.trim_end().parse().ok()
}

/// The lock file beside the password file.
fn lock_path(password_file: &Path) -> PathBuf {
    let mut name = password_file.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    password_file.with_file_name(name)
}

/// Opens (creating) the lock file and waits for its exclusive lock, released when the
/// returned file is closed (also if the process dies).
fn lock_exclusive(path: &Path) -> Result<std::fs::File, MosquittoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let error = |e| MosquittoError::Write {
        path: path.to_owned(),
        error: e,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.lock().map_err(error)?;
    Ok(file)
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), MosquittoError> {
    let error = |e| MosquittoError::Write {
        path: path.to_owned(),
        error: e,
    };
    // Unique per process and call: another writer's temporary file is never ours.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        error(e)
    })
}

fn reload(how: &Reload) -> Result<(), MosquittoError> {
    match how {
        Reload::None => Ok(()),
        Reload::PidFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| MosquittoError::Reload(format!("{}: {e}", path.display())))?;
            let pid = text
                .trim()
                .parse::<i32>()
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .ok_or_else(|| {
                    MosquittoError::Reload(format!("{} holds no process id", path.display()))
                })?;
            rustix::process::kill_process(pid, rustix::process::Signal::HUP).map_err(|e| {
                MosquittoError::Reload(format!("SIGHUP to process {}: {e}", pid.as_raw_nonzero()))
            })
        }
        Reload::Command(command) => {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .status()
                .map_err(|e| MosquittoError::Reload(format!("{command:?}: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(MosquittoError::Reload(format!(
                    "{command:?} exited with {status}"
                )))
            }
        }
    }
}
