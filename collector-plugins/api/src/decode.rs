//! Turning raw 16-bit registers (Modbus registers, MELSEC words) and bits into values.
//!
//! Register contents are always transmitted big-endian per register; what varies between
//! devices is how a multi-register value is laid out across its registers ([`WordOrder`]).
//! Decoding reorders the registers' bytes into one big-endian byte string and reads that.

use crate::{DataType, WordOrder};
use fieldlink_wire::Value;

/// Why registers could not be decoded as a point's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The slice is not exactly the type's registers: the response was short, or the
    /// caller sliced it wrongly. Publish a bad sample for the point.
    #[error("expected {expected} registers, got {got}")]
    Length {
        /// Registers the type spans.
        expected: usize,
        /// Registers supplied.
        got: usize,
    },
    /// The registers hold a NaN or an infinity, which the contract's JSON cannot carry.
    /// Publish a bad sample for the point.
    #[error("not a finite number")]
    NotFinite,
    /// A `bit` that the point's type does not have; configuration refuses these, so this
    /// marks a caller's mistake. Publish a bad sample for the point.
    #[error("bit {bit} is outside a {width}-bit value")]
    BitOutOfRange {
        /// The bit asked for.
        bit: u8,
        /// The value's width in bits (0 for types that have no bits to pick).
        width: u8,
    },
}

/// Decodes a point's registers as `data_type`, before scale and offset.
///
/// `order` applies to values of two or four registers; single-register types and strings
/// ignore it. Strings are ASCII, two characters per register, high byte first, with
/// trailing NULs and spaces trimmed; bytes that are not valid UTF-8 become U+FFFD rather
/// than failing the read, so a device with a stray byte in its name stays readable.
/// An `f32` is published as the shortest decimal that reads back as the same `f32`
/// (123.456, not 123.45600128173828), which is what the device's own display shows.
pub fn decode(words: &[u16], data_type: DataType, order: WordOrder) -> Result<Value, DecodeError> {
    let expected = usize::from(data_type.registers());
    if words.len() != expected {
        return Err(DecodeError::Length {
            expected,
            got: words.len(),
        });
    }
    let value = match data_type {
        DataType::Bool => Value::Bool(words[0] != 0),
        DataType::U16 => Value::Int(i64::from(words[0])),
        DataType::I16 => Value::Int(i64::from(words[0].cast_signed())),
        DataType::U32 => Value::Int(i64::from(u32::from_be_bytes(ordered(words, order)))),
        DataType::I32 => Value::Int(i64::from(i32::from_be_bytes(ordered(words, order)))),
        DataType::U64 => Value::from_u64(u64::from_be_bytes(ordered(words, order))),
        DataType::I64 => Value::Int(i64::from_be_bytes(ordered(words, order))),
        DataType::F32 => Value::Float(shortest_f64(finite(f32::from_be_bytes(ordered(
            words, order,
        )))?)),
        DataType::F64 => Value::Float(finite(f64::from_be_bytes(ordered(words, order)))?),
        DataType::String { .. } => Value::Text(ascii_registers(words)),
    };
    Ok(value)
}

/// The bool of bit `bit` (least significant = 0) of a register point: the registers are
/// decoded as `data_type` (`u16` or `u32`, in `order`) and the bit taken from that value,
/// so a `bit = N` point reads the same bit a ladder program calls N. Other types, or a bit
/// past the type's width, are a [`DecodeError::BitOutOfRange`] (configuration refuses them).
pub fn decode_register_bit(
    words: &[u16],
    data_type: DataType,
    order: WordOrder,
    bit: u8,
) -> Result<Value, DecodeError> {
    let width = match data_type {
        DataType::U16 | DataType::I16 => 16,
        DataType::U32 | DataType::I32 => 32,
        _ => 0,
    };
    if bit >= width {
        return Err(DecodeError::BitOutOfRange { bit, width });
    }
    let expected = usize::from(data_type.registers());
    if words.len() != expected {
        return Err(DecodeError::Length {
            expected,
            got: words.len(),
        });
    }
    let raw = match data_type {
        DataType::U16 | DataType::I16 => u64::from(words[0]),
        _ => u64::from(u32::from_be_bytes(ordered(words, order))),
    };
    Ok(Value::Bool((raw >> bit) & 1 == 1))
}

/// Decodes a coil or discrete input.
pub fn decode_bit(bit: bool) -> Value {
    Value::Bool(bit)
}

/// Applies `raw * scale + offset` to a numeric value, giving a float; the identity scaling
/// (1 and 0) keeps the raw value, so integers stay integers. Booleans, text and none are
/// never scaled.
pub fn apply_scale(raw: Value, scale: f64, offset: f64) -> Value {
    if scale == 1.0 && offset == 0.0 {
        return raw;
    }
    match raw.as_f64() {
        Some(v) => Value::Float(v * scale + offset),
        None => raw,
    }
}

