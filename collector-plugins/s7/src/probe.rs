//! `fieldlink probe s7 tcp://HOST[:102] --address DB1.DBW0 [--count N] [--rack R --slot S]`:
//! connects as the collector would, reads `count` bytes from the address's byte, and
//! prints them raw and as every S7 type, so an integrator can check rack, slot, PUT/GET
//! access and a data block's layout without the PLC's project.

use crate::address::{Address, Width};
use crate::config::PORT;
use crate::connection::{
    Connection, ConnectionType, DEFAULT_PDU_SIZE, S7Error, Tsaps, format_tsap, parse_tsap,
};
use crate::frame::ItemSpec;
use crate::plan::max_item_bytes;
use fieldlink_collector_api::plugin::{ProbeError, ProbeRequest, narrow_float, tcp_target};
use std::fmt::Write as _;

/// The settings `probe s7` takes.
pub const SETTINGS: &[(&str, &str)] = &[
    ("rack", "the CPU's rack (default 0)"),
    ("slot", "the CPU's slot (default 1)"),
    ("connection", "pg (default), op or basic"),
    (
        "local_tsap",
        "instead of rack and slot, with remote_tsap (LOGO!: 01.00)",
    ),
    (
        "remote_tsap",
        "instead of rack and slot, with local_tsap (LOGO!: 02.00)",
    ),
];

fn usage(text: String) -> ProbeError {
    ProbeError(text)
}

/// The TSAPs the request's settings name.
fn tsaps(request: &ProbeRequest) -> Result<Tsaps, ProbeError> {
    let setting = |key: &str| request.settings.get(key).map(String::as_str);
    let number = |key: &str, max: u8, default: u8| match setting(key) {
        None => Ok(default),
        Some(text) => text
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| usage(format!("--{key} must be 0 to {max}, found {text:?}"))),
    };
    if let (Some(local), Some(remote)) = (setting("local_tsap"), setting("remote_tsap")) {
        let parse = |text: &str| {
            parse_tsap(text)
                .ok_or_else(|| usage(format!("a TSAP is written like 02.00, found {text:?}")))
        };
        return Ok(Tsaps {
            local: parse(local)?,
            remote: parse(remote)?,
        });
    }
    let kind = match setting("connection") {
        None => ConnectionType::Pg,
        Some(name) => ConnectionType::parse(name).ok_or_else(|| {
            usage(format!(
                "--connection must be one of {}",
                ConnectionType::NAMES
            ))
        })?,
    };
    Ok(Tsaps::rack_slot(
        number("rack", 7, 0)?,
        number("slot", 31, 1)?,
        kind,
    ))
}

/// Reads what `request` names and renders it.
pub async fn probe(request: ProbeRequest) -> Result<String, ProbeError> {
    let address = tcp_target(&request.target, PORT)?;
    let tsaps = tsaps(&request)?;
    let at: Address = request
        .address
        .as_deref()
        .unwrap_or("DB1.DBB0")
        .parse()
        .map_err(|e| usage(format!("--address: {e}")))?;
    let mut connection = Connection::open(&address, tsaps, DEFAULT_PDU_SIZE, request.timeout)
        .await
        .map_err(|e| {
            let hint = match e {
                S7Error::Refused(_) => "",
                _ => "; is the PLC on, and is this its address? (port 102)",
            };
            ProbeError(format!("cannot reach {}: {e}{hint}", request.target))
        })?;
    let limit = max_item_bytes(connection.pdu_size());
    let count = u32::from(request.count.unwrap_or(16)).max(at.width.bytes());
    if count > limit {
        return Err(usage(format!(
            "--count must be at most {limit} bytes (one item in the PDU of {} bytes the PLC granted)",
            connection.pdu_size()
        )));
    }
    let spec = ItemSpec {
        area_code: at.area.code(),
        db: at.area.db(),
        start: at.byte,
        len: u16::try_from(count).unwrap_or(u16::MAX),
    };
    let mut bytes = Err(String::new());
    connection
        .read(&[spec], request.timeout, |_, item| {
            bytes = item.map(<[u8]>::to_vec).map_err(|e| e.to_string());
        })
        .await
        .map_err(|e| ProbeError(format!("reading {at} failed: {e}")))?;
    let bytes = bytes.map_err(|e| {
        ProbeError(format!(
            "the PLC refused {at} ({count} bytes): {e}; try a smaller --count or another --address"
        ))
    })?;
    Ok(render(
        &request.target,
        tsaps,
        connection.pdu_size(),
        at,
        &bytes,
    ))
}

