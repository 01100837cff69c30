//! The request context of a page (session, language, where it was asked), rendering with
//! the templates, error pages, cookies and the static files.

pub use crate::http::auth::{SESSION_COOKIE, cookie, session};

use super::format::{self, Stamp};
use super::i18n::Lang;
use crate::accounts::{AccountError, Role, SessionUser};
use crate::http::AppState;
use crate::scope;
use crate::store::{Enterprise, Gateway, StoreError};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Environment, Value, context};
use std::sync::{Arc, OnceLock};

/// The language cookie.
pub const LANG_COOKIE: &str = "fl_lang";
/// The login form's CSRF cookie (double submit: the form carries the same value).
pub const LOGIN_CSRF_COOKIE: &str = "fl_login_csrf";

/// Scripts, styles and data only from this origin; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Why a page could not be shown; each variant is one status and error page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No session: the user is sent to the login form.
    #[error("not logged in")]
    Login,
    /// The session's role may not see this (403).
    #[error("forbidden")]
    Forbidden,
    /// No such page or object, or one the session may not know of (404).
    #[error("not found")]
    NotFound,
    /// A query parameter is wrong (400); the text says which.
    #[error("{0}")]
    BadRequest(String),
    /// The data store failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The accounts database failed (500).
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// A template failed to render (500: a bug).
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

/// What every page handler gets: the state, the language, the session if any and the
/// path (with query) asked for.
pub struct Ctx {
    /// The platform's shared state.
    pub state: Arc<AppState>,
    /// The page's language.
    pub lang: Lang,
    /// The session token and its user, if logged in.
    pub session: Option<(String, SessionUser)>,
    /// The path and query of the request (for the login's way back).
    pub path: String,
    /// Cookies to set with the response.
    pub set_cookies: Vec<String>,
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let lang = cookie(&parts.headers, LANG_COOKIE)
            .and_then(Lang::from_tag)
            .unwrap_or(Lang::ZhCn);
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let mut ctx = Ctx {
            state: state.clone(),
            lang,
            session: None,
            path,
            set_cookies: Vec::new(),
        };
        match session(&parts.headers, state).await {
            Ok(session) => ctx.session = session,
            Err(e) => return Err(ctx.error(e.into())),
        }
        Ok(ctx)
    }
}

impl Ctx {
    /// The logged-in user, or [`UiError::Login`].
    pub fn user(&self) -> Result<&SessionUser, UiError> {
        self.session.as_ref().map(|(_, u)| u).ok_or(UiError::Login)
    }

    /// Passes for a bureau session only.
    pub fn bureau(&self) -> Result<(), UiError> {
        match self.user()?.role {
            Role::Bureau => Ok(()),
            _ => Err(UiError::Forbidden),
        }
    }

    /// Passes for a bureau or a district session.
    pub fn bureau_or_district(&self) -> Result<(), UiError> {
        match self.user()?.role {
            Role::Bureau | Role::District(_) => Ok(()),
            _ => Err(UiError::Forbidden),
        }
    }

    /// The [`Stamp`] of `ms` (since the epoch) seen at `now`, in this page's language and
    /// the program's time zone.
    pub fn stamp(&self, now: i64, ms: i64) -> Stamp {
        format::stamp(self.lang, self.state.utc_offset_minutes, now, ms)
    }

    /// The enterprise `credit_code` if the session may see it (404 otherwise, so a user
    /// learns nothing about enterprises outside its scope).
    pub async fn enterprise(&self, credit_code: &str) -> Result<Enterprise, UiError> {
        let role = &self.user()?.role;
        match self.state.store.enterprise(credit_code).await? {
            Some(e) if scope::sees_enterprise(role, &e) => Ok(e),
            _ => Err(UiError::NotFound),
        }
    }

    /// The gateway `id` and its enterprise if the session may see that enterprise (404
    /// otherwise, as the API answers).
    pub async fn gateway(&self, id: &str) -> Result<(Gateway, Enterprise), UiError> {
        // No gaps: the pages that name one gateway show its config, not its batches.
        let Some((gateway, _)) = self.state.store.gateway(id, 0).await? else {
            return Err(UiError::NotFound);
        };
        let enterprise = self.enterprise(&gateway.credit_code).await?;
        Ok((gateway, enterprise))
    }

    /// Passes if `csrf` is the session's CSRF token, as every form that changes state
    /// must carry.
    pub fn csrf(&self, csrf: &str) -> Result<(), UiError> {
        if crate::secret::constant_time_eq(self.user()?.csrf.as_bytes(), csrf.as_bytes()) {
            Ok(())
        } else {
            Err(UiError::Forbidden)
        }
    }

    /// True if the session may read `enterprise`'s sample values.
    pub fn sees_values(&self, enterprise: &Enterprise) -> bool {
        self.user()
            .is_ok_and(|u| scope::sees_values(&u.role, enterprise))
    }

    /// Renders `template` with `page` merged over the common context (language, user,
    /// CSRF token, language switch).
    pub fn render(&self, status: StatusCode, template: &str, page: Value) -> Response {
        match self.render_html(template, page) {
            Ok(html) => self.html(status, html),
            Err(e) => self.error(e),
        }
    }

    fn render_html(&self, template: &str, page: Value) -> Result<String, UiError> {
        let user = self.session.as_ref().map(|(_, u)| {
            let credit_code = match &u.role {
                Role::Enterprise(code) => Some(code.as_str()),
                _ => None,
            };
            context! {
                username => u.username.clone(),
                role => u.role.kind(),
                scope => u.role.scope(),
                bureau => u.role == Role::Bureau,
                credit_code => credit_code,
                csrf => u.csrf.clone(),
            }
        });
        let other = match self.lang {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        };
        let common = context! {
            lang => self.lang.tag(),
            user => user,
            switch_lang => other.tag(),
            switch_label => match other { Lang::ZhCn => "中文", Lang::En => "English" },
            path => self.path.clone(),
            utc_offset => self.state.utc_offset_minutes,
        };
        let env = templates();
        let html = env
            .get_template(template)?
            .render(context! { ..page, ..common })?;
        Ok(html)
    }

