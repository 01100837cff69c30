//! Values by subscription and by polling: every supported type, statuses, deadbands.

use crate::support::{Running, device, has_bad, has_good, latest};
use fieldlink_opcua::testing::{
    ANALOG, ANALOG_INITIAL, EU_RANGE, FOLDER, TestServer, TestServerOptions, every_type,
};
use fieldlink_opcua::{Deadband, Mode};
use fieldlink_wire::{Quality, Value};
use opcua::types::{DataValue, StatusCode, Variant};
use std::time::Duration;

/// What the contract says each test variable's initial value is.
fn expected(name: &str) -> Value {
    match name {
        "Boolean" => Value::Bool(true),
        "SByte" => Value::Int(-8),
        "Byte" => Value::Int(200),
        "Int16" => Value::Int(-300),
        "UInt16" => Value::Int(60000),
        "Int32" => Value::Int(-70000),
        "UInt32" => Value::Int(4_000_000_000),
        "Int64" => Value::Int(-5_000_000_000_000),
        "UInt64" => Value::UInt(u64::MAX),
        "Float" => Value::Float(0.1),
        "Double" => Value::Float(2.25),
        "String" => Value::Text("späne".into()),
        "LocalizedText" => Value::Text("Ein".into()),
        "DateTime" => Value::Int(1_764_201_600_000),
        "StatusCode" => Value::Text("BadSensorFailure".into()),
        "Counter" => Value::Int(0),
        other => panic!("no expectation for {other}"),
    }
}

fn all_points() -> Vec<(&'static str, String)> {
    every_type()
        .into_iter()
        .map(|(name, _)| (name, TestServer::node_text(&format!("{FOLDER}.{name}"))))
        .collect()
}

