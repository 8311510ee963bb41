//! The store-backed DPoP rules, on the embedded store and, when
//! `PORTCULLIS_TEST_MONGODB_URI` is set, on MongoDB: a proof's `jti` works
//! once; server nonces; `required` mode; the binding of sessions and the
//! check of bound tokens; refresh of a bound session.

use std::collections::BTreeMap;

use secrecy::SecretString;

use super::*;
use crate::auth::dpop::ProofSigner;
use crate::service::{ClientInfo, Registration, SignIn};

const START: i64 = 1_900_000_000;
const PASSWORD: &str = "correct horse battery staple 42";

/// Cores over every backend the environment offers, with `extra` settings.
async fn cores(dir: &std::path::Path, extra: &[(&str, &str)]) -> Vec<(&'static str, Core)> {
    let base = |sub: &str| {
        let mut map = BTreeMap::from([
            (
                "PORTCULLIS_DATA_DIR".to_string(),
                dir.join(sub).join("data").display().to_string(),
            ),
            (
                "PORTCULLIS_KEYS_DIR".to_string(),
                dir.join(sub).join("keys").display().to_string(),
            ),
            ("PORTCULLIS_BCRYPT_COST".to_string(), "4".to_string()),
            ("PORTCULLIS_RATE_LIMIT".to_string(), "off".to_string()),
            (
                "PORTCULLIS_PUBLIC_URL".to_string(),
                "http://localhost:8080".to_string(),
            ),
        ]);
        for (k, v) in extra {
            map.insert(k.to_string(), v.to_string());
        }
        map
    };
    let mut out = Vec::new();
    let settings = crate::config::Settings::from_map(&base("embedded")).unwrap();
    out.push((
        "embedded",
        crate::startup::build_core(settings, crate::clock::Clock::manual(START))
            .await
            .unwrap(),
    ));
    if let Ok(uri) = std::env::var("PORTCULLIS_TEST_MONGODB_URI") {
        let mut map = base("mongo");
        map.insert("PORTCULLIS_MONGODB_URI".into(), uri);
        map.insert(
            "PORTCULLIS_MONGODB_DB".into(),
            format!("dpop_{}", uuid::Uuid::new_v4().simple()),
        );
        let settings = crate::config::Settings::from_map(&map).unwrap();
        out.push((
            "mongo",
            crate::startup::build_core(settings, crate::clock::Clock::manual(START))
                .await
                .unwrap(),
        ));
    }
    out
}

fn input<'a>(
    proofs: &'a [&'a str],
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
) -> DpopInput<'a> {
    DpopInput {
        proofs,
        method,
        path,
        access_token: token,
        issues_tokens: method == "POST" && path.starts_with("/v1/sessions"),
    }
}

async fn sign_up(core: &Core, email: &str) {
    core.register(
        Registration {
            email: email.into(),
            password: SecretString::from(PASSWORD),
            display_name: None,
            locale: None,
            captcha: None,
        },
        &ClientInfo::default(),
    )
    .await
    .unwrap();
}

/// Signs in inside the scope of a proof by `signer` (or none).
async fn sign_in(core: &Core, email: &str, signer: Option<&ProofSigner>) -> IssuedTokens {
    let now = core.clock.now_u64();
    let found = match signer {
        Some(s) => {
            let p = s.proof("POST", "http://localhost:8080/v1/sessions", now, None, None);
            let jkt = core
                .check_dpop_request(&input(&[&p], "POST", "/v1/sessions", None))
                .await
                .unwrap();
            RequestDpop {
                jkt,
                dpop_scheme: false,
            }
        }
        None => RequestDpop::default(),
    };
    let signed = with_request_dpop(
        found,
        core.login(
            email,
            SecretString::from(PASSWORD),
            None,
            ClientInfo::default(),
        ),
    )
    .await
    .unwrap();
    match signed {
        SignIn::Tokens(t) => *t,
        SignIn::MfaRequired(_) => panic!("no second factor here"),
    }
}

use crate::service::IssuedTokens;

