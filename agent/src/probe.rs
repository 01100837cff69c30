//! `fieldlink probe modbus TARGET ...`: reads a range of registers (or bits) once and
//! prints them raw and decoded in every type and byte order, so an integrator can see
//! which `type` and `order` fit a device without its manual. `fieldlink probe s7|mc|dlt645
//! TARGET --address ...` goes to the protocol's plugin, which prints its own table.
//!
//! Targets: `tcp://HOST[:PORT]` (Modbus TCP), `rtu-tcp://HOST[:PORT]` (RTU framing through
//! a serial device server) and `rtu:///dev/ttyUSB0?baud=9600&parity=even&data_bits=8&stop_bits=1`
//! (a local serial line; the settings default to the Modbus serial specification's 19200
//! 8E1), and `ascii:///dev/ttyUSB0?...` (Modbus ASCII on a serial line, 19200 7E1 by
//! default). Every failure is a [`ProbeError`] whose text says what to check.

use crate::config::units::{format_duration, parse_duration};
use fieldlink_collector_api::plugin::ProbeRequest;
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::bus::{self, OpenError};
use fieldlink_modbus::tcp::{self, ConnectError};
use fieldlink_modbus::{BusLink, Data, DataBits, Parity, ReadError, SerialLine, StopBits};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

/// `fieldlink probe`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// The protocol: modbus, s7, mc or dlt645.
    #[arg(value_parser = parse_protocol)]
    pub protocol: String,
    /// Where the device is. Modbus: tcp://HOST:PORT, rtu-tcp://HOST:PORT,
    /// rtu:///dev/ttyUSB0?baud=9600&parity=even&data_bits=8&stop_bits=1 or
    /// ascii:///dev/ttyUSB0; s7 and mc: tcp://HOST:PORT; dlt645: serial:///dev/ttyUSB0?baud=2400
    pub target: String,
    /// The unit (slave) id (Modbus).
    #[arg(long, default_value_t = 1)]
    pub unit: u8,
    /// The area: holding, input, coil or discrete (Modbus).
    #[arg(long, default_value = "holding", value_parser = parse_area)]
    pub area: Area,
    /// What to read. Modbus: the first (zero-based) address; s7: DB1.DBW0, M10.0, IW64...;
    /// mc: D100, M0, X10...; dlt645: a data identifier such as 00010000.
    #[arg(long)]
    pub address: Option<String>,
    /// How many to read: registers (at most 125) or bits (2000) for Modbus (default 10),
    /// bytes for s7 (default 16), words for mc (default 10).
    #[arg(long)]
    pub count: Option<u16>,
    /// How long to wait for the connection and for the answer.
    #[arg(long, default_value = "1s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// s7: the CPU's rack (default 0).
    #[arg(long)]
    pub rack: Option<u8>,
    /// s7: the CPU's slot (default 1).
    #[arg(long)]
    pub slot: Option<u8>,
    /// mc: the PLC family, q (Q, L, iQ-R; X/Y in hex) or iq-f (X/Y in octal).
    #[arg(long)]
    pub family: Option<String>,
    /// dlt645: the meter's address, 12 digits (default: the broadcast address AAAAAAAAAAAA).
    #[arg(long)]
    pub meter: Option<String>,
    /// More settings of the protocol, as KEY=VALUE (s7: connection, local_tsap,
    /// remote_tsap; LOGO!: --set local_tsap=01.00 --set remote_tsap=02.00).
    #[arg(long = "set", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
}

fn parse_protocol(text: &str) -> Result<String, String> {
    if text == "modbus" || crate::plugins::plugin(text).is_some() {
        Ok(text.to_owned())
    } else {
        let mut names = vec!["modbus"];
        names.extend(crate::plugins::PLUGINS.iter().map(|p| p.protocol()));
        Err(format!("expected one of {}", names.join(", ")))
    }
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

/// The Modbus range to read: the first address and how many.
fn modbus_range(args: &ProbeArgs) -> Result<(u16, u16), ProbeError> {
    let address = match &args.address {
        None => 0,
        Some(text) => text.parse().map_err(|_| {
            ProbeError::Usage(format!(
                "--address must be a zero-based Modbus address, 0 to 65535, found {text:?}"
            ))
        })?,
    };
    Ok((address, args.count.unwrap_or(10)))
}

fn parse_area(text: &str) -> Result<Area, String> {
    text.parse()
        .map_err(|()| format!("expected one of {}", Area::NAMES))
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err("expected a duration like \"500ms\" or \"2s\"".to_owned()),
    }
}

