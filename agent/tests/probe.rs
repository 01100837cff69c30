//! `fieldlink probe`: reads from real servers (the simulator's Modbus TCP device, a
//! tokio-modbus RTU-over-TCP server) and the errors an integrator meets.

use fieldlink::probe::{self, ProbeArgs, ProbeError};
use fieldlink_collector_api::{Area, DataType};
use fieldlink_simulator::modbus_device::{self, Mapping, RegisterMap, Source};
use fieldlink_wire::Value;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;

/// Whether a line of `table` starts with `tokens`, whatever the spacing.
fn has_row(table: &str, tokens: &[&str]) -> bool {
    table.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.len() >= tokens.len() && words[..tokens.len()] == *tokens
    })
}

fn args(target: String, area: Area, address: u16, count: u16) -> ProbeArgs {
    ProbeArgs {
        protocol: "modbus".to_owned(),
        target,
        unit: 1,
        area,
        address: Some(address.to_string()),
        count: Some(count),
        timeout: Duration::from_millis(500),
        rack: None,
        slot: None,
        family: None,
        meter: None,
        settings: Vec::new(),
    }
}

/// A simulated device: 123.456 as f32 (ABCD) at 0, "PUMP" at 2, coils 1 0 1.
async fn device() -> (SocketAddr, CancellationToken) {
    let constant = |v| Source::Constant(v);
    let map = RegisterMap::new()
        .with(Mapping::new(
            "f",
            Area::Holding,
            0,
            DataType::F32,
            constant(Value::Float(123.456)),
        ))
        .and_then(|m| {
            m.with(Mapping::new(
                "s",
                Area::Holding,
                2,
                DataType::String { len: 2 },
                constant(Value::Text("PUMP".into())),
            ))
        })
        .and_then(|m| {
            m.with(Mapping::new(
                "c0",
                Area::Coil,
                0,
                DataType::Bool,
                constant(Value::Bool(true)),
            ))
        })
        .and_then(|m| {
            m.with(Mapping::new(
                "c1",
                Area::Coil,
                1,
                DataType::Bool,
                constant(Value::Bool(false)),
            ))
        })
        .and_then(|m| {
            m.with(Mapping::new(
                "c2",
                Area::Coil,
                2,
                DataType::Bool,
                constant(Value::Bool(true)),
            ))
        })
        .expect("valid map");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(modbus_device::serve(listener, map, stop.clone()));
    (addr, stop)
}

#[tokio::test]
async fn probe_prints_registers_in_every_type_and_order() {
    let (addr, stop) = device().await;
    let reading = probe::read(&args(format!("tcp://{addr}"), Area::Holding, 0, 4))
        .await
        .expect("probe");
    let table = probe::render(&reading);
    println!("{table}");
    assert!(
        table.starts_with(&format!(
            "tcp://{addr} unit 1: holding registers 0..3 (4)\n"
        )),
        "{table}"
    );
    // Register 0 raw, then 123.456 where the f32 fits: ABCD from address 0.
    assert!(
        has_row(&table, &["0", "17142", "0x42F6", "\"B.\"", "17142"]),
        "{table}"
    );
    assert!(
        has_row(
            &table,
            &["0", "ABCD", "1123477881", "1123477881", "123.456"]
        ),
        "{table}"
    );
    // The same registers word-swapped read as something else entirely.
    assert!(table.contains("         CDAB"), "{table}");
    assert!(table.contains("64-bit values (4 registers)"), "{table}");
    assert!(table.contains("\"B..yPUMP\""), "{table}");
    stop.cancel();
}

#[tokio::test]
async fn probe_prints_bits_for_coils() {
    let (addr, stop) = device().await;
    let reading = probe::read(&args(format!("tcp://{addr}"), Area::Coil, 0, 3))
        .await
        .expect("probe");
    let table = probe::render(&reading);
    assert!(table.contains("coil bits 0..2 (3)"), "{table}");
    assert!(table.contains("      0  1 0 1\n"), "{table}");
    stop.cancel();
}

#[tokio::test]
async fn probe_reports_an_exception_with_a_hint() {
    let (addr, stop) = device().await;
    let error = probe::read(&args(format!("tcp://{addr}"), Area::Holding, 100, 2))
        .await
        .expect_err("unmapped");
    assert!(matches!(error, ProbeError::Exception(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the device answered exception 02 illegal data address: some address in 100..101 does not exist; try a smaller --count or another --address"
    );
    stop.cancel();
}

#[tokio::test]
async fn probe_reports_a_refused_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let error = probe::read(&args(format!("tcp://{addr}"), Area::Holding, 0, 1))
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot reach tcp://{addr}: connect failed: ")),
        "{text}"
    );
    assert!(
        text.ends_with("is the device on, and are this its address and port?"),
        "{text}"
    );
}

#[tokio::test]
async fn probe_reports_a_timeout() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut probe_args = args(format!("tcp://{addr}"), Area::Holding, 0, 1);
    probe_args.timeout = Duration::from_millis(200);
    let error = probe::read(&probe_args).await.expect_err("silent");
    assert_eq!(
        error.to_string(),
        format!("no answer from unit 1 at tcp://{addr} within 200ms; check the unit id (--unit)")
    );
    held.abort();
}

#[tokio::test]
async fn probe_rejects_a_count_beyond_one_request() {
    let error = probe::read(&args("tcp://127.0.0.1:1".into(), Area::Holding, 0, 126))
        .await
        .expect_err("too many");
    assert_eq!(
        error.to_string(),
        "--count must be 1 to 125 for holding (one request's worth)"
    );
}

/// Input registers 0..2 hold 1, 2, 3; everything else is exception 02.
struct Inputs;

impl Service for Inputs {
    type Request = tokio_modbus::SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(match req.request {
            Request::ReadInputRegisters(0, q) if q <= 3 => {
                Ok(Response::ReadInputRegisters((1..=q).collect()))
            }
            _ => Err(ExceptionCode::IllegalDataAddress),
        })
    }
}

#[tokio::test]
async fn probe_reads_rtu_framing_over_tcp() {
    use tokio_modbus::server::rtu_over_tcp::{Server, accept_tcp_connection};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let new_service = |_peer| Ok(Some(Inputs));
        let on_connected =
            |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
        let _ = Server::new(listener).serve(&on_connected, |_| {}).await;
    });
    let reading = probe::read(&args(format!("rtu-tcp://{addr}"), Area::Input, 0, 3))
        .await
        .expect("probe");
    assert_eq!(
        reading.data,
        fieldlink_modbus::Data::Registers(vec![1, 2, 3])
    );
    let table = probe::render(&reading);
    assert!(
        table.starts_with(&format!(
            "rtu-tcp://{addr} unit 1: input registers 0..2 (3)"
        )),
        "{table}"
    );
    // 0x0001_0002 in the four orders.
    for row in [
        ["0", "ABCD", "65538", "65538"],
        ["CDAB", "131073", "131073", "1.83672e-40"],
        ["BADC", "16777728", "16777728", "2.3511322e-38"],
        ["DCBA", "33554688", "33554688", "9.404242e-38"],
    ] {
        assert!(has_row(&table, &row), "{row:?}\n{table}");
    }
    server.abort();
}
