//! Modbus ASCII framing (Modbus over Serial Line v1.02, 2.5.2), as a byte stream under
//! tokio-modbus's RTU client.
//!
//! An ASCII frame carries the same address and PDU as an RTU frame, written as two
//! upper-case hexadecimal characters per byte between a `:` and CR LF, and closed by an
//! LRC (the two's complement of the bytes' sum) instead of a CRC:
//!
//! ```text
//! RTU    01 03 00 00 00 02 C4 0B
//! ASCII  :010300000002FA\r\n
//! ```
//!
//! [`AsciiFraming`] translates: each RTU frame tokio-modbus writes (one per request, then a
//! flush) goes out as an ASCII frame; each ASCII frame read is checked (hexadecimal digits,
//! LRC) and handed up as the RTU frame it stands for, with a CRC computed here, so that
//! tokio-modbus decodes it as it decodes any RTU answer. A frame that fails the check is an
//! `InvalidData` error, which the collector treats as a malformed answer (bad samples, the
//! link reopened). Everything before a `:` is line noise and skipped; a new request drops
//! whatever part of an earlier answer is still buffered, as a late answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest ASCII frame: `:`, 2 × (address + 253-byte PDU + LRC), CR LF (the
/// specification's 513 characters).
pub const MAX_FRAME: usize = 513;

/// The LRC of `bytes`: the two's complement of their sum, modulo 256.
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, &b| sum.wrapping_add(b))
        .wrapping_neg()
}

/// The Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) of `bytes`; it goes on
/// the line low byte first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Why an ASCII frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsciiError {
    /// A character between `:` and CR LF that is not a hexadecimal digit, or an odd count.
    #[error("ASCII frame is not hexadecimal byte pairs")]
    NotHex,
    /// Fewer bytes than an address, a function code and an LRC.
    #[error("ASCII frame of {0} bytes is too short")]
    TooShort(usize),
    /// The LRC does not match the frame's bytes.
    #[error("ASCII frame LRC {got:02X}, expected {expected:02X}")]
    Lrc {
        /// The LRC in the frame.
        got: u8,
        /// The LRC of its bytes.
        expected: u8,
    },
    /// No CR LF within the longest frame.
    #[error("ASCII frame longer than {MAX_FRAME} characters")]
    TooLong,
}

/// Encodes an address and PDU (`body`) as an ASCII frame.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * body.len() + 5);
    out.push(b':');
    for &b in body.iter().chain(std::iter::once(&lrc(body))) {
        out.extend_from_slice(hex_pair(b).as_slice());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn hex_pair(b: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0F)]]
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        // The specification asks for upper case; lower case costs nothing to accept.
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes the characters between `:` and CR LF into the address and PDU, checking the
/// LRC (which is dropped).
pub fn decode(chars: &[u8]) -> Result<Vec<u8>, AsciiError> {
    if !chars.len().is_multiple_of(2) {
        return Err(AsciiError::NotHex);
    }
    let mut bytes = Vec::with_capacity(chars.len() / 2);
    for pair in chars.chunks_exact(2) {
        let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return Err(AsciiError::NotHex);
        };
        bytes.push(hi << 4 | lo);
    }
    if bytes.len() < 3 {
        return Err(AsciiError::TooShort(bytes.len()));
    }
    let got = bytes.pop().unwrap_or_default();
    let expected = lrc(&bytes);
    if got != expected {
        return Err(AsciiError::Lrc { got, expected });
    }
    Ok(bytes)
}

