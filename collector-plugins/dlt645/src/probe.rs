//! `fieldlink probe dlt645 serial:///dev/ttyUSB0?baud=2400 [--meter 12 digits]
//! [--address 00010000]`: reads one data identifier once and prints the answering meter's
//! address, the raw bytes and the value. Without `--meter` the read goes to the wildcard
//! address, which the one meter on a line answers with its own address.

use crate::frame::{self, MeterAddress};
use crate::ident::{self, DataId};
use crate::line::{MeterError, MeterRead, Port, exchange};
use fieldlink_collector_api::plugin::{ProbeError, ProbeRequest};
use fieldlink_serial::{DataBits, Parity, SerialLine, StopBits};
use std::fmt::Write as _;

/// The settings `probe dlt645` takes.
pub const SETTINGS: &[(&str, &str)] = &[(
    "meter",
    "the meter's 12-digit address (default the wildcard AAAAAAAAAAAA)",
)];

/// Parses `serial:///dev/ttyUSB0?baud=2400&parity=even` (2400 8E1 by default).
pub fn parse_target(text: &str) -> Result<SerialLine, ProbeError> {
    let usage = |why: &str| {
        ProbeError(format!(
            "bad target {text:?}: {why}; expected serial:///dev/ttyUSB0?baud=2400&parity=even"
        ))
    };
    let rest = text
        .strip_prefix("serial://")
        .ok_or_else(|| usage("unknown scheme"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(usage("the port's path must be absolute"));
    }
    let mut line = SerialLine {
        path: path.to_owned(),
        baud: 2400,
        parity: Parity::Even,
        data_bits: DataBits::Eight,
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
                    .ok_or_else(|| usage("baud must be a number like 2400"))?;
            }
            "parity" => {
                line.parity = value
                    .parse()
                    .map_err(|()| usage("parity must be none, even or odd"))?;
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
                    "unknown setting {other:?} (baud, parity, stop_bits)"
                )));
            }
        }
    }
    Ok(line)
}

/// Reads what `request` names and renders it.
pub async fn probe(request: ProbeRequest) -> Result<String, ProbeError> {
    let line = parse_target(&request.target)?;
    let meter = match request.settings.get("meter") {
        None => MeterAddress::BROADCAST,
        Some(text) => text
            .parse()
            .map_err(|e| ProbeError(format!("--meter: {e}")))?,
    };
    let id: DataId = request
        .address
        .as_deref()
        .unwrap_or("00010000")
        .parse()
        .map_err(|e| ProbeError(format!("--address: {e}")))?;
    let stream = line.open().map_err(|e| {
        ProbeError(format!(
            "cannot open {}: {e}; does the port exist, and may this user open it (group dialout)?",
            line.path
        ))
    })?;
    let mut port = Port::new(stream);
    let read = MeterRead { meter, id };
    let answer = tokio::time::timeout(request.timeout, exchange(&mut port, &read))
        .await
        .unwrap_or(Err(MeterError::Timeout))
        .map_err(|e| match e {
            MeterError::Timeout => ProbeError(format!(
                "no answer from meter {meter} on {line} within {:?}; check the meter address (--meter), the baud rate and parity (meters ship at 2400 8E1, some at 1200 or 9600), and the RS-485 wiring (A and B swapped?)",
                request.timeout
            )),
            other => ProbeError(format!("reading {id} failed: {other}")),
        })?;
    let mut out = String::new();
    let _ = writeln!(out, "dlt645 {line}: meter {} answered {id}", answer.meter);
    let hex: Vec<String> = answer.value.iter().map(|b| format!("{b:02X}")).collect();
    let _ = writeln!(
        out,
        "  raw value bytes (least significant first): {}",
        hex.join(" ")
    );
    match ident::lookup(id) {
        Some(format) => {
            let value = frame::bcd_value(&answer.value, format.decimals, format.signed);
            match (answer.value.len() == usize::from(format.bytes), value) {
                (true, Ok(v)) => {
                    let _ = writeln!(
                        out,
                        "  {} = {} {}",
                        format.name,
                        v.as_f64().map_or(String::from("?"), |f| f.to_string()),
                        format.unit
                    );
                }
                (_, Err(e)) => {
                    let _ = writeln!(out, "  {}: {e}", format.name);
                }
                (false, _) => {
                    let _ = writeln!(
                        out,
                        "  {}: {} bytes, the table says {}",
                        format.name,
                        answer.value.len(),
                        format.bytes
                    );
                }
            }
        }
        None => {
            let _ = writeln!(
                out,
                "  not in fieldlink's table; as BCD digits: {}",
                answer
                    .value
                    .iter()
                    .rev()
                    .map(|b| format!("{b:02X}"))
                    .collect::<String>()
            );
        }
    }
    Ok(out)
}
