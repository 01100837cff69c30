//! Modbus register decoding and read planning on arbitrary points, limits and register
//! contents: nothing panics; the plan reads every point exactly once, whole, within the
//! request limits; each point's registers, sliced out of its request, decode or fail
//! cleanly, and a value that decodes is one the contract's JSON can carry.

#![no_main]

use arbitrary::Arbitrary;
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::{PlanLimits, PointSpec, ReadPlan, apply_scale, decode};
use fieldlink_wire::Value;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    limits: (u16, u16, u16),
    points: Vec<Point>,
    /// The registers the device answers with, cycled to fill every request.
    registers: Vec<u16>,
}

#[derive(Debug, Arbitrary)]
struct Point {
    area: u8,
    address: u16,
    data_type: u8,
    string_len: u16,
    order: u8,
    scale: f64,
    offset: f64,
}

fuzz_target!(|input: Input| {
    if input.points.len() > 256 {
        return;
    }
    let limits = PlanLimits {
        max_gap: input.limits.0,
        max_registers: input.limits.1,
        max_bits: input.limits.2,
    };
    let points: Vec<PointSpec> = input
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| PointSpec {
            name: format!("p{i}").into(),
            area: [Area::Holding, Area::Input, Area::Coil, Area::Discrete][usize::from(p.area % 4)],
            address: p.address,
            data_type: data_type(p.data_type, p.string_len),
            order: WordOrder::ALL[usize::from(p.order % 4)],
            scale: p.scale,
            offset: p.offset,
            bit: None,
        })
        .collect();

    let plan = ReadPlan::new(&points, limits);

    let mut served = vec![0u32; points.len()];
    for request in &plan.requests {
        assert!(!request.points.is_empty(), "an empty request: {request:?}");
        assert!(request.quantity >= 1, "quantity 0: {request:?}");
        let start = u32::from(request.address);
        let end = start + u32::from(request.quantity);
        let limit = u32::from(
            if request.area.is_bits() {
                limits.max_bits
            } else {
                limits.max_registers
            }
            .clamp(1, request.area.protocol_limit()),
        );
        assert!(
            request.points.len() == 1 || end - start <= limit,
            "{request:?} exceeds {limit}"
        );
        for &i in &request.points {
            served[i] += 1;
            let point = &points[i];
            assert_eq!(point.area, request.area);
            let p_start = u32::from(point.address);
            let p_end = p_start + u32::from(span(point));
            assert!(
                start <= p_start && p_end <= end,
                "{point:?} outside {request:?}"
            );
        }
        check_values(&points, request, &input.registers);
    }
    assert!(
        served.iter().all(|&n| n == 1),
        "served {served:?} by {plan:?}"
    );
});

/// Decodes each point of `request` out of an answer filled from `registers`, as the
/// collector does, and checks the outcome.
fn check_values(points: &[PointSpec], request: &fieldlink_modbus::ReadRequest, registers: &[u16]) {
    if request.area.is_bits() || registers.is_empty() {
        return;
    }
    let answer: Vec<u16> = registers
        .iter()
        .copied()
        .cycle()
        .take(usize::from(request.quantity))
        .collect();
    for &i in &request.points {
        let point = &points[i];
        let offset = usize::from(point.address - request.address);
        let own = &answer[offset..offset + usize::from(point.data_type.registers())];
        let Ok(raw) = decode(own, point.data_type, point.order) else {
            continue;
        };
        if let Value::Float(v) = raw {
            assert!(v.is_finite(), "{point:?} decoded {v}");
        }
        if let Value::Text(text) = &raw {
            assert!(text.chars().count() <= own.len() * 2);
        }
        let _ = apply_scale(raw, point.scale, point.offset);
    }
}

fn data_type(tag: u8, string_len: u16) -> DataType {
    match tag % 10 {
        0 => DataType::Bool,
        1 => DataType::U16,
        2 => DataType::I16,
        3 => DataType::U32,
        4 => DataType::I32,
        5 => DataType::U64,
        6 => DataType::I64,
        7 => DataType::F32,
        8 => DataType::F64,
        // Short strings mostly, now and then one past the protocol's 125 registers.
        _ => DataType::String {
            len: string_len % 300,
        },
    }
}

/// The addresses a point occupies, as the planner counts them.
fn span(point: &PointSpec) -> u16 {
    if point.area.is_bits() {
        1
    } else {
        point.data_type.registers().max(1)
    }
}
