//! A typed client of the platform's HTTP API (DESIGN.md, "Platform API"): the bureau's
//! calls and enrollment, taking and returning the platform's own request and answer types
//! (and the contract's, [`fieldlink_wire::enroll`], for enrollment), so that the tests, the
//! demo and the bench cannot drift from what the platform reads and writes.
//!
//! Each typed call expects the call's success status (201 for what creates, 200 for reads)
//! and turns anything else into [`ClientError::Status`] with the platform's JSON answer.
//! Tests of the error paths, which assert exact statuses and error bodies, use the raw
//! calls ([`PlatformClient::request`], [`PlatformClient::get_json`],
//! [`PlatformClient::post_json`]).

use fieldlink_platform::api::{
    AssignInput, CreatedToken, CreatedUser, GatewayDetail, Imported, IngestStatsBody,
    IntegratorInput, IntegratorView, RollbackInput, SavedConfig, SharingInput, TemplateView,
    TokenRequest, UserInput,
};
use fieldlink_platform::fleet::FleetPage;
use fieldlink_platform::gateway_config::ConfigView;
use fieldlink_platform::http::views::EnterpriseView;
use fieldlink_platform::ranking::IntegratorStats;
use fieldlink_platform::registry::{EnterpriseInput, IssuedToken, TokenInput};
use fieldlink_platform::stats::Onboarding;
use fieldlink_platform::store::ConfigVersion;
use fieldlink_wire::{EnrollRequest, Enrollment, Sample};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::time::Duration;

/// How long one call may take unless [`PlatformClient::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The call did not complete (refused, reset, timed out): the platform is not up, or
    /// not yet; a caller waiting for it retries.
    #[error("{method} {url}: {source}")]
    Http {
        /// The method.
        method: Method,
        /// The URL called.
        url: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// The platform answered with another status than the call's success: the answer says
    /// why (usually `{"error", "detail"}`).
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// The method.
        method: Method,
        /// The URL called.
        url: String,
        /// The status.
        status: StatusCode,
        /// The answer as JSON (`null` if it was not JSON).
        body: Json,
    },
    /// The answer has the success status but is not the call's type: the platform and
    /// this client disagree on the contract.
    #[error("{method} {url}: the answer is not the expected JSON: {source}")]
    Answer {
        /// The method.
        method: Method,
        /// The URL called.
        url: String,
        /// Why it does not read.
        #[source]
        source: serde_json::Error,
    },
}

