//! What each role may see and do (DESIGN.md, "Roles and scopes"): the one place that
//! decides it, for the API and the web UI alike.
//!
//! - An enterprise is visible to the bureau, to its district's users, to the integrator it
//!   is assigned to now, and to itself. Outside its scope a user gets 404 for it, so
//!   nothing says it exists.
//! - Its sample values (latest values, series, charts, their CSV) are visible to its
//!   integrator and to itself; to the bureau and its district only while the enterprise
//!   shares them (`share_data_with_bureau`, off until it turns it on). Refused with 403:
//!   the enterprise is visible, its values are not.
//! - Actions: the bureau registers enterprises and integrators, assigns, records an
//!   enterprise's size, specialised class and maturity assessments, creates users and
//!   issues enrollment tokens and configures gateways for any enterprise; an integrator
//!   does both for its own enterprises; an enterprise sets its sharing; the enterprise and
//!   its integrator manage its alarms, which the bureau sees as counts of the enterprises
//!   that share their data; a district reads only.

use crate::role::Role;
use crate::store::Enterprise;

/// True if `role` may see `enterprise` at all.
pub fn sees_enterprise(role: &Role, enterprise: &Enterprise) -> bool {
    match role {
        Role::Bureau => true,
        Role::District(district) => enterprise.district == *district,
        Role::Integrator(code) => enterprise.integrator.as_deref() == Some(code.as_str()),
        Role::Enterprise(code) => enterprise.credit_code == code.as_str(),
    }
}

/// True if `role` may read `enterprise`'s sample values.
pub fn sees_values(role: &Role, enterprise: &Enterprise) -> bool {
    match role {
        Role::Bureau | Role::District(_) => {
            enterprise.share_data_with_bureau && sees_enterprise(role, enterprise)
        }
        Role::Integrator(_) | Role::Enterprise(_) => sees_enterprise(role, enterprise),
    }
}

/// True if `role` installs `enterprise`'s gateways: issues its enrollment tokens and
/// configures its gateways from the platform (the bureau, and the enterprise's integrator).
pub fn installs_for(role: &Role, enterprise: &Enterprise) -> bool {
    match role {
        Role::Bureau => true,
        Role::Integrator(_) => sees_enterprise(role, enterprise),
        Role::District(_) | Role::Enterprise(_) => false,
    }
}

/// True if `role` manages `enterprise`'s alarms (rules, channels, acknowledgements): the
/// enterprise itself and its integrator. The bureau and districts see counts at most.
pub fn manages_alarms_of(role: &Role, enterprise: &Enterprise) -> bool {
    match role {
        Role::Enterprise(_) | Role::Integrator(_) => sees_enterprise(role, enterprise),
        Role::Bureau | Role::District(_) => false,
    }
}

/// True if `role` records `enterprise`'s size, specialised class and maturity
/// assessments: the bureau, and nobody else (a district reads them).
pub fn records_profile_of(role: &Role, enterprise: &Enterprise) -> bool {
    matches!(role, Role::Bureau) && sees_enterprise(role, enterprise)
}

/// True if `role` may turn `enterprise`'s sharing with the bureau on or off: the
/// enterprise itself, and nobody else.
pub fn sets_sharing_of(role: &Role, enterprise: &Enterprise) -> bool {
    matches!(role, Role::Enterprise(code) if enterprise.credit_code == code.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{District, Industry};
    use crate::credit_code::CreditCode;

    fn code(first17: &str) -> CreditCode {
        CreditCode::complete(first17).expect("a code")
    }

    fn enterprise(share: bool) -> Enterprise {
        Enterprise {
            credit_code: code("91420100770000001").to_string(),
            name: "甲".to_owned(),
            industry: Industry::ALL[0],
            district: District::from_name("洪山区").expect("a district"),
            in_program: true,
            registered_at: 0,
            first_batch_at: None,
            last_batch_at: None,
            integrator: Some(code("91420100770000009").to_string()),
            assigned_at: Some(0),
            share_data_with_bureau: share,
            size: None,
            specialised: None,
            maturity: None,
        }
    }

    #[test]
    fn each_role_sees_its_scope_and_values_only_as_the_enterprise_allows() {
        let hongshan = District::from_name("洪山区").expect("a district");
        let jiangan = District::from_name("江岸区").expect("a district");
        let cases = [
            (Role::Bureau, true, false, true),
            (Role::District(hongshan), true, false, true),
            (Role::District(jiangan), false, false, false),
            (
                Role::Integrator(code("91420100770000009")),
                true,
                true,
                true,
            ),
            (
                Role::Integrator(code("91420100770000008")),
                false,
                false,
                false,
            ),
            (
                Role::Enterprise(code("91420100770000001")),
                true,
                true,
                true,
            ),
            (
                Role::Enterprise(code("91420100770000002")),
                false,
                false,
                false,
            ),
        ];
        let private = enterprise(false);
        let shared = enterprise(true);
        for (role, sees, values_private, values_shared) in cases {
            assert_eq!(sees_enterprise(&role, &private), sees, "{role}");
            assert_eq!(sees_values(&role, &private), values_private, "{role}");
            assert_eq!(sees_values(&role, &shared), values_shared, "{role}");
            // Alarms are managed by who sees the values whatever the sharing.
            assert_eq!(manages_alarms_of(&role, &shared), values_private, "{role}");
        }
    }

    #[test]
    fn tokens_are_issued_by_the_bureau_and_the_assigned_integrator_and_sharing_set_by_the_enterprise()
     {
        let e = enterprise(false);
        assert!(installs_for(&Role::Bureau, &e));
        assert!(installs_for(
            &Role::Integrator(code("91420100770000009")),
            &e
        ));
        assert!(!installs_for(
            &Role::Integrator(code("91420100770000008")),
            &e
        ));
        assert!(!installs_for(
            &Role::Enterprise(code("91420100770000001")),
            &e
        ));
        assert!(sets_sharing_of(
            &Role::Enterprise(code("91420100770000001")),
            &e
        ));
        assert!(!sets_sharing_of(&Role::Bureau, &e));
        let hongshan = District::from_name("洪山区").expect("a district");
        assert!(records_profile_of(&Role::Bureau, &e));
        for role in [
            Role::District(hongshan),
            Role::Integrator(code("91420100770000009")),
            Role::Enterprise(code("91420100770000001")),
        ] {
            assert!(!records_profile_of(&role, &e), "{role}");
        }
    }
}
