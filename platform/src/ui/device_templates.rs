//! The device templates page (every shipped template with its source, its points and its
//! file, for any logged-in user) and the `[[device]]` skeleton that the config page's
//! picker inserts. The templates are the agent's shipped library, the same files the
//! platform validates configs with ([`crate::gateway_config`]).

use super::i18n::Lang;
use super::web::{Ctx, UiError};
use axum::http::StatusCode;
use axum::response::Response;
use fieldlink_config::{Template, Templates};
use minijinja::{Value, context};

/// `GET /templates`: every shipped template.
pub async fn templates(ctx: Ctx) -> Response {
    let result = templates_page(&ctx);
    ctx.respond(result)
}

fn templates_page(ctx: &Ctx) -> Result<Response, UiError> {
    ctx.user()?;
    let list: Vec<Value> = Templates::shipped()
        .iter()
        .map(|t| {
            context! {
                t => view(t, ctx.lang),
                text => t.text(),
            }
        })
        .collect();
    Ok(ctx.render(
        StatusCode::OK,
        "templates.html",
        context! { templates => list },
    ))
}

/// What the pages show of `template`: the API's view and its category in `lang`.
pub(super) fn view(template: &Template, lang: Lang) -> Value {
    context! {
        name => template.name,
        title => template.title,
        category => lang.text(&format!("category_{}", template.category)),
        manufacturer => template.manufacturer,
        model => template.model,
        protocols => template.protocols.join(", "),
        source => template.source,
        example => template.example,
        points => template.points,
        skeleton => skeleton(template),
    }
}

/// The `[[device]]` block of a device that uses `template`, over the first protocol it
/// offers, with placeholders for where the device is: valid as it stands, so the
/// integrator only changes the address, the port or the unit.
pub(super) fn skeleton(template: &Template) -> String {
    let protocol = template
        .protocols
        .first()
        .map_or("modbus-tcp", String::as_str);
    let link = match protocol {
        "modbus-rtu" | "modbus-ascii" => "serial = \"/dev/ttyUSB0\"\nbaud = 9600\n",
        _ => "address = \"192.168.1.10:502\"\n",
    };
    format!(
        "[[device]]\nname = \"{name}-1\"\ntemplate = \"{name}\"\nprotocol = \"{protocol}\"\n{link}unit = 1\n",
        name = template.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway_config;

    #[test]
    fn every_templates_skeleton_is_a_valid_config() {
        for template in Templates::shipped().iter() {
            let text = skeleton(template);
            if let Err(e) = gateway_config::validate(&text) {
                panic!("{}: {e}\n{text}", template.name);
            }
        }
    }

    #[test]
    fn every_category_has_a_name_in_both_languages() {
        for template in Templates::shipped().iter() {
            let key = format!("category_{}", template.category);
            assert_ne!(Lang::ZhCn.text(&key), key);
        }
    }
}
