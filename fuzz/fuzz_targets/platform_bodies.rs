//! The platform's HTTP request bodies, parsed and validated as the handlers do before they
//! touch the store: enterprise registration, token issue, enrollment and users (JSON), and
//! the enterprise CSV import. Nothing panics; what validates is well-formed.

#![no_main]

use fieldlink_platform::api::UserInput;
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{
    EnterpriseInput, MAX_ENTERPRISE_NAME, MAX_GATEWAY_NAME, TokenInput, gateway_id, parse_csv,
    validate_enrollment,
};
use fieldlink_platform::ui::accounts;
use libfuzzer_sys::fuzz_target;

/// A fixed "now" (2025-11-27T00:00Z) and the program's zone, so a run is reproducible.
const NOW: i64 = 1_764_201_600_000;
const OFFSET: i32 = 480;

fuzz_target!(|body: &[u8]| {
    // POST /api/v1/enterprises
    if let Ok(input) = serde_json::from_slice::<EnterpriseInput>(body)
        && let Ok(enterprise) = input.validate(NOW, OFFSET)
    {
        let name_chars = enterprise.name.chars().count();
        assert!((1..=MAX_ENTERPRISE_NAME).contains(&name_chars));
        assert_eq!(enterprise.credit_code.as_str().len(), 18);
    }
    // POST /api/v1/enterprises/{credit_code}/tokens
    if let Ok(input) = serde_json::from_slice::<TokenInput>(body) {
        let _ = input.validate();
    }
    // POST /api/v1/enroll
    if let Ok(input) = serde_json::from_slice::<fieldlink_wire::EnrollRequest>(body)
        && let Ok(name) = validate_enrollment(&input)
    {
        assert!((1..=MAX_GATEWAY_NAME).contains(&name.chars().count()));
        let id = gateway_id("91350100M000100Y43", name);
        assert!(fieldlink_wire::topic::is_valid_gateway_id(&id), "{id:?}");
    }
    // POST /api/v1/users
    if let Ok(input) = serde_json::from_slice::<UserInput>(body) {
        let _ = input.scope.as_deref().map(CreditCode::parse);
        let _ = accounts::check_new_user(&input.username, &input.password);
    }
    // POST /api/v1/enterprises/import: the handler refuses a body that is not UTF-8.
    if let Ok(text) = std::str::from_utf8(body) {
        let (valid, _errors) = parse_csv(text, NOW, OFFSET);
        for (line, _) in &valid {
            assert!(*line >= 2, "a valid enterprise on line {line}");
        }
        // The credit code alone, as the token and user routes take it from the path.
        let _ = CreditCode::parse(text);
    }
});
