//! Golden tests: the exact JSON of the MQTT contract (DESIGN.md, "MQTT contract").

use fieldlink_wire::topic::{self, TopicKind};
use fieldlink_wire::{
    Batch, ConfigState, DecodeError, DeviceHealth, DeviceMeta, GatewayState, Meta, PointMeta,
    PointRole, Quality, Sample, Status, Topics, Value,
};
use fieldlink_wire::{decode_batch, encode_batch};

pub(crate) fn design_batch() -> Batch {
    Batch {
        gateway: "gw-demo".into(),
        seq: 1842,
        samples: vec![
            Sample::good(
                "press-1".into(),
                "temperature".into(),
                1764201600000,
                Value::Float(21.5),
            ),
            Sample::good(
                "press-1".into(),
                "door_open".into(),
                1764201600000,
                Value::Bool(false),
            ),
            Sample::bad(
                "press-2".into(),
                "temperature".into(),
                1764201600000,
                "timeout",
            ),
        ],
    }
}

pub(crate) const DESIGN_JSON: &str = concat!(
    r#"{"gateway":"gw-demo","seq":1842,"samples":["#,
    r#"{"device":"press-1","point":"temperature","ts":1764201600000,"value":21.5,"quality":"good"},"#,
    r#"{"device":"press-1","point":"door_open","ts":1764201600000,"value":false,"quality":"good"},"#,
    r#"{"device":"press-2","point":"temperature","ts":1764201600000,"value":null,"quality":"bad","error":"timeout"}"#,
    r#"]}"#
);

#[test]
fn the_design_batch_encodes_to_the_exact_contract_json() {
    assert_eq!(
        String::from_utf8(encode_batch(&design_batch())).unwrap(),
        DESIGN_JSON
    );
}

#[test]
fn the_design_batch_as_printed_in_design_md_decodes() {
    let pretty = r#"{
      "gateway": "gw-demo",
      "seq": 1842,
      "samples": [
        {"device": "press-1", "point": "temperature", "ts": 1764201600000, "value": 21.5, "quality": "good"},
        {"device": "press-1", "point": "door_open",   "ts": 1764201600000, "value": false, "quality": "good"},
        {"device": "press-2", "point": "temperature", "ts": 1764201600000, "value": null, "quality": "bad", "error": "timeout"}
      ]
    }"#;
    assert_eq!(decode_batch(pretty.as_bytes()).unwrap(), design_batch());
}

#[test]
fn every_value_kind_round_trips() {
    let values = [
        Value::None,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-32768),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
        Value::Float(21.5),
        Value::Float(-0.001),
        Value::Float(1e300),
        Value::Float(3.0),
        Value::Text(String::new()),
        Value::Text("AX-7 \"quoted\" °C 温度 \u{1}".into()),
    ];
    let samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Sample::good("d".into(), format!("p{i}").into(), i as i64, v.clone()))
        .collect();
    let mut batch = Batch {
        gateway: "gw".into(),
        seq: u64::MAX,
        samples,
    };
    batch.samples.push(Sample {
        quality: Quality::Uncertain,
        ..Sample::good("d".into(), "u".into(), 1, Value::Int(5))
    });
    batch.samples.push(Sample::bad(
        "d".into(),
        "b".into(),
        2,
        "exception 02 illegal data address",
    ));
    let decoded = decode_batch(&encode_batch(&batch)).unwrap();
    assert_eq!(decoded, batch);
}

/// Regression (found by `fuzz/run`, target wire_decode): a float written with 17
/// significant digits was read back 1 ULP off, so a decoded batch re-encoded and decoded
/// again was not equal to itself.
#[test]
fn a_float_with_17_digits_round_trips_exactly() {
    let payload = br#"{"gateway":"gw","seq":1,"samples":[{"device":"cnc-7","point":"count","ts":0,"value":118446744073709551615,"quality":"good"}]}"#;
    let batch = decode_batch(payload).unwrap();
    assert_eq!(
        batch.samples[0].value,
        Value::Float(118_446_744_073_709_551_615.0)
    );
    assert_eq!(decode_batch(&encode_batch(&batch)).unwrap(), batch);
    for v in [1.1844674407370955e20, 0.1 + 0.2, 21.5 * 0.1, 1.0 / 3.0] {
        let batch = Batch {
            gateway: "g".into(),
            seq: 1,
            samples: vec![Sample::good("d".into(), "p".into(), 0, Value::Float(v))],
        };
        assert_eq!(decode_batch(&encode_batch(&batch)).unwrap(), batch, "{v}");
    }
}

