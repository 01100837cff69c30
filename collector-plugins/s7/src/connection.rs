//! One ISO-on-TCP connection to a PLC: TCP, the COTP connection with the TSAPs, "setup
//! communication" (the PDU size), then read-var jobs one at a time.
//!
//! Answers are matched to their job by the PDU reference, so a late answer to a job that
//! timed out is recognized and dropped instead of being taken for the next job's. Bytes
//! are read into a buffer that outlives a timed-out read, so a timeout in the middle of a
//! packet leaves the stream in step: the rest of that packet is read (and dropped) first.
//! A timeout while writing leaves a half-written request on the wire; the connection is
//! then [broken](Connection::is_broken) and must be opened anew.

use crate::frame::{self, Ack, Cotp, FrameError, ItemError, ItemSpec, TPKT_HEADER};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{self, Instant};

/// The PDU size asked for: what S7-1500 CPUs grant; smaller CPUs answer with theirs.
pub const DEFAULT_PDU_SIZE: u16 = 960;

/// The local and remote TSAPs of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tsaps {
    /// Ours (the calling TSAP), `0x0100` for a PG/PC.
    pub local: u16,
    /// The PLC's (the called TSAP): for S7-300 to 1500 the connection type in the high
    /// byte and `rack × 32 + slot` in the low byte.
    pub remote: u16,
}

/// The kind of connection a remote TSAP asks for (its high byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// A programming device (PG), 1: what most tools use.
    Pg,
    /// An operator panel (OP), 2: CPUs keep more of these free.
    Op,
    /// S7 basic communication, 3.
    Basic,
}

impl ConnectionType {
    /// The configuration names.
    pub const NAMES: &'static str = "\"pg\", \"op\", \"basic\"";

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<ConnectionType> {
        match name {
            "pg" => Some(ConnectionType::Pg),
            "op" => Some(ConnectionType::Op),
            "basic" => Some(ConnectionType::Basic),
            _ => None,
        }
    }
}

impl Tsaps {
    /// The TSAPs of a CPU addressed by rack and slot (S7-300, 400, 1200, 1500, and the
    /// S7-200 SMART with rack 0 and slot 1).
    pub fn rack_slot(rack: u8, slot: u8, kind: ConnectionType) -> Tsaps {
        let kind = match kind {
            ConnectionType::Pg => 1u16,
            ConnectionType::Op => 2,
            ConnectionType::Basic => 3,
        };
        Tsaps {
            local: 0x0100,
            remote: kind << 8 | u16::from(rack & 0x07) << 5 | u16::from(slot & 0x1F),
        }
    }
}

/// Parses a TSAP as Siemens tools write it: two hexadecimal bytes with a dot (`02.00`),
/// or four hexadecimal digits (`0200`, `0x0200`).
pub fn parse_tsap(text: &str) -> Option<u16> {
    let digits: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != '.')
        .collect();
    if digits.len() != 4 || (text.contains('.') && text.trim().find('.') != Some(2)) {
        return None;
    }
    u16::from_str_radix(&digits, 16).ok()
}

/// A TSAP as Siemens tools write it (`02.00`).
pub fn format_tsap(tsap: u16) -> String {
    let [hi, lo] = tsap.to_be_bytes();
    format!("{hi:02X}.{lo:02X}")
}

/// Why a connection or a job failed; the text is the bad samples' error.
#[derive(Debug, thiserror::Error)]
pub enum S7Error {
    /// No answer in time: the job's points are bad. The connection is kept unless it is
    /// [broken](Connection::is_broken).
    #[error("timeout")]
    Timeout,
    /// The TCP connection could not be made, or failed: reconnect with backoff.
    #[error("{0}")]
    Io(String),
    /// The PLC refused the COTP connection (wrong rack/slot or TSAP, or no free
    /// connection): reconnect with backoff, and check the settings.
    #[error(
        "the PLC refused the connection ({0}); check rack and slot (or the TSAPs), and that the CPU has a free connection"
    )]
    Refused(String),
    /// The PLC answered a job with an error in its header: the job's points are bad, the
    /// connection is kept.
    #[error("{}", frame::header_error_text(*.0))]
    Plc(u16),
    /// An answer that does not follow the protocol: the job's points are bad and the
    /// connection is recycled, since whatever garbled it may have garbled the stream.
    #[error("malformed answer: {0}; connection recycled")]
    Malformed(#[from] FrameError),
}

