//! Helpers for the workspace's end-to-end tests: the peers come from `fieldlink-testkit`;
//! this adds what needs the agent itself.

use fieldlink::config::AgentConfig;
use std::path::Path;

pub use fieldlink_testkit::*;

/// Parses an agent config written as TOML (panics with the errors if it is invalid),
/// with `state_dir` set to `state`.
pub fn agent_config(toml: &str, state: &Path) -> AgentConfig {
    let text = format!("{toml}\n");
    let mut config = fieldlink::config::parse(&text, "test.toml")
        .unwrap_or_else(|e| panic!("bad test config:\n{e}"));
    config.gateway.state_dir = state.to_owned();
    config
}
