//! The Modbus TCP collector: one device, one connection, one poll schedule.

use crate::decode::{DecodeError, apply_scale, decode, decode_bit};
use crate::plan::{PlanLimits, PointSpec, ReadPlan, ReadRequest};
use crate::transport::LatestAnswerOnly;
use fieldlink_collector_api::Backoff;
use fieldlink_collector_api::BoxFuture;
use fieldlink_collector_api::{Area, Collector, CollectorContext, DeviceStats, clock};
use fieldlink_wire::{Sample, Value};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_modbus::client::{Client as _, Context as ModbusClient, tcp};
use tokio_modbus::{ExceptionCode, ProtocolError, Request, Response, Slave};
use tracing::{debug, info, warn};

/// The first reconnect delay after the device was last heard from.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest reconnect delay, so a device that comes back is read again within it.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A Modbus TCP device and the points to read from it.
#[derive(Debug, Clone)]
pub struct TcpDevice {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// `host:port`, resolved again at each connect so that a changed DNS entry is followed.
    pub address: String,
    /// The unit (slave) id, for devices behind a TCP gateway; direct devices ignore it.
    pub unit: u8,
    /// How often all points are read.
    pub poll: Duration,
    /// How long a connect or one request may take.
    pub timeout: Duration,
    /// How points are coalesced into requests.
    pub limits: PlanLimits,
    /// The points, in configuration order.
    pub points: Vec<PointSpec>,
}

/// Reads one Modbus TCP device on its poll schedule (see the crate note for the rules).
#[derive(Debug)]
pub struct ModbusTcpCollector {
    device: TcpDevice,
    plan: ReadPlan,
}

impl ModbusTcpCollector {
    /// A collector for `device`; its read plan is computed here, once.
    pub fn new(device: TcpDevice) -> Self {
        let plan = ReadPlan::new(&device.points, device.limits);
        ModbusTcpCollector { device, plan }
    }
}

impl Collector for ModbusTcpCollector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let ModbusTcpCollector { device, plan } = *self;
            Poller::new(&device, &plan, &ctx.stats).run(&ctx).await;
        })
    }
}

/// Why connecting failed; the text is the `bad` samples' error.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// No connection within the device's timeout: retry after the backoff.
    #[error("connect failed: timeout")]
    Timeout,
    /// Resolving or connecting failed (refused, unreachable): retry after the backoff.
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
}

/// Why one request of a cycle failed; the text is the `bad` samples' error.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The device answered with an exception: the request's points are bad, the
    /// connection is fine.
    #[error("exception {:02X} {}", u8::from(*.0), exception_name(*.0))]
    Exception(ExceptionCode),
    /// No answer in time: the request's points are bad; the connection is kept (a late
    /// answer is dropped by [`LatestAnswerOnly`]).
    #[error("timeout")]
    Timeout,
    /// A whole answer that does not fit the request (unit, function or length): the
    /// request's points are bad; the connection is kept, the stream is still in step.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The connection failed: the rest of the cycle is bad, then reconnect.
    #[error("disconnected: {0}")]
    Transport(io::Error),
}

/// The names of the exception codes of the Modbus application protocol v1.1b3.
fn exception_name(code: ExceptionCode) -> &'static str {
    match u8::from(code) {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown",
    }
}

/// What one request read.
enum Data {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// The link to the device, a small state machine:
/// - `Down` → `Up` when a connect, tried on a poll tick at or after `retry_at`, succeeds;
/// - `Down` → `Down` when it fails: `retry_at` moves out by the backoff;
/// - `Up` → `Down` on a transport error, `retry_at` one backoff step away.
///
/// While `Down`, every tick publishes one bad sample per point with `reason`.
enum Link {
    Up(ModbusClient),
    Down { retry_at: Instant, reason: String },
}

/// The poll loop of one device.
struct Poller<'a> {
    device: &'a TcpDevice,
    plan: &'a ReadPlan,
    stats: &'a DeviceStats,
    link: Link,
    backoff: Backoff,
    /// Whether the current outage has been logged at warn already: an outage is logged
    /// when it starts and when it ends, not at every retry.
    outage_logged: bool,
}

