//! An enterprise's notification channels: the list (each URL with its token masked), a
//! form to add one, checked as the API checks it ([`api::check_channel`]: the platform's
//! `allow_private_webhooks` decides whether private addresses are accepted), and a "send
//! test message" button per channel whose outcome, delivered or the receiver's error, the
//! page shows. Who may use the page is [`super::alarms::managed`]'s; a channel of an
//! enterprise the session does not manage does not exist for it (404), as in the API.

use super::alarms;
use super::web::{Ctx, UiError};
use crate::alarms::channel::ChannelKind;
use crate::api::{self, ChannelInput, TestError};
use crate::clock::now_ms;
use crate::store::Enterprise;
use crate::store::alarms::ChannelRow;
use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use reqwest::Url;
use serde::Deserialize;

/// The kinds the form offers, in its order.
const KINDS: [ChannelKind; 4] = [
    ChannelKind::Webhook,
    ChannelKind::Wecom,
    ChannelKind::Dingtalk,
    ChannelKind::Feishu,
];
/// A path segment this long or longer is taken for a token (Feishu's hook id) and masked.
const TOKEN_SEGMENT: usize = 16;
/// How much of a masked token is shown, to tell channels apart.
const SHOWN_CHARS: usize = 4;

/// The channel form.
#[derive(Debug, Default, Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    secret: String,
}

/// A test button's form.
#[derive(Debug, Deserialize)]
pub struct TestForm {
    csrf: String,
}

/// The outcome of a test message, shown at the top of the page.
struct Tested {
    /// The channel's name.
    name: String,
    /// The receiver's error, or none if it took the message.
    error: Option<String>,
}

/// The channels page of enterprise `code`.
pub fn path(code: &str) -> String {
    format!("/enterprises/{code}/alarm-channels")
}

/// `GET /enterprises/{credit_code}/alarm-channels`: the channels and an empty form.
pub async fn channels_page(ctx: Ctx, Path(code): Path<String>) -> Response {
    let result = async {
        let enterprise = alarms::managed(&ctx, &code).await?;
        let form = ChannelForm {
            kind: ChannelKind::Webhook.as_str().to_owned(),
            ..ChannelForm::default()
        };
        page(&ctx, &enterprise, &form, None, None, StatusCode::OK).await
    }
    .await;
    ctx.respond(result)
}

/// `POST /enterprises/{credit_code}/alarm-channels`: saves the channel and goes back to the
/// list (303), or shows the form again with the reason (400).
pub async fn create(ctx: Ctx, Path(code): Path<String>, Form(form): Form<ChannelForm>) -> Response {
    let result = async {
        ctx.csrf(&form.csrf)?;
        let enterprise = alarms::managed(&ctx, &code).await?;
        let input = ChannelInput {
            name: form.name.clone(),
            kind: form.kind.clone(),
            url: form.url.clone(),
            secret: Some(form.secret.clone()),
        };
        let allow_private = ctx.state.allow_private_webhooks;
        match api::check_channel(input, &enterprise.credit_code, allow_private).await {
            Ok(channel) => {
                let id = ctx.state.store.create_channel(channel, now_ms()).await?;
                tracing::info!(channel = id, enterprise = %enterprise.credit_code, "alarm channel created from the UI");
                Ok(Redirect::to(&path(&enterprise.credit_code)).into_response())
            }
            Err(e) => {
                let error = Some(e.to_string());
                page(&ctx, &enterprise, &form, error, None, StatusCode::BAD_REQUEST).await
            }
        }
    }
    .await;
    ctx.respond(result)
}