impl S7Error {
    /// True for the failures a retry may cure: a timeout or a transport error.
    pub fn is_retryable(&self) -> bool {
        matches!(self, S7Error::Timeout | S7Error::Io(_))
    }

    /// True if the PLC itself answered, whatever it said.
    pub fn plc_answered(&self) -> bool {
        matches!(self, S7Error::Plc(_) | S7Error::Malformed(_))
    }
}

fn io_error(what: &str, e: &io::Error) -> S7Error {
    S7Error::Io(format!("{what}: {e}"))
}

/// An open connection, ready for jobs.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    pdu_size: u16,
    next_ref: u16,
    /// Bytes received and not yet consumed; kept across timeouts (see the module note).
    received: Vec<u8>,
    /// The S7 PDU being reassembled from COTP data units.
    pdu: Vec<u8>,
    broken: bool,
}

impl Connection {
    /// Connects to `address` (`host:port`), opens the COTP connection with `tsaps` and
    /// negotiates the PDU size (asking for `pdu_size`), all within `timeout`.
    pub async fn open(
        address: &str,
        tsaps: Tsaps,
        pdu_size: u16,
        timeout: Duration,
    ) -> Result<Connection, S7Error> {
        let deadline = Instant::now() + timeout;
        let stream = time::timeout_at(deadline, TcpStream::connect(address))
            .await
            .map_err(|_| S7Error::Io("connect failed: timeout".to_owned()))?
            .map_err(|e| io_error("connect failed", &e))?;
        // One small job at a time, each waiting for its answer: Nagle would only delay.
        stream
            .set_nodelay(true)
            .map_err(|e| io_error("connect failed", &e))?;
        let mut connection = Connection {
            stream,
            pdu_size,
            next_ref: 0,
            received: Vec::with_capacity(1024),
            pdu: Vec::with_capacity(1024),
            broken: false,
        };
        let handshake = async {
            connection
                .write(&frame::connect_request(tsaps.local, tsaps.remote))
                .await?;
            let packet = connection.read_packet().await?;
            match frame::parse_cotp(&packet)? {
                Cotp::ConnectConfirm => {}
                Cotp::Disconnect { reason } => {
                    return Err(S7Error::Refused(format!(
                        "disconnect request, reason {reason:02X}"
                    )));
                }
                Cotp::Data { .. } | Cotp::Other(_) => {
                    return Err(S7Error::Malformed(FrameError::Unexpected(
                        "no connection confirm",
                    )));
                }
            }
            let pdu_ref = connection.take_ref();
            connection
                .write(&frame::data(&frame::setup_request(pdu_ref, pdu_size)))
                .await?;
            let granted = {
                let ack = connection.read_ack(pdu_ref).await?;
                if ack.error != 0 {
                    return Err(S7Error::Plc(ack.error));
                }
                frame::parse_setup(&ack)?
            };
            // A PLC granting less than a request header and one item is useless;
            // granting more than asked is not allowed.
            if granted < 32 || granted > pdu_size {
                return Err(S7Error::Malformed(FrameError::Unexpected(
                    "the PLC granted an impossible PDU size",
                )));
            }
            connection.pdu_size = granted;
            Ok(())
        };
        let outcome = time::timeout_at(deadline, handshake).await;
        match outcome {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(S7Error::Io(e))) if e.contains("closed by the PLC") => Err(S7Error::Refused(
                "it closed the connection during the handshake".to_owned(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(S7Error::Io(
                "connect failed: no answer to the connection request (timeout)".to_owned(),
            )),
        }
    }

    /// The PDU size the PLC granted.
    pub fn pdu_size(&self) -> u16 {
        self.pdu_size
    }

    /// True when the connection cannot be used any more (a write was cut off).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn take_ref(&mut self) -> u16 {
        self.next_ref = self.next_ref.wrapping_add(1);
        self.next_ref
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), S7Error> {
        // Cancelled half-way (a timeout), the stream would hold half a request.
        self.broken = true;
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| io_error("disconnected", &e))?;
        self.broken = false;
        Ok(())
    }