impl<'a> Poller<'a> {
    fn new(device: &'a TcpDevice, plan: &'a ReadPlan, stats: &'a DeviceStats) -> Self {
        Poller {
            device,
            plan,
            stats,
            link: Link::Down {
                retry_at: Instant::now(),
                reason: "not connected".to_owned(),
            },
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            outage_logged: false,
        }
    }

    async fn run(mut self, ctx: &CollectorContext) {
        // A zero period would panic in `interval`; configuration rejects it, this guards.
        let period = self.device.poll.max(Duration::from_millis(1));
        let mut ticker = time::interval(period);
        // Skip keeps the ticks on the original grid: an overrunning cycle costs the ticks
        // it overlapped (counted), never a burst of catch-up reads.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut previous_tick: Option<Instant> = None;
        loop {
            let Some(tick) = ctx.shutdown.run_until_cancelled(ticker.tick()).await else {
                break;
            };
            if let Some(previous) = previous_tick {
                let skipped = skipped_ticks(previous, tick, period);
                self.stats
                    .missed_ticks
                    .fetch_add(skipped, Ordering::Relaxed);
            }
            previous_tick = Some(tick);

            let started = Instant::now();
            let Some(samples) = ctx.shutdown.run_until_cancelled(self.cycle()).await else {
                break;
            };
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.stats.last_cycle_us.store(took, Ordering::Relaxed);

            match ctx
                .shutdown
                .run_until_cancelled(ctx.sink.send(samples))
                .await
            {
                Some(Ok(())) => {}
                Some(Err(closed)) => {
                    debug!(device = %self.device.name, "{closed}; stopping");
                    break;
                }
                None => break,
            }
        }
        self.stats.connected.store(false, Ordering::Relaxed);
        debug!(device = %self.device.name, "collector stopped");
    }

    /// One poll cycle: connect if due, then every request of the plan in order. Returns
    /// one sample per point, good or bad.
    async fn cycle(&mut self) -> Vec<Sample> {
        if let Link::Down { retry_at, .. } = &self.link
            && Instant::now() >= *retry_at
        {
            self.connect().await;
        }
        let device = &self.device.name;
        let points = &self.device.points;
        let mut samples = Vec::with_capacity(points.len());

        let client = match &mut self.link {
            Link::Up(client) => client,
            Link::Down { reason, .. } => {
                push_bad(&mut samples, device, points, clock::now_ms(), reason);
                return samples;
            }
        };

        let mut lost = None;
        for (i, request) in self.plan.requests.iter().enumerate() {
            let result = read(client, request, self.device.timeout).await;
            let ts = clock::now_ms();
            let error = match result {
                Ok(data) => {
                    self.backoff.reset();
                    self.stats.last_good_read_ms.store(ts, Ordering::Relaxed);
                    for point in request.points.iter().map(|&p| &points[p]) {
                        let name = point.name.clone();
                        samples.push(match point_value(point, request, &data) {
                            Ok(value) => Sample::good(device.clone(), name, ts, value),
                            Err(e) => Sample::bad(device.clone(), name, ts, e.to_string()),
                        });
                    }
                    continue;
                }
                Err(error) => error,
            };
            DeviceStats::bump(&self.stats.read_errors);
            let reason = error.to_string();
            if let ReadError::Transport(_) = error {
                let rest = self.plan.requests[i..].iter().flat_map(|r| &r.points);
                push_bad(&mut samples, device, rest.map(|&p| &points[p]), ts, &reason);
                lost = Some(reason);
                break;
            }
            if let ReadError::Exception(_) | ReadError::Protocol(_) = error {
                // The device answered: the link works, whatever it said.
                self.backoff.reset();
            }
            let own = request.points.iter().map(|&p| &points[p]);
            push_bad(&mut samples, device, own, ts, &reason);
        }
        DeviceStats::bump(&self.stats.cycles);
        if let Some(reason) = lost {
            self.lose(reason);
        }
        samples
    }