/// Where to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Modbus TCP at `host:port`.
    Tcp(String),
    /// RTU framing over TCP, or RTU on a serial line.
    Rtu(BusLink),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(address) => write!(f, "tcp://{address}"),
            Target::Rtu(BusLink::Tcp(address)) => write!(f, "rtu-tcp://{address}"),
            Target::Rtu(BusLink::Serial(line)) => write!(f, "rtu://{line}"),
            Target::Rtu(BusLink::Ascii(line)) => write!(f, "ascii://{line}"),
        }
    }
}

/// Why the probe failed; the text says what to check. The command exits with 1.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The target or another argument does not parse.
    #[error("{0}")]
    Usage(String),
    /// The connection was refused or the port could not be opened.
    #[error("cannot reach {target}: {reason}; {hint}")]
    Connect {
        /// The target.
        target: String,
        /// What failed.
        reason: String,
        /// What to check.
        hint: &'static str,
    },
    /// No answer within the timeout.
    #[error(
        "no answer from unit {unit} at {target} within {timeout}; check the unit id (--unit){serial}"
    )]
    Timeout {
        /// The target.
        target: String,
        /// The unit asked.
        unit: u8,
        /// The timeout, formatted.
        timeout: String,
        /// Hints for serial lines.
        serial: &'static str,
    },
    /// The device answered with an exception.
    #[error("the device answered {0}")]
    Exception(String),
    /// The answer was malformed or the link failed.
    #[error("reading failed: {0}")]
    Read(String),
}

/// Parses a probe target (see the module note).
pub fn parse_target(text: &str) -> Result<Target, ProbeError> {
    let usage = |why: &str| {
        ProbeError::Usage(format!(
            "bad target {text:?}: {why}; expected tcp://HOST:PORT, rtu-tcp://HOST:PORT, rtu:///dev/ttyUSB0?baud=9600&parity=even or ascii:///dev/ttyUSB0"
        ))
    };
    let host_port = |rest: &str| {
        crate::config::parse_host_port(rest.trim_end_matches('/'), 502)
            .ok_or_else(|| usage("not a HOST:PORT"))
    };
    if let Some(rest) = text.strip_prefix("tcp://") {
        return Ok(Target::Tcp(host_port(rest)?));
    }
    if let Some(rest) = text.strip_prefix("rtu-tcp://") {
        return Ok(Target::Rtu(BusLink::Tcp(host_port(rest)?)));
    }
    let (ascii, rest) = if let Some(rest) = text.strip_prefix("rtu://") {
        (false, rest)
    } else if let Some(rest) = text.strip_prefix("ascii://") {
        (true, rest)
    } else {
        return Err(usage("unknown scheme"));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(usage(
            "the serial port's path must be absolute, as in rtu:///dev/ttyUSB0",
        ));
    }
    let mut line = SerialLine {
        path: path.to_owned(),
        baud: 19_200,
        parity: Parity::Even,
        // Modbus ASCII's characters are 7 bits by the specification's default.
        data_bits: if ascii {
            DataBits::Seven
        } else {
            DataBits::Eight
        },
        stop_bits: StopBits::One,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "baud" => {
                line.baud = value
                    .parse()
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or_else(|| usage("baud must be a number like 9600"))?;
            }
            "parity" => {
                line.parity = value
                    .parse()
                    .map_err(|()| usage("parity must be none, even or odd"))?;
            }
            "data_bits" => {
                line.data_bits = match value {
                    "7" => DataBits::Seven,
                    "8" => DataBits::Eight,
                    _ => return Err(usage("data_bits must be 7 or 8")),
                };
            }
            "stop_bits" => {
                line.stop_bits = match value {
                    "1" => StopBits::One,
                    "2" => StopBits::Two,
                    _ => return Err(usage("stop_bits must be 1 or 2")),
                };
            }
            other => {
                return Err(usage(&format!(
                    "unknown setting {other:?} (baud, parity, data_bits, stop_bits)"
                )));
            }
        }
    }
    Ok(Target::Rtu(if ascii {
        BusLink::Ascii(line)
    } else {
        BusLink::Serial(line)
    }))
}

