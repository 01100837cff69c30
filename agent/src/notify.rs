//! systemd integration through the `sd_notify` protocol: `READY=1` once the config is
//! loaded and the outbox is open, `WATCHDOG=1` only while the pipeline really makes
//! progress (the batcher's and publisher's loops keep turning and the outbox can write),
//! `RELOADING=1` around a reload and `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET`
//! (not started by systemd) every call does nothing.

use crate::status;
use crate::telemetry::Telemetry;
use fieldlink_collector_api::clock;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sends notifications to the service manager.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
            };
            // Never block a runtime thread on a receiver that stopped reading (a full
            // datagram queue): a notification that cannot go out at once is dropped.
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some((socket, addr))
        });
        Notifier { target }
    }

    /// Sends `state` (e.g. `READY=1`); failures are logged once at debug level.
    pub fn notify(&self, state: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            tracing::debug!(error = %e, state, "cannot notify the service manager");
        }
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process).
pub fn watchdog_interval() -> Option<Duration> {
    let ours = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    if !ours {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pets the watchdog at half its interval, but only while the agent reports no problem:
/// a stuck batcher or publisher, or an outbox that cannot write, stops the petting, and
/// systemd restarts the service.
pub async fn watchdog(
    telemetry: Arc<Telemetry>,
    notifier: Arc<Notifier>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval / 2);
    let mut was_healthy = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let problems = status::problems(&telemetry, clock::now_ms());
        if problems.is_empty() {
            notifier.notify("WATCHDOG=1");
        } else if was_healthy {
            tracing::error!(problems = %problems.join("; "), "not petting the watchdog");
        }
        was_healthy = problems.is_empty();
    }
}
