//! The per-account password-check throttle, shared by sign-in
//! and `POST /v1/me/password`.
//!
//! Every password check first reserves its place in the store, atomically
//! ([`ThrottleStore::reserve_login_attempt`](crate::store::ThrottleStore::reserve_login_attempt)):
//! failures and checks in flight share the limit, so 20 concurrent wrong
//! passwords against a limit of 5 run 5 bcrypt verifications, not 20, and
//! one account or one token can never queue more than the limit of bcrypt
//! work. The same reservation guards every other limit kept in the store
//!: second-factor codes (`mfa.rs`), mails per address
//! ([`Core::per_address_limit`]), passkey ceremonies.
//!
//! A check in flight is not a failure (found in review: 16 simultaneous right
//! passwords of one account from one address got 429 with
//! `Retry-After: 900`). It holds a place only until it settles: a failure
//! turns the place into a failure counted for the window, a success gives
//! it back and clears the count, anything else gives it back. A check that
//! finds every place held by checks in flight (not by failures) waits up
//! to [`IN_FLIGHT_WAIT`] for one to free, then answers 429 with
//! `Retry-After: 1` ([`IN_FLIGHT_RETRY`]), never a whole window.
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
use crate::domain::UserId;

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

/// How long a check waits for a place held by checks in flight.
pub const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// `Retry-After` (seconds) when every place is held by a check in flight.
pub const IN_FLIGHT_RETRY: u64 = 1;

/// Reserved places of one check; see the module docs.
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
    /// A key was full of failures; retry after this many seconds. What
    /// was taken is kept in the attempt (the caller releases it or goes
    /// on with it).
    Full(Attempt, u64),
    /// A key's places stayed held by checks in flight (not failures)
    /// through [`IN_FLIGHT_WAIT`]; retry after this many seconds. Nothing
    /// is held.
    Busy(u64),
}

/// Why one round of reservations did not get every place.
enum Shortfall {
    /// Failures fill a key: a place frees in this many seconds.
    Failures(u64),
    /// Checks in flight hold the places of a key.
    InFlight,
}