/// What a probe read.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Where it was read.
    pub target: Target,
    /// The unit asked.
    pub unit: u8,
    /// The area read.
    pub area: Area,
    /// The first address read.
    pub address: u16,
    /// The registers or bits.
    pub data: Data,
}

/// Reads the range `args` name, once.
pub async fn read(args: &ProbeArgs) -> Result<Reading, ProbeError> {
    let target = parse_target(&args.target)?;
    let (address, count) = modbus_range(args)?;
    let limit = args.area.protocol_limit();
    if count == 0 || count > limit {
        return Err(ProbeError::Usage(format!(
            "--count must be 1 to {limit} for {} (one request's worth)",
            args.area
        )));
    }
    if u32::from(address) + u32::from(count) > 65_536 {
        return Err(ProbeError::Usage(
            "--address plus --count runs past address 65535".to_owned(),
        ));
    }
    let shown = target.to_string();
    let mut client = match &target {
        Target::Tcp(address) => tcp::open(address, args.unit, args.timeout)
            .await
            .map_err(|e| connect_error(&shown, &e.to_string(), tcp_hint(&e)))?,
        Target::Rtu(link) => bus::open_link(link, args.unit, args.timeout)
            .await
            .map_err(|e| connect_error(&shown, &e.to_string(), open_hint(&e)))?,
    };
    let result =
        fieldlink_modbus::read::read(&mut client, args.area, address, count, args.timeout).await;
    let data = result.map_err(|e| match e {
        ReadError::Timeout => ProbeError::Timeout {
            target: shown.clone(),
            unit: args.unit,
            timeout: format_duration(args.timeout),
            serial: match target {
                Target::Tcp(_) => "",
                Target::Rtu(_) => {
                    ", the baud rate and parity, and the RS-485 wiring (A and B swapped?)"
                }
            },
        },
        ReadError::Exception(_) => ProbeError::Exception(exception_hint(&e, address, count)),
        other => ProbeError::Read(other.to_string()),
    })?;
    Ok(Reading {
        target,
        unit: args.unit,
        area: args.area,
        address,
        data,
    })
}

fn connect_error(target: &str, reason: &str, hint: &'static str) -> ProbeError {
    ProbeError::Connect {
        target: target.to_owned(),
        reason: reason.to_owned(),
        hint,
    }
}

fn tcp_hint(e: &ConnectError) -> &'static str {
    match e {
        ConnectError::Timeout => "is the address right, and does a firewall drop the packets?",
        ConnectError::Io(_) => "is the device on, and are this its address and port?",
    }
}

fn open_hint(e: &OpenError) -> &'static str {
    match e {
        OpenError::Serial { .. } => {
            "does the port exist (ls /dev/tty*), and may this user open it (group dialout)?"
        }
        OpenError::Timeout => "is the address right, and does a firewall drop the packets?",
        OpenError::Connect(_) => {
            "is the serial device server on, and are this its address and port?"
        }
    }
}

/// The exception's text, with what to try next for the usual ones.
fn exception_hint(e: &ReadError, address: u16, count: u16) -> String {
    let text = e.to_string();
    let last = u32::from(address) + u32::from(count) - 1;
    if text.starts_with("exception 02") {
        format!(
            "{text}: some address in {address}..{last} does not exist; try a smaller --count or another --address"
        )
    } else if text.starts_with("exception 01") {
        format!("{text} (try another --area)")
    } else {
        text
    }
}

