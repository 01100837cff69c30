//! `cargo run -p fieldlink-demo`: fieldlink end to end with nothing installed.
//!
//! Starts the platform in process (HTTP API, its in-process MQTT broker, SQLite), registers
//! a demo enterprise and issues an enrollment token through the bureau's API, enrolls the
//! simulated gateway with that token exactly as `fieldlink enroll` does, and runs the agent
//! with `config/demo.toml` and the issued credentials against a simulated press on a
//! loopback Modbus TCP port. It prints a line per batch the broker carries and, once the
//! platform's counts show it, that the enterprise is on the cloud; until Ctrl-C, or for
//! `--seconds N`. Everything lives in a temporary directory removed on exit.
//!
//! The platform listens on 127.0.0.1:8080 when that port is free (an ephemeral port
//! otherwise), and the demo creates a bureau login and a login for its enterprise with
//! passwords generated for the run, logs in with each through the web UI's form over plain
//! HTTP, and prints the dashboard's URL and both logins.

use anyhow::Context;
use fieldlink::config::DeviceKind;
use fieldlink_platform::api::{IntegratorInput, TokenRequest, UserInput};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::{BrokerConfig, MqttUrl, Platform, PlatformConfig, PlatformError};
use fieldlink_simulator::modbus_device;
use fieldlink_testkit::PlatformClient;
use fieldlink_wire::{Batch, Meta, Value, decode_batch};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The demo enterprise's first 17 credit-code characters (the check character is computed).
const DEMO_CODE_17: &str = "91420100MA4KDEM01";
/// The demo enterprise's name.
const DEMO_NAME: &str = "武汉示范精密部件有限公司";
/// Its industry (a pilot industry).
const DEMO_INDUSTRY: &str = "auto-parts";
/// Its district.
const DEMO_DISTRICT: &str = "东湖新技术开发区";
/// The simulated gateway's name within the enterprise.
const GATEWAY_NAME: &str = "demo-line-1";
/// The platform's HTTP port when it is free, so that the printed URLs stay the same.
const HTTP_PORT: u16 = 8080;
/// The demo integrator's first 17 credit-code characters.
const INTEGRATOR_CODE_17: &str = "91420100MA4KJC001";
/// The demo integrator's name.
const INTEGRATOR_NAME: &str = "武汉示范系统集成有限公司";
/// The demo's bureau login.
const BUREAU_USER: &str = "demo-bureau";
/// The demo enterprise's login.
const ENTERPRISE_USER: &str = "demo-enterprise";
/// The demo integrator's login.
const INTEGRATOR_USER: &str = "demo-integrator";
/// The demo district's login (the enterprise's district).
const DISTRICT_USER: &str = "demo-district";

