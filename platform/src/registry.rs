//! The registry of enterprises and integrators, and gateway enrollment: validation of what
//! the bureau and the integrators send, token issue, enrollment with credential rotation,
//! and keeping the broker's credentials in step.

use crate::catalog::{District, Industry};
use crate::clock::{DAY_MS, now_ms};
pub use crate::credit_code::gateway_id;
use crate::credit_code::{CreditCode, CreditCodeError};
use crate::mosquitto::{MosquittoError, MosquittoSync};
use crate::secret::{self, RandomError};
use crate::store::{
    self, EnrollOutcome, NewEnterprise, NewIntegrator, NewToken, Store, StoreError,
};
use fieldlink_wire::enroll::{EnrollRequest, Enrollment, EnterpriseRef, MqttCredentials};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Default lifetime of an enrollment token, in days.
pub const DEFAULT_TOKEN_DAYS: u32 = 30;
/// Longest lifetime of an enrollment token, in days.
pub const MAX_TOKEN_DAYS: u32 = 365;
/// Default number of gateways one token enrolls (least privilege: ask for more).
pub const DEFAULT_MAX_GATEWAYS: u32 = 1;
/// Most gateways one token may enroll.
pub const MAX_GATEWAYS_PER_TOKEN: u32 = 1000;
/// Longest gateway name, in characters.
pub const MAX_GATEWAY_NAME: usize = 64;
/// Longest enterprise or integrator name, in characters.
pub const MAX_ENTERPRISE_NAME: usize = 200;
/// Longest contact of an integrator, in characters.
pub const MAX_CONTACT: usize = 200;

/// Why a registry or enrollment request failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The credit code is not valid (400).
    #[error("invalid credit code: {0}")]
    CreditCode(#[from] CreditCodeError),
    /// The industry code is not one of the 8 (400).
    #[error("unknown industry {0:?}; expected one of: {codes}", codes = Industry::codes())]
    Industry(String),
    /// The district is not one of the 17 (400).
    #[error("unknown district {0:?}; expected one of: {names}", names = District::names())]
    District(String),
    /// Another field is invalid (400).
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The enterprise is registered already (409).
    #[error("enterprise {0} is already registered")]
    Exists(String),
    /// No such enterprise (404).
    #[error("no enterprise with credit code {0}")]
    NoEnterprise(String),
    /// The integrator is registered already (409).
    #[error("integrator {0} is already registered")]
    IntegratorExists(String),
    /// The CSV file has errors; nothing was imported (400, or 409 if every error is an
    /// already registered enterprise).
    #[error("the CSV file has {} error(s); nothing was imported", .0.len())]
    Csv(Vec<LineError>),
    /// The enrollment token is unknown (401).
    #[error("unknown enrollment token")]
    UnknownToken,
    /// The enrollment token has expired (401).
    #[error("the enrollment token expired at {}", crate::clock::rfc3339(*expires_at))]
    ExpiredToken {
        /// When.
        expires_at: i64,
    },
    /// The token's gateways are used up (409).
    #[error(
        "the enrollment token has enrolled its {max_gateways} gateway(s); ask the bureau for another token"
    )]
    UsedUp {
        /// The token's maximum.
        max_gateways: u32,
    },
    /// Storage failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No secret could be made (500).
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The broker's credentials could not be updated (500); retry the enrollment.
    #[error("the gateway's MQTT credentials could not be installed in the broker: {0}")]
    Broker(#[from] MosquittoError),
}

/// One line's error in a CSV import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// The line number in the file (the header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub error: String,
    /// True if the line is valid but its enterprise is registered already.
    #[serde(skip)]
    pub exists: bool,
}

/// An enterprise as the bureau sends it (`POST /api/v1/enterprises`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseInput {
    /// 18-character unified social credit code.
    pub credit_code: String,
    /// Registered name.
    pub name: String,
    /// Industry code.
    pub industry: String,
    /// District or zone, by its Chinese name.
    pub district: String,
    /// On the city's list of enterprises being transformed.
    #[serde(default)]
    pub in_program: bool,
}

