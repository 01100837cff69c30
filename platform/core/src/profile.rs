//! How the plan classes an enterprise besides its industry and district (DESIGN.md, "The
//! bureau's cockpit"): above or below designated size, its "specialised and new" class,
//! and its digital-maturity level (the ministry's SME digital-level assessment, 1 to 4).
//! Each has one code used everywhere (API, CSV, storage).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An enum whose variants each have one lower-case code, with the list of all of them,
/// the lookup by code, `Display` and serde as that code.
macro_rules! coded_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal {
            $($(#[$variant_doc:meta])* $variant:ident = $code:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
        }

        impl $name {
            /// Every value, in the plan's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code, e.g. as the API writes it.
            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The value with this code (exact, lower case), if any.
            pub fn from_code(code: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.code() == code)
            }

            /// The list of valid codes, for error messages.
            pub fn codes() -> String {
                $name::ALL.iter().map(|v| v.code()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let code = String::deserialize(d)?;
                $name::from_code(&code).ok_or_else(|| {
                    D::Error::custom(format!(
                        "unknown {} {code:?}; expected one of: {}",
                        $what,
                        $name::codes()
                    ))
                })
            }
        }
    };
}

coded_enum! {
    /// Above or below designated size (规模以上 / 规模以下: for industry, yearly revenue
    /// of 20 million yuan or more).
    Size, "size" {
        /// `above`: above designated size.
        Above = "above",
        /// `below`: below designated size.
        Below = "below",
    }
}

coded_enum! {
    /// The enterprise's "specialised, refined, distinctive and new" (专精特新) class.
    Specialised, "specialised class" {
        /// `none`: not recognised as specialised.
        None = "none",
        /// `provincial`: a provincial specialised and new SME.
        Provincial = "provincial",
        /// `little_giant`: a national specialised and new "little giant" (小巨人).
        LittleGiant = "little_giant",
    }
}

/// A digital-maturity level, 1 to 4 (the SME digital-level assessment's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaturityLevel(u8);

impl MaturityLevel {
    /// The lowest level.
    pub const MIN: u8 = 1;
    /// The highest level.
    pub const MAX: u8 = 4;

    /// The level `n`, if it is one (1 to 4).
    pub fn new(n: i64) -> Option<MaturityLevel> {
        u8::try_from(n)
            .ok()
            .filter(|n| (Self::MIN..=Self::MAX).contains(n))
            .map(MaturityLevel)
    }

    /// The level as a number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Every level, lowest first.
    pub fn all() -> impl Iterator<Item = MaturityLevel> {
        (Self::MIN..=Self::MAX).map(MaturityLevel)
    }
}

impl fmt::Display for MaturityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for MaturityLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for MaturityLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        MaturityLevel::new(n).ok_or_else(|| {
            D::Error::custom(format!(
                "maturity level {n}: must be {} to {}",
                MaturityLevel::MIN,
                MaturityLevel::MAX
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_levels_are_one_to_four() {
        for s in Size::ALL {
            assert_eq!(Size::from_code(s.code()), Some(*s));
        }
        for s in Specialised::ALL {
            assert_eq!(Specialised::from_code(s.code()), Some(*s));
        }
        assert_eq!(Specialised::codes(), "none, provincial, little_giant");
        assert_eq!(Size::from_code("Above"), None);
        assert_eq!(
            serde_json::from_str::<Specialised>("\"little_giant\"").ok(),
            Some(Specialised::LittleGiant)
        );
        let error = serde_json::from_str::<Size>("\"big\"").unwrap_err();
        assert!(error.to_string().contains("above, below"), "{error}");
        assert_eq!(
            MaturityLevel::all()
                .map(MaturityLevel::get)
                .collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(MaturityLevel::new(0), None);
        assert_eq!(MaturityLevel::new(5), None);
        assert_eq!(MaturityLevel::new(300), None);
        assert!(serde_json::from_str::<MaturityLevel>("5").is_err());
        assert_eq!(serde_json::to_string(&MaturityLevel::new(3)).unwrap(), "3");
    }
}
