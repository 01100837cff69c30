//! OPC UA values into the contract's samples: [`map_variant`] for the value,
//! [`to_sample`] for a whole `DataValue` (status → quality, timestamps → `ts`).
//!
//! Every scalar built-in type that has a meaning as a reading is mapped: Boolean; SByte to
//! UInt64; Float and Double; String and LocalizedText as text; DateTime as milliseconds
//! since the Unix epoch; StatusCode as its name. Anything else (arrays, structures, GUIDs,
//! byte strings, NodeIds...) is an [`Unmappable`] error for that point.

use fieldlink_wire::{Quality, Sample, Value};
use opcua::types::{DataValue, DateTime, StatusCode, Variant};
use std::sync::Arc;

/// A value fieldlink cannot represent; the sample for it is `bad` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmappable {
    /// A type the contract has no value for (arrays, structures, GUIDs, ...).
    #[error(
        "unsupported OPC UA type {0}: fieldlink reads scalar Boolean, integer, Float, Double, String, LocalizedText, DateTime and StatusCode values"
    )]
    Type(&'static str),
    /// A Float or Double that is NaN or infinite (JSON has neither).
    #[error("the value is not a finite number")]
    NotFinite,
}

impl Unmappable {
    /// True for a type error, which repeats with every value (it is logged once per point);
    /// false for a bad number, which the next value may not have.
    pub fn is_type(&self) -> bool {
        matches!(self, Unmappable::Type(_))
    }
}

/// The contract's value for an OPC UA variant.
pub fn map_variant(variant: &Variant) -> Result<Value, Unmappable> {
    Ok(match variant {
        Variant::Empty => Value::None,
        Variant::Boolean(v) => Value::Bool(*v),
        Variant::SByte(v) => Value::Int(i64::from(*v)),
        Variant::Byte(v) => Value::Int(i64::from(*v)),
        Variant::Int16(v) => Value::Int(i64::from(*v)),
        Variant::UInt16(v) => Value::Int(i64::from(*v)),
        Variant::Int32(v) => Value::Int(i64::from(*v)),
        Variant::UInt32(v) => Value::Int(i64::from(*v)),
        Variant::Int64(v) => Value::Int(*v),
        Variant::UInt64(v) => Value::from_u64(*v),
        Variant::Float(v) => Value::Float(float_from_f32(*v)?),
        Variant::Double(v) if v.is_finite() => Value::Float(*v),
        Variant::Double(_) => return Err(Unmappable::NotFinite),
        Variant::String(s) => Value::Text(s.value().clone().unwrap_or_default()),
        Variant::LocalizedText(t) => Value::Text(t.text.value().clone().unwrap_or_default()),
        Variant::DateTime(t) => Value::Int(unix_ms(t)),
        Variant::StatusCode(s) => Value::Text(status_name(*s).to_owned()),
        // A Variant holding a Variant (legal in structures) is read through.
        Variant::Variant(inner) => return map_variant(inner),
        other => return Err(Unmappable::Type(type_name(other))),
    })
}

/// An f32 as the f64 with the same shortest decimal form, so a device's 0.1 is published as
/// 0.1 and not 0.10000000149011612.
fn float_from_f32(v: f32) -> Result<f64, Unmappable> {
    if !v.is_finite() {
        return Err(Unmappable::NotFinite);
    }
    // The decimal text of a finite f32 always parses; the fallback is the exact widening.
    Ok(v.to_string().parse::<f64>().unwrap_or(f64::from(v)))
}

