//! The agent under test as a child process: the release `fieldlink` binary next to this
//! one, run with a generated config, so that its CPU time and memory are its own (read
//! from /proc/PID) and not mixed with the broker's, the devices' or the subscriber's.

use crate::measure::Process;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the agent gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `fieldlink run --config FILE`, stopped (SIGTERM) when dropped.
pub struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The process, for CPU and memory readings.
    pub process: Process,
}

/// The `fieldlink` binary built alongside this one (`target/release/fieldlink`).
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the bench binary")?;
    let path = exe.with_file_name("fieldlink");
    if !path.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release -p fieldlink`",
            path.display()
        );
    }
    Ok(path)
}

impl Agent {
    /// Writes the config that `config(state_dir)` returns into a temporary directory, which
    /// is also the agent's state directory, and starts the agent on it.
    pub fn start(config: impl FnOnce(&Path) -> String) -> anyhow::Result<Agent> {
        let binary = binary()?;
        let dir = tempfile::tempdir()?;
        let state = dir.path().join("state");
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, config(&state))?;
        let log = std::fs::File::create(dir.path().join("agent.log"))?;
        let child = Command::new(&binary)
            .arg("run")
            .arg("--config")
            .arg(&file)
            .env("FIELDLINK_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let process = Process { pid: child.id() };
        Ok(Agent {
            child: Some(child),
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
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Fails with the agent's log if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!("the agent exited ({status}):\n{}", self.log());
        }
        Ok(())
    }

    /// Stops the agent with SIGTERM (it flushes and says goodbye) and waits for it; kills
    /// it if it takes longer than 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        terminate(&child);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                bail!("the agent did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn terminate(child: &Child) {
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
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