impl EnterpriseInput {
    /// Validates every field; the first problem is the error.
    pub fn validate(&self) -> Result<NewEnterprise, RegistryError> {
        let credit_code = CreditCode::parse(&self.credit_code)?;
        let name = valid_name(&self.name)?;
        let industry = Industry::from_code(self.industry.trim())
            .ok_or_else(|| RegistryError::Industry(self.industry.clone()))?;
        let district = District::from_name(self.district.trim())
            .ok_or_else(|| RegistryError::District(self.district.clone()))?;
        Ok(NewEnterprise {
            credit_code,
            name,
            industry,
            district,
            in_program: self.in_program,
        })
    }
}

/// An integrator as the bureau sends it (`POST /api/v1/integrators`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegratorInput {
    /// 18-character unified social credit code, checked like an enterprise's.
    pub credit_code: String,
    /// Registered name.
    pub name: String,
    /// Who to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

impl IntegratorInput {
    /// Validates every field; the first problem is the error.
    pub fn validate(&self) -> Result<NewIntegrator, RegistryError> {
        let credit_code = CreditCode::parse(&self.credit_code)?;
        let name = valid_name(&self.name)?;
        let contact = self
            .contact
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if contact
            .is_some_and(|c| c.chars().count() > MAX_CONTACT || c.chars().any(char::is_control))
        {
            return Err(RegistryError::Field {
                field: "contact",
                reason: format!("must be at most {MAX_CONTACT} printable characters"),
            });
        }
        Ok(NewIntegrator {
            credit_code,
            name,
            contact: contact.map(str::to_owned),
        })
    }
}

/// A registered name: 1 to [`MAX_ENTERPRISE_NAME`] characters, trimmed.
fn valid_name(name: &str) -> Result<String, RegistryError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_ENTERPRISE_NAME {
        return Err(RegistryError::Field {
            field: "name",
            reason: format!("must be 1 to {MAX_ENTERPRISE_NAME} characters"),
        });
    }
    Ok(name.to_owned())
}

/// What the bureau may set on a new token
/// (`POST /api/v1/enterprises/{credit_code}/tokens`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// Lifetime in days (default [`DEFAULT_TOKEN_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
    /// Gateways it may enroll (default [`DEFAULT_MAX_GATEWAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gateways: Option<u32>,
}

impl TokenInput {
    /// Validates the fields, giving the token's lifetime in days and its gateways.
    pub fn validate(&self) -> Result<(u32, u32), RegistryError> {
        let days = self.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(RegistryError::Field {
                field: "expires_in_days",
                reason: format!("must be 1 to {MAX_TOKEN_DAYS}"),
            });
        }
        let max_gateways = self.max_gateways.unwrap_or(DEFAULT_MAX_GATEWAYS);
        if !(1..=MAX_GATEWAYS_PER_TOKEN).contains(&max_gateways) {
            return Err(RegistryError::Field {
                field: "max_gateways",
                reason: format!("must be 1 to {MAX_GATEWAYS_PER_TOKEN}"),
            });
        }
        Ok((days, max_gateways))
    }
}

/// A token, shown once: the answer of `POST /api/v1/enterprises/{credit_code}/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token itself; only its hash is stored.
    pub token: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// Gateways it may enroll.
    pub max_gateways: u32,
}

/// Validates an enrollment request's fields (not the token, which only the store can
/// check), giving the gateway's name, trimmed.
pub fn validate_enrollment(input: &EnrollRequest) -> Result<&str, RegistryError> {
    let name = input.gateway_name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_GATEWAY_NAME
        || name.chars().any(char::is_control)
    {
        return Err(RegistryError::Field {
            field: "gateway_name",
            reason: format!("must be 1 to {MAX_GATEWAY_NAME} printable characters"),
        });
    }
    for (field, value) in [
        ("hostname", &input.hostname),
        ("agent_version", &input.agent_version),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            return Err(RegistryError::Field {
                field,
                reason: "must be at most 200 characters".to_owned(),
            });
        }
    }
    Ok(name)
}

/// The registry: enterprises, tokens, enrollment.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    mosquitto: Option<Arc<MosquittoSync>>,
    public_mqtt_url: String,
}

