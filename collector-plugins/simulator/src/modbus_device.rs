//! A simulated Modbus TCP device: a [`RegisterMap`] served with tokio-modbus.
//!
//! Register contents are computed from the signals when a request arrives, so a client
//! sees values move exactly as the [`Signal`] formulas say. The device is read-only and
//! answers any unit id. Answers follow the Modbus application protocol: a function the
//! device does not offer (any write, diagnostics, or a read of an area with nothing mapped
//! in it) gets exception 01; a quantity of 0 or above the protocol limit gets 03; a read
//! that touches an unmapped address gets 02.

use crate::signal::{Signal, seed_for, span};
use fieldlink_collector_api::{Area, DataType, WordOrder, clock};
use fieldlink_wire::Value;
use std::collections::BTreeMap;
use std::future::{Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;

/// Where a mapped value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A signal, transformed linearly: `signal.value(seed, t) · scale + offset`.
    Signal {
        /// The curve's shape.
        signal: Signal,
        /// The curve's seed (see [`seed_for`]).
        seed: u64,
        /// Multiplies the signal's value.
        scale: f64,
        /// Is added after scaling.
        offset: f64,
    },
    /// A pulse: true during `on` out of every `period`, with a phase chosen by the seed
    /// (rare alarms); 1 or 0 in a register.
    Pulse {
        /// Chooses the phase.
        seed: u64,
        /// How often the pulse comes.
        period: Duration,
        /// How long it stays true.
        on: Duration,
    },
    /// A value that never changes.
    Constant(Value),
}

impl Source {
    /// The signal seeded by `name`, unscaled.
    pub fn signal(signal: Signal, name: &str) -> Self {
        Source::Signal {
            signal,
            seed: seed_for(name),
            scale: 1.0,
            offset: 0.0,
        }
    }

    /// The signal seeded by `name`, as `value · scale + offset`.
    pub fn scaled(signal: Signal, name: &str, scale: f64, offset: f64) -> Self {
        Source::Signal {
            signal,
            seed: seed_for(name),
            scale,
            offset,
        }
    }

    /// The value at `t_ms`, as a number (booleans as 0 or 1), or the constant's text.
    pub(crate) fn at(&self, t_ms: i64) -> Scalar<'_> {
        match self {
            Source::Signal {
                signal,
                seed,
                scale,
                offset,
            } => Scalar::Number(signal.number(*seed, t_ms) * scale + offset),
            Source::Pulse { seed, period, on } => {
                let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
                let on_ms = i64::try_from(on.as_millis()).unwrap_or(i64::MAX);
                let phase = span(*seed, 2, period_ms);
                let within = t_ms.saturating_add(phase).rem_euclid(period_ms);
                Scalar::Number(f64::from(u8::from(within < on_ms)))
            }
            Source::Constant(Value::Text(text)) => Scalar::Text(text),
            Source::Constant(Value::Bool(b)) => Scalar::Number(f64::from(u8::from(*b))),
            Source::Constant(v) => Scalar::Number(v.as_f64().unwrap_or(0.0)),
        }
    }
}

/// A source's value at an instant: a number (booleans as 0 or 1) or a constant's text.
pub(crate) enum Scalar<'a> {
    Number(f64),
    Text(&'a str),
}

/// One named value of the device: where it lives and how it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The point's name (for errors and for mirroring in configuration).
    pub name: Arc<str>,
    /// The data area.
    pub area: Area,
    /// The zero-based address of its first register or its bit.
    pub address: u16,
    /// The encoding; only `Bool` is allowed in the bit areas.
    pub data_type: DataType,
    /// Byte and word order of multi-register numbers; strings are always high byte first.
    pub order: WordOrder,
    /// Where the value comes from.
    pub source: Source,
}

impl Mapping {
    /// A big-endian (`ABCD`) mapping.
    pub fn new(name: &str, area: Area, address: u16, data_type: DataType, source: Source) -> Self {
        Mapping {
            name: name.into(),
            area,
            address,
            data_type,
            order: WordOrder::Abcd,
            source,
        }
    }

    /// How many addresses the mapping covers.
    fn width(&self) -> u32 {
        if self.area.is_bits() {
            1
        } else {
            u32::from(self.data_type.registers())
        }
    }

    /// One past its last address.
    fn end(&self) -> u32 {
        u32::from(self.address) + self.width()
    }
}

