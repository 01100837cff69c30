//! Notification channels: where an alarm's raise or clear is sent, and how.
//!
//! Kinds ([`ChannelKind`]), each a `POST` of JSON to the channel's URL:
//! - `webhook`: DESIGN.md's contract, `{"enterprise", "rule", "severity", "state",
//!   "gateway", "device", "point", "value", "ts", "message"}` (plus `"test": true` on a test
//!   message only, an additive field);
//! - `wecom`: a WeCom (企业微信) group robot, a `markdown` message;
//! - `dingtalk`: a DingTalk (钉钉) custom robot, a `markdown` message, signed in the URL's
//!   query when the channel has a secret;
//! - `feishu`: a Feishu (飞书) custom bot, a `text` message, signed in the body when the
//!   channel has a secret.
//!
//! Every robot message carries the word 告警, so a robot secured by a custom keyword
//! (DingTalk's and Feishu's 自定义关键词) accepts them when that keyword is 告警.
//!
//! A send succeeds when the receiver answers 2xx and, for a robot, its vendor's code is 0
//! ([`Sender::send`]). A failure is [`SendError::Retryable`] (no answer in time, no
//! connection, 5xx, 429, a vendor's rate limit) or [`SendError::Permanent`] (any other
//! 4xx, a bad signature or keyword, a refused destination): the caller retries the first
//! after [`backoff`] and gives up on the second.
//!
//! Invariants: a channel's URL is `http(s)` and, unless the platform runs with
//! `--allow-private-webhooks`, never reaches a loopback, private, link-local, unique-local,
//! unspecified or CGNAT address, neither when it is saved ([`check_destination`]) nor when
//! it is used: the sender resolves names itself and connects only to public addresses, so a
//! name that later resolves elsewhere (DNS rebinding) cannot reach inside, and it follows no
//! redirects. URLs hold the robots' access tokens, so no error of this module contains one.

use crate::clock::{DAY_MS, date_string};
pub use crate::store::alarms::{Severity, Transition};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fieldlink_wire::Backoff;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long one send may take, from connecting to the end of the answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take, within [`SEND_TIMEOUT`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The first delay before retrying a failed send.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// The longest delay between retries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How much of an answer is read: enough for any vendor's JSON, bounded so that a receiver
/// streaming without end cannot fill the platform's memory.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How much of an answer a failure's reason quotes.
const REASON_CHARS: usize = 200;
/// China Standard Time, the zone of every time in a message (no daylight saving time).
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// Where notifications go: a plain webhook or one of the three group-robot vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A receiver of DESIGN.md's JSON.
    Webhook,
    /// A WeCom (企业微信) group robot.
    Wecom,
    /// A DingTalk (钉钉) custom robot.
    Dingtalk,
    /// A Feishu (飞书) custom bot.
    Feishu,
}

impl ChannelKind {
    /// The kind named `s` as in the API (`"webhook"`, `"wecom"`, `"dingtalk"`, `"feishu"`).
    pub fn parse(s: &str) -> Result<Self, ChannelError> {
        match s {
            "webhook" => Ok(ChannelKind::Webhook),
            "wecom" => Ok(ChannelKind::Wecom),
            "dingtalk" => Ok(ChannelKind::Dingtalk),
            "feishu" => Ok(ChannelKind::Feishu),
            other => Err(ChannelError::UnknownKind(other.to_owned())),
        }
    }

    /// The kind's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Wecom => "wecom",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Feishu => "feishu",
        }
    }

    /// Whether the vendor signs requests with a secret (DingTalk and Feishu).
    fn signs(self) -> bool {
        matches!(self, ChannelKind::Dingtalk | ChannelKind::Feishu)
    }
}

/// The severity's name in messages: 提示, 警告, 严重.
pub fn severity_zh(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "提示",
        Severity::Warning => "警告",
        Severity::Critical => "严重",
    }
}

/// What a rule saw, worded in a raise's message; the alarm engine maps its rule kinds
/// onto these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// The value is above this threshold (`high`).
    Above(f64),
    /// The value is below this threshold (`low`).
    Below(f64),
    /// The value equals this (`equals`).
    Equals(f64),
    /// No sample for this many seconds (`stale`).
    Stale(u64),
    /// The gateway has been offline for this many seconds (`gateway_offline`).
    GatewayOffline(u64),
    /// The gateway reports the device down (`device_down`).
    DeviceDown,
}

/// One raise or clear, as every channel receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The enterprise's unified social credit code.
    pub enterprise: String,
    /// The enterprise's name.
    pub enterprise_name: String,
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// Raised or cleared.
    pub state: Transition,
    /// The gateway the sample came from.
    pub gateway: String,
    /// The device, for rules on a device or a point.
    pub device: Option<String>,
    /// The point, for rules on a point.
    pub point: Option<String>,
    /// The value that raised or cleared the alarm, if the rule has one.
    pub value: Option<Value>,
    /// The sample's time, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The message for people, in Chinese ([`message_zh`]).
    pub message: String,
    /// A test from the UI's "send test message" button, not an alarm.
    #[serde(default)]
    pub test: bool,
    /// The queue's id of this delivery, sent as the `X-Fieldlink-Delivery` header so that a
    /// receiver can drop the repeat a crash between sending and marking may cause.
    #[serde(skip)]
    pub delivery: Option<i64>,
}

impl Notification {
    /// A test message for `enterprise`, as sent by [`Sender::send_test_message`].
    pub fn test(enterprise: &str, enterprise_name: &str, now_ms: i64) -> Self {
        Notification {
            enterprise: enterprise.to_owned(),
            enterprise_name: enterprise_name.to_owned(),
            rule: "测试消息".to_owned(),
            severity: Severity::Info,
            state: Transition::Raised,
            gateway: String::new(),
            device: None,
            point: None,
            value: None,
            ts: now_ms,
            message: format!(
                "这是一条测试消息：收到即表示 fieldlink 告警通道配置正确（{}，{}）",
                enterprise_name,
                cst(now_ms)
            ),
            test: true,
            delivery: None,
        }
    }
}

