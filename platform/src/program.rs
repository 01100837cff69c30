//! Every target of the plan with its figure and progress (`GET /api/v1/stats/program`):
//! the on-cloud counts (in-program enterprises, all enterprises of the key industries,
//! each industry) and the digital-maturity shares, from the same rows as the onboarding
//! counts.
//!
//! Definitions (DESIGN.md, "The bureau's cockpit"): **transformed** enterprises are the
//! in-program ones (the city's list of enterprises being transformed); an enterprise's
//! **level** is its current maturity (its newest assessment), none if never assessed.
//! - A count target has a goal count, the city's: `progress` = achieved / goal. In a
//!   district's scope it has none (the plan does not split the counts by district):
//!   `goal_count` and `progress` are `null` there.
//! - A share target has a goal share of its base: `progress` = (achieved / base) / goal
//!   share, 0 for an empty base; in a district's scope too.
//!
//! Progress is not capped; `met` says the goal is reached (computed exactly, not from the
//! rounded progress).

use crate::catalog::{District, Industry};
use crate::config::Targets;
use crate::profile::{Size, Specialised};
use crate::stats::to_csv;
use crate::store::OnboardingRow;
use serde::{Deserialize, Serialize};

/// The Chinese label of [`Target::OnCloudInProgram`].
pub const LABEL_ON_CLOUD_IN_PROGRAM: &str = "改造企业上云";
/// The Chinese label of [`Target::OnCloudKeyIndustries`].
pub const LABEL_ON_CLOUD_KEY_INDUSTRIES: &str = "重点行业企业上云";
/// The Chinese label of [`Target::OnCloudIndustry`], `{industry}` being its name.
pub const LABEL_ON_CLOUD_INDUSTRY: &str = "{industry}企业上云";
/// The Chinese label of [`Target::MaturityL2Transformed`].
pub const LABEL_MATURITY_L2_TRANSFORMED: &str = "改造企业数字化水平达二级及以上";
/// The Chinese label of [`Target::MaturityL3AboveOrProvincial`].
pub const LABEL_MATURITY_L3_ABOVE_OR_PROVINCIAL: &str =
    "规上及省级专精特新企业数字化水平达三级及以上";
/// The Chinese label of [`Target::MaturityL3LittleGiant`].
pub const LABEL_MATURITY_L3_LITTLE_GIANT: &str = "国家级专精特新“小巨人”企业数字化水平达三级及以上";

/// One target of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// In-program enterprises on the cloud (480).
    OnCloudInProgram,
    /// Enterprises of the key industries on the cloud (4,000): every registered one.
    OnCloudKeyIndustries,
    /// Enterprises of one industry on the cloud (1,000 each).
    OnCloudIndustry(Industry),
    /// Every transformed enterprise at level 2 or above.
    MaturityL2Transformed,
    /// At least 50 % of the above-size and the provincial specialised enterprises at
    /// level 3 or above.
    MaturityL3AboveOrProvincial,
    /// At least 70 % of the national "little giants" at level 3 or above.
    MaturityL3LittleGiant,
}

/// What a target's progress is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// A number of enterprises.
    Count(u64),
    /// A share of the base, in percent.
    Percent(u64),
}

impl Target {
    /// Every target, in the plan's order (one per industry in [`Industry::ALL`]'s).
    pub fn all() -> Vec<Target> {
        let mut all = vec![Target::OnCloudInProgram, Target::OnCloudKeyIndustries];
        all.extend(Industry::ALL.map(Target::OnCloudIndustry));
        all.extend([
            Target::MaturityL2Transformed,
            Target::MaturityL3AboveOrProvincial,
            Target::MaturityL3LittleGiant,
        ]);
        all
    }

    /// Its id: `on_cloud_in_program`, `on_cloud_industry:auto-parts`, ...
    pub fn id(self) -> String {
        match self {
            Target::OnCloudIndustry(industry) => format!("on_cloud_industry:{}", industry.code()),
            other => other.message_key().trim_start_matches("target_").to_owned(),
        }
    }

