//! Simulated DL/T 645-2007 energy meters on one RS-485 line (any byte stream: a serial
//! port, or one end of a pseudo-terminal pair in tests).
//!
//! Written from the standard's frame layout, independently of the `fieldlink-dlt645`
//! client; it is the peer of the client's tests. Each [`Meter`] answers reads (control
//! 11H) addressed to it or to the wildcard `AA…AA`, with its values in BCD (least
//! significant byte first, sign in the top bit where the value is signed), plus 33H on
//! every data byte; a block read (`DI1 = FF`) gets the group's values in order. What a
//! meter does not hold gets an error answer (D1H, error byte 02H "no such data"). A frame
//! with a wrong checksum is ignored, as meters do. [`Faults`] switch meters silent or make
//! them answer with a wrong checksum.

use crate::modbus_device::{Scalar, Source};
use fieldlink_collector_api::clock;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How one value is stored: its size in bytes, its decimals, whether it is signed.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterValue {
    /// Bytes.
    pub bytes: u8,
    /// Implied decimals.
    pub decimals: u8,
    /// Sign in the top bit.
    pub signed: bool,
    /// Where the value comes from.
    pub source: Source,
}

/// One meter: its address (12 digits as printed) and its values by data identifier
/// (`DI3 DI2 DI1 DI0` as a number, `0x0001_0000`).
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    /// The address as printed on the meter.
    pub address: String,
    /// The values.
    pub values: BTreeMap<u32, MeterValue>,
}

/// Faults to switch on while the line runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// Meters (by printed address) that do not answer at all.
    pub silent: Mutex<HashSet<String>>,
    /// Answer every read with a wrong checksum.
    pub bad_checksum: std::sync::atomic::AtomicBool,
    /// Reads answered, by meter.
    pub answered: Mutex<BTreeMap<String, usize>>,
}

/// The address's 6 bytes, least significant first; `None` if it is not 12 digits.
fn address_bytes(printed: &str) -> Option<[u8; 6]> {
    let digits = printed.as_bytes();
    if digits.len() != 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = digits[10 - 2 * i] - b'0';
        let lo = digits[11 - 2 * i] - b'0';
        *byte = hi << 4 | lo;
    }
    Some(out)
}

/// `value` in BCD, `bytes` bytes, least significant byte first.
fn bcd(value: f64, bytes: u8, decimals: u8, signed: bool) -> Vec<u8> {
    let scaled = (value.abs() * 10f64.powi(i32::from(decimals))).round() as u64;
    let mut digits = scaled;
    let mut out = Vec::with_capacity(usize::from(bytes));
    for _ in 0..bytes {
        let pair = digits % 100;
        digits /= 100;
        out.push(((pair / 10) as u8) << 4 | (pair % 10) as u8);
    }
    if signed
        && value < 0.0
        && let Some(top) = out.last_mut()
    {
        *top |= 0x80;
    }
    out
}

fn frame(address: [u8; 6], control: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFE, 0x68];
    out.extend_from_slice(&address);
    out.extend_from_slice(&[0x68, control, data.len() as u8]);
    out.extend(data.iter().map(|b| b.wrapping_add(0x33)));
    let sum = out[2..].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    out.extend_from_slice(&[sum, 0x16]);
    out
}

impl Meter {
    /// The answer to a read of `id` at `t_ms`: the data after the identifier, or the
    /// error byte.
    fn read(&self, id: u32, t_ms: i64) -> Result<Vec<u8>, u8> {
        let encode = |v: &MeterValue| {
            let number = match v.source.at(t_ms) {
                Scalar::Number(n) => n,
                Scalar::Text(_) => 0.0,
            };
            bcd(number, v.bytes, v.decimals, v.signed)
        };
        if id & 0x0000_FF00 == 0x0000_FF00 {
            // A block: the group's values from its first, in DI1 order, while they last.
            let members: Vec<(u32, &MeterValue)> = (0..=0x3Fu32)
                .map(|di1| (id & 0xFFFF_00FF) | di1 << 8)
                .filter_map(|member| self.values.get(&member).map(|v| (member, v)))
                .collect();
            let Some(&(first, _)) = members.first() else {
                return Err(0x02);
            };
            let mut data = Vec::new();
            for (expected, (member, value)) in (first..).step_by(0x100).zip(&members) {
                if *member != expected {
                    break;
                }
                data.extend(encode(value));
            }
            return Ok(data);
        }
        self.values.get(&id).map(encode).ok_or(0x02)
    }
}

