//! MC points, how their words become values, and the read plan.
//!
//! MELSEC words travel low byte first; a 32- or 64-bit value is stored low word first,
//! so `order` defaults to `CDAB`. Bit devices are read 16 to a word (the word holding
//! device `n` starts at `n − n mod 16`, bit `n mod 16`), so neighbouring contacts share a
//! request with no bit-unit read needed. Strings are stored two characters a word, the
//! first in the low byte.
//!
//! The plan: points of one device kind merge into one batch read while no more than
//! `max_gap` unused words lie between them and the read stays within `max_words` (at
//! most 960, MELSEC's limit); each read is one request.

use crate::device::{Device, Kind};
use fieldlink_collector_api::decode::{DecodeError, apply_scale, decode, decode_register_bit};
use fieldlink_collector_api::{DataType, WordOrder};
use fieldlink_wire::Value;
use std::sync::Arc;

/// One point to read.
#[derive(Debug, Clone, PartialEq)]
pub struct McPoint {
    /// The point's name, unique within its device.
    pub name: Arc<str>,
    /// Where it lives.
    pub device: Device,
    /// How its words are decoded (`bool` on bit devices).
    pub data_type: DataType,
    /// The word order of multi-word values (`CDAB` unless configured).
    pub order: WordOrder,
    /// `bit = N` on a `u16` or `u32` point: the bool of bit N of the value.
    pub bit: Option<u8>,
    /// Multiplier applied to the raw value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
}

impl McPoint {
    /// The first word the point reads, as an index in its device's words (for bit
    /// devices, the word of 16 contacts holding it).
    pub fn first_word(&self) -> u32 {
        if self.device.kind.bits {
            self.device.number / 16
        } else {
            self.device.number
        }
    }

    /// How many words the point reads.
    pub fn words(&self) -> u32 {
        if self.device.kind.bits {
            1
        } else {
            u32::from(self.data_type.registers().max(1))
        }
    }

    /// The catalogue's type.
    pub fn catalogue_type(&self) -> &'static str {
        if self.bit.is_some() || self.device.kind.bits {
            "bool"
        } else {
            self.data_type.as_str()
        }
    }

    /// The point's value out of its own words' bytes (2 per word, low byte first).
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let expected = self.words() as usize;
        if bytes.len() != 2 * expected {
            return Err(DecodeError::Length {
                expected,
                got: bytes.len() / 2,
            });
        }
        if self.device.kind.bits {
            let word = u16::from_le_bytes([bytes[0], bytes[1]]);
            return Ok(Value::Bool(word >> (self.device.number % 16) & 1 == 1));
        }
        if let DataType::String { .. } = self.data_type {
            let text = String::from_utf8_lossy(bytes);
            return Ok(Value::Text(text.trim_end_matches(['\0', ' ']).to_owned()));
        }
        let words: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .collect();
        if let Some(bit) = self.bit {
            return decode_register_bit(&words, self.data_type, self.order, bit);
        }
        match apply_scale(
            decode(&words, self.data_type, self.order)?,
            self.scale,
            self.offset,
        ) {
            Value::Float(v) if !v.is_finite() => Err(DecodeError::NotFinite),
            value => Ok(value),
        }
    }
}

/// One batch read: `words` words of one device kind from word `first`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The device kind.
    pub kind: Kind,
    /// The first word, as an index in the device's words.
    pub first: u32,
    /// How many words.
    pub words: u16,
    /// The points it serves, as indexes into the planned points, in address order.
    pub points: Vec<usize>,
}

impl Read {
    /// The head device number the frame carries: the word index, or for bit devices the
    /// number of the first of its 16 contacts.
    pub fn head(&self) -> u32 {
        if self.kind.bits {
            self.first * 16
        } else {
            self.first
        }
    }
}

/// Every point of a device read once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    /// The reads, in execution order.
    pub reads: Vec<Read>,
}

