//! S7comm answers and read planning: arbitrary TPKT, COTP and S7 PDUs never panic the
//! decoders; items of a read-var answer are returned only with the length asked; and a plan
//! for arbitrary points and PDU sizes reads every point within items that fit the PDU,
//! each point's bytes decoding or failing cleanly.

#![no_main]

use arbitrary::Arbitrary;
use fieldlink_s7::frame::{self, Cotp};
use fieldlink_s7::plan::{ReadPlan, max_item_bytes};
use fieldlink_s7::{Address, S7Point, S7Type};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// A packet as the PLC might send it.
    packet: Vec<u8>,
    /// The byte counts asked for, item by item.
    asked: Vec<u16>,
    pdu_size: u16,
    max_gap: u16,
    points: Vec<Point>,
    /// The bytes each point decodes from, cycled.
    bytes: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Point {
    address: String,
    data_type: u8,
    len: u8,
    bit: Option<u8>,
}

const TYPES: [&str; 12] = [
    "bool", "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "string",
];

fuzz_target!(|input: Input| {
    // Decoders: whatever the bytes, an answer or an error.
    if let Some(header) = input.packet.first_chunk::<4>() {
        let _ = frame::tpkt_len(*header);
    }
    if let Ok(Cotp::Data { payload, .. }) = frame::parse_cotp(&input.packet) {
        let _ = frame::parse_ack(payload);
    }
    if let Ok(ack) = frame::parse_ack(&input.packet) {
        let _ = frame::parse_setup(&ack);
        if let Ok(items) = frame::parse_read(&ack, &input.asked) {
            assert_eq!(items.len(), input.asked.len());
            for (item, asked) in items.iter().zip(&input.asked) {
                if let Ok(bytes) = item {
                    assert_eq!(bytes.len(), usize::from(*asked));
                }
            }
        }
    }

    // Planning and decoding.
    if input.points.len() > 64 {
        return;
    }
    let mut points = Vec::new();
    for (i, p) in input.points.iter().enumerate() {
        let Ok(address) = p.address.parse::<Address>() else {
            continue;
        };
        let Some(mut data_type) = S7Type::parse(TYPES[usize::from(p.data_type) % TYPES.len()])
        else {
            continue;
        };
        if let S7Type::String { len } = &mut data_type {
            *len = p.len.max(1);
        }
        if !data_type.fits(address.width) {
            continue;
        }
        points.push(S7Point {
            name: format!("p{i}").into(),
            address,
            data_type,
            bit: p.bit.filter(|b| *b < 16 && data_type == S7Type::U16),
            scale: 1.0,
            offset: 0.0,
        });
    }
    let pdu_size = input.pdu_size.clamp(240, 960);
    let plan = ReadPlan::new(&points, u32::from(input.max_gap), pdu_size);
    let mut served = vec![0u32; points.len()];
    for range in &plan.ranges {
        for &p in &range.points {
            served[p] += 1;
            assert!(points[p].start() >= range.start);
            assert!(points[p].end() <= range.start + range.len);
        }
    }
    assert!(served.iter().all(|&n| n == 1), "every point once");
    for request in &plan.requests {
        assert!(!request.items.is_empty() && request.items.len() <= frame::MAX_ITEMS);
        assert!(frame::read_request_size(request.items.len()) <= usize::from(pdu_size));
        for item in &request.items {
            assert!(u32::from(item.spec.len) <= max_item_bytes(pdu_size));
        }
    }
    if input.bytes.is_empty() {
        return;
    }
    for point in &points {
        let own: Vec<u8> = input
            .bytes
            .iter()
            .copied()
            .cycle()
            .take(point.size() as usize)
            .collect();
        if let Ok(fieldlink_wire::Value::Float(v)) = point.decode(&own) {
            assert!(v.is_finite());
        }
    }
});
