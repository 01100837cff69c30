//! A gateway's configuration page: where the gateway stands (applied, pending, refused
//! with its error, or its local file only), the newest version's TOML in an editor, the
//! version history and a picker of the device templates. Who sees the gateway reads it;
//! who installs for its enterprise (the bureau, its integrator) saves and rolls back. A
//! refused save comes back with the submitted text kept and every error at its line.
//! Saving, validating and rolling back are [`crate::gateway_config`]'s, as for the API.

use super::device_templates;
use super::i18n::Lang;
use super::web::{Ctx, UiError};
use crate::clock::now_ms;
use crate::gateway_config::{self, ConfigStanding, ConfigView, LocatedError, SaveError};
use crate::scope;
use crate::store::{Enterprise, Gateway};
use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fieldlink_config::Templates;
use minijinja::{Value, context};
use serde::Deserialize;

/// The versions the history lists, newest first (as the API's list).
const VERSIONS_LISTED: u32 = 100;
/// Lines shown around each error in the listing of a refused text.
const CONTEXT_LINES: usize = 2;

/// The editor's form.
#[derive(Debug, Deserialize)]
pub struct ConfigForm {
    csrf: String,
    /// Absent from a form without the editor, which then saves an empty config.
    #[serde(default)]
    toml: String,
}

/// A rollback button's form.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    csrf: String,
    version: u64,
}

/// A text the gateway's page shows back because it was not saved, and why.
struct Refused {
    toml: String,
    /// Every located error.
    errors: Vec<LocatedError>,
    /// A reason that has no line (the text is too large).
    reason: Option<String>,
}

/// The page of gateway `id`.
pub fn path(id: &str) -> String {
    format!("/gateways/{id}/config")
}

/// `GET /gateways/{gateway_id}/config`: the page.
pub async fn config(ctx: Ctx, Path(id): Path<String>) -> Response {
    let result = async {
        let (gateway, enterprise) = ctx.gateway(&id).await?;
        page(&ctx, &gateway, &enterprise, None).await
    }
    .await;
    ctx.respond(result)
}

/// `POST /gateways/{gateway_id}/config`: saves the editor's text as the next version and
/// goes back to the page (303), or shows the page again with the text and its errors.
pub async fn save(ctx: Ctx, Path(id): Path<String>, Form(form): Form<ConfigForm>) -> Response {
    let result = save_text(&ctx, &id, form).await;
    ctx.respond(result)
}

async fn save_text(ctx: &Ctx, id: &str, form: ConfigForm) -> Result<Response, UiError> {
    let (gateway, enterprise) = installer(ctx, id, &form.csrf).await?;
    // Browsers send a textarea's lines ended with CRLF (HTML's form encoding); the config
    // is kept with LF, as a file or the API writes it, so versions compare line by line.
    let toml = form.toml.replace("\r\n", "\n");
    let by = &ctx.user()?.username;
    match gateway_config::save(&ctx.state.store, &gateway.id, toml.clone(), by, now_ms()).await {
        Ok(version) => {
            tracing::info!(gateway = %gateway.id, version, by, "gateway config saved from the UI");
            Ok(Redirect::to(&path(&gateway.id)).into_response())
        }
        Err(e) => refused(ctx, &gateway, &enterprise, toml, e).await,
    }
}

/// `POST /gateways/{gateway_id}/config/rollback`: saves an older version's text as the
/// next version and goes back to the page.
pub async fn roll_back(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let result = roll_back_to(&ctx, &id, &form).await;
    ctx.respond(result)
}

async fn roll_back_to(ctx: &Ctx, id: &str, form: &RollbackForm) -> Result<Response, UiError> {
    let (gateway, enterprise) = installer(ctx, id, &form.csrf).await?;
    let by = &ctx.user()?.username;
    let store = &ctx.state.store;
    match gateway_config::roll_back(store, &gateway.id, form.version, by, now_ms()).await {
        Ok(version) => {
            tracing::info!(gateway = %gateway.id, version, from = form.version, by, "gateway config rolled back from the UI");
            Ok(Redirect::to(&path(&gateway.id)).into_response())
        }
        // The old text no longer passes (a template it names changed): shown with why.
        Err(e @ SaveError::Invalid(_)) => {
            let (_, toml) = store
                .config(&gateway.id, Some(form.version))
                .await?
                .ok_or(UiError::NotFound)?;
            refused(ctx, &gateway, &enterprise, toml, e).await
        }
        Err(e) => refused(ctx, &gateway, &enterprise, String::new(), e).await,
    }
}

