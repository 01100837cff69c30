//! One read request on a tokio-modbus client, and what its answer means for the points:
//! shared by the TCP collector, the RTU bus and `probe`.
//!
//! The two layers of Modbus stay apart here, as the caller must react differently: a
//! device exception spoils one request and keeps the link; a timeout spoils one request;
//! an answer that does not fit its request (wrong byte count or quantity) means the byte
//! stream can no longer be trusted, so the link is recycled; a transport error ends it.

use crate::decode::{DecodeError, apply_scale, decode, decode_bit, decode_register_bit};
use crate::plan::{PointSpec, ReadRequest};
use fieldlink_collector_api::Area;
use fieldlink_wire::{Sample, Value};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::time;
use tokio_modbus::client::{Client as _, Context as ModbusClient};
use tokio_modbus::{ExceptionCode, ProtocolError, Request, Response};
use tracing::debug;

/// Why one request failed; the text is the `bad` samples' error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The device answered with an exception: the request's points are bad, the link is
    /// fine, and the request is not retried (it would get the same answer).
    #[error("exception {:02X} {}", u8::from(*.0), exception_text(*.0))]
    Exception(ExceptionCode),
    /// No answer in time: the request's points are bad; the link is kept. Retried when
    /// the device allows retries.
    #[error("timeout")]
    Timeout,
    /// A whole answer for another unit or function: the request's points are bad; the
    /// stream is still in step, so the link is kept.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// An answer whose byte count or quantity does not fit the request: the request's
    /// points are bad and the link is recycled (closed and opened again), since whatever
    /// garbled this answer may have garbled the stream.
    #[error("malformed answer: {0}; connection recycled")]
    Malformed(String),
    /// The link failed: the request's points are bad, the link is reopened. Retried when
    /// the device allows retries.
    #[error("disconnected: {0}")]
    Transport(io::Error),
    /// The link is down and was not (re)opened for this request; the text says why.
    #[error("{0}")]
    LinkDown(String),
}

impl ReadError {
    /// True for the failures a retry may cure: a timeout or a transport error. An
    /// exception or a malformed answer would come back the same.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReadError::Timeout | ReadError::Transport(_))
    }

    /// True if the device itself answered, whatever it said: it is alive. A frame for
    /// another unit or function ([`ReadError::Protocol`]) does not count: on a shared line
    /// it may be another slave's.
    pub fn device_answered(&self) -> bool {
        matches!(self, ReadError::Exception(_) | ReadError::Malformed(_))
    }
}

/// The name of an exception code of the Modbus application protocol v1.1b3, with what it
/// usually means for a read where that is not obvious from the name.
fn exception_text(code: ExceptionCode) -> &'static str {
    match u8::from(code) {
        0x01 => "illegal function: the device does not support this read",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown",
    }
}

/// What one request read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Registers, as many as requested.
    Registers(Vec<u16>),
    /// Bits, as many as requested.
    Bits(Vec<bool>),
}

/// Executes one read of `quantity` items at `address` in `area` within `timeout`,
/// separating device exceptions, malformed answers and transport failures.
pub async fn read(
    client: &mut ModbusClient,
    area: Area,
    address: u16,
    quantity: u16,
    timeout: Duration,
) -> Result<Data, ReadError> {
    let call = match area {
        Area::Holding => Request::ReadHoldingRegisters(address, quantity),
        Area::Input => Request::ReadInputRegisters(address, quantity),
        Area::Coil => Request::ReadCoils(address, quantity),
        Area::Discrete => Request::ReadDiscreteInputs(address, quantity),
    };
    // `Client::call` rather than the `Reader` methods: those assert the answer's length in
    // debug builds, and a device's answer must never panic the collector.
    let response = match time::timeout(timeout, client.call(call)).await {
        Err(_) => return Err(ReadError::Timeout),
        Ok(Err(tokio_modbus::Error::Transport(e))) => return Err(transport_error(e)),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => {
            debug!(error = %e, "answer does not match its request");
            return Err(ReadError::Protocol(match e {
                ProtocolError::HeaderMismatch { .. } => {
                    "the answer's unit or transaction id does not match"
                }
                ProtocolError::FunctionCodeMismatch { .. } => {
                    "the answer's function code does not match"
                }
            }));
        }
        Ok(Ok(Err(code))) => return Err(ReadError::Exception(code)),
        Ok(Ok(Ok(response))) => response,
    };
    let wanted = usize::from(quantity);
    match response {
        Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) => {
            if words.len() == wanted {
                Ok(Data::Registers(words))
            } else {
                Err(ReadError::Malformed(format!(
                    "{} registers for a request of {wanted}",
                    words.len()
                )))
            }
        }
        // Bits arrive packed in whole bytes, so the answer holds `quantity` rounded up to
        // a multiple of 8; the padding is meaningless. Any other size is a wrong byte count.
        Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits) => {
            if bits.len() == wanted.div_ceil(8) * 8 {
                bits.truncate(wanted);
                Ok(Data::Bits(bits))
            } else {
                Err(ReadError::Malformed(format!(
                    "{} bytes of bits for a request of {wanted} bits",
                    bits.len() / 8
                )))
            }
        }
        _ => Err(ReadError::Protocol("the answer is not a read's")),
    }
}

