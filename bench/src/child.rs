//! Programs under test as child processes: the release binaries built next to the bench
//! (`target/release/NAME`), each with its stderr in a log file, its CPU time and memory
//! read from /proc/PID, and stopped with SIGTERM (then SIGKILL) on every path, dropping
//! included.

use crate::measure::Process;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a child gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary of the workspace package `package` (same name), built alongside this one
/// (`target/release/PACKAGE`).
pub fn sibling_binary(package: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the bench binary")?;
    let path = exe.with_file_name(package);
    if !path.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release -p {package}` \
             (in a command of its own: built together with the bench, the features of \
             their shared dependencies are unified)",
            path.display()
        );
    }
    Ok(path)
}

/// A running child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Child {
    name: String,
    child: Option<std::process::Child>,
    log: PathBuf,
    /// The process, for CPU and memory readings.
    pub process: Process,
}

impl Child {
    /// Starts `command` as `name` (for messages), stdin and stdout null, stderr into the
    /// file `log`.
    pub fn spawn(
        name: impl Into<String>,
        mut command: Command,
        log: &Path,
    ) -> anyhow::Result<Child> {
        let name = name.into();
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let process = Process { pid: child.id() };
        Ok(Child {
            name,
            child: Some(child),
            log: log.to_owned(),
            process,
        })
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with its log if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!("{} exited ({status}):\n{}", self.name, self.log());
        }
        Ok(())
    }

    /// Sends it SIGHUP (the agent reads its config file again).
    pub fn hang_up(&self) {
        if let Some(child) = &self.child {
            signal(child, rustix::process::Signal::HUP);
        }
    }

    /// Stops it with SIGTERM (so it shuts down in order) and waits for it; kills it if it
    /// takes longer than 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(&child, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                bail!(
                    "{} did not stop within {STOP_TIMEOUT:?} of SIGTERM (killed); its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, rustix::process::Signal::TERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
