//! Aggregated refusals (CAPTCHA failures, rate limits: one stored event per
//! network, action and minute), the store footprint of a flood from one
//! client, and the metrics the book's metrics page names.

use super::*;

#[tokio::test]
async fn captcha_failed_is_aggregated_stored_and_delivered_once() {
    let c = ctx_with(|m| {
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "2".into());
    })
    .await;
    let victim = "victim@example.com";
    for _ in 0..2 {
        c.app.login(victim, "wrong password!!").await;
    }
    // Past the failures: sign-in needs a CAPTCHA, and none is sent.
    for _ in 0..7 {
        let r = c.app.login(victim, "wrong password!!").await;
        assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    }
    let events = c.stored("captcha.failed").await;
    assert_eq!(events.len(), 1, "one event: {events:?}");
    assert_eq!(events[0]["details"]["count"], "7");
    assert_eq!(events[0]["details"]["network"], "127.0.0.0/24");
    assert_eq!(events[0]["outcome"], "failure");
    // More in the same minute add to the same event.
    for _ in 0..3 {
        c.app.login(victim, "wrong password!!").await;
    }
    let events = c.stored("captcha.failed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["count"], "10");
    // The webhook gets one delivery when the minute is over, with the count.
    c.close_refusal_windows().await;
    let e = c.recorded("captcha.failed", None).await;
    assert_eq!(e["details"]["count"], "10");
    let deliveries = c
        .hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "captcha.failed")
        .count();
    assert_eq!(deliveries, 1);
}