/// Sorts tokio-modbus's transport errors: a frame it could not decode (its byte count
/// disagrees with its length, a bad CRC) is a malformed answer; anything else is the
/// link failing.
fn transport_error(e: io::Error) -> ReadError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            ReadError::Malformed(e.to_string())
        }
        _ => ReadError::Transport(e),
    }
}

/// Executes a planned request (see [`read`]).
pub(crate) async fn read_request(
    client: &mut ModbusClient,
    request: &ReadRequest,
    timeout: Duration,
) -> Result<Data, ReadError> {
    read(
        client,
        request.area,
        request.address,
        request.quantity,
        timeout,
    )
    .await
}

/// A point's scaled value out of its request's data.
pub(crate) fn point_value(
    point: &PointSpec,
    request: &ReadRequest,
    data: &Data,
) -> Result<Value, DecodeError> {
    let offset = usize::from(point.address).saturating_sub(usize::from(request.address));
    let raw = match data {
        Data::Bits(bits) => {
            let bit = bits.get(offset).copied();
            decode_bit(bit.ok_or(DecodeError::Length {
                expected: 1,
                got: 0,
            })?)
        }
        Data::Registers(words) => {
            let expected = usize::from(point.data_type.registers());
            let Some(own) = words.get(offset..offset + expected) else {
                let got = words.len().saturating_sub(offset).min(expected);
                return Err(DecodeError::Length { expected, got });
            };
            if let Some(bit) = point.bit {
                return decode_register_bit(own, point.data_type, point.order, bit);
            }
            decode(own, point.data_type, point.order)?
        }
    };
    match apply_scale(raw, point.scale, point.offset) {
        // A finite raw value can still overflow when scaled; the contract's floats are finite.
        Value::Float(v) if !v.is_finite() => Err(DecodeError::NotFinite),
        value => Ok(value),
    }
}

/// Pushes one sample per point of `request`: good values out of `data`, or a bad sample
/// for a point that does not decode.
pub(crate) fn push_values(
    samples: &mut Vec<Sample>,
    device: &Arc<str>,
    points: &[PointSpec],
    request: &ReadRequest,
    data: &Data,
    ts: i64,
) {
    for point in request.points.iter().map(|&p| &points[p]) {
        let name = point.name.clone();
        samples.push(match point_value(point, request, data) {
            Ok(value) => Sample::good(device.clone(), name, ts, value),
            Err(e) => Sample::bad(device.clone(), name, ts, e.to_string()),
        });
    }
}