/// `POST /alarm-channels/{id}/test`: sends a test message through channel `id` and shows
/// the channels page with the outcome: 200 if the receiver took it, 502 with its error if
/// not (as the API answers).
pub async fn test(ctx: Ctx, Path(id): Path<i64>, Form(form): Form<TestForm>) -> Response {
    let result = async {
        ctx.csrf(&form.csrf)?;
        let channel = ctx
            .state
            .store
            .channel(id)
            .await?
            .ok_or(UiError::NotFound)?;
        let enterprise = alarms::managed(&ctx, &channel.credit_code)
            .await
            .map_err(|_| UiError::NotFound)?;
        let (status, error) = match api::send_test(&ctx.state, &enterprise, &channel).await {
            Ok(()) => (StatusCode::OK, None),
            Err(e @ TestError::Invalid(_)) => (StatusCode::CONFLICT, Some(e.to_string())),
            Err(e @ TestError::NotDelivered(_)) => (StatusCode::BAD_GATEWAY, Some(e.to_string())),
        };
        tracing::info!(
            channel = id,
            delivered = error.is_none(),
            "test message sent from the UI"
        );
        let tested = Tested {
            name: channel.name,
            error,
        };
        let form = ChannelForm {
            kind: ChannelKind::Webhook.as_str().to_owned(),
            ..ChannelForm::default()
        };
        page(&ctx, &enterprise, &form, None, Some(tested), status).await
    }
    .await;
    ctx.respond(result)
}

/// A channel kind in words: `企业微信` / `WeCom`.
fn kind_text(ctx: &Ctx, kind: &str) -> String {
    ctx.lang.text(&format!("channel_{kind}")).to_owned()
}

/// `text` with all but its first [`SHOWN_CHARS`] characters hidden.
fn mask(text: &str) -> String {
    let shown: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{shown}****")
}

/// A channel's URL as the list shows it: the robots' access tokens are in the query
/// (WeCom's `key`, DingTalk's `access_token`) or the path (Feishu's hook id), so every
/// query value and every long path segment is masked, and user info is left out.
fn masked_url(url: &str) -> String {
    let Ok(parsed) = Url::parse(url) else {
        return mask(url);
    };
    let mut out = format!(
        "{}://{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default()
    );
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    for segment in parsed.path().split('/').skip(1) {
        out.push('/');
        if segment.chars().count() >= TOKEN_SEGMENT {
            out.push_str(&mask(segment));
        } else {
            out.push_str(segment);
        }
    }
    let query: Vec<String> = parsed
        .query_pairs()
        .map(|(key, value)| format!("{key}={}", mask(&value)))
        .collect();
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

/// One channel's row.
fn channel_row(ctx: &Ctx, c: &ChannelRow, now: i64) -> Value {
    context! {
        id => c.id,
        name => c.name,
        kind => kind_text(ctx, &c.kind),
        url => masked_url(&c.url),
        signed => c.secret.is_some(),
        created => ctx.stamp(now, c.created_at),
    }
}

/// The channels page of `enterprise` with `form` (and why it was refused), and the outcome
/// of a test message.
async fn page(
    ctx: &Ctx,
    enterprise: &Enterprise,
    form: &ChannelForm,
    error: Option<String>,
    tested: Option<Tested>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let code = &enterprise.credit_code;
    let now = now_ms();
    let rows: Vec<Value> = ctx
        .state
        .store
        .channels(code)
        .await?
        .iter()
        .map(|c| channel_row(ctx, c, now))
        .collect();
    let kinds: Vec<Value> = KINDS
        .iter()
        .map(|k| {
            context! {
                value => k.as_str(),
                text => kind_text(ctx, k.as_str()),
                selected => form.kind == k.as_str(),
            }
        })
        .collect();
    let page = context! {
        e => context! { code => code, name => enterprise.name },
        channels => rows,
        kinds => kinds,
        form => context! {
            name => form.name,
            url => form.url,
            secret => form.secret,
            error => error,
        },
        tested => tested.map(|t| context! { name => t.name, error => t.error }),
    };
    Ok(ctx.render(status, "alarm_channels.html", page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_listed_with_their_tokens_masked() {
        assert_eq!(
            masked_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a****"
        );
        assert_eq!(
            masked_url("https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789"),
            "https://oapi.dingtalk.com/robot/send?access_token=abcd****"
        );
        assert_eq!(
            masked_url(
                "https://open.feishu.cn/open-apis/bot/v2/hook/0f9e8d7c-6b5a-4321-9876-abcdef012345"
            ),
            "https://open.feishu.cn/open-apis/bot/v2/hook/0f9e****"
        );
        assert_eq!(
            masked_url("http://user:pw@10.0.0.5:8080/hook"),
            "http://10.0.0.5:8080/hook"
        );
        assert_eq!(masked_url("not a url with a token"), "not ****");
    }
}
