//! An enterprise's alarm rules: the list, one form to create a rule or edit one (prefilled),
//! and a switch to disable or enable a rule. The form offers what the enterprise's
//! gateways published in their catalogues (a gateway, a device or a point, one select);
//! a submitted rule is checked by [`rules::validate`], as the API checks it, and a refused
//! one comes back with the reason in place and the values as typed. Who may use the page
//! is [`super::alarms::managed`]'s; a rule of an enterprise the session does not manage
//! does not exist for it (404), as in the API.

use super::alarms::{self, kind_text, severity_label, target_text};
use super::i18n::Lang;
use super::pages::catalogue;
use super::web::{Ctx, UiError};
use crate::alarms::rules::{self, RuleError, RuleInput};
use crate::clock::now_ms;
use crate::store::alarms::{AlarmRule, ChannelRow, RuleKind, Severity};
use crate::store::{Enterprise, Gateway};
use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

/// The rule form as submitted, kept as typed so that a refused one is shown again.
#[derive(Debug, Default, Clone)]
struct RuleFields {
    /// The session's CSRF token.
    csrf: String,
    name: String,
    /// What it watches: a JSON list `[gateway, device?, point?]` ([`target_value`]).
    target: String,
    kind: String,
    threshold: String,
    hysteresis: String,
    for_seconds: String,
    severity: String,
    channels: Vec<i64>,
}

impl RuleFields {
    /// The fields of a submitted form: its pairs in order, `channels` repeated once per
    /// ticked box (a form the serde structs of the other pages cannot take).
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut fields = RuleFields::default();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => fields.csrf = value,
                "name" => fields.name = value,
                "target" => fields.target = value,
                "kind" => fields.kind = value,
                "threshold" => fields.threshold = value,
                "hysteresis" => fields.hysteresis = value,
                "for_seconds" => fields.for_seconds = value,
                "severity" => fields.severity = value,
                // Only the form's own boxes are sent; anything else names no channel.
                "channels" => fields.channels.extend(value.trim().parse::<i64>().ok()),
                _ => {}
            }
        }
        fields
    }

    /// The fields of a saved rule, for its edit form.
    fn of(rule: &AlarmRule) -> Self {
        RuleFields {
            csrf: String::new(),
            name: rule.name.clone(),
            target: target_value(
                &rule.gateway_id,
                rule.device.as_deref(),
                rule.point.as_deref(),
            ),
            kind: rule.kind.as_str().to_owned(),
            threshold: rule.threshold.map(|t| t.to_string()).unwrap_or_default(),
            hysteresis: rule.hysteresis.to_string(),
            for_seconds: rule.for_seconds.to_string(),
            severity: rule.severity.as_str().to_owned(),
            channels: rule.channels.clone(),
        }
    }

    /// The rule these fields ask for, as the API takes it; the reason if a field is not
    /// even of its type (a number, a target of the form).
    fn input(&self, lang: Lang) -> Result<RuleInput, String> {
        let mut target = serde_json::from_str::<Vec<String>>(&self.target)
            .unwrap_or_default()
            .into_iter();
        let gateway = target
            .next()
            .ok_or_else(|| lang.text("rule_no_target").to_owned())?;
        let not_a_number = |key: &str| lang.text("not_a_number").replace("{field}", lang.text(key));
        let number = |key: &str, text: &str| -> Result<Option<f64>, String> {
            match text.trim() {
                "" => Ok(None),
                t => t.parse::<f64>().map(Some).map_err(|_| not_a_number(key)),
            }
        };
        let for_seconds = match self.for_seconds.trim() {
            "" => None,
            t => Some(t.parse::<i64>().map_err(|_| not_a_number("for_seconds"))?),
        };
        Ok(RuleInput {
            name: self.name.clone(),
            gateway,
            device: target.next(),
            point: target.next(),
            kind: self.kind.clone(),
            threshold: number("threshold", &self.threshold)?,
            hysteresis: number("hysteresis", &self.hysteresis)?,
            for_seconds,
            severity: self.severity.clone(),
            channels: self.channels.clone(),
            // A new rule starts enabled; an edit keeps the rule's (see `update`).
            enabled: None,
        })
    }
}

