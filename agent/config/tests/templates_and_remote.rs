//! Templates used by devices, and configs from the platform, through the public parser.

use fieldlink_config::{parse, parse_remote, with_remote};

const METER: &str = r#"
[gateway]
id = "gw-t"
state_dir = "/nonexistent/fieldlink-test"

[[device]]
name = "meter-1"
protocol = "modbus-rtu-over-tcp"
address = "127.0.0.1:5020"
unit = 3
template = "eastron-sdm630"

[[device.point]]
name = "voltage_l1"
area = "input"
address = 0
type = "f32"
unit = "kV"
scale = 0.001

[[device.point]]
name = "alarm_word"
area = "holding"
address = 10
type = "u16"
"#;

#[test]
fn a_device_takes_its_templates_points_overridden_and_added_by_name() {
    let config = parse(METER, "agent.toml").unwrap();
    let device = &config.devices[0];
    assert_eq!(device.template.as_deref(), Some("eastron-sdm630"));
    let library = fieldlink_config::Templates::shipped();
    let template = library.get("eastron-sdm630").unwrap();
    let names: Vec<&str> = device.points.iter().map(|p| &*p.name).collect();
    assert_eq!(names.len(), template.points.len() + 1);
    assert_eq!(names[0], "voltage_l1");
    assert_eq!(names.last(), Some(&"alarm_word"));
    assert_eq!(device.points[0].unit.as_deref(), Some("kV"), "overridden");
    assert_eq!(
        device.points[1].unit.as_deref(),
        Some("V"),
        "the template's"
    );
}

#[test]
fn a_template_that_does_not_exist_or_does_not_fit_is_refused_at_its_key() {
    let unknown = METER.replace("eastron-sdm630", "no-such-meter");
    let errors = parse(&unknown, "agent.toml").unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!((errors.0[0].line, errors.0[0].column), (11, 12), "{errors}");
    assert!(
        errors.0[0].message.contains("eastron-sdm630"),
        "lists the templates: {errors}"
    );

    let opcua = "[gateway]\nid = \"g\"\n[[device]]\nname = \"d\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:4840\"\ntemplate = \"eastron-sdm630\"\n[[device.point]]\nname = \"x\"\nnode = \"ns=2;s=X\"\n";
    let errors = parse(opcua, "agent.toml").unwrap_err();
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.line == 7 && e.message.contains("Modbus register maps")),
        "{errors}"
    );
}

#[test]
fn a_role_must_fit_its_points_type() {
    let text = METER.replace("type = \"u16\"\n", "type = \"u16\"\nrole = \"running\"\n");
    let errors = parse(&text, "agent.toml").unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert!(
        errors.0[0]
            .message
            .contains("role \"running\" needs a bool"),
        "{errors}"
    );
    assert_eq!(errors.0[0].line, 26, "{errors}");
}

#[test]
fn a_config_from_the_platform_holds_publish_and_devices_only() {
    let remote = "[gateway]\nid = \"other\"\n\n[publish]\nbatch_max_samples = 50\n\n[buffer]\nmax_size = \"1MiB\"\n";
    let errors = parse_remote(remote, "platform config v3").unwrap_err();
    let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, [1, 7], "{errors}");
    assert!(
        errors
            .0
            .iter()
            .all(|e| e.message.contains("stays in the gateway's own file"))
    );
    assert!(
        errors.to_string().starts_with("platform config v3:1:1:"),
        "{errors}"
    );

    let devices_only = &METER[METER.find("[[device]]").unwrap()..];
    let remote = format!("[publish]\nbatch_max_samples = 50\n\n{devices_only}");
    let parsed = parse_remote(&remote, "platform config v3").unwrap();
    let local = parse(
        "[gateway]\nid = \"gw-t\"\n[publish]\nbatch_max_samples = 7\n",
        "agent.toml",
    )
    .unwrap();
    let running = with_remote(&local, parsed, "platform config v3");
    assert_eq!(running.publish.batch_max_samples.get(), 50);
    assert_eq!(running.devices.len(), 1);
    assert_eq!(running.gateway, local.gateway);
    assert_eq!(running.platform, local.platform);
}

#[test]
fn every_error_of_a_pushed_config_is_reported_at_once_with_line_and_column() {
    let remote = "[publish]\nbatch_max_samples = 0\n\n[[device]]\nname = \"a\"\nprotocol = \"modbus-tcp\"\naddress = \"h:502\"\n[[device.point]]\nname = \"p\"\naddress = 1\ntype = \"float\"\n\n[[device]]\nname = \"b\"\nprotocol = \"carrier-pigeon\"\n";
    let errors = parse_remote(remote, "pushed").unwrap_err();
    let at: Vec<(usize, usize)> = errors.0.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(2, 21), (11, 8), (15, 12)], "{errors}");
}