/// The Chinese message of `n` (its other fields; its own `message` is not read), e.g.
/// `【严重】炉温过高：press-1/temperature = 912.5，超过阈值 900（网关 gw-01，2026-12-07 15:04:05）`
/// for a raise and `【严重】炉温过高 已恢复：press-1/temperature = 880（网关 gw-01，…）` for
/// its clear; the time is the sample's, in China Standard Time.
pub fn message_zh(n: &Notification, condition: &Condition) -> String {
    let subject = match (n.device.as_deref(), n.point.as_deref()) {
        (Some(device), Some(point)) => format!("{device}/{point}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => String::new(),
    };
    let mut parts = Vec::new();
    match (&n.value, subject.is_empty()) {
        (Some(value), false) => parts.push(format!("{subject} = {}", value_text(value))),
        (Some(value), true) => parts.push(format!("值 = {}", value_text(value))),
        (None, false) => parts.push(subject),
        (None, true) => {}
    }
    if n.state == Transition::Raised {
        parts.push(match *condition {
            Condition::Above(t) => format!("超过阈值 {t}"),
            Condition::Below(t) => format!("低于阈值 {t}"),
            Condition::Equals(t) => format!("等于 {t}"),
            Condition::Stale(s) => format!("{s} 秒无新数据"),
            Condition::GatewayOffline(s) => format!("网关离线已超过 {s} 秒"),
            Condition::DeviceDown => "设备通讯中断".to_owned(),
        });
    }
    let cleared = match n.state {
        Transition::Raised => "",
        Transition::Cleared => " 已恢复",
    };
    let body = if parts.is_empty() {
        String::new()
    } else {
        format!("：{}", parts.join("，"))
    };
    format!(
        "【{}】{}{cleared}{body}（网关 {}，{}）",
        severity_zh(n.severity),
        n.rule,
        n.gateway,
        cst(n.ts)
    )
}

/// A value as people read it: numbers without a needless `.0`, strings without quotes.
fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string())
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ms` as `YYYY-MM-DD HH:MM:SS` in China Standard Time.
fn cst(ms: i64) -> String {
    let local = ms + CST_OFFSET_MS;
    let seconds = local.rem_euclid(DAY_MS) / 1000;
    format!(
        "{} {:02}:{:02}:{:02}",
        date_string(local.div_euclid(DAY_MS)),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A configured destination: its kind, URL (holding the robot's access token, so never
/// logged: its `Debug` shows the host alone) and, for DingTalk and Feishu, the signing
/// secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Channel {
    /// Which format and which answer.
    pub kind: ChannelKind,
    /// Where to `POST`.
    pub url: String,
    /// The robot's signing secret (DingTalk's 加签, Feishu's 签名校验).
    pub secret: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = Url::parse(&self.url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned));
        f.debug_struct("Channel")
            .field("kind", &self.kind)
            .field("host", &host)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Channel {
    /// Checks a channel before it is saved: a secret only where the vendor signs, and a
    /// destination [`check_destination`] accepts.
    pub async fn check(&self, allow_private: bool) -> Result<(), ChannelError> {
        match self.secret.as_deref() {
            Some(_) if !self.kind.signs() => return Err(ChannelError::SecretNotUsed(self.kind)),
            Some(secret) if secret.trim().is_empty() => return Err(ChannelError::EmptySecret),
            _ => {}
        }
        check_destination(&self.url, allow_private).await.map(drop)
    }
}

/// Why a channel is refused; the API answers 400 with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The channel's name is empty or too long: give it one of 1 to 100 characters.
    #[error("`name` must be 1 to 100 characters")]
    Name,
    /// Not a channel kind: use one of the four.
    #[error("unknown channel kind {0:?}: expected webhook, wecom, dingtalk or feishu")]
    UnknownKind(String),
    /// The URL does not parse (the reason, not the URL, which may hold a token).
    #[error("the channel URL is not a valid URL: {0}")]
    Url(String),
    /// Only `http` and `https` are sent to.
    #[error("the channel URL must be http:// or https://, not {0}://")]
    Scheme(String),
    /// The URL has no host to send to.
    #[error("the channel URL has no host")]
    NoHost,
    /// The destination is inside a private network: refused unless the platform runs with
    /// `--allow-private-webhooks` (for on-premises receivers).
    #[error(
        "{host} is a loopback, private or link-local address ({addr}); the platform must run \
         with --allow-private-webhooks to send there"
    )]
    Private {
        /// The URL's host.
        host: String,
        /// The address it is or resolves to.
        addr: IpAddr,
    },
    /// The host does not resolve: check its spelling, or the platform's DNS.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The URL's host.
        host: String,
        /// Why.
        reason: String,
    },
    /// A secret given for a kind that does not sign: leave it out.
    #[error("a {} channel takes no secret (only dingtalk and feishu sign their requests)", .0.as_str())]
    SecretNotUsed(ChannelKind),
    /// A blank secret: give the robot's secret or none.
    #[error("the channel secret is empty")]
    EmptySecret,
    /// The HTTP client could not be built (TLS settings); the sender cannot start.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Parses `url` and checks what needs no DNS: `http(s)`, a host, and, unless
/// `allow_private`, no private address literal and no `localhost` name.
pub fn validate_url(url: &str, allow_private: bool) -> Result<Url, ChannelError> {
    let parsed = Url::parse(url.trim()).map_err(|e| ChannelError::Url(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ChannelError::Scheme(parsed.scheme().to_owned()));
    }
    let host = match parsed.host_str() {
        Some(host) if !host.is_empty() => host.trim_start_matches('[').trim_end_matches(']'),
        _ => return Err(ChannelError::NoHost),
    };
    if allow_private {
        return Ok(parsed);
    }
    let literal = match host.parse::<IpAddr>() {
        Ok(addr) => Some(addr),
        // RFC 6761: localhost names are loopback whatever DNS says.
        Err(_) if is_localhost(host) => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Err(_) => None,
    };
    match literal {
        Some(addr) if is_private(addr) => Err(ChannelError::Private {
            host: host.to_owned(),
            addr,
        }),
        _ => Ok(parsed),
    }
}

/// [`validate_url`], then, unless `allow_private`, resolves the host and refuses it if
/// any of its addresses is private (checked when a channel is saved).
pub async fn check_destination(url: &str, allow_private: bool) -> Result<Url, ChannelError> {
    let parsed = validate_url(url, allow_private)?;
    if allow_private {
        return Ok(parsed);
    }
    let host = match parsed.host_str() {
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        None => return Err(ChannelError::NoHost),
    };
    let port = parsed.port_or_known_default().unwrap_or(443);
    let resolve_error = |reason: String| ChannelError::Resolve {
        host: host.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| resolve_error(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(resolve_error("no address".to_owned()));
    }
    match addrs.iter().map(SocketAddr::ip).find(|ip| is_private(*ip)) {
        Some(addr) => Err(ChannelError::Private { host, addr }),
        None => Ok(parsed),
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether `ip` is inside a private network or this machine: loopback, RFC 1918, link-local,
/// unspecified, CGNAT (100.64.0.0/10), broadcast or multicast, unique-local IPv6, and IPv4
/// addresses written as IPv6 (mapped, compatible, NAT64) that are any of these.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // 0.0.0.0/8, "this network": Linux connects 0.x.y.z to this machine.
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT: another customer's side of the ISP's NAT.
        || (a == 100 && (b & 0xc0) == 64)
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return true;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let segments = ip.segments();
    // ::a.b.c.d (IPv4-compatible, deprecated) and 64:ff9b::a.b.c.d (NAT64) reach the
    // IPv4 address inside.
    let embeds_v4 = segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if embeds_v4 {
        let [.., hi, lo] = segments;
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return is_private_v4(v4);
    }
    // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local (deprecated).
    (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again after [`backoff`]: no answer in time, no connection, a 5xx, 408 or 429, or
    /// the vendor's rate limit or "busy" code.
    #[error("{0} (will retry)")]
    Retryable(String),
    /// Trying again will fail the same way until the channel is fixed: another 4xx or
    /// 3xx, the vendor's refusal (bad signature, keyword, IP allowlist, token), or a
    /// refused destination.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    /// Whether the send should be tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }
}

/// The delay before retry number `attempt` (0 for the first retry): doubling from
/// [`BACKOFF_INITIAL`] up to [`BACKOFF_MAX`], each drawn from the upper half of its step
/// so that the retries of many alarms do not fall in step.
pub fn backoff(attempt: u32) -> Duration {
    let mut steps = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
    // From the ninth step on the cap holds (2^9 s > 300 s); no need to walk further.
    for _ in 0..attempt.min(16) {
        steps.next_delay();
    }
    steps.next_delay()
}

/// Sends notifications: one HTTP client (rustls with ring, connection reuse) for every
/// channel, guarded against private destinations unless allowed.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

impl Sender {
    /// A sender with the default [`SEND_TIMEOUT`]; `allow_private` is the platform's
    /// `--allow-private-webhooks`.
    pub fn new(allow_private: bool) -> Result<Self, ChannelError> {
        Self::with_timeout(allow_private, SEND_TIMEOUT)
    }

    /// A sender giving each send at most `timeout` (connecting at most [`CONNECT_TIMEOUT`]).
    pub fn with_timeout(allow_private: bool, timeout: Duration) -> Result<Self, ChannelError> {
        // The system's roots, not required: without any, https sends fail (and are retried)
        // but plain-http on-premises receivers still work and the platform still starts.
        let tls = crate::tls::verifying_config(None, false)
            .map_err(|e| ChannelError::Client(e.to_string()))?;
        let http = reqwest::Client::builder()
            // The workspace's reqwest has no crypto provider of its own: hand it the
            // platform's ring-backed configuration.
            .tls_backend_preconfigured(Arc::unwrap_or_clone(tls))
            // A proxy would resolve the destination where the guard cannot see it.
            .no_proxy()
            // A redirect could lead to a private address literal past the checks.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(concat!("fieldlink-platform/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::Client(describe(&e.without_url())))?;
        Ok(Sender {
            http,
            allow_private,
            timeout,
        })
    }

    /// Sends `n` to `channel` in the channel's format; `now_ms` dates the vendor's
    /// signature. Ok when the receiver took it (2xx and, for a robot, code 0).
    pub async fn send(
        &self,
        channel: &Channel,
        n: &Notification,
        now_ms: i64,
    ) -> Result<(), SendError> {
        // Address literals are checked here; names by the resolver, at connection time.
        let mut url = validate_url(&channel.url, self.allow_private)
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        let secret = channel.secret.as_deref();
        let body = match channel.kind {
            ChannelKind::Webhook => webhook_body(n),
            ChannelKind::Wecom => wecom_body(n),
            ChannelKind::Dingtalk => {
                if let Some(secret) = secret {
                    let (timestamp, sign) = dingtalk_sign(secret, now_ms);
                    url.query_pairs_mut()
                        .append_pair("timestamp", &timestamp)
                        .append_pair("sign", &sign);
                }
                dingtalk_body(n)
            }
            ChannelKind::Feishu => feishu_body(n, secret.map(|s| feishu_sign(s, now_ms))),
        };
        let mut request = self.http.post(url).json(&body);
        if let Some(delivery) = n.delivery {
            request = request.header("X-Fieldlink-Delivery", delivery.to_string());
        }
        let mut response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let mut answer = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            let room = MAX_ANSWER_BYTES - answer.len();
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if answer.len() == MAX_ANSWER_BYTES {
                break;
            }
        }
        judge(channel.kind, status, &answer)
    }

    /// Sends [`Notification::test`] to `channel`: the UI's "send test message" button.
    pub async fn send_test_message(
        &self,
        channel: &Channel,
        enterprise: &str,
        enterprise_name: &str,
        now_ms: i64,
    ) -> Result<(), SendError> {
        let n = Notification::test(enterprise, enterprise_name, now_ms);
        self.send(channel, &n, now_ms).await
    }

    fn transport_error(&self, e: reqwest::Error) -> SendError {
        // reqwest's messages name the URL, which holds the robot's token.
        let e = e.without_url();
        if let Some(refused) = find_cause::<ChannelError>(&e) {
            return SendError::Permanent(refused.to_string());
        }
        if e.is_timeout() {
            return SendError::Retryable(format!("no answer within {:?}", self.timeout));
        }
        if e.is_builder() {
            return SendError::Permanent(describe(&e));
        }
        if e.is_connect() {
            return SendError::Retryable(format!("cannot connect: {}", describe(&e)));
        }
        SendError::Retryable(describe(&e))
    }
}

/// Resolves names for the sender and drops private addresses unless allowed, so the
/// connection goes where the check looked (no window for DNS rebinding).
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let first = found.first().map(SocketAddr::ip);
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| allow_private || !is_private(addr.ip()))
                .collect();
            match (usable.is_empty(), first) {
                (false, _) => Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs),
                (true, Some(addr)) => Err(ChannelError::Private { host, addr }.into()),
                (true, None) => Err(ChannelError::Resolve {
                    host,
                    reason: "no address".to_owned(),
                }
                .into()),
            }
        })
    }
}

/// The webhook's JSON, DESIGN.md's shape.
fn webhook_body(n: &Notification) -> Value {
    let mut body = json!({
        "enterprise": n.enterprise,
        "rule": n.rule,
        "severity": n.severity,
        "state": n.state,
        "gateway": n.gateway,
        "device": n.device,
        "point": n.point,
        "value": n.value,
        "ts": n.ts,
        "message": n.message,
    });
    if n.test {
        body["test"] = Value::Bool(true);
    }
    body
}

/// The enterprise line every robot message ends with.
fn enterprise_line(n: &Notification) -> String {
    format!("企业：{}（{}）", n.enterprise_name, n.enterprise)
}

/// WeCom group robot, markdown message (content at most 4096 bytes of UTF-8), per
/// <https://developer.work.weixin.qq.com/document/path/91770> (群机器人配置说明): `POST`
/// `{"msgtype": "markdown", "markdown": {"content"}}` to the robot's
/// `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…` URL.
fn wecom_body(n: &Notification) -> Value {
    json!({
        "msgtype": "markdown",
        "markdown": {
            "content": format!("**fieldlink 告警**\n{}\n> {}", n.message, enterprise_line(n)),
        },
    })
}

/// DingTalk custom robot, markdown message, per
/// <https://open.dingtalk.com/document/robots/custom-robot-access> (自定义机器人接入):
/// `{"msgtype": "markdown", "markdown": {"title", "text"}}`; the title is what the chat
/// list shows; paragraphs need a blank line.
fn dingtalk_body(n: &Notification) -> Value {
    let cleared = match n.state {
        Transition::Raised => "",
        Transition::Cleared => " 已恢复",
    };
    json!({
        "msgtype": "markdown",
        "markdown": {
            "title": format!("fieldlink 告警：【{}】{}{cleared}", severity_zh(n.severity), n.rule),
            "text": format!("#### fieldlink 告警\n\n{}\n\n> {}", n.message, enterprise_line(n)),
        },
    })
}

/// DingTalk's 加签, per <https://open.dingtalk.com/document/robots/customize-robot-security-settings>:
/// `timestamp` in milliseconds (within an hour of DingTalk's clock) and `sign` =
/// Base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret)), both in the
/// URL's query (URL-encoded there by the caller's `append_pair`).
fn dingtalk_sign(secret: &str, now_ms: i64) -> (String, String) {
    let timestamp = now_ms.to_string();
    let sign = hmac_sha256_base64(
        secret.as_bytes(),
        format!("{timestamp}\n{secret}").as_bytes(),
    );
    (timestamp, sign)
}

/// Feishu custom bot, text message, per
/// <https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot> (自定义机器人使用指南):
/// `{"msg_type": "text", "content": {"text"}}`, with `"timestamp"` and `"sign"` beside them
/// when the bot checks signatures; at most 20 KB.
fn feishu_body(n: &Notification, signature: Option<(String, String)>) -> Value {
    let mut body = json!({
        "msg_type": "text",
        "content": {
            "text": format!("fieldlink 告警\n{}\n{}", n.message, enterprise_line(n)),
        },
    });
    if let Some((timestamp, sign)) = signature {
        body["timestamp"] = Value::String(timestamp);
        body["sign"] = Value::String(sign);
    }
    body
}

/// Feishu's 签名校验 (same page): `timestamp` in seconds (within an hour of Feishu's clock)
/// and `sign` = Base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = empty)): the
/// key and message are the other way round from DingTalk's.
fn feishu_sign(secret: &str, now_ms: i64) -> (String, String) {
    let timestamp = now_ms.div_euclid(1000).to_string();
    let sign = hmac_sha256_base64(format!("{timestamp}\n{secret}").as_bytes(), b"");
    (timestamp, sign)
}

fn hmac_sha256_base64(key: &[u8], message: &[u8]) -> String {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Whether the receiver took the message: the HTTP status first, then the vendor's code.
fn judge(kind: ChannelKind, status: StatusCode, answer: &[u8]) -> Result<(), SendError> {
    if !status.is_success() {
        let reason = format!("HTTP {status}: {}", snippet(answer));
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        return Err(if retryable {
            SendError::Retryable(reason)
        } else {
            SendError::Permanent(reason)
        });
    }
    if kind == ChannelKind::Webhook {
        return Ok(());
    }
    let vendor = kind.as_str();
    let unexpected = || SendError::Permanent(format!("not a {vendor} answer: {}", snippet(answer)));
    let parsed: Value = serde_json::from_slice(answer).map_err(|_| unexpected())?;
    // WeCom and DingTalk answer {"errcode", "errmsg"}; Feishu {"code", "msg"}, and its
    // older bots only {"StatusCode", "StatusMessage"}.
    let (code_field, message_field) = match kind {
        ChannelKind::Feishu if parsed.get("code").is_none() => ("StatusCode", "StatusMessage"),
        ChannelKind::Feishu => ("code", "msg"),
        _ => ("errcode", "errmsg"),
    };
    let code = parsed
        .get(code_field)
        .and_then(Value::as_i64)
        .ok_or_else(unexpected)?;
    if code == 0 {
        return Ok(());
    }
    let message = parsed
        .get(message_field)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let reason = format!("{vendor} {code_field} {code}: {}", truncate(message));
    Err(if vendor_retryable(kind, code) {
        SendError::Retryable(reason)
    } else {
        SendError::Permanent(reason)
    })
}

/// The vendors' codes that a later attempt can cure.
fn vendor_retryable(kind: ChannelKind, code: i64) -> bool {
    match kind {
        // -1: system busy; 45009: api freq out of limit (20 messages a minute per robot).
        ChannelKind::Wecom => matches!(code, -1 | 45009),
        // -1: system busy; 130101: send too fast (20 a minute, then 10 minutes' pause).
        ChannelKind::Dingtalk => matches!(code, -1 | 130101),
        // 11232: frequency limited (100 a minute, 5 a second per bot).
        ChannelKind::Feishu => code == 11232,
        ChannelKind::Webhook => false,
    }
}

/// An answer's first [`REASON_CHARS`] characters, for a failure's reason.
fn snippet(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim();
    if text.is_empty() {
        "(empty answer)".to_owned()
    } else {
        truncate(text)
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An error and its causes, `outer: inner: …` (reqwest's own message alone says little).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    truncate(&text)
}

/// The first cause of `e` that is a `T`.
fn find_cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(e);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{Method, Uri};
    use std::future::Future;
    use std::sync::Mutex;

    /// 2026-12-07 15:04:05 in China Standard Time.
    const RAISED_AT: i64 = 1_796_627_045_000;
    /// 2026-12-08 07:09:05 in China Standard Time (23:09:05 UTC the day before).
    const CLEARED_AT: i64 = 1_796_684_945_000;
    /// Every test's bound: a hung send fails the test instead of the run.
    const TEST_BOUND: Duration = Duration::from_secs(20);

    async fn bounded<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(TEST_BOUND, f)
            .await
            .expect("the test did not finish in time")
    }

    /// One request as the receiver saw it.
    #[derive(Debug, Clone)]
    struct Request {
        method: Method,
        path_and_query: String,
        body: Value,
    }

    #[derive(Clone)]
    struct Receiver {
        requests: Arc<Mutex<Vec<Request>>>,
        status: StatusCode,
        answer: &'static str,
        hang: bool,
    }

    impl Receiver {
        fn requests(&self) -> Vec<Request> {
            self.requests.lock().unwrap().clone()
        }

        fn only_request(&self) -> Request {
            let requests = self.requests();
            assert_eq!(requests.len(), 1, "{requests:?}");
            requests[0].clone()
        }
    }

    async fn record(
        State(receiver): State<Receiver>,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> (StatusCode, &'static str) {
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        receiver.requests.lock().unwrap().push(Request {
            method,
            path_and_query: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            body,
        });
        if receiver.hang {
            std::future::pending::<()>().await;
        }
        (receiver.status, receiver.answer)
    }

    /// A real HTTP receiver on 127.0.0.1 answering every request with `status` and
    /// `answer` (or never, with `hang`); returns its base URL.
    async fn receiver(status: StatusCode, answer: &'static str, hang: bool) -> (String, Receiver) {
        let receiver = Receiver {
            requests: Arc::default(),
            status,
            answer,
            hang,
        };
        let app = Router::new().fallback(record).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), receiver)
    }

    fn sender() -> Sender {
        // Loopback receivers: private destinations allowed.
        Sender::new(true).unwrap()
    }

    fn channel(kind: ChannelKind, url: String, secret: Option<&str>) -> Channel {
        Channel {
            kind,
            url,
            secret: secret.map(str::to_owned),
        }
    }

    /// A `high` rule's notification for press-1/temperature (threshold 900).
    fn notification(state: Transition, value: f64, ts: i64) -> Notification {
        let mut n = Notification {
            enterprise: "91310000MA1FL0XX0X".to_owned(),
            enterprise_name: "上海某某精密制造有限公司".to_owned(),
            rule: "炉温过高".to_owned(),
            severity: Severity::Critical,
            state,
            gateway: "gw-01".to_owned(),
            device: Some("press-1".to_owned()),
            point: Some("temperature".to_owned()),
            value: Some(json!(value)),
            ts,
            message: String::new(),
            test: false,
            delivery: None,
        };
        n.message = message_zh(&n, &Condition::Above(900.0));
        n
    }

    fn raised() -> Notification {
        notification(Transition::Raised, 912.5, RAISED_AT)
    }

    #[test]
    fn the_chinese_message_of_a_raise_and_a_clear_of_a_high_rule() {
        assert_eq!(
            raised().message,
            "【严重】炉温过高：press-1/temperature = 912.5，超过阈值 900（网关 gw-01，2026-12-07 15:04:05）"
        );
        // The clear's time is past midnight in Beijing but not in UTC.
        assert_eq!(
            notification(Transition::Cleared, 880.0, CLEARED_AT).message,
            "【严重】炉温过高 已恢复：press-1/temperature = 880（网关 gw-01，2026-12-08 07:09:05）"
        );
    }

    #[test]
    fn messages_of_rules_without_a_point_or_a_value() {
        let mut n = raised();
        n.device = None;
        n.point = None;
        n.value = None;
        n.rule = "网关离线".to_owned();
        n.severity = Severity::Warning;
        assert_eq!(
            message_zh(&n, &Condition::GatewayOffline(300)),
            "【警告】网关离线：网关离线已超过 300 秒（网关 gw-01，2026-12-07 15:04:05）"
        );
        n.state = Transition::Cleared;
        assert_eq!(
            message_zh(&n, &Condition::GatewayOffline(300)),
            "【警告】网关离线 已恢复（网关 gw-01，2026-12-07 15:04:05）"
        );
        n.state = Transition::Raised;
        n.device = Some("press-1".to_owned());
        n.rule = "设备掉线".to_owned();
        n.severity = Severity::Info;
        assert_eq!(
            message_zh(&n, &Condition::DeviceDown),
            "【提示】设备掉线：press-1，设备通讯中断（网关 gw-01，2026-12-07 15:04:05）"
        );
    }

    #[test]
    fn kinds_parse_and_serialize_as_in_the_api() {
        for kind in [
            ChannelKind::Webhook,
            ChannelKind::Wecom,
            ChannelKind::Dingtalk,
            ChannelKind::Feishu,
        ] {
            assert_eq!(ChannelKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert_eq!(
            ChannelKind::parse("slack"),
            Err(ChannelError::UnknownKind("slack".to_owned()))
        );
        assert_eq!(
            serde_json::to_value(Severity::Critical).unwrap(),
            json!("critical")
        );
        assert_eq!(
            serde_json::to_value(Transition::Cleared).unwrap(),
            json!("cleared")
        );
    }

    #[tokio::test]
    async fn a_webhook_receives_the_contract_json() {
        bounded(async {
            let (base, rx) = receiver(StatusCode::NO_CONTENT, "", false).await;
            let ch = channel(ChannelKind::Webhook, format!("{base}/hooks/alarms"), None);
            let n = raised();
            sender().send(&ch, &n, RAISED_AT + 40).await.unwrap();
            let request = rx.only_request();
            assert_eq!(request.method, Method::POST);
            assert_eq!(request.path_and_query, "/hooks/alarms");
            assert_eq!(
                request.body,
                json!({
                    "enterprise": "91310000MA1FL0XX0X",
                    "rule": "炉温过高",
                    "severity": "critical",
                    "state": "raised",
                    "gateway": "gw-01",
                    "device": "press-1",
                    "point": "temperature",
                    "value": 912.5,
                    "ts": RAISED_AT,
                    "message": n.message,
                })
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_test_message_is_marked_as_a_test() {
        bounded(async {
            let (base, rx) = receiver(StatusCode::OK, "ok", false).await;
            let ch = channel(ChannelKind::Webhook, base, None);
            sender()
                .send_test_message(&ch, "91310000MA1FL0XX0X", "某某公司", RAISED_AT)
                .await
                .unwrap();
            let body = rx.only_request().body;
            assert_eq!(body["test"], json!(true));
            assert_eq!(body["severity"], json!("info"));
            assert_eq!(body["device"], Value::Null);
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with("这是一条测试消息"), "{message}");
            assert!(
                message.contains("某某公司，2026-12-07 15:04:05"),
                "{message}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn wecom_gets_markdown_and_its_errcode_decides() {
        bounded(async {
            let (base, rx) = receiver(StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#, false).await;
            let url = format!("{base}/cgi-bin/webhook/send?key=693a91f6");
            let n = raised();
            sender()
                .send(&channel(ChannelKind::Wecom, url, None), &n, RAISED_AT)
                .await
                .unwrap();
            let request = rx.only_request();
            assert_eq!(request.path_and_query, "/cgi-bin/webhook/send?key=693a91f6");
            assert_eq!(
                request.body,
                json!({
                    "msgtype": "markdown",
                    "markdown": {
                        "content": format!(
                            "**fieldlink 告警**\n{}\n> 企业：上海某某精密制造有限公司（91310000MA1FL0XX0X）",
                            n.message
                        ),
                    },
                })
            );

            let (base, _) = receiver(
                StatusCode::OK,
                r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                false,
            )
            .await;
            let err = sender()
                .send(&channel(ChannelKind::Wecom, base, None), &n, RAISED_AT)
                .await
                .unwrap_err();
            assert_eq!(
                err,
                SendError::Retryable("wecom errcode 45009: api freq out of limit".to_owned())
            );

            let (base, _) = receiver(
                StatusCode::OK,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
                false,
            )
            .await;
            let err = sender()
                .send(&channel(ChannelKind::Wecom, base, None), &n, RAISED_AT)
                .await
                .unwrap_err();
            assert_eq!(
                err,
                SendError::Permanent("wecom errcode 93000: invalid webhook url".to_owned())
            );
        })
        .await;
    }

    #[tokio::test]
    async fn dingtalk_is_signed_in_the_query_and_its_errcode_decides() {
        bounded(async {
            let (base, rx) = receiver(StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#, false).await;
            let secret = "SEC0123456789abcdef";
            let url = format!("{base}/robot/send?access_token=abc123");
            let n = notification(Transition::Cleared, 880.0, CLEARED_AT);
            let now = CLEARED_AT + 1234;
            sender()
                .send(&channel(ChannelKind::Dingtalk, url, Some(secret)), &n, now)
                .await
                .unwrap();
            let request = rx.only_request();
            assert_eq!(
                request.body,
                json!({
                    "msgtype": "markdown",
                    "markdown": {
                        "title": "fieldlink 告警：【严重】炉温过高 已恢复",
                        "text": format!(
                            "#### fieldlink 告警\n\n{}\n\n> 企业：上海某某精密制造有限公司（91310000MA1FL0XX0X）",
                            n.message
                        ),
                    },
                })
            );
            // The query keeps the token and adds timestamp (ms) and the URL-encoded sign.
            let query = request.path_and_query.split_once('?').unwrap().1.to_owned();
            let sign_raw = query.split("&sign=").nth(1).unwrap();
            assert!(!sign_raw.contains(['+', '/', '=']), "not URL-encoded: {sign_raw}");
            let parsed = Url::parse(&format!("http://x/?{query}")).unwrap();
            let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
            assert_eq!(pairs[0], ("access_token".to_owned(), "abc123".to_owned()));
            assert_eq!(pairs[1], ("timestamp".to_owned(), now.to_string()));
            assert_eq!(pairs[2].0, "sign");
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{now}\n{secret}").as_bytes());
            assert_eq!(pairs[2].1, BASE64.encode(mac.finalize().into_bytes()));

            // Without a secret the URL goes as it is.
            let (base, rx) = receiver(StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#, false).await;
            let url = format!("{base}/robot/send?access_token=abc123");
            sender()
                .send(&channel(ChannelKind::Dingtalk, url, None), &n, now)
                .await
                .unwrap();
            assert_eq!(rx.only_request().path_and_query, "/robot/send?access_token=abc123");

            for (answer, retryable) in [
                (r#"{"errcode":310000,"errmsg":"sign not match"}"#, false),
                (r#"{"errcode":130101,"errmsg":"send too fast"}"#, true),
            ] {
                let (base, _) = receiver(StatusCode::OK, answer, false).await;
                let err = sender()
                    .send(&channel(ChannelKind::Dingtalk, base, Some(secret)), &n, now)
                    .await
                    .unwrap_err();
                assert_eq!(err.is_retryable(), retryable, "{err}");
                assert!(err.to_string().starts_with("dingtalk errcode"), "{err}");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn feishu_is_signed_in_the_body_and_its_code_decides() {
        bounded(async {
            let (base, rx) = receiver(
                StatusCode::OK,
                r#"{"code":0,"msg":"success","data":{}}"#,
                false,
            )
            .await;
            let secret = "nIMtb7r3N9pkXyXdtAbx6e";
            let url = format!("{base}/open-apis/bot/v2/hook/5e3d587e");
            let n = raised();
            let now = RAISED_AT + 1999;
            sender()
                .send(&channel(ChannelKind::Feishu, url, Some(secret)), &n, now)
                .await
                .unwrap();
            let request = rx.only_request();
            assert_eq!(request.path_and_query, "/open-apis/bot/v2/hook/5e3d587e");
            let timestamp = (RAISED_AT / 1000 + 1).to_string();
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes())
                    .unwrap();
            mac.update(b"");
            let sign = BASE64.encode(mac.finalize().into_bytes());
            assert_eq!(
                request.body,
                json!({
                    "msg_type": "text",
                    "content": {
                        "text": format!(
                            "fieldlink 告警\n{}\n企业：上海某某精密制造有限公司（91310000MA1FL0XX0X）",
                            n.message
                        ),
                    },
                    "timestamp": timestamp,
                    "sign": sign,
                })
            );

            // Without a secret: no timestamp, no sign; older bots answer StatusCode.
            let (base, rx) = receiver(
                StatusCode::OK,
                r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#,
                false,
            )
            .await;
            sender()
                .send(&channel(ChannelKind::Feishu, base, None), &n, now)
                .await
                .unwrap();
            let body = rx.only_request().body;
            assert!(body.get("sign").is_none() && body.get("timestamp").is_none(), "{body}");

            for (answer, expected) in [
                (
                    r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
                    SendError::Permanent(
                        "feishu code 19021: sign match fail or timestamp is not within one hour from current time"
                            .to_owned(),
                    ),
                ),
                (
                    r#"{"code":19024,"msg":"Key Words Not Found"}"#,
                    SendError::Permanent("feishu code 19024: Key Words Not Found".to_owned()),
                ),
                (
                    r#"{"code":11232,"msg":"frequency limited"}"#,
                    SendError::Retryable("feishu code 11232: frequency limited".to_owned()),
                ),
            ] {
                let (base, _) = receiver(StatusCode::OK, answer, false).await;
                let err = sender()
                    .send(&channel(ChannelKind::Feishu, base, Some(secret)), &n, now)
                    .await
                    .unwrap_err();
                assert_eq!(err, expected);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn http_statuses_decide_before_the_vendor_code() {
        bounded(async {
            let long = "服务器内部错误".repeat(100);
            let long: &'static str = Box::leak(long.into_boxed_str());
            for (status, answer, retryable) in [
                (StatusCode::INTERNAL_SERVER_ERROR, long, true),
                (StatusCode::BAD_GATEWAY, "", true),
                (StatusCode::TOO_MANY_REQUESTS, "slow down", true),
                (StatusCode::BAD_REQUEST, r#"{"errcode":0}"#, false),
                (StatusCode::NOT_FOUND, "no such hook", false),
                // Redirects are not followed: a receiver that moved is a broken channel.
                (StatusCode::FOUND, "", false),
            ] {
                for kind in [ChannelKind::Webhook, ChannelKind::Wecom] {
                    let (base, rx) = receiver(status, answer, false).await;
                    let err = sender()
                        .send(&channel(kind, base, None), &raised(), RAISED_AT)
                        .await
                        .unwrap_err();
                    assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
                    let reason = err.to_string();
                    assert!(reason.starts_with(&format!("HTTP {status}")), "{reason}");
                    // Long answers are cut to ~200 characters.
                    assert!(reason.chars().count() < 300, "{reason}");
                    assert_eq!(rx.requests().len(), 1);
                }
            }
            // 2xx with something other than the vendor's JSON: a misconfigured URL.
            let (base, _) = receiver(StatusCode::OK, "<html>login</html>", false).await;
            let err = sender()
                .send(
                    &channel(ChannelKind::Dingtalk, base, None),
                    &raised(),
                    RAISED_AT,
                )
                .await
                .unwrap_err();
            assert_eq!(
                err,
                SendError::Permanent("not a dingtalk answer: <html>login</html>".to_owned())
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_receiver_that_hangs_is_a_retryable_timeout() {
        bounded(async {
            let (base, rx) = receiver(StatusCode::OK, "", true).await;
            let timeout = Duration::from_millis(300);
            let sender = Sender::with_timeout(true, timeout).unwrap();
            let started = tokio::time::Instant::now();
            let err = sender
                .send(
                    &channel(ChannelKind::Webhook, base, None),
                    &raised(),
                    RAISED_AT,
                )
                .await
                .unwrap_err();
            let took = started.elapsed();
            assert_eq!(
                err,
                SendError::Retryable("no answer within 300ms".to_owned())
            );
            assert!(took >= timeout && took < timeout * 5, "{took:?}");
            assert_eq!(rx.requests().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_closed_port_is_retryable_and_names_no_url() {
        bounded(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            let url = format!("http://{addr}/robot/send?access_token=s3cret-token");
            let err = sender()
                .send(
                    &channel(ChannelKind::Dingtalk, url, None),
                    &raised(),
                    RAISED_AT,
                )
                .await
                .unwrap_err();
            assert!(err.is_retryable(), "{err}");
            assert!(err.to_string().starts_with("cannot connect"), "{err}");
            assert!(!err.to_string().contains("s3cret-token"), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn private_destinations_are_refused_at_send_time_unless_allowed() {
        bounded(async {
            let (base, rx) = receiver(StatusCode::OK, "", false).await;
            let strict = Sender::new(false).unwrap();
            let ch = channel(ChannelKind::Webhook, base.clone(), None);
            let err = strict.send(&ch, &raised(), RAISED_AT).await.unwrap_err();
            assert!(matches!(err, SendError::Permanent(_)), "{err}");
            assert!(
                err.to_string().contains("--allow-private-webhooks"),
                "{err}"
            );
            let port = base.rsplit(':').next().unwrap();
            let by_name = channel(
                ChannelKind::Webhook,
                format!("http://localhost:{port}/"),
                None,
            );
            let err = strict
                .send(&by_name, &raised(), RAISED_AT)
                .await
                .unwrap_err();
            assert!(matches!(err, SendError::Permanent(_)), "{err}");
            assert!(rx.requests().is_empty());
            sender().send(&by_name, &raised(), RAISED_AT).await.unwrap();
            assert_eq!(rx.requests().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn the_resolver_drops_private_addresses_against_dns_rebinding() {
        use reqwest::dns::Resolve;
        bounded(async {
            // A name that resolves to loopback only (as a rebinding name would, later).
            let guarded = GuardedResolver {
                allow_private: false,
            };
            let err = guarded
                .resolve("localhost".parse().unwrap())
                .await
                .err()
                .expect("localhost refused");
            let refused = find_cause::<ChannelError>(err.as_ref()).expect("a ChannelError");
            assert!(matches!(refused, ChannelError::Private { .. }), "{refused}");
            let open = GuardedResolver {
                allow_private: true,
            };
            let addrs: Vec<SocketAddr> = open
                .resolve("localhost".parse().unwrap())
                .await
                .map_err(|e| e.to_string())
                .unwrap()
                .collect();
            assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");

            // Through the sender's client, the refusal is a permanent failure. (Its send()
            // refuses localhost before resolving; a rebinding name reaches this path.)
            let (base, rx) = receiver(StatusCode::OK, "", false).await;
            let port = base.rsplit(':').next().unwrap();
            let strict = Sender::new(false).unwrap();
            let e = strict
                .http
                .post(format!("http://localhost:{port}/"))
                .send()
                .await
                .unwrap_err();
            let err = strict.transport_error(e);
            assert!(matches!(err, SendError::Permanent(_)), "{err}");
            assert!(
                err.to_string().contains("--allow-private-webhooks"),
                "{err}"
            );
            assert!(rx.requests().is_empty());
        })
        .await;
    }

    #[test]
    fn a_channel_debugs_without_its_token_or_secret() {
        let ch = channel(
            ChannelKind::Dingtalk,
            "https://oapi.dingtalk.com/robot/send?access_token=t0ken".to_owned(),
            Some("SECsecret"),
        );
        let debug = format!("{ch:?}");
        assert!(debug.contains("oapi.dingtalk.com"), "{debug}");
        assert!(
            !debug.contains("t0ken") && !debug.contains("SECsecret"),
            "{debug}"
        );
    }

    #[test]
    fn urls_must_be_http_or_https() {
        for url in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "gopher://example.com",
        ] {
            assert!(
                matches!(validate_url(url, true), Err(ChannelError::Scheme(_))),
                "{url}"
            );
        }
        assert!(matches!(
            validate_url("not a url", true),
            Err(ChannelError::Url(_))
        ));
        assert!(
            validate_url(
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                false
            )
            .is_ok()
        );
        assert!(validate_url("http://93.184.216.34:8080/hook", false).is_ok());
    }

    #[test]
    fn private_address_literals_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:8080/",
            "http://10.1.2.3/",
            "http://172.16.0.9/",
            "http://172.31.255.255/",
            "http://192.168.1.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://100.127.255.254/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::c0a8:0101]/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(
                matches!(validate_url(url, false), Err(ChannelError::Private { .. })),
                "{url} not refused"
            );
            assert!(
                validate_url(url, true).is_ok(),
                "{url} refused though allowed"
            );
        }
        for url in [
            "http://100.128.0.1/",
            "http://172.32.0.1/",
            "http://[2001:db8::1]/",
            "http://[::ffff:93.184.216.34]/",
        ] {
            assert!(validate_url(url, false).is_ok(), "{url} refused");
        }
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused_when_saved() {
        bounded(async {
            let err = check_destination("http://localhost:9/", false)
                .await
                .unwrap_err();
            assert!(matches!(err, ChannelError::Private { .. }), "{err}");
            assert!(check_destination("http://localhost:9/", true).await.is_ok());
            // An address literal needs no DNS.
            assert!(
                check_destination("https://93.184.216.34/hook", false)
                    .await
                    .is_ok()
            );
            let err = check_destination("http://192.168.0.1/", false)
                .await
                .unwrap_err();
            assert_eq!(
                err,
                ChannelError::Private {
                    host: "192.168.0.1".to_owned(),
                    addr: "192.168.0.1".parse().unwrap(),
                }
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_secret_only_where_the_vendor_signs() {
        bounded(async {
            let with =
                |kind, secret: &str| channel(kind, "http://127.0.0.1:9/".to_owned(), Some(secret));
            assert_eq!(
                with(ChannelKind::Wecom, "x").check(true).await,
                Err(ChannelError::SecretNotUsed(ChannelKind::Wecom))
            );
            assert_eq!(
                with(ChannelKind::Webhook, "x").check(true).await,
                Err(ChannelError::SecretNotUsed(ChannelKind::Webhook))
            );
            assert_eq!(
                with(ChannelKind::Dingtalk, " ").check(true).await,
                Err(ChannelError::EmptySecret)
            );
            assert_eq!(with(ChannelKind::Feishu, "s").check(true).await, Ok(()));
            assert!(matches!(
                with(ChannelKind::Feishu, "s").check(false).await,
                Err(ChannelError::Private { .. })
            ));
        })
        .await;
    }

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes_with_jitter() {
        for (attempt, ceiling) in [
            (0, 1),
            (1, 2),
            (2, 4),
            (5, 32),
            (8, 256),
            (9, 300),
            (40, 300),
        ] {
            let ceiling = Duration::from_secs(ceiling);
            for _ in 0..20 {
                let delay = backoff(attempt);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "attempt {attempt}: {delay:?} not in [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
        assert!(backoff(u32::MAX) <= BACKOFF_MAX);
    }
}
