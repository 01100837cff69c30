//! Keeps an external mosquitto's `password_file` and `acl_file` in step with the
//! enrolled gateways, and makes mosquitto re-read them.
//!
//! The password file holds one `username:$7$...` line per gateway (username = gateway id)
//! plus the platform's own ingest user. The hashes are mosquitto 2.x's PBKDF2-SHA512
//! format, computed in-process (see [`crate::secret::mosquitto_hash`]) rather than by
//! `mosquitto_passwd`, so the platform needs no mosquitto tools on its host and the
//! plain password never reaches a command line. The ACL file lets the ingest user read
//! `fieldlink/v1/#` and every other client write only under `fieldlink/v1/<username>/`.
//!
//! Both files are replaced atomically (written beside, then renamed), with mode 0640:
//! give them the group mosquitto runs as when the platform runs as another user.
//! mosquitto re-reads both on SIGHUP (`Reload::PidFile`), or by whatever command the
//! operator configures (`Reload::Command`, e.g. `systemctl reload mosquitto`).

use crate::config::{MosquittoFiles, Reload};
use crate::store::{Store, StoreError};
use std::io::Write;
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
    /// serialised, so the last enrollment's credentials always end up in the file.
    pub async fn sync(&self) -> Result<(), MosquittoError> {
        let _guard = self.lock.lock().await;
        let credentials = self.store.credentials().await?;
        let mut passwords = format!("{}:{}\n", self.ingest_username, self.ingest_password_hash);
        for (username, hash) in &credentials {
            passwords.push_str(username);
            passwords.push(':');
            passwords.push_str(hash);
            passwords.push('\n');
        }
        let acl = acl_file(&self.ingest_username);
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || {
            write_atomically(&files.password_file, passwords.as_bytes())?;
            write_atomically(&files.acl_file, acl.as_bytes())?;
            reload(&files.reload)
        })
        .await
        .map_err(|e| MosquittoError::Reload(e.to_string()))??;
        tracing::debug!(
            gateways = credentials.len(),
            "mosquitto password and ACL files updated"
        );
        Ok(())
    }
}

/// The ACL file's text.
pub fn acl_file(ingest_username: &str) -> String {
    format!(
        "# Written by fieldlink-platform on every enrollment; edits are overwritten.\n\
         # Every client may publish only under its own username (= its gateway id).\n\
         pattern write fieldlink/v1/%u/#\n\
         \n\
         # The platform's ingest reads every gateway's topics.\n\
         user {ingest_username}\n\
         topic read fieldlink/v1/#\n"
    )
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), MosquittoError> {
    let error = |e| MosquittoError::Write {
        path: path.to_owned(),
        error: e,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)
            .map_err(error)?;
        file.write_all(contents).map_err(error)?;
        file.sync_all().map_err(error)?;
    }
    std::fs::rename(&tmp, path).map_err(error)
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
