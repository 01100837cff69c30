//! DL/T 645-2007 frames, and the BCD values they carry. No I/O, so that every decoder can
//! be fuzzed.
//!
//! ```text
//! FE FE FE FE | 68 | A0 .. A5 | 68 | C | L | DATA (each byte + 33H) | CS | 16
//! ```
//!
//! The wake-up bytes `FE` are optional; the address is the meter's 12 BCD digits, least
//! significant byte first (`AA` in every byte is the wildcard); `C` is 11H for a read,
//! 91H (or B1H when more frames follow) for its normal answer and D1H for an error answer
//! whose one data byte says what went wrong; `CS` is the sum, modulo 256, of every byte
//! from the first 68H to the last data byte.

use crate::ident::DataId;
use fieldlink_wire::Value;
use std::fmt;
use std::str::FromStr;

/// The longest frame the collector accepts: 12 bytes of frame and a length byte's worth
/// of data.
pub const MAX_FRAME: usize = 12 + 255;
/// Control code of a read request.
pub const READ: u8 = 0x11;

/// A meter's address: 12 BCD digits as printed on the meter, stored least significant
/// byte first as the frame carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeterAddress(pub [u8; 6]);

impl MeterAddress {
    /// The wildcard address every meter answers (one meter on the line only).
    pub const BROADCAST: MeterAddress = MeterAddress([0xAA; 6]);
}

impl FromStr for MeterAddress {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("AAAAAAAAAAAA") {
            return Ok(MeterAddress::BROADCAST);
        }
        if text.len() != 12 || !text.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "a meter address is the 12 digits printed on the meter (its communication address), found {text:?}"
            ));
        }
        let digits = text.as_bytes();
        let mut bytes = [0u8; 6];
        for (i, byte) in bytes.iter_mut().enumerate() {
            // The last two digits are the first byte.
            let pair = &digits[10 - 2 * i..12 - 2 * i];
            *byte = (pair[0] - b'0') << 4 | (pair[1] - b'0');
        }
        Ok(MeterAddress(bytes))
    }
}

impl fmt::Display for MeterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.iter().rev() {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// The frame reading `id` from `meter`, with the four wake-up bytes in front.
pub fn read_request(meter: MeterAddress, id: DataId) -> Vec<u8> {
    let mut out = vec![0xFE; 4];
    out.push(0x68);
    out.extend_from_slice(&meter.0);
    out.extend_from_slice(&[0x68, READ, 4]);
    out.extend(id.wire().iter().map(|b| b.wrapping_add(0x33)));
    let sum = checksum(&out[4..]);
    out.extend_from_slice(&[sum, 0x16]);
    out
}

/// The sum of `bytes` modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// A frame that does not follow the standard; its text is the bad samples' error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The checksum does not match the frame's bytes.
    #[error("checksum {got:02X}, expected {expected:02X}")]
    Checksum {
        /// In the frame.
        got: u8,
        /// Of its bytes.
        expected: u8,
    },
    /// The frame's structure is wrong (second 68H, end 16H, length).
    #[error("malformed frame: {0}")]
    Structure(&'static str),
    /// The data is shorter than an identifier and a value.
    #[error("answer data of {0} bytes is too short")]
    Short(usize),
    /// A value byte that is not two BCD digits.
    #[error("value byte {0:02X} is not BCD")]
    NotBcd(u8),
}

/// Where the first frame in `buf` lies: `None` while it is incomplete (or there is none
/// yet), else its start and its length, or why the bytes at its start cannot be a frame.
/// Bytes before its first 68H (wake-up bytes, line noise) are skipped.
pub fn find_frame(buf: &[u8]) -> Option<Result<(usize, usize), FrameError>> {
    let start = buf.iter().position(|&b| b == 0x68)?;
    let frame = &buf[start..];
    if frame.len() < 10 {
        return None;
    }
    if frame[7] != 0x68 {
        return Some(Err(FrameError::Structure(
            "no second 68H after the address",
        )));
    }
    let len = 12 + usize::from(frame[9]);
    if frame.len() < len {
        return None;
    }
    if frame[len - 1] != 0x16 {
        return Some(Err(FrameError::Structure("no 16H at the end")));
    }
    Some(Ok((start, len)))
}

/// A decoded frame: who sent it, its control code, and its data (33H already taken off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The meter's address.
    pub meter: MeterAddress,
    /// The control code.
    pub control: u8,
    /// The data.
    pub data: Vec<u8>,
}

