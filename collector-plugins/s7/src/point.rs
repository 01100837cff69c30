//! S7 points: an address, the type its bytes hold, and how they become a value.
//!
//! S7 CPUs store multi-byte values big-endian (Motorola order), so no `order` is needed;
//! REAL is an IEEE 754 single, LREAL a double, and a STRING[n] is a byte of maximum length,
//! a byte of current length and n characters.

use crate::address::{Address, Width};
use fieldlink_collector_api::decode::apply_scale;
use fieldlink_wire::Value;
use std::sync::Arc;

/// The type a point's bytes are decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S7Type {
    /// A bit (`DBX`, `M10.0`).
    Bool,
    /// A byte, unsigned (BYTE, USINT).
    U8,
    /// A byte, two's complement (SINT).
    I8,
    /// A word, unsigned (WORD, UINT).
    U16,
    /// A word, two's complement (INT).
    I16,
    /// A double word, unsigned (DWORD, UDINT).
    U32,
    /// A double word, two's complement (DINT).
    I32,
    /// Eight bytes, unsigned (LWORD, ULINT).
    U64,
    /// Eight bytes, two's complement (LINT).
    I64,
    /// A double word, IEEE 754 single (REAL).
    F32,
    /// Eight bytes, IEEE 754 double (LREAL).
    F64,
    /// A STRING[`len`]: 2 header bytes and `len` characters.
    String {
        /// The declared maximum length in characters, 1 to 254.
        len: u8,
    },
}

impl S7Type {
    /// The configuration names, for error messages.
    pub const NAMES: &'static str = "bool, u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, string";

    /// Parses a configuration name (`string` with a length of 1, set afterwards).
    pub fn parse(name: &str) -> Option<S7Type> {
        Some(match name {
            "bool" => S7Type::Bool,
            "u8" => S7Type::U8,
            "i8" => S7Type::I8,
            "u16" => S7Type::U16,
            "i16" => S7Type::I16,
            "u32" => S7Type::U32,
            "i32" => S7Type::I32,
            "u64" => S7Type::U64,
            "i64" => S7Type::I64,
            "f32" => S7Type::F32,
            "f64" => S7Type::F64,
            "string" => S7Type::String { len: 1 },
            _ => return None,
        })
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            S7Type::Bool => "bool",
            S7Type::U8 => "u8",
            S7Type::I8 => "i8",
            S7Type::U16 => "u16",
            S7Type::I16 => "i16",
            S7Type::U32 => "u32",
            S7Type::I32 => "i32",
            S7Type::U64 => "u64",
            S7Type::I64 => "i64",
            S7Type::F32 => "f32",
            S7Type::F64 => "f64",
            S7Type::String { .. } => "string",
        }
    }

    /// The bytes a value of this type spans.
    pub fn bytes(self) -> u32 {
        match self {
            S7Type::Bool | S7Type::U8 | S7Type::I8 => 1,
            S7Type::U16 | S7Type::I16 => 2,
            S7Type::U32 | S7Type::I32 | S7Type::F32 => 4,
            S7Type::U64 | S7Type::I64 | S7Type::F64 => 8,
            S7Type::String { len } => u32::from(len) + 2,
        }
    }

    /// True for numbers (scale, offset and deadbands apply).
    pub fn is_numeric(self) -> bool {
        !matches!(self, S7Type::Bool | S7Type::String { .. })
    }

    /// Whether an address of `width` may hold this type: bits are bools; a byte address
    /// takes the one-byte types and those that start at a byte (64-bit values, strings);
    /// a word the 16-bit types; a double word the 32-bit and 64-bit ones.
    pub fn fits(self, width: Width) -> bool {
        match width {
            Width::Bit(_) => self == S7Type::Bool,
            Width::Byte => matches!(
                self,
                S7Type::U8
                    | S7Type::I8
                    | S7Type::U64
                    | S7Type::I64
                    | S7Type::F64
                    | S7Type::String { .. }
            ),
            Width::Word => matches!(self, S7Type::U16 | S7Type::I16),
            Width::DWord => matches!(
                self,
                S7Type::U32 | S7Type::I32 | S7Type::F32 | S7Type::U64 | S7Type::I64 | S7Type::F64
            ),
        }
    }

    /// The type an address reads when the point names none.
    pub fn default_for(width: Width) -> S7Type {
        match width {
            Width::Bit(_) => S7Type::Bool,
            Width::Byte => S7Type::U8,
            Width::Word => S7Type::U16,
            Width::DWord => S7Type::U32,
        }
    }
}

