//! After a failed sign-in: `login.failed` and the detection rules (failed
//! sign-ins of one account, credential stuffing from one address).

use std::net::IpAddr;

use sha2::Digest;

use super::{AccountDigest, STUFFING_MAX_IPS};
use crate::audit::{AuditEvent, Suspicion};
use crate::clock::secs;
use crate::service::{ClientInfo, Core};

impl Core {
    /// After a failed sign-in of `account` (the normalized email as typed):
    /// records `login.failed` (with the user id when the account exists)
    /// and runs the per-account and per-IP rules. `failures` counts this
    /// one.
    pub(in crate::service) async fn sign_in_failed(
        &self,
        account: &str,
        reason: &'static str,
        failures: Option<usize>,
        client: &ClientInfo,
    ) {
        let user_id = match self.store.user_by_email(account).await {
            Ok(u) => u.map(|u| u.id),
            Err(_) => None,
        };
        self.audit(
            AuditEvent::LoginFailed { reason },
            user_id.as_deref(),
            client,
        );
        let s = &self.settings.security;
        if let Some(count) = failures
            && count == s.detect_account_failures as usize
        {
            self.audit(
                AuditEvent::Suspicious(Suspicion::FailedLogins {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                }),
                user_id.as_deref(),
                client,
            );
        }
        if let Some(ip) = client.ip
            && let Some(accounts) = self.stuffing_crossed(ip, account)
        {
            self.audit(
                AuditEvent::Suspicious(Suspicion::CredentialStuffing { accounts }),
                None,
                client,
            );
        }
    }

    /// Notes a failure of `account` from `ip`; `Some(count)` exactly when
    /// the distinct accounts of the IP within the window reach the
    /// threshold (once per crossing).
    fn stuffing_crossed(&self, ip: IpAddr, account: &str) -> Option<u32> {
        let s = &self.settings.security;
        let now = self.clock.now();
        let since = now - secs(s.detect_stuffing_window);
        let threshold = s.detect_stuffing_accounts as usize;
        let mut map = self.security.stuffing.lock().ok()?;
        if map.len() >= STUFFING_MAX_IPS {
            map.retain(|_, seen| seen.iter().any(|(_, t)| *t > since));
            if map.len() >= STUFFING_MAX_IPS {
                map.clear();
            }
        }
        let account: AccountDigest = sha2::Sha256::digest(account.as_bytes()).into();
        let seen = map.entry(ip).or_default();
        seen.retain(|(_, t)| *t > since);
        if let Some(entry) = seen.iter_mut().find(|(a, _)| *a == account) {
            entry.1 = now;
            return None;
        }
        seen.push((account, now));
        // Keep the list short: only the count near the threshold matters.
        if seen.len() > threshold.saturating_mul(2) {
            seen.remove(0);
        }
        (seen.len() == threshold).then(|| u32::try_from(threshold).unwrap_or(u32::MAX))
    }
}