/// The demo's settings from the command line.
struct Args {
    config: PathBuf,
    seconds: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        config: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml")),
        seconds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => args.config = it.next().context("--config needs a file")?.into(),
            "--seconds" => {
                args.seconds = Some(
                    it.next()
                        .context("--seconds needs a number")?
                        .parse()
                        .context("--seconds needs a number")?,
                )
            }
            "-h" | "--help" => {
                println!(
                    "fieldlink-demo [--config FILE] [--seconds N]: the platform in process (on 127.0.0.1:8080 if free) with web UI logins, a simulated gateway enrolled with it, a simulated device"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIELDLINK_LOG")
                .unwrap_or_else(|_| "info,rumqttd=off,fieldlink_platform=warn".into()),
        )
        .init();
    // reqwest is built with rustls and no crypto provider; the demo speaks plain HTTP on
    // loopback, but building a client needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("fieldlink-demo-")
        .tempdir()
        .context("cannot create the demo's temporary directory")?;

    // The platform: HTTP API, in-process broker and SQLite, all on loopback; HTTP on
    // HTTP_PORT if it is free.
    let bureau_token = fieldlink_platform::secret::new_token()?;
    let fixed = SocketAddr::from(([127, 0, 0, 1], HTTP_PORT));
    let fixed_is_free = std::net::TcpListener::bind(fixed).is_ok();
    let listen = if fixed_is_free {
        fixed
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    };
    let mut platform_config = PlatformConfig::new(listen, dir.path().join("platform"));
    platform_config.broker = BrokerConfig::embedded(SocketAddr::from(([127, 0, 0, 1], 0)));
    platform_config.admin_token = Some(bureau_token.clone());
    std::fs::create_dir_all(&platform_config.data_dir)
        .context("cannot create the platform's data directory")?;
    let platform_shutdown = CancellationToken::new();
    let platform =
        match Platform::start(platform_config.clone(), platform_shutdown.clone()).await {
            // Taken between the check and the platform's bind: take any port (the first
            // attempt's in-process broker stays behind, idle, until the demo exits).
            Err(PlatformError::Bind { .. }) if fixed_is_free => {
                platform_config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
                Platform::start(platform_config, platform_shutdown.clone()).await
            }
            started => started,
        }
        .context("the platform did not start")?;
    let port_note = if platform.http_addr().port() == HTTP_PORT {
        String::new()
    } else {
        format!(" ({HTTP_PORT} is busy)")
    };
    let bureau = PlatformClient::new(format!("http://{}", platform.http_addr()))
        .with_token(bureau_token.clone())
        .with_timeout(Duration::from_secs(10));

    // The bureau registers the enterprise and issues a one-gateway token for its integrator.
    let code = CreditCode::complete(DEMO_CODE_17)?.to_string();
    bureau
        .register_enterprise(&EnterpriseInput {
            credit_code: code.clone(),
            name: DEMO_NAME.to_owned(),
            industry: DEMO_INDUSTRY.to_owned(),
            district: DEMO_DISTRICT.to_owned(),
            in_program: true,
            ..Default::default()
        })
        .await
        .context("registering the demo enterprise")?;
    // Its integrator, registered and assigned by the bureau; the token is the integrator's.
    let integrator_code = CreditCode::complete(INTEGRATOR_CODE_17)?.to_string();
    bureau
        .register_integrator(&IntegratorInput {
            credit_code: integrator_code.clone(),
            name: INTEGRATOR_NAME.to_owned(),
            contact: Some("027-8888 0000".to_owned()),
        })
        .await
        .context("registering the demo integrator")?;
    bureau
        .assign(&code, &integrator_code)
        .await
        .context("assigning the demo enterprise to its integrator")?;
    let token = bureau
        .issue_token(
            &code,
            &TokenInput {
                max_gateways: Some(1),
                expires_in_days: Some(1),
            },
        )
        .await
        .context("issuing the enrollment token")?
        .token;

    // The gateway: enrolled as `fieldlink enroll --url URL --token TOKEN` does, the
    // credentials stored in its state directory, where the agent finds them.
    let device_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulated device")?;
    let device_addr = device_listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let device = tokio::spawn(modbus_device::serve(
        device_listener,
        modbus_device::demo_register_map(),
        shutdown.child_token(),
    ));
    let mut config = fieldlink::config::load(&args.config)?;
    config.gateway.state_dir = dir.path().join("gateway");
    for d in &mut config.devices {
        if let DeviceKind::ModbusTcp(tcp) = &mut d.kind {
            tcp.address = device_addr.to_string();
        }
    }
    let enrollment = fieldlink::enroll::request(bureau.base(), &token, GATEWAY_NAME)
        .await
        .context("enrolling the demo gateway")?;
    let stored = fieldlink::enroll::store(&config.gateway.state_dir, &enrollment)?;
    let gateway = enrollment.gateway_id.clone();

    // The web UI's logins, one per role, each tried through the login form over plain
    // HTTP as a browser would, landing on its role's home page.
    let dashboard = format!("{}/bureau", bureau.base());
    let enterprise_page = format!("/enterprises/{code}");
    let district_page = format!("/bureau/districts/{}", form_encode(DEMO_DISTRICT));
    let logins = [
        (BUREAU_USER, "bureau", None, "/bureau".to_owned()),
        (
            INTEGRATOR_USER,
            "integrator",
            Some(integrator_code.clone()),
            "/fleet".to_owned(),
        ),
        (
            DISTRICT_USER,
            "district",
            Some(DEMO_DISTRICT.to_owned()),
            district_page.clone(),
        ),
        (
            ENTERPRISE_USER,
            "enterprise",
            Some(code.clone()),
            enterprise_page.clone(),
        ),
    ];
    let mut passwords = Vec::new();
    for (username, role, scope, home) in logins {
        let password = demo_password()?;
        bureau
            .create_user(&UserInput {
                username: username.to_owned(),
                password: password.clone(),
                role: role.to_owned(),
                scope,
            })
            .await
            .with_context(|| format!("creating the demo {role} login"))?;
        check_login(bureau.base(), username, &password, &home)
            .await
            .with_context(|| format!("logging in as {username} at {}/login", bureau.base()))?;
        passwords.push((username, password, home));
    }
    // The enterprise shares its data with the bureau, so the bureau's monitoring shows
    // its press (an aggregate of one enterprise is withheld otherwise).
    let owner_token = bureau
        .create_token(ENTERPRISE_USER, &TokenRequest::default())
        .await
        .context("a token for the demo enterprise's login")?
        .token;
    bureau
        .clone()
        .with_token(owner_token)
        .set_sharing(&code, true)
        .await
        .context("sharing the demo enterprise's data with the bureau")?;

    let broker = platform.public_mqtt_url().to_owned();
    let broker_url = MqttUrl::parse(&broker)?;
    let broker_addr = SocketAddr::new(
        broker_url
            .host
            .parse()
            .with_context(|| format!("the in-process broker's URL {broker:?}"))?,
        broker_url.port,
    );
    println!("fieldlink demo");
    println!(
        "  platform (HTTP API)          {}{port_note}",
        bureau.base()
    );
    println!("  in-process MQTT broker       {broker}");
    println!("  simulated Modbus TCP device  {device_addr}");
    println!(
        "  enterprise                   {DEMO_NAME} {code} ({DEMO_INDUSTRY}, {DEMO_DISTRICT})"
    );
    println!("  gateway                      {gateway}, enrolled with a one-time token");
    println!("  gateway credentials          {}", stored.display());
    println!("  web UI (bureau dashboard)    {dashboard}");
    println!("  the bureau's wall display    {dashboard}/cockpit (1920 x 1080, as the bureau)");
    for (username, password, home) in &passwords {
        println!(
            "    login {username:<22} {password}  (lands on {}{home})",
            bureau.base()
        );
    }
    println!(
        "    (passwords generated for this run; every login just checked through the login form)"
    );
    println!(
        "  the bureau's counts:         curl -s -H 'Authorization: Bearer {bureau_token}' {}/api/v1/stats/onboarding",
        bureau.base()
    );
    println!(
        "  the industry monitoring:     curl -s -H 'Authorization: Bearer {bureau_token}' '{}/api/v1/stats/monitoring?by=industry&days=1'",
        bureau.base()
    );
    println!(
        "  watch the broker:            mosquitto_sub -h 127.0.0.1 -p {} -t 'fieldlink/v1/#' -v",
        broker_addr.port()
    );
    println!(
        "Everything is temporary ({}). Ctrl-C stops it.\n",
        dir.path().display()
    );

    let watcher = tokio::spawn(watch(broker_addr, gateway.clone(), shutdown.child_token()));
    let announcer = tokio::spawn(announce_on_cloud(bureau.clone(), shutdown.child_token()));
    let agent = tokio::spawn(fieldlink::run(config, shutdown.child_token()));
    match args.seconds {
        Some(s) => tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(s)) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    shutdown.cancel();
    agent.await.context("the agent task failed")??;
    let batches = watcher.await.context("the watcher failed")?;
    device.await.context("the device task failed")??;
    announcer.await.context("the counts task failed")?;

    // What the platform made of it, once the ingest has stored what the agent sent last.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut stats = platform.ingest_stats();
    while stats.batches_stored < batches && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = platform.ingest_stats();
    }
    let counts = bureau.onboarding().await?;
    let monitoring = bureau
        .get_json("/api/v1/stats/monitoring?by=industry&days=1")
        .await?;
    platform_shutdown.cancel();
    platform
        .wait()
        .await
        .context("the platform stopped with an error")?;
    println!(
        "\ndemo stopped after {batches} batches; the platform stored {} batches ({} samples); on the cloud: {} of {} registered enterprises",
        stats.batches_stored, stats.samples_stored, counts.total.on_cloud, counts.total.registered
    );
    let today = &monitoring["total"]["days"][0];
    println!(
        "the bureau's monitoring today: {} machines reporting, running {:.0} % of the time observed, {:.2} kWh, {:.0} parts",
        today["machines"],
        today["running_rate"].as_f64().unwrap_or(0.0) * 100.0,
        today["energy_kwh"].as_f64().unwrap_or(0.0),
        today["output"].as_f64().unwrap_or(0.0)
    );
    anyhow::ensure!(batches > 0, "no batch arrived at the broker");
    anyhow::ensure!(
        counts.total.on_cloud == 1,
        "the platform does not count the demo enterprise as on the cloud"
    );
    Ok(())
}

