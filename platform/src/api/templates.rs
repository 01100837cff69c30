//! The device templates the platform offers integrators: the agent's shipped library
//! (the same files, embedded in both), each with its source, its points and its text.

use crate::http::{ApiError, Principal};
use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fieldlink_config::{Template, Templates};
use serde::{Deserialize, Serialize};

/// One template as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateView {
    /// Its name, as `template = "…"` names it.
    pub name: String,
    /// What the device is.
    pub title: String,
    /// energy-meter, temperature-controller, inverter or plc.
    pub category: String,
    /// The device's maker.
    pub manufacturer: String,
    /// The model the map is for.
    pub model: String,
    /// The Modbus transports the device offers.
    pub protocols: Vec<String>,
    /// The manufacturer's manual and its version.
    pub source: String,
    /// True if the map is an example, not a real device's.
    pub example: bool,
    /// Its points' names.
    pub points: Vec<String>,
    /// The template file (only for one template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The view of `template`, with its text if `with_text`.
pub fn view(template: &Template, with_text: bool) -> TemplateView {
    TemplateView {
        name: template.name.clone(),
        title: template.title.clone(),
        category: template.category.clone(),
        manufacturer: template.manufacturer.clone(),
        model: template.model.clone(),
        protocols: template.protocols.clone(),
        source: template.source.clone(),
        example: template.example,
        points: template.points.clone(),
        text: with_text.then(|| template.text().to_owned()),
    }
}

pub(super) async fn list(_who: Principal) -> Response {
    let views: Vec<TemplateView> = Templates::shipped()
        .iter()
        .map(|t| view(t, false))
        .collect();
    Json(views).into_response()
}

pub(super) async fn get(_who: Principal, Path(name): Path<String>) -> Result<Response, ApiError> {
    match Templates::shipped().get(&name) {
        Some(template) => Ok(Json(view(template, true)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no template {name}"),
        )),
    }
}
