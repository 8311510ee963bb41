//! Request helpers of the account endpoints: registration, sign-in and
//! sessions, profile and avatar, email change, admin and activity.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use super::{PASSWORD, TestApp, unique_email};

impl TestApp {
    pub fn keys_path(&self) -> &std::path::Path {
        self.keys_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json("/v1/users", &json!({"email": email, "password": password}))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/v1/sessions",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers a fresh user and signs in; returns (email, tokens body).
    pub async fn signed_in_user(&self) -> (String, Value) {
        let email = unique_email();
        assert_eq!(
            self.register(&email, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        let tokens = self.login_ok(&email, PASSWORD).await;
        (email, tokens)
    }

    pub async fn login_ok(&self, email: &str, password: &str) -> Value {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/v1/sessions/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_authed(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Body of an unauthenticated GET, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Status of an unauthenticated GET.
    pub async fn status_of(&self, path: &str) -> StatusCode {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn me_status(&self, token: &str) -> StatusCode {
        self.get_authed("/v1/me", token).await.status()
    }

    /// POST with a bearer token and a JSON body.
    pub async fn post_authed_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// PATCH with a bearer token and a JSON body.
    pub async fn patch_authed(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH /v1/me`.
    pub async fn update_me(&self, token: &str, body: &Value) -> Response {
        self.patch_authed("/v1/me", token, body).await
    }

    /// `POST /v1/me/password`.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        self.post_authed_json(
            "/v1/me/password",
            token,
            &json!({"current_password": current, "new_password": new}),
        )
        .await
    }

    /// `DELETE /v1/sessions?scope=...`.
    pub async fn logout(&self, token: &str, scope: &str) -> Response {
        self.delete_authed(&format!("/v1/sessions?scope={scope}"), token)
            .await
    }

    /// `GET /v1/sessions`.
    pub async fn sessions(&self, token: &str) -> Response {
        self.get_authed("/v1/sessions", token).await
    }

    /// `DELETE /v1/sessions/{sid}`.
    pub async fn revoke_session(&self, token: &str, sid: &str) -> Response {
        self.delete_authed(&format!("/v1/sessions/{sid}"), token)
            .await
    }

    /// DELETE with a bearer token and a JSON body.
    pub async fn delete_authed_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE /v1/me` with any body (a proof).
    pub async fn delete_me_with(&self, token: &str, body: &Value) -> Response {
        self.delete_authed_json("/v1/me", token, body).await
    }

    /// `DELETE /v1/me` with the password.
    pub async fn delete_me(&self, token: &str, password: &str) -> Response {
        self.delete_authed_json("/v1/me", token, &json!({"password": password}))
            .await
    }

    /// `PUT /v1/me/avatar` with a raw body of `content_type`.
    pub async fn put_avatar(&self, token: &str, content_type: &str, bytes: Vec<u8>) -> Response {
        self.client
            .put(self.url("/v1/me/avatar"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// `PUT /v1/me/avatar` as `multipart/form-data` with the field `file`.
    pub async fn put_avatar_multipart(
        &self,
        token: &str,
        part_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        let boundary = "portcullis-test-boundary-7MA4YWxk";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: {part_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend(bytes);
        body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        self.client
            .put(self.url("/v1/me/avatar"))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/sessions` from `ip` (sent as `X-Forwarded-For`; the app
    /// must trust 127.0.0.1 as a proxy) with `user_agent`.
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        ip: &str,
        user_agent: &str,
    ) -> Response {
        self.client
            .post(self.url("/v1/sessions"))
            .header("x-forwarded-for", ip)
            .header("user-agent", user_agent)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// `GET` of an avatar URL, with `If-None-Match` when given.
    pub async fn get_avatar(&self, url: &str, if_none_match: Option<&str>) -> Response {
        let mut req = self.client.get(url);
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        req.send().await.unwrap()
    }

    /// `GET /v1/admin/users?...` (query string as given).
    pub async fn admin_list(&self, token: &str, query: &str) -> Response {
        self.get_authed(&format!("/v1/admin/users{query}"), token)
            .await
    }

    /// `PATCH /v1/admin/users/{id}`.
    pub async fn admin_patch(&self, token: &str, id: &str, body: &Value) -> Response {
        self.patch_authed(&format!("/v1/admin/users/{id}"), token, body)
            .await
    }

    /// `GET /v1/me/activity` with a query string (`""`, `"?limit=2"`, ...).
    pub async fn activity(&self, token: &str, query: &str) -> Response {
        self.get_authed(&format!("/v1/me/activity{query}"), token)
            .await
    }

    /// Every event of `GET /v1/me/activity`, newest first (follows cursors).
    pub async fn all_activity(&self, token: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut query = "?limit=100".to_string();
        loop {
            let r = self.activity(token, &query).await;
            assert_eq!(r.status(), StatusCode::OK);
            let page: Value = r.json().await.unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("?limit=100&cursor={c}"),
                None => return events,
            }
        }
    }

    /// `GET /v1/admin/audit` with a query string.
    pub async fn admin_audit(&self, token: &str, query: &str) -> Response {
        self.get_authed(&format!("/v1/admin/audit{query}"), token)
            .await
    }

    /// `POST /v1/security/not-me`.
    pub async fn not_me(&self, token: &str) -> Response {
        self.post_json("/v1/security/not-me", &json!({"token": token}))
            .await
    }

    /// `POST /v1/me/email`.
    pub async fn change_email(&self, token: &str, new_email: &str, password: &str) -> Response {
        self.post_authed_json(
            "/v1/me/email",
            token,
            &json!({"new_email": new_email, "password": password}),
        )
        .await
    }

    /// `GET /v1/captcha`.
    pub async fn captcha(&self) -> Value {
        self.get_json("/v1/captcha").await
    }
}