    /// An HTML response with the page headers and any cookies to set.
    pub fn html(&self, status: StatusCode, html: String) -> Response {
        let mut response = (status, axum::response::Html(html)).into_response();
        page_headers(response.headers_mut());
        self.add_cookies(response)
    }

    /// Adds the pending cookies to `response`.
    pub fn add_cookies(&self, mut response: Response) -> Response {
        for c in &self.set_cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }

    /// The answer for a failed page: the login for [`UiError::Login`], else an error page.
    pub fn error(&self, e: UiError) -> Response {
        let (status, key) = match &e {
            UiError::Login => {
                let to = format!("/login?next={}", percent_encode(&self.path));
                return self.add_cookies(Redirect::to(&to).into_response());
            }
            UiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            UiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            UiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "error"),
            UiError::Store(_) | UiError::Accounts(_) | UiError::Template(_) => {
                tracing::error!(error = %e, path = %self.path, "page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error")
            }
        };
        let detail = match &e {
            UiError::BadRequest(why) => Some(why.clone()),
            _ => None,
        };
        match self.render_html("error.html", context! { message => key, detail => detail }) {
            Ok(html) => self.html(status, html),
            Err(e) => {
                tracing::error!(error = %e, "the error page failed");
                (status, status.to_string()).into_response()
            }
        }
    }

    /// `result` as the response: the page, or its error's page.
    pub fn respond(&self, result: Result<Response, UiError>) -> Response {
        result.unwrap_or_else(|e| self.error(e))
    }
}

/// Headers every page gets.
fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A `Set-Cookie` value: HttpOnly, Secure, with `same_site`; `max_age` seconds (0 deletes).
pub fn set_cookie(name: &str, value: &str, path: &str, same_site: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite={same_site}"
    )
}

/// `next` if it is a path on this site, else `/` (no open redirect).
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The templates, parsed once; `t("key")` translates into the page's `lang`.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // Templates are part of the build; a unit test parses them all.
                tracing::error!(template = name, error = %e, "template does not parse");
            }
        }
        env.add_function("t", |state: &minijinja::State, key: &str| -> String {
            let lang = state
                .lookup("lang")
                .and_then(|v| v.as_str().and_then(Lang::from_tag))
                .unwrap_or(Lang::ZhCn);
            lang.text(key).to_owned()
        });
        env.add_filter("num", format::thousands);
        env
    })
}

/// The templates, built into the binary.
pub const TEMPLATES: [(&str, &str); 17] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    ("group.html", include_str!("../../templates/group.html")),
    (
        "enterprise.html",
        include_str!("../../templates/enterprise.html"),
    ),
    ("chart.html", include_str!("../../templates/chart.html")),
    ("fleet.html", include_str!("../../templates/fleet.html")),
    (
        "evidence.html",
        include_str!("../../templates/evidence.html"),
    ),
    (
        "integrators.html",
        include_str!("../../templates/integrators.html"),
    ),
    ("config.html", include_str!("../../templates/config.html")),
    (
        "templates.html",
        include_str!("../../templates/templates.html"),
    ),
    ("alarms.html", include_str!("../../templates/alarms.html")),
    (
        "alarm_rules.html",
        include_str!("../../templates/alarm_rules.html"),
    ),
    (
        "alarm_channels.html",
        include_str!("../../templates/alarm_channels.html"),
    ),
    ("cockpit.html", include_str!("../../templates/cockpit.html")),
];

/// The site's icon (the pages link it; `/favicon.ico` answers with it too).
const FAVICON_SVG: &[u8] = include_bytes!("../../static/favicon.svg");
/// Its content type.
const SVG: &str = "image/svg+xml";

/// The static files: (name, content type, bytes).
const STATIC_FILES: [(&str, &str, &[u8]); 7] = [
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/vendor/uPlot.min.css"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "cockpit.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/cockpit.css"),
    ),
    (
        "cockpit.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/cockpit.js"),
    ),
    ("favicon.svg", SVG, FAVICON_SVG),
];

/// `GET /static/{file}`: a file built into the binary.
pub async fn static_file(Path(file): Path<String>) -> Response {
    match STATIC_FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => built_in(content_type, bytes),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// `GET /favicon.ico`: the icon, for a browser that asks before it reads a page's link.
pub async fn favicon() -> Response {
    built_in(SVG, FAVICON_SVG)
}

/// A file built into the binary, cached for an hour.
fn built_in(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_use_only_known_messages() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for quote in ['"', '\''] {
                let opening = format!("t({quote}");
                let mut rest = source;
                while let Some(at) = rest.find(&opening) {
                    rest = &rest[at + 3..];
                    let key = &rest[..rest.find(quote).expect("a closing quote")];
                    // Every Chinese text differs from its (ASCII) key.
                    assert_ne!(Lang::ZhCn.text(key), key, "{name}: no message {key:?}");
                }
            }
        }
    }

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(local_path(Some("/bureau?x=1")), "/bureau?x=1");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; fl_lang=en"));
        headers.append(header::COOKIE, HeaderValue::from_static("fl_session=xyz"));
        assert_eq!(cookie(&headers, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(percent_encode("/a b?c=洪"), "%2Fa%20b%3Fc%3D%E6%B4%AA");
    }
}