#[tokio::test]
async fn rate_limited_is_aggregated_per_minute_stored_and_delivered() {
    let c = ctx_with(|m| {
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
    })
    .await;
    let mut refused = 0;
    for _ in 0..60 {
        if c.app
            .login("x@example.com", "wrong password!!")
            .await
            .status()
            == StatusCode::TOO_MANY_REQUESTS
        {
            refused += 1;
        }
    }
    assert!(refused > 10, "the budget ran out: {refused}");
    let events = c.stored("rate_limited").await;
    let total: u64 = events
        .iter()
        .map(|e| {
            e["details"]["count"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, refused);
    assert!(events.len() <= 2, "one per minute: {events:?}");
    assert_eq!(events[0]["details"]["action"], "sign_in");
    // One webhook per stored event once the minute is over, with its count.
    c.close_refusal_windows().await;
    for e in &events {
        let body = c.delivered(e["id"].as_str().unwrap()).await;
        assert_eq!(body["data"]["details"]["count"], e["details"]["count"]);
    }
    let deliveries = c
        .hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "rate_limited")
        .count();
    assert_eq!(deliveries, events.len());
}

/// Bytes the audit log and the webhook queue take: the redb file (embedded)
/// or the BSON of both collections (MongoDB), and how many events.
async fn store_footprint(app: &TestApp, mongo_db: Option<&str>) -> (u64, u64) {
    match mongo_db {
        None => {
            let size = std::fs::metadata(app.data_path.join("portcullis.redb"))
                .unwrap()
                .len();
            (size, 0)
        }
        Some(db) => {
            use futures_util::TryStreamExt;
            let uri = std::env::var("PORTCULLIS_TEST_MONGODB_URI").unwrap();
            let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
            let db = client.database(db);
            let mut bytes = 0;
            let mut docs = 0;
            for coll in ["audit_events", "audit_counts", "webhook_queue"] {
                let all: Vec<mongodb::bson::Document> = db
                    .collection::<mongodb::bson::Document>(coll)
                    .find(mongodb::bson::doc! {})
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                for d in &all {
                    bytes += mongodb::bson::to_vec(d).unwrap().len() as u64;
                }
                docs += all.len() as u64;
            }
            (bytes, docs)
        }
    }
}

#[tokio::test]
async fn a_flood_of_refusals_from_one_client_leaves_the_store_bounded() {
    let mongo_db = (std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo"))
        .then(|| format!("portcullis_flood_{}", uuid::Uuid::new_v4().simple()));
    let db = mongo_db.clone();
    let c = ctx_with(move |m| {
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
        if let Some(db) = db {
            m.insert("PORTCULLIS_MONGODB_DB".into(), db);
        }
    })
    .await;
    // Everything so far stored, then measured.
    let all_before = c.stored("*").await.len();
    let (bytes_before, _) = store_footprint(&c.app, mongo_db.as_deref()).await;

    // 16 clients from one address, until 5,000 refusals.
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = c.app.client.clone();
            let url = c.app.url("/v1/sessions");
            let refused = refused.clone();
            tokio::spawn(async move {
                let mut statuses = BTreeMap::<u16, u64>::new();
                while refused.load(std::sync::atomic::Ordering::Relaxed) < 5_000 {
                    let r = client
                        .post(&url)
                        .json(&json!({"email": format!("x{i}@example.com"), "password": "wrong wrong wrong"}))
                        .send()
                        .await
                        .unwrap();
                    *statuses.entry(r.status().as_u16()).or_default() += 1;
                    if r.status() == StatusCode::TOO_MANY_REQUESTS {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                statuses
            })
        })
        .collect();
    let mut statuses = BTreeMap::<u16, u64>::new();
    for t in tasks {
        for (s, n) in t.await.unwrap() {
            *statuses.entry(s).or_default() += n;
        }
    }
    let refused = statuses.get(&429).copied().unwrap_or(0);
    assert!(refused >= 5_000, "{statuses:?}");
    eprintln!("flood: {statuses:?} in {:?}", started.elapsed());

    // The stored rate_limited events count every refusal, in at most one
    // event per minute the flood spanned.
    let limited = c.stored("rate_limited").await;
    let minutes = 1 + started.elapsed().as_secs() / 60 + 1;
    assert!(
        (limited.len() as u64) <= minutes,
        "{} events for {minutes} minutes",
        limited.len()
    );
    let counted: u64 = limited
        .iter()
        .map(|e| {
            e["details"]["count"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, refused, "the counts add up to the refusals");
    // Every stored event of the flood: a handful, not one per request.
    let all_after = c.stored("*").await.len();
    assert!(
        all_after - all_before < 50,
        "{all_before} events before, {all_after} after"
    );
    let (bytes_after, _) = store_footprint(&c.app, mongo_db.as_deref()).await;
    let grown = bytes_after.saturating_sub(bytes_before);
    eprintln!("store: {bytes_before} -> {bytes_after} bytes");
    assert!(grown <= 300 * 1024, "the store grew by {grown} bytes");
}

#[tokio::test]
async fn every_metric_the_readme_names_exists_at_start_up() {
    // The metrics page of the book (it moved out of the README).
    let readme = include_str!("../../../docs/operations/logs-and-metrics.md");
    let mut names: Vec<&str> = readme
        .match_indices("portcullis_")
        .map(|(i, _)| {
            let rest = &readme[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| n.len() > "portcullis_".len())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    // A fresh process (the recorder is process-wide): the first scrape
    // after `/healthz` answered.
    let dir = tempfile::tempdir().unwrap();
    let mut env = BTreeMap::new();
    backend_settings(&mut env);
    let server = crate::process::start_with(dir.path(), &dir.path().join("log"), env).await;
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !text.lines().any(|l| l.starts_with(**n)))
        .collect();
    assert!(missing.is_empty(), "missing at start-up: {missing:?}");
    for counter in [
        "portcullis_audit_writes_total{result=\"dropped\"} 0",
        "portcullis_webhook_deliveries_total{result=\"abandoned\"} 0",
        "portcullis_suspicious_events_total{rule=\"burst\"} 0",
        "portcullis_rate_limited_total 0",
        "portcullis_captcha_refusals_total 0",
    ] {
        assert!(text.contains(counter), "{counter} missing");
    }
}
