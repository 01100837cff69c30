//! Files in the state directory that must never be seen half written: written to a
//! temporary file, synced, then renamed over the old one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` as `state_dir/name`, mode 0600 (the directory 0700), replacing any
/// earlier file atomically; returns the file's path.
pub fn write(state_dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let target = state_dir.join(name);
    std::fs::create_dir_all(state_dir)?;
    std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))?;
    let temp = state_dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, &target)?;
    Ok(target)
}
