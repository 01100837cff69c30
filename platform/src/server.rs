//! The server's wiring: opens the store, starts the broker (embedded) or writes the external
//! one's files, serves the HTTP routes of the API, the UI and the broker hook, and runs the
//! ingest, the gap watch and the pruning, each an owned task that stops with the shutdown
//! token.

use crate::accounts::{AccountError, Accounts};
use crate::config::{self, DEFAULT_INGEST_USERNAME, MqttUrl, PlatformConfig};
use crate::http::{ApiError, AppState, MAX_BODY_BYTES};
use crate::ingest::{self, IngestContext, IngestCounters, IngestStats};
use crate::limiter::FailureLimiter;
use crate::mosquitto::{MosquittoError, MosquittoSync};
use crate::registry::Registry;
use crate::store::{Store, StoreError};
use crate::{alarms, api, broker_hook, clock, gap_watch, secret, tls, ui};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use fieldlink_broker::{Broker, BrokerError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the platform could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The in-process broker did not start (port taken?). Its error is in the message,
    /// so not repeated as a cause.
    #[error("the in-process MQTT broker did not start: {0}")]
    Broker(BrokerError),
    /// The HTTP listen address cannot be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// A secret file in the data directory cannot be read or written.
    #[error("cannot read or write {path}: {error}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// No random secret could be made.
    #[error(transparent)]
    Random(#[from] secret::RandomError),
    /// The TLS configuration for an `mqtts://` broker could not be built.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// mosquitto's files could not be written at start.
    #[error(transparent)]
    Mosquitto(#[from] MosquittoError),
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The web UI's accounts database could not be opened.
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// A task of the platform panicked.
    #[error("a platform task failed: {0}")]
    Task(String),
    /// The alarm channels' HTTP client could not be built.
    #[error("the alarm notifications' HTTP client: {0}")]
    Webhooks(crate::alarms::channel::ChannelError),
}

impl From<BrokerError> for PlatformError {
    fn from(e: BrokerError) -> Self {
        PlatformError::Broker(e)
    }
}

/// A running platform.
pub struct Platform {
    http_addr: SocketAddr,
    public_mqtt_url: String,
    registry: Registry,
    counters: Arc<IngestCounters>,
    tasks: Vec<(&'static str, JoinHandle<Result<(), PlatformError>>)>,
}

impl Platform {
    /// Opens the store, starts the broker (embedded) or checks the external one's files,
    /// binds the HTTP listener and starts the ingest. Everything stops when `shutdown`
    /// fires; [`Platform::wait`] returns once it has.
    pub async fn start(
        config: PlatformConfig,
        shutdown: CancellationToken,
    ) -> Result<Platform, PlatformError> {
        let store = Store::open(&config.database, &config.data_dir).await?;

        let admin_token = match &config.admin_token {
            Some(token) => token.clone(),
            None => {
                let path = config.data_dir.join("admin-token");
                let token = load_or_create_secret(&path)?;
                tracing::warn!(path = %path.display(), "no bureau token configured; using the one in this file");
                token
            }
        };

        let (broker_url, tls, username, password, default_public) = match &config.broker {
            config::BrokerConfig::Embedded {
                listen,
                queue_bytes,
            } => {
                let (listen, queue_bytes) = (*listen, *queue_bytes);
                let broker = tokio::task::spawn_blocking(move || {
                    Broker::start_with_queue(listen, queue_bytes)
                })
                .await
                .map_err(|e| PlatformError::Task(e.to_string()))??;
                tracing::warn!(addr = %broker.addr(),
                    "in-process MQTT broker started; it has no passwords or ACL: any client can publish as any gateway (use --broker with mosquitto in production)");
                let addr = connectable(broker.addr());
                let url = MqttUrl {
                    tls: false,
                    host: addr.ip().to_string(),
                    port: addr.port(),
                };
                (url, None, None, None, broker.url())
            }
            config::BrokerConfig::External {
                url,
                ca_file,
                username,
                password,
            } => (
                url.clone(),
                tls::client_config(url, ca_file.as_deref())?,
                username.clone(),
                password.clone(),
                url.to_string(),
            ),
        };
        let public_mqtt_url = config.public_mqtt_url.clone().unwrap_or(default_public);

        let (mosquitto, username, password) = match &config.mosquitto {
            Some(files) => {
                let username = username.unwrap_or_else(|| DEFAULT_INGEST_USERNAME.to_owned());
                let password = match password {
                    Some(p) => p,
                    None => load_or_create_secret(&config.data_dir.join("ingest-mqtt-password"))?,
                };
                let sync = MosquittoSync::new(
                    files.clone(),
                    username.clone(),
                    secret::mosquitto_hash(&password)?,
                    store.clone(),
                );
                match sync.sync().await {
                    Ok(()) => {}
                    Err(MosquittoError::Reload(why)) => tracing::warn!(%why,
                        "mosquitto was not told to reload (not running yet?); it reads the files when it starts"),
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(password_file = %files.password_file.display(), acl_file = %files.acl_file.display(),
                    "mosquitto password and ACL files written");
                (Some(Arc::new(sync)), Some(username), Some(password))
            }
            None => (None, username, password),
        };

        let registry = Registry::new(
            store.clone(),
            mosquitto,
            public_mqtt_url.clone(),
            config.utc_offset_minutes,
        );
        let counters = Arc::new(IngestCounters::default());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|error| PlatformError::Bind {
                addr: config.listen,
                error,
            })?;
        let http_addr = listener.local_addr().map_err(|error| PlatformError::Bind {
            addr: config.listen,
            error,
        })?;
        let accounts = Accounts::new(store.clone());
        let webhooks = alarms::channel::Sender::new(config.allow_private_webhooks)
            .map_err(PlatformError::Webhooks)?;
        let state = Arc::new(AppState {
            registry: registry.clone(),
            store: store.clone(),
            admin_token_sha256: secret::sha256_hex(&admin_token),
            counters: counters.clone(),
            targets: config.targets,
            utc_offset_minutes: config.utc_offset_minutes,
            accounts,
            failures: FailureLimiter::default(),
            webhooks: webhooks.clone(),
            allow_private_webhooks: config.allow_private_webhooks,
        });
        let mut app = routes(state);
        if let Some(token) = &config.broker_hook_token {
            app = app.merge(broker_hook::router(Arc::new(broker_hook::HookState {
                store: store.clone(),
                token_sha256: secret::sha256_hex(token),
                ingest: username.clone().zip(password.clone()),
            })));
            tracing::info!("broker hook on: /api/v1/broker/authn and /api/v1/broker/authz");
        }
        let mut tasks = Vec::new();
        let http_shutdown = shutdown.clone();
        tasks.push((
            "http",
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(http_shutdown.cancelled_owned())
                .await
                .map_err(PlatformError::Serve)
            }),
        ));
        if config.ingest {
            let stored = Arc::new(tokio::sync::Notify::new());
            let ingest = IngestContext {
                broker: broker_url.clone(),
                tls,
                username,
                password,
                client_id: config.ingest_client_id.clone(),
                share_group: config.ingest_share_group.clone(),
                store: store.clone(),
                counters: counters.clone(),
                utc_offset_minutes: config.utc_offset_minutes,
                shutdown: shutdown.clone(),
                stored: stored.clone(),
            };
            tasks.push((
                "ingest",
                tokio::spawn(async move {
                    ingest::run(ingest).await;
                    Ok(())
                }),
            ));
            let watch = gap_watch::run(
                store.clone(),
                counters.clone(),
                config.gap_grace,
                shutdown.clone(),
            );
            tasks.push((
                "gap watch",
                tokio::spawn(async move {
                    watch.await;
                    Ok(())
                }),
            ));
            // The instance's name in the timers' lease and the queue's claims: the ingest's
            // client id, unique per instance.
            let instance = config.ingest_client_id.clone();
            let timers = alarms::timer::run(store.clone(), instance.clone(), shutdown.clone());
            tasks.push((
                "alarm timers",
                tokio::spawn(async move {
                    timers.await;
                    Ok(())
                }),
            ));
            let delivery =
                alarms::delivery::run(store.clone(), webhooks, instance, stored, shutdown.clone());
            tasks.push((
                "alarm delivery",
                tokio::spawn(async move {
                    delivery.await;
                    Ok(())
                }),
            ));
        } else {
            tracing::info!("MQTT ingest off (--no-ingest): this instance serves HTTP only");
        }
        tasks.push((
            "prune",
            tokio::spawn(prune_loop(store, config.clone(), shutdown)),
        ));
        tracing::info!(http = %http_addr, broker = %broker_url, public_mqtt_url = %public_mqtt_url,
            "fieldlink-platform running");
        Ok(Platform {
            http_addr,
            public_mqtt_url,
            registry,
            counters,
            tasks,
        })
    }

    /// The address the HTTP API listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The MQTT URL handed to enrolled gateways.
    pub fn public_mqtt_url(&self) -> &str {
        &self.public_mqtt_url
    }

    /// The registry (for in-process callers such as the demo and the benchmark).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The ingest's counters now.
    pub fn ingest_stats(&self) -> IngestStats {
        self.counters.snapshot()
    }

    /// Waits until every part has stopped (after the shutdown token fired).
    pub async fn wait(self) -> Result<(), PlatformError> {
        let mut result = Ok(());
        for (name, task) in self.tasks {
            let outcome = task
                .await
                .map_err(|e| PlatformError::Task(format!("{name}: {e}")))
                .and_then(|r| r);
            if let Err(e) = outcome {
                tracing::error!(task = name, error = %e, "platform task failed");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        tracing::info!("fieldlink-platform stopped");
        result
    }
}

/// The API's and the web UI's routes over `state`, with the body limit, the JSON 404 and
/// gzip where the client accepts it.
fn routes(state: Arc<AppState>) -> Router {
    api::router()
        .merge(ui::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(crate::http::compression())
        .with_state(state)
}

/// Runs the platform until `shutdown` fires, then stops it gracefully.
pub async fn run(config: PlatformConfig, shutdown: CancellationToken) -> Result<(), PlatformError> {
    let platform = Platform::start(config, shutdown.clone()).await;
    match platform {
        Ok(platform) => platform.wait().await,
        Err(e) => {
            shutdown.cancel();
            Err(e)
        }
    }
}

/// Deletes samples older than the retention period, every `prune_interval`.
async fn prune_loop(
    store: Store,
    config: PlatformConfig,
    shutdown: CancellationToken,
) -> Result<(), PlatformError> {
    let retention_ms = i64::try_from(config.retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let cutoff = clock::now_ms().saturating_sub(retention_ms);
        match store.prune(cutoff, cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "samples past the retention period deleted"),
            Err(e) => tracing::error!(error = %e, "pruning old samples failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.prune_interval) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Reads a secret from `path`, or creates it (mode 0600, in a directory created with mode
/// 0700 if missing) with a new random token.
fn load_or_create_secret(path: &Path) -> Result<String, PlatformError> {
    let error = |e| PlatformError::Secret {
        path: path.to_owned(),
        error: e,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let token = secret::new_token()?;
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    // With PostgreSQL nothing else may have created the data directory yet.
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(error)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(error)?;
    Ok(token)
}

/// `addr` with an unspecified IP replaced by loopback.
fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}
