//! One TCP connection to a MELSEC Ethernet port (binary code, 3E frame): one batch read
//! at a time.
//!
//! The 3E frame carries no serial number, so nothing tells a late answer to a read that
//! timed out from the answer to the next read. After a timeout the connection is
//! therefore dropped and opened again for the next read (a TCP connect, no handshake),
//! and the late answer dies with the old socket.

use crate::frame::{self, ANSWER_HEADER, Answer, FrameError, Route};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time;

/// Why a connection or a read failed; the text is the bad samples' error.
#[derive(Debug, thiserror::Error)]
pub enum McError {
    /// No answer in time: the read's points are bad and the connection is reopened (see
    /// the module note).
    #[error("timeout")]
    Timeout,
    /// Connecting failed or the connection broke: reconnect with backoff.
    #[error("{0}")]
    Io(String),
    /// The PLC refused the read with an end code: the read's points are bad, the
    /// connection is kept.
    #[error("{}", frame::end_code_text(*.0))]
    Refused(u16),
    /// An answer that does not follow the protocol: the read's points are bad and the
    /// connection is recycled.
    #[error("malformed answer: {0}; connection recycled")]
    Malformed(#[from] FrameError),
}

impl McError {
    /// True for the failures a retry may cure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, McError::Timeout | McError::Io(_))
    }

    /// True if the PLC itself answered, whatever it said.
    pub fn plc_answered(&self) -> bool {
        matches!(self, McError::Refused(_) | McError::Malformed(_))
    }
}

/// An open connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    route: Route,
    answer: Vec<u8>,
}

impl Connection {
    /// Connects to `address` (`host:port`) within `timeout`.
    pub async fn open(
        address: &str,
        route: Route,
        timeout: Duration,
    ) -> Result<Connection, McError> {
        let stream = time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| McError::Io("connect failed: timeout".to_owned()))?
            .map_err(|e| McError::Io(format!("connect failed: {e}")))?;
        // One small request at a time, each waiting for its answer.
        stream
            .set_nodelay(true)
            .map_err(|e| McError::Io(format!("connect failed: {e}")))?;
        Ok(Connection {
            stream,
            route,
            answer: Vec::with_capacity(2048),
        })
    }

    /// Reads `words` words of device `code` from `head`, within `timeout`; the answer's
    /// data bytes (two per word, low byte first).
    pub async fn read(
        &mut self,
        code: u8,
        head: u32,
        words: u16,
        timeout: Duration,
    ) -> Result<&[u8], McError> {
        // The PLC's own monitoring timer (units of 250 ms) is the same timeout, so a CPU
        // that cannot answer in time says so instead of answering late.
        let timer = u16::try_from(timeout.as_millis().div_ceil(250))
            .unwrap_or(u16::MAX)
            .max(1);
        let request = frame::read_request(self.route, timer, code, head, words);
        let exchange = async {
            self.stream
                .write_all(&request)
                .await
                .map_err(|e| McError::Io(format!("disconnected: {e}")))?;
            let mut header = [0u8; ANSWER_HEADER];
            self.read_exact(&mut header).await?;
            let len = frame::answer_len(&header)?;
            self.answer.clear();
            self.answer.extend_from_slice(&header);
            self.answer.resize(len, 0);
            let (_, body) = self.answer.split_at_mut(ANSWER_HEADER);
            read_exact(&mut self.stream, body).await
        };
        time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(McError::Timeout))?;
        match frame::parse_answer(&self.answer, words)? {
            Answer::Data(data) => Ok(data),
            Answer::Refused(code) => Err(McError::Refused(code)),
        }
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), McError> {
        read_exact(&mut self.stream, buf).await
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), McError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(McError::Io(
            "disconnected: connection closed by the PLC".to_owned(),
        )),
        Err(e) => Err(McError::Io(format!("disconnected: {e}"))),
    }
}
