//! DL/T 645 on a shared RS-485 line: the [`LineProtocol`] that `fieldlink-serial`'s
//! scheduler runs, so that all meters on one port take turns, with the line's silence, the
//! late-answer grace, probes of silent meters last, and reopening with backoff.
//!
//! An exchange sends one read and reads frames until the one answering it: frames that
//! are a master's (an RS-485 adapter echoing the request), another meter's, or another
//! identifier's (a late answer to a read that timed out) are skipped, so a late answer is
//! never taken for the next read's.

use crate::frame::{self, Answer, FrameError, MAX_FRAME, MeterAddress};
use crate::ident::DataId;
use fieldlink_serial::SerialLine;
use fieldlink_serial::bus::{ExchangeError, LineProtocol, Outcome};
use std::io;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time;

/// Why one read failed; the text is the bad samples' error.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// No answer in time: the meter may be off or its address wrong.
    #[error("timeout")]
    Timeout,
    /// The meter answered with an error: its points are bad, the line is fine, and the
    /// read is not retried.
    #[error("{}", frame::error_text(*.0))]
    Refused(u8),
    /// A frame that does not follow the standard (checksum, structure, BCD): the read's
    /// points are bad and the line is reopened.
    #[error("malformed answer: {0}")]
    Malformed(#[from] FrameError),
    /// The port failed: the line is reopened.
    #[error("disconnected: {0}")]
    Transport(io::Error),
    /// The line is down; the text says why.
    #[error("{0}")]
    LinkDown(String),
}

impl MeterError {
    /// True for the failures a retry may cure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MeterError::Timeout | MeterError::Transport(_))
    }

    /// True if the meter answered, whatever it said.
    pub fn meter_answered(&self) -> bool {
        matches!(self, MeterError::Refused(_) | MeterError::Malformed(_))
    }
}

impl ExchangeError for MeterError {
    fn outcome(&self) -> Outcome {
        match self {
            MeterError::Refused(_) => Outcome::Answered,
            MeterError::Timeout => Outcome::Timeout,
            MeterError::Malformed(_) => Outcome::Malformed,
            MeterError::Transport(_) => Outcome::Transport,
            MeterError::LinkDown(_) => Outcome::LinkDown,
        }
    }

    fn link_down(reason: String) -> Self {
        MeterError::LinkDown(reason)
    }
}

/// A byte stream a line runs on: a serial port, or a pseudo-terminal in tests.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// An open line.
pub struct Port {
    stream: Pin<Box<dyn Stream>>,
    received: Vec<u8>,
}

impl Port {
    /// Wraps an open stream.
    pub fn new(stream: impl Stream + 'static) -> Port {
        Port {
            stream: Box::pin(stream),
            received: Vec::with_capacity(2 * MAX_FRAME),
        }
    }
}

/// One read: an identifier of a meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterRead {
    /// The meter.
    pub meter: MeterAddress,
    /// The identifier (with `DI1 = FF` for a block).
    pub id: DataId,
}

/// What a meter answered: its address and the value bytes after the identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterAnswer {
    /// The answering meter's address (the real one when the read went to the wildcard).
    pub meter: MeterAddress,
    /// The value bytes.
    pub value: Vec<u8>,
}

/// DL/T 645 on a serial line.
pub struct Dlt645;

impl LineProtocol for Dlt645 {
    type Link = SerialLine;
    type Port = Port;
    type Request = MeterRead;
    type Answer = MeterAnswer;
    type Error = MeterError;

    async fn open(link: &SerialLine, _timeout: Duration) -> Result<Port, String> {
        link.open()
            .map(Port::new)
            .map_err(|e| format!("cannot open {}: {e}", link.path))
    }

    async fn exchange(
        port: &mut Port,
        request: &MeterRead,
        timeout: Duration,
    ) -> Result<MeterAnswer, MeterError> {
        time::timeout(timeout, exchange(port, request))
            .await
            .unwrap_or(Err(MeterError::Timeout))
    }

    fn frame_gap(link: &SerialLine) -> Duration {
        link.frame_gap()
    }
}

/// Sends `request` and reads frames until its answer.
pub async fn exchange(port: &mut Port, request: &MeterRead) -> Result<MeterAnswer, MeterError> {
    // What is left of earlier frames belongs to reads already answered or abandoned.
    port.received.clear();
    port.stream
        .write_all(&frame::read_request(request.meter, request.id))
        .await
        .map_err(MeterError::Transport)?;
    loop {
        match frame::find_frame(&port.received) {
            Some(Ok((start, len))) => {
                let bytes: Vec<u8> = port.received.drain(..start + len).skip(start).collect();
                let frame = frame::parse_frame(&bytes)?;
                let ours = frame.from_meter()
                    && (request.meter == MeterAddress::BROADCAST || frame.meter == request.meter);
                if !ours {
                    continue;
                }
                match frame::answer(&frame)? {
                    Answer::Data(id, value) if id == request.id => {
                        return Ok(MeterAnswer {
                            meter: frame.meter,
                            value,
                        });
                    }
                    Answer::Data(id, _) => {
                        tracing::debug!(%id, "dropped a late answer to another read");
                    }
                    Answer::Refused(error) => return Err(MeterError::Refused(error)),
                }
            }
            Some(Err(e)) => return Err(MeterError::Malformed(e)),
            None if port.received.len() > 2 * MAX_FRAME => {
                return Err(MeterError::Malformed(FrameError::Structure(
                    "no frame in the bytes received",
                )));
            }
            None => {
                let mut chunk = [0u8; 256];
                let n = port
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(MeterError::Transport)?;
                if n == 0 {
                    return Err(MeterError::Transport(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the port closed",
                    )));
                }
                port.received.extend_from_slice(&chunk[..n]);
            }
        }
    }
}
