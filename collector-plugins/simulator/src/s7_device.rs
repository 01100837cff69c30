//! A simulated Siemens S7 PLC: an [`S7Memory`] of data blocks, flags, inputs and outputs
//! served over ISO-on-TCP (RFC 1006) with S7comm's "setup communication" and "read var".
//!
//! Written from the protocol's published layout, independently of the `fieldlink-s7`
//! client (this is the peer the client is tested against; python-snap7's server is the
//! third-party one in CI). Values are computed from their [`Source`]s when a request
//! arrives. What a PLC would refuse is refused as a PLC does: a data block that does not
//! exist is item error 0x0A, a read past a block's end 0x05, a called TSAP other than the
//! one configured a COTP disconnect, an unknown function header error 0x8104, and an
//! answer that would not fit the negotiated PDU header error 0x8500.

use crate::modbus_device::{Scalar, Source};
use fieldlink_collector_api::clock;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// An S7 memory area, by its S7comm area code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S7Area {
    /// Process image of the inputs (0x81).
    Input,
    /// Process image of the outputs (0x82).
    Output,
    /// Flags (0x83).
    Merker,
    /// Data block `n` (0x84).
    Db(u16),
}

impl S7Area {
    fn key(self) -> (u8, u16) {
        match self {
            S7Area::Input => (0x81, 0),
            S7Area::Output => (0x82, 0),
            S7Area::Merker => (0x83, 0),
            S7Area::Db(n) => (0x84, n),
        }
    }
}

/// How a mapped value is stored (big-endian, as S7 CPUs store it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S7Kind {
    /// Bit `0..8` of the byte.
    Bit(u8),
    /// BYTE.
    U8,
    /// SINT.
    I8,
    /// WORD.
    U16,
    /// INT.
    I16,
    /// DWORD.
    U32,
    /// DINT.
    I32,
    /// REAL.
    F32,
    /// LREAL.
    F64,
    /// STRING[len]: maximum length, current length, characters.
    String(u8),
}

impl S7Kind {
    fn bytes(self) -> u32 {
        match self {
            S7Kind::Bit(_) | S7Kind::U8 | S7Kind::I8 => 1,
            S7Kind::U16 | S7Kind::I16 => 2,
            S7Kind::U32 | S7Kind::I32 | S7Kind::F32 => 4,
            S7Kind::F64 => 8,
            S7Kind::String(len) => u32::from(len) + 2,
        }
    }

    /// Writes `value` into `out` (exactly [`S7Kind::bytes`] long; bits are or-ed in).
    fn encode(self, value: &Scalar<'_>, out: &mut [u8]) {
        let number = match value {
            Scalar::Number(v) => *v,
            Scalar::Text(_) => 0.0,
        };
        // Round first: float-to-integer casts truncate (and saturate).
        let n = number.round();
        match self {
            S7Kind::Bit(bit) => {
                if number != 0.0 {
                    out[0] |= 1 << (bit & 7);
                } else {
                    out[0] &= !(1 << (bit & 7));
                }
            }
            S7Kind::U8 => out[0] = n as u8,
            S7Kind::I8 => out[0] = (n as i8).cast_unsigned(),
            S7Kind::U16 => out.copy_from_slice(&(n as u16).to_be_bytes()),
            S7Kind::I16 => out.copy_from_slice(&(n as i16).to_be_bytes()),
            S7Kind::U32 => out.copy_from_slice(&(n as u32).to_be_bytes()),
            S7Kind::I32 => out.copy_from_slice(&(n as i32).to_be_bytes()),
            S7Kind::F32 => out.copy_from_slice(&(number as f32).to_be_bytes()),
            S7Kind::F64 => out.copy_from_slice(&number.to_be_bytes()),
            S7Kind::String(len) => {
                let text = match value {
                    Scalar::Text(text) => (*text).to_owned(),
                    Scalar::Number(v) => v.to_string(),
                };
                let chars = &text.as_bytes()[..text.len().min(usize::from(len))];
                out[0] = len;
                out[1] = chars.len() as u8;
                out[2..2 + chars.len()].copy_from_slice(chars);
            }
        }
    }
}

/// One named value of the PLC.
#[derive(Debug, Clone, PartialEq)]
pub struct S7Mapping {
    /// Its name (for mirroring in configuration).
    pub name: Arc<str>,
    /// The area.
    pub area: S7Area,
    /// The byte offset.
    pub byte: u32,
    /// How it is stored.
    pub kind: S7Kind,
    /// Where the value comes from.
    pub source: Source,
}