/// The OPC UA name of a variant's type, for error messages.
pub fn type_name(variant: &Variant) -> &'static str {
    match variant {
        Variant::Empty => "Null",
        Variant::Boolean(_) => "Boolean",
        Variant::SByte(_) => "SByte",
        Variant::Byte(_) => "Byte",
        Variant::Int16(_) => "Int16",
        Variant::UInt16(_) => "UInt16",
        Variant::Int32(_) => "Int32",
        Variant::UInt32(_) => "UInt32",
        Variant::Int64(_) => "Int64",
        Variant::UInt64(_) => "UInt64",
        Variant::Float(_) => "Float",
        Variant::Double(_) => "Double",
        Variant::String(_) => "String",
        Variant::DateTime(_) => "DateTime",
        Variant::Guid(_) => "Guid",
        Variant::StatusCode(_) => "StatusCode",
        Variant::ByteString(_) => "ByteString",
        Variant::XmlElement(_) => "XmlElement",
        Variant::QualifiedName(_) => "QualifiedName",
        Variant::LocalizedText(_) => "LocalizedText",
        Variant::NodeId(_) => "NodeId",
        Variant::ExpandedNodeId(_) => "ExpandedNodeId",
        Variant::ExtensionObject(_) => "ExtensionObject (a structure)",
        Variant::Variant(_) => "Variant",
        Variant::DataValue(_) => "DataValue",
        Variant::DiagnosticInfo(_) => "DiagnosticInfo",
        Variant::Array(_) => "Array",
    }
}

/// A status code's symbolic name (`BadNodeIdUnknown`), as the spec writes it.
pub fn status_name(status: StatusCode) -> &'static str {
    status.sub_code().name()
}

/// Milliseconds since the Unix epoch of an OPC UA time (which counts from 1601).
pub fn unix_ms(t: &DateTime) -> i64 {
    t.as_chrono().timestamp_millis()
}

/// The sample's time: the source timestamp, else the server timestamp, else `local_ms`.
/// OPC UA's null time (the 1601 epoch) counts as absent.
pub fn sample_ts(value: &DataValue, local_ms: i64) -> i64 {
    [&value.source_timestamp, &value.server_timestamp]
        .into_iter()
        .flatten()
        .find(|t| !t.is_null())
        .map_or(local_ms, unix_ms)
}

