//! A real HTTP receiver of the platform's alarm webhooks on loopback: it records every
//! request it accepts (the `X-Fieldlink-Delivery` id, the JSON body, when it arrived), and
//! answers 200, 500 or not at all (a receiver that hangs), as the test tells it.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value as Json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    /// 200, and the request is recorded.
    Ok = 0,
    /// 500, nothing recorded.
    ServerError = 1,
    /// No answer for two minutes, nothing recorded.
    Hang = 2,
}

/// One request the receiver accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its `X-Fieldlink-Delivery` header.
    pub id: Option<String>,
    /// Its body (`null` if it was not JSON).
    pub body: Json,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Clone, Default)]
struct Shared {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    answer: Arc<AtomicU8>,
}

/// The receiver, serving until dropped.
pub struct WebhookReceiver {
    url: String,
    shared: Shared,
    task: JoinHandle<()>,
}

async fn hook(State(shared): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let at = Instant::now();
    match shared.answer.load(Ordering::SeqCst) {
        1 => StatusCode::INTERNAL_SERVER_ERROR,
        2 => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::OK
        }
        _ => {
            let delivery = Delivery {
                id: headers
                    .get("x-fieldlink-delivery")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: serde_json::from_str(&body).unwrap_or(Json::Null),
                at,
            };
            shared
                .deliveries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(delivery);
            StatusCode::OK
        }
    }
}

impl WebhookReceiver {
    /// Starts a receiver on 127.0.0.1, answering 200.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Shared::default();
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookReceiver {
            url: format!("http://{addr}/hook"),
            shared,
            task,
        })
    }

    /// Its URL, for a webhook channel.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        self.shared.answer.store(answer as u8, Ordering::SeqCst);
    }

    /// The requests accepted so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared
            .deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The bodies accepted so far.
    pub fn bodies(&self) -> Vec<Json> {
        self.deliveries().into_iter().map(|d| d.body).collect()
    }

    /// Waits (bounded by `limit`) until `done` holds for the bodies accepted, and returns
    /// them; panics naming `what` otherwise.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Json]) -> bool,
    ) -> Vec<Json> {
        let deadline = Instant::now() + limit;
        loop {
            let bodies = self.bodies();
            if done(&bodies) {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; received {bodies:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