    /// The UI's message key of its label (`{industry}` in it is the industry's name).
    pub fn message_key(self) -> &'static str {
        match self {
            Target::OnCloudInProgram => "target_on_cloud_in_program",
            Target::OnCloudKeyIndustries => "target_on_cloud_key_industries",
            Target::OnCloudIndustry(_) => "target_on_cloud_industry",
            Target::MaturityL2Transformed => "target_maturity_l2_transformed",
            Target::MaturityL3AboveOrProvincial => "target_maturity_l3_above_or_provincial",
            Target::MaturityL3LittleGiant => "target_maturity_l3_little_giant",
        }
    }

    /// Its label in Chinese.
    pub fn label_zh(self) -> String {
        match self {
            Target::OnCloudInProgram => LABEL_ON_CLOUD_IN_PROGRAM.to_owned(),
            Target::OnCloudKeyIndustries => LABEL_ON_CLOUD_KEY_INDUSTRIES.to_owned(),
            Target::OnCloudIndustry(industry) => {
                LABEL_ON_CLOUD_INDUSTRY.replace("{industry}", industry.name_zh())
            }
            Target::MaturityL2Transformed => LABEL_MATURITY_L2_TRANSFORMED.to_owned(),
            Target::MaturityL3AboveOrProvincial => LABEL_MATURITY_L3_ABOVE_OR_PROVINCIAL.to_owned(),
            Target::MaturityL3LittleGiant => LABEL_MATURITY_L3_LITTLE_GIANT.to_owned(),
        }
    }

    /// True if `row` is one of the enterprises the target counts among.
    fn in_base(self, row: &OnboardingRow) -> bool {
        match self {
            Target::OnCloudInProgram | Target::MaturityL2Transformed => row.in_program,
            Target::OnCloudKeyIndustries => true,
            Target::OnCloudIndustry(industry) => row.industry == industry,
            Target::MaturityL3AboveOrProvincial => {
                row.size == Some(Size::Above) || row.specialised == Some(Specialised::Provincial)
            }
            Target::MaturityL3LittleGiant => row.specialised == Some(Specialised::LittleGiant),
        }
    }

    /// True if `row`, in the base, counts as achieved.
    fn achieved(self, row: &OnboardingRow) -> bool {
        let level = row.maturity.map_or(0, |m| m.get());
        match self {
            Target::OnCloudInProgram
            | Target::OnCloudKeyIndustries
            | Target::OnCloudIndustry(_) => row.on_cloud,
            Target::MaturityL2Transformed => level >= 2,
            Target::MaturityL3AboveOrProvincial | Target::MaturityL3LittleGiant => level >= 3,
        }
    }

    /// Its goal under the plan's `targets`.
    fn goal(self, targets: &Targets) -> Goal {
        match self {
            Target::OnCloudInProgram => Goal::Count(targets.in_program_on_cloud),
            Target::OnCloudKeyIndustries => Goal::Count(targets.key_industries_on_cloud),
            Target::OnCloudIndustry(_) => Goal::Count(targets.per_industry_on_cloud),
            Target::MaturityL2Transformed => Goal::Percent(100),
            Target::MaturityL3AboveOrProvincial => Goal::Percent(50),
            Target::MaturityL3LittleGiant => Goal::Percent(70),
        }
    }
}

/// One target's figure and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetProgress {
    /// The target's id ([`Target::id`]).
    pub id: String,
    /// Its label in Chinese.
    pub label: String,
    /// Enterprises of the base that meet it.
    pub achieved: u64,
    /// Enterprises it counts among.
    pub base: u64,
    /// The goal, for a count target in the city's scope.
    pub goal_count: Option<u64>,
    /// The goal share of the base, for a share target.
    pub goal_share: Option<f64>,
    /// Achieved against the goal (1 is the goal; not capped); `None` without a goal.
    pub progress: Option<f64>,
    /// The goal is reached.
    pub met: bool,
}

/// The answer of `GET /api/v1/stats/program`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// The district the figures are of; `None` for the city.
    pub district: Option<District>,
    /// When they were computed (ms since the epoch).
    pub computed_at: i64,
    /// Every target, in [`Target::all`]'s order.
    pub targets: Vec<TargetProgress>,
}