#[tokio::test]
async fn a_proof_is_accepted_once_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, core) in cores(dir.path(), &[]).await {
        let s = ProofSigner::es256().unwrap();
        let now = core.clock.now_u64();
        let p = s.proof("GET", "http://localhost:8080/v1/me", now, Some("tok"), None);
        let first = core
            .check_dpop_request(&input(&[&p], "GET", "/v1/me", Some("tok")))
            .await
            .unwrap();
        assert_eq!(first.as_deref(), Some(s.jkt().as_str()), "{backend}");
        let again = core
            .check_dpop_request(&input(&[&p], "GET", "/v1/me", Some("tok")))
            .await;
        assert!(
            matches!(
                again,
                Err(Error::DpopProofInvalid("the proof was already used"))
            ),
            "{backend}: {again:?}"
        );
        // A new proof (new jti) is fine.
        let p2 = s.proof("GET", "http://localhost:8080/v1/me", now, Some("tok"), None);
        assert!(
            core.check_dpop_request(&input(&[&p2], "GET", "/v1/me", Some("tok")))
                .await
                .is_ok()
        );
        // The expected htu comes from the public URL.
        let other = s.proof("GET", "http://evil.example/v1/me", now, Some("tok"), None);
        assert!(
            core.check_dpop_request(&input(&[&other], "GET", "/v1/me", Some("tok")))
                .await
                .is_err()
        );
        // Two DPoP headers, or a DPoP-scheme token without a proof.
        let p3 = s.proof("GET", "http://localhost:8080/v1/me", now, Some("tok"), None);
        let p4 = s.proof("GET", "http://localhost:8080/v1/me", now, Some("tok"), None);
        assert!(
            core.check_dpop_request(&input(&[&p3, &p4], "GET", "/v1/me", Some("tok")))
                .await
                .is_err()
        );
        assert!(
            core.check_dpop_request(&input(&[], "GET", "/v1/me", Some("tok")))
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn nonce_mode_asks_for_the_server_nonce() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, core) in cores(dir.path(), &[("PORTCULLIS_DPOP_NONCE", "true")]).await {
        let s = ProofSigner::eddsa().unwrap();
        let now = core.clock.now_u64();
        let p = s.proof("POST", "http://localhost:8080/v1/sessions", now, None, None);
        let Err(Error::DpopNonceRequired(nonce)) = core
            .check_dpop_request(&input(&[&p], "POST", "/v1/sessions", None))
            .await
        else {
            panic!("{backend}: a proof without a nonce must be refused with one")
        };
        let p = s.proof(
            "POST",
            "http://localhost:8080/v1/sessions",
            now,
            None,
            Some("1.bogus"),
        );
        assert!(matches!(
            core.check_dpop_request(&input(&[&p], "POST", "/v1/sessions", None))
                .await,
            Err(Error::DpopNonceRequired(_))
        ));
        let p = s.proof(
            "POST",
            "http://localhost:8080/v1/sessions",
            now,
            None,
            Some(&nonce),
        );
        assert!(
            core.check_dpop_request(&input(&[&p], "POST", "/v1/sessions", None))
                .await
                .is_ok()
        );
        assert_eq!(core.dpop_nonce().as_deref(), Some(nonce.as_str()));
    }
}

#[tokio::test]
async fn required_mode_refuses_token_requests_without_a_proof() {
    let dir = tempfile::tempdir().unwrap();
    for (_, core) in cores(dir.path(), &[("PORTCULLIS_DPOP", "required")]).await {
        assert!(matches!(
            core.check_dpop_request(&input(&[], "POST", "/v1/sessions", None))
                .await,
            Err(Error::DpopRequired)
        ));
        assert_eq!(
            core.check_dpop_request(&input(&[], "GET", "/v1/captcha", None))
                .await
                .unwrap(),
            None
        );
        // The seam holds even where the HTTP layer let a request through.
        assert!(matches!(core.request_dpop_jkt(), Err(Error::DpopRequired)));
        sign_up(&core, "req@example.com").await;
        let refused = core
            .login(
                "req@example.com",
                SecretString::from(PASSWORD),
                None,
                ClientInfo::default(),
            )
            .await;
        assert!(matches!(refused, Err(Error::DpopRequired)), "{refused:?}");
    }
}

