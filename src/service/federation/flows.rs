//! The redirect flow: `authorize` (state, nonce and PKCE toward the
//! provider kept server-side), `callback` (the provider's answer, by query
//! or Apple's `form_post`; a one-time code for the client), and the code
//! exchange, which checks the client's own PKCE verifier.
//!
//! Two PKCE pairs: the client's (its `code_challenge` at `authorize`, its
//! verifier at the exchange) binds the one-time code to the client that
//! began the flow; ours (toward the provider) binds the provider's code to
//! this server. Neither verifier ever travels in a URL.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::upstream::{random_token, s256};
use super::{Asserted, CODE_TTL_SECS, NONCE_TTL_SECS, Step};
use crate::auth::limits::Action;
use crate::config::ProviderKind;
use crate::service::{ClientInfo, Core, Error, Result, SignIn};

/// What a redirect flow is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    /// Sign in (or sign up).
    Signin,
    /// Link to the signed-in account (`POST /v1/me/identities {code, code_verifier}`).
    Link,
    /// Sign in on the hosted `/login` page (a provider button): kept only
    /// in the stored state, never accepted as the public `intent`; the
    /// one-time code goes back to a hosted page of this server, bound to
    /// the browser that pressed the button (see
    /// [`Core::federation_hosted_authorize`]).
    Hosted,
}

impl Intent {
    /// `signin` or `link`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "signin" => Some(Self::Signin),
            "link" => Some(Self::Link),
            _ => None,
        }
    }
}

/// The query of `GET /v1/federation/{provider}/authorize`.
#[derive(Debug, Default)]
pub struct AuthorizeRequest {
    /// Where the flow returns to (must be allowed).
    pub redirect_to: Option<String>,
    /// The client's PKCE challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// `signin` (default) or `link`.
    pub intent: Option<String>,
}

