//! The probe's findings about the HTTP layer and tokens: bounded avatar
//! decoding (M6), token audiences (M7), request deadlines over HTTP/1 and
//! h2c (L12, L2), introspection roles (L5), userinfo, and the answers to
//! unparsable requests and malformed OAuth calls.

use super::*;

/// A PNG that decodes to a large image (`side`² RGBA) from a small body.
fn heavy_png(side: u32) -> Vec<u8> {
    let img = image::RgbaImage::new(side, side);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// M6: simultaneous uploads never decode more than the bound at once.
#[tokio::test]
async fn m6_avatar_decodes_are_bounded_in_concurrency() {
    let app = spawn_app().await;
    let bound = portcullis::media::decode_limit();
    let body = heavy_png(1536);
    let mut users = Vec::new();
    for _ in 0..bound * 4 {
        let (_, tokens) = app.signed_in_user().await;
        users.push(token(&tokens, "access_token"));
    }
    let uploads = users.iter().map(|at| {
        let (app, body) = (&app, body.clone());
        async move { app.put_avatar(at, "image/png", body).await.status() }
    });
    let statuses = futures_util::future::join_all(uploads).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let peak = portcullis::media::decode_peak();
    assert!(
        (1..=bound).contains(&peak),
        "{peak} decodes ran at once, bound {bound}"
    );
}

/// M6: uploads are limited per user (429 past the budget).
#[tokio::test]
async fn m6_avatar_uploads_are_limited_per_user() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let body = crate::avatar::png_bytes(32, 32);
    for _ in 0..10 {
        assert_eq!(
            app.put_avatar(&at, "image/png", body.clone())
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_problem(
        app.put_avatar(&at, "image/png", body.clone()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
    )
    .await;
    // Another user has a budget of their own.
    let (_, tokens) = app.signed_in_user().await;
    let other = token(&tokens, "access_token");
    assert_eq!(
        app.put_avatar(&other, "image/png", body).await.status(),
        StatusCode::OK
    );
}

/// Decodes `jwt` as a resource server that checks signature, `iss`, `aud`
/// (the access tokens' `portcullis`) and `exp`, and not `typ` (PyJWT's
/// defaults).
async fn decodes_as_access_token(app: &TestApp, jwt: &str) -> bool {
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = app.get_json("/.well-known/openid-configuration").await["issuer"]
        .as_str()
        .unwrap()
        .to_string();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    // A key that is not published (the refresh tokens' HMAC key) verifies nothing.
    let Some(jwk) = jwks.find(header.kid.as_deref().unwrap()) else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&["portcullis"]);
    v.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v).is_ok()
}

/// M7: refresh, `mfa+jwt` and "not me" tokens carry audiences of their own,
/// which a resource server expecting access tokens refuses.
#[tokio::test]
async fn m7_other_tokens_fail_a_resource_servers_audience_check() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let first: Value = app
        .login_from(&email, PASSWORD, "203.0.113.10", ua)
        .await
        .json()
        .await
        .unwrap();
    // The control: an access token passes.
    assert!(decodes_as_access_token(&app, &token(&first, "access_token")).await);
    assert!(!decodes_as_access_token(&app, &token(&first, "refresh_token")).await);
    // A sign-in from a new network mails a "not me" link.
    app.login_from(&email, PASSWORD, "198.51.100.1", ua).await;
    let not_me: Vec<String> = app
        .new_emails(&email, "New sign-in")
        .await
        .iter()
        .map(crate::mailbox::Mail::token)
        .collect();
    assert!(!not_me.is_empty());
    for t in &not_me {
        assert!(!decodes_as_access_token(&app, t).await);
    }
    // An mfa_token (password only).
    app.enable_mfa(&token(&first, "access_token")).await;
    let mfa_token = app.login_mfa_token(&email).await;
    assert!(!decodes_as_access_token(&app, &mfa_token).await);
    // Each still works where it belongs.
    assert_eq!(
        app.not_me(&not_me[0]).await.status(),
        StatusCode::NO_CONTENT
    );
}

/// M7 where a refresh token is signed by a published key
/// (`PORTCULLIS_REFRESH_SIGNING=signing-key`, the rolling-upgrade mode): its
/// own audience is what a resource server refuses.
#[tokio::test]
async fn m7_a_ring_signed_refresh_token_fails_the_audience_check() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_SIGNING".into(), "signing-key".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let pair: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    let refresh = token(&pair, "refresh_token");
    let kid = jsonwebtoken::decode_header(&refresh).unwrap().kid.unwrap();
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let published = jwks["keys"].as_array().unwrap();
    assert!(
        published.iter().any(|k| k["kid"] == kid.as_str()),
        "signed by a published key in this mode"
    );
    assert!(decodes_as_access_token(&app, &token(&pair, "access_token")).await);
    assert!(!decodes_as_access_token(&app, &refresh).await);
}

/// Reads what the server sends on `stream` until it closes (at most `limit`).
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// L12: a body trickled past the request deadline gets 408 (problem+json),
/// not 413.
#[tokio::test]
async fn l12_a_body_trickled_past_the_deadline_is_408() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_HTTP_TIMEOUT".into(), "1s".into());
    })
    .await;
    let host = app.addr.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let trickle = async {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    // The answer comes while the client still trickles.
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    let answer = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("request-timeout"), "{answer}");
}

