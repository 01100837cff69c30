//! Siemens address notation: `DB1.DBX0.0`, `DB1.DBW2`, `M10.0`, `MW10`, `I0.0`, `IW64`,
//! `Q0.1`, `QW2`, and the S7-200 SMART's V memory (`VW100` is `DB1.DBW100`).
//!
//! An address names an area (a data block, the flags, the process image of the inputs or
//! of the outputs), a byte offset in it and an access width: a bit (`X`, or the bare
//! `M10.0` form), a byte (`B`), a word (`W`, 2 bytes) or a double word (`D`, 4 bytes).
//! The German mnemonics `E` (Eingang, input) and `A` (Ausgang, output) are accepted too.

use std::fmt;
use std::str::FromStr;

/// The largest byte offset S7comm can address: bit addresses are 3 bytes (2^24 bits).
pub const MAX_BYTE: u32 = (1 << 21) - 1;

/// A memory area of an S7 CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    /// The process image of the inputs (`I`, area code 0x81).
    Input,
    /// The process image of the outputs (`Q`, 0x82).
    Output,
    /// The flags (bit memory, `M`, 0x83).
    Merker,
    /// A data block (`DB<n>`, 0x84); V memory of an S7-200 SMART is DB1.
    Db(u16),
}

impl Area {
    /// The area code of S7comm's address specification.
    pub fn code(self) -> u8 {
        match self {
            Area::Input => 0x81,
            Area::Output => 0x82,
            Area::Merker => 0x83,
            Area::Db(_) => 0x84,
        }
    }

    /// The data block number (0 outside data blocks).
    pub fn db(self) -> u16 {
        match self {
            Area::Db(n) => n,
            _ => 0,
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Area::Input => f.write_str("I"),
            Area::Output => f.write_str("Q"),
            Area::Merker => f.write_str("M"),
            Area::Db(n) => write!(f, "DB{n}"),
        }
    }
}

/// How much an address reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// One bit, 0 to 7, of the byte.
    Bit(u8),
    /// One byte.
    Byte,
    /// Two bytes.
    Word,
    /// Four bytes.
    DWord,
}

impl Width {
    /// Bytes the access spans (1 for a bit).
    pub fn bytes(self) -> u32 {
        match self {
            Width::Bit(_) | Width::Byte => 1,
            Width::Word => 2,
            Width::DWord => 4,
        }
    }
}

/// A parsed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// The area.
    pub area: Area,
    /// The byte offset within it.
    pub byte: u32,
    /// The access width.
    pub width: Width,
}

/// Why an address does not parse; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressError(String);

/// The forms, for error messages.
pub const FORMS: &str = "DB1.DBX0.0, DB1.DBB1, DB1.DBW2, DB1.DBD4, M10.0, MB10, MW10, MD20, I0.0, IW64, Q0.1, QW2, or V memory (VW100 = DB1.DBW100)";

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, AddressError> {
        let bad = |why: &str| AddressError(format!("{why} in {text:?}; expected {FORMS}"));
        let upper = text.trim().to_ascii_uppercase();
        let (area, rest) = if let Some(rest) = upper.strip_prefix("DB") {
            let (number, rest) = rest
                .split_once('.')
                .ok_or_else(|| bad("a data block address needs a '.', as in DB1.DBW2"))?;
            let number: u16 = number
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("the data block number must be 1 to 65535"))?;
            let rest = rest
                .strip_prefix("DB")
                .ok_or_else(|| bad("after DB<n>. comes DBX, DBB, DBW or DBD"))?;
            (Area::Db(number), Some(rest))
        } else {
            let mut chars = upper.chars();
            let area = match chars.next() {
                Some('M') => Area::Merker,
                Some('I' | 'E') => Area::Input,
                Some('Q' | 'A') => Area::Output,
                Some('V') => Area::Db(1),
                _ => return Err(bad("unknown area")),
            };
            (area, Some(chars.as_str()))
        };
        let rest = rest.unwrap_or_default();
        let (width_letter, offset) = match rest.chars().next() {
            Some(c @ ('X' | 'B' | 'W' | 'D')) => (Some(c), &rest[1..]),
            Some(c) if c.is_ascii_digit() => (None, rest),
            _ => return Err(bad("expected X, B, W or D, or a byte.bit")),
        };
        let parse_byte = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|b| *b <= MAX_BYTE)
                .ok_or_else(|| {
                    bad(&format!(
                        "the byte offset must be a number up to {MAX_BYTE}"
                    ))
                })
        };
        let width = match width_letter {
            // `M10.0` and `DB1.DBX0.0`: a bit.
            None | Some('X') => {
                let (byte, bit) = offset
                    .split_once('.')
                    .ok_or_else(|| bad("a bit address is byte.bit, as in M10.0"))?;
                let bit: u8 = bit
                    .parse()
                    .ok()
                    .filter(|b| *b < 8)
                    .ok_or_else(|| bad("the bit must be 0 to 7"))?;
                return Ok(Address {
                    area,
                    byte: parse_byte(byte)?,
                    width: Width::Bit(bit),
                });
            }
            Some('B') => Width::Byte,
            Some('W') => Width::Word,
            _ => Width::DWord,
        };
        if offset.contains('.') {
            return Err(bad("only bit addresses take a .bit"));
        }
        let byte = parse_byte(offset)?;
        if byte + width.bytes() - 1 > MAX_BYTE {
            return Err(bad("the address runs past the end of the area"));
        }
        Ok(Address { area, byte, width })
    }
}

