//! Security activity: the audit trail of a journey, `/v1/me/activity`,
//! `/v1/admin/audit`, new-device alerts and "not me", detection rules.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, kinds_oldest_first, spawn_app, spawn_app_with,
    spawn_app_with_admin_as, token, unique_email,
};

const NEW_PASSWORD: &str = "a different passphrase 77 for tests";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

fn proxied(m: &mut std::collections::BTreeMap<String, String>) {
    m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
}

async fn signed_in_from(app: &TestApp, email: &str, ip: &str, ua: &str) -> Value {
    let r = app.login_from(email, PASSWORD, ip, ua).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// The "not me" tokens of the new-sign-in mails to `email` not read before.
async fn new_sign_in_tokens(app: &TestApp, email: &str) -> Vec<String> {
    app.new_emails(email, "New sign-in")
        .await
        .iter()
        .map(crate::mailbox::Mail::token)
        .collect()
}

#[tokio::test]
async fn a_journey_produces_exactly_the_expected_events_in_order() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let tokens = app.login_ok(&email, PASSWORD).await;
    let r = app.refresh(&token(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    let at = token(&tokens, "access_token");
    let r = app.change_password(&at, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.logout(&at, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    // (Password reset joins this journey once its routes land.)
    let again = app.login_ok(&email, NEW_PASSWORD).await;
    let events = app.all_activity(&token(&again, "access_token")).await;
    assert_eq!(
        kinds_oldest_first(&events),
        [
            "user.registered",
            "login.succeeded",
            "token.refreshed",
            "password.changed",
            "logout",
            "login.succeeded",
        ]
    );
    let user_id = tokens["user"]["id"].as_str().unwrap();
    for e in &events {
        assert_eq!(e["user_id"], user_id);
        assert_eq!(e["ip"], "127.0.0.1");
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
        assert!(e["id"].is_string() && e["outcome"] == "success", "{e}");
    }
    // No secret in any event.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        &token(&tokens, "access_token"),
        &token(&tokens, "refresh_token"),
        &token(&again, "refresh_token"),
    ] {
        assert!(!text.contains(secret), "a secret reached the activity feed");
    }
}

#[tokio::test]
async fn activity_shows_only_the_callers_events_and_pages() {
    // Every refresh stored (the default keeps one per session and hour).
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_AUDIT_REFRESH".into(), "all".into());
    })
    .await;
    let (_, a) = app.signed_in_user().await;
    let (_, b) = app.signed_in_user().await;
    let mut rt = token(&a, "refresh_token");
    for _ in 0..4 {
        let next: Value = app.refresh(&rt).await.json().await.unwrap();
        rt = token(&next, "refresh_token");
    }
    app.refresh(&token(&b, "refresh_token")).await;
    let at = token(&a, "access_token");
    // 1 registration + 1 sign-in + 4 refreshes, in pages of 2.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page: Value = app.activity(&at, &query).await.json().await.unwrap();
        pages += 1;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        seen.extend(events.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 6);
    let mut ids: Vec<_> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let newest_first = ids.clone();
    ids.sort_unstable();
    ids.reverse();
    assert_eq!(ids, newest_first, "newest first, no repeats across pages");
    ids.dedup();
    assert_eq!(ids.len(), 6);
    let a_id = a["user"]["id"].as_str().unwrap();
    assert!(
        seen.iter().all(|e| e["user_id"] == a_id),
        "only the caller's"
    );
    // Bad paging input is a 422 problem; no token is a 401.
    for q in ["?limit=0", "?limit=101", "?cursor=not-a-cursor!"] {
        assert_problem(
            app.activity(&at, q).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        )
        .await;
    }
    let r = app
        .client
        .get(app.url("/v1/me/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_audit_is_for_admins_and_filters() {
    let admin = unique_email();
    let app = spawn_app_with_admin_as(&admin, proxied).await;
    let (_, user) = app.signed_in_user().await;
    let user_id = user["user"]["id"].as_str().unwrap();
    let r = app
        .client
        .get(app.url("/v1/admin/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_problem(
        app.admin_audit(&token(&user, "access_token"), "").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    app.login_from(
        "nobody@example.com",
        "wrong password!!",
        "198.51.100.7",
        FIREFOX,
    )
    .await;
    let admin_tokens = app.login_ok(&admin, PASSWORD).await;
    let at = token(&admin_tokens, "access_token");
    let get = |q: String| {
        let app = &app;
        let at = at.clone();
        async move {
            let r = app.admin_audit(&at, &q).await;
            assert_eq!(r.status(), StatusCode::OK, "{q}");
            let page: Value = r.json().await.unwrap();
            page["events"].as_array().unwrap().clone()
        }
    };
    let mine = get(format!("?user_id={user_id}")).await;
    assert_eq!(
        kinds_oldest_first(&mine),
        ["user.registered", "login.succeeded"]
    );
    let failed = get("?type=login.failed&ip=198.51.100.7".into()).await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["user_id"].is_null());
    assert_eq!(failed[0]["details"]["reason"], "invalid_credentials");
    assert_eq!(get("?type=login.*&limit=100".into()).await.len(), 3);
    let all = get(String::new()).await;
    assert_eq!(
        all.len(),
        5,
        "the admin's creation, registration, two sign-ins, one failure"
    );
    assert!(get("?until=1000".into()).await.is_empty());
    assert_eq!(get("?since=2000-01-01T00:00:00Z".into()).await.len(), 5);
    for q in [
        "?since=yesterday",
        "?ip=not-an-ip",
        "?type=DROP%20TABLE",
        "?limit=500",
    ] {
        assert_problem(
            app.admin_audit(&at, q).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        )
        .await;
    }
}

#[tokio::test]
async fn a_new_device_triggers_the_alert_and_a_known_one_does_not() {
    let app = spawn_app_with(proxied).await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    // The first sign-in after registration is not "new".
    signed_in_from(&app, &email, "203.0.113.10", FIREFOX).await;
    assert!(new_sign_in_tokens(&app, &email).await.is_empty());
    // Same browser family, same /24: known.
    signed_in_from(&app, &email, "203.0.113.99", FIREFOX).await;
    assert!(new_sign_in_tokens(&app, &email).await.is_empty());
    // Another browser on the same network: new.
    signed_in_from(&app, &email, "203.0.113.10", CHROME).await;
    let notices = app.new_emails(&email, "New sign-in").await;
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0].text.contains("Chrome on Windows"),
        "{}",
        notices[0].text
    );
    assert!(
        notices[0].text.contains("203.0.113.10"),
        "{}",
        notices[0].text
    );
    // The known browser from another network: new.
    let last = signed_in_from(&app, &email, "198.51.100.1", FIREFOX).await;
    assert_eq!(new_sign_in_tokens(&app, &email).await.len(), 1);
    let events = app.all_activity(&token(&last, "access_token")).await;
    let flags: Vec<_> = events
        .iter()
        .rev()
        .filter(|e| e["type"] == "login.succeeded")
        .map(|e| e["details"]["new_device"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flags, ["false", "false", "true", "true"]);
}

#[tokio::test]
async fn not_me_revokes_every_session_and_sends_a_reset() {
    let app = spawn_app_with(proxied).await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let mine = signed_in_from(&app, &email, "203.0.113.10", FIREFOX).await;
    let intruder = signed_in_from(&app, &email, "198.51.100.66", CHROME).await;
    let tokens = new_sign_in_tokens(&app, &email).await;
    assert_eq!(tokens.len(), 1);
    let not_me = &tokens[0];
    // An access token is not a not-me token, and garbage is refused.
    for bad in [token(&mine, "access_token"), "garbage".to_string()] {
        assert_problem(
            app.not_me(&bad).await,
            StatusCode::BAD_REQUEST,
            "token-invalid-or-expired",
        )
        .await;
    }
    assert_eq!(app.not_me(not_me).await.status(), StatusCode::NO_CONTENT);
    for t in [&mine, &intruder] {
        assert_eq!(
            app.me_status(&token(t, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&token(t, "refresh_token")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.new_emails(&email, "Reset your password").await.len(), 1);
    // Single use.
    assert_problem(
        app.not_me(not_me).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    // The reported device is new again: the intruder's next sign-in alerts.
    signed_in_from(&app, &email, "198.51.100.66", CHROME).await;
    assert_eq!(new_sign_in_tokens(&app, &email).await.len(), 1);
    let back = signed_in_from(&app, &email, "203.0.113.10", FIREFOX).await;
    let events = app.all_activity(&token(&back, "access_token")).await;
    let reported: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "suspicious.reported")
        .collect();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0]["details"]["revoked"], "2");
    assert_eq!(reported[0]["details"]["sid"], intruder_sid(&intruder));
}

fn intruder_sid(tokens: &Value) -> String {
    crate::helpers::claims_of(&token(tokens, "access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

#[tokio::test]
async fn failed_logins_rule_fires_at_its_threshold_and_not_below() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_DETECT_ACCOUNT_FAILURES".into(), "3".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "10".into());
    })
    .await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    for _ in 0..2 {
        assert_eq!(
            app.login(&email, "wrong password!!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let events = app.all_activity(&at).await;
    assert_eq!(count(&events, "login.failed"), 2);
    assert_eq!(count(&events, "suspicious.failed_logins"), 0, "below");
    app.login(&email, "wrong password!!").await;
    app.login(&email, "wrong password!!").await;
    let events = app.all_activity(&at).await;
    assert_eq!(count(&events, "login.failed"), 4);
    assert_eq!(count(&events, "suspicious.failed_logins"), 1, "once, at 3");
    let hit = events
        .iter()
        .find(|e| e["type"] == "suspicious.failed_logins")
        .unwrap();
    assert_eq!(hit["details"]["count"], "3");
    assert_eq!(hit["outcome"], "detected");
}

async fn stuffing(app: &TestApp, admin_at: &str) -> Vec<Value> {
    let r = app
        .admin_audit(admin_at, "?type=suspicious.credential_stuffing")
        .await;
    let page: Value = r.json().await.unwrap();
    page["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn credential_stuffing_rule_fires_at_its_threshold_and_not_below() {
    let admin = unique_email();
    let app = spawn_app_with_admin_as(&admin, |m| {
        proxied(m);
        m.insert("PORTCULLIS_DETECT_STUFFING_ACCOUNTS".into(), "4".into());
    })
    .await;
    let admin_at = token(&app.login_ok(&admin, PASSWORD).await, "access_token");
    for i in 0..3 {
        let r = app
            .login_from(
                &format!("victim{i}@example.com"),
                "hunter2hunter2",
                "192.0.2.50",
                CHROME,
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The same account again and another IP do not count.
    app.login_from(
        "victim0@example.com",
        "hunter2hunter2",
        "192.0.2.50",
        CHROME,
    )
    .await;
    app.login_from(
        "victim9@example.com",
        "hunter2hunter2",
        "192.0.2.51",
        CHROME,
    )
    .await;
    assert!(stuffing(&app, &admin_at).await.is_empty(), "below");
    app.login_from(
        "victim3@example.com",
        "hunter2hunter2",
        "192.0.2.50",
        CHROME,
    )
    .await;
    app.login_from(
        "victim4@example.com",
        "hunter2hunter2",
        "192.0.2.50",
        CHROME,
    )
    .await;
    let hits = stuffing(&app, &admin_at).await;
    assert_eq!(hits.len(), 1, "once, at 4 accounts");
    assert_eq!(hits[0]["ip"], "192.0.2.50");
    assert_eq!(hits[0]["details"]["accounts"], "4");
}

#[tokio::test]
async fn refresh_reuse_rule_fires_on_reuse_and_not_on_rotation() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (email, first) = app.signed_in_user().await;
    let reader = app.login_ok(&email, PASSWORD).await;
    let at = token(&reader, "access_token");
    let rt = token(&first, "refresh_token");
    assert_eq!(app.refresh(&rt).await.status(), StatusCode::OK);
    let events = app.all_activity(&at).await;
    assert_eq!(count(&events, "token.refreshed"), 1);
    assert_eq!(count(&events, "suspicious.token_reuse"), 0);
    assert_eq!(app.refresh(&rt).await.status(), StatusCode::UNAUTHORIZED);
    let events = app.all_activity(&at).await;
    assert_eq!(count(&events, "token.reuse_detected"), 1);
    assert_eq!(count(&events, "suspicious.token_reuse"), 1);
}

#[tokio::test]
async fn burst_rule_fires_at_its_threshold_and_not_below() {
    let app = spawn_app_with(|m| {
        proxied(m);
        m.insert("PORTCULLIS_DETECT_BURST_NETWORKS".into(), "3".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    signed_in_from(&app, &email, "10.1.1.1", FIREFOX).await;
    signed_in_from(&app, &email, "10.1.1.200", FIREFOX).await; // same /24
    let second = signed_in_from(&app, &email, "10.2.2.2", FIREFOX).await;
    let at = token(&second, "access_token");
    assert_eq!(
        count(&app.all_activity(&at).await, "suspicious.burst"),
        0,
        "below"
    );
    signed_in_from(&app, &email, "10.3.3.3", FIREFOX).await;
    signed_in_from(&app, &email, "10.4.4.4", FIREFOX).await;
    let events = app.all_activity(&at).await;
    assert_eq!(count(&events, "suspicious.burst"), 1, "once, at 3 networks");
}

#[tokio::test]
async fn request_ids_are_kept_only_from_trusted_proxies() {
    let untrusted = spawn_app().await;
    let r = untrusted
        .client
        .get(untrusted.url("/healthz"))
        .header("x-request-id", "forged-id-123")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "forged-id-123");
    assert_eq!(id.len(), 36, "a fresh UUID");
    let trusted = spawn_app_with(proxied).await;
    let r = trusted
        .client
        .get(trusted.url("/nowhere"))
        .header("x-request-id", "proxy-id-456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["x-request-id"], "proxy-id-456");
}

#[tokio::test]
async fn security_metrics_exist_from_start_up() {
    let app = spawn_app().await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "portcullis_audit_writes_total",
        "portcullis_webhook_deliveries_total",
        "portcullis_suspicious_events_total{rule=\"credential_stuffing\"}",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn captcha_failures_and_rate_limits_are_recorded() {
    let admin = unique_email();
    let app = spawn_app_with_admin_as(&admin, |m| {
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "2".into());
    })
    .await;
    let at = token(&app.login_ok(&admin, PASSWORD).await, "access_token");
    let victim = "victim@example.com";
    for _ in 0..2 {
        app.login(victim, "wrong password!!").await;
    }
    assert_problem(
        app.login(victim, "wrong password!!").await,
        StatusCode::BAD_REQUEST,
        "captcha-required",
    )
    .await;
    let mut limited = false;
    for _ in 0..25 {
        if app.login(victim, "wrong password!!").await.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the per-IP sign-in budget ran out");
    let page: Value = app
        .admin_audit(&at, "?type=captcha.failed")
        .await
        .json()
        .await
        .unwrap();
    assert!(!page["events"].as_array().unwrap().is_empty());
    let page: Value = app
        .admin_audit(&at, "?type=rate_limited")
        .await
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["action"], "sign_in");
    assert_eq!(events[0]["outcome"], "failure");
}

#[tokio::test]
async fn a_new_device_is_mailed_with_a_not_me_link_that_ends_every_session_and_mails_a_reset() {
    let app = spawn_app_with(proxied).await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let mine = signed_in_from(&app, &email, "203.0.113.10", FIREFOX).await;
    signed_in_from(&app, &email, "203.0.113.10", CHROME).await;
    let mail = app.wait_for_email(&email, "New sign-in").await;
    assert!(mail.text.contains("Chrome on Windows"), "{}", mail.text);
    assert!(mail.text.contains("203.0.113.10"), "{}", mail.text);
    let link = mail.link();
    assert!(link.contains("/not-me?token="), "{link}");
    // Opening (or prefetching) the link uses nothing: the page is a form.
    let path = &link[link.find("/not-me").unwrap()..];
    let page = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        app.me_status(&token(&mine, "access_token")).await,
        StatusCode::OK
    );
    // The token is the mail's, signed at send time; it works once.
    assert_eq!(
        app.not_me(&mail.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.me_status(&token(&mine, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let again = app.not_me(&mail.token()).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let reset = app.wait_for_email(&email, "Reset your password").await;
    assert!(reset.link().contains("/reset-password?token="));
}
