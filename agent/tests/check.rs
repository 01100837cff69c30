//! `fieldlink check`'s report: devices, points and the Modbus read plan.

use fieldlink::config;

#[test]
fn the_example_config_explains_its_read_plan() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.toml");
    let config = config::load(&path).unwrap();
    let report = fieldlink::check::report(&config);
    assert!(
        report.contains(
            "device \"press-1\": modbus-tcp 192.168.1.10:502 unit 1, poll 1s, timeout 500ms"
        ),
        "{report}"
    );
    // temperature (100-101) and serial_number (200-207) are 98 apart: two holding requests
    // with max_gap 4; door_open is a coil: one more.
    assert!(
        report.contains("read plan: 3 requests per cycle"),
        "{report}"
    );
    assert!(
        report.contains("holding    100..101      2 registers temperature"),
        "{report}"
    );
    assert!(
        report.contains("coil         0..0        1 bits"),
        "{report}"
    );
}
