//! Modbus RTU, ASCII, RTU over TCP, `bit = N` and report-by-exception configuration: what
//! is read, and the errors (each with file:line:column) for what is wrong.

use fieldlink::config::{self, DeviceConfig, DeviceKind, ReportDefaults};
use fieldlink::report::ReportFilter;
use fieldlink_modbus::{BusLink, DataBits, Parity, RtuDevice, StopBits};
use fieldlink_wire::{Sample, Value};
use std::time::Duration;

const FILE: &str = "agent.toml";

fn errors(text: &str) -> Vec<String> {
    match config::parse(text, FILE) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(text: &str, expected: &str) {
    let errors = errors(text);
    assert!(
        errors.iter().any(|e| e == expected),
        "expected\n  {expected}\namong\n  {}",
        errors.join("\n  ")
    );
}

fn devices(text: &str) -> Vec<DeviceConfig> {
    match config::parse(text, FILE) {
        Ok(c) => c.devices,
        Err(e) => panic!("config was refused:\n{e}"),
    }
}

fn rtu(device: &DeviceConfig) -> &RtuDevice {
    match &device.kind {
        DeviceKind::ModbusRtu(rtu)
        | DeviceKind::ModbusAscii(rtu)
        | DeviceKind::ModbusRtuOverTcp(rtu) => rtu,
        other => panic!("not RTU: {other:?}"),
    }
}

/// Two meters on one serial line and one behind a serial device server.
const BUS: &str = r#"[gateway]
id = "gw-1"

[[device]]
name = "meter-1"
protocol = "modbus-rtu"
serial = "/dev/ttyUSB0"
baud = 9600
parity = "none"
stop_bits = 2
unit = 1
retries = 2

[[device.point]]
name = "voltage"
address = 0
type = "f32"

[[device]]
name = "meter-2"
protocol = "modbus-rtu"
serial = "/dev/ttyUSB0"
baud = 9600
parity = "none"
stop_bits = 2
unit = 2

[[device.point]]
name = "voltage"
address = 0
type = "f32"

[[device]]
name = "remote"
protocol = "modbus-rtu-over-tcp"
address = "192.168.1.30:4001"
unit = 7
timeout = "300ms"

[[device.point]]
name = "flow"
address = 10
"#;

#[test]
fn rtu_devices_on_one_line_share_its_settings() {
    let devices = devices(BUS);
    let (one, two, remote) = (rtu(&devices[0]), rtu(&devices[1]), rtu(&devices[2]));
    let BusLink::Serial(line) = &one.bus else {
        panic!("serial")
    };
    assert_eq!(line.path, "/dev/ttyUSB0");
    assert_eq!(
        (line.baud, line.parity, line.data_bits, line.stop_bits),
        (9600, Parity::None, DataBits::Eight, StopBits::Two)
    );
    assert_eq!(one.bus, two.bus, "one bus");
    assert_eq!((one.unit, one.retries, two.unit, two.retries), (1, 2, 2, 0));
    assert_eq!(remote.bus, BusLink::Tcp("192.168.1.30:4001".into()));
    assert_eq!(
        (remote.unit, remote.timeout),
        (7, Duration::from_millis(300))
    );
    assert_eq!(devices[0].kind.protocol(), "modbus-rtu");
    assert_eq!(devices[2].kind.protocol(), "modbus-rtu-over-tcp");
}

#[test]
fn serial_settings_default_to_the_modbus_specification() {
    let text = r#"
[[device]]
name = "m"
protocol = "modbus-rtu"
serial = "/dev/ttyS1"

[[device.point]]
name = "a"
address = 0
"#;
    let devices = devices(text);
    let device = rtu(&devices[0]);
    let BusLink::Serial(line) = &device.bus else {
        panic!("serial")
    };
    assert_eq!(line.to_string(), "/dev/ttyS1 19200 8E1");
    assert_eq!(
        (device.unit, device.retries, device.timeout),
        (1, 0, Duration::from_secs(1))
    );
}

#[test]
fn devices_on_one_line_that_disagree_on_its_settings_are_an_error() {
    let text = BUS.replacen(
        "baud = 9600\nparity = \"none\"\nstop_bits = 2\nunit = 2",
        "baud = 19200\nparity = \"none\"\nstop_bits = 2\nunit = 2",
        1,
    );
    assert_error(
        &text,
        "agent.toml:22:10: [[device]] \"meter-2\": serial line /dev/ttyUSB0 is set to 19200 8N2 here but to 9600 8N2 by device \"meter-1\"; devices on one line share its `baud`, `parity`, `data_bits` and `stop_bits`",
    );
}

#[test]
fn two_devices_with_one_unit_on_a_bus_are_an_error() {
    let text = BUS.replace("unit = 2", "unit = 1");
    assert_error(
        &text,
        "agent.toml:26:8: [[device]] \"meter-2\": unit 1 is already used on /dev/ttyUSB0 9600 8N2 by device \"meter-1\"; each device on a bus needs its own unit id",
    );
}

#[test]
fn rtu_units_are_1_to_247_and_tcp_units_0_to_255() {
    assert_error(
        &BUS.replace("unit = 2", "unit = 0"),
        "agent.toml:26:8: [[device]] \"meter-2\": `unit` must be an integer from 1 to 247, found 0",
    );
    assert_error(
        &BUS.replace("unit = 7", "unit = 255"),
        "agent.toml:37:8: [[device]] \"remote\": `unit` must be an integer from 1 to 247, found 255",
    );
    for unit in [0, 255] {
        let text = format!(
            "[[device]]\nname = \"gw\"\nprotocol = \"modbus-tcp\"\naddress = \"10.0.0.1\"\nunit = {unit}\n\n[[device.point]]\nname = \"a\"\naddress = 0\n"
        );
        let devices = devices(&text);
        let DeviceKind::ModbusTcp(tcp) = &devices[0].kind else {
            panic!("tcp")
        };
        assert_eq!(tcp.unit, unit);
    }
}

#[test]
fn bad_serial_settings_name_what_is_allowed() {
    let text = BUS
        .replacen("baud = 9600", "baud = 9601", 1)
        .replacen("parity = \"none\"", "parity = \"mark\"", 1)
        .replacen("stop_bits = 2", "stop_bits = 3\ndata_bits = 6", 1);
    let errs = errors(&text);
    for expected in [
        "agent.toml:8:8: [[device]] \"meter-1\": `baud` must be one of 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600, 1000000, found 9601",
        "agent.toml:9:10: [[device]] \"meter-1\": `parity` must be one of none, even, odd, found \"mark\"",
        "agent.toml:10:13: [[device]] \"meter-1\": `stop_bits` must be an integer from 1 to 2, found 3",
        "agent.toml:11:13: [[device]] \"meter-1\": `data_bits` must be an integer from 7 to 8, found 6",
    ] {
        assert!(
            errs.iter().any(|e| e == expected),
            "{expected}\namong\n{errs:#?}"
        );
    }
}

#[test]
fn rtu_devices_need_their_link_and_refuse_the_other_kind() {
    let text = BUS.replacen("serial = \"/dev/ttyUSB0\"\n", "", 1);
    assert_error(
        &text,
        "agent.toml:4:1: [[device]] \"meter-1\": missing key `serial` (the serial port, e.g. \"/dev/ttyUSB0\")",
    );
    let text = BUS.replacen(
        "address = \"192.168.1.30:4001\"",
        "serial = \"/dev/ttyUSB1\"",
        1,
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("\"remote\": unknown key `serial`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("\"remote\": missing key `address`")),
        "{errs:#?}"
    );
}