/// The registers' bytes rearranged into big-endian order (`A B C D ...`): word-swapped
/// orders list the registers least significant first, byte-swapped orders carry each
/// register's bytes low byte first.
fn ordered<const N: usize>(words: &[u16], order: WordOrder) -> [u8; N] {
    let reverse_words = matches!(order, WordOrder::Cdab | WordOrder::Dcba);
    let swap_bytes = matches!(order, WordOrder::Badc | WordOrder::Dcba);
    let mut bytes = [0u8; N];
    for (i, chunk) in bytes.chunks_exact_mut(2).enumerate() {
        let word = if reverse_words {
            words[words.len() - 1 - i]
        } else {
            words[i]
        };
        let word = if swap_bytes { word.swap_bytes() } else { word };
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    bytes
}

fn finite<F: Into<f64> + Copy>(v: F) -> Result<F, DecodeError> {
    if v.into().is_finite() {
        Ok(v)
    } else {
        Err(DecodeError::NotFinite)
    }
}

/// The `f64` closest to the shortest decimal that round-trips `v` (Rust's `Display` for
/// floats prints exactly that decimal).
fn shortest_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

fn ascii_registers(words: &[u16]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let text = String::from_utf8_lossy(&bytes);
    text.trim_end_matches(['\0', ' ']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use WordOrder::{Abcd, Badc, Cdab, Dcba};

    /// Decodes the same value from its layout in each of the four orders.
    fn check_orders(data_type: DataType, layouts: [(&[u16], WordOrder); 4], expected: Value) {
        for (words, order) in layouts {
            assert_eq!(
                decode(words, data_type, order),
                Ok(expected.clone()),
                "{data_type} {order}"
            );
        }
    }

    #[test]
    fn f32_123_456_in_all_four_orders() {
        // 123.456f32 is 0x42F6E979.
        check_orders(
            DataType::F32,
            [
                (&[0x42F6, 0xE979], Abcd),
                (&[0xE979, 0x42F6], Cdab),
                (&[0xF642, 0x79E9], Badc),
                (&[0x79E9, 0xF642], Dcba),
            ],
            Value::Float(123.456),
        );
    }

    #[test]
    fn i32_minus_two_in_all_four_orders() {
        check_orders(
            DataType::I32,
            [
                (&[0xFFFF, 0xFFFE], Abcd),
                (&[0xFFFE, 0xFFFF], Cdab),
                (&[0xFFFF, 0xFEFF], Badc),
                (&[0xFEFF, 0xFFFF], Dcba),
            ],
            Value::Int(-2),
        );
    }

    #[test]
    fn u32_in_all_four_orders() {
        check_orders(
            DataType::U32,
            [
                (&[0x1234, 0x5678], Abcd),
                (&[0x5678, 0x1234], Cdab),
                (&[0x3412, 0x7856], Badc),
                (&[0x7856, 0x3412], Dcba),
            ],
            Value::Int(0x1234_5678),
        );
        assert_eq!(
            decode(&[0xFFFF, 0xFFFF], DataType::U32, Abcd),
            Ok(Value::Int(4_294_967_295))
        );
    }

    #[test]
    fn u64_in_all_four_orders() {
        check_orders(
            DataType::U64,
            [
                (&[0x0102, 0x0304, 0x0506, 0x0708], Abcd),
                (&[0x0708, 0x0506, 0x0304, 0x0102], Cdab),
                (&[0x0201, 0x0403, 0x0605, 0x0807], Badc),
                (&[0x0807, 0x0605, 0x0403, 0x0201], Dcba),
            ],
            Value::Int(0x0102_0304_0506_0708),
        );
    }

    #[test]
    fn u64_above_i64_max_is_uint() {
        assert_eq!(
            decode(&[0xFFFF; 4], DataType::U64, Abcd),
            Ok(Value::UInt(u64::MAX)),
        );
    }

    #[test]
    fn i64_in_all_four_orders() {
        // -1234567890123 is 0xFFFFFEE08E04FB35.
        check_orders(
            DataType::I64,
            [
                (&[0xFFFF, 0xFEE0, 0x8E04, 0xFB35], Abcd),
                (&[0xFB35, 0x8E04, 0xFEE0, 0xFFFF], Cdab),
                (&[0xFFFF, 0xE0FE, 0x048E, 0x35FB], Badc),
                (&[0x35FB, 0x048E, 0xE0FE, 0xFFFF], Dcba),
            ],
            Value::Int(-1_234_567_890_123),
        );
    }

    #[test]
    fn f64_in_all_four_orders() {
        // -9876.54321 is 0xC0C34A4587E7C06E.
        check_orders(
            DataType::F64,
            [
                (&[0xC0C3, 0x4A45, 0x87E7, 0xC06E], Abcd),
                (&[0xC06E, 0x87E7, 0x4A45, 0xC0C3], Cdab),
                (&[0xC3C0, 0x454A, 0xE787, 0x6EC0], Badc),
                (&[0x6EC0, 0xE787, 0x454A, 0xC3C0], Dcba),
            ],
            Value::Float(-9876.54321),
        );
    }

    #[test]
    fn single_register_types_ignore_the_order() {
        for order in WordOrder::ALL {
            assert_eq!(
                decode(&[0xFFFF], DataType::U16, order),
                Ok(Value::Int(65535))
            );
            assert_eq!(decode(&[0xFFFF], DataType::I16, order), Ok(Value::Int(-1)));
            assert_eq!(
                decode(&[0x8000], DataType::I16, order),
                Ok(Value::Int(-32768))
            );
            assert_eq!(
                decode(&[0x0000], DataType::Bool, order),
                Ok(Value::Bool(false))
            );
            assert_eq!(
                decode(&[0x0100], DataType::Bool, order),
                Ok(Value::Bool(true))
            );
        }
    }

    #[test]
    fn string_pump_01_is_trimmed_of_nuls_and_spaces() {
        let text = |s: &str| Ok(Value::Text(s.to_owned()));
        let padded_nul = [0x5055, 0x4D50, 0x2D30, 0x3100]; // "PUMP-01\0"
        assert_eq!(
            decode(&padded_nul, DataType::String { len: 4 }, Abcd),
            text("PUMP-01")
        );
        let padded_space = [0x5055, 0x4D50, 0x2D30, 0x3120, 0x2020]; // "PUMP-01   "
        assert_eq!(
            decode(&padded_space, DataType::String { len: 5 }, Cdab),
            text("PUMP-01")
        );
        assert_eq!(decode(&[0, 0], DataType::String { len: 2 }, Abcd), text(""));
        assert_eq!(decode(&[], DataType::String { len: 0 }, Abcd), text(""));
    }

    #[test]
    fn string_with_invalid_utf8_is_decoded_lossily() {
        assert_eq!(
            decode(&[0x41FF, 0x4200], DataType::String { len: 2 }, Abcd),
            Ok(Value::Text("A\u{FFFD}B".to_owned())),
        );
    }

    #[test]
    fn non_finite_floats_are_errors() {
        for words in [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]] {
            assert_eq!(
                decode(&words, DataType::F32, Abcd),
                Err(DecodeError::NotFinite)
            );
        }
        assert_eq!(
            decode(&[0x7FF8, 0, 0, 0], DataType::F64, Abcd),
            Err(DecodeError::NotFinite)
        );
        assert_eq!(DecodeError::NotFinite.to_string(), "not a finite number");
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert_eq!(
            decode(&[1], DataType::F32, Abcd),
            Err(DecodeError::Length {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            decode(&[1, 2], DataType::U16, Abcd),
            Err(DecodeError::Length {
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn register_bits_count_from_the_least_significant() {
        // 0x8001: bits 0 and 15 set.
        for (bit, set) in [(0, true), (1, false), (14, false), (15, true)] {
            assert_eq!(
                decode_register_bit(&[0x8001], DataType::U16, Abcd, bit),
                Ok(Value::Bool(set)),
                "bit {bit}"
            );
        }
        // 0x0001_0000 low word first (CDAB): bit 16 is set, bit 0 is not.
        let words = [0x0000, 0x0001];
        assert_eq!(
            decode_register_bit(&words, DataType::U32, Cdab, 16),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            decode_register_bit(&words, DataType::U32, Cdab, 0),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            decode_register_bit(&words, DataType::U32, Abcd, 0),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn register_bits_outside_the_type_or_with_short_data_are_errors() {
        assert_eq!(
            decode_register_bit(&[1], DataType::U16, Abcd, 16),
            Err(DecodeError::BitOutOfRange { bit: 16, width: 16 })
        );
        assert_eq!(
            decode_register_bit(&[1, 2, 3, 4], DataType::U64, Abcd, 0),
            Err(DecodeError::BitOutOfRange { bit: 0, width: 0 })
        );
        assert_eq!(
            decode_register_bit(&[1], DataType::U32, Abcd, 3),
            Err(DecodeError::Length {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn bits_decode_as_bools() {
        assert_eq!(decode_bit(true), Value::Bool(true));
        assert_eq!(decode_bit(false), Value::Bool(false));
    }

    #[test]
    fn identity_scale_keeps_integers() {
        assert_eq!(apply_scale(Value::Int(215), 1.0, 0.0), Value::Int(215));
        assert_eq!(
            apply_scale(Value::UInt(u64::MAX), 1.0, 0.0),
            Value::UInt(u64::MAX)
        );
    }

    #[test]
    fn scale_and_offset_give_floats() {
        assert_eq!(apply_scale(Value::Int(215), 0.1, 0.0), Value::Float(21.5));
        assert_eq!(
            apply_scale(Value::Int(-40), 1.0, 273.0),
            Value::Float(233.0)
        );
        assert_eq!(apply_scale(Value::Float(1.5), 2.0, 1.0), Value::Float(4.0));
    }

    #[test]
    fn non_numeric_values_are_never_scaled() {
        assert_eq!(apply_scale(Value::Bool(true), 10.0, 1.0), Value::Bool(true));
        assert_eq!(
            apply_scale(Value::Text("a".into()), 10.0, 1.0),
            Value::Text("a".into())
        );
        assert_eq!(apply_scale(Value::None, 10.0, 1.0), Value::None);
    }
}
