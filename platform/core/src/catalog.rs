//! The fixed lists of the city program: the 8 industries (with their pilot flag) and the
//! city's 13 districts and 4 functional zones, as DESIGN.md names them.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One of the program's 8 industries; its code is used everywhere (API, CSV, storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Industry {
    /// `optical-laser`: optical communication and laser equipment (pilot).
    OpticalLaser,
    /// `electrical-equipment`: electrical and other high-end equipment (pilot).
    ElectricalEquipment,
    /// `auto-parts`: automotive parts (pilot).
    AutoParts,
    /// `biomedicine`: biomedicine (pilot).
    Biomedicine,
    /// `petrochemical`: petrochemicals.
    Petrochemical,
    /// `new-materials`: new materials.
    NewMaterials,
    /// `food-processing`: food processing.
    FoodProcessing,
    /// `textile-apparel`: textiles and apparel.
    TextileApparel,
}

impl Industry {
    /// All industries, in DESIGN.md's order.
    pub const ALL: [Industry; 8] = [
        Industry::OpticalLaser,
        Industry::ElectricalEquipment,
        Industry::AutoParts,
        Industry::Biomedicine,
        Industry::Petrochemical,
        Industry::NewMaterials,
        Industry::FoodProcessing,
        Industry::TextileApparel,
    ];

    /// The industry's code, e.g. `auto-parts`.
    pub fn code(self) -> &'static str {
        match self {
            Industry::OpticalLaser => "optical-laser",
            Industry::ElectricalEquipment => "electrical-equipment",
            Industry::AutoParts => "auto-parts",
            Industry::Biomedicine => "biomedicine",
            Industry::Petrochemical => "petrochemical",
            Industry::NewMaterials => "new-materials",
            Industry::FoodProcessing => "food-processing",
            Industry::TextileApparel => "textile-apparel",
        }
    }

    /// The industry's name in words.
    pub fn name(self) -> &'static str {
        match self {
            Industry::OpticalLaser => "optical communication and laser equipment",
            Industry::ElectricalEquipment => "electrical and other high-end equipment",
            Industry::AutoParts => "automotive parts",
            Industry::Biomedicine => "biomedicine",
            Industry::Petrochemical => "petrochemicals",
            Industry::NewMaterials => "new materials",
            Industry::FoodProcessing => "food processing",
            Industry::TextileApparel => "textiles and apparel",
        }
    }

    /// The industry's name in Chinese, as the city's program names it.
    pub fn name_zh(self) -> &'static str {
        match self {
            Industry::OpticalLaser => "光通信及激光",
            Industry::ElectricalEquipment => "电气及高端装备",
            Industry::AutoParts => "汽车零部件",
            Industry::Biomedicine => "生物医药",
            Industry::Petrochemical => "石油化工",
            Industry::NewMaterials => "新材料",
            Industry::FoodProcessing => "食品加工",
            Industry::TextileApparel => "纺织服装",
        }
    }

    /// True for the program's 4 pilot industries.
    pub fn pilot(self) -> bool {
        matches!(
            self,
            Industry::OpticalLaser
                | Industry::ElectricalEquipment
                | Industry::AutoParts
                | Industry::Biomedicine
        )
    }

    /// The industry with this code (exact, lower case), if any.
    pub fn from_code(code: &str) -> Option<Industry> {
        Industry::ALL.into_iter().find(|i| i.code() == code)
    }

    /// The list of valid codes, for error messages.
    pub fn codes() -> String {
        Industry::ALL.map(Industry::code).join(", ")
    }
}

impl fmt::Display for Industry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Industry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Industry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Industry::from_code(&code).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown industry {code:?}; expected one of: {}",
                Industry::codes()
            ))
        })
    }
}

/// Whether a [`District`] is one of the 13 administrative districts or a functional zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistrictKind {
    /// An administrative district (区).
    District,
    /// A functional zone (development zone, scenic area, new area).
    FunctionalZone,
}

/// The districts and zones, in DESIGN.md's order.
const DISTRICTS: [(&str, DistrictKind); 17] = [
    ("江岸区", DistrictKind::District),
    ("江汉区", DistrictKind::District),
    ("硚口区", DistrictKind::District),
    ("汉阳区", DistrictKind::District),
    ("武昌区", DistrictKind::District),
    ("青山区", DistrictKind::District),
    ("洪山区", DistrictKind::District),
    ("东西湖区", DistrictKind::District),
    ("汉南区", DistrictKind::District),
    ("蔡甸区", DistrictKind::District),
    ("江夏区", DistrictKind::District),
    ("黄陂区", DistrictKind::District),
    ("新洲区", DistrictKind::District),
    ("东湖新技术开发区", DistrictKind::FunctionalZone),
    ("武汉经济技术开发区", DistrictKind::FunctionalZone),
    ("东湖生态旅游风景区", DistrictKind::FunctionalZone),
    ("长江新区", DistrictKind::FunctionalZone),
];

/// One of the city's 13 districts or 4 functional zones, named in Chinese as the city
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct District(u8);

impl District {
    /// All districts and zones, in DESIGN.md's order.
    pub fn all() -> impl Iterator<Item = District> {
        (0..DISTRICTS.len() as u8).map(District)
    }

    /// The name, e.g. `洪山区`.
    pub fn name(self) -> &'static str {
        DISTRICTS[usize::from(self.0)].0
    }

    /// District or functional zone.
    pub fn kind(self) -> DistrictKind {
        DISTRICTS[usize::from(self.0)].1
    }

    /// The district or zone with exactly this name, if any.
    pub fn from_name(name: &str) -> Option<District> {
        District::all().find(|d| d.name() == name)
    }

    /// The list of valid names, for error messages.
    pub fn names() -> String {
        District::all()
            .map(District::name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for District {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for District {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for District {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        District::from_name(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown district {name:?}; expected one of: {}",
                District::names()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_design() {
        assert_eq!(Industry::ALL.iter().filter(|i| i.pilot()).count(), 4);
        for i in Industry::ALL {
            assert_eq!(Industry::from_code(i.code()), Some(i));
        }
        assert_eq!(District::all().count(), 17);
        assert_eq!(
            District::all()
                .filter(|d| d.kind() == DistrictKind::FunctionalZone)
                .count(),
            4
        );
        assert_eq!(
            District::from_name("洪山区").map(District::name),
            Some("洪山区")
        );
        assert_eq!(District::from_name("洪山"), None);
    }
}
