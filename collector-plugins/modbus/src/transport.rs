//! A byte stream under tokio-modbus that keeps a connection usable after a timeout.
//!
//! tokio-modbus's TCP client reads exactly one frame per request and rejects a frame whose
//! transaction id is not the request's. When a request times out, the device's answer to
//! it is usually still on its way (a device answers one request at a time); the next
//! request would read that late answer, reject it, and leave its own answer to the request
//! after it. From then on every request would read its predecessor's answer.
//!
//! [`LatestAnswerOnly`] sits between the socket and tokio-modbus. It learns the
//! transaction id of each request as tokio-modbus writes it, and hands up only the frame
//! that answers the latest request; late answers are dropped. A stream that is not MBAP
//! framed is passed through untouched, so that tokio-modbus reports the corruption as the
//! transport error it is.
//!
//! RTU frames carry no transaction id, so [`StaleInputDropped`] does the RTU equivalent:
//! before a request goes out, every byte already received (a late answer to a timed-out
//! request, line noise) is read and dropped, so that the answer read next is one sent
//! after the request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The MBAP header up to and including the length field.
const MBAP_PREFIX: usize = 6;
/// The largest MBAP length field: the unit id and a PDU of at most 253 bytes.
const MAX_MBAP_LENGTH: usize = 254;

/// The end of the stream, as the error tokio-modbus passes on: tokio-modbus turns a plain
/// end of stream into the last OS error, which says nothing useful, so it is named here.
/// `ConnectionAborted` rather than `UnexpectedEof`, which tokio-modbus uses for a frame
/// shorter than its own byte count.
fn closed_by_device() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the device",
    )
}

/// A transport that passes up only the answer to the latest request (see the module note).
#[derive(Debug)]
pub(crate) struct LatestAnswerOnly<T> {
    inner: T,
    /// The transaction id of the latest request written, once one has been.
    latest: Option<u16>,
    /// The outgoing frame's header bytes seen so far, while fewer than [`MBAP_PREFIX`].
    sent_header: [u8; MBAP_PREFIX],
    sent_header_len: usize,
    /// Bytes of the outgoing frame's body still to be written.
    sent_body_left: usize,
    /// Bytes received and not yet classified as an answer or a late one.
    received: Vec<u8>,
    /// The accepted answer, and how much of it has been handed up.
    accepted: Vec<u8>,
    accepted_pos: usize,
    /// Set once the incoming bytes are not MBAP frames; from then nothing is filtered.
    passthrough: bool,
}

impl<T> LatestAnswerOnly<T> {
    /// Wraps a freshly connected stream.
    pub(crate) fn new(inner: T) -> Self {
        LatestAnswerOnly {
            inner,
            latest: None,
            sent_header: [0; MBAP_PREFIX],
            sent_header_len: 0,
            sent_body_left: 0,
            received: Vec::with_capacity(2 * (MBAP_PREFIX + MAX_MBAP_LENGTH)),
            accepted: Vec::with_capacity(MBAP_PREFIX + MAX_MBAP_LENGTH),
            accepted_pos: 0,
            passthrough: false,
        }
    }

    /// Follows the outgoing frames to learn each request's transaction id. Frames may be
    /// split across writes (a request abandoned mid-write is finished by the next send).
    fn observe_sent(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.sent_body_left > 0 {
                let n = self.sent_body_left.min(bytes.len());
                self.sent_body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (MBAP_PREFIX - self.sent_header_len).min(bytes.len());
            self.sent_header[self.sent_header_len..self.sent_header_len + n]
                .copy_from_slice(&bytes[..n]);
            self.sent_header_len += n;
            bytes = &bytes[n..];
            if self.sent_header_len == MBAP_PREFIX {
                let [t0, t1, _, _, l0, l1] = self.sent_header;
                self.latest = Some(u16::from_be_bytes([t0, t1]));
                self.sent_body_left = usize::from(u16::from_be_bytes([l0, l1]));
                self.sent_header_len = 0;
                // Whatever is left of an earlier answer belongs to an abandoned request,
                // as tokio-modbus itself assumes when it clears its buffer before sending.
                self.accepted.clear();
                self.accepted_pos = 0;
            }
        }
    }

