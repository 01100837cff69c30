//! Configuration from the platform: the retained `fieldlink/v1/{gateway}/config` message,
//! checked, kept as the last known good config in the state directory, and handed to the
//! run loop, which applies it through the reload path.
//!
//! A message is refused, logged and named in the status (`config.error`) when it is
//! oversized, malformed, for another gateway, damaged (its `sha256`), older than the config
//! running, or invalid as `fieldlink check` sees it; the running config stays. The same
//! version again (the retained message at every reconnect) is no news. Only a config that
//! passed every check is written to disk, and only one written to disk is applied, so the
//! next start, with or without the platform, runs what the gateway ran last.

use crate::config::{RemoteConfig, parse_remote};
use fieldlink_wire::{ConfigMessage, ConfigState};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The last known good config's file in the state directory.
pub const LAST_GOOD_FILE: &str = "platform-config.json";

/// The most of a refusal's text the status carries: every error of a config with dozens
/// of them, not a message that outgrows the status.
const MAX_ERROR_BYTES: usize = 4096;

/// A config from the platform that passed every check, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Its version.
    pub version: u64,
    /// Its sections.
    pub remote: RemoteConfig,
}

/// What is kept on disk: the message as received, and when it was first applied.
#[derive(Debug, Serialize, Deserialize)]
struct LastGood {
    message: ConfigMessage,
    applied_at: i64,
}

/// How the file names a config from the platform in errors.
pub fn label(version: u64) -> String {
    format!("platform config v{version}")
}

/// The last known good config of `state_dir`, checked again (this agent may be newer than
/// the one that stored it), and the status to start with. A file that no longer passes is
/// logged and named in the status, and the agent runs its local file.
pub fn load_last_good(state_dir: &Path, gateway: &str) -> (Option<Accepted>, ConfigState) {
    let path = state_dir.join(LAST_GOOD_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (None, ConfigState::default());
        }
        Err(e) => return refused_at_start(&path, e.to_string()),
    };
    let last_good: LastGood = match serde_json::from_slice(&bytes) {
        Ok(last_good) => last_good,
        Err(e) => return refused_at_start(&path, e.to_string()),
    };
    let message = match ConfigMessage::decode(gateway, &last_good.message.to_json()) {
        Ok(message) => message,
        Err(e) => return refused_at_start(&path, e.to_string()),
    };
    match parse_remote(&message.toml, &label(message.version)) {
        Ok(remote) => {
            tracing::info!(version = message.version, file = %path.display(), "running the last config from the platform");
            let state = ConfigState {
                version: Some(message.version),
                applied_at: Some(last_good.applied_at),
                error: None,
            };
            let accepted = Accepted {
                version: message.version,
                remote,
            };
            (Some(accepted), state)
        }
        Err(errors) => refused_at_start(&path, errors.to_string()),
    }
}

fn refused_at_start(path: &Path, why: String) -> (Option<Accepted>, ConfigState) {
    tracing::error!(file = %path.display(), error = %why, "the stored config from the platform is unusable; running the local file");
    let state = ConfigState {
        error: Some(bounded(format!("{}: {why}", path.display()))),
        ..ConfigState::default()
    };
    (None, state)
}

/// What the config task is handed.
pub struct RemoteConfigContext {
    /// This gateway's id: a message for another is refused.
    pub gateway: String,
    /// Where the last known good config is kept.
    pub state_dir: PathBuf,
    /// The newest payload received on the config topic (from the publisher).
    pub payloads: watch::Receiver<Option<Vec<u8>>>,
    /// Accepted configs, to the run loop.
    pub accepted_tx: mpsc::Sender<Accepted>,
    /// The config state the status reports.
    pub state: watch::Sender<ConfigState>,
    /// Fires at shutdown.
    pub shutdown: CancellationToken,
}