/// A target as the form's select writes it: `["gw", "press-1", "temperature"]`, without
/// the parts the rule does not name. JSON, so that no name can break it apart.
fn target_value(gateway: &str, device: Option<&str>, point: Option<&str>) -> String {
    let parts: Vec<&str> = [Some(gateway), device, point]
        .into_iter()
        .flatten()
        .collect();
    serde_json::Value::from(parts).to_string()
}

/// The enable switch's form.
#[derive(Debug, Deserialize)]
pub struct EnabledForm {
    csrf: String,
    enabled: bool,
}

/// The form as the page shows it: where it posts, for which rule, with what and why it
/// was refused.
struct Editing<'a> {
    /// The rule edited, or none for a new one.
    rule: Option<&'a AlarmRule>,
    fields: RuleFields,
    error: Option<String>,
}

/// The rules page of enterprise `code`.
pub fn path(code: &str) -> String {
    format!("/enterprises/{code}/alarm-rules")
}

/// `GET /enterprises/{credit_code}/alarm-rules`: the rules and an empty form.
pub async fn rules_page(ctx: Ctx, Path(code): Path<String>) -> Response {
    let result = async {
        let enterprise = alarms::managed(&ctx, &code).await?;
        let editing = Editing {
            rule: None,
            fields: RuleFields {
                kind: RuleKind::High.as_str().to_owned(),
                severity: Severity::Warning.as_str().to_owned(),
                ..RuleFields::default()
            },
            error: None,
        };
        page(&ctx, &enterprise, editing, StatusCode::OK).await
    }
    .await;
    ctx.respond(result)
}

/// `POST /enterprises/{credit_code}/alarm-rules`: creates the rule and goes back to the
/// list (303), or shows the form again with the reason (400).
pub async fn create(
    ctx: Ctx,
    Path(code): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let fields = RuleFields::from_pairs(pairs);
        ctx.csrf(&fields.csrf)?;
        let enterprise = alarms::managed(&ctx, &code).await?;
        match checked(&ctx, &enterprise, &fields).await? {
            Ok(rule) => {
                let id = ctx.state.store.create_rule(rule, now_ms()).await?;
                tracing::info!(rule = id, enterprise = %enterprise.credit_code, "alarm rule created from the UI");
                Ok(Redirect::to(&path(&enterprise.credit_code)).into_response())
            }
            Err(error) => {
                let editing = Editing {
                    rule: None,
                    fields,
                    error: Some(error),
                };
                page(&ctx, &enterprise, editing, StatusCode::BAD_REQUEST).await
            }
        }
    }
    .await;
    ctx.respond(result)
}

/// The rule `fields` ask for if [`rules::validate`] accepts it, else the reason.
async fn checked(
    ctx: &Ctx,
    enterprise: &Enterprise,
    fields: &RuleFields,
) -> Result<Result<crate::store::alarms::NewRule, String>, UiError> {
    let input = match fields.input(ctx.lang) {
        Ok(input) => input,
        Err(reason) => return Ok(Err(reason)),
    };
    match rules::validate(&ctx.state.store, &enterprise.credit_code, &input).await {
        Ok(rule) => Ok(Ok(rule)),
        Err(RuleError::Invalid(reason)) => Ok(Err(reason)),
        Err(RuleError::Store(e)) => Err(e.into()),
    }
}

/// The rule `id` and its enterprise if the session manages that enterprise's alarms; 404
/// otherwise, as the API answers for a rule.
async fn managed_rule(ctx: &Ctx, id: i64) -> Result<(AlarmRule, Enterprise), UiError> {
    let rule = ctx.state.store.rule(id).await?.ok_or(UiError::NotFound)?;
    let enterprise = alarms::managed(ctx, &rule.credit_code)
        .await
        .map_err(|_| UiError::NotFound)?;
    Ok((rule, enterprise))
}

/// `GET /alarm-rules/{id}`: the rules page with the form prefilled with rule `id`.
pub async fn edit(ctx: Ctx, Path(id): Path<i64>) -> Response {
    let result = async {
        let (rule, enterprise) = managed_rule(&ctx, id).await?;
        let editing = Editing {
            rule: Some(&rule),
            fields: RuleFields::of(&rule),
            error: None,
        };
        page(&ctx, &enterprise, editing, StatusCode::OK).await
    }
    .await;
    ctx.respond(result)
}

