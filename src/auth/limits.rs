//! Per-IP request rates.
//!
//! A bucket is keyed by the client's IPv4 address, or by its IPv6 /64: one
//! subscriber or host is usually handed a whole /64, so keying by the full
//! IPv6 address would give each client 2^64 budgets (finding L1 of the
//! security probe: 26 addresses of one /64 were never limited). An
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a dual-stack socket) is the
//! IPv4 address it maps.
//!
//! The buckets live in this process's memory: with several replicas, each
//! enforces its own budget (documented in the README). They are switched
//! off by `PORTCULLIS_RATE_LIMIT=off`. Per-account sign-in failures (which
//! trigger the CAPTCHA or throttling) are counted in the store instead, so
//! every replica sees the same count.

use std::net::IpAddr;
use std::num::NonZeroU32;
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
    /// Passkey ceremony options (`POST /v1/me/passkeys/options`,
    /// `POST /v1/sessions/passkey/options`): burst 20, then 1 every 2 s.
    /// Each answer stores a ceremony, so this also bounds store writes.
    PasskeyOptions,
}

/// The window sign-in failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Per-IP token buckets, one per action.
pub struct Limits {
    enabled: bool,
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    register: DefaultKeyedRateLimiter<IpAddr>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    email: DefaultKeyedRateLimiter<IpAddr>,
    passkey_options: DefaultKeyedRateLimiter<IpAddr>,
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
    /// Limits at the documented rates; `enabled: false` lets everything through.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            sign_in: RateLimiter::keyed(quota(20, Duration::from_secs(2))),
            register: RateLimiter::keyed(quota(10, Duration::from_secs(6))),
            refresh: RateLimiter::keyed(quota(60, Duration::from_secs(1))),
            email: RateLimiter::keyed(quota(5, Duration::from_secs(12))),
            passkey_options: RateLimiter::keyed(quota(20, Duration::from_secs(2))),
        }
    }

    /// Takes one request from the budget of the IP's bucket (see the
    /// module docs); `Err(seconds to wait)` when empty.
    pub fn check(&self, action: Action, ip: Option<IpAddr>) -> Result<(), u64> {
        let (true, Some(ip)) = (self.enabled, ip) else {
            return Ok(());
        };
        let ip = bucket_of(ip);
        let limiter = match action {
            Action::SignIn => &self.sign_in,
            Action::Register => &self.register,
            Action::Refresh => &self.refresh,
            Action::Email => &self.email,
            Action::PasskeyOptions => &self.passkey_options,
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Drops stale state (called periodically).
    pub fn housekeeping(&self) {
        for l in [
            &self.sign_in,
            &self.register,
            &self.refresh,
            &self.email,
            &self.passkey_options,
        ] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The bucket key of a client address: an IPv4 address as it is, an IPv6
/// address with its interface identifier (the low 64 bits) cleared, an
/// IPv4-mapped IPv6 address as its IPv4 address.
pub fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
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
        // One IPv6 /64 is one bucket; the next /64 has its own.
        let in_64 = |n: u16| {
            Some(IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, 0, 0, n, n,
            )))
        };
        for n in 0..10 {
            assert!(l.check(Action::Register, in_64(n)).is_ok());
        }
        assert!(l.check(Action::Register, in_64(99)).is_err());
        assert!(
            l.check(Action::Register, Some("2001:db8:1:3::1".parse().unwrap()))
                .is_ok()
        );
        // An IPv4-mapped address shares the IPv4 address's bucket.
        assert!(
            l.check(Action::Register, Some("::ffff:10.0.0.1".parse().unwrap()))
                .is_err()
        );
        // Off means off.
        let off = Limits::new(false);
        for _ in 0..100 {
            assert!(off.check(Action::Register, Some(ip)).is_ok());
        }
    }

    #[test]
    fn buckets() {
        let b = |s: &str| bucket_of(s.parse().unwrap()).to_string();
        assert_eq!(b("203.0.113.9"), "203.0.113.9");
        assert_eq!(b("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(b("2001:db8:1:2::"), "2001:db8:1:2::");
        assert_eq!(b("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(b("::1"), "::");
    }
}