impl fmt::Display for Address {
    /// The canonical notation (`DB1.DBW2`, `M10.0`, `IW64`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self.width {
            Width::Bit(_) => 'X',
            Width::Byte => 'B',
            Width::Word => 'W',
            Width::DWord => 'D',
        };
        match (self.area, self.width) {
            (Area::Db(n), Width::Bit(bit)) => write!(f, "DB{n}.DBX{}.{bit}", self.byte),
            (Area::Db(n), _) => write!(f, "DB{n}.DB{letter}{}", self.byte),
            (area, Width::Bit(bit)) => write!(f, "{area}{}.{bit}", self.byte),
            (area, _) => write!(f, "{area}{letter}{}", self.byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Address {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_form_of_the_design_parses_and_prints_back() {
        for (text, area, byte, width) in [
            ("DB1.DBX0.0", Area::Db(1), 0, Width::Bit(0)),
            ("DB1.DBB1", Area::Db(1), 1, Width::Byte),
            ("DB1.DBW2", Area::Db(1), 2, Width::Word),
            ("DB1.DBD4", Area::Db(1), 4, Width::DWord),
            ("M10.0", Area::Merker, 10, Width::Bit(0)),
            ("MB10", Area::Merker, 10, Width::Byte),
            ("MW10", Area::Merker, 10, Width::Word),
            ("MD20", Area::Merker, 20, Width::DWord),
            ("I0.0", Area::Input, 0, Width::Bit(0)),
            ("IW64", Area::Input, 64, Width::Word),
            ("Q0.1", Area::Output, 0, Width::Bit(1)),
            ("QW2", Area::Output, 2, Width::Word),
        ] {
            let address = parse(text);
            assert_eq!(address, Address { area, byte, width }, "{text}");
            assert_eq!(address.to_string(), text);
        }
    }

    #[test]
    fn v_memory_german_mnemonics_and_lower_case_are_accepted() {
        assert_eq!(parse("VW100"), parse("DB1.DBW100"));
        assert_eq!(parse("V10.3"), parse("DB1.DBX10.3"));
        assert_eq!(parse("EW4"), parse("IW4"));
        assert_eq!(parse("A1.7"), parse("Q1.7"));
        assert_eq!(parse("db12.dbd8"), parse("DB12.DBD8"));
    }

    #[test]
    fn wrong_addresses_say_what_is_wrong() {
        for (text, why) in [
            ("DB0.DBW2", "the data block number must be 1 to 65535"),
            ("DB1.W2", "after DB<n>. comes DBX, DBB, DBW or DBD"),
            ("DB1DBW2", "a data block address needs a '.'"),
            ("M10.8", "the bit must be 0 to 7"),
            ("M10", "a bit address is byte.bit"),
            ("MW10.1", "only bit addresses take a .bit"),
            ("Z10", "unknown area"),
            ("MWx", "the byte offset must be a number"),
            ("MD2097150", "the address runs past the end of the area"),
            ("", "unknown area"),
        ] {
            let error = text.parse::<Address>().expect_err(text).to_string();
            assert!(error.starts_with(why), "{text}: {error}");
            assert!(error.contains("expected DB1.DBX0.0"), "{error}");
        }
    }
}
