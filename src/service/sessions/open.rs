//! Opening a session and issuing its token pair (every way of signing in
//! ends here).

use crate::auth::tokens::AccessExtras;
use crate::clock::secs;
use crate::service::{Account, ClientInfo, Core, IssuedTokens, Result};
use crate::store::{SessionRecord, UserRecord};

impl Core {
    /// Creates a session (refresh family) for an authenticated user. Every
    /// caller has just checked a proof (password, second factor, passkey),
    /// so the session starts proven: the step-up window opens now.
    pub(in crate::service) async fn start_session(
        &self,
        user: UserRecord,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        self.start_session_with(user, amr, None, client).await
    }

    /// [`Core::start_session`] for a sign-in through the upstream identity
    /// provider `idp` (kept on the session: every access token of it says so).
    pub(in crate::service) async fn start_session_with(
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
    pub(in crate::service) fn issue_pair(
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
}