/// What the provider sent back to the callback.
#[derive(Debug, Default)]
pub struct CallbackParams {
    /// Our state.
    pub state: Option<String>,
    /// The provider's authorization code.
    pub code: Option<String>,
    /// The provider's error code.
    pub error: Option<String>,
    /// Apple's `user` form field (JSON with the name, first time only).
    pub user: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Started {
    provider: String,
    redirect_to: String,
    code_challenge: String,
    intent: Intent,
    nonce: String,
    verifier: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct IssuedCode {
    asserted: Asserted,
    code_challenge: String,
    intent: Intent,
}

fn refused(slug: &'static str, detail: &'static str) -> Error {
    Error::FederationRefused { slug, detail }
}

/// `redirect_to` with `pairs` added to its query.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let (head, fragment) = match base.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (base, None),
    };
    let sep = if head.contains('?') { '&' } else { '?' };
    let mut out = format!("{head}{sep}{query}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// The slug a refusal is reported under in a redirect.
fn slug_of(e: &Error) -> &'static str {
    match e {
        Error::LinkRequired { .. } => "link-required",
        Error::ProviderEmailUnverified => "provider-email-unverified",
        Error::SignupDisabled => "signup-disabled",
        Error::IdTokenInvalid(_) => "id-token-invalid",
        Error::CodeInvalid => "code-invalid",
        Error::ProviderUnavailable => "provider-unavailable",
        Error::AccountDisabled => "account-disabled",
        Error::RateLimited { .. } => "rate-limited",
        _ => "server-error",
    }
}

/// Apple's `user` field: `{"name": {"firstName", "lastName"}, "email"}`.
fn apple_name(user: &str) -> Option<String> {
    let v: Value = serde_json::from_str(user).ok()?;
    let name = v.get("name")?;
    let parts: Vec<&str> = ["firstName", "lastName"]
        .iter()
        .filter_map(|k| name.get(k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

impl Core {
    fn callback_url(&self, provider: &str) -> String {
        format!(
            "{}/v1/federation/{provider}/callback",
            self.settings.http.public_url
        )
    }

    /// `GET /v1/federation/{provider}/authorize`: checks the request,
    /// keeps the flow server-side (10 minutes, single use) and returns the
    /// provider's authorization URL to redirect to.
    pub async fn federation_authorize(
        &self,
        provider: &str,
        req: AuthorizeRequest,
        client: &ClientInfo,
    ) -> Result<String> {
        if self.federation.get(provider).is_none() {
            return Err(refused(
                "unknown-provider",
                "No provider with this id is configured.",
            ));
        }
        let redirect_to = req
            .redirect_to
            .filter(|r| self.settings.federation.redirect_allowed(r))
            .ok_or(refused(
                "redirect-not-allowed",
                "`redirect_to` is not one of PORTCULLIS_REDIRECT_URLS.",
            ))?;
        let code_challenge = req
            .code_challenge
            .filter(|c| {
                (43..=128).contains(&c.len())
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .filter(|_| req.code_challenge_method.as_deref() == Some("S256"))
            .ok_or(refused(
                "pkce-required",
                "Send a PKCE `code_challenge` (43 to 128 base64url characters) with `code_challenge_method=S256`.",
            ))?;
        let intent = match req.intent.as_deref() {
            None | Some("") => Intent::Signin,
            Some(i) => Intent::parse(i)
                .ok_or(refused("intent-invalid", "`intent` is `signin` or `link`."))?,
        };
        self.begin_flow(provider, redirect_to, code_challenge, intent, client)
            .await
    }

    /// The hosted `/login` page's provider button: a flow of the kind
    /// [`Intent::Hosted`] whose callback returns (with a one-time code, or
    /// an error) to `return_to`, a hosted page of this server, and whose
    /// code is bound to the browser by `binding` (its S256 is the flow's
    /// code challenge; the page keeps `binding` in a cookie).
    pub async fn federation_hosted_authorize(
        &self,
        provider: &str,
        return_to: String,
        binding: &str,
        client: &ClientInfo,
    ) -> Result<String> {
        self.begin_flow(provider, return_to, s256(binding), Intent::Hosted, client)
            .await
    }

    /// Keeps a checked flow server-side and returns the provider's URL.
    async fn begin_flow(
        &self,
        provider: &str,
        redirect_to: String,
        code_challenge: String,
        intent: Intent,
        client: &ClientInfo,
    ) -> Result<String> {
        let upstream = self.federation.get(provider).ok_or(refused(
            "unknown-provider",
            "No provider with this id is configured.",
        ))?;
        self.rate_limit(Action::PasskeyOptions, client)?;
        let discovery = upstream.discovery().await?;
        let started = Started {
            provider: provider.to_string(),
            redirect_to,
            code_challenge,
            intent,
            nonce: random_token(24),
            verifier: random_token(48),
        };
        let state = self
            .save_step(Step::State, &started, NONCE_TTL_SECS)
            .await?;
        let s = &upstream.settings;
        let callback = self.callback_url(provider);
        let challenge = s256(&started.verifier);
        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &s.client_id),
            ("redirect_uri", &callback),
            ("scope", &s.scopes),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if s.kind != ProviderKind::Github {
            pairs.push(("nonce", &started.nonce));
        }
        if s.kind == ProviderKind::Apple {
            // Apple posts the answer (and the first-time name) as a form.
            pairs.push(("response_mode", "form_post"));
        }
        Ok(with_query(&discovery.authorization_endpoint, &pairs))
    }

    /// `GET|POST /v1/federation/{provider}/callback`: finishes the
    /// provider's side and returns where to send the browser: the flow's
    /// `redirect_to` with a one-time `code` (5 minutes), or with
    /// `error=<slug>&error_description=…` (and `link_token` for
    /// `link-required`). `Err` only when there is no flow to return to
    /// (unknown, used or expired state).
    pub async fn federation_callback(
        &self,
        provider: &str,
        params: CallbackParams,
        client: &ClientInfo,
    ) -> Result<String> {
        let state = params.state.unwrap_or_default();
        let started: Started = self
            .take_step(Step::State, &state)
            .await?
            .filter(|s: &Started| s.provider == provider)
            .ok_or(refused(
                "state-invalid",
                "This sign-in is unknown, expired or already finished: start again.",
            ))?;
        let back = |pairs: &[(&str, &str)]| with_query(&started.redirect_to, pairs);
        let fail = |e: &Error, description: &str| {
            let slug = slug_of(e);
            match e {
                Error::LinkRequired { link_token } => back(&[
                    ("error", slug),
                    ("error_description", description),
                    ("link_token", link_token),
                ]),
                _ => back(&[("error", slug), ("error_description", description)]),
            }
        };
        if let Some(error) = params.error.as_deref() {
            tracing::info!(provider, error, "provider refused the authorization");
            let slug = if error == "access_denied" {
                "access-denied"
            } else {
                "provider-error"
            };
            return Ok(back(&[
                ("error", slug),
                (
                    "error_description",
                    "The provider did not authorize the sign-in.",
                ),
            ]));
        }
        let Some(code) = params.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
            return Ok(back(&[
                ("error", "provider-error"),
                (
                    "error_description",
                    "The provider sent no authorization code.",
                ),
            ]));
        };
        let asserted = match self.finish_upstream(provider, &started, &code).await {
            Ok(mut a) => {
                if a.name.is_none() {
                    a.name = params.user.as_deref().and_then(apple_name);
                }
                a
            }
            Err(e) => return Ok(fail(&e, "The provider's answer could not be verified.")),
        };
        if started.intent != Intent::Link
            && let Err(e) = self.preview(&asserted).await
        {
            let description = match &e {
                Error::LinkRequired { .. } => {
                    "An account with this email exists: sign in to it, then link this identity with the link_token."
                }
                Error::ProviderEmailUnverified => "The provider gave no verified email address.",
                Error::SignupDisabled => "Signing up with a provider is turned off.",
                _ => "The sign-in failed.",
            };
            return Ok(fail(&e, description));
        }
        let issued = IssuedCode {
            asserted,
            code_challenge: started.code_challenge.clone(),
            intent: started.intent,
        };
        let code = match self.save_step(Step::Code, &issued, CODE_TTL_SECS).await {
            Ok(c) => c,
            Err(e) => return Ok(fail(&e, "The sign-in failed.")),
        };
        let _ = client;
        Ok(back(&[("code", &code)]))
    }

    /// The provider's code → its tokens → a verified identity.
    async fn finish_upstream(
        &self,
        provider: &str,
        started: &Started,
        code: &str,
    ) -> Result<Asserted> {
        let upstream = self
            .federation
            .get(provider)
            .ok_or(Error::IdTokenInvalid("no such provider is configured"))?;
        let now = self.clock.now_u64();
        let callback = self.callback_url(provider);
        let tokens = upstream
            .exchange_code(code, &callback, &started.verifier, now)
            .await?;
        if upstream.settings.kind == ProviderKind::Github {
            let access = tokens
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or(Error::ProviderUnavailable)?;
            let claims = upstream.github_identity(access).await?;
            return Ok(Asserted::new(provider, claims));
        }
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or(Error::IdTokenInvalid("the provider sent no ID token"))?;
        let claims = upstream
            .verify_id_token(
                id_token,
                std::slice::from_ref(&upstream.settings.client_id),
                now,
            )
            .await?;
        if claims.nonce.as_deref() != Some(started.nonce.as_str()) {
            return Err(Error::IdTokenInvalid("the token's nonce is not the flow's"));
        }
        Ok(Asserted::new(provider, claims))
    }

    /// Takes a one-time code for `intent`, checking the client's verifier.
    pub(super) async fn take_code(
        &self,
        code: &str,
        verifier: &str,
        intent: Intent,
    ) -> Result<Asserted> {
        let issued: IssuedCode = self
            .take_step(Step::Code, code)
            .await?
            .ok_or(Error::CodeInvalid)?;
        let right = subtle::ConstantTimeEq::ct_eq(
            s256(verifier).as_bytes(),
            issued.code_challenge.as_bytes(),
        );
        if !bool::from(right) || issued.intent != intent {
            return Err(Error::CodeInvalid);
        }
        Ok(issued.asserted)
    }

    /// `POST /v1/sessions/federation`: the one-time code of a redirect
    /// (`intent=signin`) and the client's PKCE verifier → tokens, or a
    /// second-factor challenge.
    pub async fn sign_in_with_code(
        &self,
        code: &str,
        code_verifier: &str,
        client: &ClientInfo,
    ) -> Result<SignIn> {
        self.rate_limit(Action::SignIn, client)?;
        let asserted = self.take_code(code, code_verifier, Intent::Signin).await?;
        self.federated_sign_in(asserted, client).await
    }

    /// The hosted page's end of a provider button's flow: the one-time
    /// code and the browser's `binding` (see
    /// [`Core::federation_hosted_authorize`]) → tokens for the browser
    /// session, or a second-factor challenge.
    pub async fn sign_in_with_hosted_code(
        &self,
        code: &str,
        binding: &str,
        client: &ClientInfo,
    ) -> Result<SignIn> {
        self.rate_limit(Action::SignIn, client)?;
        let asserted = self.take_code(code, binding, Intent::Hosted).await?;
        self.federated_sign_in(asserted, client).await
    }
}
