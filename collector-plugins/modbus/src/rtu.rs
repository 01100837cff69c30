//! The Modbus RTU collector: one device (unit) on a shared bus, with its own poll schedule.
//!
//! Requests go through the bus's scheduler ([`crate::bus`]), which serializes them with
//! the other devices' requests. What this module adds is dead-slave isolation: a slave
//! that does not answer at all is *silent*, and a silent slave is polled at a growing
//! interval (its poll period doubling up to [`SILENT_BACKOFF_MAX`], jittered) until it
//! answers again. Meanwhile each of its ticks still yields one bad sample per point, with
//! the reason of its last failure, without using the bus. A probe of a silent slave stops
//! at its first timeout, so it costs one request's timeouts, not one per request, and it
//! yields its turn on the bus to the other devices' requests.

use crate::bus::{self, BusHandle, BusLink, UnitRead};
use crate::plan::{PlanLimits, PointSpec, ReadPlan, ReadRequest};
use crate::read::{Data, ReadError, push_bad, push_values};
use fieldlink_collector_api::schedule::{Cycle, poll_loop};
use fieldlink_collector_api::{
    BoxFuture, Collector, CollectorContext, DeviceStats, FailureLog, clock,
};
use fieldlink_serial::bus::Silence;
use fieldlink_wire::Sample;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::debug;

/// The longest interval between probes of a silent slave (or its poll period, if longer):
/// a slave that comes back is read again within it (the design asks for 15 s at most).
pub const SILENT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A Modbus RTU device (one unit on a bus) and the points to read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct RtuDevice {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// The link of the bus it is on; devices with the same link share one bus.
    pub bus: BusLink,
    /// The unit (slave) id, 1 to 247.
    pub unit: u8,
    /// How often all points are read.
    pub poll: Duration,
    /// How long one request may take, from when it is sent.
    pub timeout: Duration,
    /// How often a request is repeated after a timeout or a transport error (never after
    /// an exception).
    pub retries: u8,
    /// How points are coalesced into requests.
    pub limits: PlanLimits,
    /// The points, in configuration order.
    pub points: Vec<PointSpec>,
}

/// Reads one RTU device on its poll schedule, through its bus's scheduler.
#[derive(Debug)]
pub struct ModbusRtuCollector {
    device: RtuDevice,
    plan: ReadPlan,
}

impl ModbusRtuCollector {
    /// A collector for `device`; its read plan is computed here, once.
    pub fn new(device: RtuDevice) -> Self {
        let plan = ReadPlan::new(&device.points, device.limits);
        ModbusRtuCollector { device, plan }
    }
}

impl Collector for ModbusRtuCollector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let ModbusRtuCollector { device, plan } = *self;
            let bus = bus::attach(&device.bus);
            let mut poller = RtuPoller {
                device: &device,
                plan: &plan,
                stats: &ctx.stats,
                bus,
                silence: None,
                failures: FailureLog::new(
                    &device.name,
                    format!("{} unit {}", device.bus, device.unit),
                    &ctx.stats,
                ),
            };
            poll_loop(&mut poller, &ctx, &device.name, device.poll).await;
        })
    }
}

/// The poll loop state of one RTU device.
struct RtuPoller<'a> {
    device: &'a RtuDevice,
    plan: &'a ReadPlan,
    stats: &'a DeviceStats,
    bus: Arc<BusHandle>,
    /// Set while the slave does not answer.
    silence: Option<Silence>,
    /// Each cycle's outcome goes here: the log says when the slave stops and starts
    /// answering, not at every probe.
    failures: FailureLog<'a>,
}

impl Cycle for RtuPoller<'_> {
    async fn cycle(&mut self) -> Vec<Sample> {
        let device = &self.device.name;
        let points = &self.device.points;
        let mut samples = Vec::with_capacity(points.len());
        if let Some(silence) = &self.silence
            && silence.waiting()
        {
            push_bad(
                &mut samples,
                device,
                points,
                clock::now_ms(),
                &silence.reason,
            );
            self.failures.failed(&silence.reason);
            return samples;
        }

        let mut answered = false;
        let mut last_error = None;
        for (i, request) in self.plan.requests.iter().enumerate() {
            let result = self.read(request).await;
            let ts = clock::now_ms();
            let error = match result {
                Ok(data) => {
                    answered = true;
                    self.stats.last_good_read_ms.store(ts, Ordering::Relaxed);
                    push_values(&mut samples, device, points, request, &data, ts);
                    continue;
                }
                Err(error) => error,
            };
            answered |= error.device_answered();
            let reason = error.to_string();
            let silent = matches!(error, ReadError::Timeout) && !answered;
            if silent || matches!(error, ReadError::LinkDown(_)) {
                // A slave that has not answered anything this cycle is taken for dead:
                // reading its other requests would cost a timeout each. A link that is
                // down fails every request the same way.
                let rest = self.plan.requests[i..].iter().flat_map(|r| &r.points);
                push_bad(&mut samples, device, rest.map(|&p| &points[p]), ts, &reason);
                self.failures.failed(&reason);
                if silent {
                    self.fall_silent(reason);
                }
                self.stats.connected.store(false, Ordering::Relaxed);
                return samples;
            }
            let own = request.points.iter().map(|&p| &points[p]);
            push_bad(&mut samples, device, own, ts, &reason);
            last_error = Some(reason);
        }
        if answered {
            self.stats.connected.store(true, Ordering::Relaxed);
            self.silence = None;
            self.failures.answered();
        } else if let Some(reason) = last_error {
            self.failures.failed(&reason);
        }
        DeviceStats::bump(&self.stats.cycles);
        samples
    }
}

impl RtuPoller<'_> {
    /// One request through the bus, repeated after timeouts and transport errors as the
    /// device's `retries` allow. Every failed attempt that reached the line counts as a
    /// read error.
    async fn read(&self, request: &ReadRequest) -> Result<Data, ReadError> {
        let mut attempt = 0;
        loop {
            let read = UnitRead {
                unit: self.device.unit,
                area: request.area,
                address: request.address,
                quantity: request.quantity,
            };
            let result = self
                .bus
                .request(read, self.device.timeout, self.silence.is_some())
                .await;
            match result {
                Ok(data) => return Ok(data),
                // No request went out: the link is down, which the bus counts and logs.
                Err(error @ ReadError::LinkDown(_)) => return Err(error),
                Err(error) => {
                    DeviceStats::bump(&self.stats.read_errors);
                    if let ReadError::Transport(_) | ReadError::Malformed(_) = error {
                        DeviceStats::bump(&self.stats.reconnects);
                    }
                    if !error.is_retryable() || attempt >= self.device.retries {
                        return Err(error);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// The slave did not answer: the next probe waits for the (next) backoff step.
    fn fall_silent(&mut self, reason: String) {
        match &mut self.silence {
            Some(silence) => silence.again(reason),
            None => {
                debug!(device = %self.device.name, unit = self.device.unit, "slave does not answer; polling it with backoff");
                self.silence = Some(Silence::begin(self.device.poll, SILENT_BACKOFF_MAX, reason));
            }
        }
    }
}
