//! Running a collector against the test server and reading what it hands over.

use fieldlink_collector_api::{Collector, CollectorContext, DeviceStats, SampleSink};
use fieldlink_opcua::{
    Identity, Mode, NodeAddress, OpcuaCollector, OpcuaDevice, OpcuaPoint, Pki, PolicyChoice,
    Security, SecurityMode, ServerTrust,
};
use fieldlink_wire::{Quality, Sample, Value};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A device reading `points` (point name, NodeId text) from `endpoint`, anonymous, without
/// security, subscribed at 100 ms; its PKI in `state`.
pub fn device(endpoint: &str, state: &Path, points: &[(&str, String)]) -> OpcuaDevice {
    OpcuaDevice {
        name: Arc::from("cnc-7"),
        endpoint: endpoint.to_owned(),
        mode: Mode::Subscription {
            publishing_interval: Duration::from_millis(100),
        },
        timeout: Duration::from_secs(2),
        security: Security {
            mode: SecurityMode::None,
            policy: PolicyChoice::Auto,
        },
        identity: Identity::Anonymous,
        trust: ServerTrust::TrustedOnly,
        pki: Pki::new(state, Some("gw-test".to_owned()), "agent.toml"),
        points: points
            .iter()
            .map(|(name, node)| OpcuaPoint {
                name: Arc::from(*name),
                node: node.parse::<NodeAddress>().expect("test NodeId"),
                sampling_interval: Duration::from_millis(50),
                queue_size: NonZeroU32::new(10).expect("10"),
                deadband: None,
            })
            .collect(),
    }
}

/// A running collector and what it delivered.
pub struct Running {
    pub stop: CancellationToken,
    pub stats: Arc<DeviceStats>,
    task: JoinHandle<()>,
    rx: mpsc::Receiver<Vec<Sample>>,
    /// Everything received so far, in order.
    pub received: Vec<Sample>,
}

impl Running {
    /// Starts the collector for `device`.
    pub fn start(device: OpcuaDevice) -> Running {
        let (tx, rx) = mpsc::channel(1024);
        let stop = CancellationToken::new();
        let stats = Arc::new(DeviceStats::default());
        let ctx = CollectorContext {
            sink: SampleSink::new(tx),
            shutdown: stop.clone(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(Box::new(OpcuaCollector::new(device)).run(ctx));
        Running {
            stop,
            stats,
            task,
            rx,
            received: Vec::new(),
        }
    }

    /// Receives until `done` holds for what was received since this call (true) or
    /// `limit` passes (false).
    pub async fn until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&[Sample]) -> bool,
    ) -> bool {
        let start = self.received.len();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done(&self.received[start..]) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(batch)) => self.received.extend(batch),
                Ok(None) | Err(_) => return done(&self.received[start..]),
            }
        }
    }

    /// Stops the collector; it must return promptly.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the collector stops within 10 s after shutdown")
            .expect("the collector does not panic");
        self.received
    }
}

/// The latest sample of each point among `samples`.
pub fn latest(samples: &[Sample]) -> HashMap<String, Sample> {
    let mut map = HashMap::new();
    for s in samples {
        map.insert(s.point.to_string(), s.clone());
    }
    map
}

/// True if `samples` hold a good sample of `point` with `value`.
pub fn has_good(samples: &[Sample], point: &str, value: &Value) -> bool {
    samples
        .iter()
        .any(|s| &*s.point == point && s.quality == Quality::Good && &s.value == value)
}

/// True if `samples` hold a bad sample of `point` whose error starts with `prefix`.
pub fn has_bad(samples: &[Sample], point: &str, prefix: &str) -> bool {
    samples.iter().any(|s| {
        &*s.point == point && matches!(&s.quality, Quality::Bad(e) if e.starts_with(prefix))
    })
}