/// The gateway `id` and its enterprise, if the form's CSRF token is the session's and the
/// session installs for that enterprise (404 if it does not see it, 403 if it only reads).
async fn installer(ctx: &Ctx, id: &str, csrf: &str) -> Result<(Gateway, Enterprise), UiError> {
    ctx.csrf(csrf)?;
    let (gateway, enterprise) = ctx.gateway(id).await?;
    if !scope::installs_for(&ctx.user()?.role, &enterprise) {
        return Err(UiError::Forbidden);
    }
    Ok((gateway, enterprise))
}

/// The answer to a save that failed: the page with `toml` and why (400), or the error's
/// page.
async fn refused(
    ctx: &Ctx,
    gateway: &Gateway,
    enterprise: &Enterprise,
    toml: String,
    error: SaveError,
) -> Result<Response, UiError> {
    let refused = match error {
        SaveError::Invalid(errors) => Refused {
            toml,
            errors: gateway_config::located(&errors),
            reason: None,
        },
        SaveError::TooLarge(bytes) => Refused {
            toml,
            errors: Vec::new(),
            reason: Some(
                ctx.lang
                    .text("config_too_large")
                    .replace("{bytes}", &bytes.to_string())
                    .replace("{max}", &gateway_config::MAX_TOML_BYTES.to_string()),
            ),
        },
        SaveError::NotFound(_) => return Err(UiError::NotFound),
        SaveError::Store(e) => return Err(e.into()),
    };
    page(ctx, gateway, enterprise, Some(refused)).await
}

/// How a standing reads: `v3 已应用`, `v4 待应用`, `已拒绝`, `本地` (pages and CSV).
pub(super) fn standing_text(lang: Lang, standing: ConfigStanding, newest: Option<u64>) -> String {
    let key = format!("config_{}", standing.code());
    let word = lang.text(&key);
    match (standing, newest) {
        (ConfigStanding::Applied | ConfigStanding::Pending, Some(v)) => format!("v{v} {word}"),
        _ => word.to_owned(),
    }
}

/// A standing's text ([`standing_text`]) and its tag's class, for this page and the
/// fleet's.
pub(super) fn standing_label(lang: Lang, standing: ConfigStanding, newest: Option<u64>) -> Value {
    let class = match standing {
        ConfigStanding::Applied => "ok",
        ConfigStanding::Pending => "pilot",
        ConfigStanding::Refused => "off",
        ConfigStanding::Local => "",
    };
    context! { text => standing_text(lang, standing, newest), class => class }
}

/// One line of a numbered listing, with the errors found on it.
fn line(number: usize, text: &str, errors: &[&LocatedError], lang: Lang) -> Value {
    let messages: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", at(lang, e), e.message))
        .collect();
    context! { n => number, text => text, bad => !messages.is_empty(), messages => messages }
}

/// `第 3 行第 1 列` / `line 3, column 1`.
fn at(lang: Lang, e: &LocatedError) -> String {
    lang.text("at_line_column")
        .replace("{line}", &e.line.to_string())
        .replace("{column}", &e.column.to_string())
}

/// The numbered listing of `text`: every line, or with `errors` only the lines within
/// [`CONTEXT_LINES`] of one, each group of lines after a skip marked `gap`. An error
/// past the last line (an unclosed table at the end) is shown on the last line.
fn listing(text: &str, errors: &[LocatedError], lang: Lang) -> Vec<Value> {
    let lines: Vec<&str> = if text.is_empty() {
        vec![""]
    } else {
        text.lines().collect()
    };
    let on = |n: usize| -> Vec<&LocatedError> {
        errors
            .iter()
            .filter(|e| e.line.clamp(1, lines.len()) == n)
            .collect()
    };
    let shown = |n: usize| {
        errors.is_empty()
            || errors
                .iter()
                .any(|e| e.line.clamp(1, lines.len()).abs_diff(n) <= CONTEXT_LINES)
    };
    let mut out = Vec::new();
    let mut skipped = false;
    for (i, text) in lines.iter().enumerate() {
        let n = i + 1;
        if !shown(n) {
            skipped = true;
            continue;
        }
        out.push(context! { gap => skipped && !out.is_empty(), ..line(n, text, &on(n), lang) });
        skipped = false;
    }
    out
}

