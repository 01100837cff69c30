//! Shared decisions are written once, as `async` code over a backend's statements; the
//! SQLite backend's statements are synchronous (rusqlite, on a blocking thread), so its
//! futures are ready at their first poll.

/// Runs a future that never waits (the SQLite backend's statements are synchronous) to its
/// end on the current thread, so the decisions written once as `async` serve SQLite too.
pub(crate) fn run_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        // A SQLite statement never yields: reaching this is a bug in this crate.
        std::task::Poll::Pending => unreachable!("a synchronous backend's future waited"),
    }
}
