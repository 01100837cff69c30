//! The agent under test as a child process: the release `fieldlink` binary next to this
//! one, run with a generated config, so that its CPU time and memory are its own (read
//! from /proc/PID) and not mixed with the broker's, the devices' or the subscriber's.

use crate::child::{Child, sibling_binary};
use crate::measure::Process;
use fieldlink_wire::Enrollment;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running `fieldlink run --config FILE`, stopped (SIGTERM) when dropped.
pub struct Agent {
    child: Child,
    dir: tempfile::TempDir,
    /// The process, for CPU and memory readings.
    pub process: Process,
}

/// The `fieldlink` binary built alongside this one (`target/release/fieldlink`).
pub fn binary() -> anyhow::Result<PathBuf> {
    sibling_binary("fieldlink")
}

impl Agent {
    /// Writes the config that `config(state_dir)` returns into a temporary directory, which
    /// is also the agent's state directory, and starts the agent on it.
    pub fn start(config: impl FnOnce(&Path) -> String) -> anyhow::Result<Agent> {
        Self::start_in(tempfile::tempdir()?, config)
    }

    /// Starts the agent as [`Agent::start`] does, enrolled: `enrollment` stored in its state
    /// directory as `fieldlink enroll` stores it.
    pub fn start_enrolled(
        enrollment: &Enrollment,
        config: impl FnOnce(&Path) -> String,
    ) -> anyhow::Result<Agent> {
        let dir = tempfile::tempdir()?;
        fieldlink::enroll::store(&dir.path().join("state"), enrollment)?;
        Self::start_in(dir, config)
    }

    fn start_in(
        dir: tempfile::TempDir,
        config: impl FnOnce(&Path) -> String,
    ) -> anyhow::Result<Agent> {
        let binary = binary()?;
        let state = dir.path().join("state");
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, config(&state))?;
        let mut command = Command::new(&binary);
        command
            .arg("run")
            .arg("--config")
            .arg(&file)
            .env("FIELDLINK_LOG", "warn");
        let child = Child::spawn("the agent", command, &dir.path().join("agent.log"))?;
        let process = child.process;
        Ok(Agent {
            child,
            dir,
            process,
        })
    }

    /// The agent's state directory (its outbox is `outbox.redb` in it).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The agent's log so far (warnings and errors).
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Fails with the agent's log if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.child.check_running()
    }

    /// Replaces its config file with `config` and sends SIGHUP: the agent applies the new
    /// devices and keeps running.
    pub fn reload(&self, config: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("agent.toml"), config)?;
        self.child.hang_up();
        Ok(())
    }

    /// Stops the agent with SIGTERM (it flushes and says goodbye) and waits for it; kills
    /// it if it takes longer than 30 s.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_keeping_state().await.map(drop)
    }

    /// Stops the agent as [`Agent::stop`] does and hands over its directory, state
    /// included, to read once it has exited (deleted when the value drops).
    pub async fn stop_keeping_state(self) -> anyhow::Result<tempfile::TempDir> {
        self.child.stop().await?;
        Ok(self.dir)
    }
}

/// `[[device]]` tables of simulator devices: `devices` devices named `sim-NNNN`, each with
/// `points` points cycling through the five signals, sampled every `poll`.
pub fn simulator_devices(devices: usize, points: usize, poll: &str) -> String {
    const SIGNALS: [&str; 5] = ["sine", "random-walk", "counter", "toggle", "ramp"];
    let mut text = String::new();
    for d in 0..devices {
        text.push_str(&format!(
            "\n[[device]]\nname = \"sim-{d:04}\"\nprotocol = \"simulator\"\npoll = \"{poll}\"\n"
        ));
        for p in 0..points {
            text.push_str(&format!(
                "[[device.point]]\nname = \"point_{p:04}\"\nsignal = \"{}\"\n",
                SIGNALS[p % SIGNALS.len()]
            ));
        }
    }
    text
}

/// The samples per second that `devices` x `points` points offer at `poll` ("4ms", "1s").
pub fn offered_rate(devices: usize, points: usize, poll: &str) -> f64 {
    let seconds = if let Some(ms) = poll.strip_suffix("ms") {
        ms.trim().parse::<f64>().map_or(f64::NAN, |ms| ms / 1000.0)
    } else if let Some(s) = poll.strip_suffix('s') {
        s.trim().parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    };
    (devices * points) as f64 / seconds
}
