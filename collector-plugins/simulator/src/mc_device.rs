//! A simulated Mitsubishi MELSEC PLC: an [`McMemory`] of word and bit devices served
//! over TCP with the MC protocol's QnA-compatible 3E frame, binary code (batch read,
//! command 0401, in word units and in bit units).
//!
//! Written from the MELSEC communication protocol's published frame layout, independently
//! of the `fieldlink-mc` client; it is the peer of the client's tests and benchmarks (no
//! maintained third-party MC server exists to test against). What a PLC refuses is
//! refused with its end code: an unsupported command or subcommand 0xC059, a device code
//! the memory does not hold 0xC05B, 0 or more than 960 points 0xC051, a read past a
//! device's last number 0xC056.

use crate::modbus_device::{Scalar, Source};
use fieldlink_collector_api::clock;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How a mapped value is stored: words low byte first, 32-bit values low word first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McKind {
    /// A contact of a bit device.
    Bit,
    /// One word, unsigned.
    U16,
    /// One word, two's complement.
    I16,
    /// Two words, unsigned, low word first.
    U32,
    /// Two words, two's complement, low word first.
    I32,
    /// Two words, IEEE 754 single, low word first.
    F32,
    /// `n` words of text, two characters a word, the first in the low byte.
    String(u16),
}

impl McKind {
    fn words(self) -> u32 {
        match self {
            McKind::Bit | McKind::U16 | McKind::I16 => 1,
            McKind::U32 | McKind::I32 | McKind::F32 => 2,
            McKind::String(n) => u32::from(n),
        }
    }

    /// The words of `value`.
    fn encode(self, value: &Scalar<'_>, out: &mut Vec<u16>) {
        let number = match value {
            Scalar::Number(v) => *v,
            Scalar::Text(_) => 0.0,
        };
        let n = number.round();
        let split = |v: u32| [v as u16, (v >> 16) as u16];
        match self {
            McKind::Bit => out.push(u16::from(number != 0.0)),
            McKind::U16 => out.push(n as u16),
            McKind::I16 => out.push((n as i16).cast_unsigned()),
            McKind::U32 => out.extend(split(n as u32)),
            McKind::I32 => out.extend(split((n as i32).cast_unsigned())),
            McKind::F32 => out.extend(split((number as f32).to_bits())),
            McKind::String(words) => {
                let text = match value {
                    Scalar::Text(text) => (*text).to_owned(),
                    Scalar::Number(v) => v.to_string(),
                };
                let mut bytes = text.into_bytes();
                bytes.resize(2 * usize::from(words), 0);
                out.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]])),
                );
            }
        }
    }
}

/// One named value of the PLC.
#[derive(Debug, Clone, PartialEq)]
pub struct McMapping {
    /// Its name.
    pub name: Arc<str>,
    /// The device code (`0xA8` D, `0x90` M, ...).
    pub code: u8,
    /// The device number (of its first word, or of the contact).
    pub number: u32,
    /// How it is stored.
    pub kind: McKind,
    /// Where the value comes from.
    pub source: Source,
}

/// Why a mapping cannot be added; fix the memory's layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McMapError {
    /// The device code was not declared with [`McMemory::device`].
    #[error("`{0}`: its device is not declared")]
    NoDevice(Arc<str>),
    /// The value runs past the device's last number, or is a word in a bit device.
    #[error("`{0}` does not fit its device")]
    DoesNotFit(Arc<str>),
}

#[derive(Debug, Clone, Default)]
struct Area {
    bits: bool,
    size: u32,
    /// Mappings by first number.
    mappings: BTreeMap<u32, McMapping>,
}

/// The PLC's devices.
#[derive(Debug, Clone, Default)]
pub struct McMemory {
    devices: BTreeMap<u8, Area>,
    fixed_time_ms: Option<i64>,
}

impl McMemory {
    /// No devices.
    pub fn new() -> Self {
        McMemory::default()
    }

    /// Declares device `code` with `size` numbers (words, or contacts when `bits`).
    pub fn device(mut self, code: u8, bits: bool, size: u32) -> Self {
        let area = self.devices.entry(code).or_default();
        area.bits = bits;
        area.size = size;
        self
    }

