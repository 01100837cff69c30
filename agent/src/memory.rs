//! Keeps the agent's resident memory to what it uses: few malloc arenas, and the heap
//! that start-up and running freed handed back to the operating system.
//!
//! Start-up is the agent's allocation peak: with 10,000 points, parsing the config (the
//! spanned TOML tree, the point list as it grows) and planning the reads take about 25 MB
//! of heap, of which about 5 MB stays in use. glibc keeps what was freed in its arenas,
//! resident, for reuse that never comes; on a gateway with little RAM that is memory the
//! agent holds for years for nothing.
//!
//! glibc also gives threads their own arenas, up to 8 per core, and memory freed in one
//! arena serves only that arena: two arenas (one per core of a typical gateway) measured
//! 2-3 MiB less at 10,000 points than the default (`fieldlink-bench footprint`).

/// How long after start the freed heap is first handed back: by then the read plans are
/// made and the first connections to the devices and the broker tried.
pub const START_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the heap that running freed is handed back. glibc returns only the top of
/// its heap by itself; the pages freed below it (batch buffers of varying size, a
/// reconnect's TLS state) stay resident: 1 MB of 3.6 at 10 x 100 points, growing for
/// minutes. A trim walks the free lists, microseconds for the agent's heap.
pub const TRIM_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// The most malloc arenas the agent's threads share.
const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES` set them; call first thing in `main`: arenas made before stay.
pub fn limit_arenas() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("arena_max") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers and sets the tunable under glibc's own arena lock,
    // so it is sound from any thread at any time; only its effect depends on timing.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns the free pages of every malloc arena to the OS (glibc's `malloc_trim`); does
/// nothing with other C libraries, which return freed memory on their own terms.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and walks glibc's own arenas under their locks;
    // it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands back the freed heap ([`release_freed`]) once start-up is over ([`START_UP`] after
/// the call) and then every [`TRIM_PERIOD`], until `stop` fires.
pub async fn release_unused(stop: tokio_util::sync::CancellationToken) {
    if stop
        .run_until_cancelled(tokio::time::sleep(START_UP))
        .await
        .is_none()
    {
        return;
    }
    let mut trim = tokio::time::interval(TRIM_PERIOD);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while stop.run_until_cancelled(trim.tick()).await.is_some() {
        release_freed();
    }
}
