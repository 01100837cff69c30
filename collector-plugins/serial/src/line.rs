//! Serial line settings, and the timing they imply.
//!
//! Modbus RTU frames are delimited by silence: a frame ends when the line has been quiet
//! for 3.5 character times, so a master must leave at least that much silence between the
//! end of one frame and the start of the next (Modbus over Serial Line v1.02, 2.5.1.1).
//! Above 19200 baud the specification fixes the silence at 1.75 ms instead, since UARTs and
//! their drivers cannot time shorter gaps reliably. Lines of other protocols (Modbus ASCII,
//! DL/T 645) keep the same gap: it costs milliseconds and keeps slow devices in step.

use fieldlink_collector_api::plugin::ConfigTable;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Parity bit of each character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity (the Modbus serial specification's default).
    Even,
    /// Odd parity.
    Odd,
}

impl Parity {
    /// The configuration names, for error messages.
    pub const NAMES: &'static str = "none, even, odd";

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

impl FromStr for Parity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "none" => Ok(Parity::None),
            "even" => Ok(Parity::Even),
            "odd" => Ok(Parity::Odd),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Data bits per character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataBits {
    /// Seven data bits (only for devices that insist; RTU frames carry 8-bit bytes).
    Seven,
    /// Eight data bits, as RTU requires.
    Eight,
}

impl DataBits {
    /// The number of bits.
    pub fn bits(self) -> u32 {
        match self {
            DataBits::Seven => 7,
            DataBits::Eight => 8,
        }
    }
}

/// Stop bits per character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopBits {
    /// One stop bit.
    One,
    /// Two stop bits (the specification's choice when there is no parity bit).
    Two,
}

impl StopBits {
    /// The number of bits.
    pub fn bits(self) -> u32 {
        match self {
            StopBits::One => 1,
            StopBits::Two => 2,
        }
    }
}

/// A serial port and its line settings; every device on the line must share them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    /// The port's path, e.g. `/dev/ttyUSB0`.
    pub path: String,
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Data bits.
    pub data_bits: DataBits,
    /// Stop bits.
    pub stop_bits: StopBits,
}

/// The silence the specification fixes above 19200 baud.
const FAST_LINE_GAP: Duration = Duration::from_micros(1750);

impl SerialLine {
    /// How long one character takes on the wire: a start bit, the data bits, the parity
    /// bit if any and the stop bits.
    pub fn char_time(&self) -> Duration {
        let bits = 1
            + self.data_bits.bits()
            + u32::from(self.parity != Parity::None)
            + self.stop_bits.bits();
        Duration::from_secs_f64(f64::from(bits) / f64::from(self.baud.max(1)))
    }

    /// The silence to leave between two frames: 3.5 character times, or 1.75 ms above
    /// 19200 baud.
    pub fn frame_gap(&self) -> Duration {
        if self.baud > 19_200 {
            FAST_LINE_GAP
        } else {
            self.char_time().mul_f64(3.5)
        }
    }

    /// Opens the port with these settings. This is an open(2) with `O_NONBLOCK` (so it does
    /// not wait for a carrier) and a few ioctls: quick enough to run on the runtime; the
    /// port's reads and writes are then readiness-driven, never blocking.
    pub fn open(&self) -> std::io::Result<tokio_serial::SerialStream> {
        let builder = tokio_serial::new(&self.path, self.baud)
            .parity(match self.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            })
            .data_bits(match self.data_bits {
                DataBits::Seven => tokio_serial::DataBits::Seven,
                DataBits::Eight => tokio_serial::DataBits::Eight,
            })
            .stop_bits(match self.stop_bits {
                StopBits::One => tokio_serial::StopBits::One,
                StopBits::Two => tokio_serial::StopBits::Two,
            })
            .flow_control(tokio_serial::FlowControl::None);
        Ok(tokio_serial::SerialStream::open(&builder)?)
    }
}

/// The baud rates a serial port can be set to (POSIX and Linux), for validation.
pub const BAUDS: [u32; 14] = [
    1200, 2400, 4800, 9600, 14_400, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 500_000,
    921_600, 1_000_000,
];