    /// Reads one TPKT packet and returns its payload (the COTP unit).
    async fn read_packet(&mut self) -> Result<Vec<u8>, S7Error> {
        loop {
            if let Some(&header) = self.received.first_chunk::<TPKT_HEADER>() {
                let len = frame::tpkt_len(header)?;
                if self.received.len() >= len {
                    let packet: Vec<u8> = self.received.drain(..len).skip(TPKT_HEADER).collect();
                    return Ok(packet);
                }
            }
            let mut chunk = [0u8; 2048];
            // `read` is cancel-safe: a timeout here loses no bytes.
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| io_error("disconnected", &e))?;
            if n == 0 {
                self.broken = true;
                return Err(S7Error::Io(
                    "disconnected: connection closed by the PLC".to_owned(),
                ));
            }
            self.received.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads data units until a whole S7 PDU answering job `pdu_ref` is in `self.pdu`;
    /// answers to other (earlier, abandoned) jobs are dropped.
    async fn read_ack(&mut self, pdu_ref: u16) -> Result<Ack<'_>, S7Error> {
        loop {
            self.pdu.clear();
            loop {
                let packet = self.read_packet().await?;
                match frame::parse_cotp(&packet)? {
                    Cotp::Data { last, payload } => {
                        self.pdu.extend_from_slice(payload);
                        if last {
                            break;
                        }
                    }
                    Cotp::Disconnect { reason } => {
                        self.broken = true;
                        return Err(S7Error::Io(format!(
                            "disconnected: the PLC closed the connection (reason {reason:02X})"
                        )));
                    }
                    Cotp::ConnectConfirm | Cotp::Other(_) => {
                        return Err(S7Error::Malformed(FrameError::Unexpected(
                            "a COTP unit that is not data",
                        )));
                    }
                }
            }
            let answers_this_job = frame::parse_ack(&self.pdu)?.pdu_ref == pdu_ref;
            if answers_this_job {
                return Ok(frame::parse_ack(&self.pdu)?);
            }
            tracing::debug!("dropped a late answer to an abandoned job");
        }
    }

    /// Reads `items` in one job within `timeout`, calling `each` with every item's index
    /// and its bytes or its error.
    pub async fn read(
        &mut self,
        items: &[ItemSpec],
        timeout: Duration,
        mut each: impl FnMut(usize, Result<&[u8], ItemError>),
    ) -> Result<(), S7Error> {
        let pdu_ref = self.take_ref();
        let request = frame::data(&frame::read_request(pdu_ref, items));
        let asked: Vec<u16> = items.iter().map(|i| i.len).collect();
        let job = async {
            self.write(&request).await?;
            let ack = self.read_ack(pdu_ref).await?;
            if ack.error != 0 {
                return Err(S7Error::Plc(ack.error));
            }
            for (i, item) in frame::parse_read(&ack, &asked)?.into_iter().enumerate() {
                each(i, item);
            }
            Ok(())
        };
        time::timeout(timeout, job)
            .await
            .unwrap_or(Err(S7Error::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsaps_from_rack_and_slot() {
        assert_eq!(
            Tsaps::rack_slot(0, 1, ConnectionType::Pg),
            Tsaps {
                local: 0x0100,
                remote: 0x0101
            }
        );
        assert_eq!(Tsaps::rack_slot(0, 2, ConnectionType::Pg).remote, 0x0102);
        assert_eq!(Tsaps::rack_slot(1, 3, ConnectionType::Op).remote, 0x0223);
        assert_eq!(Tsaps::rack_slot(0, 0, ConnectionType::Basic).remote, 0x0300);
    }

    #[test]
    fn tsaps_parse_as_siemens_writes_them() {
        assert_eq!(parse_tsap("02.00"), Some(0x0200));
        assert_eq!(parse_tsap("10.01"), Some(0x1001));
        assert_eq!(parse_tsap("0x4D57"), Some(0x4D57));
        assert_eq!(parse_tsap("0200"), Some(0x0200));
        assert_eq!(parse_tsap("2.00"), None);
        assert_eq!(parse_tsap("020"), None);
        assert_eq!(parse_tsap("zz.00"), None);
        assert_eq!(format_tsap(0x0200), "02.00");
    }
}