/// The table of a reading: every byte with its bits, then the words, double words and
/// 64-bit values starting at each byte, big-endian as S7 stores them, then the bytes as
/// text.
pub fn render(target: &str, tsaps: Tsaps, pdu: u16, at: Address, bytes: &[u8]) -> String {
    let mut out = String::new();
    let area = at.area;
    let _ = writeln!(
        out,
        "s7 {target} (TSAPs {} -> {}, PDU {pdu}): {area} bytes {}..{} ({} bytes)",
        format_tsap(tsaps.local),
        format_tsap(tsaps.remote),
        at.byte,
        at.byte + bytes.len() as u32 - 1,
        bytes.len()
    );
    if let Width::Bit(bit) = at.width {
        let value = bytes.first().is_some_and(|b| b >> bit & 1 == 1);
        let _ = writeln!(out, "\n{at} = {value}");
    }
    let name = |letter: char, byte: u32| match area {
        crate::address::Area::Db(n) => format!("DB{n}.DB{letter}{byte}"),
        other => format!("{other}{letter}{byte}"),
    };
    let _ = writeln!(out, "\nbytes (bits 7..0)");
    let _ = writeln!(
        out,
        "{:<14} {:>4} {:<4} {:>4}  bits",
        "address", "u8", "hex", "i8"
    );
    for (i, &b) in bytes.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<14} {b:>4} {:<4} {:>4}  {b:08b}",
            name('B', at.byte + i as u32),
            format!("0x{b:02X}"),
            b.cast_signed(),
        );
    }
    if bytes.len() >= 2 {
        let _ = writeln!(out, "\nwords (big-endian)");
        let _ = writeln!(out, "{:<14} {:>6} {:>6}  hex", "address", "u16", "i16");
        for (i, w) in bytes.windows(2).enumerate() {
            let v = u16::from_be_bytes([w[0], w[1]]);
            let _ = writeln!(
                out,
                "{:<14} {v:>6} {:>6}  0x{v:04X}",
                name('W', at.byte + i as u32),
                v.cast_signed()
            );
        }
    }
    if bytes.len() >= 4 {
        let _ = writeln!(out, "\ndouble words (big-endian)");
        let _ = writeln!(
            out,
            "{:<14} {:>11} {:>11} {:>14}",
            "address", "u32", "i32", "f32 (REAL)"
        );
        for (i, w) in bytes.windows(4).enumerate() {
            let v = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
            let _ = writeln!(
                out,
                "{:<14} {v:>11} {:>11} {:>14}",
                name('D', at.byte + i as u32),
                v.cast_signed(),
                narrow_float(f64::from(f32::from_bits(v)), true)
            );
        }
    }
    if bytes.len() >= 8 {
        let _ = writeln!(out, "\n64-bit values (big-endian) starting at each byte");
        let _ = writeln!(
            out,
            "{:<14} {:>20} {:>20} {:>22}",
            "address", "u64", "i64", "f64 (LREAL)"
        );
        for (i, w) in bytes.windows(8).enumerate() {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(w);
            let v = u64::from_be_bytes(raw);
            let _ = writeln!(
                out,
                "{:<14} {v:>20} {:>20} {:>22}",
                name('B', at.byte + i as u32),
                v.cast_signed(),
                narrow_float(f64::from_bits(v), false)
            );
        }
    }
    let text: String = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "\nas text ('.' not printable; a STRING starts with its maximum and current length)\n  {text:?}"
    );
    out
}
