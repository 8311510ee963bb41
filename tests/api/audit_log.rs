//! The audit log is complete and bounded: every event kind the API
//! promises (`AuditEvent::kind`) is stored (read back through
//! `/v1/admin/audit`) and delivered to a webhook receiver (a real HTTP
//! server in the test), one test per kind; refusals are aggregated (one
//! stored event per network, action and minute with a count), so a flood
//! from one client leaves the store almost as it was.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, Response, Route, handler};
use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

mod aggregation;
mod refresh_hourly;

const NEW_PASSWORD: &str = "a different passphrase 77 for tests";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

type Bodies = Arc<Mutex<Vec<Value>>>;

#[handler]
async fn hook(body: poem::Body, got: Data<&Bodies>) -> Response {
    let body = body.into_vec().await.unwrap();
    got.lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    Response::builder()
        .status(poem::http::StatusCode::NO_CONTENT)
        .finish()
}

/// A server with an administrator (made by `portcullis admin create`), a
/// webhook receiver, and a manual clock (refusal windows close when the
/// test moves it).
struct Ctx {
    app: TestApp,
    admin_email: String,
    admin_at: String,
    hooks: Bodies,
    receiver: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

async fn ctx_with(configure: impl FnOnce(&mut BTreeMap<String, String>)) -> Ctx {
    let port = crate::mailbox::free_port();
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"a webhook key of thirty-two byte")
    );
    let admin_email = unique_email();
    let email = admin_email.clone();
    let app = spawn_app_prepared(
        Clock::manual(Clock::system().now()),
        |m| {
            m.insert(
                "PORTCULLIS_WEBHOOK_URL".into(),
                format!("http://127.0.0.1:{port}/hook"),
            );
            m.insert("PORTCULLIS_WEBHOOK_SECRET".into(), secret);
            m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
            configure(m);
        },
        move |env| {
            let (ok, out, err) = run_cli(
                env,
                &[("PORTCULLIS_ADMIN_PASSWORD", PASSWORD)],
                &["admin", "create", &email],
                "",
            );
            assert!(ok, "admin create failed: {out} {err}");
        },
    )
    .await;
    let hooks = Bodies::default();
    let receiver = tokio::spawn(
        poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(
            Route::new()
                .at("/hook", poem::post(hook))
                .data(hooks.clone()),
        ),
    );
    let admin_at = token(&app.login_ok(&admin_email, PASSWORD).await, "access_token");
    Ctx {
        app,
        admin_email,
        admin_at,
        hooks,
        receiver,
    }
}

async fn ctx() -> Ctx {
    ctx_with(|_| {}).await
}

impl Ctx {
    /// Stored events of `kind` (newest first), every page.
    async fn stored(&self, kind: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut query = format!("?type={kind}&limit=100");
        loop {
            let r = self.app.admin_audit(&self.admin_at, &query).await;
            assert_eq!(r.status(), StatusCode::OK);
            let page: Value = r.json().await.unwrap();
            out.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("?type={kind}&limit=100&cursor={c}"),
                None => return out,
            }
        }
    }

    /// The webhook body of event `id`, waiting for it (at most 20 s).
    async fn delivered(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(b) = self
                .hooks
                .lock()
                .unwrap()
                .iter()
                .find(|b| b["id"] == id)
                .cloned()
            {
                return b;
            }
            assert!(Instant::now() < deadline, "event {id} not delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The newest stored event of `kind` for `user_id` (`None`: any): it
    /// exists, carries the client's address and an outcome, and the
    /// webhook receiver got it with the same facts.
    async fn recorded(&self, kind: &str, user_id: Option<&str>) -> Value {
        let events = self.stored(kind).await;
        let event = events
            .iter()
            .find(|e| user_id.is_none_or(|u| e["user_id"] == u))
            .unwrap_or_else(|| panic!("no stored {kind} for {user_id:?}: {events:?}"))
            .clone();
        assert_eq!(event["type"], kind);
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert!(event["outcome"].is_string() && event["at"].is_string());
        let body = self.delivered(event["id"].as_str().unwrap()).await;
        assert_eq!(body["type"], kind);
        let data = &body["data"];
        for field in ["user_id", "ip", "user_agent", "outcome", "details"] {
            assert_eq!(data[field], event[field], "{field}: {body} vs {event}");
        }
        event
    }

    async fn user(&self) -> (String, Value, String) {
        let (email, tokens) = self.app.signed_in_user().await;
        let id = tokens["user"]["id"].as_str().unwrap().to_string();
        (email, tokens, id)
    }

    /// Moves the clock past the current refusal window and its grace, so
    /// that the flusher closes it (and queues its webhook).
    async fn close_refusal_windows(&self) {
        self.app.clock.advance(63);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

fn at(tokens: &Value) -> String {
    token(tokens, "access_token")
}

#[tokio::test]
async fn user_registered_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, _, id) = c.user().await;
    c.recorded("user.registered", Some(&id)).await;
}

#[tokio::test]
async fn login_succeeded_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let e = c.recorded("login.succeeded", Some(&id)).await;
    assert_eq!(
        e["details"]["sid"],
        claims_of(&at(&tokens))["sid"],
        "the session"
    );
}

