//! tokio-modbus servers playing the device (Modbus TCP, RTU over TCP, RTU on a serial
//! port), a hand-written server for malformed answers, and a harness running a collector
//! with a real channel as its sink.

use fieldlink_collector_api::{
    Area, Collector, CollectorContext, DataType, DeviceStats, SampleSink, WordOrder,
};
use fieldlink_modbus::{
    BusLink, ModbusRtuCollector, ModbusTcpCollector, PlanLimits, PointSpec, RtuDevice, TcpDevice,
};
use fieldlink_wire::Sample;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
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
    /// Areas whose read function the device does not implement (exception 01).
    pub unsupported: Vec<Area>,
    /// Requests received.
    pub requests: AtomicUsize,
    /// Requests received, by unit.
    pub requests_by_unit: Mutex<HashMap<u8, usize>>,
    /// The largest quantity any request asked for.
    pub largest_quantity: AtomicUsize,
    /// Once `set_answering` was called, the units answered are these instead of `units`.
    answering_changed: AtomicBool,
    extra_units: Mutex<Vec<u8>>,
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
        if let Ok(mut by_unit) = self.requests_by_unit.lock() {
            *by_unit.entry(req.slave).or_default() += 1;
        }
        if let Some(quantity) = match req.request {
            Request::ReadHoldingRegisters(_, q)
            | Request::ReadInputRegisters(_, q)
            | Request::ReadCoils(_, q)
            | Request::ReadDiscreteInputs(_, q) => Some(usize::from(q)),
            _ => None,
        } {
            self.largest_quantity.fetch_max(quantity, Ordering::SeqCst);
        }
        if !self.answers(req.slave) {
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
        let area = match req.request {
            Request::ReadHoldingRegisters(..) => Area::Holding,
            Request::ReadInputRegisters(..) => Area::Input,
            Request::ReadCoils(..) => Area::Coil,
            _ => Area::Discrete,
        };
        if self.unsupported.contains(&area) {
            return Err(ExceptionCode::IllegalFunction);
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

impl TestDevice {
    /// Requests received for `unit`.
    pub fn requests_for(&self, unit: u8) -> usize {
        self.requests_by_unit
            .lock()
            .map_or(0, |by_unit| by_unit.get(&unit).copied().unwrap_or(0))
    }

    /// Starts (or stops) answering `unit`.
    pub fn set_answering(&self, unit: u8, answering: bool) {
        self.answering_changed.store(true, Ordering::SeqCst);
        if let Ok(mut extra) = self.extra_units.lock() {
            extra.retain(|u| *u != unit);
            if answering {
                extra.push(unit);
            }
        }
    }

    fn answers(&self, unit: u8) -> bool {
        if self.answering_changed.load(Ordering::SeqCst) {
            return self
                .extra_units
                .lock()
                .is_ok_and(|extra| extra.contains(&unit));
        }
        self.units.contains(&unit)
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

    /// Serves `device` with RTU framing over TCP (a serial device server's view) on any
    /// free loopback port.
    pub async fn start_rtu_over_tcp(device: Arc<TestDevice>) -> io::Result<Self> {
        use tokio_modbus::server::rtu_over_tcp::{Server, accept_tcp_connection};
        let listener = TcpListener::bind(any_port()).await?;
        let addr = listener.local_addr()?;
        let server = Server::new(listener);
        let task = tokio::spawn(async move {
            let new_service = |_peer| Ok(Some(DeviceService(Arc::clone(&device))));
            let on_connected =
                |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
            if let Err(e) = server.serve(&on_connected, |_| {}).await {
                eprintln!("test server stopped: {e}");
            }
        });
        Ok(RunningServer {
            addr,
            task: Some(task),
        })
    }

    /// Serves `device` with RTU framing on the serial port at `path`.
    pub fn start_rtu_serial(device: Arc<TestDevice>, path: &str) -> io::Result<Self> {
        let port = tokio_serial::SerialStream::open(&tokio_serial::new(path, 9600))?;
        let server = tokio_modbus::server::rtu::Server::new(port);
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve_forever(DeviceService(device)).await {
                eprintln!("test serial server stopped: {e}");
            }
        });
        Ok(RunningServer {
            addr: any_port(),
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
        bit: None,
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
        retries: 0,
        limits: PlanLimits::default(),
        points,
    }
}

/// A device with unit `unit` on the RTU-over-TCP link `addr`, polled every 100 ms with a
/// 200 ms timeout.
pub fn rtu_device(name: &str, link: BusLink, unit: u8, points: Vec<PointSpec>) -> RtuDevice {
    RtuDevice {
        name: name.into(),
        bus: link,
        unit,
        poll: Duration::from_millis(100),
        timeout: Duration::from_millis(200),
        retries: 0,
        limits: PlanLimits::default(),
        points,
    }
}

/// The RTU-over-TCP link to `addr`.
pub fn rtu_tcp(addr: SocketAddr) -> BusLink {
    BusLink::Tcp(addr.to_string())
}

/// A hand-written server that answers every request with what `answer` makes of it, to
/// play a device that sends malformed answers. Counts the connections it accepted.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ScriptedServer {
    /// Serves on any free loopback port; each request is read as one chunk of
    /// `request_len` bytes.
    pub async fn start(
        request_len: usize,
        answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(any_port()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(answer);
        let counted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut request = vec![0u8; request_len];
                    while stream.read_exact(&mut request).await.is_ok() {
                        if stream.write_all(&answer(&request)).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        ScriptedServer {
            addr,
            connections,
            task,
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Modbus CRC-16 of `bytes` (polynomial 0xA001, reflected, initial 0xFFFF), as an RTU
/// frame carries it: low byte first.
pub fn crc16(bytes: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0xFFFF;
    for byte in bytes {
        crc ^= u16::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

/// `frame` with its CRC appended.
pub fn with_crc(frame: &[u8]) -> Vec<u8> {
    let mut bytes = frame.to_vec();
    bytes.extend_from_slice(&crc16(frame));
    bytes
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
        let collector: Box<dyn Collector> = Box::new(ModbusTcpCollector::new(device));
        assert_eq!(&**collector.name(), "press-1");
        Collecting::run(collector, capacity)
    }

    /// Starts the collector of the RTU `device` with a channel of `capacity` batches.
    pub fn start_rtu(device: RtuDevice, capacity: usize) -> Self {
        Collecting::run(Box::new(ModbusRtuCollector::new(device)), capacity)
    }

    /// Runs `collector` with a channel of `capacity` batches.
    pub fn run(collector: Box<dyn Collector>, capacity: usize) -> Self {
        Collecting::run_with_stats(collector, capacity, DeviceStats::default())
    }

    /// Runs `collector` with a channel of `capacity` batches and `stats` as its counters.
    pub fn run_with_stats(
        collector: Box<dyn Collector>,
        capacity: usize,
        stats: DeviceStats,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(stats);
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
