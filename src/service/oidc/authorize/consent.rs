//! The decision for a validated request (a code, the sign-in page or the
//! consent page) and the consent page's answer.

use super::{AuthorizeRequest, BrowserSession, Decision};
use crate::audit::AuditEvent;
use crate::service::{ClientInfo, Core, Error, Result};
use crate::store::{ClientRecord, ConsentRecord};

impl Core {
    fn needs_consent(
        client: &ClientRecord,
        r: &AuthorizeRequest,
        consent: Option<&ConsentRecord>,
    ) -> bool {
        if r.prompts("consent") {
            return true;
        }
        if client.first_party {
            return false;
        }
        match consent {
            Some(c) => !r.scope.iter().all(|s| c.scopes.contains(s)),
            None => true,
        }
    }

    /// What happens to a validated request for the user signed in on this
    /// browser (`fresh`: they signed in for this very request, so
    /// `prompt=login` and `max_age` are satisfied).
    pub async fn authorize_decide(
        &self,
        r: &AuthorizeRequest,
        browser: Option<&BrowserSession>,
        fresh: bool,
    ) -> Result<Decision> {
        let error = |e: &str, why: &str| {
            Ok(Decision::Redirect(self.authorize_error(
                &r.redirect_uri,
                r.state.as_deref(),
                e,
                why,
            )))
        };
        let Some(client) = self.store.client(r.client_id()).await? else {
            return Err(Error::NotFound("Client"));
        };
        let none = r.prompts("none");
        let now = self.clock.now();
        // `max_age`: a sign-in at least that many whole seconds old is too
        // old (so `max_age=0` always asks again).
        let signed_in = browser.filter(|b| {
            fresh
                || (!r.prompts("login")
                    && !r.prompts("select_account")
                    && r.max_age.is_none_or(|m| now - b.auth_time < m))
        });
        let Some(b) = signed_in else {
            if none {
                return error("login_required", "the user is not signed in");
            }
            return Ok(Decision::Login(self.seal_request(r)?));
        };
        let consent = self.store.consent(&b.user_id, &client.id).await?;
        if Self::needs_consent(&client, r, consent.as_ref()) {
            if none {
                return error("consent_required", "the user has not consented");
            }
            return Ok(Decision::Consent(self.seal_request(r)?));
        }
        Ok(Decision::Redirect(self.issue_code(r, b).await?))
    }

    /// The consent page's answer: `allow` stores the consent (remembered
    /// per user, client and scopes) and issues a code; otherwise
    /// `access_denied`.
    pub async fn authorize_consent(
        &self,
        r: &AuthorizeRequest,
        b: &BrowserSession,
        allow: bool,
        client: &ClientInfo,
    ) -> Result<String> {
        if !allow {
            return Ok(self.authorize_error(
                &r.redirect_uri,
                r.state.as_deref(),
                "access_denied",
                "the user did not consent",
            ));
        }
        let now = self.clock.now();
        let previous = self.store.consent(&b.user_id, r.client_id()).await?;
        let mut scopes = previous
            .as_ref()
            .map(|c| c.scopes.clone())
            .unwrap_or_default();
        scopes.extend(r.scope.iter().cloned());
        scopes.sort();
        scopes.dedup();
        self.store
            .put_consent(&ConsentRecord {
                user_id: b.user_id.clone(),
                client_id: r.client_id().to_string(),
                scopes,
                created_at: previous.map_or(now, |c| c.created_at),
                updated_at: now,
            })
            .await?;
        self.audit(
            AuditEvent::ConsentGranted {
                client_id: r.client_id().to_string(),
            },
            Some(&b.user_id),
            client,
        );
        self.issue_code(r, b).await
    }
}
