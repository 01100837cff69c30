//! Enrollment's decisions, made once for both backends: the token must be known and not
//! expired; a gateway name the token's enterprise has enrolled before gets new credentials
//! (and takes no slot); a new one takes a slot while the token has one. A backend only
//! runs the statements of [`EnrollTx`], inside one transaction that it commits when the
//! answer is [`EnrollOutcome::Enrolled`].

use crate::{EnrollOutcome, EnrollRequest, StoreError};
use fieldlink_platform_core::credit_code::gateway_id;

/// An enrollment token's row, with its enterprise's name.
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    /// Its row id.
    pub id: i64,
    /// The enterprise it enrolls gateways for.
    pub credit_code: String,
    /// When it stops working.
    pub expires_at: i64,
    /// How many gateways it may enroll.
    pub max_gateways: u32,
    /// The enterprise's name.
    pub enterprise_name: String,
}

/// The statements of one enrollment, inside its transaction.
pub(crate) trait EnrollTx {
    /// The token with this hash, locked against concurrent enrollments on it.
    async fn token(&mut self, token_sha256: &str) -> Result<Option<TokenRow>, StoreError>;
    /// The enterprise owning the gateway `id`, if it is enrolled (its row locked).
    async fn gateway_owner(&mut self, id: &str) -> Result<Option<String>, StoreError>;
    /// How many gateways the token has enrolled.
    async fn gateways_of_token(&mut self, token_id: i64) -> Result<u64, StoreError>;
    /// Gives the enrolled gateway `id` the request's credentials (and host, version).
    async fn rotate(&mut self, id: &str, req: &EnrollRequest) -> Result<(), StoreError>;
    /// Inserts the gateway `id` of `token`'s enterprise.
    async fn insert_gateway(
        &mut self,
        id: &str,
        token: &TokenRow,
        req: &EnrollRequest,
    ) -> Result<(), StoreError>;
    /// Raises the credentials' version (see [`crate::Credentials`]).
    async fn credentials_changed(&mut self) -> Result<(), StoreError>;
}

/// Carries out `req` with `tx`'s statements.
pub(crate) async fn enroll<T: EnrollTx>(
    tx: &mut T,
    req: &EnrollRequest,
) -> Result<EnrollOutcome, StoreError> {
    let Some(token) = tx.token(&req.token_sha256).await? else {
        return Ok(EnrollOutcome::UnknownToken);
    };
    if req.now >= token.expires_at {
        return Ok(EnrollOutcome::Expired {
            expires_at: token.expires_at,
        });
    }
    let id = gateway_id(&token.credit_code, &req.gateway_name);
    let rotated = match tx.gateway_owner(&id).await? {
        Some(owner) if owner == token.credit_code => {
            tx.rotate(&id, req).await?;
            true
        }
        Some(_) => {
            // Ids start with the owner's credit code, so this cannot happen.
            return Err(StoreError::Corrupt(format!(
                "gateway {id} belongs to another enterprise"
            )));
        }
        None => {
            if tx.gateways_of_token(token.id).await? >= u64::from(token.max_gateways) {
                return Ok(EnrollOutcome::UsedUp {
                    max_gateways: token.max_gateways,
                });
            }
            tx.insert_gateway(&id, &token, req).await?;
            false
        }
    };
    tx.credentials_changed().await?;
    Ok(EnrollOutcome::Enrolled {
        gateway_id: id,
        credit_code: token.credit_code,
        enterprise_name: token.enterprise_name,
        rotated,
    })
}
