//! MELSEC device notation: `D100`, `W1F`, `R0`, `M0`, `X10`, `Y0`, `B0`, and the rest of
//! the devices a batch read reaches, with their binary device codes (MELSEC Communication
//! Protocol reference manual, "Device code list", QnA-compatible 3E frame).
//!
//! Device numbers are decimal, except X, Y, B, W, SB, SW, DX and DY, which Q, L and iQ-R
//! CPUs number in hexadecimal. iQ-F (FX5) CPUs number X and Y in octal, as GX Works3
//! writes them (`X17` is the sixteenth input); the frame carries the number in binary.

use std::fmt;

/// The PLC family, which decides how X and Y are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// Q, L and iQ-R: X and Y in hexadecimal.
    #[default]
    Q,
    /// iQ-F (FX5): X and Y in octal.
    IqF,
}

impl Family {
    /// The configuration names.
    pub const NAMES: &'static str = "\"q\" (Q, L, iQ-R), \"iq-f\" (FX5)";

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<Family> {
        match name {
            "q" => Some(Family::Q),
            "iq-f" => Some(Family::IqF),
            _ => None,
        }
    }
}

/// A device kind: its name, binary code, whether it holds bits, and its numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    /// The mnemonic (`D`, `X`, `SM`).
    pub name: &'static str,
    /// The binary device code of the 3E frame.
    pub code: u8,
    /// True for bit devices (read 16 to a word).
    pub bits: bool,
    /// The radix Q-family CPUs number it in.
    pub radix: u32,
}

const fn kind(name: &'static str, code: u8, bits: bool, radix: u32) -> Kind {
    Kind {
        name,
        code,
        bits,
        radix,
    }
}

/// Every device a point may name; two-letter names first, so that `SM` is not taken for
/// `S`.
pub const KINDS: &[Kind] = &[
    kind("SM", 0x91, true, 10),
    kind("SD", 0xA9, false, 10),
    kind("SB", 0xA1, true, 16),
    kind("SW", 0xB5, false, 16),
    kind("ZR", 0xB0, false, 10),
    kind("TS", 0xC1, true, 10),
    kind("TC", 0xC0, true, 10),
    kind("TN", 0xC2, false, 10),
    kind("CS", 0xC4, true, 10),
    kind("CC", 0xC3, true, 10),
    kind("CN", 0xC5, false, 10),
    kind("DX", 0xA2, true, 16),
    kind("DY", 0xA3, true, 16),
    kind("X", 0x9C, true, 16),
    kind("Y", 0x9D, true, 16),
    kind("M", 0x90, true, 10),
    kind("L", 0x92, true, 10),
    kind("F", 0x93, true, 10),
    kind("V", 0x94, true, 10),
    kind("B", 0xA0, true, 16),
    kind("D", 0xA8, false, 10),
    kind("W", 0xB4, false, 16),
    kind("R", 0xAF, false, 10),
    kind("Z", 0xCC, false, 10),
];

/// The device names, for error messages.
pub const NAMES: &str = "D, W, R, ZR, SD, SW, TN, CN, Z (words); X, Y, M, L, F, V, B, SM, SB, TS, TC, CS, CC, DX, DY (bits)";

/// The largest device number a 3E frame carries (3 bytes).
pub const MAX_NUMBER: u32 = 0xFF_FFFF;

/// One device: a kind and a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// The kind.
    pub kind: Kind,
    /// The number, as the frame carries it.
    pub number: u32,
    /// The radix it is written in (for printing it back).
    pub radix: u32,
}

/// Why a device does not parse; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(String);

impl Device {
    /// Parses `text` as `family` numbers it.
    pub fn parse(text: &str, family: Family) -> Result<Device, DeviceError> {
        let upper = text.trim().to_ascii_uppercase();
        let Some(kind) = KINDS.iter().find(|k| upper.starts_with(k.name)) else {
            return Err(DeviceError(format!(
                "unknown device in {text:?}; expected one of {NAMES}, then its number"
            )));
        };
        let radix = match (family, kind.name) {
            (Family::IqF, "X" | "Y") => 8,
            _ => kind.radix,
        };
        let digits = &upper[kind.name.len()..];
        let radix_name = match radix {
            8 => "octal",
            16 => "hexadecimal",
            _ => "decimal",
        };
        let number = u32::from_str_radix(digits, radix)
            .ok()
            .filter(|n| *n <= MAX_NUMBER && !digits.is_empty() && !digits.starts_with('+'))
            .ok_or_else(|| {
                DeviceError(format!(
                    "{} numbers are {radix_name}{}, found {text:?}",
                    kind.name,
                    if radix == 8 { " on iQ-F" } else { "" }
                ))
            })?;
        Ok(Device {
            kind: *kind,
            number,
            radix,
        })
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.radix {
            8 => write!(f, "{}{:o}", self.kind.name, self.number),
            16 => write!(f, "{}{:X}", self.kind.name, self.number),
            _ => write!(f, "{}{}", self.kind.name, self.number),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, family: Family) -> Device {
        Device::parse(text, family).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_designs_devices_parse_with_their_codes_and_radixes() {
        for (text, code, bits, number) in [
            ("D100", 0xA8, false, 100),
            ("W1F", 0xB4, false, 0x1F),
            ("R0", 0xAF, false, 0),
            ("M0", 0x90, true, 0),
            ("X10", 0x9C, true, 0x10),
            ("Y0", 0x9D, true, 0),
            ("B0", 0xA0, true, 0),
            ("SM400", 0x91, true, 400),
            ("SD0", 0xA9, false, 0),
            ("ZR32768", 0xB0, false, 32768),
        ] {
            let device = parse(text, Family::Q);
            assert_eq!(
                (device.kind.code, device.kind.bits, device.number),
                (code, bits, number),
                "{text}"
            );
            assert_eq!(device.to_string(), text);
        }
    }

    #[test]
    fn iq_f_numbers_x_and_y_in_octal() {
        assert_eq!(parse("X17", Family::IqF).number, 15);
        assert_eq!(parse("Y100", Family::IqF).number, 64);
        assert_eq!(parse("X17", Family::IqF).to_string(), "X17");
        assert_eq!(parse("D17", Family::IqF).number, 17);
        let e = Device::parse("X8", Family::IqF).expect_err("8 is not octal");
        assert_eq!(e.to_string(), "X numbers are octal on iQ-F, found \"X8\"");
    }

    #[test]
    fn wrong_devices_say_what_is_expected() {
        for (text, why) in [
            ("Q10", "unknown device"),
            ("D", "D numbers are decimal"),
            ("DA", "D numbers are decimal"),
            ("XG", "X numbers are hexadecimal"),
            ("D16777216", "D numbers are decimal"),
            ("D+1", "D numbers are decimal"),
        ] {
            let e = Device::parse(text, Family::Q).expect_err(text).to_string();
            assert!(e.starts_with(why), "{text}: {e}");
        }
        // Lower case is fine.
        assert_eq!(parse("d100", Family::Q).number, 100);
    }
}
