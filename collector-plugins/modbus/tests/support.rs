//! A tokio-modbus TCP server playing the device, and a harness running the collector with
//! a real channel as its sink.

use fieldlink_collector_api::{
    Area, Collector, CollectorContext, DataType, DeviceStats, SampleSink, WordOrder,
};
use fieldlink_modbus::{ModbusTcpCollector, PlanLimits, PointSpec, TcpDevice};
use fieldlink_wire::Sample;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// The most any one test may take; a hang fails instead of blocking the run.
pub async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("test did not finish within 20 s")
}

/// The simulated device: its memory (an address missing from a map is illegal) and how
/// it misbehaves.
#[derive(Default)]
pub struct TestDevice {
    pub holding: HashMap<u16, u16>,
    pub input: HashMap<u16, u16>,
    pub coils: HashMap<u16, bool>,
    pub discrete: HashMap<u16, bool>,
    /// Units answered; requests for other units get exception 0B, or silence.
    pub units: Vec<u8>,
    /// Never answer requests for units not in `units`, like a gateway without timeouts.
    pub silent_for_unknown_units: bool,
    /// Requests whose range includes this holding address are answered this much later.
    pub slow_holding: Option<(u16, Duration)>,
    /// The very first request is answered this much later.
    pub slow_first: Duration,
    first_done: AtomicBool,
    /// Requests received.
    pub requests: AtomicUsize,
}

impl TestDevice {
    /// An empty device answering unit 1.
    pub fn new() -> Self {
        TestDevice {
            units: vec![1],
            ..TestDevice::default()
        }
    }

    /// Stores `words` in holding registers from `address` on.
    pub fn set_holding(&mut self, address: u16, words: &[u16]) {
        for (a, w) in (address..).zip(words) {
            self.holding.insert(a, *w);
        }
    }

    /// Stores `words` in input registers from `address` on.
    pub fn set_input(&mut self, address: u16, words: &[u16]) {
        for (a, w) in (address..).zip(words) {
            self.input.insert(a, *w);
        }
    }

    async fn answer(&self, req: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if !self.units.contains(&req.slave) {
            if self.silent_for_unknown_units {
                return Ok(None);
            }
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        if !self.first_done.swap(true, Ordering::SeqCst) && !self.slow_first.is_zero() {
            tokio::time::sleep(self.slow_first).await;
        }
        if let (Some((slow, delay)), Request::ReadHoldingRegisters(address, quantity)) =
            (self.slow_holding, &req.request)
            && (u32::from(*address)..u32::from(*address) + u32::from(*quantity))
                .contains(&u32::from(slow))
        {
            tokio::time::sleep(delay).await;
        }
        let response = match req.request {
            Request::ReadHoldingRegisters(a, q) => {
                Response::ReadHoldingRegisters(read(&self.holding, a, q)?)
            }
            Request::ReadInputRegisters(a, q) => {
                Response::ReadInputRegisters(read(&self.input, a, q)?)
            }
            Request::ReadCoils(a, q) => Response::ReadCoils(read(&self.coils, a, q)?),
            Request::ReadDiscreteInputs(a, q) => {
                Response::ReadDiscreteInputs(read(&self.discrete, a, q)?)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(response))
    }
}

fn read<T: Copy>(
    memory: &HashMap<u16, T>,
    address: u16,
    quantity: u16,
) -> Result<Vec<T>, ExceptionCode> {
    (u32::from(address)..u32::from(address) + u32::from(quantity))
        .map(|a| {
            let a = u16::try_from(a).map_err(|_| ExceptionCode::IllegalDataAddress)?;
            memory
                .get(&a)
                .copied()
                .ok_or(ExceptionCode::IllegalDataAddress)
        })
        .collect()
}

struct DeviceService(Arc<TestDevice>);

impl Service for DeviceService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let device = Arc::clone(&self.0);
        Box::pin(async move { device.answer(req).await })
    }
}

/// A running server; dropping it aborts it (and with it every connection it serves).
pub struct RunningServer {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Serves `device` on `addr` (port 0 for any free port).
    pub async fn start(device: Arc<TestDevice>, addr: SocketAddr) -> io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        // The restart test binds the port of a server whose connections just closed.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(16)?;
        let addr = listener.local_addr()?;
        let server = Server::new(listener);
        let task = tokio::spawn(async move {
            let new_service = |_peer| Ok(Some(DeviceService(Arc::clone(&device))));
            let on_connected =
                |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
            // The server only ends by being aborted; an accept error ends the test's device.
            if let Err(e) = server.serve(&on_connected, |_| {}).await {
                eprintln!("test server stopped: {e}");
            }
        });
        Ok(RunningServer {
            addr,
            task: Some(task),
        })
    }

    /// Stops the server and waits until its listener and connections are gone.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Aborting drops the serve future, whose drop guard cancels every connection.
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A point with the identity scaling.
pub fn point(
    name: &str,
    area: Area,
    address: u16,
    data_type: DataType,
    order: WordOrder,
) -> PointSpec {
    PointSpec {
        name: name.into(),
        area,
        address,
        data_type,
        order,
        scale: 1.0,
        offset: 0.0,
    }
}

/// A holding register point of type u16.
pub fn holding_u16(name: &str, address: u16) -> PointSpec {
    point(name, Area::Holding, address, DataType::U16, WordOrder::Abcd)
}

/// A device at `addr`, unit 1, polled every 100 ms with a 200 ms timeout.
pub fn tcp_device(addr: SocketAddr, points: Vec<PointSpec>) -> TcpDevice {
    TcpDevice {
        name: "press-1".into(),
        address: addr.to_string(),
        unit: 1,
        poll: Duration::from_millis(100),
        timeout: Duration::from_millis(200),
        limits: PlanLimits::default(),
        points,
    }
}

/// A collector running on its own task, its sink a real channel.
pub struct Collecting {
    pub rx: mpsc::Receiver<Vec<Sample>>,
    pub stats: Arc<DeviceStats>,
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Collecting {
    /// Starts the collector of `device` with a channel of `capacity` batches.
    pub fn start(device: TcpDevice, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(DeviceStats::default());
        let shutdown = CancellationToken::new();
        let ctx = CollectorContext {
            sink: SampleSink::new(tx),
            shutdown: shutdown.clone(),
            stats: Arc::clone(&stats),
        };
        let collector: Box<dyn Collector> = Box::new(ModbusTcpCollector::new(device));
        assert_eq!(&**collector.name(), "press-1");
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

    /// Batches until one satisfies `done`, returning it; within 5 s.
    pub async fn batch_where(&mut self, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let wait = async {
            loop {
                let batch = self.rx.recv().await.expect("the collector is running");
                if done(&batch) {
                    return batch;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the awaited batch within 5 s")
    }

    /// Waits for the collector's task to end, within `within`.
    pub async fn finished(&mut self, within: Duration) {
        let task = self.task.take().expect("not yet finished");
        tokio::time::timeout(within, task)
            .await
            .expect("the collector returns in time")
            .expect("the collector does not panic");
    }

    /// Cancels the collector and checks that it returns promptly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.finished(Duration::from_millis(500)).await;
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
        fieldlink_wire::Quality::Bad(e) => Some(e),
        _ => None,
    }
}

/// Loopback, any port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