#[test]
fn retries_are_0_to_10() {
    assert_error(
        &BUS.replace("retries = 2", "retries = 11"),
        "agent.toml:12:11: [[device]] \"meter-1\": `retries` must be an integer from 0 to 10, found 11",
    );
}

#[test]
fn request_limits_are_read_for_every_modbus_protocol() {
    let text = BUS.replace(
        "unit = 7\n",
        "unit = 7\nmax_registers_per_request = 16\nmax_bits_per_request = 64\nmax_gap = 3\n",
    );
    let devices = devices(&text);
    let limits = rtu(&devices[2]).limits;
    assert_eq!(
        (limits.max_registers, limits.max_bits, limits.max_gap),
        (16, 64, 3)
    );
    assert_error(
        &BUS.replace("unit = 7\n", "unit = 7\nmax_registers_per_request = 126\n"),
        "agent.toml:38:29: [[device]] \"remote\": `max_registers_per_request` must be an integer from 1 to 125, found 126",
    );
}

const REPORTING: &str = r#"
[[device]]
name = "press"
protocol = "modbus-tcp"
address = "10.0.0.1"
deadband = 0.5
deadband_percent = 2.0
heartbeat = "1m"

[[device.point]]
name = "inherits"
address = 0

[[device.point]]
name = "own_percent"
address = 1
deadband_percent = 10.0

