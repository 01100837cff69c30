//! `fieldlink probe mc tcp://HOST:PORT --address D100 [--count N] [--family q|iq-f]`:
//! reads `count` words from the device once and prints them as every type and word order,
//! so an integrator can check the port, the frame settings and a program's layout.

use crate::connection::Connection;
use crate::device::{Device, Family};
use crate::frame::{MAX_WORDS, Route};
use fieldlink_collector_api::plugin::{ProbeError, ProbeRequest, narrow_float, tcp_target};
use fieldlink_collector_api::{DataType, WordOrder, decode::decode};
use std::fmt::Write as _;

/// The settings `probe mc` takes.
pub const SETTINGS: &[(&str, &str)] = &[(
    "family",
    "q (default: Q, L, iQ-R, X and Y in hexadecimal) or iq-f (X and Y in octal)",
)];

/// Reads what `request` names and renders it.
pub async fn probe(request: ProbeRequest) -> Result<String, ProbeError> {
    // MC ports are set in the PLC's parameters; there is no default to assume.
    let address = tcp_target(&request.target, 0)?;
    if address.ends_with(":0") {
        return Err(ProbeError(format!(
            "bad target {:?}: expected tcp://HOST:PORT with the port the PLC opens for MC protocol",
            request.target
        )));
    }
    let family = match request.settings.get("family") {
        None => Family::Q,
        Some(name) => Family::parse(name)
            .ok_or_else(|| ProbeError(format!("--family must be {}", Family::NAMES)))?,
    };
    let device = Device::parse(request.address.as_deref().unwrap_or("D0"), family)
        .map_err(|e| ProbeError(format!("--address: {e}")))?;
    let count = request.count.unwrap_or(10);
    if count == 0 || count > MAX_WORDS {
        return Err(ProbeError(format!(
            "--count must be 1 to {MAX_WORDS} words"
        )));
    }
    let (head, first) = if device.kind.bits {
        (
            device.number - device.number % 16,
            device.number - device.number % 16,
        )
    } else {
        (device.number, device.number)
    };
    let mut connection = Connection::open(&address, Route::default(), request.timeout)
        .await
        .map_err(|e| {
            ProbeError(format!(
                "cannot reach {}: {e}; is the PLC on, and is this the port its parameters open for MC protocol (binary)?",
                request.target
            ))
        })?;
    let data = connection
        .read(device.kind.code, head, count, request.timeout)
        .await
        .map_err(|e| ProbeError(format!("reading {device} failed: {e}")))?;
    let words: Vec<u16> = data
        .chunks_exact(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .collect();
    Ok(render(&request.target, device, first, &words))
}

/// The table of a reading: each word raw, as 16-bit values and (for bit devices) its 16
/// contacts; then the 32-bit values at each word in both word orders; then the text.
pub fn render(target: &str, device: Device, first: u32, words: &[u16]) -> String {
    let mut out = String::new();
    let name = |n: u32| {
        Device {
            number: n,
            ..device
        }
        .to_string()
    };
    let step = if device.kind.bits { 16 } else { 1 };
    let _ = writeln!(
        out,
        "mc {target}: {} words from {} ({})",
        words.len(),
        name(first),
        if device.kind.bits {
            "bit device, 16 contacts a word, first contact the lowest bit"
        } else {
            "word device"
        },
    );
    if device.kind.bits {
        let word = words.first().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "\n{device} = {}",
            word >> (device.number % 16) & 1 == 1
        );
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>6} {:>6} {:<6}  bits 15..0",
        "word", "u16", "i16", "hex"
    );
    for (i, &w) in words.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<10} {w:>6} {:>6} {:<6}  {w:016b}",
            name(first + i as u32 * step),
            w.cast_signed(),
            format!("0x{w:04X}"),
        );
    }
    if words.len() >= 2 && !device.kind.bits {
        let _ = writeln!(
            out,
            "\n32-bit values (2 words) starting at each word; MELSEC stores them CDAB (low word first)"
        );
        let _ = writeln!(
            out,
            "{:<10} {:<5} {:>11} {:>11} {:>14}",
            "word", "order", "u32", "i32", "f32"
        );
        for (i, pair) in words.windows(2).enumerate() {
            for order in [WordOrder::Cdab, WordOrder::Abcd] {
                let v = match decode(pair, DataType::U32, order) {
                    Ok(fieldlink_wire::Value::Int(v)) => u32::try_from(v).unwrap_or(0),
                    _ => 0,
                };
                let at = if order == WordOrder::Cdab {
                    name(first + i as u32)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "{at:<10} {:<5} {v:>11} {:>11} {:>14}",
                    order.as_str(),
                    v.cast_signed(),
                    narrow_float(f64::from(f32::from_bits(v)), true)
                );
            }
        }
    }
    let text: String = words
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "\nas text (2 characters a word, low byte first; '.' not printable)\n  {text:?}"
    );
    out
}
