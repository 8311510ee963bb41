//! The audit events' names, fields and log line.

use super::*;

#[test]
fn kinds_are_the_contracts_names() {
    assert_eq!(AuditEvent::UserRegistered.kind(), "user.registered");
    assert_eq!(
        AuditEvent::RateLimited {
            action: RateLimitedAction::SignIn,
        }
        .kind(),
        "rate_limited"
    );
    assert_eq!(
        AuditEvent::Admin {
            action: "user_disabled",
            target: None,
            facts: vec![],
        }
        .kind(),
        "admin.user_disabled"
    );
    assert_eq!(
        AuditEvent::Suspicious(Suspicion::Burst { networks: 3 }).kind(),
        "suspicious.burst"
    );
    assert_eq!(
        AuditEvent::LoginFailed {
            reason: "invalid_credentials"
        }
        .outcome(),
        "failure"
    );
}

#[test]
fn record_truncates_the_user_agent_and_sets_retention() {
    let r = AuditEvent::UserRegistered.record(Some("u1"), None, Some(&"x".repeat(900)), 100, 50);
    assert_eq!(r.user_agent.unwrap().len(), 256);
    assert_eq!(r.expires_at, 150);
    assert_eq!(r.outcome, "success");
}

fn refusal(at: i64, ip: &str) -> AuditRecord {
    AuditEvent::RateLimited {
        action: RateLimitedAction::SignIn,
    }
    .record(None, Some(ip.to_string()), Some("curl/8"), at, 1000)
}

#[test]
fn refusals_add_up_per_network_action_and_minute() {
    let sink = AuditSink::new(4);
    let minute = 1_899_999_960;
    let t0 = minute + 20;
    for i in 0..1000 {
        sink.push_refusal(refusal(t0 + i % 30, "203.0.113.7"), "203.0.113.0/24".into());
    }
    sink.push_refusal(refusal(t0, "198.51.100.1"), "198.51.100.0/24".into());
    let mut captcha = AuditEvent::CaptchaFailed.record(None, None, None, t0, 1000);
    captcha.ip = Some("203.0.113.7".into());
    sink.push_refusal(captcha, "203.0.113.0/24".into());
    // Nothing goes through the channel.
    assert!(sink.take_receiver().unwrap().try_recv().is_err());
    // Within the minute: nothing unless asked (a read), then the counts.
    assert!(sink.take_refusals(t0 + 30, false, false).deltas.is_empty());
    let open = sink.take_refusals(t0 + 30, true, false);
    assert_eq!(open.deltas.len(), 3);
    assert!(open.closed.is_empty());
    let flood = open
        .deltas
        .iter()
        .find(|r| r.kind == "rate_limited" && r.ip.as_deref() == Some("203.0.113.7"))
        .unwrap();
    assert_eq!(flood.details["count"], "1000");
    assert_eq!(flood.details["network"], "203.0.113.0/24");
    assert_eq!(flood.details["action"], "sign_in");
    assert_eq!(flood.at, minute, "the minute's start");
    assert_eq!(flood.expires_at, flood.at + 1000);
    assert!(flood.user_id.is_none());
    // 12 hex of time, 32 of digest: a valid cursor, stable per key.
    assert_eq!(flood.id.len(), 44);
    // Five more in the minute: the next take holds only those, under
    // the same id; after the minute (and its grace) the window closes
    // with the whole count for the webhook.
    for _ in 0..5 {
        sink.push_refusal(refusal(t0 + 35, "203.0.113.9"), "203.0.113.0/24".into());
    }
    let end = minute + REFUSAL_WINDOW_SECS + REFUSAL_CLOSE_GRACE_SECS;
    assert!(sink.take_refusals(end - 1, false, false).closed.is_empty());
    let closed = sink.take_refusals(end, false, false);
    assert_eq!(closed.deltas.len(), 1);
    assert_eq!(closed.deltas[0].id, flood.id);
    assert_eq!(closed.deltas[0].details["count"], "5");
    assert_eq!(closed.closed.len(), 3);
    let whole = closed.closed.iter().find(|r| r.id == flood.id).unwrap();
    assert_eq!(whole.details["count"], "1005");
    assert!(sink.take_refusals(end + 60, true, true).deltas.is_empty());
    // A clean shutdown closes the open windows too.
    sink.push_refusal(refusal(end + 70, "203.0.113.7"), "203.0.113.0/24".into());
    let last = sink.take_refusals(end + 71, false, true);
    assert_eq!(last.deltas.len(), 1);
    assert_eq!(last.closed.len(), 1);
    assert_eq!(last.closed[0].details["count"], "1");
    assert!(sink.take_refusals(end + 72, true, true).closed.is_empty());
}

#[test]
fn tallies_are_bounded_whatever_the_number_of_networks() {
    let sink = AuditSink::new(4);
    let t0 = 1_900_000_000;
    for i in 0..(MAX_TALLIES + 500) {
        let net = format!("10.{}.{}.0/24", i / 256, i % 256);
        sink.push_refusal(refusal(t0, "10.0.0.1"), net);
    }
    let take = sink.take_refusals(t0, true, true);
    assert_eq!(take.deltas.len(), MAX_TALLIES + 1);
    let other = take
        .deltas
        .iter()
        .find(|r| r.details["network"] == OTHER_NETWORKS)
        .unwrap();
    assert_eq!(other.details["count"], "500");
}

#[tokio::test]
async fn a_full_buffer_drops_instead_of_blocking() {
    let sink = AuditSink::new(2);
    for _ in 0..5 {
        sink.push(AuditEvent::UserRegistered.record(None, None, None, 1, 1));
    }
    let mut rx = sink.take_receiver().unwrap();
    assert!(sink.take_receiver().is_none());
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 2);
}
