//! Config error cases: each names file:line:column and what was expected, all at once.

use fieldlink::config::{self, DeviceKind};
use fieldlink_collector_api::{Area, DataType, WordOrder};
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

const MINIMAL: &str = r#"
[gateway]
id = "gw-1"

[[device]]
name = "press-1"
protocol = "modbus-tcp"
address = "127.0.0.1:502"

[[device.point]]
name = "temperature"
address = 100
type = "f32"
"#;

#[test]
fn the_shipped_configs_are_valid() {
    for file in ["../config/demo.toml", "../config/agent.example.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if let Err(e) = config::load(&path) {
            panic!("{file}: {e}");
        }
    }
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let c = config::parse(MINIMAL, FILE).unwrap();
    assert_eq!(c.gateway.id.as_deref(), Some("gw-1"));
    assert_eq!(
        c.gateway.state_dir,
        std::path::PathBuf::from("/var/lib/fieldlink")
    );
    assert_eq!(c.platform.mqtt.to_string(), "mqtt://127.0.0.1:1883");
    assert_eq!(c.publish.batch_max_samples.get(), 1000);
    assert_eq!(c.publish.batch_max_delay, Duration::from_secs(1));
    assert_eq!(c.buffer.max_size, 1 << 30);
    assert_eq!(c.buffer.flush_interval, Duration::from_secs(1));
    assert_eq!(c.status.listen.to_string(), "127.0.0.1:9810");
    let DeviceKind::ModbusTcp(tcp) = &c.devices[0].kind else {
        panic!("not modbus")
    };
    assert_eq!(
        (tcp.unit, tcp.poll, tcp.limits.max_gap),
        (1, Duration::from_secs(1), 0)
    );
    let p = &tcp.points[0];
    assert_eq!(
        (p.area, p.address, p.data_type, p.order, p.scale, p.offset),
        (Area::Holding, 100, DataType::F32, WordOrder::Abcd, 1.0, 0.0)
    );
}

#[test]
fn unknown_keys_are_errors_that_list_the_expected_keys() {
    let text = MINIMAL.replace("[gateway]\n", "[gateway]\nstatedir = \"/tmp\"\n");
    assert_error(
        &text,
        "agent.toml:3:1: [gateway]: unknown key `statedir`; expected one of: id, state_dir",
    );
}

#[test]
fn unknown_sections_are_errors() {
    let text = format!("{MINIMAL}\n[publsh]\nbatch_max_samples = 5\n");
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.starts_with("agent.toml:15:2: config: unknown key `publsh`; expected one of: buffer, device, gateway, platform, publish, status")), "{errs:?}");
}

#[test]
fn wrong_types_name_what_was_expected() {
    let text = MINIMAL.replace("address = 100", "address = \"100\"");
    assert_error(
        &text,
        "agent.toml:12:11: [[device]] \"press-1\" [[device.point]]: `address` must be an integer, found a string",
    );
}

#[test]
fn a_type_that_does_not_fit_the_area_is_an_error() {
    let text = MINIMAL.replace("address = 100\n", "address = 100\narea = \"coil\"\n");
    assert_error(
        &text,
        "agent.toml:14:8: [[device]] \"press-1\" [[device.point]]: type \"f32\" does not fit area \"coil\": coils and discrete inputs are single bits; use type = \"bool\"",
    );
}

#[test]
fn values_running_past_65535_are_errors() {
    let text = MINIMAL.replace("address = 100", "address = 65535");
    assert_error(
        &text,
        "agent.toml:12:11: [[device]] \"press-1\" [[device.point]]: address 65535 with type \"f32\" (2 registers) runs past 65535",
    );
    let text = MINIMAL.replace("address = 100", "address = 70000");
    assert_error(
        &text,
        "agent.toml:12:11: [[device]] \"press-1\" [[device.point]]: `address` must be an integer from 0 to 65535, found 70000",
    );
}

#[test]
fn bad_durations_and_sizes_are_errors() {
    let text = format!(
        "{MINIMAL}\n[publish]\nbatch_max_delay = \"1 second\"\n[buffer]\nmax_size = \"lots\"\n"
    );
    let errs = errors(&text);
    assert!(errs.contains(&"agent.toml:16:19: [publish]: `batch_max_delay` must be a duration like \"500ms\", \"1s\", \"5m\" or \"1h\", found \"1 second\"".to_owned()), "{errs:?}");
    assert!(errs.contains(&"agent.toml:18:12: [buffer]: `max_size` must be a size like \"512MiB\" or \"1GiB\", found \"lots\"".to_owned()), "{errs:?}");
}