/// The plan's targets over every enterprise's `rows`, of the city or of one `district`
/// (only its enterprises; no count goals), at `computed_at`.
pub fn program(
    rows: &[OnboardingRow],
    targets: &Targets,
    district: Option<District>,
    computed_at: i64,
) -> Program {
    let in_scope: Vec<&OnboardingRow> = rows
        .iter()
        .filter(|r| district.is_none_or(|d| r.district == d))
        .collect();
    let targets = Target::all()
        .into_iter()
        .map(|target| {
            let base: Vec<&&OnboardingRow> =
                in_scope.iter().filter(|r| target.in_base(r)).collect();
            let achieved = base.iter().filter(|r| target.achieved(r)).count() as u64;
            let base = base.len() as u64;
            let (goal_count, goal_share, progress, met) = match target.goal(targets) {
                Goal::Count(goal) if district.is_none() && goal > 0 => (
                    Some(goal),
                    None,
                    Some(achieved as f64 / goal as f64),
                    achieved >= goal,
                ),
                Goal::Count(_) => (None, None, None, false),
                Goal::Percent(percent) => {
                    let share = percent as f64 / 100.0;
                    let progress = if base == 0 {
                        0.0
                    } else {
                        achieved as f64 / base as f64 / share
                    };
                    (
                        None,
                        Some(share),
                        Some(progress),
                        base > 0 && achieved * 100 >= base * percent,
                    )
                }
            };
            TargetProgress {
                id: target.id(),
                label: target.label_zh(),
                achieved,
                base,
                goal_count,
                goal_share,
                progress,
                met,
            }
        })
        .collect();
    Program {
        district,
        computed_at,
        targets,
    }
}

