//! The per-account password-check throttle (issue 9), shared by sign-in
//! and `POST /v1/me/password`.
//!
//! Every password check first reserves its place in the store, atomically
//! ([`ThrottleStore::reserve_login_attempt`](crate::store::ThrottleStore::reserve_login_attempt)):
//! in-flight checks count like failures, so 20 concurrent wrong passwords
//! against a limit of 5 run 5 bcrypt verifications, not 20, and one account
//! or one token can never queue more than the limit of bcrypt work.
//!
//! Sign-in failures are counted under two keys:
//! - the account *and the client's network* (IPv4 /24, IPv6 /64), limit
//!   `PORTCULLIS_LOGIN_MAX_FAILURES`: an attacker's failures lock out the
//!   attacker's network, not the owner signing in from elsewhere;
//! - the account alone, limit [`ACCOUNT_WIDE_FACTOR`] × that: guessing one
//!   account from many networks is still capped.
//!
//! Over either limit, sign-in needs a CAPTCHA (`on-failures`) or answers
//! 429 with `Retry-After` (`off`).

use std::net::IpAddr;

use super::{ClientInfo, Core, Error, Result};
use crate::auth::limits::FAILURE_WINDOW;
use crate::clock::secs;

/// The account-wide limit is this many times the per-network one.
pub const ACCOUNT_WIDE_FACTOR: u32 = 10;

/// The network a client address belongs to, as a throttle key part.
pub(crate) fn network_of(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(Some(IpAddr::V4(v4))),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

/// Reserved places of one password check; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Attempt {
    /// (throttle key, reservation id) for each place taken.
    held: Vec<(String, String)>,
    /// Every key the check counts under (held or not).
    keys: Vec<String>,
}

/// What a reservation found.
pub(super) enum Reserved {
    /// Every key had room.
    Granted(Attempt),
    /// A key was full; retry after this many seconds. What was taken is
    /// kept in the attempt (the caller releases it or goes on with it).
    Full(Attempt, u64),
}

impl Core {
    /// Reserves one check under each of `keys` (key, limit).
    pub(super) async fn reserve_attempt(&self, keys: &[(String, u32)]) -> Result<Reserved> {
        let now = self.clock.now();
        let window = secs(FAILURE_WINDOW);
        let mut attempt = Attempt {
            held: Vec::new(),
            keys: keys.iter().map(|(k, _)| k.clone()).collect(),
        };
        let mut full: Option<u64> = None;
        for (key, limit) in keys {
            match self
                .store
                .reserve_login_attempt(key, *limit, now, window)
                .await
            {
                Ok(Some(id)) => attempt.held.push((key.clone(), id)),
                Ok(None) => {
                    let failures = self.store.login_failures(key, now, window).await?;
                    let retry = failures.first().map_or(1, |oldest| {
                        u64::try_from(oldest + window - now).unwrap_or(1)
                    });
                    full = Some(full.unwrap_or(0).max(retry.max(1)));
                }
                Err(e) => {
                    self.release_attempt(attempt).await;
                    return Err(e.into());
                }
            }
        }
        Ok(match full {
            None => Reserved::Granted(attempt),
            Some(retry) => Reserved::Full(attempt, retry),
        })
    }

    /// The check succeeded: every count of its keys is forgotten.
    pub(super) async fn attempt_succeeded(&self, attempt: Attempt) -> Result<()> {
        for key in &attempt.keys {
            self.store.clear_login_failures(key).await?;
        }
        Ok(())
    }

    /// The check neither failed nor succeeded: give the places back. Best
    /// effort (a place not given back expires with the window).
    pub(super) async fn release_attempt(&self, attempt: Attempt) {
        for (key, id) in &attempt.held {
            if let Err(e) = self.store.release_login_attempt(key, id).await {
                tracing::warn!(error = %e, "could not release a sign-in reservation");
            }
        }
    }

    /// The throttle keys of a sign-in for `account` from `client`.
    pub(super) fn sign_in_keys(&self, account: &str, client: &ClientInfo) -> Vec<(String, u32)> {
        let limit = self.settings.limits.login_max_failures;
        vec![
            (format!("{account}|{}", network_of(client.ip)), limit),
            (
                account.to_string(),
                limit.saturating_mul(ACCOUNT_WIDE_FACTOR),
            ),
        ]
    }

    /// The throttle key of current-password checks of a signed-in user.
    pub(super) fn password_check_keys(&self, user_id: &str) -> Vec<(String, u32)> {
        vec![(
            format!("pwcheck|{user_id}"),
            self.settings.limits.login_max_failures,
        )]
    }

    /// A refusal by the throttle: logged, counted, and the error to return.
    pub(super) fn throttled(
        &self,
        what: &'static str,
        user_id: Option<&str>,
        account_hash: &str,
        client: &ClientInfo,
        retry_after: u64,
    ) -> Error {
        metrics::counter!("portcullis_rate_limited_total").increment(1);
        tracing::warn!(
            event = "rate_limited",
            what,
            user_id = user_id.unwrap_or(""),
            account = account_hash,
            client_ip = %client.ip.map(|i| i.to_string()).unwrap_or_default(),
            retry_after,
            "password checks throttled"
        );
        Error::RateLimited { retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert_eq!(network_of("203.0.113.9".parse().ok()), "203.0.113.0/24");
        assert_eq!(
            network_of("2001:db8:1:2:3:4:5:6".parse().ok()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            network_of("::ffff:198.51.100.7".parse().ok()),
            "198.51.100.0/24"
        );
        assert_eq!(network_of(None), "unknown");
    }
}
