//! A harness for collectors' tests (feature `testing`): a collector on its own task, its
//! sink a real channel, stopped and checked for a prompt return.

use crate::{Collector, CollectorContext, DeviceStats, SampleSink};
use fieldlink_wire::{Quality, Sample};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A collector running on its own task.
pub struct Collecting {
    /// The batches it handed over.
    pub rx: mpsc::Receiver<Vec<Sample>>,
    /// Its counters.
    pub stats: Arc<DeviceStats>,
    /// Fires to stop it.
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Collecting {
    /// Runs `collector` with a channel of `capacity` batches.
    pub fn run(collector: Box<dyn Collector>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(DeviceStats::default());
        let shutdown = CancellationToken::new();
        let ctx = CollectorContext {
            sink: SampleSink::new(tx),
            shutdown: shutdown.clone(),
            stats: Arc::clone(&stats),
        };
        let task = tokio::spawn(collector.run(ctx));
        Collecting {
            rx,
            stats,
            shutdown,
            task: Some(task),
        }
    }

    /// The next batch, within 5 s.
    pub async fn batch(&mut self) -> Vec<Sample> {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a batch within 5 s")
            .expect("the collector is running")
    }

    /// Batches until one satisfies `done`, returning it; within `within`.
    pub async fn batch_where(
        &mut self,
        within: Duration,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let wait = async {
            loop {
                let batch = self.rx.recv().await.expect("the collector is running");
                if done(&batch) {
                    return batch;
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .expect("the awaited batch in time")
    }

    /// Cancels the collector and checks that it returns within half a second, without
    /// panicking.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_millis(500), task)
            .await
            .expect("the collector returns in time")
            .expect("the collector does not panic");
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A batch's samples by point name, checking each point appears once.
pub fn by_point(batch: &[Sample]) -> HashMap<&str, &Sample> {
    let map: HashMap<&str, &Sample> = batch.iter().map(|s| (&*s.point, s)).collect();
    assert_eq!(map.len(), batch.len(), "a point appears twice in {batch:?}");
    map
}

/// The error text of a bad sample, or `None` for a good one.
pub fn error(sample: &Sample) -> Option<&str> {
    match &sample.quality {
        Quality::Bad(e) => Some(e),
        _ => None,
    }
}

/// Runs `test`, failing it if it takes more than 20 s instead of hanging the run.
pub async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("test did not finish within 20 s")
}

/// A pseudo-terminal pair made by socat, for serial lines in tests: one end for the
/// device's simulator, the other for the collector. Killed and removed on drop.
pub struct PtyPair {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl PtyPair {
    /// Starts socat, or returns `None` (after saying why) when it is not installed and
    /// `FIELDLINK_REQUIRE_SOCAT` is not `1`; with it set, a missing socat fails the test.
    pub fn start() -> Option<PtyPair> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fieldlink-pty-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the pty links");
        let (a, b) = (dir.join("master"), dir.join("slave"));
        let spawned = std::process::Command::new("socat")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let required = std::env::var("FIELDLINK_REQUIRE_SOCAT").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "socat is required (FIELDLINK_REQUIRE_SOCAT=1) but cannot be run: {e}"
                );
                eprintln!("SKIPPED: socat not found ({e}); install it to test serial lines");
                return None;
            }
        };
        let pair = PtyPair { child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !(a.exists() && b.exists()) {
            assert!(
                std::time::Instant::now() < deadline,
                "socat made no pty pair"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(pair)
    }

    /// The path of one end: `"master"` or `"slave"`.
    pub fn path(&self, end: &str) -> String {
        self.dir.join(end).display().to_string()
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
