//! Read planning: which requests read a device's points in the fewest round trips.
//!
//! A device is slow (a request costs a round trip, often over a serial gateway), so the
//! points of one area are coalesced into as few requests as the limits allow. The plan is
//! computed once per device and executed unchanged every cycle.

use fieldlink_collector_api::{Area, DataType, WordOrder};
use std::sync::Arc;

/// One point to read: where it lives, how its raw value is decoded and scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    /// The point's name, unique within its device.
    pub name: Arc<str>,
    /// The data area it lives in.
    pub area: Area,
    /// Its first (zero-based) address in that area.
    pub address: u16,
    /// How its registers are decoded; ignored in the bit areas, where a point is one bit.
    pub data_type: DataType,
    /// Byte and word order of its registers.
    pub order: WordOrder,
    /// Multiplier applied to the raw value.
    pub scale: f64,
    /// Added to the raw value after scaling.
    pub offset: f64,
    /// `bit = N`: the point is the bool of bit N (least significant = 0) of its `u16` or
    /// `u32` register value; scale and offset do not apply.
    pub bit: Option<u8>,
}

impl PointSpec {
    /// How many addresses the point occupies: one bit in the bit areas, otherwise the
    /// registers of its type. At least one, so that no request ever has quantity 0.
    pub(crate) fn span(&self) -> u16 {
        if self.area.is_bits() {
            1
        } else {
            self.data_type.registers().max(1)
        }
    }
}

/// Limits for coalescing points into requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// The most unused addresses a request may read between two of its points.
    pub max_gap: u16,
    /// The most registers one request may read (capped at the protocol's 125).
    pub max_registers: u16,
    /// The most bits one request may read (capped at the protocol's 2000).
    pub max_bits: u16,
}

impl Default for PlanLimits {
    /// No gaps, and the protocol's own limits: devices that reject reading unmapped
    /// addresses stay readable without configuration.
    fn default() -> Self {
        PlanLimits {
            max_gap: 0,
            max_registers: 125,
            max_bits: 2000,
        }
    }
}

impl PlanLimits {
    /// The most addresses one request may span in `area`: the configured limit, within
    /// the protocol's, and at least one.
    fn quantity_limit(self, area: Area) -> u32 {
        let configured = if area.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        };
        u32::from(configured.clamp(1, area.protocol_limit()))
    }
}

/// One read request of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// The area read.
    pub area: Area,
    /// The first address read.
    pub address: u16,
    /// How many registers or bits are read.
    pub quantity: u16,
    /// The points this request serves, as indexes into the planned points slice, in
    /// address order.
    pub points: Vec<usize>,
}

/// The requests that read every point of a device once, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    /// The requests, grouped by area, in address order within an area.
    pub requests: Vec<ReadRequest>,
}

impl ReadPlan {
    /// Plans the fewest requests that read every point: points of one area share a request
    /// when the request stays within `limits` and no two neighbouring points are more than
    /// `max_gap` unused addresses apart. A point is never split across requests; a point
    /// larger than the limit on its own gets a request of its own size, which the device
    /// will answer with an exception (configuration should reject such points first).
    pub fn new(points: &[PointSpec], limits: PlanLimits) -> ReadPlan {
        // Greedy over points sorted by start address is optimal here: a request must start
        // at the first unserved point, and taking every following point that still fits
        // never leaves the next request a worse start (the brute-force test checks this).
        // Oversized points are set apart first: they could not share a request anyway, and
        // left in the sequence they would cut it in two.
        let (oversized, fitting): (Vec<usize>, Vec<usize>) = (0..points.len())
            .partition(|&i| u32::from(points[i].span()) > limits.quantity_limit(points[i].area));
        let mut requests: Vec<ReadRequest> = oversized
            .into_iter()
            .map(|i| OpenRequest::new(i, &points[i]).close())
            .collect();

        let mut order = fitting;
        order.sort_by_key(|&i| (points[i].area, points[i].address, points[i].span(), i));
        let mut open: Option<OpenRequest> = None;
        for i in order {
            let point = &points[i];
            if let Some(request) = &mut open
                && request.try_add(i, point, limits)
            {
                continue;
            }
            if let Some(done) = open.replace(OpenRequest::new(i, point)) {
                requests.push(done.close());
            }
        }
        if let Some(done) = open {
            requests.push(done.close());
        }
        requests.sort_by_key(|r| (r.area, r.address, r.quantity));
        ReadPlan { requests }
    }
}

