//! Sessions: bearer checks, sign-in, refresh rotation, sign-out, listing.

use secrecy::SecretString;

use super::throttle::Reserved;
use super::{
    Account, BearerToken, ClientInfo, Core, Error, IssuedTokens, Principal, Result, SessionSummary,
    SignIn,
};
use crate::audit::{AuditEvent, Suspicion};
use crate::auth::limits::{Action, FAILURE_WINDOW};
use crate::auth::tokens::AccessExtras;
use crate::clock::secs;
use crate::config::CaptchaMode;
use crate::domain::{Email, Password};
use crate::store::{CredentialRecord, RotateOutcome, Rotation, SessionRecord, UserRecord};

/// The client address for a log line (empty when unknown).
pub(super) fn ip_text(client: &ClientInfo) -> String {
    client.ip.map(|ip| ip.to_string()).unwrap_or_default()
}

/// The role that opens the admin API.
pub const ADMIN_ROLE: &str = "admin";

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The caller's session only.
    Local,
    /// Every session of the user but the caller's.
    Others,
    /// Every session of the user.
    Global,
}

impl Core {
    /// Checks an access token and its session; the basis of every bearer route.
    ///
    /// The token's signature is checked once per token (see
    /// [`crate::auth::token_cache`]: claims, key, issuer, audience and
    /// lifetime are checked again on every request); the session is read on
    /// every request (from memory on the embedded store, which invalidates
    /// it with every session write), so a revocation holds at once.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let token = self.verify_bearer(token)?;
        let now = self.clock.now();
        let c = &token.claims;
        if !self.store.session_live(&c.sid, &c.sub, now).await? {
            return Err(Error::TokenInvalid("token revoked"));
        }
        Ok(token.principal())
    }

    /// Checks an access token's signature and claims, not its session: the
    /// first half of [`Core::authenticate`], for routes that check the
    /// session together with what they read (`GET /v1/me`, see
    /// [`Core::me_checked`]).
    pub fn verify_bearer(&self, token: &str) -> Result<BearerToken> {
        let claims =
            self.verified_tokens
                .verify_access(&self.tokens, token, self.clock.now_u64())?;
        // DPoP: the binding is checked on every request, cache or not.
        self.check_sender(&claims)?;
        tracing::Span::current().record("user_id", claims.sub.as_str());
        Ok(BearerToken { claims })
    }

    /// The caller's account, after checking that the token's session is
    /// live, in one store read (one read transaction on the embedded store,
    /// one round trip's wait on MongoDB).
    pub async fn me_checked(&self, token: &BearerToken) -> Result<Account> {
        let c = &token.claims;
        let (live, user) = self
            .store
            .live_session_user(&c.sid, &c.sub, self.clock.now())
            .await?;
        if !live {
            return Err(Error::TokenInvalid("token revoked"));
        }
        user.map(|u| self.to_account(u))
            .ok_or(Error::TokenInvalid("unknown subject"))
    }

    /// Like [`Core::authenticate`], and the account must hold the `admin`
    /// role now (read from the store, so a demotion takes effect at once).
    pub async fn authenticate_admin(&self, token: &str) -> Result<Principal> {
        let who = self.authenticate(token).await?;
        let is_admin = self
            .store
            .user_by_id(&who.user_id)
            .await?
            .is_some_and(|u| !u.disabled && u.roles.iter().any(|r| r == ADMIN_ROLE));
        if !is_admin {
            return Err(Error::Forbidden("this route needs the admin role"));
        }
        Ok(who)
    }

    /// Checks credentials. Unknown email and wrong password look the same:
    /// same error, and the same bcrypt work (against a dummy hash).
    async fn check_credentials(
        &self,
        email: Option<&Email>,
        password: SecretString,
    ) -> Result<UserRecord> {
        let password = Password::for_verification(password);
        let user = match email {
            Some(e) => self.user_by_email(e).await?,
            None => None,
        };
        let credentials = match &user {
            Some(u) => self.store.credentials(&u.id).await?,
            None => None,
        };
        let ok = self
            .verify_password(&password, credentials.as_ref())
            .await?;
        match user {
            Some(u) if ok => {
                if u.disabled {
                    return Err(Error::AccountDisabled);
                }
                if credentials.as_ref().is_some_and(|c| c.legacy_bcrypt) {
                    self.upgrade_legacy_hash(&u.id, &password).await?;
                }
                Ok(u)
            }
            _ => Err(Error::InvalidCredentials),
        }
    }

    /// Checks a password against stored credentials: the peppered scheme,
    /// or, for an imported hash, plain bcrypt of the raw password. No
    /// credentials (unknown account) costs the same bcrypt work against the
    /// dummy hash.
    pub(super) async fn verify_password(
        &self,
        password: &Password,
        credentials: Option<&CredentialRecord>,
    ) -> Result<bool> {
        Ok(match credentials {
            // An imported account without a hash has no password yet: it
            // costs what an unknown account costs.
            Some(c) if c.password_hash.is_empty() => self.hasher.verify(password, None).await?,
            Some(c) if c.legacy_bcrypt => {
                self.hasher
                    .verify_legacy(password, &c.password_hash)
                    .await?
            }
            Some(c) => self.hasher.verify(password, Some(&c.password_hash)).await?,
            None => self.hasher.verify(password, None).await?,
        })
    }

    /// Replaces an imported hash, just verified with `password`, by a
    /// peppered one: from now on the account verifies like any other.
    async fn upgrade_legacy_hash(&self, user_id: &str, password: &Password) -> Result<()> {
        let hash = self.hasher.hash(password).await?;
        self.store
            .set_password_hash(user_id, &hash, self.clock.now())
            .await?;
        tracing::info!(
            user_id,
            event = "password.rehashed",
            "imported password hash upgraded to the peppered scheme"
        );
        Ok(())
    }

    /// Signs in with email and password: a new session and its first token
    /// pair, or, when the account has two-factor sign-in on, no session yet
    /// and an `mfa+jwt` token for `POST /v1/sessions/mfa`.
    ///
    /// Each attempt first reserves its place in the throttle (see
    /// `service::throttle`): after `PORTCULLIS_LOGIN_MAX_FAILURES` failures
    /// (or attempts in flight) for an account from one network within 15
    /// minutes, or ten times that from anywhere, further attempts need a
    /// CAPTCHA (`on-failures`) or are refused with 429 until the window
    /// slides (`off`).
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        captcha: Option<&str>,
        client: ClientInfo,
    ) -> Result<SignIn> {
        if let Err(e) = self.rate_limit(Action::SignIn, &client) {
            self.log_refusal("sign_in", None, None, &client, &e);
            return Err(e);
        }
        let parsed = Email::parse(email).ok();
        let account = parsed
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|| email.trim().to_lowercase());
        let pseudonym = self.hasher.pseudonym(&account);
        let keys = self.sign_in_keys(&account, &client);
        let captcha_first = self.settings.limits.captcha == CaptchaMode::Always;
        if captcha_first && let Err(e) = self.check_captcha_audited(captcha, &client).await {
            self.log_refusal("sign_in", None, Some(&pseudonym), &client, &e);
            return Err(e);
        }
        // The attempt is reserved before bcrypt runs: racing
        // guesses cannot all pass the count.
        let attempt = match self.reserve_attempt(&keys).await? {
            Reserved::Granted(a) => a,
            // Checks in flight hold the places (not failures): no CAPTCHA
            // would help, a place frees within a second.
            Reserved::Busy(retry_after) => {
                metrics::counter!("portcullis_logins_total", "result" => "throttled").increment(1);
                return Err(self.throttled("sign_in", None, &pseudonym, &client, retry_after));
            }
            Reserved::Full(a, retry_after) => match self.settings.limits.captcha {
                CaptchaMode::Off => {
                    self.release_attempt(a).await;
                    metrics::counter!("portcullis_logins_total", "result" => "throttled")
                        .increment(1);
                    let refused = self.throttled("sign_in", None, &pseudonym, &client, retry_after);
                    self.audit(AuditEvent::RateLimited { action: "sign_in" }, None, &client);
                    return Err(refused);
                }
                CaptchaMode::OnFailures => match self.check_captcha_audited(captcha, &client).await
                {
                    Ok(()) => a,
                    Err(e) => {
                        self.release_attempt(a).await;
                        self.log_refusal("sign_in", None, Some(&pseudonym), &client, &e);
                        return Err(e);
                    }
                },
                CaptchaMode::Always => a,
            },
        };
        let user = match self.check_credentials(parsed.as_ref(), password).await {
            Ok(u) => u,
            Err(Error::InvalidCredentials) => {
                // The reservation becomes the failure's record.
                self.attempt_failed(attempt).await?;
                metrics::counter!("portcullis_logins_total", "result" => "failure").increment(1);
                tracing::warn!(
                    event = "login.failed",
                    account = %pseudonym,
                    client_ip = %ip_text(&client),
                    "sign-in failed: wrong email or password"
                );
                let now = self.clock.now();
                let failures = self
                    .store
                    .login_failures(&account, now, secs(FAILURE_WINDOW))
                    .await
                    .map(|f| f.len())
                    .ok();
                self.sign_in_failed(&account, "invalid_credentials", failures, &client)
                    .await;
                return Err(Error::InvalidCredentials);
            }
            Err(e) => {
                self.release_attempt(attempt).await;
                if matches!(e, Error::AccountDisabled) {
                    tracing::warn!(event = "login.refused", account = %pseudonym, client_ip = %ip_text(&client), "sign-in refused: account disabled");
                    self.sign_in_failed(&account, "account_disabled", None, &client)
                        .await;
                }
                return Err(e);
            }
        };
        self.attempt_succeeded(attempt).await?;
        // Only after the password checked out: no oracle for strangers.
        self.require_verified_email(&user)?;
        // Two-factor sign-in (service/mfa.rs): no session before the code.
        if let Some(challenge) = self.mfa_challenge(&user).await? {
            return Ok(SignIn::MfaRequired(challenge));
        }
        let tokens = self
            .start_session(user, vec!["pwd".to_string()], client.clone())
            .await?;
        tracing::info!(user_id = %tokens.account.id, client_ip = %ip_text(&client), "signed in");
        self.signed_in(&tokens.account, &tokens.session_id, &client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(SignIn::Tokens(Box::new(tokens)))
    }

    /// Creates a session (refresh family) for an authenticated user. Every
    /// caller has just checked a proof (password, second factor, passkey),
    /// so the session starts proven: the step-up window opens now.
    pub(super) async fn start_session(
        &self,
        user: UserRecord,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        self.start_session_with(user, amr, None, client).await
    }

    /// [`Core::start_session`] for a sign-in through the upstream identity
    /// provider `idp` (kept on the session: every access token of it says so).
    pub(super) async fn start_session_with(
        &self,
        user: UserRecord,
        amr: Vec<String>,
        idp: Option<String>,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        // The DPoP binding seam (service::dpop): the request's proof key.
        let dpop_jkt = self.request_dpop_jkt()?;
        let now = self.clock.now();
        let session = SessionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.clone(),
            current_jti: uuid::Uuid::new_v4().to_string(),
            previous_jti: None,
            rotated_at: now,
            generation: 0,
            amr,
            created_at: now,
            last_used_at: now,
            expires_at: now.saturating_add(secs(self.tokens.refresh_ttl)),
            revoked_at: None,
            user_agent: client.user_agent.map(|ua| ua.chars().take(256).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
            proven_at: Some(now),
            idp,
            client_id: None,
            audience: None,
            scope: None,
            dpop_jkt,
        };
        self.store.create_session(&session).await?;
        self.enforce_session_cap(&session.user_id).await?;
        self.issue_pair(self.to_account(user), &session)
    }

    /// Signs an access token and a refresh token for the session's current generation.
    pub(super) fn issue_pair(
        &self,
        account: Account,
        session: &SessionRecord,
    ) -> Result<IssuedTokens> {
        let now = self.clock.now_u64();
        let jkt = session.dpop_jkt.as_deref();
        let access_token = self.tokens.issue_access_with(
            &account.id,
            &session.id,
            &session.amr,
            &account.roles,
            u64::try_from(session.created_at).unwrap_or(0),
            now,
            AccessExtras {
                is_anonymous: account.is_anonymous,
                idp: session.idp.as_deref(),
                // A session of an OAuth client: its audience and client id.
                client: session
                    .audience
                    .as_deref()
                    .zip(session.client_id.as_deref()),
                jkt,
            },
        )?;
        let refresh_exp = u64::try_from(session.expires_at).unwrap_or(0);
        let refresh_token = self.tokens.issue_refresh_bound(
            &account.id,
            &session.id,
            &session.current_jti,
            now,
            refresh_exp,
            jkt,
        )?;
        Ok(IssuedTokens {
            access_token,
            expires_in: self.tokens.access_ttl.as_secs(),
            refresh_token,
            account,
            session_id: session.id.clone(),
            dpop_jkt: session.dpop_jkt.clone(),
        })
    }

    /// Exchanges a refresh token for a new pair (rotation with reuse detection).
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<IssuedTokens> {
        self.rate_limit(Action::Refresh, client)?;
        let claims = self
            .tokens
            .verify_refresh(refresh_token, self.clock.now_u64())?;
        // DPoP, before the rotation: without a proof by the session's key
        // the request is refused and the family goes on (service::dpop).
        let proof = self.request_dpop_jkt()?;
        let bound = claims.cnf.as_ref().map(|c| c.jkt.as_str());
        self.check_refresh_sender(&claims.sub, &claims.sid, bound, proof.as_deref())
            .await?;
        let now = self.clock.now();
        let new_jti = uuid::Uuid::new_v4().to_string();
        let rotation = Rotation {
            sid: &claims.sid,
            presented_jti: &claims.jti,
            new_jti: &new_jti,
            now,
            new_expires_at: now.saturating_add(secs(self.tokens.refresh_ttl)),
            grace_secs: secs(self.settings.tokens.refresh_grace),
        };
        let session = match self.store.rotate(&rotation).await? {
            // What is stored: service::refresh_audit (PORTCULLIS_AUDIT_REFRESH).
            RotateOutcome::Rotated(s) => {
                self.audit_refresh(&s, claims.iat, false, client);
                s
            }
            RotateOutcome::Grace(s) => {
                self.audit_refresh(&s, claims.iat, true, client);
                s
            }
            RotateOutcome::Reused(s) => {
                metrics::counter!("portcullis_refresh_reuse_total").increment(1);
                let event = AuditEvent::TokenReuseDetected { sid: s.id.clone() };
                self.audit(event, Some(&s.user_id), client);
                let rule = Suspicion::TokenReuse { sid: s.id.clone() };
                self.audit(AuditEvent::Suspicious(rule), Some(&s.user_id), client);
                return Err(Error::TokenInvalid("refresh token reused; session revoked"));
            }
            RotateOutcome::Invalid => return Err(Error::TokenInvalid("token revoked")),
        };
        if session.user_id != claims.sub {
            return Err(Error::TokenInvalid("invalid claims"));
        }
        // A bind that raced this refresh (or lost to another key).
        if session.dpop_jkt.is_some() && session.dpop_jkt != proof {
            return Err(Error::DpopBinding(
                "the proof is not by the key this session is bound to",
            ));
        }
        let user = match self.store.user_by_id(&session.user_id).await? {
            Some(u) if !u.disabled => u,
            Some(_) => {
                self.store
                    .revoke_session(&session.user_id, &session.id, now)
                    .await?;
                return Err(Error::TokenInvalid("account disabled"));
            }
            None => return Err(Error::TokenInvalid("unknown subject")),
        };
        if user.anonymous {
            // A guest in use is kept (see `Core::purge_anonymous`).
            self.store.touch_anonymous(&user.id, now).await?;
        }
        self.issue_pair(self.to_account(user), &session)
    }

    /// Ends sessions of the caller.
    pub async fn logout(
        &self,
        who: &Principal,
        scope: LogoutScope,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.clock.now();
        let (name, revoked) = match scope {
            LogoutScope::Local => {
                let ended = self
                    .store
                    .revoke_session(&who.user_id, &who.sid, now)
                    .await?;
                ("local", u64::from(ended))
            }
            LogoutScope::Others => {
                let n = self
                    .store
                    .revoke_sessions_of(&who.user_id, Some(&who.sid), now)
                    .await?;
                ("others", n)
            }
            LogoutScope::Global => {
                let n = self
                    .store
                    .revoke_sessions_of(&who.user_id, None, now)
                    .await?;
                ("global", n)
            }
        };
        let event = AuditEvent::Logout {
            scope: name,
            revoked,
        };
        self.audit(event, Some(&who.user_id), client);
        Ok(())
    }

    /// The caller's active sessions, newest first.
    pub async fn sessions(&self, who: &Principal) -> Result<Vec<SessionSummary>> {
        Ok(self
            .store
            .sessions_of(&who.user_id, self.clock.now())
            .await?
            .into_iter()
            .map(|s| SessionSummary::new(s, &who.sid))
            .collect())
    }

    /// Ends one of the caller's sessions; `NotFound` when it is not theirs.
    pub async fn revoke_session(
        &self,
        who: &Principal,
        sid: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        if self
            .store
            .revoke_session(&who.user_id, sid, self.clock.now())
            .await?
        {
            let event = AuditEvent::Logout {
                scope: "session",
                revoked: 1,
            };
            self.audit(event, Some(&who.user_id), client);
            Ok(())
        } else {
            Err(Error::NotFound("Session"))
        }
    }
}
