//! Data identifiers (DL/T 645-2007, appendix A): what each identifier reads, its size,
//! its decimals, its sign and its unit.
//!
//! A value is BCD, least significant byte first; `XXXXXX.XX` is 4 bytes with 2 decimals.
//! Signed values carry their sign in the most significant bit of the most significant
//! byte (sign and magnitude, not two's complement). The table holds the identifiers a
//! gateway reads from energy meters: energies (totals and tariffs), voltages, currents,
//! powers, power factors, frequency, and a few states.

use std::fmt;
use std::str::FromStr;

/// A data identifier, `DI3 DI2 DI1 DI0` as the standard writes it (`00010000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataId(pub u32);

impl DataId {
    /// The four bytes as they go on the wire: `DI0` first.
    pub fn wire(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl FromStr for DataId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != 8 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "a data identifier is 8 hexadecimal digits, DI3 DI2 DI1 DI0 as the standard writes them (\"00010000\" forward active energy), found {text:?}"
            ));
        }
        u32::from_str_radix(text, 16)
            .map(DataId)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for DataId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

/// How an identifier's value is encoded, and what it means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Format {
    /// What it is (in Chinese, as meter manuals and integrators name it, then in English).
    pub name: &'static str,
    /// Its size in bytes.
    pub bytes: u8,
    /// Implied decimals.
    pub decimals: u8,
    /// Whether the most significant bit is a sign.
    pub signed: bool,
    /// Its unit ("" for none).
    pub unit: &'static str,
}

const fn f(
    name: &'static str,
    bytes: u8,
    decimals: u8,
    signed: bool,
    unit: &'static str,
) -> Format {
    Format {
        name,
        bytes,
        decimals,
        signed,
        unit,
    }
}

const ENERGY: Format = f("", 4, 2, false, "kWh");
const REACTIVE_ENERGY: Format = f("", 4, 2, false, "kvarh");

/// The format of `id`, if the table knows it.
pub fn lookup(id: DataId) -> Option<Format> {
    let [di3, di2, di1, di0] = id.0.to_be_bytes();
    let named = |name, format: Format| Format { name, ..format };
    Some(match (di3, di2, di1, di0) {
        // Energies: DI2 selects the quantity, DI1 the tariff (0 total, 1-63), DI0 the
        // settlement (0 current).
        (0x00, 0x00, 0x00..=0x3F, 0x00) => named("组合有功电能 combined active energy", ENERGY),
        (0x00, 0x01, 0x00..=0x3F, 0x00) => named("正向有功电能 forward active energy", ENERGY),
        (0x00, 0x02, 0x00..=0x3F, 0x00) => named("反向有功电能 reverse active energy", ENERGY),
        (0x00, 0x03, 0x00..=0x3F, 0x00) => {
            named("组合无功1电能 combined reactive energy 1", REACTIVE_ENERGY)
        }
        (0x00, 0x04, 0x00..=0x3F, 0x00) => {
            named("组合无功2电能 combined reactive energy 2", REACTIVE_ENERGY)
        }
        (0x00, 0x05..=0x08, 0x00..=0x3F, 0x00) => {
            named("象限无功电能 quadrant reactive energy", REACTIVE_ENERGY)
        }
        // Instantaneous values: DI1 selects the phase (0 total, 1 A, 2 B, 3 C).
        (0x02, 0x01, 0x01..=0x03, 0x00) => f("电压 voltage", 2, 1, false, "V"),
        (0x02, 0x02, 0x01..=0x03, 0x00) => f("电流 current", 3, 3, true, "A"),
        (0x02, 0x03, 0x00..=0x03, 0x00) => f("有功功率 active power", 3, 4, true, "kW"),
        (0x02, 0x04, 0x00..=0x03, 0x00) => f("无功功率 reactive power", 3, 4, true, "kvar"),
        (0x02, 0x05, 0x00..=0x03, 0x00) => f("视在功率 apparent power", 3, 4, true, "kVA"),
        (0x02, 0x06, 0x00..=0x03, 0x00) => f("功率因数 power factor", 2, 3, true, ""),
        (0x02, 0x07, 0x01..=0x03, 0x00) => f("相角 phase angle", 2, 1, false, "°"),
        (0x02, 0x80, 0x00, 0x01) => f("零线电流 neutral current", 3, 3, true, "A"),
        (0x02, 0x80, 0x00, 0x02) => f("电网频率 grid frequency", 2, 2, false, "Hz"),
        (0x02, 0x80, 0x00, 0x03) => f(
            "一分钟有功总平均功率 one-minute mean active power",
            3,
            4,
            false,
            "kW",
        ),
        (0x02, 0x80, 0x00, 0x04) => f("当前有功需量 current active demand", 3, 4, true, "kW"),
        (0x02, 0x80, 0x00, 0x05) => f("当前无功需量 current reactive demand", 3, 4, true, "kvar"),
        (0x02, 0x80, 0x00, 0x06) => f("当前视在需量 current apparent demand", 3, 4, true, "kVA"),
        (0x02, 0x80, 0x00, 0x07) => f("表内温度 meter temperature", 2, 1, true, "°C"),
        (0x02, 0x80, 0x00, 0x08) => f("时钟电池电压 clock battery voltage", 2, 2, false, "V"),
        (0x02, 0x80, 0x00, 0x0A) => f("电池工作时间 battery running time", 4, 0, false, "min"),
        _ => return None,
    })
}