/// A password for a demo login, new each run: 16 URL-safe characters (96 random bits).
fn demo_password() -> anyhow::Result<String> {
    Ok(fieldlink_platform::secret::new_token()?
        .chars()
        .take(16)
        .collect())
}

/// Logs in through the web UI's login form as a browser does (CSRF cookie and field, then
/// the session cookie, which must be `Secure`) and opens `page` with the session.
async fn check_login(base: &str, username: &str, password: &str, page: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let form = http.get(format!("{base}/login")).send().await?;
    anyhow::ensure!(
        form.status() == StatusCode::OK,
        "the login form answered {}",
        form.status()
    );
    let (csrf, _) =
        set_cookie(&form, "fl_login_csrf").context("the login form sets no CSRF cookie")?;
    let html = form.text().await?;
    anyhow::ensure!(
        !html.contains("id=\"insecure\""),
        "the login form warns that a browser would drop its Secure cookies here"
    );
    let body = [
        ("username", username),
        ("password", password),
        ("csrf", &csrf),
        ("next", page),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", form_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let answer = http
        .post(format!("{base}/login"))
        .header(COOKIE, format!("fl_login_csrf={csrf}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(
        answer.status() == StatusCode::SEE_OTHER,
        "the login answered {} (refused?)",
        answer.status()
    );
    let to = answer
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    anyhow::ensure!(
        to == page,
        "the login sent the browser to {to:?}, not {page:?}"
    );
    let (session, attributes) =
        set_cookie(&answer, "fl_session").context("the login sets no session cookie")?;
    anyhow::ensure!(
        attributes
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure")),
        "the session cookie is not Secure: {attributes}"
    );
    let shown = http
        .get(format!("{base}{page}"))
        .header(COOKIE, format!("fl_session={session}"))
        .send()
        .await?;
    anyhow::ensure!(
        shown.status() == StatusCode::OK,
        "{page} answered {} with the session",
        shown.status()
    );
    Ok(())
}

/// The value and the whole header of the cookie `name` that `response` sets, if it does.
fn set_cookie(response: &Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|header| {
            let pair = header.split(';').next()?;
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| (value.to_owned(), header.to_owned()))
        })
}