/// The platform's HTTP API at one base URL, as the bureau (with its bearer token) or as an
/// integrator (enrollment alone needs no token).
#[derive(Debug, Clone)]
pub struct PlatformClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl PlatformClient {
    /// A client of the platform at `base` (`http://HOST:PORT`), without a bearer token.
    pub fn new(base: impl Into<String>) -> Self {
        // reqwest is built with rustls but no crypto provider (the workspace's choice):
        // the calls are plain HTTP on loopback, but building a client needs one installed.
        // Installing fails only if one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        PlatformClient {
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
            http: Self::http_client(DEFAULT_TIMEOUT),
        }
    }

    /// The same client calling with the bureau's (or a user's) bearer `token`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same client giving each call up to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = Self::http_client(timeout);
        self
    }

    fn http_client(timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            // Loopback only: a proxy from the environment must not come between.
            .no_proxy()
            .timeout(timeout)
            .build()
            .expect("an HTTP client with rustls' ring provider installed")
    }

    /// The base URL, `http://HOST:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client under the calls, for requests outside the API (the web UI).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /api/v1/enterprises`: registers an enterprise (201).
    pub async fn register_enterprise(
        &self,
        input: &EnterpriseInput,
    ) -> Result<EnterpriseView, ClientError> {
        self.post("/api/v1/enterprises", input).await
    }

    /// `POST /api/v1/enterprises/import`: registers the enterprises of a CSV file, all or
    /// nothing (201).
    pub async fn import_enterprises(&self, csv: &str) -> Result<Imported, ClientError> {
        let path = "/api/v1/enterprises/import";
        let builder = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .body(csv.to_owned());
        finish(builder, Method::POST, self.url(path), StatusCode::CREATED).await
    }

    /// `GET /api/v1/enterprises`: every enterprise with its gateways.
    pub async fn enterprises(&self) -> Result<Vec<EnterpriseView>, ClientError> {
        self.get("/api/v1/enterprises").await
    }

    /// `GET /api/v1/enterprises/{credit_code}`: one enterprise with its gateways.
    pub async fn enterprise(&self, credit_code: &str) -> Result<EnterpriseView, ClientError> {
        self.get(&format!("/api/v1/enterprises/{credit_code}"))
            .await
    }

    /// `POST /api/v1/enterprises/{credit_code}/tokens`: an enrollment token (201).
    pub async fn issue_token(
        &self,
        credit_code: &str,
        input: &TokenInput,
    ) -> Result<IssuedToken, ClientError> {
        self.post(&format!("/api/v1/enterprises/{credit_code}/tokens"), input)
            .await
    }

    /// `POST /api/v1/enroll`: enrolls a gateway with the token in `request` (201). Sent
    /// without the bearer token: enrollment is the integrator's call.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<Enrollment, ClientError> {
        let url = self.url("/api/v1/enroll");
        let builder = self.http.post(&url).json(request);
        finish(builder, Method::POST, url, StatusCode::CREATED).await
    }

    /// `GET /api/v1/gateways/{gateway_id}/latest`: the latest sample of each point.
    pub async fn latest(&self, gateway_id: &str) -> Result<Vec<Sample>, ClientError> {
        self.get(&format!("/api/v1/gateways/{gateway_id}/latest"))
            .await
    }

    /// `GET /api/v1/stats/onboarding`: the bureau's counts against the targets.
    pub async fn onboarding(&self) -> Result<Onboarding, ClientError> {
        self.get("/api/v1/stats/onboarding").await
    }

    /// `GET /api/v1/stats/ingest`: this instance's ingest counters and the open gaps.
    pub async fn ingest_stats(&self) -> Result<IngestStatsBody, ClientError> {
        self.get("/api/v1/stats/ingest").await
    }

    /// `GET /api/v1/gateways/{gateway_id}`: one gateway, its gaps and crash windows.
    pub async fn gateway(&self, gateway_id: &str) -> Result<GatewayDetail, ClientError> {
        self.get(&format!("/api/v1/gateways/{gateway_id}")).await
    }

    /// `POST /api/v1/users`: a user of any role, for the web UI and API tokens (201).
    pub async fn create_user(&self, input: &UserInput) -> Result<CreatedUser, ClientError> {
        self.post("/api/v1/users", input).await
    }

    /// `POST /api/v1/users/{username}/tokens`: a bearer token acting as that user (201).
    pub async fn create_token(
        &self,
        username: &str,
        input: &TokenRequest,
    ) -> Result<CreatedToken, ClientError> {
        self.post(&format!("/api/v1/users/{username}/tokens"), input)
            .await
    }

    /// As the bureau: a user of the enterprise `credit_code` (made on the first call, with
    /// a password it never uses) and a client acting with a new API token of that user, for
    /// reading the enterprise's own data (the bureau reads sample values only of
    /// enterprises that share them).
    pub async fn enterprise_client(
        &self,
        credit_code: &str,
    ) -> Result<PlatformClient, ClientError> {
        let username = format!("owner-{}", credit_code.to_ascii_lowercase());
        let created = self
            .create_user(&UserInput {
                username: username.clone(),
                password: format!("{username}-not-a-login"),
                role: "enterprise".to_owned(),
                scope: Some(credit_code.to_owned()),
            })
            .await;
        match created {
            Err(ClientError::Status { status, .. }) if status == StatusCode::CONFLICT => {}
            other => {
                other?;
            }
        }
        let token = self
            .create_token(&username, &TokenRequest::default())
            .await?
            .token;
        Ok(self.clone().with_token(token))
    }

    /// `POST /api/v1/integrators`: registers an integrator (201).
    pub async fn register_integrator(
        &self,
        input: &IntegratorInput,
    ) -> Result<IntegratorView, ClientError> {
        self.post("/api/v1/integrators", input).await
    }

    /// `GET /api/v1/integrators`: the integrators with their counts.
    pub async fn integrators(&self) -> Result<Vec<IntegratorView>, ClientError> {
        self.get("/api/v1/integrators").await
    }

    /// `PUT /api/v1/enterprises/{credit_code}/integrator`: assigns the enterprise.
    pub async fn assign(
        &self,
        credit_code: &str,
        integrator: &str,
    ) -> Result<EnterpriseView, ClientError> {
        let input = AssignInput {
            integrator: integrator.to_owned(),
        };
        self.put(
            &format!("/api/v1/enterprises/{credit_code}/integrator"),
            &input,
        )
        .await
    }

    /// `PUT /api/v1/enterprises/{credit_code}/sharing`: the enterprise's own switch.
    pub async fn set_sharing(
        &self,
        credit_code: &str,
        share: bool,
    ) -> Result<EnterpriseView, ClientError> {
        let input = SharingInput {
            share_data_with_bureau: share,
        };
        self.put(
            &format!("/api/v1/enterprises/{credit_code}/sharing"),
            &input,
        )
        .await
    }

    /// `GET /api/v1/gateways?QUERY`: one page of the fleet (`query` without the `?`).
    pub async fn fleet(&self, query: &str) -> Result<FleetPage, ClientError> {
        self.get(&format!("/api/v1/gateways?{query}")).await
    }

    /// `GET /api/v1/stats/integrators`: the integrators' ranking.
    pub async fn integrator_ranking(&self) -> Result<Vec<IntegratorStats>, ClientError> {
        self.get("/api/v1/stats/integrators").await
    }

    /// `PUT /api/v1/gateways/{gateway_id}/config`: saves `toml` as the gateway's next
    /// config version (200).
    pub async fn put_config(
        &self,
        gateway_id: &str,
        toml: &str,
    ) -> Result<SavedConfig, ClientError> {
        let path = format!("/api/v1/gateways/{gateway_id}/config");
        let builder = self
            .request(Method::PUT, &path)
            .header(reqwest::header::CONTENT_TYPE, "application/toml")
            .body(toml.to_owned());
        finish(builder, Method::PUT, self.url(&path), StatusCode::OK).await
    }

    /// `GET /api/v1/gateways/{gateway_id}/config`: the newest version and what the gateway
    /// runs.
    pub async fn config(&self, gateway_id: &str) -> Result<ConfigView, ClientError> {
        self.get(&format!("/api/v1/gateways/{gateway_id}/config"))
            .await
    }

    /// `GET /api/v1/gateways/{gateway_id}/config/versions`: every version, newest first.
    pub async fn config_versions(
        &self,
        gateway_id: &str,
    ) -> Result<Vec<ConfigVersion>, ClientError> {
        self.get(&format!("/api/v1/gateways/{gateway_id}/config/versions"))
            .await
    }

    /// `POST /api/v1/gateways/{gateway_id}/config/rollback`: saves `version`'s text as the
    /// next version (201).
    pub async fn roll_back_config(
        &self,
        gateway_id: &str,
        version: u64,
    ) -> Result<SavedConfig, ClientError> {
        self.post(
            &format!("/api/v1/gateways/{gateway_id}/config/rollback"),
            &RollbackInput { version },
        )
        .await
    }

    /// `GET /api/v1/templates`: the device templates.
    pub async fn templates(&self) -> Result<Vec<TemplateView>, ClientError> {
        self.get("/api/v1/templates").await
    }

    /// A raw request to `path`, with the bearer token if the client has one.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// A raw `GET` of `path` expecting 200 and JSON.
    pub async fn get_json(&self, path: &str) -> Result<Json, ClientError> {
        self.get(path).await
    }

    /// A raw `POST` of `body` to `path`: the status and the answer, whatever they are
    /// (`null` for an answer that is not JSON).
    pub async fn post_json(
        &self,
        path: &str,
        body: &Json,
    ) -> Result<(StatusCode, Json), ClientError> {
        let url = self.url(path);
        let response = self
            .request(Method::POST, path)
            .json(body)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                method: Method::POST,
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Json::Null)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` as the bureau, expecting 200 and a `T`.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let builder = self.request(Method::GET, path);
        finish(builder, Method::GET, self.url(path), StatusCode::OK).await
    }

    /// `PUT path` of `body`, expecting 200 and a `T`.
    async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let builder = self.request(Method::PUT, path).json(body);
        finish(builder, Method::PUT, self.url(path), StatusCode::OK).await
    }

    /// `POST path` of `body` as the bureau, expecting 201 and a `T`.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let builder = self.request(Method::POST, path).json(body);
        finish(builder, Method::POST, self.url(path), StatusCode::CREATED).await
    }
}

/// Sends `builder` and reads the answer as `T` if its status is `expect`.
async fn finish<T: DeserializeOwned>(
    builder: RequestBuilder,
    method: Method,
    url: String,
    expect: StatusCode,
) -> Result<T, ClientError> {
    let response = builder.send().await;
    let http = |source| ClientError::Http {
        method: method.clone(),
        url: url.clone(),
        source,
    };
    let response = response.map_err(http)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(http)?;
    if status != expect {
        return Err(ClientError::Status {
            method,
            url,
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Json::Null),
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| ClientError::Answer {
        method,
        url,
        source,
    })
}
