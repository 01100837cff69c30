//! A server whose variables turn hostile while the session runs: Bad status codes (with a
//! value attached), values of a type fieldlink cannot represent, numbers that are not
//! finite, a Double variable that starts carrying a String. Only those points go bad, with
//! an error that says why (and a log line naming the point); the others stay good, and
//! each point is good again once its variable is.

use crate::support::{Running, device, has_bad, has_good, latest};
use fieldlink_opcua::Mode;
use fieldlink_opcua::testing::{FOLDER, TestServer, TestServerOptions};
use fieldlink_testkit::LogCapture;
use fieldlink_wire::{Quality, Value};
use opcua::types::{ByteString, DataValue, StatusCode, Variant};
use std::time::Duration;

/// Points named after the test server's variables.
const POINTS: [&str; 6] = ["Boolean", "Counter", "Int32", "Float", "Double", "UInt16"];

fn var(name: &str) -> String {
    format!("{FOLDER}.{name}")
}

/// A `DataValue` of now with `status`, still carrying a value: a Bad status must win.
fn with_status(value: Variant, status: StatusCode) -> DataValue {
    DataValue {
        status: Some(status),
        ..DataValue::new_now(value)
    }
}

async fn hostile_variables_spoil_only_their_own_points(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServerOptions::new(&dir.path().join("server"))).await;
    let points: Vec<(&str, String)> = POINTS
        .iter()
        .map(|name| (*name, TestServer::node_text(&var(name))))
        .collect();
    let mut d = device(&server.endpoint(), dir.path(), &points);
    d.mode = mode;
    let mut run = Running::start(d);
    assert!(
        run.until(Duration::from_secs(20), |s| {
            let latest = latest(s);
            POINTS
                .iter()
                .all(|p| latest.get(*p).is_some_and(|s| s.quality == Quality::Good))
        })
        .await,
        "not every point arrived good: {:#?}",
        run.received
    );

    // Bad statuses, each with a plausible value the collector must not publish.
    server.set_data_value(
        &var("Counter"),
        with_status(Variant::Int32(5), StatusCode::BadCommunicationError),
    );
    server.set_data_value(
        &var("UInt16"),
        with_status(Variant::UInt16(7), StatusCode::BadOutOfService),
    );
    // Values fieldlink cannot represent, and a number that is not finite.
    server.set(
        &var("Int32"),
        Variant::ByteString(ByteString::from(vec![1, 2, 3])),
    );
    server.set(&var("Float"), Variant::Double(f64::NAN));
    // The Double variable now carries a String: OPC UA points take the variable's own type
    // (no type is configured for them), so this is text, not a number made up from it.
    server.set(&var("Double"), Variant::String("sensor unplugged".into()));

    let expected_bad = [
        ("Counter", "BadCommunicationError"),
        ("UInt16", "BadOutOfService"),
        ("Int32", "unsupported OPC UA type ByteString"),
        ("Float", "the value is not a finite number"),
    ];
    assert!(
        run.until(Duration::from_secs(10), |s| {
            expected_bad.iter().all(|(p, e)| has_bad(s, p, e))
                && has_good(s, "Double", &Value::Text("sensor unplugged".into()))
        })
        .await,
        "{:#?}",
        run.received
    );
    for sample in &run.received {
        if expected_bad.iter().any(|(p, _)| **p == *sample.point)
            && let Quality::Bad(_) = sample.quality
        {
            assert_eq!(
                sample.value,
                Value::None,
                "a bad sample carries no value: {sample:?}"
            );
        }
    }
    for bad in [Value::Int(5), Value::Int(7)] {
        assert!(
            !run.received.iter().any(|s| s.value == bad),
            "a value under a Bad status was published: {bad:?}"
        );
    }

    // Each variable behaves again: its point is good again.
    server.set(&var("Counter"), Variant::Int32(11));
    server.set(&var("UInt16"), Variant::UInt16(12));
    server.set(&var("Int32"), Variant::Int32(13));
    server.set(&var("Float"), Variant::Float(1.5));
    server.set(&var("Double"), Variant::Double(14.5));
    assert!(
        run.until(Duration::from_secs(10), |s| {
            has_good(s, "Counter", &Value::Int(11))
                && has_good(s, "UInt16", &Value::Int(12))
                && has_good(s, "Int32", &Value::Int(13))
                && has_good(s, "Float", &Value::Float(1.5))
                && has_good(s, "Double", &Value::Float(14.5))
        })
        .await,
        "{:#?}",
        run.received
    );
    let received = run.stop().await;
    assert!(
        received
            .iter()
            .filter(|s| &*s.point == "Boolean")
            .all(|s| s.quality == Quality::Good && s.value == Value::Bool(true)),
        "the untouched point stays good"
    );
}

#[tokio::test]
async fn hostile_variables_spoil_only_their_own_points_by_subscription() {
    // A current-thread runtime: the collector's and the session's tasks log here.
    let captured = LogCapture::default();
    let _guard = captured.install();
    hostile_variables_spoil_only_their_own_points(Mode::Subscription {
        publishing_interval: Duration::from_millis(100),
    })
    .await;
    let unmappable = captured.lines_with("cannot map the point's value");
    assert_eq!(unmappable.len(), 1, "{unmappable:#?}");
    assert!(
        unmappable[0].contains("point=Int32") && unmappable[0].contains("ByteString"),
        "{}",
        unmappable[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_variables_spoil_only_their_own_points_by_polling() {
    hostile_variables_spoil_only_their_own_points(Mode::Poll {
        period: Duration::from_millis(100),
    })
    .await;
}
