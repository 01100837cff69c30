//! The registry of enterprises and integrators, and gateway enrollment: validation of what
//! the bureau and the integrators send (an enterprise's size, specialised class and
//! maturity assessments among it), token issue, enrollment with credential rotation, and
//! keeping the broker's credentials in step.

use crate::catalog::{District, Industry};
use crate::clock::{DAY_MS, now_ms, parse_time};
pub use crate::credit_code::gateway_id;
use crate::credit_code::{CreditCode, CreditCodeError};
use crate::mosquitto::{MosquittoError, MosquittoSync};
use crate::profile::{MaturityLevel, Size, Specialised};
use crate::secret::{self, RandomError};
use crate::store::{
    self, EnrollOutcome, NewAssessment, NewEnterprise, NewIntegrator, NewToken, Store, StoreError,
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
/// Longest name of a maturity assessor, in characters.
pub const MAX_ASSESSOR: usize = 200;
/// How far ahead of the platform's clock an assessment's time may be (the sender's clock
/// may run a little fast); beyond, it is in the future and refused.
pub const CLOCK_SKEW_MS: i64 = 5 * 60_000;

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Above or below designated size; not recorded if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// Its specialised class; not recorded if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialised: Option<Specialised>,
    /// A maturity assessment to record with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity: Option<MaturityInput>,
}

impl EnterpriseInput {
    /// Validates every field at `now` (dates without a time are days in the zone
    /// `utc_offset_minutes` east of UTC); the first problem is the error.
    pub fn validate(
        &self,
        now: i64,
        utc_offset_minutes: i32,
    ) -> Result<NewEnterprise, RegistryError> {
        let credit_code = CreditCode::parse(&self.credit_code)?;
        let name = valid_name(&self.name)?;
        let industry = Industry::from_code(self.industry.trim())
            .ok_or_else(|| RegistryError::Industry(self.industry.clone()))?;
        let district = District::from_name(self.district.trim())
            .ok_or_else(|| RegistryError::District(self.district.clone()))?;
        let maturity = self
            .maturity
            .as_ref()
            .map(|m| m.validate(now, utc_offset_minutes))
            .transpose()?;
        Ok(NewEnterprise {
            credit_code,
            name,
            industry,
            district,
            in_program: self.in_program,
            size: self.size,
            specialised: self.specialised,
            maturity,
        })
    }
}

/// A digital-maturity assessment as the bureau sends it
/// (`PUT /api/v1/enterprises/{credit_code}/maturity`, or with a registration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaturityInput {
    /// The level found, 1 to 4.
    pub level: i64,
    /// When: RFC 3339, or a date (`YYYY-MM-DD`, the start of that day in the program's
    /// zone); not in the future.
    pub assessed_at: String,
    /// Who assessed it (the third-party assessor).
    pub assessor: String,
}

