//! Failed attempts per client address: after [`MAX_FAILURES`] failed logins or
//! enrollments from one address within [`WINDOW`], that address's further attempts are
//! refused (HTTP 429) until the oldest failure leaves the window. Successes never count,
//! so an integrator enrolling a hundred gateways is never slowed down.
//!
//! What it is for: a failed login costs an Argon2id hash (19 MiB, tens of ms of CPU), so
//! unauthenticated guessing is a cheap way to load the server; and token or password
//! guessing is slowed to a crawl. It lives in each instance's memory (an instance
//! protects its own CPU); the per-user lockout of logins is in the database and holds
//! across instances. Behind a load balancer every client has the balancer's address:
//! rate-limit at the balancer too.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures from one address that close it for the rest of the window.
pub const MAX_FAILURES: usize = 20;
/// The window over which failures are counted.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most; beyond, the one whose last failure is oldest is
/// forgotten (memory stays bounded whatever an attacker sends).
const MAX_ADDRESSES: usize = 10_000;

/// Failed attempts by client address.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailureLimiter {
    /// `Err(retry_after)` if `addr` has failed too often lately.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        self.check_at(addr, Instant::now())
    }

    /// Records a failed attempt from `addr`.
    pub fn failed(&self, addr: IpAddr) {
        self.failed_at(addr, Instant::now());
    }

    fn check_at(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        let Some(times) = failures.get_mut(&addr) else {
            return Ok(());
        };
        forget_expired(times, now);
        if times.len() < MAX_FAILURES {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err((oldest + WINDOW).saturating_duration_since(now))
    }

    fn failed_at(&self, addr: IpAddr, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&addr) {
            failures.retain(|_, times| {
                forget_expired(times, now);
                !times.is_empty()
            });
            if failures.len() >= MAX_ADDRESSES {
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(addr, _)| *addr);
                if let Some(stalest) = stalest {
                    failures.remove(&stalest);
                }
            }
        }
        let times = failures.entry(addr).or_default();
        forget_expired(times, now);
        times.push_back(now);
        if times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn forget_expired(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_closed_after_its_failures_and_reopens_when_they_age_out() {
        let limiter = FailureLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(limiter.check_at(a, t0), Ok(()), "failure {i}");
            limiter.failed_at(a, t0 + Duration::from_secs(i as u64));
        }
        let later = t0 + Duration::from_secs(60);
        let retry = limiter.check_at(a, later).unwrap_err();
        assert_eq!(retry, WINDOW - Duration::from_secs(60));
        assert_eq!(
            limiter.check_at(b, later),
            Ok(()),
            "other addresses are open"
        );
        assert_eq!(
            limiter.check_at(a, t0 + WINDOW + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let limiter = FailureLimiter::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            limiter.failed_at(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(limiter.lock().len() <= MAX_ADDRESSES);
    }
}
