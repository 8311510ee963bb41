//! What refreshes leave in the audit log (`PORTCULLIS_AUDIT_REFRESH`): by
//! default one stored and delivered `token.refreshed` per session and hour
//! (the first refresh in it, carrying the session's generation), grace-
//! window refreshes always; `all` stores every refresh.

use super::*;

/// Refreshes `n` times along the chain from `rt`; returns the last token.
async fn refresh_chain(app: &TestApp, mut rt: String, n: usize) -> String {
    for _ in 0..n {
        let r = app.refresh(&rt).await;
        assert_eq!(r.status(), StatusCode::OK);
        rt = token(&r.json::<Value>().await.unwrap(), "refresh_token");
    }
    rt
}

impl Ctx {
    /// Stored `token.refreshed` events of one session, oldest first.
    async fn refreshes_of(&self, sid: &Value) -> Vec<Value> {
        let mut events: Vec<Value> = self
            .stored("token.refreshed")
            .await
            .into_iter()
            .filter(|e| e["details"]["sid"] == *sid)
            .collect();
        events.reverse();
        events
    }

    /// Webhook bodies of `token.refreshed` for one session.
    fn delivered_refreshes(&self, sid: &Value) -> usize {
        self.hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "token.refreshed" && b["data"]["details"]["sid"] == *sid)
            .count()
    }
}

#[tokio::test]
async fn one_stored_and_delivered_refresh_per_session_and_hour_by_default() {
    let mut c = ctx().await;
    let (_, tokens, id) = c.user().await;
    let sid = claims_of(&at(&tokens))["sid"].clone();
    let rt = refresh_chain(&c.app, token(&tokens, "refresh_token"), 5).await;
    let events = c.refreshes_of(&sid).await;
    assert_eq!(events.len(), 1, "the first refresh only: {events:?}");
    assert_eq!(events[0]["details"]["generation"], "1");
    assert_eq!(events[0]["user_id"], id.as_str());
    // An hour later, the first refresh of the new hour is stored, and its
    // generation says four refreshes went unstored in between.
    c.app.clock.advance(3600);
    // (The admin's access token has expired by now.)
    c.admin_at = at(&c.app.login_ok(&c.admin_email, PASSWORD).await);
    let rt = refresh_chain(&c.app, rt, 3).await;
    let events = c.refreshes_of(&sid).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["details"]["generation"], "6");
    // The webhook got exactly the stored ones.
    let last = c.recorded("token.refreshed", Some(&id)).await;
    assert_eq!(last["id"], events[1]["id"]);
    c.delivered(events[0]["id"].as_str().unwrap()).await;
    assert_eq!(c.delivered_refreshes(&sid), 2);
    // A grace-window refresh (the retired token again, within 10 s) is
    // always stored, even in an hour that already has its event.
    let r = c.app.refresh(&rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(c.app.refresh(&rt).await.status(), StatusCode::OK);
    let events = c.refreshes_of(&sid).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2]["details"]["grace"], "true");
    // A second session of the same user has its own hour.
    let other = c.app.login_ok(&c.admin_email, PASSWORD).await;
    let other_sid = claims_of(&at(&other))["sid"].clone();
    refresh_chain(&c.app, token(&other, "refresh_token"), 2).await;
    assert_eq!(c.refreshes_of(&other_sid).await.len(), 1);
}

#[tokio::test]
async fn audit_refresh_all_stores_every_refresh() {
    let c = ctx_with(|m| {
        m.insert("PORTCULLIS_AUDIT_REFRESH".into(), "all".into());
    })
    .await;
    let (_, tokens, _) = c.user().await;
    let sid = claims_of(&at(&tokens))["sid"].clone();
    refresh_chain(&c.app, token(&tokens, "refresh_token"), 4).await;
    let events = c.refreshes_of(&sid).await;
    let generations: Vec<&str> = events
        .iter()
        .map(|e| e["details"]["generation"].as_str().unwrap())
        .collect();
    assert_eq!(generations, ["1", "2", "3", "4"]);
}
