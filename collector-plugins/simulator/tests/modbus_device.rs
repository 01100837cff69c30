use fieldlink_collector_api::{Area, DataType};
use fieldlink_simulator::modbus_device::{
    DEMO_MACHINE, MapError, Mapping, RegisterMap, Source, demo_register_map, serve,
};
use fieldlink_simulator::{Signal, seed_for};
use fieldlink_wire::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_modbus::client::{Context, Reader, Writer, tcp};
use tokio_modbus::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;

const BOUND: Duration = Duration::from_secs(10);
// 2025-12-01T08:00:00Z.
const T: i64 = 1_764_576_000_000;

struct Device {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(map: RegisterMap) -> Device {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, map, shutdown.clone()));
    Device {
        addr,
        shutdown,
        task,
    }
}

async fn connect(addr: SocketAddr) -> Context {
    timeout(BOUND, tcp::connect_slave(addr, Slave(1)))
        .await
        .expect("connect in time")
        .expect("connect")
}

async fn within<T>(answer: impl Future<Output = T>) -> T {
    timeout(BOUND, answer).await.expect("answer in time")
}

fn number(signal: Signal, name: &str, t: i64) -> f64 {
    signal.value(seed_for(name), t).as_f64().expect("a number")
}

fn f32_of(w: &[u16]) -> f32 {
    f32::from_bits((u32::from(w[0]) << 16) | u32::from(w[1]))
}

#[tokio::test]
async fn demo_device_values_decode_as_the_map_says() {
    let device = start(demo_register_map().at_fixed_time(T)).await;
    let mut client = connect(device.addr).await;

    let holding = within(client.read_holding_registers(0, 5))
        .await
        .expect("transport")
        .expect("no exception");
    assert_eq!(
        f32_of(&holding[0..2]),
        number(Signal::Sine, "temperature", T) as f32
    );
    assert_eq!(
        f32_of(&holding[2..4]),
        (number(Signal::RandomWalk, "pressure", T) * 0.1) as f32
    );
    assert_eq!(
        f64::from(holding[4]),
        (number(Signal::Ramp, "spindle_speed", T) * 30.0).round()
    );

    let press = within(client.read_holding_registers(10, 4))
        .await
        .expect("transport")
        .expect("no exception");
    let u32_of = |w: &[u16]| (u32::from(w[0]) << 16) | u32::from(w[1]);
    assert_eq!(
        Value::Int(i64::from(u32_of(&press[0..2]))),
        Signal::Output.value(seed_for(DEMO_MACHINE), T)
    );
    assert_eq!(
        f64::from(u32_of(&press[2..4])),
        (number(Signal::Energy, DEMO_MACHINE, T) * 100.0).round()
    );

    let recipe = within(client.read_holding_registers(20, 4))
        .await
        .expect("transport")
        .expect("no exception");
    let bytes: Vec<u8> = recipe.iter().flat_map(|w| w.to_be_bytes()).collect();
    assert_eq!(bytes, b"AX-7\0\0\0\0");

    let current = within(client.read_input_registers(0, 1))
        .await
        .expect("transport")
        .expect("no exception");
    assert_eq!(
        f64::from(current[0] as i16),
        (number(Signal::RandomWalk, "motor_current", T) * 3.0).round()
    );

    let coils = within(client.read_coils(0, 2))
        .await
        .expect("transport")
        .expect("no exception");
    assert_eq!(
        coils[..2],
        [
            Signal::Toggle.value(seed_for("door_open"), T) == Value::Bool(true),
            Signal::Running.value(seed_for(DEMO_MACHINE), T) == Value::Bool(true),
        ]
    );

    let alarm = within(client.read_discrete_inputs(0, 1))
        .await
        .expect("transport")
        .expect("no exception");
    let expected = demo_register_map()
        .read_bits(Area::Discrete, 0, 1, T)
        .expect("mapped");
    assert_eq!(alarm[..1], expected);

    // Unit id 7 is answered too.
    let mut other_unit = timeout(BOUND, tcp::connect_slave(device.addr, Slave(7)))
        .await
        .unwrap()
        .unwrap();
    let again = timeout(BOUND, other_unit.read_holding_registers(0, 5))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(again, holding, "a frozen map answers the same every time");

    device.shutdown.cancel();
    timeout(BOUND, device.task)
        .await
        .expect("stops")
        .expect("no panic")
        .expect("no error");
}

