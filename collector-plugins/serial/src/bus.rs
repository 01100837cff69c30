//! A bus: one line (a serial port, or a TCP connection to a serial device server) shared
//! by several devices, and the one scheduler task that owns it. Protocol-neutral: Modbus
//! RTU and ASCII and DL/T 645 each implement [`LineProtocol`] and run on it.
//!
//! A line carries one frame at a time, so the devices on it take turns. Each device keeps
//! its own poll loop (and its own counters); its requests go to the bus's scheduler as
//! transactions, through a queue that holds at most one transaction per device. The
//! scheduler executes them one by one, first come first served (but see probes):
//! - it leaves the protocol's inter-frame silence ([`LineProtocol::frame_gap`]) between
//!   the end of one frame and the start of the next;
//! - a probe of a silent device goes last: it waits while any other device's request is
//!   queued, so that its timeout falls between the healthy devices' cycles, not into them;
//! - each transaction carries its device's timeout; a device that does not answer costs
//!   that timeout and nothing more (the device backs off, see [`Silence`]);
//! - after a timeout it waits [`LATE_ANSWER_GRACE`] longer, so that a slow device's late
//!   answer arrives (and is dropped by the protocol's port) before the next request;
//! - an answer that does not parse, or a transport error, closes the line; the next
//!   transaction opens it again (at once after a line that worked, else after a capped
//!   exponential backoff while opening fails).
//!
//! The scheduler starts when the bus's first device attaches and stops, closing the line,
//! when the last one detaches. Devices find it by their link: devices with equal links of
//! one protocol are on the same bus.

use fieldlink_collector_api::Backoff;
use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{self, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

/// The first delay before reopening a line that failed to open.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest delay between attempts to open the line: a port that comes back (a USB
/// adapter plugged in again) is used again within it.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Extra silence after a timeout, for a slow device's late answer to arrive and be dropped
/// instead of being read as the answer to the next request.
pub const LATE_ANSWER_GRACE: Duration = Duration::from_millis(50);
/// Transactions waiting for the bus; each device has at most one outstanding.
const QUEUE: usize = 64;

/// What became of one exchange, as far as the scheduler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The device answered (with data or with its own error): the line works.
    Answered,
    /// No answer in time: wait the grace before the next request.
    Timeout,
    /// An answer that does not fit: close the line and reopen it at once.
    Malformed,
    /// The line failed: close it; reopen at once if it worked, else after the backoff.
    Transport,
    /// The line is down and nothing was sent.
    LinkDown,
}

/// A protocol's failure of one exchange.
pub trait ExchangeError: fmt::Display + Send + 'static {
    /// How the scheduler treats it.
    fn outcome(&self) -> Outcome;
    /// The error of a transaction that found the line down, with the reason.
    fn link_down(reason: String) -> Self;
}

