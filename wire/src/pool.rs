//! Reusable encoding state shared by all threads: as many items as encodings ever ran at
//! once, not one per thread. The agent encodes on tokio's blocking threads, several of
//! which live at a time though its outbox encodes one batch at a time; a zstd context with
//! the packed dictionary is a few hundred kilobytes, and the scratch buffers up to a
//! megabyte each, so per-thread copies were most of what packed payloads cost in memory.

use std::sync::Mutex;

/// Items taken for one use and given back after it.
pub(crate) struct Pool<T> {
    idle: Mutex<Vec<T>>,
}

impl<T> Pool<T> {
    /// An empty pool.
    pub(crate) const fn new() -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `use_item` on an idle item, or on a new one from `make` if none is idle, and
    /// gives the item back afterwards (also when `use_item` panics: it is then dropped).
    pub(crate) fn with<R>(
        &self,
        make: impl FnOnce() -> T,
        use_item: impl FnOnce(&mut T) -> R,
    ) -> R {
        let idle = self.take();
        let mut item = idle.unwrap_or_else(make);
        let result = use_item(&mut item);
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(item);
        result
    }

    fn take(&self) -> Option<T> {
        // The lock is held only to pop or push: a panic cannot leave the list half-changed.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn sequential_uses_share_one_item_and_concurrent_ones_get_their_own() {
        static POOL: Pool<u32> = Pool::new();
        let made = AtomicUsize::new(0);
        let make = || {
            made.fetch_add(1, Ordering::SeqCst);
            0
        };
        for _ in 0..10 {
            POOL.with(make, |n| *n += 1);
        }
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(POOL.with(make, |n| *n), 10);
        // Nested, as two threads at once would be: the inner use cannot take the busy item.
        POOL.with(make, |outer| POOL.with(make, |inner| *outer += *inner + 1));
        assert_eq!(made.load(Ordering::SeqCst), 2);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| POOL.with(make, |n| *n += 1));
            }
        });
        assert!(made.load(Ordering::SeqCst) <= 6);
    }
}