/// The targets as CSV, one row each: `id,label,achieved,base,goal_count,goal_share,
/// progress,met` (an empty cell for `null`).
pub fn program_csv(program: &Program) -> String {
    let optional = |v: Option<String>| v.unwrap_or_default();
    let rows: Vec<[String; 8]> = program
        .targets
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.label.clone(),
                t.achieved.to_string(),
                t.base.to_string(),
                optional(t.goal_count.map(|g| g.to_string())),
                optional(t.goal_share.map(|g| g.to_string())),
                optional(t.progress.map(|p| format!("{p:.4}"))),
                t.met.to_string(),
            ]
        })
        .collect();
    to_csv(
        &[
            "id",
            "label",
            "achieved",
            "base",
            "goal_count",
            "goal_share",
            "progress",
            "met",
        ],
        rows.iter().map(|r| r.as_slice()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::MaturityLevel;

    fn row(
        district: &str,
        industry: Industry,
        in_program: bool,
        on_cloud: bool,
        classes: (Option<Size>, Option<Specialised>),
        level: Option<i64>,
    ) -> OnboardingRow {
        OnboardingRow {
            industry,
            district: District::from_name(district).expect("a district"),
            in_program,
            enrolled: on_cloud,
            on_cloud,
            active: on_cloud,
            size: classes.0,
            specialised: classes.1,
            maturity: level.and_then(MaturityLevel::new),
        }
    }

    fn find<'a>(p: &'a Program, id: &str) -> &'a TargetProgress {
        p.targets.iter().find(|t| t.id == id).expect("a target")
    }

    #[test]
    fn targets_count_their_bases_and_goals_in_the_city_and_a_district() {
        use Industry::{AutoParts, Biomedicine};
        let above = (Some(Size::Above), Some(Specialised::None));
        let provincial = (Some(Size::Below), Some(Specialised::Provincial));
        let giant = (Some(Size::Above), Some(Specialised::LittleGiant));
        let unknown = (None, None);
        let rows = [
            row("洪山区", AutoParts, true, true, above, Some(3)),
            row("洪山区", AutoParts, true, false, provincial, Some(1)),
            row("洪山区", Biomedicine, false, true, giant, Some(4)),
            row("江岸区", Biomedicine, true, true, giant, Some(2)),
            row("江岸区", AutoParts, false, false, unknown, None),
        ];
        let targets = Targets {
            in_program_on_cloud: 4,
            key_industries_on_cloud: 3,
            per_industry_on_cloud: 2,
        };
        let city = program(&rows, &targets, None, 7);
        assert_eq!(city.district, None);
        assert_eq!(city.computed_at, 7);
        let ids: Vec<&str> = city.targets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids.len(), 2 + 8 + 3);
        assert_eq!(
            ids[..3],
            [
                "on_cloud_in_program",
                "on_cloud_key_industries",
                "on_cloud_industry:optical-laser"
            ]
        );
        assert_eq!(
            ids[10..],
            [
                "maturity_l2_transformed",
                "maturity_l3_above_or_provincial",
                "maturity_l3_little_giant"
            ]
        );
        // In the program: rows 0, 1, 3; on the cloud: 0, 3.
        let t = find(&city, "on_cloud_in_program");
        assert_eq!(
            (t.achieved, t.base, t.goal_count, t.progress, t.met),
            (2, 3, Some(4), Some(0.5), false)
        );
        assert_eq!(t.label, "改造企业上云");
        let t = find(&city, "on_cloud_key_industries");
        assert_eq!(
            (t.achieved, t.base, t.progress, t.met),
            (3, 5, Some(1.0), true)
        );
        let t = find(&city, "on_cloud_industry:biomedicine");
        assert_eq!(
            (t.achieved, t.base, t.progress, t.met),
            (2, 2, Some(1.0), true)
        );
        assert_eq!(t.label, "生物医药企业上云");
        let t = find(&city, "on_cloud_industry:food-processing");
        assert_eq!(
            (t.achieved, t.base, t.progress, t.met),
            (0, 0, Some(0.0), false)
        );
        // Transformed at level 2 or more: rows 0 and 3 of 0, 1, 3.
        let t = find(&city, "maturity_l2_transformed");
        assert_eq!(
            (t.achieved, t.base, t.goal_count, t.goal_share),
            (2, 3, None, Some(1.0))
        );
        assert!((t.progress.expect("a progress") - 2.0 / 3.0).abs() < 1e-12);
        assert!(!t.met);
        // Above size or provincial: rows 0, 1, 2, 3 (the giants are above size); at level 3
        // or more: 0 and 2, half of them: met.
        let t = find(&city, "maturity_l3_above_or_provincial");
        assert_eq!(
            (t.achieved, t.base, t.goal_share, t.progress, t.met),
            (2, 4, Some(0.5), Some(1.0), true)
        );
        // Little giants: rows 2 and 3, one at level 3 or more: 50 % of 70 %.
        let t = find(&city, "maturity_l3_little_giant");
        assert_eq!((t.achieved, t.base), (1, 2));
        assert!((t.progress.expect("a progress") - 0.5 / 0.7).abs() < 1e-12);
        assert!(!t.met);

        let jiangan = District::from_name("江岸区");
        let district = program(&rows, &targets, jiangan, 7);
        assert_eq!(district.district, jiangan);
        let t = find(&district, "on_cloud_in_program");
        assert_eq!(
            (t.achieved, t.base, t.goal_count, t.progress, t.met),
            (1, 1, None, None, false)
        );
        let t = find(&district, "maturity_l3_little_giant");
        assert_eq!(
            (t.achieved, t.base, t.progress, t.met),
            (0, 1, Some(0.0), false)
        );
        let t = find(&district, "maturity_l3_above_or_provincial");
        assert_eq!((t.achieved, t.base, t.met), (0, 1, false));
        // An empty base: progress 0, not met.
        let empty = program(&[], &targets, None, 7);
        let t = find(&empty, "maturity_l2_transformed");
        assert_eq!((t.base, t.progress, t.met), (0, Some(0.0), false));

        let csv = program_csv(&district);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("id,label,achieved,base,goal_count,goal_share,progress,met")
        );
        assert_eq!(
            lines.next(),
            Some("on_cloud_in_program,改造企业上云,1,1,,,,false")
        );
        assert_eq!(csv.lines().count(), 1 + 13);
    }

    #[test]
    fn a_share_exactly_at_its_goal_is_met() {
        // 7 of 10 little giants at level 3: exactly 70 %.
        let giant = (Some(Size::Above), Some(Specialised::LittleGiant));
        let rows: Vec<OnboardingRow> = (0..10)
            .map(|i| {
                row(
                    "洪山区",
                    Industry::AutoParts,
                    false,
                    false,
                    giant,
                    Some(if i < 7 { 3 } else { 2 }),
                )
            })
            .collect();
        let p = program(&rows, &Targets::default(), None, 0);
        let t = find(&p, "maturity_l3_little_giant");
        assert_eq!((t.achieved, t.base, t.met), (7, 10, true));
        assert!((t.progress.expect("a progress") - 1.0).abs() < 1e-12);
    }
}
