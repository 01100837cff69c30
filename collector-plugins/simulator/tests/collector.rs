use fieldlink_collector_api::{Collector, CollectorContext, DeviceStats, SampleSink};
use fieldlink_simulator::{Signal, SimPoint, SimulatorCollector, SimulatorDevice, seed_for};
use fieldlink_wire::{Quality, Sample};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const BOUND: Duration = Duration::from_secs(10);

fn device(poll: Duration) -> SimulatorDevice {
    SimulatorDevice {
        name: "sim-1".into(),
        poll,
        points: vec![
            SimPoint {
                name: "temperature".into(),
                signal: Signal::Sine,
            },
            SimPoint {
                name: "parts".into(),
                signal: Signal::Counter,
            },
            SimPoint {
                name: "door".into(),
                signal: Signal::Toggle,
            },
        ],
    }
}

struct Running {
    rx: mpsc::Receiver<Vec<Sample>>,
    shutdown: CancellationToken,
    stats: Arc<DeviceStats>,
    task: JoinHandle<()>,
}

fn start(device: SimulatorDevice, capacity: usize) -> Running {
    let (tx, rx) = mpsc::channel(capacity);
    let shutdown = CancellationToken::new();
    let stats = Arc::new(DeviceStats::default());
    let ctx = CollectorContext {
        sink: SampleSink::new(tx),
        shutdown: shutdown.clone(),
        stats: Arc::clone(&stats),
    };
    let collector: Box<dyn Collector> = Box::new(SimulatorCollector::new(device));
    assert_eq!(&**collector.name(), "sim-1");
    let task = tokio::spawn(collector.run(ctx));
    Running {
        rx,
        shutdown,
        stats,
        task,
    }
}

async fn recv(rx: &mut mpsc::Receiver<Vec<Sample>>) -> Vec<Sample> {
    timeout(BOUND, rx.recv())
        .await
        .expect("a cycle within the bound")
        .expect("collector alive")
}

#[tokio::test(start_paused = true)]
async fn each_tick_sends_one_good_sample_per_point_and_cancel_stops_it() {
    let mut sim = start(device(Duration::from_secs(1)), 16);
    let dev = device(Duration::ZERO);
    for _ in 0..5 {
        let batch = recv(&mut sim.rx).await;
        assert_eq!(batch.len(), 3);
        let ts = batch[0].ts;
        for (sample, point) in batch.iter().zip(&dev.points) {
            assert_eq!(&*sample.device, "sim-1");
            assert_eq!(sample.point, point.name);
            assert_eq!(sample.ts, ts, "one timestamp per tick");
            assert_eq!(sample.quality, Quality::Good);
            assert_eq!(sample.value, point.signal.value(seed_for(&point.name), ts));
        }
    }
    assert!(sim.stats.cycles.load(Ordering::Relaxed) >= 5);
    assert!(sim.stats.connected.load(Ordering::Relaxed));
    sim.shutdown.cancel();
    timeout(BOUND, sim.task)
        .await
        .expect("stops on cancel")
        .expect("no panic");
    assert!(!sim.stats.connected.load(Ordering::Relaxed));
}

#[tokio::test(start_paused = true)]
async fn ticks_follow_the_poll_period() {
    let mut sim = start(device(Duration::from_millis(250)), 16);
    let started = tokio::time::Instant::now();
    for _ in 0..9 {
        recv(&mut sim.rx).await;
    }
    // Nine ticks: at 0, 250, ..., 2000 ms of (paused) time.
    assert_eq!(started.elapsed(), Duration::from_millis(2000));
    assert_eq!(sim.stats.missed_ticks.load(Ordering::Relaxed), 0);
    sim.shutdown.cancel();
    timeout(BOUND, sim.task)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}

#[tokio::test(start_paused = true)]
async fn ticks_missed_while_the_pipeline_is_full_are_skipped_and_counted() {
    // Room for one cycle: the tick at 100 ms waits in `send` while nobody receives.
    let mut sim = start(device(Duration::from_millis(100)), 1);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    // Ticks 0 and 100 were sent; 200 is handed out late, then 300..=1000 are skipped and
    // the next is 1100.
    for _ in 0..4 {
        recv(&mut sim.rx).await;
    }
    assert_eq!(sim.stats.missed_ticks.load(Ordering::Relaxed), 8);
    sim.shutdown.cancel();
    timeout(BOUND, sim.task)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}

#[tokio::test]
async fn returns_when_the_sink_closes() {
    let sim = start(device(Duration::from_millis(10)), 1);
    drop(sim.rx);
    timeout(BOUND, sim.task)
        .await
        .expect("returns when the sink closes")
        .expect("no panic");
}

#[tokio::test]
async fn zero_poll_generates_continuously_with_increasing_timestamps() {
    let mut sim = start(device(Duration::ZERO), 64);
    let mut last = i64::MIN;
    for _ in 0..2000 {
        let batch = recv(&mut sim.rx).await;
        assert_eq!(batch.len(), 3);
        assert!(batch[0].ts > last, "{} after {last}", batch[0].ts);
        last = batch[0].ts;
    }
    sim.shutdown.cancel();
    // It stops even while the pipeline is full and nobody drains it.
    timeout(BOUND, sim.task)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}