/// Serves `meters` on `stream` until `shutdown` fires or the stream ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    meters: Vec<Meter>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let meters: Vec<([u8; 6], Meter)> = meters
        .into_iter()
        .filter_map(|m| address_bytes(&m.address).map(|a| (a, m)))
        .collect();
    let mut received: Vec<u8> = Vec::new();
    loop {
        let mut chunk = [0u8; 256];
        let n = tokio::select! {
            n = stream.read(&mut chunk) => n?,
            () = shutdown.cancelled() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        received.extend_from_slice(&chunk[..n]);
        // Take every whole frame received so far.
        while let Some(start) = received.iter().position(|&b| b == 0x68) {
            let rest = &received[start..];
            if rest.len() < 12 {
                break;
            }
            let len = 12 + usize::from(rest[9]);
            if rest.len() < len {
                break;
            }
            let frame_bytes: Vec<u8> = rest[..len].to_vec();
            received.drain(..start + len);
            if let Some(answer) = answer(&frame_bytes, &meters, &faults, clock::now_ms()) {
                stream.write_all(&answer).await?;
            }
        }
        if received.len() > 4096 {
            received.clear();
        }
    }
}

/// The answer to one request frame, if any meter answers it.
fn answer(
    request: &[u8],
    meters: &[([u8; 6], Meter)],
    faults: &Faults,
    t_ms: i64,
) -> Option<Vec<u8>> {
    let len = usize::from(request[9]);
    let sum = request[..10 + len]
        .iter()
        .fold(0u8, |s, b| s.wrapping_add(*b));
    if request[7] != 0x68 || request[10 + len] != sum || request[8] != 0x11 || len < 4 {
        return None;
    }
    let target = &request[1..7];
    let data: Vec<u8> = request[10..10 + len]
        .iter()
        .map(|b| b.wrapping_sub(0x33))
        .collect();
    let id = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let (address, meter) = meters
        .iter()
        .find(|(a, _)| target == a || target.iter().all(|&b| b == 0xAA))?;
    let silent = faults
        .silent
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&meter.address);
    if silent {
        return None;
    }
    *faults
        .answered
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(meter.address.clone())
        .or_default() += 1;
    let mut out = match meter.read(id, t_ms) {
        Ok(value) => {
            let mut payload = id.to_le_bytes().to_vec();
            payload.extend(value);
            frame(*address, 0x91, &payload)
        }
        Err(error) => frame(*address, 0xD1, &[error]),
    };
    if faults
        .bad_checksum
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        let at = out.len() - 2;
        out[at] = out[at].wrapping_add(1);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_wire::Value;

    #[test]
    fn values_are_bcd_least_significant_byte_first_with_a_sign_bit() {
        assert_eq!(bcd(123_456.78, 4, 2, false), [0x78, 0x56, 0x34, 0x12]);
        assert_eq!(bcd(230.1, 2, 1, false), [0x01, 0x23]);
        assert_eq!(bcd(-1.234, 3, 3, true), [0x34, 0x12, 0x80]);
        assert_eq!(
            address_bytes("000012345678"),
            Some([0x78, 0x56, 0x34, 0x12, 0, 0])
        );
    }

    #[test]
    fn blocks_return_the_group_in_order() {
        let v = |n: f64| MeterValue {
            bytes: 2,
            decimals: 1,
            signed: false,
            source: Source::Constant(Value::Float(n)),
        };
        let meter = Meter {
            address: "000000000001".into(),
            values: [
                (0x0201_0100, v(220.0)),
                (0x0201_0200, v(221.0)),
                (0x0201_0300, v(222.0)),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(
            meter.read(0x0201_FF00, 0),
            Ok(vec![0x00, 0x22, 0x10, 0x22, 0x20, 0x22])
        );
        assert_eq!(meter.read(0x0202_0100, 0), Err(0x02));
    }
}