    async fn connect(&mut self) {
        match open(&self.device.address, self.device.unit, self.device.timeout).await {
            Ok(client) => {
                info!(device = %self.device.name, address = %self.device.address, "connected");
                self.stats.connected.store(true, Ordering::Relaxed);
                self.link = Link::Up(client);
                self.outage_logged = false;
            }
            Err(error) => {
                DeviceStats::bump(&self.stats.reconnects);
                let delay = self.backoff.next_delay();
                if self.outage_logged {
                    debug!(device = %self.device.name, %error, ?delay, "still cannot connect");
                } else {
                    warn!(
                        device = %self.device.name,
                        address = %self.device.address,
                        %error,
                        "cannot connect; retrying with backoff"
                    );
                    self.outage_logged = true;
                }
                self.link = Link::Down {
                    retry_at: Instant::now() + delay,
                    reason: error.to_string(),
                };
            }
        }
    }

    /// The connection failed mid-cycle: drop it and schedule a reconnect.
    fn lose(&mut self, reason: String) {
        warn!(device = %self.device.name, error = %reason, "connection lost; reconnecting");
        self.stats.connected.store(false, Ordering::Relaxed);
        DeviceStats::bump(&self.stats.reconnects);
        // A device that accepts and then drops every connection (its connection table is
        // full) would otherwise be reconnected to at every tick.
        let retry_at = Instant::now() + self.backoff.next_delay();
        self.link = Link::Down { retry_at, reason };
        self.outage_logged = false;
    }
}

/// Pushes one bad sample per point, all with the same time and reason.
fn push_bad<'p>(
    samples: &mut Vec<Sample>,
    device: &Arc<str>,
    points: impl IntoIterator<Item = &'p PointSpec>,
    ts: i64,
    reason: &str,
) {
    for point in points {
        samples.push(Sample::bad(device.clone(), point.name.clone(), ts, reason));
    }
}

/// Connects to `address` (resolving it anew) within `timeout`.
async fn open(address: &str, unit: u8, timeout: Duration) -> Result<ModbusClient, ConnectError> {
    let stream = time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    // One small request at a time, each waiting for its answer: Nagle's delay would only
    // add latency.
    stream.set_nodelay(true)?;
    Ok(tcp::attach_slave(
        LatestAnswerOnly::new(stream),
        Slave(unit),
    ))
}

/// Executes one request within `timeout`, separating device exceptions from transport
/// failures.
async fn read(
    client: &mut ModbusClient,
    request: &ReadRequest,
    timeout: Duration,
) -> Result<Data, ReadError> {
    let (address, quantity) = (request.address, request.quantity);
    let call = match request.area {
        Area::Holding => Request::ReadHoldingRegisters(address, quantity),
        Area::Input => Request::ReadInputRegisters(address, quantity),
        Area::Coil => Request::ReadCoils(address, quantity),
        Area::Discrete => Request::ReadDiscreteInputs(address, quantity),
    };
    // `Client::call` rather than the `Reader` methods: those assert the answer's length in
    // debug builds, and a device's answer must never panic the collector.
    let response = match time::timeout(timeout, client.call(call)).await {
        Err(_) => return Err(ReadError::Timeout),
        Ok(Err(tokio_modbus::Error::Transport(e))) => return Err(ReadError::Transport(e)),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => {
            debug!(error = %e, "answer does not match its request");
            return Err(ReadError::Protocol(match e {
                ProtocolError::HeaderMismatch { .. } => {
                    "the answer's unit or transaction id does not match"
                }
                ProtocolError::FunctionCodeMismatch { .. } => {
                    "the answer's function code does not match"
                }
            }));
        }
        Ok(Ok(Err(code))) => return Err(ReadError::Exception(code)),
        Ok(Ok(Ok(response))) => response,
    };
    let wanted = usize::from(quantity);
    match response {
        Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words)
            if words.len() == wanted =>
        {
            Ok(Data::Registers(words))
        }
        // Bits arrive packed in whole bytes; the padding past `quantity` is meaningless.
        Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits)
            if bits.len() >= wanted =>
        {
            bits.truncate(wanted);
            Ok(Data::Bits(bits))
        }
        _ => Err(ReadError::Protocol(
            "the answer's length does not match the request",
        )),
    }
}