/// What a protocol does on its line.
pub trait LineProtocol: Send + Sync + 'static {
    /// Identifies a line: devices with equal links share one scheduler.
    type Link: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static;
    /// The open line.
    type Port: Send + 'static;
    /// One request, addressed to one device on the line.
    type Request: Send + Sync + 'static;
    /// What the device answered.
    type Answer: Send + 'static;
    /// Why an exchange failed.
    type Error: ExchangeError;

    /// Opens the line within `timeout` (for TCP links); the error text says why not.
    fn open(
        link: &Self::Link,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Port, String>> + Send;

    /// Sends `request` and reads its answer within `timeout`.
    fn exchange(
        port: &mut Self::Port,
        request: &Self::Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Answer, Self::Error>> + Send;

    /// The silence to leave between frames on `link`.
    fn frame_gap(link: &Self::Link) -> Duration;
}

/// The running schedulers, by protocol and link. A line is a resource of the whole
/// process, so the devices on it find their scheduler by the link itself: after a reload,
/// a device started anew joins the scheduler its unchanged neighbours still use instead of
/// opening the port a second time. Only `Weak`s are kept: a scheduler lives as long as a
/// device holds it.
static RUNNING: Mutex<Option<HashMap<TypeId, Box<dyn Any + Send>>>> = Mutex::new(None);

/// The running scheduler of `link` for protocol `P`, started now if no device holds one.
/// Must be called within a tokio runtime.
pub fn attach<P: LineProtocol>(link: &P::Link) -> Arc<BusHandle<P>> {
    // The maps hold only `Weak`s, so a lock poisoned by a panic holds nothing inconsistent.
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    let by_protocol = running.get_or_insert_with(HashMap::new);
    let entry = by_protocol
        .entry(TypeId::of::<P>())
        .or_insert_with(|| Box::new(HashMap::<P::Link, Weak<BusHandle<P>>>::new()));
    // The entry for `P` was made with this type just above or on an earlier call.
    let Some(links) = entry.downcast_mut::<HashMap<P::Link, Weak<BusHandle<P>>>>() else {
        unreachable!("the scheduler map of a protocol has that protocol's type");
    };
    if let Some(handle) = links.get(link).and_then(Weak::upgrade) {
        return handle;
    }
    links.retain(|_, handle| handle.strong_count() > 0);
    let (queue_tx, queue_rx) = mpsc::channel(QUEUE);
    let stop = CancellationToken::new();
    tokio::spawn(Scheduler::<P>::new(link.clone()).run(queue_rx, stop.clone()));
    let handle = Arc::new(BusHandle {
        queue_tx,
        _stop: stop.drop_guard(),
    });
    links.insert(link.clone(), Arc::downgrade(&handle));
    handle
}

/// A device's hold on a running bus scheduler; the scheduler stops when the last is
/// dropped.
pub struct BusHandle<P: LineProtocol> {
    queue_tx: mpsc::Sender<Transaction<P>>,
    _stop: DropGuard,
}

impl<P: LineProtocol> BusHandle<P> {
    /// Sends `request` when the bus's turn comes and waits for its answer; `timeout` runs
    /// from when it is sent. A `probe` (of a device that has not been answering) yields its
    /// turn to the other devices' requests.
    pub async fn request(
        &self,
        request: P::Request,
        timeout: Duration,
        probe: bool,
    ) -> Result<P::Answer, P::Error> {
        let stopped = || P::Error::link_down("the bus scheduler has stopped".to_owned());
        let (reply_tx, reply_rx) = oneshot::channel();
        let transaction = Transaction {
            request,
            timeout,
            probe,
            reply_tx,
        };
        self.queue_tx
            .send(transaction)
            .await
            .map_err(|_| stopped())?;
        reply_rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// True once the scheduler has stopped (tests).
    pub fn is_closed(&self) -> bool {
        self.queue_tx.is_closed()
    }
}

/// One request waiting for the bus.
struct Transaction<P: LineProtocol> {
    request: P::Request,
    timeout: Duration,
    /// A probe of a silent device: it waits while other devices' requests are queued.
    probe: bool,
    reply_tx: oneshot::Sender<Result<P::Answer, P::Error>>,
}

/// The line's state:
/// - `Down` → `Up` when opening, tried by a transaction at or after `retry_at`, succeeds;
/// - `Down` → `Down` when it fails: `retry_at` moves out by the backoff;
/// - `Up` → `Down` on a transport error or a malformed answer.
///
/// While `Down` and not yet due, transactions fail at once with `reason`.
enum LineState<Port> {
    Up(Port),
    Down { retry_at: Instant, reason: String },
}

/// The task that owns the line and executes transactions one at a time.
struct Scheduler<P: LineProtocol> {
    link: P::Link,
    gap: Duration,
    state: LineState<P::Port>,
    backoff: Backoff,
    /// The earliest instant the next request may start: the end of the last frame plus
    /// the inter-frame silence.
    quiet_until: Instant,
    /// Whether a device answered since the line was opened: a line that worked is
    /// reopened at once after it fails, one that did not after the backoff.
    answered_since_open: bool,
}

impl<P: LineProtocol> Scheduler<P> {
    fn new(link: P::Link) -> Self {
        Scheduler {
            gap: P::frame_gap(&link),
            link,
            state: LineState::Down {
                retry_at: Instant::now(),
                reason: "not connected".to_owned(),
            },
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            quiet_until: Instant::now(),
            answered_since_open: false,
        }
    }

    async fn run(mut self, mut queue_rx: mpsc::Receiver<Transaction<P>>, stop: CancellationToken) {
        debug!(bus = %self.link, "bus scheduler started");
        let mut waiting: VecDeque<Transaction<P>> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match stop.run_until_cancelled(queue_rx.recv()).await {
                    Some(Some(transaction)) => waiting.push_back(transaction),
                    _ => break,
                }
            }
            // Pick at the last moment, once the line is quiet: a healthy device's next
            // request, sent while the gap ran, still goes before a silent device's probe.
            if stop
                .run_until_cancelled(time::sleep_until(self.quiet_until))
                .await
                .is_none()
            {
                break;
            }
            while let Ok(transaction) = queue_rx.try_recv() {
                waiting.push_back(transaction);
            }
            let next = waiting.iter().position(|t| !t.probe).unwrap_or(0);
            let Some(transaction) = waiting.remove(next) else {
                continue;
            };
            if transaction.reply_tx.is_closed() {
                // Its device stopped while the transaction waited for its turn.
                continue;
            }
            let Some(result) = stop.run_until_cancelled(self.execute(&transaction)).await else {
                break;
            };
            // The device may have stopped meanwhile; the result is then nobody's.
            let _ = transaction.reply_tx.send(result);
        }
        debug!(bus = %self.link, "bus scheduler stopped; line closed");
    }

    async fn execute(&mut self, t: &Transaction<P>) -> Result<P::Answer, P::Error> {
        if let LineState::Down { retry_at, .. } = &self.state
            && Instant::now() >= *retry_at
        {
            self.open(t.timeout).await;
        }
        let port = match &mut self.state {
            LineState::Up(port) => port,
            LineState::Down { reason, .. } => return Err(P::Error::link_down(reason.clone())),
        };
        time::sleep_until(self.quiet_until).await;
        let result = P::exchange(port, &t.request, t.timeout).await;
        let now = Instant::now();
        self.quiet_until = now + self.gap;
        let outcome = match &result {
            Ok(_) => Outcome::Answered,
            Err(e) => e.outcome(),
        };
        match outcome {
            Outcome::Answered => {
                self.backoff.reset();
                self.answered_since_open = true;
            }
            Outcome::Timeout => self.quiet_until += LATE_ANSWER_GRACE,
            Outcome::Malformed => {
                // Reopen at once: the line itself works, what it carried did not fit. The
                // devices' failure logs report it, so it is not logged here per event.
                if let Err(e) = &result {
                    debug!(bus = %self.link, error = %e, "malformed answer; reopening the line");
                }
                self.close(now, "line recycled after a malformed answer".to_owned());
            }
            Outcome::Transport => {
                let reason = result
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                debug!(bus = %self.link, error = %reason, "line lost; reopening");
                let retry_at = if self.answered_since_open {
                    now
                } else {
                    now + self.backoff.next_delay()
                };
                self.close(retry_at, reason);
            }
            Outcome::LinkDown => {}
        }
        result
    }

    fn close(&mut self, retry_at: Instant, reason: String) {
        self.state = LineState::Down { retry_at, reason };
        self.answered_since_open = false;
    }

    async fn open(&mut self, timeout: Duration) {
        match P::open(&self.link, timeout).await {
            Ok(port) => {
                debug!(bus = %self.link, "line open");
                self.state = LineState::Up(port);
                // Whatever was on the line before the port was opened is not ours to end.
                self.quiet_until = Instant::now() + self.gap;
            }
            Err(reason) => {
                let delay = self.backoff.next_delay();
                debug!(bus = %self.link, error = %reason, ?delay, "cannot open the line; retrying with backoff");
                self.state = LineState::Down {
                    retry_at: Instant::now() + delay,
                    reason,
                };
            }
        }
    }
}

/// A silent device's backoff, as its collector keeps it: a device that does not answer at
/// all is polled at a growing interval (its poll period doubling up to `max`, jittered)
/// until it answers again, and meanwhile each of its ticks yields bad samples without
/// using the bus.
#[derive(Debug)]
pub struct Silence {
    /// When to probe it next.
    pub next_probe: Instant,
    backoff: Backoff,
    /// Why it is bad until then.
    pub reason: String,
}

impl Silence {
    /// A device polled every `poll` fell silent for `reason`: the first probe comes one or
    /// two poll periods later, then the interval doubles up to `max` (at least `poll`).
    pub fn begin(poll: Duration, max: Duration, reason: String) -> Silence {
        let first = poll * 2;
        let mut backoff = Backoff::new(first, max.max(first));
        let next_probe = Instant::now() + backoff.next_delay();
        Silence {
            next_probe,
            backoff,
            reason,
        }
    }

    /// The probe failed again: the next one waits for the next backoff step.
    pub fn again(&mut self, reason: String) {
        self.next_probe = Instant::now() + self.backoff.next_delay();
        self.reason = reason;
    }

    /// True while the device is not due for a probe.
    pub fn waiting(&self) -> bool {
        Instant::now() < self.next_probe
    }
}
