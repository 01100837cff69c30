//! One reading of one point: [`Sample`], its [`Value`] and its [`Quality`].

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A point's value: the JSON scalars of the contract.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (a failed read).
    None,
    /// A boolean (coils, discrete inputs, OPC UA Boolean).
    Bool(bool),
    /// A signed integer; every integer that fits in `i64` is held here.
    Int(i64),
    /// An unsigned integer above `i64::MAX` (only u64 registers reach it).
    UInt(u64),
    /// A floating-point number; always finite (JSON has no NaN or infinity).
    Float(f64),
    /// Text (Modbus string registers, OPC UA String and LocalizedText).
    Text(String),
}

impl Value {
    /// An unsigned integer, held as [`Value::Int`] whenever it fits, so that a value
    /// decoded from JSON compares equal to the value that was encoded.
    pub fn from_u64(v: u64) -> Self {
        i64::try_from(v).map_or(Value::UInt(v), Value::Int)
    }

    /// The value as a float, for deadbands and charts; `None` for text, booleans and none.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(v) => Some(v as f64),
            Value::UInt(v) => Some(v as f64),
            Value::Float(v) => Some(v),
            _ => None,
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => s.serialize_none(),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Int(v) => s.serialize_i64(*v),
            Value::UInt(v) => s.serialize_u64(*v),
            Value::Float(v) => s.serialize_f64(*v),
            Value::Text(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("null, a boolean, a number or a string")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::None)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::None)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::from_u64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Text(v))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

/// How far a sample can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quality {
    /// The value was read and is valid.
    Good,
    /// The read failed; the text says why in a few words ("timeout", "exception 02 ...").
    Bad(String),
    /// The source delivered a value but does not vouch for it.
    Uncertain,
}

impl Quality {
    /// The contract's name of this quality.
    pub fn as_str(&self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Bad(_) => "bad",
            Quality::Uncertain => "uncertain",
        }
    }
}

/// One reading: which point, when (ms since the Unix epoch, taken at the read), the value
/// and its quality. A failed read is a sample too, with `Value::None` and `Quality::Bad`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The device's configured name.
    pub device: Arc<str>,
    /// The point's configured name, unique within its device.
    pub point: Arc<str>,
    /// Milliseconds since the Unix epoch, when the value was read.
    pub ts: i64,
    /// The value read.
    pub value: Value,
    /// Whether the value can be trusted.
    pub quality: Quality,
}

impl Sample {
    /// A good reading.
    pub fn good(device: Arc<str>, point: Arc<str>, ts: i64, value: Value) -> Self {
        Sample {
            device,
            point,
            ts,
            value,
            quality: Quality::Good,
        }
    }

    /// A failed reading, with the reason.
    pub fn bad(device: Arc<str>, point: Arc<str>, ts: i64, error: impl Into<String>) -> Self {
        Sample {
            device,
            point,
            ts,
            value: Value::None,
            quality: Quality::Bad(error.into()),
        }
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bad_error = match &self.quality {
            Quality::Bad(e) => Some(e),
            _ => None,
        };
        let mut map = s.serialize_map(Some(5 + usize::from(bad_error.is_some())))?;
        map.serialize_entry("device", &*self.device)?;
        map.serialize_entry("point", &*self.point)?;
        map.serialize_entry("ts", &self.ts)?;
        map.serialize_entry("value", &self.value)?;
        map.serialize_entry("quality", self.quality.as_str())?;
        if let Some(e) = bad_error {
            map.serialize_entry("error", e)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SampleVisitor;
        impl<'de> Visitor<'de> for SampleVisitor {
            type Value = Sample;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sample, A::Error> {
                let (mut device, mut point, mut ts, mut value, mut quality, mut error) =
                    (None, None, None, None, None::<String>, None::<String>);
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*key {
                        "device" => device = Some(map.next_value::<String>()?),
                        "point" => point = Some(map.next_value::<String>()?),
                        "ts" => ts = Some(map.next_value::<i64>()?),
                        "value" => value = Some(map.next_value::<Value>()?),
                        "quality" => quality = Some(map.next_value()?),
                        "error" => error = map.next_value()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let quality = match quality.as_deref() {
                    Some("good") => Quality::Good,
                    Some("uncertain") => Quality::Uncertain,
                    Some("bad") => Quality::Bad(error.unwrap_or_default()),
                    Some(other) => {
                        return Err(de::Error::unknown_variant(
                            other,
                            &["good", "bad", "uncertain"],
                        ));
                    }
                    None => return Err(de::Error::missing_field("quality")),
                };
                Ok(Sample {
                    device: device
                        .ok_or_else(|| de::Error::missing_field("device"))?
                        .into(),
                    point: point
                        .ok_or_else(|| de::Error::missing_field("point"))?
                        .into(),
                    ts: ts.ok_or_else(|| de::Error::missing_field("ts"))?,
                    value: value.unwrap_or(Value::None),
                    quality,
                })
            }
        }
        d.deserialize_map(SampleVisitor)
    }
}
