//! MC protocol answers and read planning: arbitrary 3E answers never panic the decoder and
//! give data only of the length asked; a plan for arbitrary devices reads every point once
//! within 960 words a read; each point's words decode or fail cleanly.

#![no_main]

use arbitrary::Arbitrary;
use fieldlink_collector_api::{DataType, WordOrder};
use fieldlink_mc::frame::{self, Answer};
use fieldlink_mc::{Device, Family, McPoint, ReadPlan};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    answer: Vec<u8>,
    asked: u16,
    max_gap: u16,
    max_words: u16,
    octal: bool,
    points: Vec<Point>,
    bytes: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Point {
    device: String,
    data_type: u8,
    order: u8,
    bit: Option<u8>,
}

const TYPES: [DataType; 9] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
    DataType::String { len: 3 },
];

fuzz_target!(|input: Input| {
    if let Some(header) = input.answer.first_chunk::<{ frame::ANSWER_HEADER }>() {
        let _ = frame::answer_len(header);
    }
    if let Ok(Answer::Data(data)) = frame::parse_answer(&input.answer, input.asked) {
        assert_eq!(data.len(), 2 * usize::from(input.asked));
    }

    if input.points.len() > 64 {
        return;
    }
    let family = if input.octal { Family::IqF } else { Family::Q };
    let mut points = Vec::new();
    for (i, p) in input.points.iter().enumerate() {
        let Ok(device) = Device::parse(&p.device, family) else {
            continue;
        };
        let data_type = if device.kind.bits {
            DataType::Bool
        } else {
            TYPES[usize::from(p.data_type) % TYPES.len()]
        };
        points.push(McPoint {
            name: format!("p{i}").into(),
            device,
            data_type,
            order: WordOrder::ALL[usize::from(p.order % 4)],
            bit: p.bit.filter(|b| *b < 16 && data_type == DataType::U16),
            scale: 1.0,
            offset: 0.0,
        });
    }
    let plan = ReadPlan::new(&points, u32::from(input.max_gap), input.max_words);
    let mut served = vec![0u32; points.len()];
    for read in &plan.reads {
        assert!(read.words >= 1);
        for &p in &read.points {
            served[p] += 1;
            assert!(points[p].first_word() >= read.first);
            assert!(
                points[p].first_word() + points[p].words() <= read.first + u32::from(read.words)
            );
        }
        if read.points.len() > 1 {
            assert!(read.words <= frame::MAX_WORDS);
        }
    }
    assert!(served.iter().all(|&n| n == 1), "every point once");
    if input.bytes.is_empty() {
        return;
    }
    for point in &points {
        let own: Vec<u8> = input
            .bytes
            .iter()
            .copied()
            .cycle()
            .take(2 * point.words() as usize)
            .collect();
        if let Ok(fieldlink_wire::Value::Float(v)) = point.decode(&own) {
            assert!(v.is_finite());
        }
    }
});
