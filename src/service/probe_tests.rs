//! Service-level regression tests of the outside probe's findings that
//! need the token service's keys.

use super::*;
use crate::auth::tokens::{MFA_TYP, REFRESH_TYP, RefreshClaims, RegisteredClaims};

const START: i64 = 1_900_000_025;
const PASSWORD: &str = "correct horse battery staple 42";

async fn signed_in(core: &Core, email: &str) -> IssuedTokens {
    crate::service::test_signed_up(core, email, PASSWORD).await
}

/// M7: refresh tokens now carry `<issuer>/refresh`; one issued before the
/// upgrade (the access audience) still refreshes during its lifetime.
#[tokio::test]
async fn m7_refresh_token_of_the_old_shape_still_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let core = test_core(dir.path(), START).await;
    let t = signed_in(&core, "legacy@example.com").await;
    let now = core.clock.now_u64();
    let claims = core.tokens.verify_refresh(&t.refresh_token, now).unwrap();
    assert_eq!(claims.aud, core.tokens.audience_for(REFRESH_TYP));
    assert_ne!(claims.aud, core.tokens.audience());
    // The same token as the previous release signed it.
    let legacy = RefreshClaims {
        registered: RegisteredClaims {
            aud: core.tokens.audience().to_string(),
            ..claims.registered.clone()
        },
        ..claims
    };
    let old_shape = core.tokens.sign(REFRESH_TYP, &legacy).unwrap();
    let renewed = core
        .refresh(&old_shape, &ClientInfo::default())
        .await
        .unwrap();
    let claims = core
        .tokens
        .verify_refresh(&renewed.refresh_token, now)
        .unwrap();
    assert_eq!(claims.aud, core.tokens.audience_for(REFRESH_TYP));
    // Another audience is still refused.
    let foreign = RefreshClaims {
        registered: RegisteredClaims {
            aud: "someone-else".into(),
            ..claims.registered.clone()
        },
        ..claims
    };
    let foreign = core.tokens.sign(REFRESH_TYP, &foreign).unwrap();
    assert!(
        core.refresh(&foreign, &ClientInfo::default())
            .await
            .is_err()
    );
}

/// M7: every kind has its own audience; an access token has the
/// configured one.
#[tokio::test]
async fn m7_each_token_kind_has_its_own_audience() {
    let dir = tempfile::tempdir().unwrap();
    let core = test_core(dir.path(), START).await;
    let issuer = core.tokens.issuer().trim_end_matches('/').to_string();
    assert_eq!(
        core.tokens.audience_for(crate::auth::tokens::ACCESS_TYP),
        core.tokens.audience()
    );
    assert_eq!(core.tokens.audience_for(MFA_TYP), format!("{issuer}/mfa"));
    assert_eq!(
        core.tokens.audience_for(REFRESH_TYP),
        format!("{issuer}/refresh")
    );
    assert_eq!(
        core.tokens.audience_for(crate::auth::tokens::NOT_ME_TYP),
        format!("{issuer}/not-me")
    );
    let now = core.clock.now_u64();
    let (mfa, claims) = core.tokens.issue_mfa("u1", &[], now, 300).unwrap();
    assert_eq!(claims.aud, format!("{issuer}/mfa"));
    assert!(core.tokens.verify_mfa(&mfa, now).is_ok());
    assert!(core.tokens.verify_access(&mfa, now).is_err());
}