impl Registry {
    /// A registry over `store`, handing out `public_mqtt_url`, keeping `mosquitto` in step.
    pub fn new(
        store: Store,
        mosquitto: Option<Arc<MosquittoSync>>,
        public_mqtt_url: String,
    ) -> Self {
        Registry {
            store,
            mosquitto,
            public_mqtt_url,
        }
    }

    /// The storage behind the registry.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Registers one enterprise.
    pub async fn create(&self, input: &EnterpriseInput) -> Result<NewEnterprise, RegistryError> {
        let enterprise = input.validate()?;
        match self
            .store
            .insert_enterprises(vec![enterprise.clone()], now_ms(), true)
            .await?
        {
            Ok(_) => {
                tracing::info!(credit_code = %enterprise.credit_code, "enterprise registered");
                Ok(enterprise)
            }
            Err(_) => Err(RegistryError::Exists(enterprise.credit_code.to_string())),
        }
    }

    /// Registers an integrator.
    pub async fn register_integrator(
        &self,
        input: &IntegratorInput,
    ) -> Result<NewIntegrator, RegistryError> {
        let integrator = input.validate()?;
        if !self
            .store
            .insert_integrator(integrator.clone(), now_ms())
            .await?
        {
            return Err(RegistryError::IntegratorExists(
                integrator.credit_code.to_string(),
            ));
        }
        tracing::info!(credit_code = %integrator.credit_code, "integrator registered");
        Ok(integrator)
    }