/// `POST /alarm-rules/{id}`: saves the edited rule (enabled or not as it was; its
/// evaluation starts over) and goes back to the list, or shows the form again with the
/// reason.
pub async fn update(
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let fields = RuleFields::from_pairs(pairs);
        ctx.csrf(&fields.csrf)?;
        let (rule, enterprise) = managed_rule(&ctx, id).await?;
        match checked(&ctx, &enterprise, &fields).await? {
            Ok(new) => {
                let store = &ctx.state.store;
                if !store.update_rule(id, new, rule.enabled, now_ms()).await? {
                    return Err(UiError::NotFound);
                }
                tracing::info!(rule = id, "alarm rule changed from the UI");
                Ok(Redirect::to(&path(&enterprise.credit_code)).into_response())
            }
            Err(error) => {
                let editing = Editing {
                    rule: Some(&rule),
                    fields,
                    error: Some(error),
                };
                page(&ctx, &enterprise, editing, StatusCode::BAD_REQUEST).await
            }
        }
    }
    .await;
    ctx.respond(result)
}

/// `POST /alarm-rules/{id}/enabled`: enables or disables rule `id` with its settings
/// unchanged, and goes back to the list.
pub async fn set_enabled(ctx: Ctx, Path(id): Path<i64>, Form(form): Form<EnabledForm>) -> Response {
    let result = async {
        ctx.csrf(&form.csrf)?;
        let (rule, enterprise) = managed_rule(&ctx, id).await?;
        let store = &ctx.state.store;
        if !store
            .update_rule(id, rule.settings(), form.enabled, now_ms())
            .await?
        {
            return Err(UiError::NotFound);
        }
        tracing::info!(
            rule = id,
            enabled = form.enabled,
            "alarm rule switched from the UI"
        );
        Ok(Redirect::to(&path(&enterprise.credit_code)).into_response())
    }
    .await;
    ctx.respond(result)
}

/// What a kind's rule names: `gateway`, `device` or `point` (the form's targets have the
/// same levels).
fn level(kind: RuleKind) -> &'static str {
    if kind.watches_point() {
        "point"
    } else if kind == RuleKind::DeviceDown {
        "device"
    } else {
        "gateway"
    }
}

/// The targets the form offers: each of `gateways`, each device and each point of its
/// catalogue, in the catalogue's order; `chosen` selected.
fn targets(gateways: &[Gateway], chosen: &str) -> Vec<Value> {
    let option = |value: String, label: String, level: &str| {
        context! { selected => value == chosen, value => value, label => label, level => level }
    };
    let mut out = Vec::new();
    for g in gateways {
        out.push(option(
            target_value(&g.id, None, None),
            format!("{} ({})", g.name, g.id),
            "gateway",
        ));
        for d in catalogue(g).map(|m| m.devices).unwrap_or_default() {
            out.push(option(
                target_value(&g.id, Some(&d.name), None),
                target_text(&g.name, Some(&d.name), None),
                "device",
            ));
            for p in &d.points {
                let unit = p
                    .unit
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default();
                out.push(option(
                    target_value(&g.id, Some(&d.name), Some(&p.name)),
                    format!(
                        "{}{unit}",
                        target_text(&g.name, Some(&d.name), Some(&p.name))
                    ),
                    "point",
                ));
            }
        }
    }
    out
}

/// One rule's row in the list.
fn rule_row(ctx: &Ctx, r: &AlarmRule, channels: &[ChannelRow], gateways: &[Gateway]) -> Value {
    let lang = ctx.lang;
    let gateway = gateways
        .iter()
        .find(|g| g.id == r.gateway_id)
        .map_or(r.gateway_id.as_str(), |g| g.name.as_str());
    let mut condition = Vec::new();
    if let Some(t) = r.threshold {
        condition.push(format!("{} {t}", lang.text("threshold")));
    }
    if r.kind.has_hysteresis() && r.hysteresis > 0.0 {
        condition.push(format!("{} {}", lang.text("hysteresis"), r.hysteresis));
    }
    if r.for_seconds > 0 {
        condition.push(
            lang.text("for_n_seconds")
                .replace("{n}", &r.for_seconds.to_string()),
        );
    }
    let names: Vec<&str> = r
        .channels
        .iter()
        .filter_map(|id| {
            channels
                .iter()
                .find(|c| c.id == *id)
                .map(|c| c.name.as_str())
        })
        .collect();
    context! {
        id => r.id,
        name => r.name,
        kind => kind_text(lang, r.kind),
        target => target_text(gateway, r.device.as_deref(), r.point.as_deref()),
        condition => condition.join(" · "),
        severity => severity_label(lang, r.severity),
        channels => names.join("、"),
        enabled => r.enabled,
    }
}