/// Checks each payload received until shutdown; hands the accepted ones to the run loop.
pub async fn run(mut cx: RemoteConfigContext) {
    loop {
        tokio::select! {
            () = cx.shutdown.cancelled() => return,
            changed = cx.payloads.changed() => if changed.is_err() { return },
        }
        let Some(payload) = cx.payloads.borrow_and_update().clone() else {
            continue;
        };
        let running = cx.state.borrow().version;
        let (state_dir, gateway) = (cx.state_dir.clone(), cx.gateway.clone());
        let checked =
            tokio::task::spawn_blocking(move || check(&state_dir, &gateway, running, &payload))
                .await;
        match checked {
            Ok(Ok(None)) => {}
            Ok(Ok(Some((accepted, applied_at)))) => {
                tracing::info!(
                    version = accepted.version,
                    "applying a config from the platform"
                );
                let version = accepted.version;
                if cx.accepted_tx.send(accepted).await.is_err() {
                    return;
                }
                cx.state.send_replace(ConfigState {
                    version: Some(version),
                    applied_at: Some(applied_at),
                    error: None,
                });
            }
            Ok(Err(why)) => {
                tracing::error!(error = %why, "refused a config from the platform; the running config stays");
                cx.state
                    .send_modify(|state| state.error = Some(bounded(why)));
            }
            Err(e) => tracing::error!(error = %e, "the config check failed"),
        }
    }
}

/// Checks `payload` against the config `running`; on success stores it as the last known
/// good and returns it with the time it is applied. `Ok(None)`: the version running.
fn check(
    state_dir: &Path,
    gateway: &str,
    running: Option<u64>,
    payload: &[u8],
) -> Result<Option<(Accepted, i64)>, String> {
    let message = ConfigMessage::decode(gateway, payload).map_err(|e| e.to_string())?;
    match running {
        Some(running) if message.version == running => return Ok(None),
        Some(running) if message.version < running => {
            return Err(format!(
                "config v{} is older than v{running}, which this gateway runs",
                message.version
            ));
        }
        _ => {}
    }
    let remote = parse_remote(&message.toml, &label(message.version)).map_err(|e| e.to_string())?;
    let applied_at = fieldlink_collector_api::clock::now_ms();
    let last_good = LastGood {
        message,
        applied_at,
    };
    let json = serde_json::to_vec(&last_good).map_err(|e| e.to_string())?;
    crate::state_file::write(state_dir, LAST_GOOD_FILE, &json).map_err(|e| {
        format!(
            "cannot keep the config in {}: {e}",
            state_dir.join(LAST_GOOD_FILE).display()
        )
    })?;
    let accepted = Accepted {
        version: last_good.message.version,
        remote,
    };
    Ok(Some((accepted, applied_at)))
}

/// `text` cut to [`MAX_ERROR_BYTES`] at a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICES: &str =
        "[[device]]\nname = \"sim\"\nprotocol = \"simulator\"\n[[device.point]]\nname = \"t\"\n";

    #[test]
    fn only_a_newer_valid_config_for_this_gateway_is_kept_and_applied() {
        let dir = tempfile::tempdir().unwrap();
        let payload = |gateway: &str, version, toml: &str| {
            ConfigMessage::new(gateway, version, toml.to_owned()).to_json()
        };
        let good = payload("gw", 2, DEVICES);
        let (accepted, _) = check(dir.path(), "gw", None, &good).unwrap().unwrap();
        assert_eq!(accepted.version, 2);
        assert_eq!(accepted.remote.devices.len(), 1);
        let (loaded, state) = load_last_good(dir.path(), "gw");
        assert_eq!(loaded, Some(accepted));
        assert_eq!(state.version, Some(2));

        assert_eq!(check(dir.path(), "gw", Some(2), &good), Ok(None));
        let older = check(dir.path(), "gw", Some(2), &payload("gw", 1, DEVICES));
        assert!(older.unwrap_err().contains("older than v2"));
        let other = check(dir.path(), "gw", Some(2), &payload("gw-b", 3, DEVICES));
        assert!(other.unwrap_err().contains("not this one"));
        let invalid = check(
            dir.path(),
            "gw",
            Some(2),
            &payload("gw", 3, "[[device]]\nname = 1\n"),
        );
        let invalid = invalid.unwrap_err();
        assert!(invalid.contains("platform config v3:2:8:"), "{invalid}");
        let oversized = vec![b'x'; ConfigMessage::MAX_BYTES + 1];
        assert!(
            check(dir.path(), "gw", Some(2), &oversized)
                .unwrap_err()
                .contains("over the limit")
        );
        // Nothing refused replaced the last known good.
        assert_eq!(load_last_good(dir.path(), "gw").1.version, Some(2));
    }

    #[test]
    fn a_damaged_last_good_file_leaves_the_local_config_running() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LAST_GOOD_FILE), b"{\"message\":").unwrap();
        let (accepted, state) = load_last_good(dir.path(), "gw");
        assert_eq!(accepted, None);
        assert_eq!(state.version, None);
        assert!(state.error.unwrap().contains(LAST_GOOD_FILE));
    }
}