#[test]
fn a_float_with_no_fraction_stays_a_float() {
    let batch = Batch {
        gateway: "g".into(),
        seq: 1,
        samples: vec![Sample::good("d".into(), "p".into(), 0, Value::Float(3.0))],
    };
    let json = String::from_utf8(encode_batch(&batch)).unwrap();
    assert!(json.contains(r#""value":3.0"#), "{json}");
}

#[test]
fn unsigned_values_that_fit_decode_as_signed_integers() {
    assert_eq!(Value::from_u64(7), Value::Int(7));
    assert_eq!(Value::from_u64(u64::MAX), Value::UInt(u64::MAX));
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    for payload in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"gateway\":1}",
        b"{\"gateway\":\"g\",\"seq\":-1,\"samples\":[]}",
    ] {
        assert!(
            matches!(decode_batch(payload), Err(DecodeError::Json(_))),
            "{payload:?}"
        );
    }
    let bad_quality = br#"{"gateway":"g","seq":1,"samples":[{"device":"d","point":"p","ts":1,"value":1,"quality":"great"}]}"#;
    assert!(decode_batch(bad_quality).is_err());
}

#[test]
fn a_zstd_frame_is_recognised_by_its_magic() {
    // Magic and a cut-off header: read as zstd (and refused as such), never as JSON.
    assert!(matches!(
        decode_batch(&[0x28, 0xB5, 0x2F, 0xFD, 0, 0]),
        Err(DecodeError::Zstd(_))
    ));
}

#[test]
fn topics_follow_the_contract() {
    let t = Topics::new("gw-demo");
    assert_eq!(t.data, "fieldlink/v1/gw-demo/data");
    assert_eq!(t.status, "fieldlink/v1/gw-demo/status");
    assert_eq!(t.meta, "fieldlink/v1/gw-demo/meta");
    // The filters are the topics with the gateway level a wildcard.
    let any = Topics::new("+");
    assert_eq!(
        [topic::DATA_FILTER, topic::STATUS_FILTER, topic::META_FILTER],
        [any.data.as_str(), any.status.as_str(), any.meta.as_str()]
    );
    assert_eq!(
        topic::parse("fieldlink/v1/gw-demo/data"),
        Some(("gw-demo", TopicKind::Data))
    );
    assert_eq!(
        topic::parse("fieldlink/v1/gw-demo/meta"),
        Some(("gw-demo", TopicKind::Meta))
    );
    assert_eq!(t.config, "fieldlink/v1/gw-demo/config");
    assert_eq!(
        topic::parse("fieldlink/v1/gw-demo/config"),
        Some(("gw-demo", TopicKind::Config))
    );
    assert_eq!(topic::parse("fieldlink/v2/gw-demo/data"), None);
    assert_eq!(topic::parse("fieldlink/v1/gw/x/data"), None);
    assert!(topic::is_valid_gateway_id("gw-demo_1.a"));
    for bad in ["", "a/b", "a+b", "a#", "a b", &"x".repeat(65)] {
        assert!(!topic::is_valid_gateway_id(bad), "{bad:?}");
    }
}

#[test]
fn status_birth_and_will_have_the_contract_shape() {
    assert_eq!(
        serde_json::to_string(&Status::offline()).unwrap(),
        r#"{"state":"offline"}"#
    );
    let birth = Status {
        state: GatewayState::Online,
        version: Some("0.1.0".into()),
        started_at: Some(1764201600000),
        backlog_batches: Some(0),
        evicted_batches: Some(0),
        awaiting_ack_batches: Some(0),
        ..Status::offline()
    };
    assert_eq!(
        serde_json::to_string(&birth).unwrap(),
        r#"{"state":"online","version":"0.1.0","started_at":1764201600000,"backlog_batches":0,"evicted_batches":0,"awaiting_ack_batches":0}"#
    );
}

/// DESIGN.md, "End-to-end acknowledgement": the status shows the batches awaiting the
/// platform's ack and the oldest one's age (whole seconds, absent while none awaits), next
/// to the outbox's other counts; a status from an agent older than them parses without.
#[test]
fn status_carries_the_batches_awaiting_the_platform_ack() {
    let status = Status {
        state: GatewayState::Online,
        backlog_batches: Some(1250),
        evicted_batches: Some(0),
        awaiting_ack_batches: Some(1200),
        oldest_awaiting_ack_age_s: Some(42),
        ..Status::offline()
    };
    let json = r#"{"state":"online","backlog_batches":1250,"evicted_batches":0,"awaiting_ack_batches":1200,"oldest_awaiting_ack_age_s":42}"#;
    assert_eq!(serde_json::to_string(&status).unwrap(), json);
    assert_eq!(serde_json::from_str::<Status>(json).unwrap(), status);

    let older: Status =
        serde_json::from_str(r#"{"state":"online","backlog_batches":3,"evicted_batches":0}"#)
            .unwrap();
    assert_eq!(
        (older.awaiting_ack_batches, older.oldest_awaiting_ack_age_s),
        (None, None)
    );
}

/// DESIGN.md, "Agent status, additions": `devices` and `config`, with `last_error` only
/// while a device fails, `last_good_ms` null before a first good read, and a `config` of
/// nulls while no configuration from the platform was applied.
#[test]
fn status_carries_device_health_and_the_config_applied() {
    let status = Status {
        state: GatewayState::Online,
        version: Some("0.1.0".into()),
        started_at: Some(1764201600000),
        backlog_batches: Some(0),
        evicted_batches: Some(0),
        config: Some(ConfigState::default()),
        devices: vec![
            DeviceHealth {
                name: "press-1".into(),
                protocol: "modbus-tcp".into(),
                connected: true,
                last_good_ms: Some(1764201600000),
                errors: 0,
                last_error: None,
            },
            DeviceHealth {
                name: "press-2".into(),
                protocol: "modbus-tcp".into(),
                connected: false,
                last_good_ms: None,
                errors: 17,
                last_error: Some("connect failed: Connection refused (os error 111)".into()),
            },
        ],
        ..Status::offline()
    };
    let json = concat!(
        r#"{"state":"online","version":"0.1.0","started_at":1764201600000,"backlog_batches":0,"evicted_batches":0,"#,
        r#""config":{"version":null,"applied_at":null},"devices":["#,
        r#"{"name":"press-1","protocol":"modbus-tcp","connected":true,"last_good_ms":1764201600000,"errors":0},"#,
        r#"{"name":"press-2","protocol":"modbus-tcp","connected":false,"last_good_ms":null,"errors":17,"last_error":"connect failed: Connection refused (os error 111)"}]}"#
    );
    assert_eq!(serde_json::to_string(&status).unwrap(), json);
    assert_eq!(serde_json::from_str::<Status>(json).unwrap(), status);

    let applied = ConfigState {
        version: Some(7),
        applied_at: Some(1764201700000),
        error: Some("line 3, column 1: unknown key `pol`".into()),
    };
    assert_eq!(
        serde_json::to_string(&applied).unwrap(),
        r#"{"version":7,"applied_at":1764201700000,"error":"line 3, column 1: unknown key `pol`"}"#
    );
}

/// Additive: a status from an agent older than `devices` and `config` still parses, and
/// a receiver of this version ignores fields added after it.
#[test]
fn status_without_the_additions_or_with_later_fields_still_parses() {
    let older: Status = serde_json::from_str(
        r#"{"state":"online","version":"0.0.9","started_at":1,"backlog_batches":0,"evicted_batches":0}"#,
    )
    .unwrap();
    assert_eq!((older.devices.len(), older.config), (0, None));
    let later: Status = serde_json::from_str(
        r#"{"state":"online","config":{"version":3,"applied_at":2,"checksum":"x"},"devices":[{"name":"d","protocol":"s7","connected":true,"last_good_ms":5,"errors":0,"rack":0}],"uptime_s":9}"#,
    )
    .unwrap();
    assert_eq!(later.devices[0].name, "d");
    assert_eq!(later.config.and_then(|c| c.version), Some(3));
}

#[test]
fn a_last_error_is_cut_to_its_bound_on_a_character_boundary() {
    let max = DeviceHealth::LAST_ERROR_MAX_CHARS;
    assert_eq!(DeviceHealth::bounded_error("timeout"), "timeout");
    let ascii = "x".repeat(max + 50);
    assert_eq!(DeviceHealth::bounded_error(&ascii).len(), max);
    // Three bytes a character: the cut falls between characters, never inside one.
    let chinese = "设备无响应".repeat(max);
    let cut = DeviceHealth::bounded_error(&chinese);
    assert_eq!(cut.chars().count(), max);
    assert_eq!(cut.len(), 3 * max);
    let exact = "é".repeat(max);
    assert_eq!(DeviceHealth::bounded_error(&exact), exact);
}

#[test]
fn meta_lists_devices_and_points_with_type_unit_and_role() {
    let meta = Meta {
        devices: vec![DeviceMeta {
            name: "press-1".into(),
            protocol: "modbus-tcp".into(),
            points: vec![
                PointMeta {
                    name: "temperature".into(),
                    data_type: "f32".into(),
                    unit: Some("°C".into()),
                    role: None,
                },
                PointMeta {
                    name: "running".into(),
                    data_type: "bool".into(),
                    unit: None,
                    role: Some(PointRole::Running),
                },
            ],
        }],
    };
    assert_eq!(
        serde_json::to_string(&meta).unwrap(),
        r#"{"devices":[{"name":"press-1","protocol":"modbus-tcp","points":[{"name":"temperature","type":"f32","unit":"°C"},{"name":"running","type":"bool","role":"running"}]}]}"#
    );
}

/// The encoder writes JSON directly (for speed); it must stay byte for byte what serde_json
/// makes of the `Serialize` impls, which define the contract's shape.
#[test]
fn the_direct_encoder_writes_exactly_what_serde_json_writes() {
    let texts = [
        "",
        "press-1",
        "温度 °C",
        "quote \" backslash \\ slash /",
        "controls \u{0} \u{1} \u{8} \t \n \r \u{c} \u{1f} and \u{7f}",
        "emoji 🏭",
    ];
    let values = [
        Value::None,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
        Value::Float(0.0),
        Value::Float(-0.0),
        Value::Float(21.5),
        Value::Float(3.0),
        Value::Float(0.1 + 0.2),
        Value::Float(-1e-7),
        Value::Float(1e300),
        Value::Float(f64::MIN_POSITIVE),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
    ];
    let mut samples = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        for (j, value) in values.iter().enumerate() {
            let mut sample = Sample::good(
                (*text).into(),
                texts[(i + j) % texts.len()].into(),
                i64::from(j as u8) - 3,
                value.clone(),
            );
            sample.quality = match j % 3 {
                0 => Quality::Good,
                1 => Quality::Uncertain,
                _ => Quality::Bad(texts[j % texts.len()].to_owned()),
            };
            samples.push(sample);
        }
        samples.push(Sample::good(
            "d".into(),
            "p".into(),
            1,
            Value::Text((*text).into()),
        ));
    }
    for gateway in ["gw-demo", "gw \"odd\""] {
        for samples in [Vec::new(), samples[..1].to_vec(), samples.clone()] {
            let batch = Batch {
                gateway: gateway.into(),
                seq: 42,
                samples,
            };
            assert_eq!(
                String::from_utf8(encode_batch(&batch)).unwrap(),
                serde_json::to_string(&batch).unwrap()
            );
        }
    }
}

/// Every ASCII character at every position of names long enough for the encoder's
/// eight-bytes-at-a-time scan, next to multi-byte UTF-8: escaped exactly as serde_json does.
#[test]
fn names_are_escaped_exactly_as_serde_json_escapes_them_wherever_the_character_is() {
    for c in (0u8..0x80)
        .map(char::from)
        .chain(['é', '温', '🏭', '\u{80}', '\u{ff}'])
    {
        for at in 0..19 {
            let mut name: String = "abcdefghijklmnopqrs".chars().take(19).collect();
            name.replace_range(at..=at, &c.to_string());
            let batch = Batch {
                gateway: "gw".into(),
                seq: 1,
                samples: vec![Sample::good(
                    name.as_str().into(),
                    name.as_str().into(),
                    0,
                    Value::Text(name.clone()),
                )],
            };
            assert_eq!(
                String::from_utf8(encode_batch(&batch)).unwrap(),
                serde_json::to_string(&batch).unwrap(),
                "{c:?} at {at}"
            );
        }
    }
}

#[test]
fn ack_has_the_contract_shape_and_says_what_is_stored() {
    let ack = fieldlink_wire::Ack {
        stored_through: 1840,
        missing: vec![(1843, 1845), (1850, 1850)],
        stored_max: Some(1860),
    };
    assert_eq!(
        serde_json::to_string(&ack).unwrap(),
        r#"{"stored_through":1840,"missing":[[1843,1845],[1850,1850]],"stored_max":1860}"#
    );
    let old: fieldlink_wire::Ack =
        serde_json::from_str(r#"{"stored_through":7,"missing":[]}"#).unwrap();
    assert_eq!(old.stored_max, None);
    use fieldlink_wire::AckState::{Missing, Stored, Unknown};
    let states: Vec<_> = [1, 1840, 1841, 1843, 1845, 1846, 1850, 1860, 1861]
        .map(|seq| ack.state(seq))
        .to_vec();
    assert_eq!(
        states,
        [
            Stored, Stored, Stored, Missing, Missing, Stored, Missing, Stored, Unknown
        ]
    );
    // Without stored_max (an older platform), only stored_through covers batches.
    assert_eq!(old.state(8), Unknown);
    assert_eq!(
        fieldlink_wire::topic::parse("fieldlink/v1/gw-demo/ack"),
        Some(("gw-demo", TopicKind::Ack))
    );
    assert_eq!(Topics::new("gw-demo").ack, "fieldlink/v1/gw-demo/ack");
}

#[test]
fn a_cut_short_ack_says_nothing_past_its_last_range() {
    let missing: Vec<(u64, u64)> = (0..fieldlink_wire::Ack::MAX_MISSING as u64)
        .map(|i| (10 + 2 * i, 10 + 2 * i))
        .collect();
    let last = missing.last().unwrap().1;
    let ack = fieldlink_wire::Ack {
        stored_through: 9,
        missing,
        stored_max: Some(10_000),
    };
    assert_eq!(ack.state(11), fieldlink_wire::AckState::Stored);
    assert_eq!(ack.state(last + 1), fieldlink_wire::AckState::Unknown);
}

#[test]
fn the_ack_of_a_stored_set_is_its_prefix_its_gaps_and_its_highest() {
    use fieldlink_wire::Ack;
    let ack = |seqs: &[u64]| Ack::of_stored(seqs.iter().copied());
    let expect = |through, missing: &[(u64, u64)], max| Ack {
        stored_through: through,
        missing: missing.to_vec(),
        stored_max: max,
    };
    assert_eq!(ack(&[]), expect(0, &[], None));
    assert_eq!(ack(&[1, 2, 3]), expect(3, &[], Some(3)));
    assert_eq!(ack(&[3, 4]), expect(0, &[(1, 2)], Some(4)));
    assert_eq!(ack(&[1, 2, 5, 6, 9]), expect(2, &[(3, 4), (7, 8)], Some(9)));
    // More gaps than an ack lists: the oldest are listed, stored_max still the highest.
    let sparse: Vec<u64> = (1..=300).map(|i| 2 * i).collect();
    let cut = Ack::of_stored(sparse.iter().copied());
    assert_eq!(cut.missing.len(), Ack::MAX_MISSING);
    assert_eq!(cut.missing[0], (1, 1));
    assert_eq!(cut.stored_max, Some(600));
    assert_eq!(cut.state(599), fieldlink_wire::AckState::Unknown);
}

#[test]
fn a_config_message_is_the_designs_payload_with_its_gateway() {
    let message = fieldlink_wire::ConfigMessage::new("gw-demo", 2, "[publish]\n".into());
    assert_eq!(
        String::from_utf8(message.to_json()).unwrap(),
        r#"{"gateway":"gw-demo","version":2,"toml":"[publish]\n","sha256":"4983bb81e9fbb2dc593e3c016d49f21700f86d042a0e6edd4d564d833094ccec"}"#
    );
}