/// The rules page of `enterprise` with the form as `editing` says.
async fn page(
    ctx: &Ctx,
    enterprise: &Enterprise,
    editing: Editing<'_>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let store = &ctx.state.store;
    let lang = ctx.lang;
    let code = &enterprise.credit_code;
    let rules = store.rules(code).await?;
    let channels = store.channels(code).await?;
    let gateways = store.gateways(Some(code)).await?;
    let rows: Vec<Value> = rules
        .iter()
        .map(|r| rule_row(ctx, r, &channels, &gateways))
        .collect();
    let f = &editing.fields;
    let kinds: Vec<Value> = RuleKind::ALL
        .iter()
        .map(|&k| {
            context! {
                value => k.as_str(),
                text => kind_text(lang, k),
                explain => lang.text(&format!("kind_{}_explain", k.as_str())),
                level => level(k),
                threshold => k.has_threshold(),
                hysteresis => k.has_hysteresis(),
                selected => f.kind == k.as_str(),
            }
        })
        .collect();
    let severities: Vec<Value> = Severity::ALL
        .iter()
        .map(|&s| context! { selected => f.severity == s.as_str(), ..severity_label(lang, s) })
        .collect();
    let channel_boxes: Vec<Value> = channels
        .iter()
        .map(|c| context! { id => c.id, name => c.name, checked => f.channels.contains(&c.id) })
        .collect();
    let action = match editing.rule {
        Some(rule) => format!("/alarm-rules/{}", rule.id),
        None => path(code),
    };
    let page = context! {
        e => context! { code => code, name => enterprise.name },
        rules => rows,
        form => context! {
            action => action,
            editing => editing.rule.map(|r| r.name.clone()),
            error => editing.error,
            name => f.name,
            threshold => f.threshold,
            hysteresis => f.hysteresis,
            for_seconds => f.for_seconds,
        },
        targets => targets(&gateways, &f.target),
        kinds => kinds,
        severities => severities,
        channels => channel_boxes,
    };
    Ok(ctx.render(status, "alarm_rules.html", page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_submitted_form_becomes_the_apis_rule_input() {
        let target = target_value("gw-1", Some("press/1"), Some("t \"x\""));
        let fields = RuleFields::from_pairs(pairs(&[
            ("csrf", "c"),
            ("name", "炉温过高"),
            ("target", &target),
            ("kind", "high"),
            ("threshold", " 80.5 "),
            ("hysteresis", ""),
            ("for_seconds", "30"),
            ("severity", "critical"),
            ("channels", "3"),
            ("channels", "x"),
            ("channels", "7"),
        ]));
        let input = fields.input(Lang::En).expect("an input");
        assert_eq!(input.gateway, "gw-1");
        assert_eq!(input.device.as_deref(), Some("press/1"));
        assert_eq!(input.point.as_deref(), Some("t \"x\""));
        assert_eq!(input.threshold, Some(80.5));
        assert_eq!(input.hysteresis, None);
        assert_eq!(input.for_seconds, Some(30));
        assert_eq!(input.channels, [3, 7]);
        assert_eq!(fields.csrf, "c");

        let bad = RuleFields {
            threshold: "eighty".to_owned(),
            ..fields.clone()
        };
        assert_eq!(bad.input(Lang::En).unwrap_err(), "Threshold: not a number");
        let untargeted = RuleFields {
            target: "not json".to_owned(),
            ..fields
        };
        assert!(untargeted.input(Lang::ZhCn).is_err());
    }
}
