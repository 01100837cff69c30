//! Owns the running collectors: starts one task per configured device and, on reload,
//! stops only the devices that were removed or changed and starts only the new or changed
//! ones; unchanged devices keep running without a gap.

use crate::collectors;
use crate::config::DeviceConfig;
use crate::telemetry::{DeviceTelemetry, Telemetry};
use fieldlink_collector_api::{CollectorContext, SampleSink};
use fieldlink_wire::Sample;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a collector gets to stop before it is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One running collector.
struct Running {
    config: DeviceConfig,
    telemetry: Arc<DeviceTelemetry>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The collectors and the channel they send into.
pub struct Supervisor {
    running: Vec<Running>,
    samples_tx: mpsc::Sender<Vec<Sample>>,
    telemetry: Arc<Telemetry>,
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Devices started (new or changed).
    pub started: Vec<String>,
    /// Devices stopped (removed or changed).
    pub stopped: Vec<String>,
    /// Devices left running.
    pub unchanged: usize,
}

impl Supervisor {
    /// A supervisor whose collectors send into `samples_tx`.
    pub fn new(samples_tx: mpsc::Sender<Vec<Sample>>, telemetry: Arc<Telemetry>) -> Self {
        Supervisor {
            running: Vec::new(),
            samples_tx,
            telemetry,
        }
    }

    fn start(&self, config: DeviceConfig) -> Running {
        let telemetry = Arc::new(DeviceTelemetry::new(
            config.name.clone(),
            config.kind.protocol(),
        ));
        let stop = CancellationToken::new();
        let cx = CollectorContext {
            sink: SampleSink::new(self.samples_tx.clone()),
            shutdown: stop.clone(),
            stats: telemetry.stats.clone(),
        };
        let task = tokio::spawn(collectors::build(&config).run(cx));
        Running {
            config,
            telemetry,
            stop,
            task,
        }
    }

    /// Makes the running collectors match `devices`.
    pub async fn apply(&mut self, devices: &[DeviceConfig]) -> Changes {
        let mut changes = Changes::default();
        let mut previous = std::mem::take(&mut self.running);
        let mut stopping = Vec::new();
        for device in devices {
            match previous.iter().position(|r| r.config == *device) {
                Some(i) => {
                    self.running.push(previous.swap_remove(i));
                    changes.unchanged += 1;
                }
                None => {
                    if let Some(i) = previous.iter().position(|r| r.config.name == device.name) {
                        let old = previous.swap_remove(i);
                        changes.stopped.push(old.config.name.to_string());
                        stopping.push(old);
                    }
                    changes.started.push(device.name.to_string());
                    self.running.push(self.start(device.clone()));
                }
            }
        }
        for removed in previous {
            changes.stopped.push(removed.config.name.to_string());
            stopping.push(removed);
        }
        if let Ok(mut list) = self.telemetry.devices.lock() {
            *list = self.running.iter().map(|r| r.telemetry.clone()).collect();
        }
        stop_all(stopping).await;
        changes
    }

    /// Stops every collector; returns once they have (or were aborted).
    pub async fn shutdown(self) {
        stop_all(self.running).await;
    }
}

async fn stop_all(running: Vec<Running>) {
    for r in &running {
        r.stop.cancel();
    }
    for r in running {
        let abort = r.task.abort_handle();
        if tokio::time::timeout(STOP_TIMEOUT, r.task).await.is_err() {
            tracing::warn!(device = %r.config.name, "the collector did not stop in time; aborting it");
            abort.abort();
        }
    }
}