/// Pushes one bad sample per point, all with the same time and reason.
pub(crate) fn push_bad<'p>(
    samples: &mut Vec<Sample>,
    device: &Arc<str>,
    points: impl IntoIterator<Item = &'p PointSpec>,
    ts: i64,
    reason: &str,
) {
    for point in points {
        samples.push(Sample::bad(device.clone(), point.name.clone(), ts, reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_collector_api::{DataType, WordOrder};

    #[test]
    fn exception_text_names_the_code() {
        let text = |code| ReadError::Exception(ExceptionCode::new(code)).to_string();
        assert_eq!(
            text(0x01),
            "exception 01 illegal function: the device does not support this read"
        );
        assert_eq!(text(0x02), "exception 02 illegal data address");
        assert_eq!(
            text(0x0B),
            "exception 0B gateway target device failed to respond"
        );
        assert_eq!(text(0x42), "exception 42 unknown");
    }

    #[test]
    fn only_timeouts_and_transport_errors_are_retried() {
        assert!(ReadError::Timeout.is_retryable());
        assert!(ReadError::Transport(io::Error::other("x")).is_retryable());
        assert!(!ReadError::Exception(ExceptionCode::IllegalFunction).is_retryable());
        assert!(!ReadError::Malformed("x".into()).is_retryable());
        assert!(!ReadError::LinkDown("x".into()).is_retryable());
    }

    #[test]
    fn undecodable_frames_are_malformed_and_socket_errors_transport() {
        let kind = |k| transport_error(io::Error::new(k, "x"));
        assert!(matches!(
            kind(io::ErrorKind::InvalidData),
            ReadError::Malformed(_)
        ));
        assert!(matches!(
            kind(io::ErrorKind::UnexpectedEof),
            ReadError::Malformed(_)
        ));
        assert!(matches!(
            kind(io::ErrorKind::ConnectionReset),
            ReadError::Transport(_)
        ));
        assert!(matches!(
            kind(io::ErrorKind::ConnectionAborted),
            ReadError::Transport(_)
        ));
    }

    fn spec(area: Area, address: u16, data_type: DataType, scale: f64) -> PointSpec {
        PointSpec {
            name: "p".into(),
            area,
            address,
            data_type,
            order: WordOrder::Abcd,
            scale,
            offset: 0.0,
            bit: None,
        }
    }

    fn request(area: Area, address: u16, quantity: u16) -> ReadRequest {
        ReadRequest {
            area,
            address,
            quantity,
            points: vec![0],
        }
    }

    #[test]
    fn point_value_slices_its_registers_out_of_the_request() {
        let data = Data::Registers(vec![0, 0x4120, 0x0000, 7]);
        let point = spec(Area::Holding, 11, DataType::F32, 1.0);
        assert_eq!(
            point_value(&point, &request(Area::Holding, 10, 4), &data),
            Ok(Value::Float(10.0))
        );
        let point = spec(Area::Holding, 13, DataType::U16, 0.5);
        assert_eq!(
            point_value(&point, &request(Area::Holding, 10, 4), &data),
            Ok(Value::Float(3.5))
        );
    }

    #[test]
    fn point_value_reports_a_short_request_instead_of_panicking() {
        let data = Data::Registers(vec![1, 2]);
        let point = spec(Area::Holding, 11, DataType::U32, 1.0);
        assert_eq!(
            point_value(&point, &request(Area::Holding, 10, 2), &data),
            Err(DecodeError::Length {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn point_value_rejects_a_scaled_overflow() {
        // f64::MAX, finite raw, doubled: infinite.
        let data = Data::Registers(vec![0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF]);
        let point = spec(Area::Input, 0, DataType::F64, 2.0);
        assert_eq!(
            point_value(&point, &request(Area::Input, 0, 4), &data),
            Err(DecodeError::NotFinite)
        );
    }

    #[test]
    fn point_value_of_a_bit_point_is_the_bit_unscaled() {
        let data = Data::Registers(vec![0, 0x0004, 0x0001, 0x0000]);
        let mut point = spec(Area::Holding, 11, DataType::U16, 10.0);
        point.bit = Some(2);
        let request = request(Area::Holding, 10, 4);
        assert_eq!(point_value(&point, &request, &data), Ok(Value::Bool(true)));
        point.bit = Some(3);
        assert_eq!(point_value(&point, &request, &data), Ok(Value::Bool(false)));
        // A u32 low word first: 0x0000_0001 laid out CDAB is [0x0001, 0x0000].
        let mut point = spec(Area::Holding, 12, DataType::U32, 1.0);
        point.order = WordOrder::Cdab;
        point.bit = Some(0);
        assert_eq!(point_value(&point, &request, &data), Ok(Value::Bool(true)));
    }

    #[test]
    fn point_value_reads_bits() {
        let data = Data::Bits(vec![false, true]);
        let point = spec(Area::Coil, 6, DataType::Bool, 1.0);
        assert_eq!(
            point_value(&point, &request(Area::Coil, 5, 2), &data),
            Ok(Value::Bool(true))
        );
    }
}
