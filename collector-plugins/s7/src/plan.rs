//! Read planning: a device's points become byte ranges, ranges become read-var items,
//! and items are packed into as few requests as the negotiated PDU size allows.
//!
//! - Points of one area (one data block, the flags, the inputs, the outputs) merge into a
//!   range when no more than `max_gap` unused bytes lie between them and the range still
//!   fits one item's answer (`PDU − 18` bytes).
//! - A range is one item, unless a single point is larger than that (a long STRING with a
//!   small PDU): its range is then cut into several items, reassembled before decoding.
//! - Items go into requests in order while both the request (`10 + 2 + 12 n` bytes, at
//!   most 20 items) and its answer (`12 + 2 + Σ (4 + bytes + fill)`) fit the PDU.
//!
//! The plan depends on the PDU size the PLC grants, so the collector plans again after
//! each connect; `fieldlink check` shows the plan for the PDU size the device asks for.

use crate::address::Area;
use crate::frame::{ACK_HEADER, ANSWER_ITEM_HEADER, ItemSpec, MAX_ITEMS, read_request_size};
use crate::point::S7Point;

/// Contiguous bytes of one area that serve one or more points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The area.
    pub area: Area,
    /// The first byte.
    pub start: u32,
    /// How many bytes.
    pub len: u32,
    /// The points it serves, as indexes into the planned points, in address order.
    pub points: Vec<usize>,
}

/// One read-var item: a piece of a range (usually the whole range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// The range it belongs to (index into [`ReadPlan::ranges`]).
    pub range: usize,
    /// Where the item starts within its range.
    pub offset: u32,
    /// What goes on the wire.
    pub spec: ItemSpec,
}

/// One read-var request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Its items, in order.
    pub items: Vec<Item>,
}

/// Every point of a device read once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    /// The PDU size planned for.
    pub pdu_size: u16,
    /// The byte ranges.
    pub ranges: Vec<Range>,
    /// The requests, in execution order.
    pub requests: Vec<Request>,
}

/// The largest item one answer can carry in a PDU of `pdu_size` bytes.
pub fn max_item_bytes(pdu_size: u16) -> u32 {
    u32::from(pdu_size)
        .saturating_sub((ACK_HEADER + 2 + ANSWER_ITEM_HEADER) as u32)
        .max(2)
}

impl ReadPlan {
    /// Plans the requests reading `points` with at most `max_gap` unused bytes inside a
    /// range, for a PDU of `pdu_size` bytes.
    pub fn new(points: &[S7Point], max_gap: u32, pdu_size: u16) -> ReadPlan {
        let max_item = max_item_bytes(pdu_size);
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| (points[i].address.area, points[i].start(), points[i].size()));

        let mut ranges: Vec<Range> = Vec::new();
        for i in order {
            let point = &points[i];
            if let Some(range) = ranges.last_mut()
                && range.area == point.address.area
                && point.start() <= range.start + range.len + max_gap
                && point.end().max(range.start + range.len) - range.start <= max_item
            {
                range.len = range.len.max(point.end() - range.start);
                range.points.push(i);
                continue;
            }
            ranges.push(Range {
                area: point.address.area,
                start: point.start(),
                len: point.size(),
                points: vec![i],
            });
        }