const INTROSPECTION: &str = "resource-server-credential-1";

/// L5: introspection reports the roles the account has now, not the
/// token's.
#[tokio::test]
async fn l5_introspection_reads_roles_from_the_store() {
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_INTROSPECTION_TOKEN".into(),
            INTROSPECTION.into(),
        );
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let user = app.store.user_by_email(&email).await.unwrap().unwrap();
    let set_roles = |roles: &[&str]| portcullis::store::AdminUpdate {
        roles: Some(roles.iter().map(|r| r.to_string()).collect()),
        ..Default::default()
    };
    app.store
        .admin_update(&user.id, &set_roles(&["user", "admin"]), 1)
        .await
        .unwrap();
    let at = token(&app.login_ok(&email, PASSWORD).await, "access_token");
    let i: Value = app
        .oauth_introspect(Some(INTROSPECTION), &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["roles"], json!(["user", "admin"]));
    // Demoted: the same token now introspects without `admin`.
    app.store
        .admin_update(&user.id, &set_roles(&["user"]), 2)
        .await
        .unwrap();
    let i: Value = app
        .oauth_introspect(Some(INTROSPECTION), &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["roles"], json!(["user"]));
}

/// Informational: userinfo returns `picture` and `locale` when the user
/// has them.
#[tokio::test]
async fn userinfo_returns_picture_and_locale() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let r = app.update_me(&at, &json!({"locale": "fr-CA"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .put_avatar(&at, "image/png", crate::avatar::png_bytes(40, 40))
        .await;
    let me: Value = r.json().await.unwrap();
    let info: Value = app.userinfo(&at).await.json().await.unwrap();
    assert_eq!(info["locale"], "fr-CA");
    assert_eq!(info["picture"], me["avatar_url"]);
    assert!(info["picture"].as_str().unwrap().contains("/avatar"));
}

/// L2: an HTTP/2 (h2c) request whose body trickles is cut at the deadline
/// although the client sends PINGs (each makes the server write an ack).
#[tokio::test]
async fn l2_h2c_pings_do_not_extend_the_request_deadline() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_HTTP_TIMEOUT".into(), "1s".into());
        m.insert("PORTCULLIS_IDLE_TIMEOUT".into(), "2s".into());
    })
    .await;
    let host = app.addr.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut client, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = conn.ping_pong().unwrap();
    let connection = tokio::spawn(conn);
    let req = poem::http::Request::post(format!("{}/v1/sessions", app.addr))
        .header("content-type", "application/json")
        .header("content-length", "1000")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"{"), false)
        .unwrap();
    let started = Instant::now();
    // A byte and a PING every 250 ms, for up to 8 s.
    let pinger = async {
        for _ in 0..32 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if body
                .send_data(bytes::Bytes::from_static(b" "), false)
                .is_err()
            {
                break;
            }
            if ping_pong.ping(h2::Ping::opaque()).await.is_err() {
                break;
            }
        }
    };
    let answered = async {
        match response.await {
            Ok(r) => Some(r.status()),
            Err(_) => None,
        }
    };
    let cut = tokio::select! {
        status = answered => {
            // Either a 408 for the stream, or the connection closed.
            assert!(status.is_none_or(|s| s.as_u16() == 408), "{status:?}");
            true
        }
        () = pinger => false,
    };
    assert!(cut, "the trickling h2 request was still open after 8 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    connection.abort();
    // Plain requests over h2 still work.
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(conn);
    let req = poem::http::Request::get(format!("{}/healthz", app.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    assert_eq!(response.await.unwrap().status().as_u16(), 200);
    connection.abort();
}

/// hyper's own answers to requests it cannot parse (a garbage request
/// line, `Content-Length: abc`, too many headers) are problem+json with
/// the security headers, not empty.
#[tokio::test]
async fn unparsable_requests_get_problem_json() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let host = app.addr.trim_start_matches("http://").to_string();
    let many_headers: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    for (raw, status) in [
        ("GARBAGE\r\n\r\n".to_string(), "400"),
        (
            "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_string(),
            "400",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            "431",
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(
            lower.contains("x-content-type-options: nosniff"),
            "{answer}"
        );
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let json: Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"].to_string(), status);
    }
    // The connection-level rewrite leaves normal answers alone.
    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
}

/// Informational: `/oauth/token` without a form body answers an RFC 6749
/// error; a wrong introspection credential is named as such.
#[tokio::test]
async fn oauth_token_without_a_form_and_introspection_refusal_speak_oauth() {
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_INTROSPECTION_TOKEN".into(),
            INTROSPECTION.into(),
        );
    })
    .await;
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let mut r = app.client.post(app.url("/oauth/token"));
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r
            .body("grant_type=refresh_token&refresh_token=x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{content_type:?}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
    }
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let r = app.oauth_introspect(Some(&at), &at).await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("PORTCULLIS_INTROSPECTION_TOKEN"),
        "{p}"
    );
}
