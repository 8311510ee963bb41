//! The lean read path at the service level: the cached bearer
//! check answers like the full one, and a measuring loop for callgrind.

use super::*;

const START: i64 = 1_900_000_025;
const PASSWORD: &str = "correct horse battery staple 42";

async fn core(dir: &std::path::Path) -> Core {
    super::test_core(dir, START).await
}

async fn signed_in(core: &Core) -> IssuedTokens {
    super::test_signed_up(core, "reader@example.com", PASSWORD).await
}

/// The request path before the lean read path: a full signature check,
/// the session read and the account read, each on the blocking pool.
async fn me_uncached(core: &Core, token: &str) -> Result<Account> {
    let claims = core.tokens.verify_access(token, core.clock.now_u64())?;
    let now = core.clock.now();
    let live = core
        .store
        .session(&claims.sid)
        .await?
        .is_some_and(|s| s.user_id == claims.sub && s.is_active(now));
    if !live {
        return Err(Error::TokenInvalid("token revoked"));
    }
    core.account(&claims.sub).await
}

/// The request path now.
async fn me_cached(core: &Core, token: &str) -> Result<Account> {
    let t = core.verify_bearer(token)?;
    core.me_checked(&t).await
}

#[tokio::test]
async fn the_cached_path_answers_like_the_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let core = core(dir.path()).await;
    let t = signed_in(&core).await;
    let at = t.access_token.as_str();
    for _ in 0..3 {
        assert_eq!(
            me_cached(&core, at).await.unwrap(),
            me_uncached(&core, at).await.unwrap()
        );
        core.authenticate(at).await.unwrap();
    }
    let who = core.authenticate(at).await.unwrap();
    core.logout(&who, sessions::LogoutScope::Local, &ClientInfo::default())
        .await
        .unwrap();
    assert!(matches!(
        me_cached(&core, at).await,
        Err(Error::TokenInvalid("token revoked"))
    ));
    assert!(matches!(
        core.authenticate(at).await,
        Err(Error::TokenInvalid("token revoked"))
    ));
    assert!(me_uncached(&core, at).await.is_err());
}

/// `READ_PATH_MODE=cached|uncached|none READ_PATH_N=1000 cargo test --lib
/// read_path_cost -- --ignored`, under `valgrind --tool=callgrind`: the
/// instructions of one `GET /v1/me` use-case call are
/// (Ir(mode, 2N) - Ir(mode, N)) / N (HTTP, JSON rendering and logging not
/// included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measuring loop, run by hand under callgrind"]
async fn read_path_cost() {
    let mode = std::env::var("READ_PATH_MODE").unwrap_or_else(|_| "cached".into());
    let n: usize = std::env::var("READ_PATH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let core = core(dir.path()).await;
    let t = signed_in(&core).await;
    let at = t.access_token.as_str();
    me_cached(&core, at).await.unwrap();
    me_uncached(&core, at).await.unwrap();
    let start = std::time::Instant::now();
    for _ in 0..n {
        match mode.as_str() {
            "cached" => {
                me_cached(&core, at).await.unwrap();
            }
            "uncached" => {
                me_uncached(&core, at).await.unwrap();
            }
            _ => {}
        }
    }
    println!(
        "{mode}: {n} calls, {} ns/call (wall clock)",
        start.elapsed().as_nanos() / n.max(1) as u128
    );
}