    /// Adds a mapping in a declared device.
    pub fn insert(&mut self, mapping: McMapping) -> Result<(), McMapError> {
        let Some(area) = self.devices.get_mut(&mapping.code) else {
            return Err(McMapError::NoDevice(mapping.name));
        };
        let fits = (area.bits == (mapping.kind == McKind::Bit))
            && mapping.number + mapping.kind.words() <= area.size;
        if !fits {
            return Err(McMapError::DoesNotFit(mapping.name));
        }
        area.mappings.insert(mapping.number, mapping);
        Ok(())
    }

    /// The memory with `mapping` added.
    pub fn with(mut self, mapping: McMapping) -> Result<Self, McMapError> {
        self.insert(mapping)?;
        Ok(self)
    }

    /// The memory frozen at `t_ms`.
    pub fn at_fixed_time(mut self, t_ms: i64) -> Self {
        self.fixed_time_ms = Some(t_ms);
        self
    }

    /// `points` words of device `code` from `head` at `t_ms` (for a bit device, 16
    /// contacts a word from contact `head`, the first in the lowest bit), or the end code.
    pub fn read_words(&self, code: u8, head: u32, points: u16, t_ms: i64) -> Result<Vec<u16>, u16> {
        let area = self.devices.get(&code).ok_or(0xC05B_u16)?;
        if points == 0 || points > 960 {
            return Err(0xC051);
        }
        let per_word = if area.bits { 16 } else { 1 };
        let end = head + u32::from(points) * per_word;
        if end > area.size {
            return Err(0xC056);
        }
        let mut words = vec![0u16; usize::from(points)];
        let mut scratch = Vec::with_capacity(8);
        let first = area
            .mappings
            .range(..=head)
            .next_back()
            .map_or(head, |(n, _)| *n);
        for (number, mapping) in area.mappings.range(first..end) {
            scratch.clear();
            mapping.kind.encode(&mapping.source.at(t_ms), &mut scratch);
            if area.bits {
                if *number >= head && scratch.first() == Some(&1) {
                    let offset = number - head;
                    words[(offset / 16) as usize] |= 1 << (offset % 16);
                }
                continue;
            }
            for (i, word) in scratch.iter().enumerate() {
                let at = number + i as u32;
                if (head..end).contains(&at) {
                    words[(at - head) as usize] = *word;
                }
            }
        }
        Ok(words)
    }

    /// `points` contacts of bit device `code` from `head`, or the end code.
    fn read_bits(&self, code: u8, head: u32, points: u16, t_ms: i64) -> Result<Vec<bool>, u16> {
        let area = self.devices.get(&code).ok_or(0xC05B_u16)?;
        if !area.bits {
            return Err(0xC05B);
        }
        let words = self.read_words(code, head, points.div_ceil(16).max(1), t_ms)?;
        Ok((0..usize::from(points))
            .map(|i| words[i / 16] >> (i % 16) & 1 == 1)
            .collect())
    }

    fn now_ms(&self) -> i64 {
        self.fixed_time_ms.unwrap_or_else(clock::now_ms)
    }
}

/// Serves `memory` on `listener` until `shutdown` fires; connection tasks end with it.
pub async fn serve(
    listener: TcpListener,
    memory: McMemory,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let memory = Arc::new(memory);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return Ok(()),
        };
        let (stream, _) = accepted?;
        let memory = Arc::clone(&memory);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection(stream, &memory) => {
                    if let Err(e) = result {
                        tracing::debug!(%e, "simulated MC connection ended");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
}

async fn connection(mut stream: TcpStream, memory: &McMemory) -> io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).await?;
        if header[..2] != [0x50, 0x00] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a 3E binary request",
            ));
        }
        let length = usize::from(u16::from_le_bytes([header[7], header[8]]));
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        let (end_code, data) = answer(&body, memory);
        let mut out = vec![
            0xD0, 0x00, header[2], header[3], header[4], header[5], header[6],
        ];
        let payload_len = 2 + if end_code == 0 { data.len() } else { 9 };
        out.extend_from_slice(&(payload_len as u16).to_le_bytes());
        out.extend_from_slice(&end_code.to_le_bytes());
        if end_code == 0 {
            out.extend_from_slice(&data);
        } else {
            // Error information: the request's routing, command and subcommand.
            out.extend_from_slice(&header[2..7]);
            out.extend_from_slice(body.get(2..6).unwrap_or(&[0; 4]));
        }
        stream.write_all(&out).await?;
    }
}

