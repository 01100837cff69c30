//! Modbus ASCII on a serial line: the collector against an ASCII slave on the other end of
//! a pseudo-terminal pair. The slave is written here from the specification's frame
//! layout (`:`, hexadecimal pairs, LRC, CR LF), independently of the crate's framing code;
//! pymodbus's ASCII framer is the third-party peer in CI (tests/e2e).

use crate::rtu::PtyPair;
use crate::support::*;
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::{BusLink, DataBits, Parity, SerialLine, StopBits};
use fieldlink_wire::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Holding registers 0..4 of unit 7: 0x8001, 123.456f32 low word first, 42.
const HOLDING: [u16; 4] = [0x8001, 0xE979, 0x42F6, 42];

/// How the slave misbehaves.
#[derive(Default)]
struct Faults {
    /// Answer with a wrong LRC.
    bad_lrc: AtomicBool,
    /// Requests answered.
    requests: AtomicUsize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The answer to one request frame's bytes (address, PDU): holding registers of unit 7,
/// exception 02 outside them, nothing for other units.
fn answer(request: &[u8]) -> Option<Vec<u8>> {
    let [unit, function, a0, a1, q0, q1] = *request else {
        return None;
    };
    if unit != 7 {
        return None;
    }
    let (address, quantity) = (
        usize::from(u16::from_be_bytes([a0, a1])),
        usize::from(u16::from_be_bytes([q0, q1])),
    );
    if function != 3 || address + quantity > HOLDING.len() {
        return Some(vec![unit, function | 0x80, 2]);
    }
    let mut pdu = vec![unit, function, u8::try_from(2 * quantity).ok()?];
    for word in &HOLDING[address..address + quantity] {
        pdu.extend_from_slice(&word.to_be_bytes());
    }
    Some(pdu)
}

/// Serves unit 7 over ASCII on the pty end at `path` until the task is aborted.
fn serve(path: String, faults: Arc<Faults>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let builder = tokio_serial::new(&path, 9600);
        let Ok(mut port) = tokio_serial::SerialStream::open(&builder) else {
            return;
        };
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while port.read_exact(&mut byte).await.is_ok() {
            if byte[0] != b'\n' {
                line.push(byte[0]);
                continue;
            }
            let text = String::from_utf8_lossy(&line).trim().to_owned();
            line.clear();
            let Some(hex_digits) = text.strip_prefix(':') else {
                continue;
            };
            let bytes: Option<Vec<u8>> = (0..hex_digits.len() / 2)
                .map(|i| u8::from_str_radix(hex_digits.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            let Some(mut bytes) = bytes else { continue };
            let sum = bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b));
            if sum != 0 {
                continue; // a bad LRC: a real slave stays silent
            }
            bytes.pop();
            let Some(reply) = answer(&bytes) else {
                continue;
            };
            faults.requests.fetch_add(1, Ordering::SeqCst);
            let mut lrc = reply
                .iter()
                .fold(0u8, |s, b| s.wrapping_add(*b))
                .wrapping_neg();
            if faults.bad_lrc.load(Ordering::SeqCst) {
                lrc = lrc.wrapping_add(1);
            }
            let frame = format!(":{}{}\r\n", hex(&reply), hex(&[lrc]));
            if port.write_all(frame.as_bytes()).await.is_err() {
                return;
            }
        }
    })
}

fn ascii_line(path: String) -> BusLink {
    BusLink::Ascii(SerialLine {
        path,
        baud: 9600,
        parity: Parity::Even,
        data_bits: DataBits::Seven,
        stop_bits: StopBits::One,
    })
}

fn points() -> Vec<fieldlink_modbus::PointSpec> {
    let mut bit0 = holding_u16("bit0", 0);
    bit0.bit = Some(0);
    let mut bit1 = holding_u16("bit1", 0);
    bit1.bit = Some(1);
    let mut bit15 = holding_u16("bit15", 0);
    bit15.bit = Some(15);
    vec![
        bit0,
        bit1,
        bit15,
        point("f32", Area::Holding, 1, DataType::F32, WordOrder::Cdab),
        holding_u16("answer", 3),
        holding_u16("missing", 10),
    ]
}

#[tokio::test]
async fn modbus_ascii_reads_registers_bits_and_exceptions_over_a_pty() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    bounded(async {
        let faults = Arc::new(Faults::default());
        let slave = serve(pty.path("slave"), Arc::clone(&faults));
        let mut rtu = rtu_device("ascii-meter", ascii_line(pty.path("master")), 7, points());
        rtu.poll = Duration::from_millis(150);
        rtu.timeout = Duration::from_millis(300);
        let mut collecting = Collecting::start_rtu(rtu, 64);
        for _ in 0..3 {
            let batch = collecting.batch().await;
            let samples = by_point(&batch);
            assert_eq!(samples["bit0"].value, Value::Bool(true), "{batch:?}");
            assert_eq!(samples["bit1"].value, Value::Bool(false));
            assert_eq!(samples["bit15"].value, Value::Bool(true));
            assert_eq!(samples["f32"].value, Value::Float(123.456));
            assert_eq!(samples["answer"].value, Value::Int(42));
            assert_eq!(
                error(samples["missing"]),
                Some("exception 02 illegal data address")
            );
        }
        // A wrong LRC spoils the answer: bad samples that say so, never a panic.
        faults.bad_lrc.store(true, Ordering::SeqCst);
        let batch = collecting
            .batch_where(|b| {
                b.iter()
                    .any(|s| error(s).is_some_and(|e| e.contains("LRC")))
            })
            .await;
        let samples = by_point(&batch);
        assert!(
            error(samples["answer"]).is_some_and(|e| e.starts_with("malformed answer")),
            "{batch:?}"
        );
        // And the line recovers once the answers are right again.
        faults.bad_lrc.store(false, Ordering::SeqCst);
        let batch = collecting
            .batch_where(|b| {
                b.iter()
                    .all(|s| s.point.as_ref() == "missing" || error(s).is_none())
            })
            .await;
        assert_eq!(by_point(&batch)["answer"].value, Value::Int(42));
        assert!(faults.requests.load(Ordering::SeqCst) >= 6);
        collecting.stop().await;
        slave.abort();
        let _ = slave.await;
    })
    .await;
}