/// Why a mapping cannot be added; fix the memory's layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S7MapError {
    /// The area was not declared with [`S7Memory::area`].
    #[error("`{0}`: its area is not declared")]
    NoArea(Arc<str>),
    /// The value runs past the end of its area.
    #[error("`{0}` runs past the end of its area")]
    OutOfRange(Arc<str>),
}

#[derive(Debug, Clone, Default)]
struct Block {
    size: u32,
    mappings: Vec<S7Mapping>,
}

/// The PLC's memory: declared areas and the values mapped into them.
#[derive(Debug, Clone, Default)]
pub struct S7Memory {
    blocks: BTreeMap<(u8, u16), Block>,
    fixed_time_ms: Option<i64>,
}

impl S7Memory {
    /// An empty memory: no areas.
    pub fn new() -> Self {
        S7Memory::default()
    }

    /// Declares `area` with `size` bytes (zeros where nothing is mapped).
    pub fn area(mut self, area: S7Area, size: u32) -> Self {
        self.blocks.entry(area.key()).or_default().size = size;
        self
    }

    /// Adds a mapping inside a declared area.
    pub fn insert(&mut self, mapping: S7Mapping) -> Result<(), S7MapError> {
        let Some(block) = self.blocks.get_mut(&mapping.area.key()) else {
            return Err(S7MapError::NoArea(mapping.name));
        };
        if mapping.byte + mapping.kind.bytes() > block.size {
            return Err(S7MapError::OutOfRange(mapping.name));
        }
        block.mappings.push(mapping);
        Ok(())
    }

    /// The memory with `mapping` added.
    pub fn with(mut self, mapping: S7Mapping) -> Result<Self, S7MapError> {
        self.insert(mapping)?;
        Ok(self)
    }

    /// The memory frozen at `t_ms` (tests, reproducible captures).
    pub fn at_fixed_time(mut self, t_ms: i64) -> Self {
        self.fixed_time_ms = Some(t_ms);
        self
    }

    /// `len` bytes of the area `(code, db)` from `start` at `t_ms`, or the item return
    /// code a PLC answers (0x0A no such area, 0x05 out of range).
    pub fn read(&self, code: u8, db: u16, start: u32, len: u32, t_ms: i64) -> Result<Vec<u8>, u8> {
        let block = self.blocks.get(&(code, db)).ok_or(0x0A_u8)?;
        let end = start.checked_add(len).ok_or(0x05_u8)?;
        if end > block.size {
            return Err(0x05);
        }
        let mut out = vec![0u8; len as usize];
        let mut scratch = [0u8; 258];
        for mapping in &block.mappings {
            let (m_start, m_len) = (mapping.byte, mapping.kind.bytes());
            if m_start + m_len <= start || m_start >= end {
                continue;
            }
            let own = &mut scratch[..m_len as usize];
            own.fill(0);
            if let S7Kind::Bit(_) = mapping.kind {
                own[0] = out.get((m_start - start) as usize).copied().unwrap_or(0);
            }
            mapping.kind.encode(&mapping.source.at(t_ms), own);
            for (i, byte) in own.iter().enumerate() {
                let at = m_start + i as u32;
                if (start..end).contains(&at) {
                    out[(at - start) as usize] = *byte;
                }
            }
        }
        Ok(out)
    }

    fn now_ms(&self) -> i64 {
        self.fixed_time_ms.unwrap_or_else(clock::now_ms)
    }
}

/// How the simulated PLC behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S7Options {
    /// The largest PDU it grants (S7-300: 240, S7-1200: 240 or 480, S7-1500: 960).
    pub pdu_size: u16,
    /// The called TSAP it accepts (`None`: any), as rack and slot select a CPU.
    pub remote_tsap: Option<u16>,
}

impl Default for S7Options {
    fn default() -> Self {
        S7Options {
            pdu_size: 480,
            remote_tsap: None,
        }
    }
}

/// Serves `memory` on `listener` until `shutdown` fires; connection tasks end with it.
pub async fn serve(
    listener: TcpListener,
    memory: S7Memory,
    options: S7Options,
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
                result = connection(stream, &memory, options) => {
                    if let Err(e) = result {
                        tracing::debug!(%e, "simulated S7 connection ended");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
}

fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 4) as u16;
    let mut out = vec![3, 0];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn data_unit(s7: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x02, 0xF0, 0x80];
    payload.extend_from_slice(s7);
    tpkt(&payload)
}