/// The page of `gateway`, showing `refused`'s text and errors if a save failed (400), else
/// the newest version (200).
async fn page(
    ctx: &Ctx,
    gateway: &Gateway,
    enterprise: &Enterprise,
    refused: Option<Refused>,
) -> Result<Response, UiError> {
    let store = &ctx.state.store;
    let installs = scope::installs_for(&ctx.user()?.role, enterprise);
    let view = ConfigView::of(gateway, store.config(&gateway.id, None).await?);
    let versions = store.config_versions(&gateway.id, VERSIONS_LISTED).await?;
    let now = now_ms();
    let history: Vec<Value> = versions
        .iter()
        .map(|v| {
            context! {
                version => v.version,
                saved => ctx.stamp(now, v.created_at),
                by => v.created_by,
                published => v.published_at.map(|t| ctx.stamp(now, t)),
                running => view.applied_version == Some(v.version),
                newest => view.version == Some(v.version),
            }
        })
        .collect();
    let status = if refused.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (text, errors, reason) = match refused {
        Some(r) => (r.toml, r.errors, r.reason),
        None => (view.toml.clone().unwrap_or_default(), Vec::new(), None),
    };
    let line_count = text.lines().count().max(1);
    let bad_lines: Vec<usize> = errors.iter().map(|e| e.line.clamp(1, line_count)).collect();
    let gutter: Vec<Value> = (1..=line_count)
        .map(|n| context! { n => n, bad => bad_lines.contains(&n) })
        .collect();
    let templates: Vec<Value> = Templates::shipped()
        .iter()
        .map(|t| device_templates::view(t, ctx.lang))
        .collect();
    let page = context! {
        gateway => context! { id => gateway.id, name => gateway.name },
        enterprise => context! { code => enterprise.credit_code, name => enterprise.name },
        config_path => path(&gateway.id),
        installs => installs,
        standing => view.standing().code(),
        label => standing_label(ctx.lang, view.standing(), view.version),
        newest => view.version,
        applied => view.applied_version,
        gateway_error => view.error,
        text => text,
        rows => line_count.clamp(12, 40),
        gutter => gutter,
        error_count => errors.len(),
        errors_note => ctx.lang.text("config_errors").replace("{n}", &errors.len().to_string()),
        reason => reason,
        listing => (!installs || !errors.is_empty()).then(|| listing(&text, &errors, ctx.lang)),
        history => history,
        templates => templates,
    };
    Ok(ctx.render(status, "config.html", page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize) -> LocatedError {
        LocatedError {
            line,
            column: 1,
            message: "bad".to_owned(),
        }
    }

    /// (number, gap, bad) of each listed line.
    fn shown(text: &str, errors: &[LocatedError]) -> Vec<(usize, bool, bool)> {
        listing(text, errors, Lang::En)
            .iter()
            .map(|l| {
                let get = |k: &str| l.get_attr(k).expect("a field");
                (
                    get("n").as_usize().expect("a number"),
                    get("gap").is_true(),
                    get("bad").is_true(),
                )
            })
            .collect()
    }

    #[test]
    fn a_listing_shows_the_lines_around_each_error_and_marks_the_skips() {
        let text: String = (1..=12).map(|n| format!("line {n}\n")).collect();
        assert_eq!(shown(&text, &[]).len(), 12, "every line without errors");
        let around = shown(&text, &[error(2), error(10)]);
        let expected = [
            (1, false, false),
            (2, false, true),
            (3, false, false),
            (4, false, false),
            (8, true, false),
            (9, false, false),
            (10, false, true),
            (11, false, false),
            (12, false, false),
        ];
        assert_eq!(around, expected);
        // An error after the last line (an unclosed table) is shown on the last line.
        assert_eq!(shown("a\nb\n", &[error(3)]).last(), Some(&(2, false, true)));
        assert_eq!(shown("", &[error(1)]), [(1, false, true)]);
    }
}