[[device.point]]
name = "own_heartbeat"
address = 2
heartbeat = "10s"

[[device.point]]
name = "door"
area = "coil"
address = 0
"#;

#[test]
fn device_report_defaults_are_read_and_points_keep_their_own() {
    let devices = devices(REPORTING);
    let device = &devices[0];
    assert_eq!(
        device.report,
        ReportDefaults {
            deadband: Some(0.5),
            deadband_percent: Some(2.0),
            heartbeat: Some(Duration::from_secs(60)),
        }
    );
    let own = &device.points[1];
    assert_eq!((own.deadband, own.deadband_percent), (None, Some(10.0)));
    assert_eq!(device.points[2].heartbeat, Some(Duration::from_secs(10)));
}

fn sample(point: &str, ts: i64, value: Value) -> Sample {
    Sample::good("press".into(), point.into(), ts, value)
}

fn kept(filter: &mut ReportFilter, samples: Vec<Sample>) -> Vec<(String, i64)> {
    let mut samples = samples;
    filter.retain(&mut samples);
    samples
        .iter()
        .map(|s| (s.point.to_string(), s.ts))
        .collect()
}

#[test]
fn points_without_their_own_rules_follow_the_device() {
    let mut filter = ReportFilter::new(&devices(REPORTING));
    let got = kept(
        &mut filter,
        vec![
            // The device's deadbands: a change must exceed 0.5 and 2% (2 from 100).
            sample("inherits", 0, Value::Float(100.0)),
            sample("inherits", 1, Value::Float(101.5)),
            sample("inherits", 2, Value::Float(102.5)),
            // Its own 10% replaces both of the device's deadbands.
            sample("own_percent", 0, Value::Float(100.0)),
            sample("own_percent", 1, Value::Float(109.0)),
            sample("own_percent", 2, Value::Float(111.0)),
            // A boolean under a device with report defaults publishes on change.
            sample("door", 0, Value::Bool(false)),
            sample("door", 1, Value::Bool(false)),
            sample("door", 2, Value::Bool(true)),
            // Heartbeats: the device's minute, or the point's own ten seconds.
            sample("inherits", 60_002, Value::Float(102.5)),
            sample("own_heartbeat", 0, Value::Int(1)),
            sample("own_heartbeat", 5_000, Value::Int(1)),
            sample("own_heartbeat", 10_000, Value::Int(1)),
        ],
    );
    let expected: Vec<(String, i64)> = [
        ("inherits", 0),
        ("inherits", 2),
        ("own_percent", 0),
        ("own_percent", 2),
        ("door", 0),
        ("door", 2),
        ("inherits", 60_002),
        ("own_heartbeat", 0),
        ("own_heartbeat", 10_000),
    ]
    .iter()
    .map(|(p, ts)| ((*p).to_owned(), *ts))
    .collect();
    assert_eq!(got, expected);
}

#[test]
fn report_settings_are_checked() {
    let point = |extra: &str| {
        REPORTING.replacen(
            "name = \"inherits\"\naddress = 0\n",
            &format!("name = \"inherits\"\naddress = 0\n{extra}\n"),
            1,
        )
    };
    assert_error(
        &point("deadband_percent = 150"),
        "agent.toml:13:20: [[device]] \"press\" [[device.point]]: `deadband_percent` must be from 0 to 100 (percent of the last published value)",
    );
    let text = REPORTING.replacen(
        "area = \"coil\"\naddress = 0\n",
        "area = \"coil\"\naddress = 0\ndeadband_percent = 1\n",
        1,
    );
    assert_error(
        &text,
        "agent.toml:28:20: [[device]] \"press\" [[device.point]]: `deadband_percent` applies to numbers only; booleans and strings publish on change",
    );
    assert_error(
        &REPORTING.replace("deadband = 0.5", "deadband = -1"),
        "agent.toml:6:12: [[device]] \"press\": `deadband` must not be negative",
    );
    assert_error(
        &REPORTING.replace("heartbeat = \"1m\"", "heartbeat = \"often\""),
        "agent.toml:8:13: [[device]] \"press\": `heartbeat` must be a duration like \"500ms\", \"1s\", \"5m\" or \"1h\", found \"often\"",
    );
}

