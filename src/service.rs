//! The use cases of the service, independent of HTTP: register, sign in,
//! refresh, sign out, profile and password changes. The API layer parses
//! requests, calls these and maps the results.

use std::sync::Arc;

use secrecy::SecretString;

use crate::auth::limits::{Action, FAILURE_WINDOW};
use crate::auth::tokens::now_secs;
use crate::auth::{Captcha, Limits, PasswordHasher, TokenService};
use crate::config::CaptchaMode;
use crate::config::Settings;
use crate::domain::{DisplayName, Email, Password, PasswordPolicy, PasswordProblem};
use crate::error::{ApiError, FieldError};
use crate::store::{
    CredentialRecord, DynStore, OnceKey, ProfileUpdate, RotateOutcome, Rotation, SessionRecord,
    UserRecord,
};

/// A verified caller: the access token checked out and its session is live.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub sid: String,
    pub roles: Vec<String>,
    pub amr: Vec<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: UserRecord,
}

/// Where a request came from (stored with the session).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    Local,
    Others,
    Global,
}

/// New account input, as received.
pub struct Registration {
    pub email: String,
    pub password: SecretString,
    pub display_name: Option<String>,
    pub captcha: Option<String>,
}

/// The service core shared by all requests.
#[derive(Clone)]
pub struct Portcullis {
    pub settings: Arc<Settings>,
    pub store: DynStore,
    pub tokens: TokenService,
    pub hasher: PasswordHasher,
    pub policy: PasswordPolicy,
    pub limits: Arc<Limits>,
    pub captcha: Arc<Captcha>,
}

fn now_i64() -> i64 {
    i64::try_from(now_secs()).unwrap_or(i64::MAX)
}

fn password_error(field: &str, p: &PasswordProblem) -> FieldError {
    FieldError::new(field, p.code(), format!("Password {}", p.detail()))
}

