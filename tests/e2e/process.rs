//! The real agent and the real platform as operating-system processes, so that a test can
//! SIGKILL them: `fieldlink-e2e-agent` and `fieldlink-e2e-platform`, binaries of this
//! package whose `main` is the one call the agent's `fieldlink` and the platform's
//! `fieldlink-platform` make (`fieldlink::cli::main()`, `fieldlink_platform::cli::main()`).
//! Cargo names only a package's own binaries to its tests (`CARGO_BIN_EXE_*`), so theirs
//! cannot be used from here; re-executing this test binary in a child mode would have
//! needed the same library entry points plus a fake test to enter them through libtest,
//! so the tiny binaries are the simpler of the two.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// A process of the product, killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves none behind.
pub struct Process {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `fieldlink-e2e-agent run --config CONFIG`, its log (info) in `log`.
    pub fn agent(config: &Path, log: PathBuf) -> Self {
        let args = [
            OsStr::new("run"),
            OsStr::new("--config"),
            config.as_os_str(),
        ];
        Self::start(
            "the agent",
            env!("CARGO_BIN_EXE_fieldlink-e2e-agent"),
            &args,
            &[],
            log,
        )
    }

    /// Starts `fieldlink-e2e-platform ARGS` with the environment `env` (its secrets), its
    /// log (info) in `log`.
    pub fn platform(args: &[&OsStr], env: &[(&str, &str)], log: PathBuf) -> Self {
        Self::start(
            "the platform",
            env!("CARGO_BIN_EXE_fieldlink-e2e-platform"),
            args,
            env,
            log,
        )
    }

    fn start(
        what: &'static str,
        binary: &str,
        args: &[&OsStr],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Self {
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .args(args)
            .env("FIELDLINK_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process { what, child, log }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// kill -9: SIGKILL, then waits (bounded) until it is gone.
    pub async fn kill(mut self) -> ExitStatus {
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("cannot SIGKILL {}: {e}", self.what));
        self.exit(Duration::from_secs(10)).await
    }

    /// A clean stop: SIGTERM, then waits (bounded) for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -s TERM");
        assert!(sent.success(), "kill -s TERM failed");
        self.exit(Duration::from_secs(40)).await
    }

    async fn exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the process") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}; its log ends:\n{}",
                self.what,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
