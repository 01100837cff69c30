//! Point addressing types, parsed from configuration once and trusted afterwards.

use std::fmt;
use std::str::FromStr;

/// A Modbus data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    /// Holding registers (function 03), 16-bit, read-write.
    Holding,
    /// Input registers (function 04), 16-bit, read-only.
    Input,
    /// Coils (function 01), single bits, read-write.
    Coil,
    /// Discrete inputs (function 02), single bits, read-only.
    Discrete,
}

impl Area {
    /// True for the bit areas (coils and discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Area::Coil | Area::Discrete)
    }

    /// The most items one request may read in this area (Modbus application protocol
    /// v1.1b3: 125 registers, 2000 bits).
    pub fn protocol_limit(self) -> u16 {
        if self.is_bits() { 2000 } else { 125 }
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Holding => "holding",
            Area::Input => "input",
            Area::Coil => "coil",
            Area::Discrete => "discrete",
        }
    }

    /// The configuration names of all areas, for error messages.
    pub const NAMES: &'static str = "holding, input, coil, discrete";
}

impl FromStr for Area {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "holding" => Ok(Area::Holding),
            "input" => Ok(Area::Input),
            "coil" => Ok(Area::Coil),
            "discrete" => Ok(Area::Discrete),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type a point's raw registers or bit are decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// One bit, or a register that is non-zero.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Four registers, unsigned.
    U64,
    /// Four registers, two's complement.
    I64,
    /// Two registers, IEEE 754 single.
    F32,
    /// Four registers, IEEE 754 double.
    F64,
    /// `len` registers of ASCII, two characters each, high byte first; NULs trimmed.
    String {
        /// Length in registers.
        len: u16,
    },
}

impl DataType {
    /// How many 16-bit registers the type spans (1 for bool: a register read as non-zero).
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::String { len } => len,
        }
    }

    /// The configuration name (`string` for strings of any length).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String { .. } => "string",
        }
    }

    /// True for types whose value is a number (scale, offset and deadband apply).
    pub fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::String { .. })
    }

    /// The configuration names of all types, for error messages.
    pub const NAMES: &'static str = "bool, u16, i16, u32, i32, u64, i64, f32, f64, string";
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Byte and word order of multi-register values, named by where the bytes of the
/// big-endian value `A B C D` land: `ABCD` is big-endian (the Modbus default), `CDAB`
/// swaps words, `BADC` swaps bytes within words, `DCBA` is little-endian. For 64-bit
/// values the same rule applies to the four words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WordOrder {
    /// Big-endian words, big-endian bytes.
    #[default]
    Abcd,
    /// Little-endian words, big-endian bytes.
    Cdab,
    /// Big-endian words, little-endian bytes.
    Badc,
    /// Little-endian words, little-endian bytes.
    Dcba,
}

impl WordOrder {
    /// All orders, for probing.
    pub const ALL: [WordOrder; 4] = [
        WordOrder::Abcd,
        WordOrder::Cdab,
        WordOrder::Badc,
        WordOrder::Dcba,
    ];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
            WordOrder::Badc => "BADC",
            WordOrder::Dcba => "DCBA",
        }
    }
}

impl FromStr for WordOrder {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "ABCD" => Ok(WordOrder::Abcd),
            "CDAB" => Ok(WordOrder::Cdab),
            "BADC" => Ok(WordOrder::Badc),
            "DCBA" => Ok(WordOrder::Dcba),
            _ => Err(()),
        }
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