const ASCII_AND_BITS: &str = r#"[gateway]
id = "gw-1"

[[device]]
name = "old-meter"
protocol = "modbus-ascii"
serial = "/dev/ttyS1"
unit = 3

[[device.point]]
name = "alarm"
address = 4
bit = 3

[[device.point]]
name = "status_high"
address = 5
type = "u32"
order = "CDAB"
bit = 31
"#;

#[test]
fn modbus_ascii_is_a_serial_bus_with_7e1_by_default_and_bits_are_bools() {
    let devices = devices(ASCII_AND_BITS);
    let device = &devices[0];
    assert_eq!(device.kind.protocol(), "modbus-ascii");
    let ascii = rtu(device);
    let BusLink::Ascii(line) = &ascii.bus else {
        panic!("not an ASCII line: {:?}", ascii.bus);
    };
    assert_eq!(line.settings(), "19200 7E1");
    assert_eq!(ascii.points[0].bit, Some(3));
    assert_eq!(ascii.points[1].bit, Some(31));
    assert_eq!(ascii.points[1].data_type.as_str(), "u32");
    assert!(
        device.points.iter().all(|p| p.data_type == "bool"),
        "the catalogue says bool: {:?}",
        device.points
    );
}

#[test]
fn bits_need_a_16_or_32_bit_register_and_take_no_scaling_or_deadband() {
    let point = |keys: &str| {
        format!(
            "[gateway]\nid = \"gw\"\n\n[[device]]\nname = \"d\"\nprotocol = \"modbus-tcp\"\naddress = \"10.0.0.1\"\n\n[[device.point]]\nname = \"p\"\naddress = 0\n{keys}\n"
        )
    };
    assert_error(
        &point("bit = 16"),
        "agent.toml:12:7: [[device]] \"d\" [[device.point]]: `bit` must be 0 to 15 for a u16 register, found 16",
    );
    assert_error(
        &point("type = \"f32\"\nbit = 1"),
        "agent.toml:12:8: [[device]] \"d\" [[device.point]]: `bit` needs type = \"u16\" or \"u32\" (the register holding the bit), not \"f32\"",
    );
    assert_error(
        &point("bit = 1\nscale = 0.1"),
        "agent.toml:13:9: [[device]] \"d\" [[device.point]]: `scale` does not apply to a `bit` point, which is a bool",
    );
    assert_error(
        &point("bit = 1\ndeadband = 1"),
        "agent.toml:13:12: [[device]] \"d\" [[device.point]]: `deadband` applies to numbers only; booleans and strings publish on change",
    );
    assert_error(
        &point("area = \"coil\"\ntype = \"u16\"\nbit = 1"),
        "agent.toml:14:7: [[device]] \"d\" [[device.point]]: `bit` picks a bit of a register; a coil is a bit already",
    );
    assert_error(
        &point("bit = 32"),
        "agent.toml:12:7: [[device]] \"d\" [[device.point]]: `bit` must be an integer from 0 to 31, found 32",
    );
}

#[test]
fn one_serial_line_speaks_one_protocol() {
    let text = format!(
        "{ASCII_AND_BITS}\n[[device]]\nname = \"rtu-meter\"\nprotocol = \"modbus-rtu\"\nserial = \"/dev/ttyS1\"\nunit = 4\n\n[[device.point]]\nname = \"v\"\naddress = 0\n"
    );
    assert_error(
        &text,
        "agent.toml:25:10: [[device]] \"rtu-meter\": serial line /dev/ttyS1 carries modbus-ascii for device \"old-meter\"; one line speaks one protocol",
    );
}