#[test]
fn duplicate_device_and_point_names_are_errors() {
    let point = "\n[[device.point]]\nname = \"temperature\"\naddress = 200\n";
    let text = format!("{MINIMAL}{point}{MINIMAL}").replacen("[gateway]\nid = \"gw-1\"\n", "", 1);
    let errs = errors(&text.replacen("[gateway]\nid = \"gw-1\"\n", "", 1));
    assert!(
        errs.iter()
            .any(|e| e.ends_with("duplicate point name \"temperature\"")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.ends_with("[[device]]: duplicate device name \"press-1\"")),
        "{errs:?}"
    );
}

#[test]
fn all_errors_are_reported_at_once_in_source_order() {
    let text = r#"
[gateway]
id = "gw/1"
colour = "red"

[publish]
batch_max_samples = 0

[[device]]
name = "press-1"
protocol = "modbus-rtu"

[[device]]
name = "press-2"
protocol = "modbus-tcp"
address = "nowhere:port"

[[device.point]]
name = "door"
area = "coil"
address = 1
type = "f32"
scale = 2
"#;
    let errs = errors(text);
    let expected = [
        "agent.toml:3:6: [gateway]: `id` must be 1 to 64 letters, digits, '-', '_' or '.' (it is an MQTT topic level), found \"gw/1\"",
        "agent.toml:4:1: [gateway]: unknown key `colour`; expected one of: id, state_dir",
        "agent.toml:7:21: [publish]: `batch_max_samples` must be an integer from 1 to 100000, found 0",
        "agent.toml:11:12: [[device]] \"press-1\": `protocol` must be one of modbus-tcp, simulator, found \"modbus-rtu\"",
        "agent.toml:16:11: [[device]] \"press-2\": `address` must be HOST:PORT like \"192.168.1.10:502\", found \"nowhere:port\"",
        "agent.toml:22:8: [[device]] \"press-2\" [[device.point]]: type \"f32\" does not fit area \"coil\": coils and discrete inputs are single bits; use type = \"bool\"",
    ];
    for e in expected {
        assert!(
            errs.iter().any(|got| got == e),
            "missing\n  {e}\namong\n  {}",
            errs.join("\n  ")
        );
    }
    let lines: Vec<usize> = errs
        .iter()
        .map(|e| e.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "not in source order: {errs:?}"
    );
}

#[test]
fn a_syntax_error_is_located() {
    let errs = errors("[gateway]\nid = \"gw-1\n");
    assert!(errs[0].starts_with("agent.toml:2:"), "{errs:?}");
    assert!(errs[0].contains("TOML syntax"), "{errs:?}");
}

#[test]
fn strings_need_a_length_and_only_strings_take_one() {
    let text = MINIMAL.replace("type = \"f32\"", "type = \"string\"");
    assert_error(
        &text,
        "agent.toml:13:8: [[device]] \"press-1\" [[device.point]]: a string point needs `length`, its size in registers (2 characters each)",
    );
    let text = MINIMAL.replace("type = \"f32\"", "type = \"u16\"\nlength = 2");
    assert_error(
        &text,
        "agent.toml:14:10: [[device]] \"press-1\" [[device.point]]: `length` applies to type = \"string\" only",
    );
}

#[test]
fn protocol_specific_keys_are_refused_elsewhere() {
    let text = r#"
[[device]]
name = "sim"
protocol = "simulator"
address = "127.0.0.1:502"

[[device.point]]
name = "a"
"#;
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("agent.toml:5:1: [[device]] \"sim\": unknown key `address`")),
        "{errs:?}"
    );
}

#[test]
fn mqtt_urls_and_tls_options_are_checked() {
    let text = MINIMAL.replace(
        "[gateway]",
        "[platform]\nmqtt = \"http://broker\"\n\n[gateway]",
    );
    assert_error(
        &text,
        "agent.toml:3:8: [platform]: `mqtt` must start with mqtt:// or mqtts:// (expected mqtt://HOST:PORT or mqtts://HOST:PORT)",
    );
    let text = MINIMAL.replace(
        "[gateway]",
        "[platform]\nmqtt = \"mqtt://broker\"\nca_file = \"/ca.pem\"\n\n[gateway]",
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e
            .ends_with("`ca_file`, `client_cert` and `client_key` need an mqtts:// URL in `mqtt`")),
        "{errs:?}"
    );
    let ok = config::parse(
        &MINIMAL.replace(
            "[gateway]",
            "[platform]\nmqtt = \"mqtts://[::1]\"\n\n[gateway]",
        ),
        FILE,
    )
    .unwrap();
    assert_eq!(ok.platform.mqtt.to_string(), "mqtts://[::1]:8883");
}
