//! Abuse limits: per-IP request rates and per-account sign-in failures.
//!
//! Both live in this process's memory: with several replicas, each enforces
//! its own budget (documented in the README). Per-IP limits are switched off
//! by `PORTCULLIS_RATE_LIMIT=off`; the per-account failure count (which
//! triggers the CAPTCHA or throttling) always applies.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Which per-IP budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /v1/sessions`, `POST /v1/sessions/mfa`: burst 20, then 1 every 2 s.
    SignIn,
    /// `POST /v1/users`: burst 10, then 10 a minute.
    Register,
    /// `POST /v1/sessions/refresh`: burst 60, then 1 a second.
    Refresh,
    /// Password and email flows: burst 5, then 5 a minute.
    Email,
}

/// The window sign-in failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct Limits {
    enabled: bool,
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    register: DefaultKeyedRateLimiter<IpAddr>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    email: DefaultKeyedRateLimiter<IpAddr>,
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

fn quota(burst: u32, per: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limits {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            sign_in: RateLimiter::keyed(quota(20, Duration::from_secs(2))),
            register: RateLimiter::keyed(quota(10, Duration::from_secs(6))),
            refresh: RateLimiter::keyed(quota(60, Duration::from_secs(1))),
            email: RateLimiter::keyed(quota(5, Duration::from_secs(12))),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the IP's budget; `Err(seconds to wait)` when empty.
    pub fn check(&self, action: Action, ip: Option<IpAddr>) -> Result<(), u64> {
        let (true, Some(ip)) = (self.enabled, ip) else {
            return Ok(());
        };
        let limiter = match action {
            Action::SignIn => &self.sign_in,
            Action::Register => &self.register,
            Action::Refresh => &self.refresh,
            Action::Email => &self.email,
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Failed sign-ins of an account within the window; and the seconds
    /// until the oldest of them leaves it.
    pub fn failures(&self, account: &str, now: u64) -> (u32, u64) {
        let Ok(mut map) = self.failures.lock() else {
            return (0, 0);
        };
        let Some(q) = map.get_mut(account) else {
            return (0, 0);
        };
        let horizon = now.saturating_sub(FAILURE_WINDOW.as_secs());
        while q.front().is_some_and(|t| *t <= horizon) {
            q.pop_front();
        }
        let retry = q
            .front()
            .map_or(0, |t| (t + FAILURE_WINDOW.as_secs()).saturating_sub(now));
        (u32::try_from(q.len()).unwrap_or(u32::MAX), retry)
    }

    pub fn record_failure(&self, account: &str, now: u64) {
        if let Ok(mut map) = self.failures.lock() {
            let q = map.entry(account.to_string()).or_default();
            q.push_back(now);
            // Bound memory per account; only the count near the limit matters.
            while q.len() > 1000 {
                q.pop_front();
            }
        }
    }

    pub fn clear_failures(&self, account: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(account);
        }
    }

    /// Drops stale state (called periodically).
    pub fn housekeeping(&self, now: u64) {
        for l in [&self.sign_in, &self.register, &self.refresh, &self.email] {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Ok(mut map) = self.failures.lock() {
            let horizon = now.saturating_sub(FAILURE_WINDOW.as_secs());
            map.retain(|_, q| q.back().is_some_and(|t| *t > horizon));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_budget() {
        let l = Limits::new(true);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.check(Action::Register, Some(ip)).is_ok());
        }
        let wait = l.check(Action::Register, Some(ip)).unwrap_err();
        assert!((1..=6).contains(&wait), "{wait}");
        // Another address has its own budget.
        assert!(
            l.check(Action::Register, Some("10.0.0.2".parse().unwrap()))
                .is_ok()
        );
        // Off means off.
        let off = Limits::new(false);
        for _ in 0..100 {
            assert!(off.check(Action::Register, Some(ip)).is_ok());
        }
    }

    #[test]
    fn failures_slide_out_of_the_window() {
        let l = Limits::new(false);
        l.record_failure("a@x.org", 1000);
        l.record_failure("a@x.org", 1100);
        assert_eq!(l.failures("a@x.org", 1200), (2, 700));
        assert_eq!(l.failures("a@x.org", 1000 + 900).0, 1);
        assert_eq!(l.failures("a@x.org", 1100 + 900).0, 0);
        l.record_failure("b@x.org", 1000);
        l.clear_failures("b@x.org");
        assert_eq!(l.failures("b@x.org", 1001).0, 0);
    }
}