/// An acknowledgement: ROSCTR 3 with data, or 2 for a bare error.
fn ack(pdu_ref: [u8; 2], error: u16, param: &[u8], data: &[u8]) -> Vec<u8> {
    let rosctr = if error == 0 { 0x03 } else { 0x02 };
    let mut out = vec![0x32, rosctr, 0, 0, pdu_ref[0], pdu_ref[1]];
    out.extend_from_slice(&(param.len() as u16).to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(param);
    out.extend_from_slice(data);
    out
}

async fn connection(
    mut stream: TcpStream,
    memory: &S7Memory,
    options: S7Options,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut pdu_size = options.pdu_size;
    loop {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await?;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header[0] != 3 || len < 7 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad TPKT"));
        }
        let mut packet = vec![0u8; len - 4];
        stream.read_exact(&mut packet).await?;
        let li = usize::from(packet[0]);
        if packet.len() < 1 + li || li < 1 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad COTP"));
        }
        match packet[1] & 0xF0 {
            0xE0 => {
                let called = called_tsap(&packet[2..=li]);
                if options.remote_tsap.is_some_and(|t| Some(t) != called) {
                    // Disconnect request, reason 0x03 ("address unknown").
                    stream
                        .write_all(&tpkt(&[6, 0x80, 0, 1, 0, 2, 0x03]))
                        .await?;
                    return Ok(());
                }
                stream.write_all(&tpkt(&[6, 0xD0, 0, 1, 0, 2, 0])).await?;
            }
            0xF0 => {
                let s7 = &packet[1 + li..];
                let answer = job(s7, memory, &mut pdu_size, options.pdu_size);
                stream.write_all(&data_unit(&answer)).await?;
            }
            _ => return Ok(()),
        }
    }
}

/// The called TSAP (parameter 0xC2) of a connection request's variable part.
fn called_tsap(mut params: &[u8]) -> Option<u16> {
    // Skip the fixed part: destination and source references and the class.
    params = params.get(5..)?;
    while let [code, len, rest @ ..] = params {
        let len = usize::from(*len);
        let value = rest.get(..len)?;
        if *code == 0xC2 && len == 2 {
            return Some(u16::from_be_bytes([value[0], value[1]]));
        }
        params = &rest[len..];
    }
    None
}