impl Core {
    /// Reserves one check under each of `keys` (key, limit); see the
    /// module docs for the wait when checks in flight hold the places.
    pub(super) async fn reserve_attempt(&self, keys: &[(String, u32)]) -> Result<Reserved> {
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            let (attempt, shortfall) = self.reserve_once(keys).await?;
            match shortfall {
                None => return Ok(Reserved::Granted(attempt)),
                Some(Shortfall::Failures(retry)) => return Ok(Reserved::Full(attempt, retry)),
                Some(Shortfall::InFlight) => {
                    self.release_attempt(attempt).await;
                    if tokio::time::Instant::now() + pause > deadline {
                        return Ok(Reserved::Busy(IN_FLIGHT_RETRY));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
            }
        }
    }

    /// One round of [`Core::reserve_attempt`].
    async fn reserve_once(&self, keys: &[(String, u32)]) -> Result<(Attempt, Option<Shortfall>)> {
        let now = self.clock.now();
        let window = secs(FAILURE_WINDOW);
        let mut attempt = Attempt {
            held: Vec::new(),
            keys: keys.iter().map(|(k, _)| k.clone()).collect(),
        };
        let mut shortfall: Option<Shortfall> = None;
        for (key, limit) in keys {
            let reserved = match self
                .store
                .reserve_login_attempt(key, *limit, now, window)
                .await
            {
                Ok(Some(id)) => {
                    attempt.held.push((key.clone(), id));
                    continue;
                }
                Ok(None) => self.store.login_failures(key, now, window).await,
                Err(e) => Err(e),
            };
            let failures = match reserved {
                Ok(f) => f,
                Err(e) => {
                    self.release_attempt(attempt).await;
                    return Err(e.into());
                }
            };
            let limit = *limit as usize;
            let this = if failures.len() >= limit.max(1) {
                // A place frees when enough failures have left the window
                // to bring the count under the limit.
                let oldest = failures[failures.len() - limit.max(1)];
                Shortfall::Failures(u64::try_from(oldest + window - now).unwrap_or(1).max(1))
            } else {
                Shortfall::InFlight
            };
            shortfall = Some(match (shortfall, this) {
                (Some(Shortfall::Failures(a)), Shortfall::Failures(b)) => {
                    Shortfall::Failures(a.max(b))
                }
                (Some(Shortfall::Failures(a)), Shortfall::InFlight)
                | (_, Shortfall::Failures(a)) => Shortfall::Failures(a),
                (_, Shortfall::InFlight) => Shortfall::InFlight,
            });
        }
        Ok((attempt, shortfall))
    }

    /// The check succeeded: every count of its keys is forgotten and its
    /// places are given back (a success never counts as a failure).
    pub(super) async fn attempt_succeeded(&self, attempt: Attempt) -> Result<()> {
        for key in &attempt.keys {
            self.store.clear_login_failures(key).await?;
        }
        self.release_attempt(attempt).await;
        Ok(())
    }

    /// The check failed: each place taken becomes a failure, counted for
    /// the window.
    pub(super) async fn attempt_failed(&self, attempt: Attempt) -> Result<()> {
        let now = self.clock.now();
        let window = secs(FAILURE_WINDOW);
        for (key, id) in &attempt.held {
            self.store.fail_login_attempt(key, id, now, window).await?;
        }
        Ok(())
    }

    /// The check neither failed nor succeeded: give the places back. Best
    /// effort (a place not given back frees itself after
    /// [`RESERVATION_TTL`](crate::store::rules::RESERVATION_TTL)).
    pub(super) async fn release_attempt(&self, attempt: Attempt) {
        for (key, id) in &attempt.held {
            if let Err(e) = self.store.release_login_attempt(key, id).await {
                tracing::warn!(error = %e, "could not release a throttle reservation");
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
    pub(super) fn password_check_keys(&self, user_id: &UserId) -> Vec<(String, u32)> {
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

    /// Places held by checks in flight answer "retry in a second" after
    /// the wait, not a window; places turned into failures answer the
    /// window.
    #[tokio::test]
    async fn in_flight_is_not_a_window() {
        const START: i64 = 1_900_000_000;
        let dir = tempfile::tempdir().unwrap();
        let core = crate::service::test_core(dir.path(), START).await;
        let keys = [("k@example.com".to_string(), 2)];
        let mut held = Vec::new();
        for _ in 0..2 {
            let Reserved::Granted(a) = core.reserve_attempt(&keys).await.unwrap() else {
                panic!("a place was free")
            };
            held.push(a);
        }
        let waited = std::time::Instant::now();
        let Reserved::Busy(retry) = core.reserve_attempt(&keys).await.unwrap() else {
            panic!("every place is in flight")
        };
        assert_eq!(retry, IN_FLIGHT_RETRY);
        assert!(waited.elapsed() >= IN_FLIGHT_WAIT / 2);
        // A place that frees during the wait is taken.
        let first = held.remove(0);
        let waiting = core.reserve_attempt(&keys);
        let freeing = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            core.release_attempt(first).await;
        };
        let (got, ()) = tokio::join!(waiting, freeing);
        let Reserved::Granted(second) = got.unwrap() else {
            panic!("the freed place")
        };
        // Both fail: now the failures fill the key, for the window.
        core.clock.advance(10);
        core.attempt_failed(second).await.unwrap();
        core.attempt_failed(held.remove(0)).await.unwrap();
        let Reserved::Full(a, retry) = core.reserve_attempt(&keys).await.unwrap() else {
            panic!("full of failures")
        };
        core.release_attempt(a).await;
        assert_eq!(retry, secs(FAILURE_WINDOW) as u64);
        // They are on record; the places in flight never were.
        core.clock.advance(5);
        assert_eq!(
            core.store
                .login_failures("k@example.com", core.clock.now(), secs(FAILURE_WINDOW))
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
