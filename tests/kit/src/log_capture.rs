//! The log lines a test's code writes, captured as the agent's readable format prints them
//! (no colours, no timestamps), for tests of what is logged and how often.

use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A shared buffer that a tracing fmt subscriber writes into.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs a subscriber (INFO and above) writing here, for the current thread until the
    /// guard drops; a current-thread runtime's tasks log here too.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        self.install_at(tracing::Level::INFO)
    }

    /// [`Self::install`], with `level` and above.
    pub fn install_at(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        // While a single dispatcher exists, tracing-core caches a log line's interest from
        // the subscriber of whichever thread reaches the line first: another test's thread,
        // with none, would switch it off here for the whole process. With a second one
        // alive, every line is asked of the current thread's subscriber.
        static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(level)
            .without_time()
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines containing `message`.
    pub fn lines_with(&self, message: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(message))
            .collect()
    }
}