        let mut requests = Vec::new();
        let mut open = Request::default();
        let mut answer = ACK_HEADER + 2;
        for (r, range) in ranges.iter().enumerate() {
            let mut offset = 0;
            while offset < range.len {
                let len = (range.len - offset).min(max_item);
                let spec = ItemSpec {
                    area_code: range.area.code(),
                    db: range.area.db(),
                    start: range.start + offset,
                    len: u16::try_from(len).unwrap_or(u16::MAX),
                };
                // Counting a fill byte for every odd item keeps the estimate safe.
                let cost = ANSWER_ITEM_HEADER + len as usize + len as usize % 2;
                let fits = open.items.len() < MAX_ITEMS
                    && read_request_size(open.items.len() + 1) <= usize::from(pdu_size)
                    && answer + cost <= usize::from(pdu_size);
                if !fits && !open.items.is_empty() {
                    requests.push(std::mem::take(&mut open));
                    answer = ACK_HEADER + 2;
                }
                open.items.push(Item {
                    range: r,
                    offset,
                    spec,
                });
                answer += cost;
                offset += len;
            }
        }
        if !open.items.is_empty() {
            requests.push(open);
        }
        ReadPlan {
            pdu_size,
            ranges,
            requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::S7Type;

    fn point(address: &str, data_type: S7Type) -> S7Point {
        S7Point {
            name: address.into(),
            address: address.parse().expect("address"),
            data_type,
            bit: None,
            scale: 1.0,
            offset: 0.0,
        }
    }

    fn shape(plan: &ReadPlan) -> Vec<Vec<(u8, u16, u32, u16)>> {
        plan.requests
            .iter()
            .map(|r| {
                r.items
                    .iter()
                    .map(|i| (i.spec.area_code, i.spec.db, i.spec.start, i.spec.len))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn neighbours_in_one_block_share_an_item_and_areas_share_a_request() {
        let points = [
            point("DB1.DBW0", S7Type::I16),
            point("DB1.DBD2", S7Type::F32),
            point("DB1.DBX6.1", S7Type::Bool),
            point("DB2.DBW0", S7Type::U16),
            point("M10.0", S7Type::Bool),
            point("MW12", S7Type::U16),
            point("IW64", S7Type::U16),
        ];
        let plan = ReadPlan::new(&points, 2, 240);
        assert_eq!(
            shape(&plan),
            [vec![
                (0x81, 0, 64, 2),
                (0x83, 0, 10, 4),
                (0x84, 1, 0, 7),
                (0x84, 2, 0, 2),
            ]]
        );
        assert_eq!(plan.ranges[2].points, [0, 1, 2]);
    }

    #[test]
    fn gaps_beyond_max_gap_split_ranges() {
        let points = [point("MW0", S7Type::U16), point("MW6", S7Type::U16)];
        assert_eq!(ReadPlan::new(&points, 4, 240).ranges.len(), 1);
        assert_eq!(ReadPlan::new(&points, 3, 240).ranges.len(), 2);
    }

    #[test]
    fn requests_stay_within_twenty_items_and_the_pdu() {
        // 30 words 100 bytes apart: 30 items; at most 19 fit a request of a 240-byte PDU
        // (10 + 2 + 12 × 19 = 240), and 20 in a larger one.
        let points: Vec<S7Point> = (0..30)
            .map(|i| point(&format!("DB1.DBW{}", i * 100), S7Type::U16))
            .collect();
        let small = ReadPlan::new(&points, 0, 240);
        assert_eq!(
            small
                .requests
                .iter()
                .map(|r| r.items.len())
                .collect::<Vec<_>>(),
            [19, 11]
        );
        let large = ReadPlan::new(&points, 0, 960);
        assert_eq!(
            large
                .requests
                .iter()
                .map(|r| r.items.len())
                .collect::<Vec<_>>(),
            [20, 10]
        );
    }

    #[test]
    fn answers_stay_within_the_pdu() {
        // 200 contiguous bytes of words in a 240-byte PDU: 222 bytes per item at most.
        let points: Vec<S7Point> = (0..100)
            .map(|i| point(&format!("DB1.DBW{}", i * 2), S7Type::U16))
            .collect();
        let plan = ReadPlan::new(&points, 0, 240);
        assert_eq!(max_item_bytes(240), 222);
        assert_eq!(shape(&plan), [vec![(0x84, 1, 0, 200)]]);
        let points: Vec<S7Point> = (0..200)
            .map(|i| point(&format!("DB1.DBW{}", i * 2), S7Type::U16))
            .collect();
        let plan = ReadPlan::new(&points, 0, 240);
        assert_eq!(
            shape(&plan),
            [vec![(0x84, 1, 0, 222)], vec![(0x84, 1, 222, 178)]],
            "no word is cut between two ranges"
        );
        for request in &plan.requests {
            let answer: usize = 14
                + request
                    .items
                    .iter()
                    .map(|i| 4 + usize::from(i.spec.len) + usize::from(i.spec.len) % 2)
                    .sum::<usize>();
            assert!(answer <= 240, "{answer}");
        }
    }

    #[test]
    fn a_point_larger_than_an_item_is_cut_into_items_of_one_range() {
        let points = [point("DB3.DBB0", S7Type::String { len: 254 })];
        let plan = ReadPlan::new(&points, 0, 240);
        assert_eq!(plan.ranges.len(), 1);
        assert_eq!(plan.ranges[0].len, 256);
        assert_eq!(
            shape(&plan),
            [vec![(0x84, 3, 0, 222)], vec![(0x84, 3, 222, 34)]]
        );
        assert_eq!(plan.requests[1].items[0].offset, 222);
    }
}