/// Finds the first whole frame in `raw`: skips to its `:`, and returns the characters up to
/// its CR LF and how many bytes of `raw` it used; `None` while the frame is incomplete.
/// Noise before the `:` is consumed.
fn next_frame(raw: &[u8]) -> Option<Result<(std::ops::Range<usize>, usize), AsciiError>> {
    let start = raw.iter().position(|&c| c == b':')?;
    let rest = &raw[start + 1..];
    match rest.iter().position(|&c| c == b'\n') {
        Some(end) => {
            let chars_end = if end > 0 && rest[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            Some(Ok((start + 1..start + 1 + chars_end, start + 1 + end + 1)))
        }
        None if raw.len() - start > MAX_FRAME => Some(Err(AsciiError::TooLong)),
        None => None,
    }
}

/// RTU framing in, ASCII framing out (see the module note).
#[derive(Debug)]
pub(crate) struct AsciiFraming<T> {
    inner: T,
    /// The RTU frame being written by tokio-modbus, sent at the flush.
    request: Vec<u8>,
    /// The ASCII frame being sent, and how much of it is out.
    sending: Vec<u8>,
    sent: usize,
    /// Characters received and not yet framed.
    raw: Vec<u8>,
    /// The RTU frame of the answer, and how much of it was handed up.
    answer: Vec<u8>,
    answered: usize,
}

impl<T> AsciiFraming<T> {
    /// Wraps a freshly opened port.
    pub(crate) fn new(inner: T) -> Self {
        AsciiFraming {
            inner,
            request: Vec::with_capacity(256),
            sending: Vec::with_capacity(MAX_FRAME),
            sent: 0,
            raw: Vec::with_capacity(2 * MAX_FRAME),
            answer: Vec::with_capacity(256),
            answered: 0,
        }
    }

    /// Turns the buffered RTU request into the ASCII frame to send, and forgets any part
    /// of an earlier answer: whatever comes now answers this request.
    fn start_sending(&mut self) {
        // The RTU frame's last two bytes are its CRC, which ASCII replaces by the LRC.
        let body_len = self.request.len().saturating_sub(2);
        self.sending = encode(&self.request[..body_len]);
        self.sent = 0;
        self.request.clear();
        self.raw.clear();
        self.answer.clear();
        self.answered = 0;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AsciiFraming<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.answered < this.answer.len() {
                let n = buf.remaining().min(this.answer.len() - this.answered);
                buf.put_slice(&this.answer[this.answered..this.answered + n]);
                this.answered += n;
                return Poll::Ready(Ok(()));
            }
            match next_frame(&this.raw) {
                Some(Ok((chars, used))) => {
                    let decoded = decode(&this.raw[chars]);
                    this.raw.drain(..used);
                    let body =
                        decoded.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    this.answer.clear();
                    this.answer.extend_from_slice(&body);
                    this.answer.extend_from_slice(&crc16(&body).to_le_bytes());
                    this.answered = 0;
                    continue;
                }
                Some(Err(e)) => {
                    this.raw.clear();
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
                None => {}
            }
            let mut chunk = [0u8; 256];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "connection closed by the device",
                )));
            }
            this.raw.extend_from_slice(chunk.filled());
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AsciiFraming<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.request.len() + buf.len() > MAX_FRAME {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "request too long for one Modbus frame",
            )));
        }
        this.request.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.request.is_empty() && this.sent == this.sending.len() {
            this.start_sending();
        }
        while this.sent < this.sending.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.sending[this.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.sent += n;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// The specification's example: read 2 holding registers at 0 from slave 1.
    #[test]
    fn encodes_the_specifications_example() {
        assert_eq!(
            encode(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02]),
            b":010300000002FA\r\n"
        );
        assert_eq!(lrc(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02]), 0xFA);
        assert_eq!(crc16(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02]), 0x0BC4);
    }

    #[test]
    fn decodes_and_checks_the_lrc() {
        assert_eq!(
            decode(b"010302002AD0"),
            Ok(vec![0x01, 0x03, 0x02, 0x00, 0x2A])
        );
        assert_eq!(
            decode(b"010302002AD1"),
            Err(AsciiError::Lrc {
                got: 0xD1,
                expected: 0xD0
            })
        );
        assert_eq!(decode(b"01030G"), Err(AsciiError::NotHex));
        assert_eq!(decode(b"0103020"), Err(AsciiError::NotHex));
        assert_eq!(decode(b"01FF"), Err(AsciiError::TooShort(2)));
    }

    #[test]
    fn frames_are_found_after_noise_and_only_when_whole() {
        assert!(next_frame(b"\x00\xff:0103").is_none());
        let raw = b"xx:0103\r\n:04";
        let Some(Ok((chars, used))) = next_frame(raw) else {
            panic!("a frame");
        };
        assert_eq!(&raw[chars], b"0103");
        assert_eq!(used, 9);
        let long = [b':'; MAX_FRAME + 2];
        assert_eq!(next_frame(&long), Some(Err(AsciiError::TooLong)));
    }

    #[tokio::test]
    async fn an_rtu_request_goes_out_as_ascii_and_the_answer_comes_back_as_rtu() {
        let (client, mut device) = duplex(1024);
        let mut client = AsciiFraming::new(client);
        let request = [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B];
        client.write_all(&request).await.expect("write");
        client.flush().await.expect("flush");
        let mut line = vec![0u8; 17];
        device.read_exact(&mut line).await.expect("the request");
        assert_eq!(line, b":010300000002FA\r\n");

        // Noise, then the answer in two pieces.
        device.write_all(b"\x00:0103040001").await.expect("answer");
        device.write_all(b"0002F5\r\n").await.expect("answer");
        let body = [0x01, 0x03, 0x04, 0x00, 0x01, 0x00, 0x02];
        let mut got = vec![0u8; body.len() + 2];
        client.read_exact(&mut got).await.expect("the answer");
        assert_eq!(&got[..body.len()], body);
        assert_eq!(got[body.len()..], crc16(&body).to_le_bytes());
    }

    #[tokio::test]
    async fn a_bad_lrc_is_invalid_data() {
        let (client, mut device) = duplex(1024);
        let mut client = AsciiFraming::new(client);
        device
            .write_all(b":010302002AD1\r\n")
            .await
            .expect("answer");
        let error = client.read_u8().await.expect_err("bad LRC");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("LRC"), "{error}");
    }

    #[tokio::test]
    async fn a_new_request_drops_a_partial_late_answer() {
        let (client, mut device) = duplex(1024);
        let mut client = AsciiFraming::new(client);
        device.write_all(b":0103").await.expect("late");
        // Let the partial answer be read into the buffer.
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(20), client.read_u8()).await;
        assert!(read.is_err(), "nothing whole yet");
        client
            .write_all(&[1, 3, 0, 0, 0, 1, 0, 0])
            .await
            .expect("write");
        client.flush().await.expect("flush");
        device
            .write_all(b":010302002AD0\r\n")
            .await
            .expect("answer");
        let mut got = [0u8; 7];
        client.read_exact(&mut got).await.expect("the answer");
        assert_eq!(got[..5], [0x01, 0x03, 0x02, 0x00, 0x2A]);
    }
}
