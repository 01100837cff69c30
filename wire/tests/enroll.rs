//! The exact JSON of the enrollment call (DESIGN.md, "Platform API"), as the agent sends it
//! and the platform answers it.

use fieldlink_wire::enroll::{EnterpriseRef, ErrorBody, MqttCredentials};
use fieldlink_wire::{EnrollRequest, Enrollment};

#[test]
fn an_enroll_request_is_the_contract_json() {
    let request = EnrollRequest {
        token: "t0k3n".into(),
        gateway_name: "line-1".into(),
        hostname: None,
        agent_version: Some("0.1.0".into()),
    };
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"token":"t0k3n","gateway_name":"line-1","hostname":null,"agent_version":"0.1.0"}"#
    );
    // The optional fields may be left out.
    let minimal: EnrollRequest =
        serde_json::from_str(r#"{"token":"t0k3n","gateway_name":"line-1"}"#).unwrap();
    assert_eq!((minimal.hostname, minimal.agent_version), (None, None));
}

#[test]
fn an_enrollment_is_the_contract_json_and_rotated_is_optional() {
    let enrollment = Enrollment {
        gateway_id: "91420100MA4K000000-line-1".into(),
        enterprise: EnterpriseRef {
            credit_code: "91420100MA4K000000".into(),
            name: "企业".into(),
        },
        mqtt: MqttCredentials {
            url: "mqtt://127.0.0.1:1883".into(),
            username: "91420100MA4K000000-line-1".into(),
            password: "secret".into(),
        },
        rotated: false,
    };
    let json = concat!(
        r#"{"gateway_id":"91420100MA4K000000-line-1","#,
        r#""enterprise":{"credit_code":"91420100MA4K000000","name":"企业"},"#,
        r#""mqtt":{"url":"mqtt://127.0.0.1:1883","username":"91420100MA4K000000-line-1","password":"secret"},"#,
        r#""rotated":false}"#
    );
    assert_eq!(serde_json::to_string(&enrollment).unwrap(), json);
    // A version 1 answer without `rotated` (and an enrollment stored before it existed).
    let without = json.replace(r#","rotated":false"#, "");
    assert_eq!(
        serde_json::from_str::<Enrollment>(&without).unwrap(),
        enrollment
    );
}

#[test]
fn an_error_body_reads_with_or_without_detail() {
    let body: ErrorBody =
        serde_json::from_str(r#"{"error":"used_up","detail":"no gateways left"}"#).unwrap();
    assert_eq!(body.to_string(), "used_up: no gateways left");
    let bare: ErrorBody = serde_json::from_str(r#"{"error":"internal"}"#).unwrap();
    assert_eq!(bare.to_string(), "internal");
}
