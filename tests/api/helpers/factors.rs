//! Request helpers of the second factors (TOTP, recovery codes, passkeys),
//! the hardening checks (proxies, metrics, CORS) and the OAuth endpoints.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use super::{PASSWORD, TestApp, token, totp_code};

impl TestApp {
    // --- Two-factor sign-in ---

    /// `POST /v1/me/mfa/totp`.
    pub async fn totp_begin(&self, token: &str) -> Response {
        self.client
            .post(self.url("/v1/me/mfa/totp"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    // -- hardening --

    /// `POST /v1/sessions` as relayed by a proxy that wrote `X-Forwarded-For`.
    pub async fn login_via_proxy(&self, email: &str, password: &str, xff: &str) -> Response {
        self.client
            .post(self.url("/v1/sessions"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    // Passkeys.

    /// The browser origin of the default public URL (`http://localhost:<port>`):
    /// WebAuthn needs a domain, not an IP address.
    pub fn origin(&self) -> String {
        self.addr.replace("127.0.0.1", "localhost")
    }

    /// `POST /v1/me/passkeys/options`.
    pub async fn passkey_registration_options(&self, token: &str) -> Response {
        self.client
            .post(self.url("/v1/me/passkeys/options"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /metrics`, with a bearer token and an `X-Forwarded-For` if given.
    pub async fn metrics(&self, token: Option<&str>, xff: Option<&str>) -> Response {
        let mut r = self.client.get(self.url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send().await.unwrap()
    }

    /// A request with an `Origin` header.
    pub async fn with_origin(&self, method: reqwest::Method, path: &str, origin: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .header("origin", origin)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/me/mfa/totp/activate`.
    pub async fn totp_activate(&self, token: &str, code: &str) -> Response {
        self.post_authed_json("/v1/me/mfa/totp/activate", token, &json!({"code": code}))
            .await
    }

    /// `DELETE /v1/me/mfa/totp` with `{code}` or `{password}`.
    pub async fn totp_disable(&self, token: &str, body: &Value) -> Response {
        self.delete_authed_json("/v1/me/mfa/totp", token, body)
            .await
    }

    /// `POST /v1/me/mfa/recovery-codes` with `{code}` or `{password}`.
    pub async fn regenerate_recovery_codes(&self, token: &str, body: &Value) -> Response {
        self.post_authed_json("/v1/me/mfa/recovery-codes", token, body)
            .await
    }

    /// `POST /v1/sessions/mfa`.
    pub async fn login_mfa(&self, body: &Value) -> Response {
        self.post_json("/v1/sessions/mfa", body).await
    }

    /// The TOTP code of `secret` (base32) at the server's time, shifted by
    /// `steps` steps of 30 s.
    pub fn totp_now(&self, secret: &str, steps: i64) -> String {
        totp_code(secret, self.clock.now() + steps * 30)
    }

    /// Turns two-factor sign-in on for the holder of `token` (codes from the
    /// returned secret, at the server's time); returns the secret and the
    /// recovery codes. Moves the clock one step on, so that the code used
    /// here is not the current one any more.
    pub async fn enable_mfa(&self, token: &str) -> (String, Vec<String>) {
        let r = self.totp_begin(token).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let secret = body["secret"].as_str().unwrap().to_string();
        let r = self.totp_activate(token, &self.totp_now(&secret, 0)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        self.clock.advance(30);
        (secret, codes)
    }

    /// `POST /v1/sessions` for an account with two-factor sign-in on;
    /// returns the `mfa_token`.
    pub async fn login_mfa_token(&self, email: &str) -> String {
        let body = self.login_ok(email, PASSWORD).await;
        assert_eq!(body["mfa_required"], true, "{body}");
        token(&body, "mfa_token")
    }

    /// `POST /v1/me/passkeys`.
    pub async fn add_passkey(&self, token: &str, body: &Value) -> Response {
        self.post_authed_json("/v1/me/passkeys", token, body).await
    }

    /// `GET /v1/me/passkeys`.
    pub async fn list_passkeys(&self, token: &str) -> Response {
        self.get_authed("/v1/me/passkeys", token).await
    }

    /// `DELETE /v1/me/passkeys/{id}`.
    pub async fn delete_passkey(&self, token: &str, id: &str) -> Response {
        self.delete_authed(&format!("/v1/me/passkeys/{id}"), token)
            .await
    }

    /// `POST /v1/sessions/passkey/options`.
    pub async fn passkey_sign_in_options(&self, body: &Value) -> Response {
        self.post_json("/v1/sessions/passkey/options", body).await
    }

    /// `POST /v1/sessions/passkey`.
    pub async fn passkey_sign_in(&self, body: &Value) -> Response {
        self.post_json("/v1/sessions/passkey", body).await
    }

    /// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`).
    pub async fn preflight(&self, path: &str, origin: &str, method: &str) -> Response {
        self.client
            .request(reqwest::Method::OPTIONS, self.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap()
    }

    /// A form POST (`application/x-www-form-urlencoded`), with an optional bearer.
    pub async fn post_form(
        &self,
        path: &str,
        bearer: Option<&str>,
        form: &[(&str, &str)],
    ) -> Response {
        let mut r = self.client.post(self.url(path)).form(form);
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    /// `POST /oauth/token` with the refresh grant.
    pub async fn oauth_refresh(&self, refresh_token: &str) -> Response {
        self.post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// `POST /oauth/revoke`.
    pub async fn oauth_revoke(&self, token: &str) -> Response {
        self.post_form("/oauth/revoke", None, &[("token", token)])
            .await
    }

    /// `POST /oauth/introspect` as a resource server holding `credential`.
    pub async fn oauth_introspect(&self, credential: Option<&str>, token: &str) -> Response {
        self.post_form("/oauth/introspect", credential, &[("token", token)])
            .await
    }

    /// `GET /oauth/userinfo`.
    pub async fn userinfo(&self, token: &str) -> Response {
        self.get_authed("/oauth/userinfo", token).await
    }
}
