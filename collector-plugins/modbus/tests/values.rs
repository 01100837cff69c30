//! Every area, type and order read from a real server decodes to the known value.

use crate::support::*;
use WordOrder::{Abcd, Badc, Cdab, Dcba};
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::{PointSpec, ReadPlan};
use fieldlink_wire::{Quality, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Points, where they live, their registers on the device, and the expected value.
fn register_layout() -> Vec<(PointSpec, &'static [u16], Value)> {
    use Area::{Holding, Input};
    let p = point;
    vec![
        (
            p("u16", Holding, 0, DataType::U16, Abcd),
            &[1234],
            Value::Int(1234),
        ),
        (
            p("i16", Holding, 1, DataType::I16, Abcd),
            &[0xFFFE],
            Value::Int(-2),
        ),
        (
            p("bool_reg", Holding, 2, DataType::Bool, Abcd),
            &[0x0010],
            Value::Bool(true),
        ),
        (
            p("u32_abcd", Holding, 3, DataType::U32, Abcd),
            &[0x1234, 0x5678],
            Value::Int(0x1234_5678),
        ),
        (
            p("i32_cdab", Holding, 5, DataType::I32, Cdab),
            &[0xFFFE, 0xFFFF],
            Value::Int(-2),
        ),
        (
            p("f32_abcd", Holding, 7, DataType::F32, Abcd),
            &[0x42F6, 0xE979],
            Value::Float(123.456),
        ),
        (
            p("f32_cdab", Holding, 9, DataType::F32, Cdab),
            &[0xE979, 0x42F6],
            Value::Float(123.456),
        ),
        (
            p("f32_badc", Holding, 11, DataType::F32, Badc),
            &[0xF642, 0x79E9],
            Value::Float(123.456),
        ),
        (
            p("f32_dcba", Holding, 13, DataType::F32, Dcba),
            &[0x79E9, 0xF642],
            Value::Float(123.456),
        ),
        (
            p("u64_badc", Holding, 15, DataType::U64, Badc),
            &[0x0201, 0x0403, 0x0605, 0x0807],
            Value::Int(0x0102_0304_0506_0708),
        ),
        (
            p("u64_max", Holding, 19, DataType::U64, Abcd),
            &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF],
            Value::UInt(u64::MAX),
        ),
        (
            p("i64_dcba", Holding, 23, DataType::I64, Dcba),
            &[0x35FB, 0x048E, 0xE0FE, 0xFFFF],
            Value::Int(-1_234_567_890_123),
        ),
        (
            p("f64_abcd", Holding, 27, DataType::F64, Abcd),
            &[0xC0C3, 0x4A45, 0x87E7, 0xC06E],
            Value::Float(-9876.54321),
        ),
        (
            p("f64_cdab", Holding, 31, DataType::F64, Cdab),
            &[0xC06E, 0x87E7, 0x4A45, 0xC0C3],
            Value::Float(-9876.54321),
        ),
        (
            p("name", Holding, 35, DataType::String { len: 5 }, Abcd),
            &[0x5055, 0x4D50, 0x2D30, 0x3100, 0x0000],
            Value::Text("PUMP-01".into()),
        ),
        (
            PointSpec {
                scale: 0.1,
                ..p("temperature", Holding, 40, DataType::U16, Abcd)
            },
            &[215],
            Value::Float(21.5),
        ),
        (
            PointSpec {
                offset: -40.0,
                ..p("i16_offset", Input, 0, DataType::I16, Abcd)
            },
            &[0xFFFF],
            Value::Float(-41.0),
        ),
        (
            p("u32_dcba", Input, 1, DataType::U32, Dcba),
            &[0x7856, 0x3412],
            Value::Int(0x1234_5678),
        ),
        (
            p("f32_in_badc", Input, 3, DataType::F32, Badc),
            &[0xF642, 0x79E9],
            Value::Float(123.456),
        ),
        (
            p("i32_in_abcd", Input, 5, DataType::I32, Abcd),
            &[0xFFFF, 0xFFFE],
            Value::Int(-2),
        ),
    ]
}

#[tokio::test]
async fn every_area_type_and_order_decodes_to_the_known_value() {
    bounded(async {
        let mut device = TestDevice::new();
        let mut points = Vec::new();
        let mut expected = Vec::new();
        for (spec, words, value) in register_layout() {
            match spec.area {
                Area::Holding => device.set_holding(spec.address, words),
                _ => device.set_input(spec.address, words),
            }
            expected.push((spec.name.clone(), value));
            points.push(spec);
        }
        for (address, bit) in [(0, true), (1, false), (2, true), (300, true)] {
            device.coils.insert(address, bit);
        }
        for (address, bit) in [(5, true), (6, false)] {
            device.discrete.insert(address, bit);
        }
        for (name, area, address, value) in [
            ("coil0", Area::Coil, 0, true),
            ("coil1", Area::Coil, 1, false),
            ("coil2", Area::Coil, 2, true),
            ("coil300", Area::Coil, 300, true),
            ("di5", Area::Discrete, 5, true),
            ("di6", Area::Discrete, 6, false),
        ] {
            points.push(point(name, area, address, DataType::Bool, Abcd));
            expected.push((name.into(), Value::Bool(value)));
        }
        let device = Arc::new(device);
        let server = RunningServer::start(Arc::clone(&device), any_port())
            .await
            .expect("server");

        // A long poll, so that the server's request count is the first cycle's alone.
        let mut tcp = tcp_device(server.addr, points.clone());
        tcp.poll = Duration::from_secs(10);
        let plan = ReadPlan::new(&points, tcp.limits);
        let before = fieldlink_collector_api::clock::now_ms();
        let mut collecting = Collecting::start(tcp, 8);
        let batch = collecting.batch().await;
        let after = fieldlink_collector_api::clock::now_ms();

        assert_eq!(batch.len(), points.len(), "one sample per point");
        let samples = by_point(&batch);
        for (name, value) in &expected {
            let sample = samples[&**name];
            assert_eq!(sample.quality, Quality::Good, "{name}");
            assert_eq!(&sample.value, value, "{name}");
            assert!(
                before <= sample.ts && sample.ts <= after,
                "{name}: ts when read"
            );
            assert_eq!(&*sample.device, "press-1");
        }
        // Holding 0..41 is contiguous, input 0..7 too, coils 0..3 and 300 are apart, the
        // discrete inputs adjacent: five requests for 26 points.
        assert_eq!(plan.requests.len(), 5);
        assert_eq!(device.requests.load(Ordering::SeqCst), plan.requests.len());

        let stats = &collecting.stats;
        assert!(stats.connected.load(Ordering::Relaxed));
        assert_eq!(stats.cycles.load(Ordering::Relaxed), 1);
        assert_eq!(stats.read_errors.load(Ordering::Relaxed), 0);
        assert!(stats.last_good_read_ms.load(Ordering::Relaxed) >= before);
        assert!(stats.last_cycle_us.load(Ordering::Relaxed) > 0);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn non_finite_float_is_a_bad_sample_for_that_point_only() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[0x7FC0, 0x0000, 0x3FC0, 0x0000]); // NaN, then 1.5
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let points = vec![
            point("nan", Area::Holding, 0, DataType::F32, Abcd),
            point("ok", Area::Holding, 2, DataType::F32, Abcd),
        ];
        let mut collecting = Collecting::start(tcp_device(server.addr, points), 8);
        let batch = collecting.batch().await;
        let samples = by_point(&batch);
        assert_eq!(error(samples["nan"]), Some("not a finite number"));
        assert_eq!(samples["nan"].value, Value::None);
        assert_eq!(samples["ok"].value, Value::Float(1.5));
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}