    /// Imports enterprises from CSV (header `credit_code,name,industry,district,in_program`,
    /// `in_program` optional): all or nothing; every line's errors are reported at once.
    pub async fn import_csv(&self, text: &str) -> Result<usize, RegistryError> {
        let (enterprises, mut errors) = parse_csv(text);
        let codes: Vec<NewEnterprise> = enterprises.iter().map(|(_, e)| e.clone()).collect();
        let commit = errors.is_empty();
        if let Err(existing) = self
            .store
            .insert_enterprises(codes, now_ms(), commit)
            .await?
        {
            for (line, e) in &enterprises {
                if existing.iter().any(|c| c == e.credit_code.as_str()) {
                    errors.push(LineError {
                        line: *line,
                        error: format!("enterprise {} is already registered", e.credit_code),
                        exists: true,
                    });
                }
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(RegistryError::Csv(errors));
        }
        tracing::info!(count = enterprises.len(), "enterprises imported from CSV");
        Ok(enterprises.len())
    }

    /// Issues an enrollment token for an enterprise.
    pub async fn issue_token(
        &self,
        credit_code: &str,
        input: &TokenInput,
    ) -> Result<IssuedToken, RegistryError> {
        let (days, max_gateways) = input.validate()?;
        let code = CreditCode::parse(credit_code)?;
        let token = secret::new_token()?;
        let now = now_ms();
        let expires_at = now + i64::from(days) * DAY_MS;
        let stored = self
            .store
            .insert_token(NewToken {
                credit_code: code.to_string(),
                token_sha256: secret::sha256_hex(&token),
                created_at: now,
                expires_at,
                max_gateways,
            })
            .await?;
        if !stored {
            return Err(RegistryError::NoEnterprise(code.to_string()));
        }
        tracing::info!(credit_code = %code, days, max_gateways, "enrollment token issued");
        Ok(IssuedToken {
            token,
            expires_at: crate::clock::rfc3339(expires_at),
            max_gateways,
        })
    }

    /// Enrolls a gateway (or re-enrolls it, rotating its credentials).
    pub async fn enroll(&self, input: &EnrollRequest) -> Result<Enrollment, RegistryError> {
        let name = validate_enrollment(input)?;
        let password = secret::new_password()?;
        let outcome = self
            .store
            .enroll(store::EnrollRequest {
                token_sha256: secret::sha256_hex(input.token.trim()),
                gateway_name: name.to_owned(),
                hostname: input.hostname.clone(),
                agent_version: input.agent_version.clone(),
                password_hash: secret::mosquitto_hash(&password)?,
                now: now_ms(),
            })
            .await?;
        let (gateway_id, credit_code, enterprise_name, rotated) = match outcome {
            EnrollOutcome::Enrolled {
                gateway_id,
                credit_code,
                enterprise_name,
                rotated,
            } => (gateway_id, credit_code, enterprise_name, rotated),
            EnrollOutcome::UnknownToken => return Err(RegistryError::UnknownToken),
            EnrollOutcome::Expired { expires_at } => {
                return Err(RegistryError::ExpiredToken { expires_at });
            }
            EnrollOutcome::UsedUp { max_gateways } => {
                return Err(RegistryError::UsedUp { max_gateways });
            }
        };
        if let Some(mosquitto) = &self.mosquitto {
            mosquitto.sync().await?;
        }
        tracing::info!(gateway = %gateway_id, enterprise = %credit_code, rotated, "gateway enrolled");
        Ok(Enrollment {
            gateway_id: gateway_id.clone(),
            enterprise: EnterpriseRef {
                credit_code,
                name: enterprise_name,
            },
            mqtt: MqttCredentials {
                url: self.public_mqtt_url.clone(),
                username: gateway_id,
                password,
            },
            rotated,
        })
    }
}

/// The CSV columns, required first.
const CSV_COLUMNS: [&str; 5] = ["credit_code", "name", "industry", "district", "in_program"];

/// Parses an import file into valid enterprises (with their line numbers) and line errors,
/// without touching the store (which [`Registry::import_csv`] then checks for duplicates).
pub fn parse_csv(text: &str) -> (Vec<(u64, NewEnterprise)>, Vec<LineError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    let mut valid = Vec::new();
    let error = |line: u64, error: String| LineError {
        line,
        error,
        exists: false,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return (valid, vec![error(1, format!("unreadable header: {e}"))]),
    };
    let mut index = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        if !CSV_COLUMNS.contains(&name) {
            errors.push(error(
                1,
                format!(
                    "unknown column {name:?}; the columns are {}",
                    CSV_COLUMNS.join(",")
                ),
            ));
        } else if index.insert(name, i).is_some() {
            errors.push(error(1, format!("column {name:?} appears twice")));
        }
    }
    for required in &CSV_COLUMNS[..4] {
        if !index.contains_key(required) {
            errors.push(error(1, format!("missing column {required:?}")));
        }
    }
    if !errors.is_empty() {
        return (valid, errors);
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(error(line, format!("unreadable line: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != header.len() {
            errors.push(error(
                line,
                format!("{} fields, the header has {}", record.len(), header.len()),
            ));
            continue;
        }
        let field = |name: &str| index.get(name).and_then(|&i| record.get(i)).unwrap_or("");
        let in_program = match parse_flag(field("in_program")) {
            Some(flag) => flag,
            None => {
                errors.push(error(
                    line,
                    format!(
                        "in_program: {:?} is not true/false, yes/no, 1/0 or 是/否",
                        field("in_program")
                    ),
                ));
                continue;
            }
        };
        let input = EnterpriseInput {
            credit_code: field("credit_code").to_owned(),
            name: field("name").to_owned(),
            industry: field("industry").to_owned(),
            district: field("district").to_owned(),
            in_program,
        };
        match input.validate() {
            Ok(enterprise) => {
                let code = enterprise.credit_code.to_string();
                if let Some(first) = seen.get(&code) {
                    errors.push(error(
                        line,
                        format!("credit code {code} is also on line {first}"),
                    ));
                } else {
                    seen.insert(code, line);
                    valid.push((line, enterprise));
                }
            }
            Err(e) => errors.push(error(line, e.to_string())),
        }
    }
    (valid, errors)
}

fn parse_flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" | "n" | "否" => Some(false),
        "true" | "yes" | "1" | "y" | "是" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_carry_line_numbers() {
        let text = "credit_code,name,industry,district,in_program\n\
                    91350100M000100Y43,A,auto-parts,洪山区,yes\n\
                    91350100M000100Y44,B,auto-parts,洪山区,no\n\
                    91350100M000100Y43,C,auto-parts,洪山区,no\n\
                    914403001922038216,D,toys,洪山区,no\n";
        let (valid, errors) = parse_csv(text);
        assert_eq!(valid.len(), 1);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
    }
}