#[tokio::test]
async fn wall_clock_values_are_in_range() {
    let device = start(demo_register_map()).await;
    let mut client = connect(device.addr).await;
    let holding = timeout(BOUND, client.read_holding_registers(0, 4))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let temperature = f32_of(&holding[0..2]);
    let pressure = f32_of(&holding[2..4]);
    assert!((20.0..=25.0).contains(&temperature), "{temperature}");
    assert!((4.0..=6.0).contains(&pressure), "{pressure}");
    device.shutdown.cancel();
    timeout(BOUND, device.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn unmapped_addresses_and_functions_answer_exceptions() {
    let device = start(demo_register_map()).await;
    let mut client = connect(device.addr).await;
    let answer = timeout(BOUND, client.read_holding_registers(5, 1))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalDataAddress));
    // Straddling the end of a mapping.
    let answer = timeout(BOUND, client.read_holding_registers(20, 5))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalDataAddress));
    let answer = timeout(BOUND, client.read_input_registers(1, 1))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalDataAddress));
    let answer = timeout(BOUND, client.read_discrete_inputs(0, 2))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalDataAddress));
    // The device is read-only.
    let answer = timeout(BOUND, client.write_single_register(0, 1))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalFunction));
    // The connection survives exceptions.
    let answer = timeout(BOUND, client.read_holding_registers(0, 2))
        .await
        .unwrap()
        .expect("transport");
    assert!(answer.is_ok());
    device.shutdown.cancel();
    timeout(BOUND, device.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_custom_map_serves_its_own_layout() {
    let map = RegisterMap::new()
        .with(Mapping::new(
            "level",
            Area::Input,
            100,
            DataType::U16,
            Source::Constant(Value::Int(42)),
        ))
        .and_then(|m| {
            m.with(Mapping {
                order: fieldlink_collector_api::WordOrder::Cdab,
                ..Mapping::new(
                    "big",
                    Area::Input,
                    101,
                    DataType::U32,
                    Source::Constant(Value::Int(0x0001_0002)),
                )
            })
        })
        .expect("valid map");
    assert!(matches!(
        map.clone().with(Mapping::new(
            "clash",
            Area::Input,
            102,
            DataType::U16,
            Source::Constant(Value::Int(1))
        )),
        Err(MapError::Overlap { .. })
    ));
    let device = start(map).await;
    let mut client = connect(device.addr).await;
    let words = timeout(BOUND, client.read_input_registers(100, 3))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(words, [42, 0x0002, 0x0001]);
    // No holding registers and no coils are mapped at all: the functions are not offered.
    let answer = timeout(BOUND, client.read_holding_registers(0, 1))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalFunction));
    let answer = timeout(BOUND, client.read_coils(0, 1))
        .await
        .unwrap()
        .expect("transport");
    assert_eq!(answer, Err(ExceptionCode::IllegalFunction));
    device.shutdown.cancel();
    timeout(BOUND, device.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_open_connections() {
    let device = start(demo_register_map()).await;
    let mut client = connect(device.addr).await;
    timeout(BOUND, client.read_holding_registers(0, 1))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    device.shutdown.cancel();
    timeout(BOUND, device.task)
        .await
        .expect("serve returns")
        .expect("no panic")
        .expect("no error");
    // The open connection is closed by the server: the next request fails in transport.
    let answer = timeout(BOUND, client.read_holding_registers(0, 1))
        .await
        .expect("fails in time");
    assert!(answer.is_err(), "{answer:?}");
    // And nothing listens any more.
    assert!(tokio::net::TcpStream::connect(device.addr).await.is_err());
}