/// The first DI1 of a block read of the identifier's group (`DI1 = FF`): phases start at
/// A (1) for voltages, currents and angles, at the total (0) otherwise. `None` for
/// identifiers that have no block.
pub fn block_base(id: DataId) -> Option<u8> {
    let [di3, di2, _, di0] = id.0.to_be_bytes();
    match (di3, di2, di0) {
        (0x00, 0x00..=0x08, 0x00) => Some(0),
        (0x02, 0x01 | 0x02 | 0x07, 0x00) => Some(1),
        (0x02, 0x03..=0x06, 0x00) => Some(0),
        _ => None,
    }
}

/// The identifier reading the whole block `id` belongs to (`DI1 = FF`).
pub fn block_of(id: DataId) -> DataId {
    DataId(id.0 | 0x0000_FF00)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> DataId {
        text.parse().expect("identifier")
    }

    #[test]
    fn the_designs_identifiers_have_their_formats() {
        let energy = lookup(id("00010000")).expect("known");
        assert_eq!(
            (energy.bytes, energy.decimals, energy.signed, energy.unit),
            (4, 2, false, "kWh")
        );
        assert!(energy.name.contains("forward active energy"));
        let voltage = lookup(id("02010100")).expect("known");
        assert_eq!(
            (
                voltage.bytes,
                voltage.decimals,
                voltage.signed,
                voltage.unit
            ),
            (2, 1, false, "V")
        );
        let current = lookup(id("02020300")).expect("known");
        assert_eq!(
            (current.bytes, current.decimals, current.signed),
            (3, 3, true)
        );
        assert_eq!(lookup(id("02800002")).map(|f| f.unit), Some("Hz"));
        assert_eq!(lookup(id("02010000")), None, "no total voltage");
        assert_eq!(lookup(id("04000101")), None);
    }

    #[test]
    fn identifiers_parse_as_written_and_go_on_the_wire_di0_first() {
        assert_eq!(id("00010000").wire(), [0x00, 0x00, 0x01, 0x00]);
        assert_eq!(id("02010100").wire(), [0x00, 0x01, 0x01, 0x02]);
        assert_eq!(id("0201ff00").to_string(), "0201FF00");
        assert!("0001000".parse::<DataId>().is_err());
        assert!("0001000G".parse::<DataId>().is_err());
        assert_eq!(block_of(id("02010200")), id("0201FF00"));
        assert_eq!(block_base(id("02010200")), Some(1));
        assert_eq!(block_base(id("00010300")), Some(0));
        assert_eq!(block_base(id("02800002")), None);
    }
}