#[tokio::test]
async fn login_failed_is_stored_and_delivered() {
    let c = ctx().await;
    let (email, _, id) = c.user().await;
    let r = c.app.login(&email, "wrong password!!").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let e = c.recorded("login.failed", Some(&id)).await;
    assert_eq!(e["outcome"], "failure");
}

#[tokio::test]
async fn logout_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    assert_eq!(
        c.app.logout(&at(&tokens), "local").await.status(),
        StatusCode::NO_CONTENT
    );
    c.recorded("logout", Some(&id)).await;
}

#[tokio::test]
async fn token_refreshed_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let r = c.app.refresh(&token(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    c.recorded("token.refreshed", Some(&id)).await;
}

#[tokio::test]
async fn token_reuse_detected_and_its_suspicion_are_stored_and_delivered() {
    let c = ctx_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (_, tokens, id) = c.user().await;
    let rt = token(&tokens, "refresh_token");
    assert_eq!(c.app.refresh(&rt).await.status(), StatusCode::OK);
    assert_eq!(c.app.refresh(&rt).await.status(), StatusCode::UNAUTHORIZED);
    c.recorded("token.reuse_detected", Some(&id)).await;
    let e = c.recorded("suspicious.token_reuse", Some(&id)).await;
    assert_eq!(e["outcome"], "detected");
}

#[tokio::test]
async fn token_revoked_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let r = c.app.oauth_revoke(&token(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let e = c.recorded("token.revoked", Some(&id)).await;
    assert_eq!(e["details"]["sid"], claims_of(&at(&tokens))["sid"]);
    // An invalid token revokes nothing and records nothing.
    c.app.oauth_revoke("not-a-token").await;
    assert_eq!(c.stored("token.revoked").await.len(), 1);
}

#[tokio::test]
async fn password_changed_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let r = c
        .app
        .change_password(&at(&tokens), PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.recorded("password.changed", Some(&id)).await;
}

#[tokio::test]
async fn password_reset_requested_is_stored_for_known_accounts_only() {
    let c = ctx().await;
    let (email, _, id) = c.user().await;
    let known = c.app.forgot(&email).await;
    let unknown = c.app.forgot("nobody-here@example.com").await;
    // The answer does not tell them apart.
    assert_eq!(known.status(), unknown.status());
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    // The sender records the request when it finds the account.
    c.app.wait_for_email(&email, "Reset your password").await;
    let e = c.recorded("password.reset_requested", Some(&id)).await;
    assert_eq!(e["outcome"], "success");
    assert_eq!(
        c.stored("password.reset_requested").await.len(),
        1,
        "nothing for the unknown address"
    );
}

#[tokio::test]
async fn password_reset_is_stored_and_delivered() {
    let c = ctx().await;
    let (email, _, id) = c.user().await;
    c.app.forgot(&email).await;
    let mail = c.app.wait_for_email(&email, "Reset your password").await;
    let r = c
        .app
        .reset_with_code(&email, &mail.code(), NEW_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let e = c.recorded("password.reset", Some(&id)).await;
    assert_eq!(e["details"]["revoked"], "1");
}

#[tokio::test]
async fn email_verified_is_stored_and_delivered() {
    let c = ctx().await;
    let (email, _, id) = c.user().await;
    let mail = c
        .app
        .wait_for_email(&email, "Confirm your email address")
        .await;
    let r = c.app.verify_email_code(&email, &mail.code()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.recorded("email.verified", Some(&id)).await;
}

#[tokio::test]
async fn email_changed_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let new = unique_email();
    let r = c.app.change_email(&at(&tokens), &new, PASSWORD).await;
    assert!(r.status().is_success(), "{}", r.status());
    let mail = c
        .app
        .wait_for_email(&new, "Confirm your email address")
        .await;
    let r = c.app.verify_email_token(&mail.token()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.recorded("email.changed", Some(&id)).await;
}

#[tokio::test]
async fn mfa_enabled_and_disabled_are_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    c.app.enable_mfa(&at(&tokens)).await;
    c.recorded("mfa.enabled", Some(&id)).await;
    let r = c
        .app
        .totp_disable(&at(&tokens), &json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.recorded("mfa.disabled", Some(&id)).await;
}

#[tokio::test]
async fn mfa_failed_carries_the_clients_address_and_user_agent() {
    let c = ctx().await;
    let (email, tokens, id) = c.user().await;
    c.app.enable_mfa(&at(&tokens)).await;
    let mfa_token = c.app.login_mfa_token(&email).await;
    let r = c
        .app
        .client
        .post(c.app.url("/v1/sessions/mfa"))
        .header("user-agent", UA)
        .header("x-forwarded-for", "198.51.100.23")
        .json(&json!({"mfa_token": mfa_token, "code": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let events = c.stored("mfa.failed").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["user_id"], id.as_str());
    assert_eq!(e["ip"], "198.51.100.23");
    assert_eq!(e["user_agent"], UA);
    assert_eq!(e["outcome"], "failure");
    let body = c.delivered(e["id"].as_str().unwrap()).await;
    assert_eq!(body["data"]["ip"], "198.51.100.23");
    assert_eq!(body["data"]["user_agent"], UA);
}

#[tokio::test]
async fn mfa_recovery_code_used_is_stored_and_delivered_for_sign_in_and_reset() {
    let c = ctx().await;
    let (email, tokens, id) = c.user().await;
    let (_, codes) = c.app.enable_mfa(&at(&tokens)).await;
    let mfa_token = c.app.login_mfa_token(&email).await;
    let r = c
        .app
        .login_mfa(&json!({"mfa_token": mfa_token, "recovery_code": codes[0]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    c.recorded("mfa.recovery_code_used", Some(&id)).await;
    // A password reset with a recovery code records it too (of a verified
    // address: the reset of an unverified one claims the account and asks
    // for no second factor).
    let verify = c.app.wait_for_email(&email, "Confirm your email").await;
    assert_eq!(
        c.app.verify_email_token(&verify.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    c.app.forgot(&email).await;
    let mail = c.app.wait_for_email(&email, "Reset your password").await;
    let r = c
        .app
        .post_json(
            "/v1/password/reset",
            &json!({"token": mail.token(), "new_password": NEW_PASSWORD, "recovery_code": codes[1]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let used = c.stored("mfa.recovery_code_used").await;
    assert_eq!(used.len(), 2, "{used:?}");
    c.delivered(used[0]["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn mfa_recovery_codes_regenerated_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    c.app.enable_mfa(&at(&tokens)).await;
    let r = c
        .app
        .regenerate_recovery_codes(&at(&tokens), &json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    c.recorded("mfa.recovery_codes_regenerated", Some(&id))
        .await;
}

#[tokio::test]
async fn passkey_added_and_removed_are_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let mut auth = crate::passkeys::authenticator();
    let added = crate::passkeys::register(&c.app, &mut auth, &at(&tokens)).await;
    c.recorded("passkey.added", Some(&id)).await;
    let r = c
        .app
        .delete_passkey(&at(&tokens), added["id"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.recorded("passkey.removed", Some(&id)).await;
}

#[tokio::test]
async fn account_deleted_is_stored_and_delivered() {
    let c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let r = c.app.delete_me(&at(&tokens), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.recorded("account.deleted", Some(&id)).await;
}

#[tokio::test]
async fn suspicious_failed_logins_is_stored_and_delivered() {
    let c = ctx_with(|m| {
        m.insert("PORTCULLIS_DETECT_ACCOUNT_FAILURES".into(), "3".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "10".into());
    })
    .await;
    let (email, _, id) = c.user().await;
    for _ in 0..3 {
        c.app.login(&email, "wrong password!!").await;
    }
    let e = c.recorded("suspicious.failed_logins", Some(&id)).await;
    assert_eq!(e["details"]["count"], "3");
}

#[tokio::test]
async fn admin_actions_record_the_admin_and_the_target() {
    let c = ctx().await;
    let admin_id = claims_of(&c.admin_at)["sub"].as_str().unwrap().to_string();
    let (_, tokens, target) = c.user().await;
    let r = c
        .app
        .admin_patch(
            &c.admin_at,
            &target,
            &json!({"roles": ["user", "support"], "email_verified": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let e = c.recorded("admin.user_updated", Some(&admin_id)).await;
    assert_eq!(e["details"]["target_user_id"], target.as_str());
    assert_eq!(e["details"]["roles"], "support,user");
    assert_eq!(e["details"]["email_verified"], "true");
    // The target's own feed does not show who the admin was.
    let mine = c.app.all_activity(&at(&tokens)).await;
    assert!(
        !serde_json::to_string(&mine).unwrap().contains(&admin_id),
        "{mine:?}"
    );

    let r = c
        .app
        .client
        .delete(c.app.url(&format!("/v1/admin/users/{target}/sessions")))
        .bearer_auth(&c.admin_at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let e = c.recorded("admin.sessions_revoked", Some(&admin_id)).await;
    assert_eq!(e["details"]["target_user_id"], target.as_str());
    assert_eq!(e["details"]["revoked"], "1");

    let r = c
        .app
        .delete_authed(&format!("/v1/admin/users/{target}"), &c.admin_at)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let e = c.recorded("admin.user_deleted", Some(&admin_id)).await;
    assert_eq!(e["details"]["target_user_id"], target.as_str());
}

#[tokio::test]
async fn admin_disabling_a_user_is_recorded_with_the_sessions_it_ended() {
    let c = ctx().await;
    let admin_id = claims_of(&c.admin_at)["sub"].as_str().unwrap().to_string();
    let (_, _, target) = c.user().await;
    let r = c
        .app
        .admin_patch(&c.admin_at, &target, &json!({"disabled": true}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let e = c.recorded("admin.user_updated", Some(&admin_id)).await;
    assert_eq!(e["details"]["disabled"], "true");
    assert_eq!(e["details"]["revoked"], "1");
}

#[tokio::test]
async fn an_admin_made_at_the_command_line_is_recorded() {
    let c = ctx().await;
    let admin_id = claims_of(&c.admin_at)["sub"].as_str().unwrap().to_string();
    let events = c.stored("admin.created").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["details"]["target_user_id"], admin_id.as_str());
    assert_eq!(e["details"]["via"], "cli");
    assert!(e["user_id"].is_null(), "no acting account: {e}");
    // The CLI ran on the system clock, after the server's manual clock
    // was read: the delivery is due a moment later.
    c.app.clock.advance(5);
    let body = c.delivered(e["id"].as_str().unwrap()).await;
    assert_eq!(body["type"], "admin.created");
    assert!(c.admin_email.contains('@'));
}
