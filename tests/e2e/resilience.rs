//! Faults of the device and of the link: the agent recovers by itself and loses nothing.

use fieldlink_broker::Broker;
use fieldlink_tests::{
    CountingDevice, LinkCutter, Recorder, agent_config, counted_values, counting_config,
    loss_report, max_delivery_delay_ms,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn a_device_restarted_mid_run_is_read_again_without_restarting_the_agent() {
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-restart/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let config = agent_config(
        &counting_config("gw-restart", device.addr(), broker.addr(), "50ms"),
        state.path(),
    );
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));

    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| counted_values(m).0.len() >= 5)
            .await,
        "no data before the restart"
    );
    let device = device.restart(Duration::from_millis(1500)).await;
    let before = counted_values(&recorder.messages()).0.len();
    let resumed = recorder
        .wait_for(Duration::from_secs(20), |m| {
            counted_values(m).0.len() >= before + 10
        })
        .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let served = device.stop().await;
    assert!(
        resumed,
        "good samples did not resume after the device came back"
    );
    let (values, bad) = counted_values(&recorder.messages());
    assert!(bad > 0, "the outage must show as bad samples, not silence");
    let (missing, _) = loss_report(&values, served);
    assert!(
        missing.is_empty(),
        "reads answered by the device but never delivered: {missing:?}"
    );
    recorder.stop().await;
}

/// Regression guard for the product's core promise: a 30 s broker outage loses nothing.
#[tokio::test]
async fn a_30_second_broker_outage_loses_no_sample() {
    let broker = Broker::start(loopback()).expect("broker");
    let link = LinkCutter::start(broker.addr()).await;
    let device = CountingDevice::start(loopback()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-outage/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let config = agent_config(
        &counting_config("gw-outage", device.addr(), link.addr(), "20ms"),
        state.path(),
    );
    let stop = CancellationToken::new();
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));

    assert!(
        recorder
            .wait_for(Duration::from_secs(10), |m| counted_values(m).0.len() >= 20)
            .await,
        "no data before the outage"
    );
    link.cut();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let served_during_outage = device.served();
    link.restore();
    assert!(
        recorder
            .wait_for(Duration::from_secs(60), |m| counted_values(m)
                .0
                .contains(&served_during_outage))
            .await,
        "the backlog did not arrive after the link came back"
    );
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let served = device.stop().await;
    let (values, _) = counted_values(&recorder.messages());
    let (missing, duplicates) = loss_report(&values, served);
    eprintln!(
        "outage: {served} reads answered, {} delivered, {} missing, {duplicates} duplicates, max delivery delay {} ms",
        values.len(),
        missing.len(),
        max_delivery_delay_ms(&recorder.messages())
    );
    assert!(
        served > 1000,
        "the collector kept reading during the outage ({served} reads)"
    );
    assert!(
        missing.is_empty(),
        "{} samples lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    recorder.stop().await;
    link.stop().await;
}
