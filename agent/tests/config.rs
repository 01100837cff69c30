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
    assert_eq!(c.status.refresh, Duration::from_secs(60));
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

/// The contract promises a status at least every 60 s: `[status] refresh` may shorten
/// that, never lengthen it.
#[test]
fn the_status_refresh_is_from_1s_to_60s() {
    for (refresh, expected) in [("1s", 1), ("15s", 15), ("1m", 60)] {
        let text = format!("{MINIMAL}\n[status]\nrefresh = \"{refresh}\"\n");
        let c = config::parse(&text, FILE).unwrap();
        assert_eq!(c.status.refresh, Duration::from_secs(expected), "{refresh}");
    }
    for refresh in ["500ms", "61s", "5m"] {
        let text = format!("{MINIMAL}\n[status]\nrefresh = \"{refresh}\"\n");
        assert_error(
            &text,
            "agent.toml:16:11: [status]: `refresh` must be from \"1s\" to \"60s\" (receivers count on a status at least every 60 s)",
        );
    }
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
protocol = "profinet"

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
        "agent.toml:11:12: [[device]] \"press-1\": `protocol` must be one of modbus-tcp, modbus-rtu, modbus-ascii, modbus-rtu-over-tcp, opcua, simulator, s7, mc, dlt645, found \"profinet\"",
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

/// Regression: toml reports a key nested past its depth limit without a position, and the
/// error named `1:1`; it names the nesting bomb's own line (here line 5, indented by two).
#[test]
fn a_nesting_bomb_is_located_at_its_own_line() {
    let deep = |key: &str| vec![key; 100_000].join(".");
    for bomb in [
        format!("[{}]", deep("a")),
        format!("[[{}]]", deep("t")),
        format!("{} = 1", deep("k")),
    ] {
        let text = format!("[gateway]\nid = \"gw-1\"\n\n# below: the bomb\n  {bomb}\nx = 2\n");
        let errs = errors(&text);
        assert!(
            errs.iter()
                .all(|e| e.starts_with("agent.toml:5:3: TOML syntax")),
            "{:?}",
            errs.iter()
                .map(|e| e.chars().take(120).collect::<String>())
                .collect::<Vec<_>>()
        );
    }
    // Two of them: each at its own line.
    let text = format!("x = 1\n[{}]\ny = 2\n{} = 3\n", deep("a"), deep("k"));
    let lines: Vec<String> = errors(&text)
        .iter()
        .map(|e| e.chars().take(30).collect())
        .collect();
    assert_eq!(
        lines,
        [
            "agent.toml:2:1: TOML syntax: r",
            "agent.toml:4:1: TOML syntax: r"
        ]
    );
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

#[test]
fn compression_is_decided_at_start_unless_set_and_defaults_to_level_3() {
    use fieldlink_wire::Compression;
    let compression = |publish: &str| {
        let text = format!("{MINIMAL}\n[publish]\n{publish}\n");
        config::parse(&text, FILE).unwrap().publish.compression
    };
    assert_eq!(compression(""), None);
    assert_eq!(
        compression("compression = \"none\""),
        Some(Compression::None)
    );
    assert_eq!(
        compression("compression = \"zstd\""),
        Some(Compression::Zstd { level: 3 })
    );
    assert_eq!(
        compression("compression = \"zstd\"\ncompression_level = 19"),
        Some(Compression::Zstd { level: 19 })
    );
    assert_eq!(
        compression("compression_level = 1\ncompression = \"zstd\""),
        Some(Compression::Zstd { level: 1 })
    );
    assert_eq!(
        compression("compression = \"packed\""),
        Some(Compression::Packed { level: 3 })
    );
    assert_eq!(
        compression("compression = \"packed\"\ncompression_level = 9"),
        Some(Compression::Packed { level: 9 })
    );
}

#[test]
fn bad_compression_settings_are_errors() {
    let publish = |lines: &str| errors(&format!("{MINIMAL}\n[publish]\n{lines}\n"));
    let errs = publish("compression = \"gzip\"");
    assert!(errs.contains(&"agent.toml:16:15: [publish]: `compression` must be one of \"none\", \"zstd\", \"packed\", found \"gzip\"".to_owned()), "{errs:?}");
    for level in ["0", "20"] {
        let errs = publish(&format!(
            "compression = \"zstd\"\ncompression_level = {level}"
        ));
        let expected = format!(
            "agent.toml:17:21: [publish]: `compression_level` must be an integer from 1 to 19, found {level}"
        );
        assert!(errs.contains(&expected), "{errs:?}");
    }
    let errs = publish("compression_level = \"high\"\ncompression = \"zstd\"");
    assert!(
        errs.contains(
            &"agent.toml:16:21: [publish]: `compression_level` must be an integer, found a string"
                .to_owned()
        ),
        "{errs:?}"
    );
    // A level without zstd would silently do nothing (or, unset, only when enrolled).
    for lines in [
        "compression_level = 9",
        "compression_level = 9\ncompression = \"none\"",
    ] {
        let errs = publish(lines);
        assert!(errs.contains(&"agent.toml:16:21: [publish]: `compression_level` applies only with compression = \"zstd\" or \"packed\"".to_owned()), "{errs:?}");
    }
}

const OPCUA: &str = r#"
[gateway]
id = "gw-1"
state_dir = "/tmp/fl"

[[device]]
name = "cnc-7"
protocol = "opcua"
endpoint = "opc.tcp://192.168.1.20:4840"

[[device.point]]
name = "speed"
node = "ns=2;s=Spindle.Speed"
"#;

/// Asserts that one of the errors is located in the file and ends with `message`.
fn assert_error_ends(text: &str, message: &str) {
    let errors = errors(text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("agent.toml:") && e.ends_with(message)),
        "expected an error ending with\n  {message}\namong\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn an_opcua_device_gets_the_documented_defaults() {
    use fieldlink_opcua::{
        Identity, Mode, PolicyChoice, SecurityMode, ServerTrust, node::Namespace,
    };
    let c = config::parse(OPCUA, FILE).unwrap();
    let DeviceKind::Opcua(d) = &c.devices[0].kind else {
        panic!("not opcua")
    };
    assert_eq!(c.devices[0].kind.protocol(), "opcua");
    assert_eq!(d.endpoint, "opc.tcp://192.168.1.20:4840");
    assert_eq!(
        d.mode,
        Mode::Subscription {
            publishing_interval: Duration::from_secs(1)
        }
    );
    assert_eq!(d.timeout, Duration::from_secs(5));
    assert_eq!(
        (d.security.mode, d.security.policy),
        (SecurityMode::None, PolicyChoice::Auto)
    );
    assert_eq!(d.identity, Identity::Anonymous);
    assert_eq!(d.trust, ServerTrust::TrustedOnly);
    assert_eq!(d.pki.dir, std::path::PathBuf::from("/tmp/fl/pki"));
    assert_eq!(d.pki.gateway_id.as_deref(), Some("gw-1"));
    assert_eq!(d.pki.config_file, FILE);
    let p = &d.points[0];
    assert_eq!(p.node.namespace, Namespace::Index(2));
    assert_eq!(p.node.to_string(), "ns=2;s=Spindle.Speed");
    assert_eq!(
        (p.sampling_interval, p.queue_size.get(), p.deadband),
        (Duration::from_secs(1), 1, None)
    );
}

#[test]
fn opcua_security_identity_and_subscription_settings_are_read() {
    use fieldlink_opcua::{Deadband, Identity, Policy, PolicyChoice, SecurityMode, ServerTrust};
    let text = OPCUA
        .replace(
            "endpoint = \"opc.tcp://192.168.1.20:4840\"\n",
            "endpoint = \"opc.tcp://192.168.1.20:4840\"\nsecurity = \"sign-and-encrypt\"\npolicy = \"Basic256Sha256\"\nusername = \"op\"\npassword = \"pw\"\ntrust_server_certificate = \"any\"\npublishing_interval = \"500ms\"\nsampling_interval = \"100ms\"\n",
        )
        .replace(
            "node = \"ns=2;s=Spindle.Speed\"\n",
            "node = \"nsu=urn:acme:cnc;i=1001\"\ndeadband = 0.5\n\n[[device.point]]\nname = \"load\"\nnode = \"ns=3;i=7\"\ndeadband_percent = 2.0\nqueue_size = 5\n",
        );
    let c = config::parse(&text, FILE).unwrap();
    let DeviceKind::Opcua(d) = &c.devices[0].kind else {
        panic!("not opcua")
    };
    assert_eq!(
        (d.security.mode, d.security.policy),
        (
            SecurityMode::SignAndEncrypt,
            PolicyChoice::Exact(Policy::Basic256Sha256)
        )
    );
    assert_eq!(
        d.identity,
        Identity::UserName {
            user: "op".into(),
            password: "pw".into()
        }
    );
    assert_eq!(d.trust, ServerTrust::Any);
    let (speed, load) = (&d.points[0], &d.points[1]);
    assert_eq!(speed.node.to_string(), "nsu=urn:acme:cnc;i=1001");
    // 100 ms sampling within 500 ms publishing: five samples queued by default.
    assert_eq!(
        (speed.sampling_interval, speed.queue_size.get()),
        (Duration::from_millis(100), 5)
    );
    assert_eq!(speed.deadband, Some(Deadband::Absolute(0.5)));
    assert_eq!(c.devices[0].points[0].deadband, Some(0.5));
    assert_eq!(load.deadband, Some(Deadband::Percent(2.0)));
    assert_eq!(load.queue_size.get(), 5);
}

#[test]
fn opcua_poll_mode_reads_on_the_poll_period() {
    use fieldlink_opcua::Mode;
    let text = OPCUA.replace(
        "protocol = \"opcua\"\n",
        "protocol = \"opcua\"\nmode = \"poll\"\npoll = \"250ms\"\n",
    );
    let c = config::parse(&text, FILE).unwrap();
    let DeviceKind::Opcua(d) = &c.devices[0].kind else {
        panic!("not opcua")
    };
    assert_eq!(
        d.mode,
        Mode::Poll {
            period: Duration::from_millis(250)
        }
    );
}

#[test]
fn opcua_keys_are_checked_and_located() {
    assert_error(
        &OPCUA.replace("opc.tcp://192.168.1.20:4840", "http://plc:4840"),
        "agent.toml:9:12: [[device]] \"cnc-7\": `endpoint` must start with opc.tcp://, found \"http://plc:4840\" (expected opc.tcp://HOST:PORT, e.g. \"opc.tcp://192.168.1.20:4840\")",
    );
    assert_error(
        &OPCUA.replace("ns=2;s=Spindle.Speed", "ns=2;x=1"),
        "agent.toml:13:8: [[device]] \"cnc-7\" [[device.point]]: `node` is not a NodeId: the identifier must be i=NUMBER, s=TEXT, g=GUID or b=BASE64 (found \"x=1\"); found \"ns=2;x=1\"",
    );
    assert_error(
        &OPCUA.replace("ns=2;s=Spindle.Speed", "ns=99999;i=1"),
        "agent.toml:13:8: [[device]] \"cnc-7\" [[device.point]]: `node` is not a NodeId: `ns=` must be a namespace index from 0 to 65535; found \"ns=99999;i=1\"",
    );
    let device = |extra: &str| {
        OPCUA.replace(
            "protocol = \"opcua\"\n",
            &format!("protocol = \"opcua\"\n{extra}\n"),
        )
    };
    assert_error(
        &device("security = \"encrypt\""),
        "agent.toml:9:12: [[device]] \"cnc-7\": `security` must be one of none, sign, sign-and-encrypt, found \"encrypt\"",
    );
    assert_error_ends(
        &device("policy = \"Basic256Sha256\""),
        "`policy` applies to security = \"sign\" or \"sign-and-encrypt\"; with security = \"none\" there is no policy to choose",
    );
    assert_error_ends(
        &device("security = \"sign\"\npolicy = \"Basic512\""),
        "`policy` must be one of auto, Aes256Sha256RsaPss, Basic256Sha256, Aes128Sha256RsaOaep, Basic256, Basic128Rsa15, found \"Basic512\"",
    );
    assert_error_ends(
        &device("username = \"op\""),
        "`username` and `password` go together: set both, or neither for anonymous login",
    );
    assert_error_ends(
        &device(
            "username = \"op\"\npassword = \"x\"\nuser_certificate = \"/c.der\"\nuser_private_key = \"/k.pem\"",
        ),
        "log in either with `username` and `password` or with `user_certificate` and `user_private_key`, not both",
    );
    assert_error_ends(
        &device("trust_server_certificate = \"yes\""),
        "`trust_server_certificate` must be one of trusted, any, found \"yes\"",
    );
    assert_error_ends(
        &device("mode = \"poll\"\npublishing_interval = \"1s\""),
        "`publishing_interval` applies to mode = subscription (the default) only",
    );
    assert_error_ends(
        &device("poll = \"1s\""),
        "`poll` applies to mode = poll only",
    );
    assert_error_ends(
        &device("mode = \"cyclic\""),
        "`mode` must be one of subscription, poll, found \"cyclic\"",
    );
    let point = |extra: &str| {
        OPCUA.replace(
            "node = \"ns=2;s=Spindle.Speed\"\n",
            &format!("node = \"ns=2;s=Spindle.Speed\"\n{extra}\n"),
        )
    };
    assert_error_ends(
        &point("deadband = 1.0\ndeadband_percent = 5.0"),
        "set `deadband` (absolute, in the variable's units) or `deadband_percent` (of its EURange), not both",
    );
    assert_error_ends(
        &point("deadband_percent = 150.0"),
        "`deadband_percent` must be from 0 to 100 (percent of the variable's EURange)",
    );
    assert_error_ends(
        &point("queue_size = 0"),
        "`queue_size` must be an integer from 1 to 10000, found 0",
    );
    assert_error_ends(
        &point("area = \"holding\""),
        "unknown key `area`; expected one of: deadband, deadband_percent, heartbeat, name, node, queue_size, role, sampling_interval, unit",
    );
    assert_error_ends(
        &OPCUA.replace("node = \"ns=2;s=Spindle.Speed\"\n", ""),
        "missing key `node` (the variable's NodeId, e.g. \"ns=2;s=Machine.Speed\")",
    );
}
