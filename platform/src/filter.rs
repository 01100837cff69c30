//! Which enterprises a list shows by the plan's classes: the query of
//! `GET /api/v1/enterprises` and of the enterprise lists of the web UI. Each parameter is
//! optional (absent or empty: any): `size=above|below|unknown`,
//! `specialised=none|provincial|little_giant|unknown` (`unknown`: not recorded yet) and
//! `maturity=1|2|3|4|none` (the current level; `none`: never assessed).

use crate::profile::{MaturityLevel, Size, Specialised};
use crate::store::Enterprise;
use serde::Deserialize;

/// The value of a class parameter that selects enterprises whose class is not recorded.
pub const UNKNOWN: &str = "unknown";
/// The value of `maturity` that selects enterprises never assessed.
pub const NOT_ASSESSED: &str = "none";

/// The filter's parameters as a query string carries them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterQuery {
    /// `above`, `below` or `unknown`.
    pub size: Option<String>,
    /// `none`, `provincial`, `little_giant` or `unknown`.
    pub specialised: Option<String>,
    /// `1` to `4`, or `none`.
    pub maturity: Option<String>,
}

/// A parameter's value is not one it takes (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {value:?} is not one of {expected}")]
pub struct FilterError {
    /// The parameter.
    pub parameter: &'static str,
    /// What it was.
    pub value: String,
    /// What it takes.
    pub expected: String,
}

/// The classes a list keeps; for each, `None` keeps any, `Some(None)` the enterprises
/// without one, `Some(Some(x))` those with `x`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnterpriseFilter {
    size: Option<Option<Size>>,
    specialised: Option<Option<Specialised>>,
    maturity: Option<Option<MaturityLevel>>,
}

impl EnterpriseFilter {
    /// The filter a query asks for.
    pub fn parse(query: &FilterQuery) -> Result<EnterpriseFilter, FilterError> {
        Ok(EnterpriseFilter {
            size: choice(
                query.size.as_deref(),
                "size",
                UNKNOWN,
                Size::from_code,
                Size::codes,
            )?,
            specialised: choice(
                query.specialised.as_deref(),
                "specialised",
                UNKNOWN,
                Specialised::from_code,
                Specialised::codes,
            )?,
            maturity: choice(
                query.maturity.as_deref(),
                "maturity",
                NOT_ASSESSED,
                |text| MaturityLevel::new(text.parse().ok()?),
                || "1, 2, 3, 4".to_owned(),
            )?,
        })
    }

    /// True if the list shows `enterprise`.
    pub fn keeps(&self, enterprise: &Enterprise) -> bool {
        self.size.is_none_or(|s| s == enterprise.size)
            && self.specialised.is_none_or(|s| s == enterprise.specialised)
            && self
                .maturity
                .is_none_or(|m| m == enterprise.maturity.map(|m| m.level))
    }

    /// The filter as query parameters (`size=above&maturity=2`), empty for no filter, for
    /// links that keep it.
    pub fn query_string(&self) -> String {
        let mut parts = Vec::new();
        if let Some(size) = self.size {
            parts.push(format!("size={}", size.map_or(UNKNOWN, Size::code)));
        }
        if let Some(specialised) = self.specialised {
            parts.push(format!(
                "specialised={}",
                specialised.map_or(UNKNOWN, Specialised::code)
            ));
        }
        if let Some(maturity) = self.maturity {
            parts.push(format!(
                "maturity={}",
                maturity.map_or_else(|| NOT_ASSESSED.to_owned(), |m| m.to_string())
            ));
        }
        parts.join("&")
    }
}

/// One parameter: absent or empty is any; `missing` selects the enterprises without a
/// value; else `parse` must take it.
fn choice<T>(
    value: Option<&str>,
    parameter: &'static str,
    missing: &str,
    parse: impl Fn(&str) -> Option<T>,
    codes: impl Fn() -> String,
) -> Result<Option<Option<T>>, FilterError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v == missing => Ok(Some(None)),
        Some(v) => parse(v).map(|x| Some(Some(x))).ok_or_else(|| FilterError {
            parameter,
            value: v.to_owned(),
            expected: format!("{}, {missing}", codes()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{District, Industry};
    use crate::store::Maturity;

    fn enterprise(
        size: Option<Size>,
        specialised: Option<Specialised>,
        level: Option<i64>,
    ) -> Enterprise {
        Enterprise {
            credit_code: "91350100M000100Y43".to_owned(),
            name: "甲".to_owned(),
            industry: Industry::AutoParts,
            district: District::from_name("洪山区").expect("a district"),
            in_program: true,
            registered_at: 0,
            first_batch_at: None,
            last_batch_at: None,
            integrator: None,
            assigned_at: None,
            share_data_with_bureau: false,
            size,
            specialised,
            maturity: level.map(|l| Maturity {
                level: MaturityLevel::new(l).expect("a level"),
                assessed_at: 0,
            }),
        }
    }

    fn filter(
        size: &str,
        specialised: &str,
        maturity: &str,
    ) -> Result<EnterpriseFilter, FilterError> {
        EnterpriseFilter::parse(&FilterQuery {
            size: Some(size.to_owned()),
            specialised: Some(specialised.to_owned()),
            maturity: Some(maturity.to_owned()),
        })
    }

    #[test]
    fn each_class_filters_by_value_or_by_its_absence() {
        let giant = enterprise(Some(Size::Above), Some(Specialised::LittleGiant), Some(3));
        let unknown = enterprise(None, None, None);
        let any = filter("", "", "").expect("a filter");
        assert_eq!(any, EnterpriseFilter::default());
        assert!(any.keeps(&giant) && any.keeps(&unknown));
        assert_eq!(any.query_string(), "");
        let giants = filter("above", "little_giant", "3").expect("a filter");
        assert!(giants.keeps(&giant) && !giants.keeps(&unknown));
        assert_eq!(
            giants.query_string(),
            "size=above&specialised=little_giant&maturity=3"
        );
        let level2 = filter("", "", "2").expect("a filter");
        assert!(!level2.keeps(&giant));
        let missing = filter("unknown", "unknown", "none").expect("a filter");
        assert!(missing.keeps(&unknown) && !missing.keeps(&giant));
        assert_eq!(
            EnterpriseFilter::parse(&FilterQuery::default()),
            Ok(EnterpriseFilter::default())
        );
        for (size, specialised, maturity, parameter) in [
            ("big", "", "", "size"),
            ("", "yes", "", "specialised"),
            ("", "", "5", "maturity"),
            ("", "", "0", "maturity"),
            ("", "", "unknown", "maturity"),
        ] {
            let error = filter(size, specialised, maturity).expect_err("refused");
            assert_eq!(error.parameter, parameter);
        }
        let error = filter("big", "", "").expect_err("refused");
        assert_eq!(
            error.to_string(),
            "size: \"big\" is not one of above, below, unknown"
        );
    }
}