/// Reads `serial`, `baud`, `parity`, `data_bits` and `stop_bits` from a plugin's device
/// table, with the protocol's defaults for the line settings (DL/T 645: 2400 8E1); errors
/// are recorded in `t`.
pub fn read_line(
    t: &mut dyn ConfigTable,
    default_baud: u32,
    default_parity: Parity,
    default_data_bits: DataBits,
) -> Option<SerialLine> {
    let section = t.section().to_owned();
    let path = t
        .required_string("serial", "the serial port, e.g. \"/dev/ttyUSB0\"")
        .and_then(|p| {
            if p.trim().is_empty() || p.chars().any(char::is_control) {
                t.error(
                    "serial",
                    format!("{section}: `serial` must be a device path like \"/dev/ttyUSB0\""),
                );
                None
            } else {
                Some(p)
            }
        });
    let baud = match t.integer("baud", 1, i64::from(u32::MAX)) {
        Some(b) if BAUDS.contains(&(b as u32)) => b as u32,
        Some(b) => {
            let bauds: Vec<String> = BAUDS.iter().map(u32::to_string).collect();
            t.error(
                "baud",
                format!(
                    "{section}: `baud` must be one of {}, found {b}",
                    bauds.join(", ")
                ),
            );
            default_baud
        }
        None => default_baud,
    };
    let parity = match t.string("parity") {
        Some(p) => match p.parse() {
            Ok(parity) => parity,
            Err(()) => {
                t.error(
                    "parity",
                    format!(
                        "{section}: `parity` must be one of {}, found {p:?}",
                        Parity::NAMES
                    ),
                );
                default_parity
            }
        },
        None => default_parity,
    };
    let data_bits = match t.integer("data_bits", 7, 8) {
        Some(7) => DataBits::Seven,
        Some(_) => DataBits::Eight,
        None => default_data_bits,
    };
    let stop_bits = match t.integer("stop_bits", 1, 2) {
        Some(2) => StopBits::Two,
        _ => StopBits::One,
    };
    Some(SerialLine {
        path: path?,
        baud,
        parity,
        data_bits,
        stop_bits,
    })
}

impl SerialLine {
    /// The line settings as device labels write them: `9600 8E1`.
    pub fn settings(&self) -> String {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        format!(
            "{} {}{parity}{}",
            self.baud,
            self.data_bits.bits(),
            self.stop_bits.bits()
        )
    }
}

impl fmt::Display for SerialLine {
    /// `/dev/ttyUSB0 9600 8E1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(baud: u32, parity: Parity, stop_bits: StopBits) -> SerialLine {
        SerialLine {
            path: "/dev/ttyUSB0".into(),
            baud,
            parity,
            data_bits: DataBits::Eight,
            stop_bits,
        }
    }

    #[test]
    fn frame_gap_is_three_and_a_half_characters_up_to_19200_baud() {
        // 8E1: 11 bits a character; at 9600 baud 3.5 characters take 4.01 ms.
        let gap = line(9600, Parity::Even, StopBits::One).frame_gap();
        assert!(
            (gap.as_secs_f64() - 3.5 * 11.0 / 9600.0).abs() < 1e-6,
            "{gap:?}"
        );
        // 8N1 is 10 bits: at 19200 baud 1.82 ms.
        let gap = line(19_200, Parity::None, StopBits::One).frame_gap();
        assert!(
            (gap.as_secs_f64() - 3.5 * 10.0 / 19_200.0).abs() < 1e-6,
            "{gap:?}"
        );
    }

    #[test]
    fn frame_gap_is_fixed_above_19200_baud() {
        for baud in [38_400, 115_200] {
            assert_eq!(
                line(baud, Parity::None, StopBits::Two).frame_gap(),
                Duration::from_micros(1750)
            );
        }
    }

    #[test]
    fn a_line_displays_as_on_device_labels() {
        assert_eq!(
            line(9600, Parity::Even, StopBits::One).to_string(),
            "/dev/ttyUSB0 9600 8E1"
        );
        assert_eq!(
            line(19_200, Parity::None, StopBits::Two).to_string(),
            "/dev/ttyUSB0 19200 8N2"
        );
    }

    #[test]
    fn parity_names_round_trip() {
        for p in [Parity::None, Parity::Even, Parity::Odd] {
            assert_eq!(p.as_str().parse::<Parity>(), Ok(p));
        }
        assert!("mark".parse::<Parity>().is_err());
    }
}
