//! The DL/T 645 collector against the simulator's meters on the other end of a socat pty
//! pair (a line shared by three meters), written independently of this crate: values,
//! block reads, a meter's error answer, wrong checksums, and a silent meter that must not
//! slow the others.

use fieldlink_collector_api::testing::{Collecting, PtyPair, bounded, by_point, error};
use fieldlink_dlt645::collector::MeterPoint;
use fieldlink_dlt645::ident::{DataId, lookup};
use fieldlink_dlt645::{Dlt645Collector, Dlt645Device, MeterAddress};
use fieldlink_serial::{DataBits, Parity, SerialLine, StopBits};
use fieldlink_simulator::dlt645_meter::{self, Faults, Meter, MeterValue};
use fieldlink_simulator::modbus_device::Source;
use fieldlink_wire::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const METERS: [&str; 3] = ["000000000001", "000000000002", "000000000003"];

fn value(bytes: u8, decimals: u8, signed: bool, v: f64) -> MeterValue {
    MeterValue {
        bytes,
        decimals,
        signed,
        source: Source::Constant(Value::Float(v)),
    }
}

/// Meter `n` (1-based): forward energy 1000.5·n kWh, tariffs, phase voltages, currents
/// (phase C negative), total power and frequency.
fn meter(n: u32) -> Meter {
    let k = f64::from(n);
    let values: BTreeMap<u32, MeterValue> = [
        (0x0001_0000, value(4, 2, false, 1000.5 * k)),
        (0x0001_0100, value(4, 2, false, 400.25 * k)),
        (0x0001_0200, value(4, 2, false, 600.25 * k)),
        (0x0201_0100, value(2, 1, false, 220.1)),
        (0x0201_0200, value(2, 1, false, 221.2)),
        (0x0201_0300, value(2, 1, false, 222.3)),
        (0x0202_0100, value(3, 3, true, 1.5 * k)),
        (0x0202_0200, value(3, 3, true, 2.5)),
        (0x0202_0300, value(3, 3, true, -0.75)),
        (0x0203_0000, value(3, 4, true, 3.2109)),
        (0x0280_0002, value(2, 2, false, 50.01)),
    ]
    .into_iter()
    .collect();
    Meter {
        address: METERS[n as usize - 1].to_owned(),
        values,
    }
}

fn point(name: &str, id: &str) -> MeterPoint {
    let id: DataId = id.parse().expect("identifier");
    MeterPoint {
        name: name.into(),
        id,
        format: lookup(id).expect("in the table"),
        scale: 1.0,
        offset: 0.0,
    }
}

fn points() -> Vec<MeterPoint> {
    vec![
        point("energy", "00010000"),
        point("energy_t1", "00010100"),
        point("energy_t2", "00010200"),
        point("ua", "02010100"),
        point("ub", "02010200"),
        point("uc", "02010300"),
        point("ia", "02020100"),
        point("ic", "02020300"),
        point("power", "02030000"),
        point("frequency", "02800002"),
        point("missing", "00020000"),
    ]
}

fn device(line: &SerialLine, n: u32, block_reads: bool) -> Dlt645Device {
    Dlt645Device {
        name: format!("meter-{n}").into(),
        line: line.clone(),
        meter: METERS[n as usize - 1]
            .parse::<MeterAddress>()
            .expect("address"),
        poll: Duration::from_millis(300),
        timeout: Duration::from_millis(200),
        retries: 0,
        block_reads,
        points: points(),
    }
}

fn line(path: String) -> SerialLine {
    SerialLine {
        path,
        baud: 9600,
        parity: Parity::Even,
        data_bits: DataBits::Eight,
        stop_bits: StopBits::One,
    }
}

/// The meters' end of the pty, served until the token fires.
fn serve(path: &str, faults: Arc<Faults>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stream = line(path.to_owned()).open().expect("the meters' end");
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let _ =
                dlt645_meter::serve(stream, vec![meter(1), meter(2), meter(3)], faults, stop).await;
        }
    });
    (stop, task)
}

fn assert_values(n: u32, batch: &[fieldlink_wire::Sample]) {
    let s = by_point(batch);
    let k = f64::from(n);
    for (name, v) in [
        ("energy", 1000.5 * k),
        ("energy_t1", 400.25 * k),
        ("energy_t2", 600.25 * k),
        ("ua", 220.1),
        ("ub", 221.2),
        ("uc", 222.3),
        ("ia", 1.5 * k),
        ("ic", -0.75),
        ("power", 3.2109),
        ("frequency", 50.01),
    ] {
        assert_eq!(error(s[name]), None, "meter {n} {name}");
        assert_eq!(s[name].value, Value::Float(v), "meter {n} {name}");
    }
    assert_eq!(
        error(s["missing"]),
        Some("meter error 02: no such data: the meter does not offer this data identifier")
    );
}