/// Why a mapping cannot be added to a [`RegisterMap`]; fix the map.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// Two mappings share an address in the same area.
    #[error("`{name}` overlaps `{other}` in the {area} area")]
    Overlap {
        /// The mapping being added.
        name: Arc<str>,
        /// The mapping already there.
        other: Arc<str>,
        /// The area.
        area: Area,
    },
    /// The mapping runs past address 65535.
    #[error("`{name}` runs past the last address 65535")]
    OutOfRange {
        /// The mapping.
        name: Arc<str>,
    },
    /// A coil or discrete input must be `Bool`.
    #[error("`{name}` is {data_type} but the {area} area holds single bits (bool only)")]
    NotABit {
        /// The mapping.
        name: Arc<str>,
        /// Its type.
        data_type: DataType,
        /// Its area.
        area: Area,
    },
    /// A string of zero registers.
    #[error("`{name}` is a string of zero registers")]
    EmptyString {
        /// The mapping.
        name: Arc<str>,
    },
    /// A constant that the type cannot hold: text in a number, text longer than the
    /// string's registers, or no value at all.
    #[error("`{name}`: the constant {value:?} does not fit {data_type}")]
    BadConstant {
        /// The mapping.
        name: Arc<str>,
        /// The constant.
        value: Value,
        /// The type.
        data_type: DataType,
    },
}

/// The contents of a simulated device: mappings per area, non-overlapping.
#[derive(Debug, Clone, Default)]
pub struct RegisterMap {
    /// Per area, mappings by first address.
    areas: BTreeMap<Area, BTreeMap<u16, Mapping>>,
    /// When set, values are those of this instant instead of the wall clock's.
    fixed_time_ms: Option<i64>,
}

impl RegisterMap {
    /// An empty map.
    pub fn new() -> Self {
        RegisterMap::default()
    }

    /// Adds a mapping after checking it against the map.
    pub fn insert(&mut self, mapping: Mapping) -> Result<(), MapError> {
        let name = Arc::clone(&mapping.name);
        if mapping.area.is_bits() && mapping.data_type != DataType::Bool {
            return Err(MapError::NotABit {
                name,
                data_type: mapping.data_type,
                area: mapping.area,
            });
        }
        if mapping.data_type == (DataType::String { len: 0 }) {
            return Err(MapError::EmptyString { name });
        }
        if mapping.end() > 1 << 16 {
            return Err(MapError::OutOfRange { name });
        }
        if let Source::Constant(value) = &mapping.source {
            let fits = match (value, mapping.data_type) {
                (Value::None, _) => false,
                (Value::Text(text), DataType::String { len }) => text.len() <= 2 * usize::from(len),
                (Value::Text(_), _) => false,
                _ => true,
            };
            if !fits {
                let (value, data_type) = (value.clone(), mapping.data_type);
                return Err(MapError::BadConstant {
                    name,
                    value,
                    data_type,
                });
            }
        }
        let area = self.areas.entry(mapping.area).or_default();
        let clash = area
            .range(..=mapping.address)
            .next_back()
            .filter(|(_, before)| before.end() > u32::from(mapping.address))
            .or_else(|| {
                let next = mapping.address.checked_add(1)?;
                area.range(next..)
                    .next()
                    .filter(|(start, _)| u32::from(**start) < mapping.end())
            });
        if let Some((_, other)) = clash {
            let other = Arc::clone(&other.name);
            return Err(MapError::Overlap {
                name,
                other,
                area: mapping.area,
            });
        }
        area.insert(mapping.address, mapping);
        Ok(())
    }

    /// The map with `mapping` added (for building maps in one expression).
    pub fn with(mut self, mapping: Mapping) -> Result<Self, MapError> {
        self.insert(mapping)?;
        Ok(self)
    }

    /// The map frozen at `t_ms`: it serves the values of that instant forever (tests and
    /// reproducible captures).
    pub fn at_fixed_time(mut self, t_ms: i64) -> Self {
        self.fixed_time_ms = Some(t_ms);
        self
    }

