//! A user's consents (`/v1/me/consents`) and RP-initiated logout
//! (`GET /oauth/logout`, OpenID Connect RP-Initiated Logout 1.0).

use jsonwebtoken::Validation;
use serde::Deserialize;

use super::{BrowserSession, with_query};
use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::domain::UserId;
use crate::service::{ClientInfo, Core, Error, Principal, Result};

/// One consent, as listed to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentSummary {
    /// The client.
    pub client_id: String,
    /// Its name (empty when the client was removed since).
    pub client_name: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// First grant.
    pub created_at: UnixTime,
    /// Last grant.
    pub updated_at: UnixTime,
}

/// The parameters of `GET /oauth/logout`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LogoutParams {
    /// An ID token Portcullis issued to the client (expired is fine).
    pub id_token_hint: Option<String>,
    /// Where to go afterwards; must be registered for the client.
    pub post_logout_redirect_uri: Option<String>,
    /// Echoed back.
    pub state: Option<String>,
    /// The client (else the hint's `aud`).
    pub client_id: Option<String>,
    /// Page language.
    pub ui_locales: Option<String>,
}

/// What the logout endpoint does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// Signed out; go back to the client.
    Redirect(String),
    /// Signed out; show the "signed out" page.
    SignedOut,
    /// No hint proves the request comes from the signed-in user's app: ask
    /// them to confirm (a form that posts back).
    Confirm,
    /// The request is wrong (unregistered redirect, bad hint): a page.
    Refused(&'static str),
}

#[derive(Debug, Deserialize)]
struct HintClaims {
    sub: String,
    aud: serde_json::Value,
    #[serde(default)]
    sid: Option<String>,
}

impl Core {
    /// The user's consents.
    pub async fn consents(&self, who: &Principal) -> Result<Vec<ConsentSummary>> {
        let mut out = Vec::new();
        for c in self.store.consents_of(&who.user_id).await? {
            let client_name = self
                .store
                .client(&c.client_id)
                .await?
                .map(|c| c.name)
                .unwrap_or_default();
            out.push(ConsentSummary {
                client_id: c.client_id,
                client_name,
                scopes: c.scopes,
                created_at: c.created_at,
                updated_at: c.updated_at,
            });
        }
        Ok(out)
    }

    /// Withdraws a consent (a recent proof needed) and ends every session
    /// of that client for the user.
    pub async fn revoke_consent(
        &self,
        who: &Principal,
        client_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        if self.store.consent(&who.user_id, client_id).await?.is_none() {
            return Err(Error::NotFound("Consent"));
        }
        self.require_recent_proof(who, None, client).await?;
        if !self.store.delete_consent(&who.user_id, client_id).await? {
            return Err(Error::NotFound("Consent"));
        }
        let now = self.clock.now();
        for s in self.store.sessions_of(&who.user_id, now).await? {
            if s.client_id.as_deref() == Some(client_id) {
                self.store.revoke_session(&who.user_id, &s.id, now).await?;
            }
        }
        self.audit(
            AuditEvent::ConsentRevoked {
                client_id: client_id.to_string(),
            },
            Some(&who.user_id),
            client,
        );
        Ok(())
    }

    /// Checks an `id_token_hint`: our signature and issuer; expiry and
    /// audience are not required (RP-Initiated Logout §2).
    fn logout_hint(&self, hint: &str) -> Option<HintClaims> {
        let header = jsonwebtoken::decode_header(hint).ok()?;
        let key = self.tokens.ring().by_kid(header.kid.as_deref()?)?;
        if header.alg != key.alg {
            return None;
        }
        let mut v = Validation::new(key.alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.set_issuer(&[self.tokens.issuer()]);
        v.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<HintClaims>(hint, &key.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// RP-initiated logout. `confirmed`: the user pressed the button of the
    /// confirmation page (or the request carried a valid hint).
    pub async fn rp_logout(
        &self,
        p: &LogoutParams,
        browser: Option<&BrowserSession>,
        confirmed: bool,
    ) -> Result<LogoutOutcome> {
        let hint = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => match self.logout_hint(h) {
                Some(c) => Some(c),
                None => return Ok(LogoutOutcome::Refused("The id_token_hint is not valid.")),
            },
            None => None,
        };
        let hint_aud = hint.as_ref().and_then(|h| match &h.aud {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).map(String::from),
            _ => None,
        });
        let client_id = p
            .client_id
            .clone()
            .filter(|c| !c.is_empty())
            .or(hint_aud.clone());
        if let (Some(a), Some(c)) = (&hint_aud, &p.client_id)
            && a != c
        {
            return Ok(LogoutOutcome::Refused(
                "The client_id does not match the id_token_hint.",
            ));
        }
        let redirect = match p
            .post_logout_redirect_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            None => None,
            Some(uri) => {
                let client = match &client_id {
                    Some(id) => self.store.client(id).await?,
                    None => None,
                };
                match client {
                    Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => {
                        Some(uri.to_string())
                    }
                    _ => {
                        return Ok(LogoutOutcome::Refused(
                            "The post_logout_redirect_uri is not registered for this application.",
                        ));
                    }
                }
            }
        };
        // A hint for another user than the one signed in here does not
        // sign them out without asking.
        let hint_matches = match (&hint, browser) {
            (Some(h), Some(b)) => h.sub == b.user_id,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !confirmed && !hint_matches && browser.is_some() {
            return Ok(LogoutOutcome::Confirm);
        }
        let now = self.clock.now();
        if let Some(b) = browser {
            self.store.revoke_session(&b.user_id, &b.sid, now).await?;
        }
        if let Some(h) = &hint
            && let Some(sid) = &h.sid
        {
            self.store
                .revoke_session(&UserId::from(h.sub.as_str()), sid, now)
                .await?;
        }
        Ok(match redirect {
            Some(uri) => {
                let params: Vec<(&str, &str)> = p
                    .state
                    .as_deref()
                    .map(|s| vec![("state", s)])
                    .unwrap_or_default();
                LogoutOutcome::Redirect(with_query(&uri, &params))
            }
            None => LogoutOutcome::SignedOut,
        })
    }
}
