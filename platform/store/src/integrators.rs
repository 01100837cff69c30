//! Integrators as stored: the service providers that install gateways, the enterprise
//! each one serves (the current assignment on the enterprise's row, every assignment kept
//! in `assignments` with its time), and the enterprise's choice to share its sample values
//! with the bureau. Who may do what is decided above, in the platform.

use crate::{Store, StoreError, dispatch};
use fieldlink_platform_core::credit_code::CreditCode;

/// An integrator to register (already validated).
#[derive(Debug, Clone)]
pub struct NewIntegrator {
    /// Its credit code.
    pub credit_code: CreditCode,
    /// Its registered name.
    pub name: String,
    /// Who to call, as the bureau noted it.
    pub contact: Option<String>,
}

/// A registered integrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrator {
    /// Its credit code.
    pub credit_code: String,
    /// Its registered name.
    pub name: String,
    /// Who to call.
    pub contact: Option<String>,
    /// When it was registered (ms since the epoch).
    pub registered_at: i64,
}

/// One assignment of an enterprise, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The integrator, by credit code.
    pub integrator: String,
    /// When (ms since the epoch).
    pub assigned_at: i64,
}

/// What an assignment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOutcome {
    /// The enterprise is now the integrator's (kept in the history).
    Assigned,
    /// It already was: nothing changed, nothing added to the history.
    Unchanged,
    /// No enterprise with that credit code.
    NoEnterprise,
    /// No integrator with that credit code.
    NoIntegrator,
}

impl Store {
    /// Registers an integrator at `now`; false if one with its credit code exists.
    pub async fn insert_integrator(
        &self,
        integrator: NewIntegrator,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.insert_integrator(integrator, now).await)
    }

    /// Every integrator, by credit code.
    pub async fn integrators(&self) -> Result<Vec<Integrator>, StoreError> {
        dispatch!(self, s => s.integrators().await)
    }

    /// The integrator with this credit code.
    pub async fn integrator(&self, credit_code: &str) -> Result<Option<Integrator>, StoreError> {
        dispatch!(self, s => s.integrator(credit_code.to_owned()).await)
    }

    /// Assigns `enterprise` to `integrator` at `now`, keeping the assignment in its history.
    pub async fn assign(
        &self,
        enterprise: &str,
        integrator: &str,
        now: i64,
    ) -> Result<AssignOutcome, StoreError> {
        let (enterprise, integrator) = (enterprise.to_owned(), integrator.to_owned());
        dispatch!(self, s => s.assign(enterprise, integrator, now).await)
    }

    /// Every assignment of `enterprise`, oldest first.
    pub async fn assignments(&self, enterprise: &str) -> Result<Vec<Assignment>, StoreError> {
        dispatch!(self, s => s.assignments(enterprise.to_owned()).await)
    }

    /// Sets whether `enterprise` shares its sample values with the bureau; false if there is
    /// no such enterprise.
    pub async fn set_share_data_with_bureau(
        &self,
        enterprise: &str,
        share: bool,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_share_data_with_bureau(enterprise.to_owned(), share).await)
    }
}
