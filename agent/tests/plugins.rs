//! Plugin protocols (s7, mc, dlt645) in the agent's configuration: what is read, the errors (each
//! with file:line:column, reported by the plugin through the agent), the catalogue, and
//! the read plans `fieldlink check` prints.

use fieldlink::config::{self, DeviceConfig};

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

const PLCS: &str = r#"[gateway]
id = "gw-1"

[[device]]
name = "line-plc"
protocol = "s7"
address = "192.168.0.10"
rack = 0
slot = 1
poll = "500ms"

[[device.point]]
name = "speed"
address = "DB1.DBW0"
type = "i16"
scale = 0.1
unit = "rpm"
deadband = 0.5

[[device.point]]
name = "running"
address = "DB1.DBX2.0"

[[device.point]]
name = "fault"
address = "DB1.DBW4"
bit = 3

[[device.point]]
name = "level"
address = "VD100"
type = "f32"

[[device]]
name = "logo"
protocol = "s7"
address = "192.168.0.11:102"
local_tsap = "01.00"
remote_tsap = "02.00"

[[device.point]]
name = "pump"
address = "Q0.1"

[[device]]
name = "fx5"
protocol = "mc"
address = "192.168.3.39:5002"
family = "iq-f"

[[device.point]]
name = "count"
address = "D100"
type = "u32"

[[device.point]]
name = "start"
address = "X17"

[[device.point]]
name = "alarm_word_bit"
address = "D200"
bit = 15
"#;

#[test]
fn s7_and_mc_devices_are_read_by_their_plugins() {
    let devices = devices(PLCS);
    let protocols: Vec<&str> = devices.iter().map(|d| d.kind.protocol()).collect();
    assert_eq!(protocols, ["s7", "s7", "mc"]);
    let catalogue: Vec<(&str, &str, Option<&str>)> = devices
        .iter()
        .flat_map(|d| &d.points)
        .map(|p| (&*p.name, p.data_type, p.unit.as_deref()))
        .collect();
    assert_eq!(
        catalogue,
        [
            ("speed", "i16", Some("rpm")),
            ("running", "bool", None),
            ("fault", "bool", None),
            ("level", "f32", None),
            ("pump", "bool", None),
            ("count", "u32", None),
            ("start", "bool", None),
            ("alarm_word_bit", "bool", None),
        ]
    );
    assert_eq!(devices[0].points[0].deadband, Some(0.5));
    // A reload compares devices: the same text gives equal devices, another does not.
    assert_eq!(devices, self::devices(PLCS));
    let changed = self::devices(&PLCS.replace("slot = 1", "slot = 2"));
    assert_ne!(devices[0], changed[0]);
    assert_eq!(devices[2], changed[2]);
}

#[test]
fn check_prints_each_plugins_read_plan() {
    let config = config::parse(PLCS, FILE).expect("valid");
    let report = fieldlink::check::report(&config);
    for line in [
        "device \"line-plc\": s7 192.168.0.10:102 TSAPs 01.00 -> 01.01, poll 500ms, timeout 1s",
        "read plan: 1 requests per cycle, 2 items",
        "device \"logo\": s7 192.168.0.11:102 TSAPs 01.00 -> 02.00",
        "device \"fx5\": mc 192.168.3.39:5002 (3E binary, network 0, station 255)",
        "read plan: 3 requests per cycle",
        "start                    X17        bool",
        "count                    D100       u32 CDAB",
    ] {
        assert!(report.contains(line), "{line:?} missing in\n{report}");
    }
}

#[test]
fn plugin_errors_name_their_file_line_and_column() {
    let device = |keys: &str, point: &str| {
        format!(
            "[gateway]\nid = \"gw\"\n\n[[device]]\nname = \"p\"\n{keys}\n\n[[device.point]]\nname = \"x\"\n{point}\n"
        )
    };
    let s7 = |point: &str| device("protocol = \"s7\"\naddress = \"10.0.0.1\"", point);
    assert_error(
        &s7("address = \"DB1.DBW2.1\""),
        "agent.toml:11:11: [[device]] \"p\" [[device.point]]: `address`: only bit addresses take a .bit in \"DB1.DBW2.1\"; expected DB1.DBX0.0, DB1.DBB1, DB1.DBW2, DB1.DBD4, M10.0, MB10, MW10, MD20, I0.0, IW64, Q0.1, QW2, or V memory (VW100 = DB1.DBW100)",
    );
    assert_error(
        &s7("address = \"DB1.DBW2\"\ntype = \"f32\""),
        "agent.toml:12:8: [[device]] \"p\" [[device.point]]: type \"f32\" does not fit DB1.DBW2: a word address (W) takes u16 or i16",
    );
    assert_error(
        &s7("address = \"DB1.DBD2\"\norder = \"CDAB\""),
        "agent.toml:12:9: [[device]] \"p\" [[device.point]]: S7 CPUs store values big-endian; `order` does not apply",
    );
    assert_error(
        &s7("address = \"DB1.DBW2\"\nbit = 16"),
        "agent.toml:12:7: [[device]] \"p\" [[device.point]]: `bit` must be 0 to 15 for a u16 value, found 16",
    );
    assert_error(
        &s7("address = \"M0.0\"\ndeadband = 1"),
        "agent.toml:12:12: [[device]] \"p\" [[device.point]]: `deadband` applies to numbers only; booleans and strings publish on change",
    );
    assert_error(
        &s7("address = \"MW0\"\ncolour = \"red\""),
        "agent.toml:12:1: [[device]] \"p\" [[device.point]]: unknown key `colour`; expected one of: address, bit, deadband, deadband_percent, heartbeat, length, name, offset, order, role, scale, type, unit",
    );
    assert_error(
        &device(
            "protocol = \"s7\"\naddress = \"10.0.0.1\"\nrack = 0\nlocal_tsap = \"01.00\"\nremote_tsap = \"02.00\"",
            "address = \"MW0\"",
        ),
        "agent.toml:10:15: [[device]] \"p\": give either `rack` and `slot` or `local_tsap` and `remote_tsap`, not both",
    );
    assert_error(
        &device(
            "protocol = \"s7\"\naddress = \"10.0.0.1\"\nslot = 32",
            "address = \"MW0\"",
        ),
        "agent.toml:8:8: [[device]] \"p\": `slot` must be an integer from 0 to 31, found 32",
    );
    let mc = |point: &str| device("protocol = \"mc\"\naddress = \"10.0.0.2:5002\"", point);
    assert_error(
        &mc("address = \"M0\"\ntype = \"u16\""),
        "agent.toml:12:8: [[device]] \"p\" [[device.point]]: M0 is a bit device; its points are bool (read words from D, W or R)",
    );
    assert_error(
        &mc("address = \"XG\""),
        "agent.toml:11:11: [[device]] \"p\" [[device.point]]: `address`: X numbers are hexadecimal, found \"XG\"",
    );
    assert_error(
        &device(
            "protocol = \"mc\"\naddress = \"10.0.0.2\"",
            "address = \"D0\"",
        ),
        "agent.toml:7:11: [[device]] \"p\": `address` must be HOST:PORT, the port the PLC's parameters open for MC protocol (binary), like \"192.168.3.39:5002\", found \"10.0.0.2\"",
    );
    assert_error(
        &device(
            "protocol = \"mc\"\naddress = \"10.0.0.2:5002\"\nfamily = \"fx3\"",
            "address = \"D0\"",
        ),
        "agent.toml:8:10: [[device]] \"p\": `family` must be \"q\" (Q, L, iQ-R), \"iq-f\" (FX5), found \"fx3\"",
    );
}