/// The sample for a point's `DataValue`: Good → `good`, Uncertain → `uncertain` (with the
/// value), Bad → `bad` with the status name; a value that cannot be mapped → `bad` with
/// the reason, returned separately so the caller can log it once.
pub fn to_sample(
    device: &Arc<str>,
    point: &Arc<str>,
    value: &DataValue,
    local_ms: i64,
) -> (Sample, Option<Unmappable>) {
    let ts = sample_ts(value, local_ms);
    let status = value.status();
    if status.is_bad() {
        let sample = Sample::bad(device.clone(), point.clone(), ts, status_name(status));
        return (sample, None);
    }
    let mapped = value.value.as_ref().map_or(Ok(Value::None), map_variant);
    match mapped {
        Ok(v) => {
            let quality = if status.is_uncertain() {
                Quality::Uncertain
            } else {
                Quality::Good
            };
            let sample = Sample {
                device: device.clone(),
                point: point.clone(),
                ts,
                value: v,
                quality,
            };
            (sample, None)
        }
        Err(e) => {
            let sample = Sample::bad(device.clone(), point.clone(), ts, e.to_string());
            (sample, Some(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{ByteString, Guid, LocalizedText, UAString};

    #[test]
    fn every_scalar_built_in_type_maps() {
        let cases: Vec<(Variant, Value)> = vec![
            (Variant::Boolean(true), Value::Bool(true)),
            (Variant::SByte(-8), Value::Int(-8)),
            (Variant::Byte(200), Value::Int(200)),
            (Variant::Int16(-300), Value::Int(-300)),
            (Variant::UInt16(60000), Value::Int(60000)),
            (Variant::Int32(-70000), Value::Int(-70000)),
            (Variant::UInt32(4_000_000_000), Value::Int(4_000_000_000)),
            (Variant::Int64(i64::MIN), Value::Int(i64::MIN)),
            (Variant::UInt64(u64::MAX), Value::UInt(u64::MAX)),
            (Variant::UInt64(5), Value::Int(5)),
            (Variant::Float(0.1), Value::Float(0.1)),
            (Variant::Double(-2.5e300), Value::Float(-2.5e300)),
            (
                Variant::String(UAString::from("späne")),
                Value::Text("späne".into()),
            ),
            (
                Variant::String(UAString::null()),
                Value::Text(String::new()),
            ),
            (
                Variant::LocalizedText(Box::new(LocalizedText::new("de", "Ein"))),
                Value::Text("Ein".into()),
            ),
            (
                Variant::DateTime(Box::new(DateTime::ymd_hms(2025, 11, 27, 0, 0, 0))),
                Value::Int(1_764_201_600_000),
            ),
            (
                Variant::StatusCode(StatusCode::BadSensorFailure),
                Value::Text("BadSensorFailure".into()),
            ),
            (Variant::Empty, Value::None),
        ];
        for (variant, expected) in cases {
            assert_eq!(map_variant(&variant), Ok(expected), "{variant:?}");
        }
    }

    #[test]
    fn non_scalar_types_and_non_finite_numbers_are_errors() {
        assert_eq!(
            map_variant(&Variant::Guid(Box::new(Guid::null()))),
            Err(Unmappable::Type("Guid"))
        );
        assert_eq!(
            map_variant(&Variant::ByteString(ByteString::from(vec![1u8]))),
            Err(Unmappable::Type("ByteString"))
        );
        assert_eq!(
            map_variant(&Variant::from(vec![1i32, 2])),
            Err(Unmappable::Type("Array"))
        );
        assert_eq!(
            map_variant(&Variant::Double(f64::NAN)),
            Err(Unmappable::NotFinite)
        );
        assert_eq!(
            map_variant(&Variant::Float(f32::INFINITY)),
            Err(Unmappable::NotFinite)
        );
    }

    fn names() -> (Arc<str>, Arc<str>) {
        (Arc::from("cnc-7"), Arc::from("speed"))
    }

    #[test]
    fn status_sets_the_quality_and_bad_carries_the_status_name() {
        let (d, p) = names();
        let mut dv = DataValue::new_now(Variant::Double(1.5));
        let (s, _) = to_sample(&d, &p, &dv, 7);
        assert_eq!((s.value, s.quality), (Value::Float(1.5), Quality::Good));

        dv.status = Some(StatusCode::UncertainLastUsableValue);
        let (s, _) = to_sample(&d, &p, &dv, 7);
        assert_eq!(
            (s.value, s.quality),
            (Value::Float(1.5), Quality::Uncertain)
        );

        dv.status = Some(StatusCode::BadNodeIdUnknown);
        let (s, _) = to_sample(&d, &p, &dv, 7);
        assert_eq!(
            (s.value, s.quality),
            (Value::None, Quality::Bad("BadNodeIdUnknown".into()))
        );
    }

    #[test]
    fn timestamps_prefer_source_then_server_then_local() {
        let source = DateTime::ymd_hms(2025, 1, 1, 0, 0, 0);
        let server = DateTime::ymd_hms(2025, 1, 1, 0, 0, 1);
        let mut dv = DataValue {
            value: Some(Variant::Int32(1)),
            source_timestamp: Some(source),
            server_timestamp: Some(server),
            ..DataValue::default()
        };
        assert_eq!(sample_ts(&dv, 5), unix_ms(&source));
        dv.source_timestamp = None;
        assert_eq!(sample_ts(&dv, 5), unix_ms(&server));
        dv.server_timestamp = Some(DateTime::null());
        assert_eq!(sample_ts(&dv, 5), 5);
    }

    #[test]
    fn an_unmappable_value_is_a_bad_sample_with_the_reason() {
        let (d, p) = names();
        let dv = DataValue::new_now(Variant::Guid(Box::new(Guid::null())));
        let (s, err) = to_sample(&d, &p, &dv, 0);
        assert_eq!(err, Some(Unmappable::Type("Guid")));
        let Quality::Bad(text) = s.quality else {
            panic!("not bad")
        };
        assert!(text.starts_with("unsupported OPC UA type Guid"), "{text}");
    }
}
