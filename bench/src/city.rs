//! The simulated city's enterprises, the same in every scenario that registers a city: the
//! `i`-th enterprise is drawn from a fixed seed, so every run registers the same city.
//!
//! Distributions, after the plan's figures (4,000 enterprises of the key industries, 480
//! of them being transformed) and a large city's registers:
//! - industries in turn (an eighth each), districts drawn evenly over the 17;
//! - 12 % on the program's list (480 of 4,000);
//! - 1 % national little giants, 8 % provincial specialised, the rest not specialised;
//!   above designated size: 80 % of the little giants, 60 % of the provincial ones, 27 % of
//!   the others (30 % in all);
//! - maturity mostly level 1 or 2, more of 3 and 4 the larger and more specialised the
//!   enterprise, the transformed ones nearly all assessed; the rest not assessed yet;
//!   assessed on a day of the last two years;
//! - on the cloud (for scenarios that choose which enterprises deliver data): 75 % of the
//!   transformed, 60 % of the above-size, 40 % of the others.

use fieldlink_platform::catalog::{District, Industry};
use fieldlink_platform::clock::{DAY_MS, date_string, day_of};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::profile::{Size, Specialised};

/// The seed of the city.
const SEED: u64 = 0x6369_7479_2d32_3032;
/// The first serial of the city's credit codes (`91420100` + 9 digits).
const FIRST_SERIAL: usize = 600_000;
/// The third-party assessors the assessments name.
const ASSESSORS: [&str; 3] = [
    "中国电子技术标准化研究院",
    "湖北省中小企业数字化转型评估中心",
    "武汉市工业互联网研究院",
];

/// One enterprise of the simulated city.
#[derive(Debug, Clone)]
pub struct CityEnterprise {
    /// Its credit code.
    pub credit_code: String,
    /// Its industry.
    pub industry: Industry,
    /// Its district.
    pub district: District,
    /// On the program's list.
    pub in_program: bool,
    /// Above or below designated size.
    pub size: Size,
    /// Its specialised class.
    pub specialised: Specialised,
    /// Its maturity level and how many days before now it was assessed, if it was.
    pub maturity: Option<(u8, i64)>,
    /// Delivers data, in scenarios that choose.
    pub on_cloud: bool,
}

/// A number in `[0, 1)` for enterprise `i` and the draw `what` (splitmix64).
fn draw(i: usize, what: u64) -> f64 {
    let mut z = SEED ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ what.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The index of the band `x` falls in, bands given by their shares (summing to 1).
fn band(x: f64, shares: &[f64]) -> usize {
    let mut upper = 0.0;
    for (index, share) in shares.iter().enumerate() {
        upper += share;
        if x < upper {
            return index;
        }
    }
    shares.len() - 1
}

/// The `i`-th enterprise of the city.
pub fn enterprise(i: usize) -> anyhow::Result<CityEnterprise> {
    let credit_code =
        CreditCode::complete(&format!("91420100{:09}", FIRST_SERIAL + i))?.to_string();
    let districts: Vec<District> = District::all().collect();
    let district = districts[(draw(i, 1) * districts.len() as f64) as usize];
    let in_program = draw(i, 2) < 0.12;
    let specialised = match band(draw(i, 3), &[0.01, 0.08, 0.91]) {
        0 => Specialised::LittleGiant,
        1 => Specialised::Provincial,
        _ => Specialised::None,
    };
    let above_share = match specialised {
        Specialised::LittleGiant => 0.8,
        Specialised::Provincial => 0.6,
        Specialised::None => 0.27,
    };
    let size = if draw(i, 4) < above_share {
        Size::Above
    } else {
        Size::Below
    };
    // Shares of: not assessed, level 1, 2, 3, 4.
    let levels: [f64; 5] = match (specialised, size, in_program) {
        (Specialised::LittleGiant, _, _) => [0.05, 0.05, 0.30, 0.45, 0.15],
        (Specialised::Provincial, _, _) | (_, Size::Above, _) => [0.10, 0.20, 0.35, 0.28, 0.07],
        (_, _, true) => [0.05, 0.25, 0.50, 0.15, 0.05],
        _ => [0.25, 0.35, 0.30, 0.08, 0.02],
    };
    let maturity = match band(draw(i, 5), &levels) {
        0 => None,
        level => Some((level as u8, 1 + (draw(i, 6) * 730.0) as i64)),
    };
    let on_cloud_share = if in_program {
        0.75
    } else if size == Size::Above {
        0.6
    } else {
        0.4
    };
    Ok(CityEnterprise {
        credit_code,
        industry: Industry::ALL[i % Industry::ALL.len()],
        district,
        in_program,
        size,
        specialised,
        maturity,
        on_cloud: draw(i, 7) < on_cloud_share,
    })
}

/// The first `count` enterprises of the city as the bureau's import file, with their
/// classes and assessments (dated in the zone `utc_offset_minutes` east of UTC, before
/// `now`), and the enterprises.
pub fn registry_csv(
    count: usize,
    now: i64,
    utc_offset_minutes: i32,
) -> anyhow::Result<(String, Vec<CityEnterprise>)> {
    let mut csv = String::from(
        "credit_code,name,industry,district,in_program,size,specialised,maturity_level,assessed_at,assessor\n",
    );
    let mut enterprises = Vec::with_capacity(count);
    for i in 0..count {
        let e = enterprise(i)?;
        let (level, date, assessor) = match e.maturity {
            Some((level, days_ago)) => (
                level.to_string(),
                date_string(day_of(now - days_ago * DAY_MS, utc_offset_minutes)),
                ASSESSORS[i % ASSESSORS.len()],
            ),
            None => (String::new(), String::new(), ""),
        };
        csv.push_str(&format!(
            "{},城市企业 {i},{},{},{},{},{},{level},{date},{assessor}\n",
            e.credit_code,
            e.industry.code(),
            e.district.name(),
            e.in_program,
            e.size.code(),
            e.specialised.code(),
        ));
        enterprises.push(e);
    }
    Ok((csv, enterprises))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_has_the_planned_shares_and_is_the_same_every_time() {
        let city: Vec<CityEnterprise> = (0..4000).map(|i| enterprise(i).unwrap()).collect();
        let share = |f: &dyn Fn(&CityEnterprise) -> bool| {
            city.iter().filter(|e| f(e)).count() as f64 / city.len() as f64
        };
        let near = |found: f64, expected: f64, tolerance: f64| {
            assert!(
                (found - expected).abs() < tolerance,
                "{found} is not near {expected}"
            );
        };
        near(share(&|e| e.in_program), 0.12, 0.015);
        near(share(&|e| e.size == Size::Above), 0.30, 0.02);
        near(
            share(&|e| e.specialised == Specialised::Provincial),
            0.08,
            0.012,
        );
        near(
            share(&|e| e.specialised == Specialised::LittleGiant),
            0.01,
            0.005,
        );
        near(
            share(&|e| e.maturity.is_some_and(|(l, _)| l <= 2)),
            0.6,
            0.06,
        );
        near(
            share(&|e| e.maturity.is_some_and(|(l, _)| l >= 3)),
            0.15,
            0.05,
        );
        assert_eq!(enterprise(17).unwrap().credit_code, city[17].credit_code);
        assert_eq!(enterprise(17).unwrap().maturity, city[17].maturity);
        let districts: std::collections::HashSet<&str> =
            city.iter().map(|e| e.district.name()).collect();
        assert_eq!(districts.len(), 17);
    }
}