const METERS: &str = r#"[gateway]
id = "gw-1"

[[device]]
name = "main-meter"
protocol = "dlt645"
serial = "/dev/ttyS2"
meter = "000012345678"
block_reads = "on"

[[device.point]]
name = "energy"
address = "00010000"

[[device.point]]
name = "ua"
address = "02010100"

[[device.point]]
name = "ub"
address = "02010200"

[[device.point]]
name = "pf"
address = "02060000"
unit = "1"

[[device]]
name = "sub-meter"
protocol = "dlt645"
serial = "/dev/ttyS2"
meter = "000012345679"
poll = "5s"

[[device.point]]
name = "energy"
address = "00010000"
scale = 0.001
unit = "MWh"
"#;

#[test]
fn dlt645_points_take_type_scale_and_unit_from_the_standards_table() {
    let devices = devices(METERS);
    let catalogue: Vec<(&str, &str, Option<&str>)> = devices
        .iter()
        .flat_map(|d| &d.points)
        .map(|p| (&*p.name, p.data_type, p.unit.as_deref()))
        .collect();
    assert_eq!(
        catalogue,
        [
            ("energy", "f64", Some("kWh")),
            ("ua", "f64", Some("V")),
            ("ub", "f64", Some("V")),
            ("pf", "f64", Some("1")),
            ("energy", "f64", Some("MWh")),
        ]
    );
    let report = fieldlink::check::report(&config::parse(METERS, FILE).expect("valid"));
    for line in [
        "device \"main-meter\": dlt645 /dev/ttyS2 2400 8E1 meter 000012345678, poll 1000ms, timeout 1000ms, block reads",
        "read plan: 3 requests per cycle",
        "0201FF00  ua, ub",
        "energy                   00010000  XXXXXX.XX [kWh]",
    ] {
        assert!(report.contains(line), "{line:?} missing in\n{report}");
    }
}

#[test]
fn meters_share_a_line_with_meters_only() {
    assert_error(
        &format!(
            "{METERS}\n[[device]]\nname = \"pump\"\nprotocol = \"modbus-rtu\"\nserial = \"/dev/ttyS2\"\nbaud = 2400\nunit = 3\n\n[[device.point]]\nname = \"v\"\naddress = 0\n"
        ),
        "agent.toml:44:10: [[device]] \"pump\": serial line /dev/ttyS2 carries dlt645 for device \"main-meter\"; one line speaks one protocol",
    );
    assert_error(
        &METERS.replace("meter = \"000012345679\"", "meter = \"000012345678\""),
        "agent.toml:31:10: [[device]] \"sub-meter\": meter 000012345678 is already used on /dev/ttyS2 by device \"main-meter\"; each device on a line needs its own address",
    );
    assert_error(
        &METERS.replace("poll = \"5s\"", "baud = 9600"),
        "agent.toml:31:10: [[device]] \"sub-meter\": serial line /dev/ttyS2 is set to 9600 8E1 here but to 2400 8E1 by device \"main-meter\"; devices on one line share its `baud`, `parity`, `data_bits` and `stop_bits`",
    );
    assert_error(
        &METERS.replace("address = \"02060000\"", "address = \"04000101\""),
        "agent.toml:25:11: [[device]] \"main-meter\" [[device.point]]: data identifier 04000101 is not in fieldlink's table of DL/T 645-2007 identifiers (energies 000x0000, voltages 0201xx00, currents 0202xx00, powers 0203xx00-0205xx00, power factors 0206xx00, 028000xx)",
    );
    assert_error(
        &METERS.replace("meter = \"000012345678\"", "meter = \"12345678\""),
        "agent.toml:8:9: [[device]] \"main-meter\": `meter`: a meter address is the 12 digits printed on the meter (its communication address), found \"12345678\"",
    );
}