    /// All mappings, by area then address.
    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.areas.values().flat_map(BTreeMap::values)
    }

    /// The instant the map's values are taken at: the fixed time, or now.
    fn now_ms(&self) -> i64 {
        self.fixed_time_ms.unwrap_or_else(clock::now_ms)
    }

    /// The mappings of `area` in order, with the words of each that fall into
    /// `[address, address + quantity)` written into `out`; an address left `None` is
    /// unmapped.
    fn fill<T>(
        &self,
        area: Area,
        address: u16,
        quantity: u16,
        mut encode: impl FnMut(&Mapping, &mut Vec<T>),
    ) -> Result<Vec<T>, ExceptionCode> {
        let Some(mappings) = self.areas.get(&area).filter(|m| !m.is_empty()) else {
            return Err(ExceptionCode::IllegalFunction);
        };
        if quantity == 0 || quantity > area.protocol_limit() {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let start = u32::from(address);
        let end = start + u32::from(quantity);
        if end > 1 << 16 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let mut out = Vec::with_capacity(usize::from(quantity));
        let mut words = Vec::new();
        let mut next = start;
        // A mapping that starts before the range may still reach into it.
        let first = mappings
            .range(..=address)
            .next_back()
            .map_or(address, |(a, _)| *a);
        for mapping in mappings.range(first..).map(|(_, m)| m) {
            let m_start = u32::from(mapping.address);
            if m_start >= end {
                break;
            }
            if mapping.end() <= start {
                continue;
            }
            if m_start > next {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            words.clear();
            encode(mapping, &mut words);
            let skip = next - m_start;
            let take = mapping.end().min(end) - next;
            out.extend(words.drain(..).skip(skip as usize).take(take as usize));
            next += take;
        }
        if next < end {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        Ok(out)
    }

    /// Reads `quantity` coils or discrete inputs from `address` at `t_ms`, or the
    /// exception a device would answer.
    pub fn read_bits(
        &self,
        area: Area,
        address: u16,
        quantity: u16,
        t_ms: i64,
    ) -> Result<Vec<bool>, ExceptionCode> {
        if !area.is_bits() {
            return Err(ExceptionCode::IllegalFunction);
        }
        self.fill(area, address, quantity, |mapping, out| {
            out.push(match mapping.source.at(t_ms) {
                Scalar::Number(v) => v != 0.0,
                Scalar::Text(text) => !text.is_empty(),
            });
        })
    }

    /// Reads `quantity` holding or input registers from `address` at `t_ms`, or the
    /// exception a device would answer.
    pub fn read_registers(
        &self,
        area: Area,
        address: u16,
        quantity: u16,
        t_ms: i64,
    ) -> Result<Vec<u16>, ExceptionCode> {
        if area.is_bits() {
            return Err(ExceptionCode::IllegalFunction);
        }
        self.fill(area, address, quantity, |mapping, out| {
            encode_registers(
                mapping.data_type,
                mapping.order,
                &mapping.source.at(t_ms),
                out,
            );
        })
    }

    /// The answer to one request.
    fn answer(&self, request: &Request<'_>) -> Result<Response, ExceptionCode> {
        let t_ms = self.now_ms();
        match *request {
            Request::ReadCoils(address, quantity) => self
                .read_bits(Area::Coil, address, quantity, t_ms)
                .map(Response::ReadCoils),
            Request::ReadDiscreteInputs(address, quantity) => self
                .read_bits(Area::Discrete, address, quantity, t_ms)
                .map(Response::ReadDiscreteInputs),
            Request::ReadHoldingRegisters(address, quantity) => self
                .read_registers(Area::Holding, address, quantity, t_ms)
                .map(Response::ReadHoldingRegisters),
            Request::ReadInputRegisters(address, quantity) => self
                .read_registers(Area::Input, address, quantity, t_ms)
                .map(Response::ReadInputRegisters),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

/// Appends the registers of `value` encoded as `data_type` in `order`. Numbers are
/// rounded and saturated into integer types; text in a number type is never built (the
/// map refuses it) and encodes as zero.
fn encode_registers(data_type: DataType, order: WordOrder, value: &Scalar<'_>, out: &mut Vec<u16>) {
    let number = match value {
        Scalar::Number(v) => *v,
        Scalar::Text(_) => 0.0,
    };
    // Float-to-integer `as` casts round toward zero and saturate; rounding first makes
    // them round to nearest.
    let bytes: Vec<u8> = match data_type {
        DataType::Bool => vec![0, u8::from(number != 0.0)],
        DataType::U16 => (number.round() as u16).to_be_bytes().to_vec(),
        DataType::I16 => (number.round() as i16).to_be_bytes().to_vec(),
        DataType::U32 => (number.round() as u32).to_be_bytes().to_vec(),
        DataType::I32 => (number.round() as i32).to_be_bytes().to_vec(),
        DataType::U64 => (number.round() as u64).to_be_bytes().to_vec(),
        DataType::I64 => (number.round() as i64).to_be_bytes().to_vec(),
        DataType::F32 => (number as f32).to_be_bytes().to_vec(),
        DataType::F64 => number.to_be_bytes().to_vec(),
        DataType::String { len } => {
            let text = match value {
                Scalar::Text(text) => (*text).to_owned(),
                Scalar::Number(v) => v.to_string(),
            };
            let mut bytes = text.into_bytes();
            bytes.resize(2 * usize::from(len), 0);
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
            );
            return;
        }
    };
    let words = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    match order {
        WordOrder::Abcd => out.extend(words),
        WordOrder::Badc => out.extend(words.map(u16::swap_bytes)),
        WordOrder::Cdab => out.extend(words.rev()),
        WordOrder::Dcba => out.extend(words.rev().map(u16::swap_bytes)),
    }
}

/// The name that seeds the demo press's machine signals (running, energy, parts).
pub const DEMO_MACHINE: &str = "press-1";

/// The demo device's layout (all big-endian, any unit id; `config/demo.toml` mirrors it):
///
/// | area | address | type | point | source |
/// |---|---|---|---|---|
/// | holding | 0–1 | f32 | `temperature` | Sine, °C, 20–25 |
/// | holding | 2–3 | f32 | `pressure` | RandomWalk × 0.1, bar, 4–6 |
/// | holding | 4 | u16 | `spindle_speed` | Ramp × 30, rpm, 0–3000 |
/// | holding | 10–11 | u32 | `parts_made` | Output (machine `press-1`): parts made, counting while it runs |
/// | holding | 12–13 | u32 | `energy` | Energy (machine `press-1`) × 100: its meter in 0.01 kWh |
/// | holding | 20–23 | string (4 registers) | `recipe` | `"AX-7"`, NUL-padded |
/// | input | 0 | i16 | `motor_current` | RandomWalk × 3: 120–180, i.e. 12.0–18.0 A at scale 0.1 |
/// | coil | 0 | bool | `door_open` | Toggle |
/// | coil | 1 | bool | `running` | Running (machine `press-1`): mostly running, with stops |
/// | discrete | 0 | bool | `alarm` | Pulse: true 1 s in every 60 s |
///
/// Each signal is seeded by its point's name, but for the machine signals, seeded by
/// [`DEMO_MACHINE`] so that the meter and the counter follow the run state.
pub fn demo_register_map() -> RegisterMap {
    let mappings = [
        Mapping::new(
            "temperature",
            Area::Holding,
            0,
            DataType::F32,
            Source::signal(Signal::Sine, "temperature"),
        ),
        Mapping::new(
            "pressure",
            Area::Holding,
            2,
            DataType::F32,
            Source::scaled(Signal::RandomWalk, "pressure", 0.1, 0.0),
        ),
        Mapping::new(
            "spindle_speed",
            Area::Holding,
            4,
            DataType::U16,
            Source::scaled(Signal::Ramp, "spindle_speed", 30.0, 0.0),
        ),
        Mapping::new(
            "parts_made",
            Area::Holding,
            10,
            DataType::U32,
            Source::signal(Signal::Output, DEMO_MACHINE),
        ),
        Mapping::new(
            "energy",
            Area::Holding,
            12,
            DataType::U32,
            Source::scaled(Signal::Energy, DEMO_MACHINE, 100.0, 0.0),
        ),
        Mapping::new(
            "recipe",
            Area::Holding,
            20,
            DataType::String { len: 4 },
            Source::Constant(Value::Text("AX-7".to_owned())),
        ),
        Mapping::new(
            "motor_current",
            Area::Input,
            0,
            DataType::I16,
            Source::scaled(Signal::RandomWalk, "motor_current", 3.0, 0.0),
        ),
        Mapping::new(
            "door_open",
            Area::Coil,
            0,
            DataType::Bool,
            Source::signal(Signal::Toggle, "door_open"),
        ),
        Mapping::new(
            "running",
            Area::Coil,
            1,
            DataType::Bool,
            Source::signal(Signal::Running, DEMO_MACHINE),
        ),
        Mapping::new(
            "alarm",
            Area::Discrete,
            0,
            DataType::Bool,
            Source::Pulse {
                seed: seed_for("alarm"),
                period: Duration::from_secs(60),
                on: Duration::from_secs(1),
            },
        ),
    ];
    let mut map = RegisterMap::new();
    for mapping in mappings {
        if let Err(e) = map.insert(mapping) {
            // The layout above is fixed and checked by a test.
            unreachable!("demo register map is invalid: {e}");
        }
    }
    map
}

/// The tokio-modbus service of one device: every connection shares the map.
struct DeviceService {
    map: Arc<RegisterMap>,
}

impl Service for DeviceService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        ready(self.map.answer(&request))
    }
}

/// Serves `registers` over Modbus TCP on `listener` until `shutdown` fires, then closes
/// the listener and every connection and returns `Ok(())`. It returns an error only if
/// accepting connections fails. Connection tasks are cancelled when this returns and end
/// at their next wake-up; none outlives it by more than that.
pub async fn serve(
    listener: TcpListener,
    registers: RegisterMap,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let service = Arc::new(DeviceService {
        map: Arc::new(registers),
    });
    let server = Server::new(listener);
    let on_connected = |stream: TcpStream, _peer: SocketAddr| {
        let service = Arc::clone(&service);
        async move { io::Result::Ok(Some((service, stream))) }
    };
    let on_process_error =
        |err: io::Error| tracing::debug!(%err, "simulated Modbus connection ended");
    tokio::select! {
        // `serve` cancels its connection tasks when it is dropped.
        served = server.serve(&on_connected, on_process_error) => served,
        () = shutdown.cancelled() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_547_200_000;

    fn words_to_f32(w: &[u16]) -> f32 {
        f32::from_bits((u32::from(w[0]) << 16) | u32::from(w[1]))
    }

    #[test]
    fn demo_map_is_valid_and_covers_the_layout() {
        let map = demo_register_map();
        let names: Vec<&str> = map.mappings().map(|m| &*m.name).collect();
        assert_eq!(
            names,
            [
                "temperature",
                "pressure",
                "spindle_speed",
                "parts_made",
                "energy",
                "recipe",
                "motor_current",
                "door_open",
                "running",
                "alarm"
            ]
        );
    }

    #[test]
    fn demo_values_are_in_their_documented_ranges_over_a_day() {
        let map = demo_register_map();
        let mut alarm_on = 0;
        for s in 0..86_400 {
            let t = T + s * 1000;
            let h = map.read_registers(Area::Holding, 0, 5, t).unwrap();
            let temperature = words_to_f32(&h[0..2]);
            let pressure = words_to_f32(&h[2..4]);
            assert!((20.0..=25.0).contains(&temperature), "{temperature}");
            assert!((4.0..=6.0).contains(&pressure), "{pressure}");
            assert!(h[4] <= 3000, "{}", h[4]);
            let current = map.read_registers(Area::Input, 0, 1, t).unwrap()[0] as i16;
            assert!((120..=180).contains(&current), "{current}");
            if map.read_bits(Area::Discrete, 0, 1, t).unwrap()[0] {
                alarm_on += 1;
            }
        }
        // True 1 s in 60.
        assert_eq!(alarm_on, 86_400 / 60);
    }

    #[test]
    fn word_orders_place_bytes_as_named() {
        let source = Scalar::Number(f64::from(0x0102_0304u32));
        let words = |order| {
            let mut out = Vec::new();
            encode_registers(DataType::U32, order, &source, &mut out);
            out
        };
        assert_eq!(words(WordOrder::Abcd), [0x0102, 0x0304]);
        assert_eq!(words(WordOrder::Cdab), [0x0304, 0x0102]);
        assert_eq!(words(WordOrder::Badc), [0x0201, 0x0403]);
        assert_eq!(words(WordOrder::Dcba), [0x0403, 0x0201]);
    }

    #[test]
    fn integers_round_and_saturate() {
        let one = |data_type, v| {
            let mut out = Vec::new();
            encode_registers(data_type, WordOrder::Abcd, &Scalar::Number(v), &mut out);
            out
        };
        assert_eq!(one(DataType::U16, 2.6), [3]);
        assert_eq!(one(DataType::U16, -5.0), [0]);
        assert_eq!(one(DataType::U16, 1e9), [u16::MAX]);
        assert_eq!(one(DataType::I16, -2.0), [(-2i16) as u16]);
    }

    #[test]
    fn partial_and_spanning_reads() {
        let map = demo_register_map().at_fixed_time(T);
        let whole = map.read_registers(Area::Holding, 0, 5, T).unwrap();
        // The second word of `temperature` alone, then into `pressure`.
        assert_eq!(
            map.read_registers(Area::Holding, 1, 2, T).unwrap(),
            whole[1..3]
        );
        // Addresses 5..10 are unmapped.
        assert_eq!(
            map.read_registers(Area::Holding, 0, 6, T),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            map.read_registers(Area::Holding, 5, 1, T),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            map.read_registers(Area::Holding, 65535, 1, T),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            map.read_registers(Area::Holding, 0, 0, T),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            map.read_registers(Area::Holding, 0, 126, T),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(map.read_bits(Area::Coil, 0, 2, T).unwrap().len(), 2);
        assert_eq!(
            map.read_bits(Area::Coil, 0, 3, T),
            Err(ExceptionCode::IllegalDataAddress)
        );
    }

    #[test]
    fn an_area_with_nothing_mapped_is_an_illegal_function() {
        let map = RegisterMap::new()
            .with(Mapping::new(
                "x",
                Area::Holding,
                0,
                DataType::U16,
                Source::Constant(Value::Int(7)),
            ))
            .unwrap();
        assert_eq!(map.read_registers(Area::Holding, 0, 1, T), Ok(vec![7]));
        assert_eq!(
            map.read_registers(Area::Input, 0, 1, T),
            Err(ExceptionCode::IllegalFunction)
        );
        assert_eq!(
            map.read_bits(Area::Coil, 0, 1, T),
            Err(ExceptionCode::IllegalFunction)
        );
    }

    #[test]
    fn invalid_mappings_are_refused() {
        let constant = |v: i64| Source::Constant(Value::Int(v));
        let map = RegisterMap::new()
            .with(Mapping::new(
                "a",
                Area::Holding,
                10,
                DataType::U32,
                constant(1),
            ))
            .unwrap();
        let err = |m| map.clone().with(m).unwrap_err();
        assert!(matches!(
            err(Mapping::new(
                "b",
                Area::Holding,
                11,
                DataType::U16,
                constant(1)
            )),
            MapError::Overlap { .. }
        ));
        assert!(matches!(
            err(Mapping::new(
                "b",
                Area::Holding,
                9,
                DataType::U32,
                constant(1)
            )),
            MapError::Overlap { .. }
        ));
        assert!(matches!(
            err(Mapping::new(
                "b",
                Area::Holding,
                8,
                DataType::F64,
                constant(1)
            )),
            MapError::Overlap { .. }
        ));
        // Adjacent is fine, and the same address in another area too.
        map.clone()
            .with(Mapping::new(
                "b",
                Area::Holding,
                12,
                DataType::U16,
                constant(1),
            ))
            .unwrap();
        map.clone()
            .with(Mapping::new(
                "b",
                Area::Input,
                10,
                DataType::U16,
                constant(1),
            ))
            .unwrap();
        assert!(matches!(
            err(Mapping::new(
                "b",
                Area::Holding,
                65535,
                DataType::U32,
                constant(1)
            )),
            MapError::OutOfRange { .. }
        ));
        assert!(matches!(
            err(Mapping::new("b", Area::Coil, 0, DataType::U16, constant(1))),
            MapError::NotABit { .. }
        ));
        assert!(matches!(
            err(Mapping::new(
                "b",
                Area::Holding,
                0,
                DataType::String { len: 0 },
                constant(1)
            )),
            MapError::EmptyString { .. }
        ));
        let text = Source::Constant(Value::Text("too long".to_owned()));
        assert!(matches!(
            err(Mapping::new(
                "b",
                Area::Holding,
                0,
                DataType::String { len: 2 },
                text.clone()
            )),
            MapError::BadConstant { .. }
        ));
        assert!(matches!(
            err(Mapping::new("b", Area::Holding, 0, DataType::U16, text)),
            MapError::BadConstant { .. }
        ));
    }
}