#[tokio::test]
async fn a_proof_at_sign_in_binds_the_session_and_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, core) in cores(dir.path(), &[]).await {
        sign_up(&core, "bind@example.com").await;
        let key = ProofSigner::es256().unwrap();
        let t = sign_in(&core, "bind@example.com", Some(&key)).await;
        assert_eq!(t.token_type(), "DPoP", "{backend}");
        let claims = core
            .tokens
            .verify_access(&t.access_token, core.clock.now_u64())
            .unwrap();
        assert_eq!(claims.cnf.as_ref().map(|c| c.jkt.clone()), Some(key.jkt()));
        let stored = core.store.session(&t.session_id).await.unwrap().unwrap();
        assert_eq!(stored.dpop_jkt, Some(key.jkt()));
        // Outside any proof (a Bearer request): refused, twice (the second
        // time from the verified-token cache).
        for _ in 0..2 {
            assert!(matches!(
                core.verify_bearer(&t.access_token),
                Err(Error::DpopBinding(_))
            ));
        }
        // The DPoP scheme with a proof by the key: fine; by another key: not.
        let ok = RequestDpop {
            jkt: Some(key.jkt()),
            dpop_scheme: true,
        };
        assert!(
            with_request_dpop(ok, core.authenticate(&t.access_token))
                .await
                .is_ok()
        );
        let other = RequestDpop {
            jkt: Some(ProofSigner::es256().unwrap().jkt()),
            dpop_scheme: true,
        };
        assert!(
            with_request_dpop(other, async { core.verify_bearer(&t.access_token) })
                .await
                .is_err()
        );
        // A bearer session refuses the DPoP scheme.
        let plain = sign_in(&core, "bind@example.com", None).await;
        assert_eq!(plain.token_type(), "Bearer");
        assert!(core.verify_bearer(&plain.access_token).is_ok());
        let dpop = RequestDpop {
            jkt: Some(key.jkt()),
            dpop_scheme: true,
        };
        assert!(
            with_request_dpop(dpop, async { core.verify_bearer(&plain.access_token) })
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_bound_refresh_needs_the_key_and_a_thief_does_not_burn_the_family() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, core) in cores(dir.path(), &[]).await {
        sign_up(&core, "refresh@example.com").await;
        let key = ProofSigner::es256().unwrap();
        let t = sign_in(&core, "refresh@example.com", Some(&key)).await;
        let client = ClientInfo::default();
        // No proof, then another key's proof: refused, nothing rotated.
        let none = core.refresh(&t.refresh_token, &client).await;
        assert!(
            matches!(none, Err(Error::DpopBinding(_))),
            "{backend}: {none:?}"
        );
        let thief = RequestDpop {
            jkt: Some(ProofSigner::es256().unwrap().jkt()),
            dpop_scheme: false,
        };
        let stolen = with_request_dpop(thief, core.refresh(&t.refresh_token, &client)).await;
        assert!(matches!(stolen, Err(Error::DpopBinding(_))));
        let s = core.store.session(&t.session_id).await.unwrap().unwrap();
        assert!(
            s.revoked_at.is_none() && s.generation == 0,
            "{backend}: untouched"
        );
        // The owner refreshes as usual.
        let owner = RequestDpop {
            jkt: Some(key.jkt()),
            dpop_scheme: false,
        };
        let next = with_request_dpop(owner, core.refresh(&t.refresh_token, &client))
            .await
            .unwrap();
        assert_eq!(next.token_type(), "DPoP");
        assert_eq!(next.dpop_jkt, Some(key.jkt()));
        // A bearer session refreshed with a proof becomes bound to its key.
        let plain = sign_in(&core, "refresh@example.com", None).await;
        let up = RequestDpop {
            jkt: Some(key.jkt()),
            dpop_scheme: false,
        };
        let bound = with_request_dpop(up, core.refresh(&plain.refresh_token, &client))
            .await
            .unwrap();
        assert_eq!(bound.token_type(), "DPoP");
        assert!(core.refresh(&bound.refresh_token, &client).await.is_err());
    }
}