/// A request being grown by the planner; its end is a `u32` so that a point ending at
/// the top of the address space cannot overflow.
struct OpenRequest {
    area: Area,
    address: u16,
    end: u32,
    points: Vec<usize>,
}

impl OpenRequest {
    /// A request holding point `i` alone.
    fn new(i: usize, point: &PointSpec) -> Self {
        OpenRequest {
            area: point.area,
            address: point.address,
            end: u32::from(point.address) + u32::from(point.span()),
            points: vec![i],
        }
    }

    /// Adds point `i` if the request still fits the limits with it.
    fn try_add(&mut self, i: usize, point: &PointSpec, limits: PlanLimits) -> bool {
        let start = u32::from(point.address);
        let end = start + u32::from(point.span());
        let fits = point.area == self.area
            && start <= self.end + u32::from(limits.max_gap)
            && end.max(self.end) - u32::from(self.address) <= limits.quantity_limit(self.area);
        if fits {
            self.end = self.end.max(end);
            self.points.push(i);
        }
        fits
    }

    fn close(self) -> ReadRequest {
        // A request spans either one point (at most u16::MAX addresses) or several within
        // a limit of at most 2000, so the quantity always fits.
        let quantity = u16::try_from(self.end - u32::from(self.address)).unwrap_or(u16::MAX);
        ReadRequest {
            area: self.area,
            address: self.address,
            quantity,
            points: self.points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(area: Area, address: u16, data_type: DataType) -> PointSpec {
        PointSpec {
            name: format!("{area}-{address}").into(),
            area,
            address,
            data_type,
            order: WordOrder::Abcd,
            scale: 1.0,
            offset: 0.0,
            bit: None,
        }
    }

    fn holding(address: u16, data_type: DataType) -> PointSpec {
        point(Area::Holding, address, data_type)
    }

    /// The plan as `(area, address, quantity, points)` tuples, for compact assertions.
    fn shape(plan: &ReadPlan) -> Vec<(Area, u16, u16, Vec<usize>)> {
        plan.requests
            .iter()
            .map(|r| (r.area, r.address, r.quantity, r.points.clone()))
            .collect()
    }

    #[test]
    fn adjacent_points_merge_into_one_request() {
        let points = [
            holding(0, DataType::U16),
            holding(1, DataType::F32),
            holding(3, DataType::U64),
        ];
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(shape(&plan), vec![(Area::Holding, 0, 7, vec![0, 1, 2])]);
    }

    #[test]
    fn gap_within_max_gap_merges_and_beyond_splits() {
        let points = [holding(0, DataType::U16), holding(4, DataType::U16)];
        let limits = |max_gap| PlanLimits {
            max_gap,
            ..PlanLimits::default()
        };

        // Three unused registers (1, 2, 3) between the points.
        let merged = ReadPlan::new(&points, limits(3));
        assert_eq!(shape(&merged), vec![(Area::Holding, 0, 5, vec![0, 1])]);

        let split = ReadPlan::new(&points, limits(2));
        assert_eq!(
            shape(&split),
            vec![
                (Area::Holding, 0, 1, vec![0]),
                (Area::Holding, 4, 1, vec![1])
            ]
        );
    }

    #[test]
    fn a_request_never_exceeds_125_registers() {
        let points: Vec<_> = (0..126).map(|a| holding(a, DataType::U16)).collect();
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(
            shape(&plan),
            vec![
                (Area::Holding, 0, 125, (0..125).collect()),
                (Area::Holding, 125, 1, vec![125]),
            ]
        );
    }

    #[test]
    fn configured_register_limit_above_protocol_is_capped() {
        let points: Vec<_> = (0..200).map(|a| holding(a, DataType::U16)).collect();
        let limits = PlanLimits {
            max_registers: 1000,
            ..PlanLimits::default()
        };
        let plan = ReadPlan::new(&points, limits);
        assert_eq!(plan.requests.len(), 2);
        assert_eq!(plan.requests[0].quantity, 125);
    }

    #[test]
    fn four_register_value_near_the_limit_is_not_split() {
        // Registers 0..121 are single points; the u64 at 121 ends at 125 (fits), the u64
        // at 123 would end at 127, so it must start a request of its own.
        let mut points: Vec<_> = (0..121).map(|a| holding(a, DataType::U16)).collect();
        points.push(holding(121, DataType::U64));
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(plan.requests.len(), 1);
        assert_eq!(plan.requests[0].quantity, 125);

        let mut points: Vec<_> = (0..123).map(|a| holding(a, DataType::U16)).collect();
        points.push(holding(123, DataType::U64));
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(
            shape(&plan)[1..],
            [(Area::Holding, 123, 4, vec![123])],
            "the u64 is read whole by the second request"
        );
        assert_eq!(plan.requests[0].quantity, 123);
    }

    #[test]
    fn max_registers_per_request_splits_long_runs() {
        let points: Vec<_> = (0..30).map(|a| holding(a, DataType::U16)).collect();
        let limits = PlanLimits {
            max_registers: 10,
            ..PlanLimits::default()
        };
        let plan = ReadPlan::new(&points, limits);
        let quantities: Vec<u16> = plan.requests.iter().map(|r| r.quantity).collect();
        assert_eq!(quantities, vec![10, 10, 10]);
    }

    #[test]
    fn max_registers_per_request_never_splits_a_value() {
        // u16 at 0, f32 at 1-2, u16 at 3 with a limit of 2: the f32 must stay whole.
        let points = [
            holding(0, DataType::U16),
            holding(1, DataType::F32),
            holding(3, DataType::U16),
        ];
        let limits = PlanLimits {
            max_registers: 2,
            ..PlanLimits::default()
        };
        assert_eq!(
            shape(&ReadPlan::new(&points, limits)),
            vec![
                (Area::Holding, 0, 1, vec![0]),
                (Area::Holding, 1, 2, vec![1]),
                (Area::Holding, 3, 1, vec![2]),
            ]
        );
    }

    #[test]
    fn max_bits_per_request_splits_coils_and_leaves_registers_alone() {
        let mut points: Vec<_> = (0..40)
            .map(|a| point(Area::Coil, a, DataType::Bool))
            .collect();
        points.extend((0..40).map(|a| holding(a, DataType::U16)));
        let limits = PlanLimits {
            max_bits: 16,
            ..PlanLimits::default()
        };
        let plan = ReadPlan::new(&points, limits);
        let shape: Vec<(Area, u16, u16)> = plan
            .requests
            .iter()
            .map(|r| (r.area, r.address, r.quantity))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Area::Holding, 0, 40),
                (Area::Coil, 0, 16),
                (Area::Coil, 16, 16),
                (Area::Coil, 32, 8),
            ]
        );
    }

    #[test]
    fn bit_and_register_areas_are_never_mixed() {
        let points = [
            point(Area::Coil, 0, DataType::Bool),
            holding(0, DataType::U16),
            point(Area::Discrete, 1, DataType::Bool),
            point(Area::Input, 1, DataType::U16),
            point(Area::Coil, 1, DataType::Bool),
        ];
        let plan = ReadPlan::new(
            &points,
            PlanLimits {
                max_gap: 10,
                ..PlanLimits::default()
            },
        );
        assert_eq!(
            shape(&plan),
            vec![
                (Area::Holding, 0, 1, vec![1]),
                (Area::Input, 1, 1, vec![3]),
                (Area::Coil, 0, 2, vec![0, 4]),
                (Area::Discrete, 1, 1, vec![2]),
            ]
        );
    }

    #[test]
    fn bits_merge_up_to_2000() {
        let points: Vec<_> = (0..2001)
            .map(|a| point(Area::Coil, a, DataType::Bool))
            .collect();
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(plan.requests.len(), 2);
        assert_eq!(plan.requests[0].quantity, 2000);
        assert_eq!(plan.requests[1].quantity, 1);
    }

    #[test]
    fn overlapping_points_share_a_request() {
        // A u32 and a u16 reading its low word, plus a string covering both.
        let points = [
            holding(10, DataType::U32),
            holding(11, DataType::U16),
            holding(9, DataType::String { len: 4 }),
        ];
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(shape(&plan), vec![(Area::Holding, 9, 4, vec![2, 0, 1])]);
    }

    #[test]
    fn point_at_the_top_of_the_address_space_does_not_overflow() {
        let points = [holding(65534, DataType::U16), holding(65535, DataType::U64)];
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(shape(&plan), vec![(Area::Holding, 65534, 5, vec![0, 1])]);
    }

    #[test]
    fn oversized_point_gets_its_own_request() {
        let points = [
            holding(0, DataType::U16),
            holding(1, DataType::String { len: 130 }),
        ];
        let plan = ReadPlan::new(&points, PlanLimits::default());
        assert_eq!(
            shape(&plan),
            vec![
                (Area::Holding, 0, 1, vec![0]),
                (Area::Holding, 1, 130, vec![1])
            ]
        );
    }

    /// Regression: an oversized point sorted between two small ones cut them into two
    /// requests (found by the brute-force test).
    #[test]
    fn oversized_point_does_not_cut_its_neighbours_apart() {
        let points = [
            holding(1, DataType::String { len: 7 }),
            holding(1, DataType::String { len: 3 }),
            holding(4, DataType::U16),
        ];
        let limits = PlanLimits {
            max_registers: 4,
            ..PlanLimits::default()
        };
        assert_eq!(
            shape(&ReadPlan::new(&points, limits)),
            vec![
                (Area::Holding, 1, 4, vec![1, 2]),
                (Area::Holding, 1, 7, vec![0])
            ]
        );
    }

    #[test]
    fn no_points_no_requests() {
        assert!(
            ReadPlan::new(&[], PlanLimits::default())
                .requests
                .is_empty()
        );
    }

    /// Whether `group` (indexes into `points`) can be one request: one area, within the
    /// limit (or a single point), and no hole between its points wider than `max_gap`.
    fn valid_group(points: &[PointSpec], group: &[usize], limits: PlanLimits) -> bool {
        let area = points[group[0]].area;
        if group.iter().any(|&i| points[i].area != area) {
            return false;
        }
        let mut spans: Vec<(u32, u32)> = group
            .iter()
            .map(|&i| {
                let start = u32::from(points[i].address);
                (start, start + u32::from(points[i].span()))
            })
            .collect();
        spans.sort_unstable();
        let (start, mut end) = spans[0];
        for &(s, e) in &spans[1..] {
            if s > end + u32::from(limits.max_gap) {
                return false;
            }
            end = end.max(e);
        }
        group.len() == 1 || end - start <= limits.quantity_limit(area)
    }

    /// The fewest valid groups any partition of the points into requests can have, by
    /// enumerating every partition (restricted growth strings).
    fn optimal_request_count(points: &[PointSpec], limits: PlanLimits) -> usize {
        fn search(
            points: &[PointSpec],
            limits: PlanLimits,
            next: usize,
            groups: &mut Vec<Vec<usize>>,
            best: &mut usize,
        ) {
            if groups.len() >= *best {
                return;
            }
            if next == points.len() {
                if groups.iter().all(|g| valid_group(points, g, limits)) {
                    *best = groups.len();
                }
                return;
            }
            for g in 0..groups.len() {
                groups[g].push(next);
                search(points, limits, next + 1, groups, best);
                groups[g].pop();
            }
            groups.push(vec![next]);
            search(points, limits, next + 1, groups, best);
            groups.pop();
        }
        let mut best = usize::MAX;
        search(points, limits, 0, &mut Vec::new(), &mut best);
        best
    }

    #[test]
    fn plan_is_valid_and_minimal_on_random_small_layouts() {
        let mut rng = fastrand::Rng::with_seed(0x6d6f_6462);
        let types = [
            DataType::U16,
            DataType::U32,
            DataType::U64,
            DataType::String { len: 3 },
            DataType::String { len: 7 },
        ];
        for case in 0..3000 {
            let n = rng.usize(1..=7);
            let points: Vec<PointSpec> = (0..n)
                .map(|_| {
                    let area = if rng.u8(0..5) == 0 {
                        Area::Coil
                    } else {
                        Area::Holding
                    };
                    point(area, rng.u16(0..24), types[rng.usize(..types.len())])
                })
                .collect();
            let limits = PlanLimits {
                max_gap: rng.u16(0..4),
                max_registers: rng.u16(3..12),
                max_bits: rng.u16(1..6),
            };

            let plan = ReadPlan::new(&points, limits);

            let mut served: Vec<usize> = plan
                .requests
                .iter()
                .flat_map(|r| r.points.clone())
                .collect();
            served.sort_unstable();
            assert_eq!(
                served,
                (0..n).collect::<Vec<_>>(),
                "case {case}: every point once"
            );
            for request in &plan.requests {
                assert!(
                    valid_group(&points, &request.points, limits),
                    "case {case}: {request:?}"
                );
                let start = request.points.iter().map(|&i| points[i].address).min();
                let end = request
                    .points
                    .iter()
                    .map(|&i| u32::from(points[i].address) + u32::from(points[i].span()))
                    .max();
                assert_eq!(
                    Some(request.address),
                    start,
                    "case {case}: starts at its first point"
                );
                assert_eq!(
                    end,
                    Some(u32::from(request.address) + u32::from(request.quantity)),
                    "case {case}: ends at its last point"
                );
            }
            assert_eq!(
                plan.requests.len(),
                optimal_request_count(&points, limits),
                "case {case}: not minimal for {points:?} with {limits:?}"
            );
        }
    }
}