/// A point's scaled value out of its request's data.
fn point_value(
    point: &PointSpec,
    request: &ReadRequest,
    data: &Data,
) -> Result<Value, DecodeError> {
    let offset = usize::from(point.address).saturating_sub(usize::from(request.address));
    let raw = match data {
        Data::Bits(bits) => {
            let bit = bits.get(offset).copied();
            decode_bit(bit.ok_or(DecodeError::Length {
                expected: 1,
                got: 0,
            })?)
        }
        Data::Registers(words) => {
            let expected = usize::from(point.data_type.registers());
            let Some(own) = words.get(offset..offset + expected) else {
                let got = words.len().saturating_sub(offset).min(expected);
                return Err(DecodeError::Length { expected, got });
            };
            decode(own, point.data_type, point.order)?
        }
    };
    match apply_scale(raw, point.scale, point.offset) {
        // A finite raw value can still overflow when scaled; the contract's floats are finite.
        Value::Float(v) if !v.is_finite() => Err(DecodeError::NotFinite),
        value => Ok(value),
    }
}

/// The ticks skipped between two consecutive ticks of a `Skip` interval. Both sit on the
/// interval's grid, so their distance is a whole number of periods.
fn skipped_ticks(previous: Instant, tick: Instant, period: Duration) -> u64 {
    let period = period.as_nanos().max(1);
    let periods = (tick.saturating_duration_since(previous).as_nanos() + period / 2) / period;
    u64::try_from(periods.saturating_sub(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_collector_api::{DataType, WordOrder};

    #[test]
    fn skipped_ticks_counts_whole_periods_between_ticks() {
        let period = Duration::from_millis(100);
        let start = Instant::now();
        assert_eq!(skipped_ticks(start, start + period, period), 0);
        assert_eq!(skipped_ticks(start, start + period * 3, period), 2);
        assert_eq!(skipped_ticks(start, start, period), 0);
    }

    #[test]
    fn exception_text_names_the_code() {
        let text = |code| ReadError::Exception(ExceptionCode::new(code)).to_string();
        assert_eq!(text(0x02), "exception 02 illegal data address");
        assert_eq!(
            text(0x0B),
            "exception 0B gateway target device failed to respond"
        );
        assert_eq!(text(0x42), "exception 42 unknown");
    }

    fn spec(area: Area, address: u16, data_type: DataType, scale: f64) -> PointSpec {
        PointSpec {
            name: "p".into(),
            area,
            address,
            data_type,
            order: WordOrder::Abcd,
            scale,
            offset: 0.0,
        }
    }

    fn request(area: Area, address: u16, quantity: u16) -> ReadRequest {
        ReadRequest {
            area,
            address,
            quantity,
            points: vec![0],
        }
    }

    #[test]
    fn point_value_slices_its_registers_out_of_the_request() {
        let data = Data::Registers(vec![0, 0x4120, 0x0000, 7]);
        let point = spec(Area::Holding, 11, DataType::F32, 1.0);
        assert_eq!(
            point_value(&point, &request(Area::Holding, 10, 4), &data),
            Ok(Value::Float(10.0))
        );
        let point = spec(Area::Holding, 13, DataType::U16, 0.5);
        assert_eq!(
            point_value(&point, &request(Area::Holding, 10, 4), &data),
            Ok(Value::Float(3.5))
        );
    }

    #[test]
    fn point_value_reports_a_short_request_instead_of_panicking() {
        let data = Data::Registers(vec![1, 2]);
        let point = spec(Area::Holding, 11, DataType::U32, 1.0);
        assert_eq!(
            point_value(&point, &request(Area::Holding, 10, 2), &data),
            Err(DecodeError::Length {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn point_value_rejects_a_scaled_overflow() {
        // f64::MAX, finite raw, doubled: infinite.
        let data = Data::Registers(vec![0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF]);
        let point = spec(Area::Input, 0, DataType::F64, 2.0);
        assert_eq!(
            point_value(&point, &request(Area::Input, 0, 4), &data),
            Err(DecodeError::NotFinite)
        );
    }

    #[test]
    fn point_value_reads_bits() {
        let data = Data::Bits(vec![false, true]);
        let point = spec(Area::Coil, 6, DataType::Bool, 1.0);
        assert_eq!(
            point_value(&point, &request(Area::Coil, 5, 2), &data),
            Ok(Value::Bool(true))
        );
    }
}