#[tokio::test]
async fn three_meters_on_one_line_are_read_one_read_per_point_and_by_blocks() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    bounded(async {
        let faults = Arc::new(Faults::default());
        let (stop, server) = serve(&pty.path("slave"), Arc::clone(&faults));
        let line = line(pty.path("master"));
        let mut meters: Vec<(u32, Collecting)> = (1..=3)
            .map(|n| {
                (
                    n,
                    Collecting::run(Box::new(Dlt645Collector::new(device(&line, n, n == 3))), 64),
                )
            })
            .collect();
        for (n, collecting) in &mut meters {
            for _ in 0..2 {
                assert_values(*n, &collecting.batch().await);
            }
        }
        // Meter 3 reads by blocks: energy (total, T1, T2), voltages, currents: 3 block
        // reads, plus power, frequency and the missing one: 6 reads a cycle, not 11.
        let answered = faults.answered.lock().expect("counts").clone();
        let (one, three) = (answered["000000000001"], answered["000000000003"]);
        assert!(
            three * 11 < one * 7,
            "block reads use fewer reads: {answered:?}"
        );
        for (_, collecting) in meters {
            collecting.stop().await;
        }
        stop.cancel();
        let _ = server.await;
    })
    .await;
}

#[tokio::test]
async fn a_silent_meter_does_not_slow_the_others_and_wrong_checksums_are_bad_samples() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    bounded(async {
        let faults = Arc::new(Faults::default());
        faults
            .silent
            .lock()
            .expect("faults")
            .insert("000000000002".to_owned());
        let (stop, server) = serve(&pty.path("slave"), Arc::clone(&faults));
        let line = line(pty.path("master"));
        let mut one = Collecting::run(Box::new(Dlt645Collector::new(device(&line, 1, false))), 256);
        let mut two = Collecting::run(Box::new(Dlt645Collector::new(device(&line, 2, false))), 256);
        // Three seconds: ten polls at 300 ms.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut good_batches = 0;
        while let Ok(batch) = one.rx.try_recv() {
            assert_values(1, &batch);
            good_batches += 1;
        }
        assert!(
            good_batches >= 8,
            "meter 1 kept its rate: {good_batches} batches"
        );
        let mut silent_batches = 0;
        while let Ok(batch) = two.rx.try_recv() {
            assert!(
                batch.iter().all(|s| error(s) == Some("timeout")),
                "{batch:?}"
            );
            assert_eq!(batch.len(), 11, "one bad sample per point");
            silent_batches += 1;
        }
        assert!(
            silent_batches >= 8,
            "the silent meter is reported at its rate: {silent_batches}"
        );
        // Its probes back off: far fewer reads went out to it than polls came.
        assert!(two.stats.read_errors.load(Ordering::Relaxed) <= 5);

        // Meter 2 comes back: read again within the silence backoff's cap.
        faults.silent.lock().expect("faults").clear();
        let batch = two
            .batch_where(Duration::from_secs(12), |b| error(&b[0]).is_none())
            .await;
        assert_values(2, &batch);

        // Wrong checksums: bad samples that say so; the line recovers after.
        faults.bad_checksum.store(true, Ordering::SeqCst);
        let batch = one
            .batch_where(Duration::from_secs(5), |b| {
                b.iter()
                    .any(|s| error(s).is_some_and(|e| e.contains("checksum")))
            })
            .await;
        assert!(batch.iter().all(|s| error(s).is_some()), "{batch:?}");
        faults.bad_checksum.store(false, Ordering::SeqCst);
        let batch = one
            .batch_where(Duration::from_secs(5), |b| error(&b[0]).is_none())
            .await;
        assert_values(1, &batch);
        one.stop().await;
        two.stop().await;
        stop.cancel();
        let _ = server.await;
    })
    .await;
}

#[tokio::test]
async fn probe_dlt645_finds_a_lone_meters_address_and_reads_it() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    bounded(async {
        // One meter on the line: the wildcard read finds it.
        let stream = line(pty.path("slave")).open().expect("the meter's end");
        let stop = CancellationToken::new();
        let server = tokio::spawn(dlt645_meter::serve(
            stream,
            vec![meter(2)],
            Arc::new(Faults::default()),
            stop.clone(),
        ));
        let request = fieldlink_collector_api::plugin::ProbeRequest {
            target: format!("serial://{}?baud=9600", pty.path("master")),
            address: Some("00010000".to_owned()),
            count: None,
            timeout: Duration::from_secs(1),
            settings: Default::default(),
        };
        let table = fieldlink_dlt645::probe::probe(request.clone())
            .await
            .expect("probe");
        println!("{table}");
        assert!(
            table.contains("meter 000000000002 answered 00010000"),
            "{table}"
        );
        assert!(
            table.contains("forward active energy = 2001 kWh"),
            "{table}"
        );
        let error = fieldlink_dlt645::probe::probe(fieldlink_collector_api::plugin::ProbeRequest {
            address: Some("00020000".to_owned()),
            ..request
        })
        .await
        .expect_err("no reverse energy");
        println!("00020000: error: {error}");
        assert!(error.to_string().contains("meter error 02"), "{error}");
        stop.cancel();
        let _ = server.await;
    })
    .await;
}