impl Frame {
    /// True for a frame from a meter (the direction bit): a master's request, as some
    /// RS-485 adapters echo it, is not an answer.
    pub fn from_meter(&self) -> bool {
        self.control & 0x80 != 0
    }
}

/// Decodes one whole frame, as [`find_frame`] delimits it.
pub fn parse_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    if frame.len() < 12 || frame[0] != 0x68 || frame[7] != 0x68 {
        return Err(FrameError::Structure("not a frame"));
    }
    let len = usize::from(frame[9]);
    if frame.len() != 12 + len || frame[frame.len() - 1] != 0x16 {
        return Err(FrameError::Structure("its length does not match"));
    }
    let expected = checksum(&frame[..10 + len]);
    let got = frame[10 + len];
    if got != expected {
        return Err(FrameError::Checksum { got, expected });
    }
    let mut meter = [0u8; 6];
    meter.copy_from_slice(&frame[1..7]);
    Ok(Frame {
        meter: MeterAddress(meter),
        control: frame[8],
        data: frame[10..10 + len]
            .iter()
            .map(|b| b.wrapping_sub(0x33))
            .collect(),
    })
}

/// What a meter answered to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The identifier it answers and the value bytes that follow it.
    Data(DataId, Vec<u8>),
    /// An error answer with the meter's error byte.
    Refused(u8),
}

/// What a meter's answer frame says.
pub fn answer(frame: &Frame) -> Result<Answer, FrameError> {
    match frame.control {
        // Normal answer, with or without more frames to follow.
        0x91 | 0xB1 => {
            let Some((id, value)) = frame.data.split_first_chunk::<4>() else {
                return Err(FrameError::Short(frame.data.len()));
            };
            Ok(Answer::Data(
                DataId(u32::from_le_bytes(*id)),
                value.to_vec(),
            ))
        }
        0xD1 => Ok(Answer::Refused(frame.data.first().copied().unwrap_or(0))),
        _ => Err(FrameError::Structure(
            "a control code that does not answer a read",
        )),
    }
}

/// The text of a meter's error byte (DL/T 645-2007, 7.2 "error information word").
pub fn error_text(error: u8) -> String {
    let reasons = [
        (0x01, "other error"),
        (
            0x02,
            "no such data: the meter does not offer this data identifier",
        ),
        (0x04, "password error or not authorized"),
        (0x08, "the baud rate cannot be changed"),
        (0x10, "too many annual time zones"),
        (0x20, "too many daily time slots"),
        (0x40, "too many tariffs"),
    ];
    let named: Vec<&str> = reasons
        .iter()
        .filter(|(bit, _)| error & bit != 0)
        .map(|(_, text)| *text)
        .collect();
    let text = if named.is_empty() {
        "no reason given".to_owned()
    } else {
        named.join("; ")
    };
    format!("meter error {error:02X}: {text}")
}