impl ReadPlan {
    /// Plans the fewest batch reads with at most `max_gap` unused words inside one and
    /// at most `max_words` (1 to 960) words each. A point larger than `max_words` gets
    /// a read of its own size.
    pub fn new(points: &[McPoint], max_gap: u32, max_words: u16) -> ReadPlan {
        let max_words = u32::from(max_words.clamp(1, crate::frame::MAX_WORDS));
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| {
            (
                points[i].device.kind,
                points[i].first_word(),
                points[i].words(),
            )
        });
        let mut reads: Vec<(Kind, u32, u32, Vec<usize>)> = Vec::new();
        for i in order {
            let p = &points[i];
            let (start, end) = (p.first_word(), p.first_word() + p.words());
            if let Some((kind, first, last, served)) = reads.last_mut()
                && *kind == p.device.kind
                && start <= *last + max_gap
                && end.max(*last) - *first <= max_words
            {
                *last = (*last).max(end);
                served.push(i);
                continue;
            }
            reads.push((p.device.kind, start, end, vec![i]));
        }
        ReadPlan {
            reads: reads
                .into_iter()
                .map(|(kind, first, last, points)| Read {
                    kind,
                    first,
                    words: u16::try_from(last - first).unwrap_or(u16::MAX),
                    points,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Family;

    fn point(device: &str, data_type: DataType) -> McPoint {
        McPoint {
            name: device.into(),
            device: Device::parse(device, Family::Q).expect("device"),
            data_type,
            order: WordOrder::Cdab,
            bit: None,
            scale: 1.0,
            offset: 0.0,
        }
    }

    #[test]
    fn words_are_little_endian_and_32_bit_values_low_word_first() {
        assert_eq!(
            point("D0", DataType::U16).decode(&[0x34, 0x12]),
            Ok(Value::Int(0x1234))
        );
        assert_eq!(
            point("D0", DataType::I16).decode(&[0xFE, 0xFF]),
            Ok(Value::Int(-2))
        );
        // 70000 = 0x0001_1170: low word 0x1170 first.
        assert_eq!(
            point("D0", DataType::U32).decode(&[0x70, 0x11, 0x01, 0x00]),
            Ok(Value::Int(70_000))
        );
        // 123.456f32 = 0x42F6E979.
        assert_eq!(
            point("D0", DataType::F32).decode(&[0x79, 0xE9, 0xF6, 0x42]),
            Ok(Value::Float(123.456))
        );
        let mut abcd = point("D0", DataType::U32);
        abcd.order = WordOrder::Abcd;
        assert_eq!(
            abcd.decode(&[0x01, 0x00, 0x70, 0x11]),
            Ok(Value::Int(70_000))
        );
        assert_eq!(
            point("D0", DataType::String { len: 3 }).decode(b"AX-7\0\0"),
            Ok(Value::Text("AX-7".into()))
        );
    }

    #[test]
    fn bits_of_bit_devices_and_of_words() {
        // M19 is bit 3 of the word holding M16..M31.
        let m19 = point("M19", DataType::Bool);
        assert_eq!(m19.first_word(), 1);
        assert_eq!(m19.decode(&[0b0000_1000, 0]), Ok(Value::Bool(true)));
        assert_eq!(m19.decode(&[0b0000_0100, 0]), Ok(Value::Bool(false)));
        // X1F is bit 15 of the word of X10..X1F.
        let x1f = point("X1F", DataType::Bool);
        assert_eq!(x1f.decode(&[0, 0x80]), Ok(Value::Bool(true)));
        let mut status = point("D5", DataType::U16);
        status.bit = Some(9);
        assert_eq!(status.decode(&[0x00, 0x02]), Ok(Value::Bool(true)));
        assert_eq!(status.catalogue_type(), "bool");
        assert!(point("D0", DataType::U32).decode(&[1, 2]).is_err());
    }

    #[test]
    fn points_of_one_device_merge_within_the_gap_and_limit() {
        let points = [
            point("D100", DataType::U16),
            point("D101", DataType::U32),
            point("D110", DataType::F32),
            point("M0", DataType::Bool),
            point("M15", DataType::Bool),
            point("M16", DataType::Bool),
            point("W1F", DataType::U16),
        ];
        let plan = ReadPlan::new(&points, 8, 960);
        let shape: Vec<(&str, u32, u32, u16)> = plan
            .reads
            .iter()
            .map(|r| (r.kind.name, r.head(), r.first, r.words))
            .collect();
        assert_eq!(
            shape,
            [("D", 100, 100, 12), ("M", 0, 0, 2), ("W", 0x1F, 0x1F, 1)]
        );
        let tight = ReadPlan::new(&points, 0, 960);
        assert_eq!(tight.reads.len(), 4, "D100..103 and D110..112 apart");
        let small = ReadPlan::new(&points[..3], 8, 4);
        assert_eq!(
            small.reads.iter().map(|r| r.words).collect::<Vec<_>>(),
            [3, 2]
        );
    }

    #[test]
    fn a_read_never_exceeds_960_words() {
        let points: Vec<McPoint> = (0..1000)
            .map(|i| point(&format!("D{i}"), DataType::U16))
            .collect();
        let plan = ReadPlan::new(&points, 0, 2000);
        assert_eq!(
            plan.reads.iter().map(|r| r.words).collect::<Vec<_>>(),
            [960, 40]
        );
    }
}
