//! The bureau records an enterprise's plan classes from its page: its size and specialised
//! class, and a digital-maturity assessment (POST, CSRF). Every user who sees the
//! enterprise sees them on its page; only the bureau gets the forms
//! ([`crate::scope::records_profile_of`]).

use super::pages::{AssessmentDraft, enterprise_page, path_code};
use super::web::{Ctx, UiError};
use crate::profile::{Size, Specialised};
use crate::registry::{MaturityInput, RegistryError};
use crate::scope;
use crate::store::Enterprise;
use axum::extract::{Form, Path};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// The size and class form: an empty choice leaves that class as it is.
#[derive(Debug, Deserialize)]
pub struct ClassesForm {
    csrf: String,
    size: Option<String>,
    specialised: Option<String>,
}

/// The assessment form.
#[derive(Debug, Deserialize)]
pub struct AssessmentForm {
    csrf: String,
    level: String,
    assessed_at: String,
    assessor: String,
}

/// The enterprise `code` if the session may record its classes: 404 outside its scope, 403
/// for a user who sees it but is not the bureau.
async fn recordable(ctx: &Ctx, code: &str, csrf: &str) -> Result<Enterprise, UiError> {
    ctx.csrf(csrf)?;
    let user = ctx.user()?;
    let enterprise = ctx.enterprise(code).await?;
    if !scope::records_profile_of(&user.role, &enterprise) {
        return Err(UiError::Forbidden);
    }
    Ok(enterprise)
}

/// `POST /enterprises/{credit_code}/classes`: sets the size and specialised class and goes
/// back to the enterprise's page.
pub async fn set_classes(
    ctx: Ctx,
    Path(code): Path<String>,
    Form(form): Form<ClassesForm>,
) -> Response {
    let result = classes(&ctx, &path_code(&code), &form).await;
    ctx.respond(result)
}

async fn classes(ctx: &Ctx, code: &str, form: &ClassesForm) -> Result<Response, UiError> {
    let enterprise = recordable(ctx, code, &form.csrf).await?;
    let size = chosen(&form.size)
        .map(|v| Size::from_code(v).ok_or_else(|| bad("size", v, &Size::codes())))
        .transpose()?;
    let specialised = chosen(&form.specialised)
        .map(|v| {
            Specialised::from_code(v).ok_or_else(|| bad("specialised", v, &Specialised::codes()))
        })
        .transpose()?;
    if size.is_some() || specialised.is_some() {
        ctx.state
            .registry
            .set_classes(&enterprise.credit_code, size, specialised)
            .await
            .map_err(registry_error)?;
    }
    Ok(Redirect::to(&format!("/enterprises/{}", enterprise.credit_code)).into_response())
}

/// A choice made in a form's select: none for its empty first option.
fn chosen(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// 400 for a choice the form never offers.
fn bad(field: &str, value: &str, codes: &str) -> UiError {
    UiError::BadRequest(format!("{field}: {value:?} is not one of {codes}"))
}

/// `POST /enterprises/{credit_code}/maturity`: records an assessment and goes back to the
/// enterprise's page; a refused one is shown again on it with why.
pub async fn record_maturity(
    ctx: Ctx,
    Path(code): Path<String>,
    Form(form): Form<AssessmentForm>,
) -> Response {
    let result = maturity(&ctx, &path_code(&code), &form).await;
    ctx.respond(result)
}

async fn maturity(ctx: &Ctx, code: &str, form: &AssessmentForm) -> Result<Response, UiError> {
    let enterprise = recordable(ctx, code, &form.csrf).await?;
    let refused = |error: String| AssessmentDraft {
        level: form.level.clone(),
        assessed_at: form.assessed_at.clone(),
        assessor: form.assessor.clone(),
        error,
    };
    let Ok(level) = form.level.trim().parse::<i64>() else {
        let why = format!("level: {:?} is not a number", form.level);
        return enterprise_page(ctx, code, Some(refused(why))).await;
    };
    let input = MaturityInput {
        level,
        assessed_at: form.assessed_at.clone(),
        assessor: form.assessor.clone(),
    };
    match ctx
        .state
        .registry
        .record_assessment(&enterprise.credit_code, &input)
        .await
    {
        Ok(_) => {
            Ok(Redirect::to(&format!("/enterprises/{}", enterprise.credit_code)).into_response())
        }
        Err(e @ RegistryError::Field { .. }) => {
            enterprise_page(ctx, code, Some(refused(e.to_string()))).await
        }
        Err(e) => Err(registry_error(e)),
    }
}

/// The page's error for a registry's: 404 for an enterprise gone meanwhile, 500 for the
/// store, 400 for the rest (what the form sent).
fn registry_error(e: RegistryError) -> UiError {
    match e {
        RegistryError::NoEnterprise(_) => UiError::NotFound,
        RegistryError::Store(e) => UiError::Store(e),
        e => UiError::BadRequest(e.to_string()),
    }
}