    /// Takes the first whole frame out of `received`: the answer to the latest request
    /// becomes `accepted`, any other frame is dropped. False when more bytes are needed.
    fn classify_next(&mut self) -> bool {
        if self.passthrough {
            if self.received.is_empty() {
                return false;
            }
            self.accepted = std::mem::take(&mut self.received);
            self.accepted_pos = 0;
            return true;
        }
        let Some(&[t0, t1, p0, p1, l0, l1]) = self.received.first_chunk::<MBAP_PREFIX>() else {
            return false;
        };
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if u16::from_be_bytes([p0, p1]) != 0 || length == 0 || length > MAX_MBAP_LENGTH {
            self.passthrough = true;
            return self.classify_next();
        }
        if self.received.len() < MBAP_PREFIX + length {
            return false;
        }
        let frame: Vec<u8> = self.received.drain(..MBAP_PREFIX + length).collect();
        let transaction = u16::from_be_bytes([t0, t1]);
        if Some(transaction) == self.latest {
            self.accepted = frame;
            self.accepted_pos = 0;
        } else {
            tracing::debug!(transaction, "dropped a late answer to an abandoned request");
        }
        true
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LatestAnswerOnly<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.accepted_pos < this.accepted.len() {
                let n = buf.remaining().min(this.accepted.len() - this.accepted_pos);
                buf.put_slice(&this.accepted[this.accepted_pos..this.accepted_pos + n]);
                this.accepted_pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.classify_next() {
                continue;
            }
            let mut chunk = [0u8; 512];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                return Poll::Ready(Err(closed_by_device()));
            }
            this.received.extend_from_slice(chunk.filled());
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LatestAnswerOnly<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.observe_sent(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A transport for RTU framing that drops all input received before each request (see
/// the module note).
#[derive(Debug)]
pub(crate) struct StaleInputDropped<T> {
    inner: T,
    /// True while a request is being written: the drain runs once, before its first byte.
    writing: bool,
}

impl<T> StaleInputDropped<T> {
    /// Wraps a freshly opened stream or port.
    pub(crate) fn new(inner: T) -> Self {
        StaleInputDropped {
            inner,
            writing: false,
        }
    }
}

impl<T: AsyncRead + Unpin> StaleInputDropped<T> {
    /// Reads and drops whatever input is ready now, without waiting for more.
    fn drain(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let mut scratch = [0u8; 256];
        let mut dropped = 0usize;
        loop {
            let mut chunk = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => {
                    return Err(closed_by_device());
                }
                Poll::Ready(Ok(())) => dropped += chunk.filled().len(),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if dropped > 0 {
            tracing::debug!(
                bytes = dropped,
                "dropped stale input before a request (a late answer or line noise)"
            );
        }
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StaleInputDropped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writing = false;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() == before && buf.remaining() > 0 {
            return Poll::Ready(Err(closed_by_device()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for StaleInputDropped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.writing {
            this.drain(cx)?;
            this.writing = true;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// An MBAP frame: transaction id, protocol 0, length, unit 1, then `pdu`.
    fn frame(transaction: u16, pdu: &[u8]) -> Vec<u8> {
        let mut bytes = transaction.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(
            &u16::try_from(pdu.len() + 1)
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        bytes.push(1);
        bytes.extend_from_slice(pdu);
        bytes
    }

    const READ_ONE: [u8; 5] = [0x03, 0x00, 0x00, 0x00, 0x01];

    #[tokio::test]
    async fn late_answer_is_dropped_and_the_latest_passed_up() {
        let (client, mut device) = duplex(1024);
        let mut client = LatestAnswerOnly::new(client);

        client
            .write_all(&frame(7, &READ_ONE))
            .await
            .expect("write request 7");
        client
            .write_all(&frame(8, &READ_ONE))
            .await
            .expect("write request 8");
        let late = frame(7, &[0x03, 0x02, 0xAA, 0xAA]);
        let answer = frame(8, &[0x03, 0x02, 0x12, 0x34]);
        device
            .write_all(&[late, answer.clone()].concat())
            .await
            .expect("device writes");

        let mut got = vec![0u8; answer.len()];
        client.read_exact(&mut got).await.expect("read answer");
        assert_eq!(got, answer);
    }

    #[tokio::test]
    async fn request_split_across_writes_is_followed() {
        let (client, mut device) = duplex(1024);
        let mut client = LatestAnswerOnly::new(client);

        let request = frame(0x0102, &READ_ONE);
        for byte in &request {
            client.write_all(&[*byte]).await.expect("write one byte");
        }
        let answer = frame(0x0102, &[0x03, 0x02, 0, 5]);
        // The answer arrives in two pieces, split inside the header.
        device.write_all(&answer[..3]).await.expect("device writes");
        device.write_all(&answer[3..]).await.expect("device writes");

        let mut got = vec![0u8; answer.len()];
        client.read_exact(&mut got).await.expect("read answer");
        assert_eq!(got, answer);
    }

    #[tokio::test]
    async fn end_of_stream_is_an_error_that_says_so() {
        let (client, device) = duplex(64);
        let mut client = LatestAnswerOnly::new(client);
        drop(device);
        let error = client.read_u8().await.expect_err("end of stream");
        // Not `UnexpectedEof`: tokio-modbus raises that for a frame too short for its own
        // byte count, which is a malformed answer, not a lost connection.
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(error.to_string(), "connection closed by the device");
    }

    #[tokio::test]
    async fn non_mbap_bytes_pass_through_untouched() {
        let (client, mut device) = duplex(64);
        let mut client = LatestAnswerOnly::new(client);
        client
            .write_all(&frame(1, &READ_ONE))
            .await
            .expect("write request");
        let garbage = b"HTTP/1.1 400 Bad Request\r\n";
        device.write_all(garbage).await.expect("device writes");

        let mut got = vec![0u8; garbage.len()];
        client.read_exact(&mut got).await.expect("read garbage");
        assert_eq!(&got, garbage);
    }

    #[tokio::test]
    async fn rtu_input_received_before_a_request_is_dropped() {
        let (client, mut device) = duplex(1024);
        let mut client = StaleInputDropped::new(client);
        // A late answer to an abandoned request arrives before the next request.
        device
            .write_all(&[1, 3, 2, 0xAA, 0xAA, 0, 0])
            .await
            .expect("device writes");
        tokio::task::yield_now().await;
        client
            .write_all(&[1, 3, 0, 0, 0, 1, 0x84, 0x0A])
            .await
            .expect("request");
        let answer = [1, 3, 2, 0x12, 0x34, 0xB5, 0x33];
        device.write_all(&answer).await.expect("device answers");
        let mut got = [0u8; 7];
        client.read_exact(&mut got).await.expect("read answer");
        assert_eq!(got, answer);
        let mut request = [0u8; 8];
        device
            .read_exact(&mut request)
            .await
            .expect("request arrived");
    }

    #[tokio::test]
    async fn rtu_end_of_stream_is_a_lost_connection() {
        let (client, device) = duplex(64);
        let mut client = StaleInputDropped::new(client);
        drop(device);
        let error = client.read_u8().await.expect_err("end of stream");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }
}