/// Runs `fieldlink probe`: prints the table, or the error on stderr with exit code 1.
pub fn main(args: ProbeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(plugin) = crate::plugins::plugin(&args.protocol) {
        let request = plugin_request(&args);
        let known = plugin.probe_settings();
        if let Some(key) = request
            .settings
            .keys()
            .find(|key| !known.iter().any(|(k, _)| k == key))
        {
            let takes: Vec<String> = known
                .iter()
                .map(|(k, what)| format!("  {k}: {what}"))
                .collect();
            eprintln!(
                "error: probe {} takes no setting {key:?}; it takes:\n{}",
                args.protocol,
                takes.join("\n")
            );
            return ExitCode::FAILURE;
        }
        return match runtime.block_on(plugin.probe(request)) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(read(&args)) {
        Ok(reading) => {
            print!("{}", render(&reading));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a plugin's probe is asked: the target, address, count and timeout as given, and
/// the protocol's settings from their flags and `--set`.
pub fn plugin_request(args: &ProbeArgs) -> ProbeRequest {
    let mut settings = BTreeMap::new();
    let flags = [
        ("rack", args.rack.map(|r| r.to_string())),
        ("slot", args.slot.map(|s| s.to_string())),
        ("family", args.family.clone()),
        ("meter", args.meter.clone()),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            settings.insert(key.to_owned(), value);
        }
    }
    settings.extend(args.settings.iter().cloned());
    ProbeRequest {
        target: args.target.clone(),
        address: args.address.clone(),
        count: args.count,
        timeout: args.timeout,
        settings,
    }
}

/// The table of a reading: registers raw and as 16-bit values; then every 32-bit and
/// 64-bit value starting at each register in each order; then the range as text. Bits are
/// printed eight to a row.
pub fn render(reading: &Reading) -> String {
    let mut out = String::new();
    let (kind, count) = match &reading.data {
        Data::Registers(words) => ("registers", words.len()),
        Data::Bits(bits) => ("bits", bits.len()),
    };
    let last = usize::from(reading.address) + count.saturating_sub(1);
    let _ = writeln!(
        out,
        "{} unit {}: {} {kind} {}..{last} ({count})",
        reading.target, reading.unit, reading.area, reading.address
    );
    match &reading.data {
        Data::Bits(bits) => render_bits(&mut out, reading.address, bits),
        Data::Registers(words) => render_registers(&mut out, reading.address, words),
    }
    out
}

fn render_bits(out: &mut String, start: u16, bits: &[bool]) {
    let _ = writeln!(out, "\naddress  bits (address, address+1, ...)");
    for (row, chunk) in bits.chunks(8).enumerate() {
        let first = usize::from(start) + row * 8;
        let values: Vec<&str> = chunk.iter().map(|&b| if b { "1" } else { "0" }).collect();
        let _ = writeln!(out, "{first:>7}  {}", values.join(" "));
    }
}

fn render_registers(out: &mut String, start: u16, words: &[u16]) {
    let _ = writeln!(out, "\n16-bit values");
    let _ = writeln!(
        out,
        "{:>7}  {:>6}  {:<6}  {:<5}  {:>6}",
        "address", "u16", "hex", "chars", "i16"
    );
    for (i, &w) in words.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>7}  {:>6}  {:<6}  {:<5}  {:>6}",
            usize::from(start) + i,
            w,
            format!("0x{w:04X}"),
            format!("{:?}", chars(w)),
            w.cast_signed(),
        );
    }
    multi_register_table(out, start, words, 2);
    multi_register_table(out, start, words, 4);
    let text: String = words.iter().map(|&w| chars(w)).collect();
    let _ = writeln!(
        out,
        "\nas a string (2 characters per register, high byte first; '.' not printable)\n  {text:?}"
    );
}

/// The 32-bit (`width` 2) or 64-bit (4) values starting at each register, in each order.
fn multi_register_table(out: &mut String, start: u16, words: &[u16], width: usize) {
    if words.len() < width {
        return;
    }
    let (types, heading) = if width == 2 {
        (
            [DataType::U32, DataType::I32, DataType::F32],
            "32-bit values (2 registers) starting at each address",
        )
    } else {
        (
            [DataType::U64, DataType::I64, DataType::F64],
            "64-bit values (4 registers) starting at each address",
        )
    };
    let w = if width == 2 { 11 } else { 20 };
    let _ = writeln!(out, "\n{heading}");
    let _ = writeln!(
        out,
        "{:>7}  {:<5}  {:>w$}  {:>w$}  {:>w$}",
        "address",
        "order",
        types[0].as_str(),
        types[1].as_str(),
        types[2].as_str(),
    );
    for (i, window) in words.windows(width).enumerate() {
        for (n, order) in WordOrder::ALL.into_iter().enumerate() {
            let address = if n == 0 {
                (usize::from(start) + i).to_string()
            } else {
                String::new()
            };
            let [unsigned, signed, float] = values(window, order);
            let _ = writeln!(
                out,
                "{address:>7}  {:<5}  {unsigned:>w$}  {signed:>w$}  {float:>w$}",
                order.as_str(),
            );
        }
    }
}