/// Decodes a BCD value of `bytes.len()` bytes, least significant byte first, with
/// `decimals` implied decimals and, when `signed`, the sign in the top bit.
pub fn bcd_value(bytes: &[u8], decimals: u8, signed: bool) -> Result<Value, FrameError> {
    let mut magnitude: u64 = 0;
    let mut negative = false;
    for (i, &byte) in bytes.iter().rev().enumerate() {
        let mut byte = byte;
        if i == 0 && signed {
            negative = byte & 0x80 != 0;
            byte &= 0x7F;
        }
        let (hi, lo) = (byte >> 4, byte & 0x0F);
        if hi > 9 || lo > 9 {
            return Err(FrameError::NotBcd(byte));
        }
        magnitude = magnitude
            .saturating_mul(100)
            .saturating_add(u64::from(hi * 10 + lo));
    }
    if decimals == 0 {
        let v = i64::try_from(magnitude).unwrap_or(i64::MAX);
        return Ok(Value::Int(if negative { -v } else { v }));
    }
    let v = magnitude as f64 / 10f64.powi(i32::from(decimals));
    // Round to the decimals written, so that 230.1 is published as 230.1.
    let v: f64 = format!("{v:.*}", usize::from(decimals))
        .parse()
        .unwrap_or(v);
    Ok(Value::Float(if negative { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_printed_digits_stored_backwards() {
        let meter: MeterAddress = "000012345678".parse().expect("address");
        assert_eq!(meter.0, [0x78, 0x56, 0x34, 0x12, 0x00, 0x00]);
        assert_eq!(meter.to_string(), "000012345678");
        assert_eq!("aaaaaaaaaaaa".parse(), Ok(MeterAddress::BROADCAST));
        assert!("12345".parse::<MeterAddress>().is_err());
        assert!("00001234567A".parse::<MeterAddress>().is_err());
    }

    #[test]
    fn a_read_of_forward_active_energy_is_laid_out_as_the_standard_shows() {
        let meter: MeterAddress = "000012345678".parse().expect("address");
        let frame = read_request(meter, "00010000".parse().expect("id"));
        assert_eq!(
            frame,
            [
                0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x68, 0x11, 0x04,
                0x33, 0x33, 0x34, 0x33, 0xC6, 0x16
            ]
        );
        assert_eq!(find_frame(&frame), Some(Ok((4, 16))));
    }

    fn answer_frame(control: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x68, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x68, control];
        out.push(u8::try_from(data.len()).expect("short"));
        out.extend(data.iter().map(|b| b.wrapping_add(0x33)));
        out.push(checksum(&out));
        out.push(0x16);
        out
    }

    #[test]
    fn answers_and_errors_decode() {
        // 00010000 = 123456.78 kWh: 78 56 34 12 after the identifier.
        let frame = answer_frame(0x91, &[0x00, 0x00, 0x01, 0x00, 0x78, 0x56, 0x34, 0x12]);
        let parsed = parse_frame(&frame).expect("frame");
        assert!(parsed.from_meter());
        let Ok(Answer::Data(id, value)) = answer(&parsed) else {
            panic!("data");
        };
        assert_eq!(id.to_string(), "00010000");
        assert_eq!(bcd_value(&value, 2, false), Ok(Value::Float(123_456.78)));
        let refused = parse_frame(&answer_frame(0xD1, &[0x02])).expect("frame");
        assert_eq!(answer(&refused), Ok(Answer::Refused(0x02)));
        assert_eq!(
            error_text(0x02),
            "meter error 02: no such data: the meter does not offer this data identifier"
        );
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut frame = answer_frame(0x91, &[0, 0, 1, 0, 1, 2, 3, 4]);
        let last = frame.len() - 2;
        frame[last] = frame[last].wrapping_add(1);
        assert!(matches!(
            parse_frame(&frame),
            Err(FrameError::Checksum { .. })
        ));
        assert_eq!(
            find_frame(&[0xFE, 0x68, 1, 2, 3, 4, 5, 6, 0x67, 0x91, 0]),
            Some(Err(FrameError::Structure(
                "no second 68H after the address"
            )))
        );
        assert_eq!(find_frame(&[0xFE, 0xFE]), None);
        let short = parse_frame(&answer_frame(0x91, &[0, 0])).expect("frame");
        assert_eq!(answer(&short), Err(FrameError::Short(2)));
    }

    #[test]
    fn bcd_values_with_decimals_and_sign() {
        // 230.1 V: 01 23 (least significant byte first) → digits 2301.
        assert_eq!(bcd_value(&[0x01, 0x23], 1, false), Ok(Value::Float(230.1)));
        // -1.234 A, 3 bytes signed: 00 12 34 reversed with the sign bit set.
        assert_eq!(
            bcd_value(&[0x34, 0x12, 0x80], 3, true),
            Ok(Value::Float(-1.234))
        );
        assert_eq!(bcd_value(&[0x99, 0x99], 0, false), Ok(Value::Int(9999)));
        assert_eq!(bcd_value(&[0x1A], 0, false), Err(FrameError::NotBcd(0x1A)));
        // Unsigned: the top bit is a digit, and 0x80 is not BCD... 80 is: 8 and 0.
        assert_eq!(bcd_value(&[0x00, 0x80], 1, false), Ok(Value::Float(800.0)));
    }
}
