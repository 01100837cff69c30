//! Who a user is on the platform: one of four roles, each with its scope (DESIGN.md, "Roles
//! and scopes"). What each role may see and do is decided above, in the platform's
//! `scope`; this is only the vocabulary, shared by the store and the platform.

use crate::catalog::District;
use crate::credit_code::CreditCode;
use std::fmt;

/// A user's role and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The city's industry bureau: the whole city.
    Bureau,
    /// One district's (or functional zone's) office: counts in that district, read only.
    District(District),
    /// A service provider: the enterprises assigned to it.
    Integrator(CreditCode),
    /// One enterprise: its own gateways and data.
    Enterprise(CreditCode),
}

/// Why a stored or requested role is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The role's name is none of the four.
    #[error("unknown role {0:?}; expected bureau, district, integrator or enterprise")]
    Unknown(String),
    /// The role needs a scope and has none, or has one it may not have.
    #[error("{0}")]
    Scope(String),
}

impl Role {
    /// The role's name: `bureau`, `district`, `integrator` or `enterprise`.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Bureau => "bureau",
            Role::District(_) => "district",
            Role::Integrator(_) => "integrator",
            Role::Enterprise(_) => "enterprise",
        }
    }

    /// The scope as stored and shown: the district's name or the credit code; none for the
    /// bureau.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Role::Bureau => None,
            Role::District(district) => Some(district.name()),
            Role::Integrator(code) | Role::Enterprise(code) => Some(code.as_str()),
        }
    }

    /// The role named `kind` with `scope` (a district's Chinese name, or a credit code,
    /// checked).
    pub fn parse(kind: &str, scope: Option<&str>) -> Result<Role, RoleError> {
        let scope = scope.map(str::trim).filter(|s| !s.is_empty());
        let need = |what: &str| RoleError::Scope(format!("a {kind} user needs a scope: {what}"));
        let code = |scope: Option<&str>| {
            let raw = scope.ok_or_else(|| need("its credit code"))?;
            CreditCode::parse(raw).map_err(|e| RoleError::Scope(format!("scope: {e}")))
        };
        match kind.trim() {
            "bureau" => match scope {
                None => Ok(Role::Bureau),
                Some(_) => Err(RoleError::Scope("a bureau user has no scope".to_owned())),
            },
            "district" => {
                let name = scope.ok_or_else(|| need("its district's Chinese name"))?;
                District::from_name(name)
                    .map(Role::District)
                    .ok_or_else(|| {
                        RoleError::Scope(format!(
                            "scope: unknown district {name:?}; expected one of: {}",
                            District::names()
                        ))
                    })
            }
            "integrator" => code(scope).map(Role::Integrator),
            "enterprise" => code(scope).map(Role::Enterprise),
            other => Err(RoleError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope() {
            Some(scope) => write!(f, "{} {scope}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_round_trips_through_its_kind_and_scope() {
        let code = CreditCode::complete("91420100770000001").expect("a code");
        let roles = [
            Role::Bureau,
            Role::District(District::from_name("洪山区").expect("a district")),
            Role::Integrator(code.clone()),
            Role::Enterprise(code),
        ];
        for role in roles {
            assert_eq!(Role::parse(role.kind(), role.scope()), Ok(role.clone()));
        }
    }

    #[test]
    fn a_scope_is_checked_and_required_where_the_role_has_one() {
        assert!(matches!(
            Role::parse("district", Some("Gotham")),
            Err(RoleError::Scope(_))
        ));
        assert!(matches!(
            Role::parse("integrator", None),
            Err(RoleError::Scope(_))
        ));
        assert!(matches!(
            Role::parse("enterprise", Some("91420100770000000")),
            Err(RoleError::Scope(_))
        ));
        assert!(matches!(
            Role::parse("bureau", Some("洪山区")),
            Err(RoleError::Scope(_))
        ));
        assert_eq!(
            Role::parse("root", None),
            Err(RoleError::Unknown("root".to_owned()))
        );
    }
}