/// Form encoding: every byte but the unreserved ones percent-escaped.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Polls the counts until the demo enterprise is on the cloud and says so, once.
async fn announce_on_cloud(bureau: PlatformClient, shutdown: CancellationToken) {
    loop {
        match bureau.onboarding().await {
            Ok(counts) if counts.total.on_cloud >= 1 => {
                let industry = counts
                    .by_industry
                    .iter()
                    .find(|r| r.industry.code() == DEMO_INDUSTRY);
                let (on_cloud, target) = industry.map_or(("?".to_owned(), "?".to_owned()), |r| {
                    (r.counts.on_cloud.to_string(), r.target.to_string())
                });
                println!(
                    "ON THE CLOUD: the platform counts {DEMO_NAME} on the cloud ({DEMO_INDUSTRY}: {on_cloud} of a target of {target}; in-program on the cloud: {} of {})",
                    counts.in_program.on_cloud, counts.targets.in_program_on_cloud
                );
                return;
            }
            Ok(_) => {}
            Err(e) => println!("cannot read the platform's counts: {e:#}"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Subscribes to the gateway's topics and prints what arrives; returns the batch count.
async fn watch(broker: SocketAddr, gateway: String, shutdown: CancellationToken) -> u64 {
    let mut options = MqttOptions::new(
        "fieldlink-demo-watch",
        broker.ip().to_string(),
        broker.port(),
    );
    options.set_max_packet_size(64 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 16);
    let mut batches = 0;
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => {
                // Give the agent's final batches a moment to arrive.
                match tokio::time::timeout(Duration::from_millis(500), events.poll()).await {
                    Ok(e) => e,
                    Err(_) => return batches,
                }
            }
            e = events.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client
                    .subscribe(format!("fieldlink/v1/{gateway}/#"), QoS::AtLeastOnce)
                    .await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/data") => {
                match decode_batch(&p.payload) {
                    Ok(batch) => {
                        batches += 1;
                        print_batch(&batch, &mut latest);
                    }
                    Err(e) => println!("undecodable batch: {e}"),
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/meta") => {
                // The catalogue is long; its shape is enough here.
                match serde_json::from_slice::<Meta>(&p.payload) {
                    Ok(meta) => println!(
                        "{} catalogue of {} devices, {} points",
                        p.topic,
                        meta.devices.len(),
                        meta.devices.iter().map(|d| d.points.len()).sum::<usize>()
                    ),
                    Err(e) => println!("{} undecodable catalogue: {e}", p.topic),
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                println!("{} {}", p.topic, String::from_utf8_lossy(&p.payload));
            }
            Ok(_) => {}
            Err(_) => {
                if shutdown.is_cancelled() {
                    return batches;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn print_batch(batch: &Batch, latest: &mut BTreeMap<String, String>) {
    let bad = batch
        .samples
        .iter()
        .filter(|s| s.quality.as_str() != "good")
        .count();
    for s in &batch.samples {
        let value = match &s.value {
            Value::Float(f) => format!("{f:.2}"),
            Value::Text(t) => format!("{t:?}"),
            Value::None => "—".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
        };
        latest.insert(format!("{}/{}", s.device, s.point), value);
    }
    let shown: Vec<String> = latest
        .iter()
        .take(6)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "batch seq={:<5} samples={:<4} bad={bad}  {}",
        batch.seq,
        batch.samples.len(),
        shown.join(" ")
    );
}