/// One point to read.
#[derive(Debug, Clone, PartialEq)]
pub struct S7Point {
    /// The point's name, unique within its device.
    pub name: Arc<str>,
    /// Where it lives.
    pub address: Address,
    /// How its bytes are decoded.
    pub data_type: S7Type,
    /// `bit = N` on a `u16` or `u32` point: the bool of bit N (least significant = 0) of
    /// the value; scale and offset do not apply.
    pub bit: Option<u8>,
    /// Multiplier applied to the raw value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
}

/// Why a point's bytes do not make a value; the text is the bad sample's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The bytes are not the point's size (a short answer).
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// The point's size.
        expected: usize,
        /// What was supplied.
        got: usize,
    },
    /// A NaN or an infinity, which the contract's JSON cannot carry.
    #[error("not a finite number")]
    NotFinite,
}

impl S7Point {
    /// The first byte the point reads.
    pub fn start(&self) -> u32 {
        self.address.byte
    }

    /// How many bytes the point reads.
    pub fn size(&self) -> u32 {
        match self.address.width {
            Width::Bit(_) => 1,
            _ => self.data_type.bytes(),
        }
    }

    /// One past the last byte the point reads.
    pub fn end(&self) -> u32 {
        self.start() + self.size()
    }

    /// The catalogue's type: `bool` for bit points.
    pub fn catalogue_type(&self) -> &'static str {
        if self.bit.is_some() {
            "bool"
        } else {
            self.data_type.as_str()
        }
    }

    /// The point's value out of its own bytes (exactly [`S7Point::len`] of them).
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, ValueError> {
        let expected = usize::try_from(self.size()).unwrap_or(usize::MAX);
        if bytes.len() != expected {
            return Err(ValueError::Length {
                expected,
                got: bytes.len(),
            });
        }
        if let Width::Bit(bit) = self.address.width {
            return Ok(Value::Bool(bytes[0] >> bit & 1 == 1));
        }
        if let Some(bit) = self.bit {
            let raw = bytes.iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
            return Ok(Value::Bool(raw >> bit & 1 == 1));
        }
        let raw = raw_value(self.data_type, bytes)?;
        match apply_scale(raw, self.scale, self.offset) {
            Value::Float(v) if !v.is_finite() => Err(ValueError::NotFinite),
            value => Ok(value),
        }
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Decodes bytes whose length was checked against the type.
fn raw_value(data_type: S7Type, bytes: &[u8]) -> Result<Value, ValueError> {
    let finite = |v: f64| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(ValueError::NotFinite)
        }
    };
    Ok(match data_type {
        S7Type::Bool => Value::Bool(bytes[0] != 0),
        S7Type::U8 => Value::Int(i64::from(bytes[0])),
        S7Type::I8 => Value::Int(i64::from(bytes[0].cast_signed())),
        S7Type::U16 => Value::Int(i64::from(u16::from_be_bytes(array(bytes)))),
        S7Type::I16 => Value::Int(i64::from(i16::from_be_bytes(array(bytes)))),
        S7Type::U32 => Value::Int(i64::from(u32::from_be_bytes(array(bytes)))),
        S7Type::I32 => Value::Int(i64::from(i32::from_be_bytes(array(bytes)))),
        S7Type::U64 => Value::from_u64(u64::from_be_bytes(array(bytes))),
        S7Type::I64 => Value::Int(i64::from_be_bytes(array(bytes))),
        S7Type::F32 => {
            let v = f32::from_be_bytes(array(bytes));
            // The shortest decimal that reads back as the same f32, as the PLC shows it.
            Value::Float(finite(v.to_string().parse().unwrap_or(f64::from(v)))?)
        }
        S7Type::F64 => Value::Float(finite(f64::from_be_bytes(array(bytes)))?),
        S7Type::String { len } => {
            // The current length, never beyond the declared one or the bytes read.
            let current = usize::from(bytes[1].min(len));
            Value::Text(String::from_utf8_lossy(&bytes[2..2 + current]).into_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(address: &str, data_type: S7Type) -> S7Point {
        S7Point {
            name: "p".into(),
            address: address.parse().expect("address"),
            data_type,
            bit: None,
            scale: 1.0,
            offset: 0.0,
        }
    }

    #[test]
    fn values_are_big_endian() {
        let cases: [(&str, S7Type, &[u8], Value); 11] = [
            (
                "DB1.DBX0.3",
                S7Type::Bool,
                &[0b0000_1000],
                Value::Bool(true),
            ),
            (
                "DB1.DBX0.2",
                S7Type::Bool,
                &[0b0000_1000],
                Value::Bool(false),
            ),
            ("MB0", S7Type::U8, &[0xFF], Value::Int(255)),
            ("MB0", S7Type::I8, &[0xFF], Value::Int(-1)),
            ("MW0", S7Type::U16, &[0x12, 0x34], Value::Int(0x1234)),
            ("MW0", S7Type::I16, &[0xFF, 0xFE], Value::Int(-2)),
            (
                "MD0",
                S7Type::U32,
                &[0xFF, 0xFF, 0xFF, 0xFF],
                Value::Int(4_294_967_295),
            ),
            (
                "MD0",
                S7Type::I32,
                &[0xFF, 0xFF, 0xFF, 0xFE],
                Value::Int(-2),
            ),
            (
                "MD0",
                S7Type::F32,
                &[0x42, 0xF6, 0xE9, 0x79],
                Value::Float(123.456),
            ),
            (
                "MB0",
                S7Type::F64,
                &[0xC0, 0xC3, 0x4A, 0x45, 0x87, 0xE7, 0xC0, 0x6E],
                Value::Float(-9876.54321),
            ),
            ("MB0", S7Type::U64, &[0xFF; 8], Value::UInt(u64::MAX)),
        ];
        for (address, data_type, bytes, expected) in cases {
            assert_eq!(
                point(address, data_type).decode(bytes),
                Ok(expected),
                "{address} {data_type:?}"
            );
        }
    }

    #[test]
    fn strings_take_their_current_length_within_the_declared_one() {
        let p = point("DB1.DBB10", S7Type::String { len: 6 });
        assert_eq!(p.size(), 8);
        assert_eq!(p.decode(b"\x06\x04PUMPxx"), Ok(Value::Text("PUMP".into())));
        // A current length beyond the declared one is cut to it, never read past.
        assert_eq!(
            p.decode(b"\x06\xFFPUMP-1"),
            Ok(Value::Text("PUMP-1".into()))
        );
    }

    #[test]
    fn bits_of_words_scaling_and_bad_values() {
        let mut p = point("DB1.DBW0", S7Type::U16);
        p.bit = Some(9);
        assert_eq!(p.decode(&[0x02, 0x00]), Ok(Value::Bool(true)));
        assert_eq!(p.catalogue_type(), "bool");
        let mut p = point("DB1.DBW0", S7Type::I16);
        p.scale = 0.1;
        assert_eq!(p.decode(&[0x00, 0xD7]), Ok(Value::Float(21.5)));
        assert_eq!(
            point("MD0", S7Type::F32).decode(&[0x7F, 0xC0, 0, 0]),
            Err(ValueError::NotFinite)
        );
        assert_eq!(
            point("MD0", S7Type::F32).decode(&[0x7F]),
            Err(ValueError::Length {
                expected: 4,
                got: 1
            })
        );
    }

    #[test]
    fn types_fit_their_access_width() {
        use Width::*;
        assert!(S7Type::Bool.fits(Bit(0)));
        assert!(!S7Type::U8.fits(Bit(0)));
        assert!(S7Type::F64.fits(Byte) && S7Type::F64.fits(DWord));
        assert!(!S7Type::F32.fits(Word));
        assert!(S7Type::I16.fits(Word) && !S7Type::I16.fits(DWord));
        assert!(S7Type::String { len: 4 }.fits(Byte));
        assert_eq!(S7Type::default_for(DWord), S7Type::U32);
    }
}