impl Portcullis {
    /// Checks an access token and its session; the basis of every bearer route.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.tokens.verify_access(token)?;
        let session = self
            .store
            .session(&claims.sid)
            .await?
            .filter(|s| s.user_id == claims.sub && s.is_active(now_i64()));
        if session.is_none() {
            return Err(ApiError::TokenInvalid("token revoked"));
        }
        tracing::Span::current().record("user_id", claims.sub.as_str());
        Ok(Principal {
            user_id: claims.sub,
            sid: claims.sid,
            roles: claims.roles,
            amr: claims.amr,
        })
    }

    /// Creates an account.
    pub async fn register(
        &self,
        input: Registration,
        client: &ClientInfo,
    ) -> Result<UserRecord, ApiError> {
        self.rate_limit(Action::Register, client)?;
        if self.settings.captcha == CaptchaMode::Always {
            self.check_captcha(input.captcha.as_deref()).await?;
        }
        let mut errors = Vec::new();
        let email = Email::parse(&input.email)
            .map_err(|why| {
                errors.push(FieldError::new(
                    "email",
                    "invalid",
                    format!("Email address {why}"),
                ))
            })
            .ok();
        let display_name = match input.display_name.as_deref() {
            None => None,
            Some(raw) => DisplayName::parse(raw)
                .map_err(|why| {
                    errors.push(FieldError::new(
                        "display_name",
                        "invalid",
                        format!("Display name {why}"),
                    ))
                })
                .ok(),
        };
        let password = match Password::parse(input.password) {
            Ok(p) => {
                let mut context: Vec<&str> = Vec::new();
                if let Some(e) = &email {
                    context.push(e.as_str());
                    if let Some((local, _)) = e.as_str().split_once('@') {
                        context.push(local);
                    }
                }
                if let Some(n) = &display_name {
                    context.push(n.as_str());
                }
                match self.policy.check(&p, &context) {
                    Ok(()) => Some(p),
                    Err(problem) => {
                        errors.push(password_error("password", &problem));
                        None
                    }
                }
            }
            Err(problem) => {
                errors.push(password_error("password", &problem));
                None
            }
        };
        let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
            return Err(ApiError::Validation(errors));
        };
        // Cheap duplicate check first so a taken email costs no bcrypt; the
        // unique index still decides races.
        if self.store.user_by_email(email.as_str()).await?.is_some() {
            return Err(ApiError::Conflict(
                "An account with this email address already exists.",
            ));
        }
        let hash = self.hasher.hash(&password).await?;
        let now = now_i64();
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            email: email.as_str().to_string(),
            email_verified: false,
            display_name: display_name.map(DisplayName::into_inner),
            roles: vec!["user".to_string()],
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let credentials = CredentialRecord {
            password_hash: hash,
        };
        match self.store.create_user(&user, &credentials).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, event = "user.registered", "account created");
                metrics::counter!("portcullis_registrations_total").increment(1);
                Ok(user)
            }
            Err(crate::store::StoreError::Conflict) => Err(ApiError::Conflict(
                "An account with this email address already exists.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks credentials. Unknown email and wrong password look the same:
    /// same error, and the same bcrypt work (against a dummy hash).
    pub async fn check_credentials(
        &self,
        email: &str,
        password: SecretString,
    ) -> Result<UserRecord, ApiError> {
        let password = Password::for_verification(password);
        let user = match Email::parse(email) {
            Ok(e) => self.store.user_by_email(e.as_str()).await?,
            Err(_) => None,
        };
        let credentials = match &user {
            Some(u) => self.store.credentials(&u.id).await?,
            None => None,
        };
        let ok = self
            .hasher
            .verify(
                &password,
                credentials.as_ref().map(|c| c.password_hash.as_str()),
            )
            .await?;
        match user {
            Some(u) if ok => {
                if u.disabled {
                    return Err(ApiError::AccountDisabled);
                }
                Ok(u)
            }
            _ => Err(ApiError::InvalidCredentials),
        }
    }

    /// Takes one request from the client's per-IP budget.
    pub fn rate_limit(&self, action: Action, client: &ClientInfo) -> Result<(), ApiError> {
        self.limits
            .check(action, client.ip)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// Verifies a CAPTCHA solution and claims it, so it works once across
    /// every replica; a missing, wrong, expired or used one is
    /// `captcha-required`.
    pub async fn check_captcha(&self, solution: Option<&str>) -> Result<(), ApiError> {
        let Some(solution) = solution else {
            return Err(ApiError::CaptchaRequired);
        };
        let now = now_secs();
        let solved = self.captcha.verify(solution, now).map_err(|e| {
            tracing::info!(reason = %e, "captcha refused");
            ApiError::CaptchaRequired
        })?;
        let key = OnceKey::Captcha(solved.challenge);
        let expires = i64::try_from(solved.expires).unwrap_or(i64::MAX);
        if self.store.claim_once(&key, expires, now_i64()).await? {
            Ok(())
        } else {
            tracing::info!("captcha refused: solution already used");
            Err(ApiError::CaptchaRequired)
        }
    }

    /// Signs in with email and password: a new session and its first token pair.
    ///
    /// After `PORTCULLIS_LOGIN_MAX_FAILURES` failures for an account within
    /// 15 minutes, further attempts need a CAPTCHA (`on-failures`) or are
    /// refused with 429 until the window slides (`off`).
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        captcha: Option<&str>,
        client: ClientInfo,
    ) -> Result<IssuedTokens, ApiError> {
        self.rate_limit(Action::SignIn, &client)?;
        let account = Email::parse(email)
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|_| email.trim().to_lowercase());
        let now = now_i64();
        let window = i64::try_from(FAILURE_WINDOW.as_secs()).unwrap_or(i64::MAX);
        let failures = self.store.login_failures(&account, now, window).await?;
        let over = failures.len() >= self.settings.login_max_failures as usize;
        let retry_after = failures.first().map_or(1, |oldest| {
            u64::try_from(oldest + window - now).unwrap_or(1)
        });
        match self.settings.captcha {
            CaptchaMode::Always => self.check_captcha(captcha).await?,
            CaptchaMode::OnFailures if over => self.check_captcha(captcha).await?,
            CaptchaMode::Off if over => {
                return Err(ApiError::RateLimited {
                    retry_after: retry_after.max(1),
                });
            }
            _ => {}
        }
        let user = match self.check_credentials(email, password).await {
            Ok(u) => u,
            Err(ApiError::InvalidCredentials) => {
                self.store
                    .record_login_failure(&account, now, window)
                    .await?;
                metrics::counter!("portcullis_logins_total", "result" => "failure").increment(1);
                tracing::info!(event = "session.failed", "sign-in failed");
                return Err(ApiError::InvalidCredentials);
            }
            Err(e) => return Err(e),
        };
        if !failures.is_empty() {
            self.store.clear_login_failures(&account).await?;
        }
        let tokens = self
            .start_session(user, vec!["pwd".to_string()], client)
            .await?;
        tracing::info!(user_id = %tokens.user.id, event = "session.created", "signed in");
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(tokens)
    }

    /// Creates a session (refresh family) for an authenticated user.
    pub async fn start_session(
        &self,
        user: UserRecord,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<IssuedTokens, ApiError> {
        let now = now_i64();
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
            expires_at: now.saturating_add(self.refresh_ttl_secs()),
            revoked_at: None,
            user_agent: client.user_agent.map(|ua| ua.chars().take(256).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
        };
        self.store.create_session(&session).await?;
        self.issue_pair(user, &session)
    }

    fn refresh_ttl_secs(&self) -> i64 {
        i64::try_from(self.tokens.refresh_ttl.as_secs()).unwrap_or(i64::MAX)
    }

    /// Signs an access token and a refresh token for the session's current generation.
    fn issue_pair(
        &self,
        user: UserRecord,
        session: &SessionRecord,
    ) -> Result<IssuedTokens, ApiError> {
        let now = now_secs();
        let access_token =
            self.tokens
                .issue_access(&user.id, &session.id, &session.amr, &user.roles, now)?;
        let refresh_exp = u64::try_from(session.expires_at).unwrap_or(0);
        let refresh_token = self.tokens.issue_refresh(
            &user.id,
            &session.id,
            &session.current_jti,
            now,
            refresh_exp,
        )?;
        Ok(IssuedTokens {
            access_token,
            expires_in: self.tokens.access_ttl.as_secs(),
            refresh_token,
            user,
        })
    }

    /// Exchanges a refresh token for a new pair (rotation with reuse detection).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, ApiError> {
        self.rate_limit(Action::Refresh, client)?;
        let claims = self.tokens.verify_refresh(refresh_token)?;
        let now = now_i64();
        let new_jti = uuid::Uuid::new_v4().to_string();
        let grace = i64::try_from(self.settings.refresh_grace.as_secs()).unwrap_or(0);
        let rotation = Rotation {
            sid: &claims.sid,
            presented_jti: &claims.jti,
            new_jti: &new_jti,
            now,
            new_expires_at: now.saturating_add(self.refresh_ttl_secs()),
            grace_secs: grace,
        };
        let session = match self.store.rotate(&rotation).await? {
            RotateOutcome::Rotated(s) => s,
            RotateOutcome::Grace(s) => {
                tracing::info!(user_id = %s.user_id, sid = %s.id, event = "session.refresh_grace", "retired refresh token within grace window");
                s
            }
            RotateOutcome::Reused(s) => {
                metrics::counter!("portcullis_refresh_reuse_total").increment(1);
                tracing::warn!(user_id = %s.user_id, sid = %s.id, event = "session.refresh_reused", "refresh token reused: family revoked");
                return Err(ApiError::TokenInvalid(
                    "refresh token reused; session revoked",
                ));
            }
            RotateOutcome::Invalid => return Err(ApiError::TokenInvalid("token revoked")),
        };
        if session.user_id != claims.sub {
            return Err(ApiError::TokenInvalid("invalid claims"));
        }
        let user = match self.store.user_by_id(&session.user_id).await? {
            Some(u) if !u.disabled => u,
            Some(_) => {
                self.store
                    .revoke_session(&session.user_id, &session.id, now)
                    .await?;
                return Err(ApiError::TokenInvalid("account disabled"));
            }
            None => return Err(ApiError::TokenInvalid("unknown subject")),
        };
        self.issue_pair(user, &session)
    }

    /// Ends sessions of the caller.
    pub async fn logout(&self, who: &Principal, scope: LogoutScope) -> Result<(), ApiError> {
        let now = now_i64();
        match scope {
            LogoutScope::Local => {
                self.store
                    .revoke_session(&who.user_id, &who.sid, now)
                    .await?;
            }
            LogoutScope::Others => {
                self.store
                    .revoke_sessions_of(&who.user_id, Some(&who.sid), now)
                    .await?;
            }
            LogoutScope::Global => {
                self.store
                    .revoke_sessions_of(&who.user_id, None, now)
                    .await?;
            }
        }
        tracing::info!(user_id = %who.user_id, event = "session.revoked", scope = ?scope, "signed out");
        Ok(())
    }

    pub async fn sessions(&self, who: &Principal) -> Result<Vec<SessionRecord>, ApiError> {
        Ok(self.store.sessions_of(&who.user_id, now_i64()).await?)
    }

    pub async fn revoke_session(&self, who: &Principal, sid: &str) -> Result<(), ApiError> {
        if self
            .store
            .revoke_session(&who.user_id, sid, now_i64())
            .await?
        {
            tracing::info!(user_id = %who.user_id, sid, event = "session.revoked", "session ended");
            Ok(())
        } else {
            Err(ApiError::NotFound("Session"))
        }
    }

    pub async fn me(&self, who: &Principal) -> Result<UserRecord, ApiError> {
        self.store
            .user_by_id(&who.user_id)
            .await?
            .ok_or(ApiError::TokenInvalid("unknown subject"))
    }

    /// Updates profile fields; `display_name: Some(None)` clears it.
    pub async fn update_profile(
        &self,
        who: &Principal,
        display_name: Option<Option<String>>,
    ) -> Result<UserRecord, ApiError> {
        let display_name = match display_name {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => Some(Some(
                DisplayName::parse(&raw)
                    .map_err(|why| {
                        ApiError::Validation(vec![FieldError::new(
                            "display_name",
                            "invalid",
                            format!("Display name {why}"),
                        )])
                    })?
                    .into_inner(),
            )),
        };
        let update = ProfileUpdate { display_name };
        self.store
            .update_profile(&who.user_id, &update, now_i64())
            .await?
            .ok_or(ApiError::TokenInvalid("unknown subject"))
    }

    /// Changes the password after checking the current one; ends every
    /// other session of the user.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: SecretString,
        new: SecretString,
    ) -> Result<(), ApiError> {
        let user = self.me(who).await?;
        let new = Password::parse(new)
            .map_err(|p| ApiError::Validation(vec![password_error("new_password", &p)]))?;
        let mut context = vec![user.email.as_str()];
        if let Some(n) = &user.display_name {
            context.push(n.as_str());
        }
        self.policy
            .check(&new, &context)
            .map_err(|p| ApiError::Validation(vec![password_error("new_password", &p)]))?;
        let current = Password::for_verification(current);
        let credentials = self
            .store
            .credentials(&user.id)
            .await?
            .ok_or(ApiError::TokenInvalid("unknown subject"))?;
        if !self
            .hasher
            .verify(&current, Some(&credentials.password_hash))
            .await?
        {
            return Err(ApiError::WrongPassword);
        }
        let hash = self.hasher.hash(&new).await?;
        let now = now_i64();
        self.store.set_password_hash(&user.id, &hash, now).await?;
        let revoked = self
            .store
            .revoke_sessions_of(&user.id, Some(&who.sid), now)
            .await?;
        tracing::info!(user_id = %user.id, revoked, event = "password.changed", "password changed; other sessions revoked");
        Ok(())
    }
}