impl MaturityInput {
    /// Validates every field at `now` (a date is a day in the zone `utc_offset_minutes`
    /// east of UTC); the first problem is the error.
    pub fn validate(
        &self,
        now: i64,
        utc_offset_minutes: i32,
    ) -> Result<NewAssessment, RegistryError> {
        let field = |field: &'static str, reason: String| RegistryError::Field { field, reason };
        let level = MaturityLevel::new(self.level).ok_or_else(|| {
            field(
                "level",
                format!(
                    "{} is not a maturity level: must be {} to {}",
                    self.level,
                    MaturityLevel::MIN,
                    MaturityLevel::MAX
                ),
            )
        })?;
        let assessed_at = parse_time(&self.assessed_at, utc_offset_minutes).ok_or_else(|| {
            field(
                "assessed_at",
                format!(
                    "{:?} is not a date (YYYY-MM-DD) or an RFC 3339 time",
                    self.assessed_at
                ),
            )
        })?;
        if assessed_at > now + CLOCK_SKEW_MS {
            return Err(field(
                "assessed_at",
                format!("{} is in the future", crate::clock::rfc3339(assessed_at)),
            ));
        }
        let assessor = self.assessor.trim();
        if assessor.is_empty()
            || assessor.chars().count() > MAX_ASSESSOR
            || assessor.chars().any(char::is_control)
        {
            return Err(field(
                "assessor",
                format!("must be 1 to {MAX_ASSESSOR} printable characters"),
            ));
        }
        Ok(NewAssessment {
            level,
            assessed_at,
            assessor: assessor.to_owned(),
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
    utc_offset_minutes: i32,
}

impl Registry {
    /// A registry over `store`, handing out `public_mqtt_url`, keeping `mosquitto` in step,
    /// reading dates without a time as days in the zone `utc_offset_minutes` east of UTC.
    pub fn new(
        store: Store,
        mosquitto: Option<Arc<MosquittoSync>>,
        public_mqtt_url: String,
        utc_offset_minutes: i32,
    ) -> Self {
        Registry {
            store,
            mosquitto,
            public_mqtt_url,
            utc_offset_minutes,
        }
    }

    /// The storage behind the registry.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Registers one enterprise.
    pub async fn create(&self, input: &EnterpriseInput) -> Result<NewEnterprise, RegistryError> {
        let now = now_ms();
        let enterprise = input.validate(now, self.utc_offset_minutes)?;
        match self
            .store
            .insert_enterprises(vec![enterprise.clone()], now, true)
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

    /// Sets the registered enterprise `credit_code`'s (normalised) size and specialised
    /// class, each only if given.
    pub async fn set_classes(
        &self,
        credit_code: &str,
        size: Option<Size>,
        specialised: Option<Specialised>,
    ) -> Result<(), RegistryError> {
        if !self
            .store
            .set_classes(credit_code, size, specialised)
            .await?
        {
            return Err(RegistryError::NoEnterprise(credit_code.to_owned()));
        }
        tracing::info!(
            enterprise = %credit_code,
            size = ?size.map(Size::code),
            specialised = ?specialised.map(Specialised::code),
            "size and specialised class set"
        );
        Ok(())
    }

    /// Records the bureau's maturity assessment of the registered enterprise
    /// `credit_code` (normalised).
    pub async fn record_assessment(
        &self,
        credit_code: &str,
        input: &MaturityInput,
    ) -> Result<NewAssessment, RegistryError> {
        let now = now_ms();
        let assessment = input.validate(now, self.utc_offset_minutes)?;
        if !self
            .store
            .record_assessment(credit_code, assessment.clone(), now)
            .await?
        {
            return Err(RegistryError::NoEnterprise(credit_code.to_owned()));
        }
        tracing::info!(enterprise = %credit_code, level = %assessment.level, "maturity assessment recorded");
        Ok(assessment)
    }

    /// Imports enterprises from CSV ([`parse_csv`]'s columns): all or nothing; every
    /// line's errors are reported at once.
    pub async fn import_csv(&self, text: &str) -> Result<usize, RegistryError> {
        let now = now_ms();
        let (enterprises, mut errors) = parse_csv(text, now, self.utc_offset_minutes);
        let codes: Vec<NewEnterprise> = enterprises.iter().map(|(_, e)| e.clone()).collect();
        let commit = errors.is_empty();
        if let Err(existing) = self.store.insert_enterprises(codes, now, commit).await? {
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

/// The CSV columns (required first), each with the Chinese headers taken for it.
const CSV_COLUMNS: [(&str, &[&str]); 10] = [
    ("credit_code", &["统一社会信用代码", "信用代码"]),
    ("name", &["企业名称", "名称"]),
    ("industry", &["行业"]),
    ("district", &["区域", "所在区"]),
    ("in_program", &["改造企业"]),
    ("size", &["规模"]),
    ("specialised", &["专精特新"]),
    ("maturity_level", &["数字化水平等级", "成熟度等级"]),
    ("assessed_at", &["评估时间", "评估日期"]),
    ("assessor", &["评估机构"]),
];
/// How many of [`CSV_COLUMNS`] every file must have.
const REQUIRED_CSV_COLUMNS: usize = 4;

/// The words a CSV file may write for a size besides its code.
const SIZE_WORDS: [(&str, Size); 4] = [
    ("规上", Size::Above),
    ("规模以上", Size::Above),
    ("规下", Size::Below),
    ("规模以下", Size::Below),
];

/// The words a CSV file may write for a specialised class besides its code.
const SPECIALISED_WORDS: [(&str, Specialised); 7] = [
    ("无", Specialised::None),
    ("否", Specialised::None),
    ("省级", Specialised::Provincial),
    ("省级专精特新", Specialised::Provincial),
    ("小巨人", Specialised::LittleGiant),
    ("国家级小巨人", Specialised::LittleGiant),
    ("专精特新小巨人", Specialised::LittleGiant),
];

/// The canonical column a header names (its code or one of its Chinese names).
fn csv_column(header: &str) -> Option<&'static str> {
    CSV_COLUMNS
        .iter()
        .find(|(code, names)| *code == header || names.contains(&header))
        .map(|(code, _)| *code)
}

/// A CSV cell as a value by its code or one of `words`; `Ok(None)` when empty.
fn csv_value<T: Copy>(
    text: &str,
    from_code: fn(&str) -> Option<T>,
    words: &[(&str, T)],
) -> Result<Option<T>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    from_code(&text.to_ascii_lowercase())
        .or_else(|| words.iter().find(|(w, _)| *w == text).map(|(_, v)| *v))
        .map(Some)
        .ok_or(())
}

/// The maturity assessment of a CSV line: none when its three cells are empty, else all
/// three are needed.
fn csv_maturity(
    level: &str,
    assessed_at: &str,
    assessor: &str,
) -> Result<Option<MaturityInput>, String> {
    if level.is_empty() {
        if assessed_at.is_empty() && assessor.is_empty() {
            return Ok(None);
        }
        return Err("maturity_level: empty, but the line has assessed_at or assessor".to_owned());
    }
    let level = level.parse::<i64>().map_err(|_| {
        format!(
            "maturity_level: {level:?} is not a level {} to {}",
            MaturityLevel::MIN,
            MaturityLevel::MAX
        )
    })?;
    Ok(Some(MaturityInput {
        level,
        assessed_at: assessed_at.to_owned(),
        assessor: assessor.to_owned(),
    }))
}

/// Parses an import file into valid enterprises (with their line numbers) and line errors,
/// without touching the store (which [`Registry::import_csv`] then checks for duplicates).
/// The header names the columns, in any order, by code or Chinese name: `credit_code`
/// (统一社会信用代码), `name` (企业名称), `industry` (行业) and `district` (区域) are
/// required; `in_program` (改造企业), `size` (规模: `above`/`below`, 规上/规下),
/// `specialised` (专精特新: `none`/`provincial`/`little_giant`, 无/省级/小巨人) and a
/// maturity assessment, `maturity_level` (数字化水平等级), `assessed_at` (评估日期) and
/// `assessor` (评估机构), all three or none, are optional. Assessments are checked
/// against `now`; a date is a day in the zone `utc_offset_minutes` east of UTC.
pub fn parse_csv(
    text: &str,
    now: i64,
    utc_offset_minutes: i32,
) -> (Vec<(u64, NewEnterprise)>, Vec<LineError>) {
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
        match csv_column(name) {
            None => errors.push(error(
                1,
                format!(
                    "unknown column {name:?}; the columns are {}",
                    CSV_COLUMNS.map(|(code, _)| code).join(",")
                ),
            )),
            Some(column) => {
                if index.insert(column, i).is_some() {
                    errors.push(error(1, format!("column {column:?} appears twice")));
                }
            }
        }
    }
    for (required, _) in &CSV_COLUMNS[..REQUIRED_CSV_COLUMNS] {
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
        let cells: HashMap<&str, &str> = index
            .iter()
            .map(|(&column, &i)| (column, record.get(i).unwrap_or("")))
            .collect();
        let input = csv_line(&cells).and_then(|input| {
            input
                .validate(now, utc_offset_minutes)
                .map_err(|e| match e {
                    // The assessment's fields are named as the file's columns.
                    RegistryError::Field { field, reason }
                        if field == "level" && input.maturity.is_some() =>
                    {
                        format!("maturity_level: {reason}")
                    }
                    e => e.to_string(),
                })
        });
        match input {
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
            Err(e) => errors.push(error(line, e)),
        }
    }
    (valid, errors)
}

/// A CSV line's cells, by canonical column, as an enterprise to validate; the first cell
/// that is not even of its column's kind is the error.
fn csv_line(cells: &HashMap<&str, &str>) -> Result<EnterpriseInput, String> {
    let field = |name: &str| cells.get(name).copied().unwrap_or("");
    let in_program = parse_flag(field("in_program")).ok_or_else(|| {
        format!(
            "in_program: {:?} is not true/false, yes/no, 1/0 or 是/否",
            field("in_program")
        )
    })?;
    let size = csv_value(field("size"), Size::from_code, &SIZE_WORDS)
        .map_err(|()| format!("size: {:?} is not above/below (规上/规下)", field("size")))?;
    let specialised = csv_value(
        field("specialised"),
        Specialised::from_code,
        &SPECIALISED_WORDS,
    )
    .map_err(|()| {
        format!(
            "specialised: {:?} is not none/provincial/little_giant (无/省级/小巨人)",
            field("specialised")
        )
    })?;
    let maturity = csv_maturity(
        field("maturity_level"),
        field("assessed_at"),
        field("assessor"),
    )?;
    Ok(EnterpriseInput {
        credit_code: field("credit_code").to_owned(),
        name: field("name").to_owned(),
        industry: field("industry").to_owned(),
        district: field("district").to_owned(),
        in_program,
        size,
        specialised,
        maturity,
    })
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
        let (valid, errors) = parse_csv(text, 0, 480);
        assert_eq!(valid.len(), 1);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
    }

    #[test]
    fn csv_takes_chinese_headers_classes_and_assessments_each_checked() {
        // 2025-06-01T00:00:00+08:00.
        let now = 1_748_707_200_000;
        let text = "统一社会信用代码,企业名称,行业,区域,改造企业,规模,专精特新,数字化水平等级,评估日期,评估机构\n\
                    91350100M000100Y43,甲,auto-parts,洪山区,是,规上,小巨人,3,2025-05-20,评估院\n\
                    914403001922038216,乙,auto-parts,洪山区,否,below,provincial,,,\n\
                    91440300708461136T,丙,auto-parts,洪山区,否,,,,,\n\
                    91330100799655058B,丁,auto-parts,洪山区,否,huge,,,,\n\
                    91420100770000001W,戊,auto-parts,洪山区,否,,specialist,,,\n\
                    91420100770000001W,己,auto-parts,洪山区,否,,,5,2025-05-20,评估院\n\
                    91420100770000001W,庚,auto-parts,洪山区,否,,,2,2025-06-02,评估院\n\
                    91420100770000001W,辛,auto-parts,洪山区,否,,,2,2025-05-20,\n\
                    91420100770000001W,壬,auto-parts,洪山区,否,,,,2025-05-20,评估院\n";
        let (valid, errors) = parse_csv(text, now, 480);
        let found: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.error.as_str())).collect();
        assert_eq!(valid.len(), 3, "{found:?}");
        let (_, first) = &valid[0];
        assert_eq!(first.size, Some(Size::Above));
        assert_eq!(first.specialised, Some(Specialised::LittleGiant));
        let assessment = first.maturity.as_ref().expect("an assessment");
        assert_eq!(assessment.level.get(), 3);
        assert_eq!(assessment.assessed_at, now - 12 * DAY_MS);
        assert_eq!(assessment.assessor, "评估院");
        assert_eq!(valid[1].1.specialised, Some(Specialised::Provincial));
        assert_eq!((valid[2].1.size, valid[2].1.specialised), (None, None));
        assert!(valid[2].1.maturity.is_none());
        let lines: Vec<u64> = found.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [5, 6, 7, 8, 9, 10], "{found:?}");
        for (line, words) in [
            (5, "size: \"huge\""),
            (6, "specialised: \"specialist\""),
            (7, "maturity_level: 5 is not"),
            (8, "assessed_at: 2025-06-01T16:00:00.000Z is in the future"),
            (9, "assessor: must be"),
            (10, "maturity_level: empty"),
        ] {
            let (_, error) = found.iter().find(|(l, _)| *l == line).expect("an error");
            assert!(error.contains(words), "line {line}: {error}");
        }
    }
}