/// A window of 2 or 4 registers as unsigned, signed and float in `order`.
fn values(window: &[u16], order: WordOrder) -> [String; 3] {
    // Decode the bits as an unsigned integer, then reinterpret: `decode` refuses NaN and
    // infinities, which a probe must show rather than hide.
    let bits = match fieldlink_modbus::decode(
        window,
        if window.len() == 2 {
            DataType::U32
        } else {
            DataType::U64
        },
        order,
    ) {
        Ok(value) => match value {
            fieldlink_wire::Value::Int(v) => u64::try_from(v).unwrap_or(0),
            fieldlink_wire::Value::UInt(v) => v,
            _ => 0,
        },
        Err(_) => 0,
    };
    if window.len() == 2 {
        let bits = u32::try_from(bits).unwrap_or(0);
        [
            bits.to_string(),
            bits.cast_signed().to_string(),
            float(f64::from(f32::from_bits(bits)), true),
        ]
    } else {
        [
            bits.to_string(),
            bits.cast_signed().to_string(),
            float(f64::from_bits(bits), false),
        ]
    }
}

/// A float short enough for a column: plain when moderate, scientific when very large
/// or small; `single` prints an f32's shortest form.
fn float(v: f64, single: bool) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-4..1e9).contains(&magnitude) {
        if single {
            format!("{:e}", v as f32)
        } else {
            format!("{v:e}")
        }
    } else if single {
        (v as f32).to_string()
    } else {
        v.to_string()
    }
}

/// A register's two bytes as characters, high byte first; '.' for what is not
/// printable ASCII.
fn chars(w: u16) -> String {
    w.to_be_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_defaults() {
        assert_eq!(
            parse_target("tcp://10.0.0.5").ok(),
            Some(Target::Tcp("10.0.0.5:502".into()))
        );
        assert_eq!(
            parse_target("rtu-tcp://10.0.0.6:4001").ok(),
            Some(Target::Rtu(BusLink::Tcp("10.0.0.6:4001".into())))
        );
        let Ok(Target::Rtu(BusLink::Serial(line))) =
            parse_target("rtu:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=2")
        else {
            panic!("serial target");
        };
        assert_eq!(line.to_string(), "/dev/ttyUSB0 9600 8N2");
        let Ok(Target::Rtu(BusLink::Serial(line))) = parse_target("rtu:///dev/ttyS1") else {
            panic!("serial target");
        };
        assert_eq!(line.to_string(), "/dev/ttyS1 19200 8E1");
    }

    #[test]
    fn bad_targets_say_what_was_expected() {
        for bad in [
            "modbus://x",
            "rtu://ttyUSB0",
            "rtu:///dev/ttyUSB0?baud=fast",
            "rtu:///dev/ttyUSB0?parity=mark",
            "rtu:///dev/ttyUSB0?speed=9600",
            "tcp://",
        ] {
            let e = parse_target(bad).expect_err(bad).to_string();
            assert!(e.starts_with(&format!("bad target {bad:?}")), "{e}");
        }
    }

    #[test]
    fn floats_stay_narrow() {
        assert_eq!(float(123.456_f32.into(), true), "123.456");
        assert_eq!(float(1.4e-45, true), "1e-45");
        assert_eq!(float(f64::NAN, true), "NaN");
        assert_eq!(float(0.0, false), "0");
        assert_eq!(float(-9876.54321, false), "-9876.54321");
        assert_eq!(float(1e300, false), "1e300");
    }

    #[test]
    fn registers_show_as_characters() {
        assert_eq!(chars(0x4142), "AB");
        assert_eq!(chars(0x0041), ".A");
    }
}