/// The end code and data answering one request body (timer onwards).
fn answer(body: &[u8], memory: &McMemory) -> (u16, Vec<u8>) {
    let [_, _, c0, c1, s0, s1, h0, h1, h2, code, p0, p1, ..] = *body else {
        return (0xC061, Vec::new());
    };
    let command = u16::from_le_bytes([c0, c1]);
    let subcommand = u16::from_le_bytes([s0, s1]);
    let head = u32::from_le_bytes([h0, h1, h2, 0]);
    let points = u16::from_le_bytes([p0, p1]);
    let t_ms = memory.now_ms();
    match (command, subcommand) {
        (0x0401, 0x0000) => match memory.read_words(code, head, points, t_ms) {
            Ok(words) => (0, words.iter().flat_map(|w| w.to_le_bytes()).collect()),
            Err(end) => (end, Vec::new()),
        },
        (0x0401, 0x0001) => match memory.read_bits(code, head, points, t_ms) {
            // Two contacts a byte, the first in the high nibble.
            Ok(bits) => (
                0,
                bits.chunks(2)
                    .map(|pair| u8::from(pair[0]) << 4 | u8::from(pair.get(1) == Some(&true)))
                    .collect(),
            ),
            Err(end) => (end, Vec::new()),
        },
        _ => (0xC059, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_wire::Value;

    fn memory() -> McMemory {
        let m = |name: &str, code, number, kind, value| McMapping {
            name: name.into(),
            code,
            number,
            kind,
            source: Source::Constant(value),
        };
        McMemory::new()
            .device(0xA8, false, 100)
            .device(0x90, true, 64)
            .with(m("a", 0xA8, 10, McKind::I16, Value::Int(-2)))
            .and_then(|x| x.with(m("b", 0xA8, 11, McKind::U32, Value::Int(70_000))))
            .and_then(|x| {
                x.with(m(
                    "s",
                    0xA8,
                    20,
                    McKind::String(2),
                    Value::Text("AB7".into()),
                ))
            })
            .and_then(|x| x.with(m("m3", 0x90, 3, McKind::Bit, Value::Bool(true))))
            .and_then(|x| x.with(m("m17", 0x90, 17, McKind::Bit, Value::Bool(true))))
            .expect("memory")
    }

    #[test]
    fn words_bits_and_end_codes() {
        let m = memory();
        assert_eq!(
            m.read_words(0xA8, 10, 3, 0),
            Ok(vec![0xFFFE, 0x1170, 0x0001])
        );
        assert_eq!(m.read_words(0xA8, 20, 2, 0), Ok(vec![0x4241, 0x0037]));
        assert_eq!(m.read_words(0x90, 0, 2, 0), Ok(vec![0b1000, 0b10]));
        assert_eq!(m.read_bits(0x90, 2, 3, 0), Ok(vec![false, true, false]));
        assert_eq!(m.read_words(0xA8, 99, 2, 0), Err(0xC056));
        assert_eq!(m.read_words(0xB4, 0, 1, 0), Err(0xC05B));
        assert_eq!(m.read_words(0xA8, 0, 0, 0), Err(0xC051));
        let body = [4, 0, 0x01, 0x04, 0x01, 0x00, 2, 0, 0, 0x90, 3, 0];
        assert_eq!(answer(&body, &m), (0, vec![0x01, 0x00]));
        let body = [4, 0, 0x01, 0x14, 0x00, 0x00, 0, 0, 0, 0xA8, 1, 0];
        assert_eq!(answer(&body, &m).0, 0xC059);
    }
}