/// The answer to one job PDU.
fn job(s7: &[u8], memory: &S7Memory, pdu_size: &mut u16, max_pdu: u16) -> Vec<u8> {
    if s7.len() < 10 || s7[0] != 0x32 || s7[1] != 0x01 {
        return ack([0, 0], 0x8104, &[], &[]);
    }
    let pdu_ref = [s7[4], s7[5]];
    let param_len = usize::from(u16::from_be_bytes([s7[6], s7[7]]));
    let Some(param) = s7.get(10..10 + param_len) else {
        return ack(pdu_ref, 0x8104, &[], &[]);
    };
    match param.first() {
        Some(0xF0) if param.len() >= 8 => {
            let asked = u16::from_be_bytes([param[6], param[7]]);
            *pdu_size = asked.min(max_pdu);
            let [p0, p1] = pdu_size.to_be_bytes();
            ack(pdu_ref, 0, &[0xF0, 0, 0, 1, 0, 1, p0, p1], &[])
        }
        Some(0x04) if param.len() >= 2 => {
            let count = usize::from(param[1]);
            let mut data = Vec::new();
            let t_ms = memory.now_ms();
            for i in 0..count {
                let Some(item) = param.get(2 + 12 * i..14 + 12 * i) else {
                    return ack(pdu_ref, 0x8500, &[], &[]);
                };
                if item[..3] != [0x12, 0x0A, 0x10] {
                    data.extend_from_slice(&[0x06, 0, 0, 0]);
                    continue;
                }
                let transport = item[3];
                let quantity = u32::from(u16::from_be_bytes([item[4], item[5]]));
                let db = u16::from_be_bytes([item[6], item[7]]);
                let area = item[8];
                let bit_address = u32::from_be_bytes([0, item[9], item[10], item[11]]);
                let (start, len, bit) = match transport {
                    0x01 => (bit_address >> 3, 1, Some(bit_address & 7)),
                    0x04 | 0x05 => (bit_address >> 3, quantity * 2, None),
                    0x06..=0x08 => (bit_address >> 3, quantity * 4, None),
                    _ => (bit_address >> 3, quantity, None),
                };
                match memory.read(area, if area == 0x84 { db } else { 0 }, start, len, t_ms) {
                    Ok(mut bytes) => {
                        let (code, length) = match bit {
                            Some(bit) => {
                                bytes = vec![bytes[0] >> bit & 1];
                                (0x03, 1u16)
                            }
                            None => (0x04, (bytes.len() * 8) as u16),
                        };
                        data.push(0xFF);
                        data.push(code);
                        data.extend_from_slice(&length.to_be_bytes());
                        data.extend_from_slice(&bytes);
                        if bytes.len() % 2 == 1 && i + 1 < count {
                            data.push(0);
                        }
                    }
                    Err(code) => data.extend_from_slice(&[code, 0, 0, 0]),
                }
            }
            if 14 + data.len() > usize::from(*pdu_size) {
                return ack(pdu_ref, 0x8500, &[], &[]);
            }
            ack(pdu_ref, 0, &[0x04, count as u8], &data)
        }
        _ => ack(pdu_ref, 0x8104, &[], &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_wire::Value;

    fn constant(v: Value) -> Source {
        Source::Constant(v)
    }

    fn memory() -> S7Memory {
        let mapping = |name: &str, area, byte, kind, value| S7Mapping {
            name: name.into(),
            area,
            byte,
            kind,
            source: constant(value),
        };
        S7Memory::new()
            .area(S7Area::Db(1), 16)
            .area(S7Area::Merker, 4)
            .with(mapping("w", S7Area::Db(1), 0, S7Kind::I16, Value::Int(-2)))
            .and_then(|m| {
                m.with(mapping(
                    "r",
                    S7Area::Db(1),
                    2,
                    S7Kind::F32,
                    Value::Float(1.5),
                ))
            })
            .and_then(|m| {
                m.with(mapping(
                    "b3",
                    S7Area::Merker,
                    0,
                    S7Kind::Bit(3),
                    Value::Bool(true),
                ))
            })
            .and_then(|m| {
                m.with(mapping(
                    "b5",
                    S7Area::Merker,
                    0,
                    S7Kind::Bit(5),
                    Value::Bool(true),
                ))
            })
            .and_then(|m| {
                m.with(mapping(
                    "s",
                    S7Area::Db(1),
                    6,
                    S7Kind::String(4),
                    Value::Text("AB".into()),
                ))
            })
            .expect("memory")
    }

    #[test]
    fn reads_return_the_encoded_values_and_plc_errors() {
        let m = memory();
        assert_eq!(
            m.read(0x84, 1, 0, 6, 0),
            Ok(vec![0xFF, 0xFE, 0x3F, 0xC0, 0, 0])
        );
        assert_eq!(m.read(0x83, 0, 0, 1, 0), Ok(vec![0b0010_1000]));
        assert_eq!(m.read(0x84, 1, 6, 6, 0), Ok(vec![4, 2, b'A', b'B', 0, 0]));
        assert_eq!(m.read(0x84, 2, 0, 1, 0), Err(0x0A));
        assert_eq!(m.read(0x84, 1, 10, 7, 0), Err(0x05));
        assert!(matches!(
            S7Memory::new().with(S7Mapping {
                name: "x".into(),
                area: S7Area::Db(9),
                byte: 0,
                kind: S7Kind::U8,
                source: constant(Value::Int(1)),
            }),
            Err(S7MapError::NoArea(_))
        ));
    }

    #[test]
    fn a_setup_is_granted_at_most_the_configured_pdu() {
        let mut pdu = 480;
        let answer = job(
            &[
                0x32, 1, 0, 0, 0, 5, 0, 8, 0, 0, 0xF0, 0, 0, 1, 0, 1, 0x03, 0xC0,
            ],
            &memory(),
            &mut pdu,
            480,
        );
        assert_eq!(pdu, 480);
        assert_eq!(&answer[answer.len() - 2..], &[0x01, 0xE0]);
        assert_eq!(
            called_tsap(&[0, 0, 0, 1, 0, 0xC1, 2, 1, 0, 0xC2, 2, 1, 2]),
            Some(0x0102)
        );
    }
}
