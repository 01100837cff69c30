//! A site for end-to-end tests: the real platform in this process (embedded broker,
//! SQLite) with one enterprise, and one gateway enrolled through the HTTP API with the
//! agent's own enrollment code, its enrollment stored in a state directory for the real
//! agent process to run on.

use crate::process::Process;
use fieldlink::enroll;
use fieldlink_platform::api::GatewayDetail;
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::registry::{EnterpriseInput, TokenInput};
use fieldlink_platform::{BrokerConfig, Platform, PlatformConfig};
use fieldlink_testkit::PlatformClient;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The running platform and the enrolled gateway.
pub struct Site {
    /// The platform.
    pub platform: Platform,
    /// Stops the platform.
    pub shutdown: CancellationToken,
    /// The bureau's client of the API.
    pub bureau: PlatformClient,
    /// The enrolled gateway's id.
    pub gateway: String,
    /// The gateway's state directory, holding its enrollment.
    pub state: PathBuf,
}

impl Site {
    /// Starts the platform in `dir` with the admin token `bureau_token`, registers the
    /// enterprise whose credit code starts with `first17`, and enrolls a gateway named
    /// `gateway_name`.
    pub async fn start(dir: &Path, bureau_token: &str, first17: &str, gateway_name: &str) -> Site {
        let mut config = PlatformConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("platform"));
        config.broker = BrokerConfig::embedded("127.0.0.1:0".parse().unwrap());
        config.admin_token = Some(bureau_token.to_owned());
        std::fs::create_dir_all(&config.data_dir).expect("platform data dir");
        let shutdown = CancellationToken::new();
        let platform = Platform::start(config, shutdown.clone())
            .await
            .expect("the platform starts");
        let bureau = PlatformClient::new(format!("http://{}", platform.http_addr()))
            .with_token(bureau_token)
            .with_timeout(Duration::from_secs(10));
        let code = CreditCode::complete(first17)
            .expect("a completable credit code")
            .to_string();
        bureau
            .register_enterprise(&EnterpriseInput {
                credit_code: code.clone(),
                name: format!("武汉测试企业 {first17}"),
                industry: "auto-parts".to_owned(),
                district: "洪山区".to_owned(),
                in_program: false,
                ..Default::default()
            })
            .await
            .expect("the enterprise is registered");
        let token = bureau
            .issue_token(
                &code,
                &TokenInput {
                    max_gateways: Some(1),
                    expires_in_days: Some(1),
                },
            )
            .await
            .expect("a token")
            .token;
        let state = dir.join("gateway-state");
        let enrollment = enroll::request(bureau.base(), &token, gateway_name)
            .await
            .expect("enrollment succeeds");
        enroll::store(&state, &enrollment).expect("enrollment stored");
        Site {
            platform,
            shutdown,
            bureau,
            gateway: enrollment.gateway_id,
            state,
        }
    }

    /// The embedded broker's address (it has no ACL: a recorder may subscribe beside the
    /// ingest).
    pub fn broker(&self) -> SocketAddr {
        self.platform
            .public_mqtt_url()
            .strip_prefix("mqtt://")
            .and_then(|a| a.parse().ok())
            .expect("the embedded broker's mqtt://IP:PORT")
    }

    /// Stops the platform, within 20 s.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.platform.wait())
            .await
            .expect("the platform stops in time")
            .expect("the platform stops cleanly");
    }

    /// Polls the gateway's detail until `done` holds, for at most `limit`; the last
    /// answer. A timeout panics with `what`, `describe` of the answer and the end of the
    /// running agent's log.
    pub async fn wait_for_gateway(
        &self,
        limit: Duration,
        what: &str,
        agent: Option<&Process>,
        describe: impl Fn(&GatewayDetail) -> String,
        mut done: impl FnMut(&GatewayDetail) -> bool,
    ) -> GatewayDetail {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self
                .bureau
                .gateway(&self.gateway)
                .await
                .expect("the gateway's detail");
            if done(&answer) {
                return answer;
            }
            if Instant::now() >= deadline {
                let log = agent.map(Process::log_tail).unwrap_or_default();
                panic!(
                    "{what}: not within {limit:?}: {}\nthe agent's log ends:\n{log}",
                    describe(&answer)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