async fn check_every_type(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let mut d = device(&server.endpoint(), dir.path(), &all_points());
    d.mode = mode;
    let mut run = Running::start(d);
    let names: Vec<&str> = every_type().into_iter().map(|(n, _)| n).collect();
    let all_seen = run
        .until(Duration::from_secs(20), |s| {
            let latest = latest(s);
            names.iter().all(|n| latest.contains_key(*n))
        })
        .await;
    let latest = latest(&run.received);
    assert!(all_seen, "not every point arrived: {latest:#?}");
    for name in &names {
        let sample = &latest[*name];
        if *name == "Guid" {
            let Quality::Bad(e) = &sample.quality else {
                panic!("Guid should be bad: {sample:?}")
            };
            assert!(e.starts_with("unsupported OPC UA type Guid"), "{e}");
            continue;
        }
        assert_eq!(
            (&sample.value, &sample.quality),
            (&expected(name), &Quality::Good),
            "point {name}"
        );
    }
    // The source timestamp set by the server, not the local clock, is the sample's time.
    let ts = latest["Double"].ts;
    assert!(ts > 1_700_000_000_000, "{ts}");

    server.set(&format!("{FOLDER}.Counter"), Variant::Int32(42));
    assert!(
        run.until(Duration::from_secs(10), |s| has_good(
            s,
            "Counter",
            &Value::Int(42)
        ))
        .await,
        "the change did not arrive"
    );
    let received = run.stop().await;
    // The unmappable point is reported once, not with every cycle.
    let guid_reports = received.iter().filter(|s| &*s.point == "Guid").count();
    assert_eq!(
        guid_reports, 1,
        "the Guid point was reported {guid_reports} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_type_arrives_by_subscription() {
    check_every_type(Mode::Subscription {
        publishing_interval: Duration::from_millis(100),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_reads_every_supported_type() {
    check_every_type(Mode::Poll {
        period: Duration::from_millis(100),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_map_to_qualities_with_the_status_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let points = vec![
        ("Double", TestServer::node_text(&format!("{FOLDER}.Double"))),
        ("missing", TestServer::node_text("Machine.NoSuchNode")),
        ("unknown-ns", "nsu=urn:nobody;s=X".to_owned()),
    ];
    let mut run = Running::start(device(&server.endpoint(), dir.path(), &points));
    assert!(
        run.until(Duration::from_secs(15), |s| has_good(
            s,
            "Double",
            &Value::Float(2.25)
        ) && has_bad(
            s,
            "missing",
            "BadNodeIdUnknown"
        ) && has_bad(
            s,
            "unknown-ns",
            "namespace \"urn:nobody\" is not in the server's namespace array"
        ))
        .await,
        "{:#?}",
        run.received
    );

    let name = format!("{FOLDER}.Double");
    server.set_data_value(
        &name,
        DataValue {
            value: Some(Variant::Double(7.5)),
            status: Some(StatusCode::UncertainLastUsableValue),
            ..DataValue::new_now(Variant::Empty)
        },
    );
    assert!(
        run.until(Duration::from_secs(10), |s| s
            .iter()
            .any(|s| &*s.point == "Double"
                && s.quality == Quality::Uncertain
                && s.value == Value::Float(7.5)))
            .await,
        "no uncertain sample: {:#?}",
        run.received
    );
    server.set_data_value(
        &name,
        DataValue {
            value: Some(Variant::Double(0.0)),
            status: Some(StatusCode::BadSensorFailure),
            ..DataValue::new_now(Variant::Empty)
        },
    );
    assert!(
        run.until(Duration::from_secs(10), |s| has_bad(
            s,
            "Double",
            "BadSensorFailure"
        ))
        .await
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_deadband_filters_small_changes_at_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let name = format!("{FOLDER}.Double");
    let mut d = device(
        &server.endpoint(),
        dir.path(),
        &[("Double", TestServer::node_text(&name))],
    );
    d.points[0].deadband = Some(Deadband::Absolute(1.0));
    let mut run = Running::start(d);
    assert!(
        run.until(Duration::from_secs(15), |s| has_good(
            s,
            "Double",
            &Value::Float(2.25)
        ))
        .await
    );
    // 2.25 → 2.5 → 2.75 stay within 1.0 of the last reported value; 3.5 does not.
    for v in [2.5, 2.75, 3.5] {
        server.set(&name, Variant::Double(v));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        run.until(Duration::from_secs(10), |s| has_good(
            s,
            "Double",
            &Value::Float(3.5)
        ))
        .await
    );
    let received = run.stop().await;
    let values: Vec<&Value> = received
        .iter()
        .filter(|s| &*s.point == "Double")
        .map(|s| &s.value)
        .collect();
    assert_eq!(values, [&Value::Float(2.25), &Value::Float(3.5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_deadband_filters_by_the_eurange_at_the_server_and_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let analog = format!("{FOLDER}.{ANALOG}");
    let mut d = device(
        &server.endpoint(),
        dir.path(),
        &[
            ("Analog", TestServer::node_text(&analog)),
            ("Double", TestServer::node_text(&format!("{FOLDER}.Double"))),
        ],
    );
    // 5 % of the EURange 0..200 is 10 units. Double has no EURange.
    assert_eq!(EU_RANGE, (0.0, 200.0));
    d.points[0].deadband = Some(Deadband::Percent(5.0));
    d.points[1].deadband = Some(Deadband::Percent(5.0));
    let mut run = Running::start(d);
    assert!(
        run.until(Duration::from_secs(15), |s| has_good(
            s,
            "Analog",
            &Value::Float(ANALOG_INITIAL)
        ) && has_bad(
            s,
            "Double",
            "BadDeadbandFilterInvalid: the server refused the percent deadband (it needs an analog variable with an EURange)"
        ))
        .await,
        "{:#?}",
        run.received
    );
    // 104 and 108 stay within 10 of the last reported 100; 111 does not.
    for v in [104.0, 108.0, 111.0] {
        server.set(&analog, Variant::Double(v));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        run.until(Duration::from_secs(10), |s| has_good(
            s,
            "Analog",
            &Value::Float(111.0)
        ))
        .await,
        "{:#?}",
        run.received
    );
    let received = run.stop().await;
    let values: Vec<&Value> = received
        .iter()
        .filter(|s| &*s.point == "Analog")
        .map(|s| &s.value)
        .collect();
    assert_eq!(values, [&Value::Float(100.0), &Value::Float(111.0)]);
}

/// Regression: without a per-publish limit the server answered BadResponseTooLarge to
/// every publish of 10,000 items and nothing arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_items_arrive_in_publish_responses_within_the_message_size_limit() {
    const ITEMS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions {
        bulk: ITEMS,
        ..TestServerOptions::new(&dir.path().join("server"))
    })
    .await;
    let names: Vec<String> = (0..ITEMS).map(|i| format!("Bulk.{i}")).collect();
    let points: Vec<(&str, String)> = names
        .iter()
        .map(|n| (n.as_str(), TestServer::node_text(n)))
        .collect();
    let mut run = Running::start(device(&server.endpoint(), dir.path(), &points));
    let all_good = run
        .until(Duration::from_secs(60), |s| {
            s.iter().filter(|s| s.quality == Quality::Good).count() >= ITEMS
        })
        .await;
    let received = run.stop().await;
    let latest = latest(&received);
    let good = latest
        .values()
        .filter(|s| s.quality == Quality::Good && s.value == Value::Float(0.0))
        .count();
    assert!(all_good && good == ITEMS, "{good} of {ITEMS} items arrived");
}
