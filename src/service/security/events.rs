//! Recording security events ([`Core::audit`], never waiting, never
//! failing), the user's activity feed and the admin's audit log (filters
//! checked field by field), and the purge of old events and deliveries.

use std::net::IpAddr;
use std::time::Duration;

use super::{AuditFilter, EventPage, PAGE_DEFAULT, PAGE_MAX, READ_FLUSH_WAIT, SecurityEvent};
use crate::audit::AuditEvent;
use crate::clock::{UnixTime, secs};
use crate::service::{ClientInfo, Core, Error, FieldError, Principal, Result};
use crate::store::AuditQuery;

fn parse_time(field: &str, raw: &str) -> Result<UnixTime> {
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            Error::Validation(vec![FieldError::invalid(
                field,
                "Time",
                "must be Unix seconds or an RFC 3339 timestamp",
            )])
        })
}

fn parse_cursor(cursor: Option<String>) -> Result<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(c) if !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_hexdigit()) => {
            Ok(Some(c))
        }
        Some(_) => Err(Error::Validation(vec![FieldError::invalid(
            "cursor",
            "Cursor",
            "is not one this service returned",
        )])),
    }
}

fn parse_limit(limit: Option<u32>) -> Result<usize> {
    match limit.unwrap_or(PAGE_DEFAULT) {
        n @ 1..=PAGE_MAX => Ok(n as usize),
        _ => Err(Error::Validation(vec![FieldError::invalid(
            "limit",
            "Limit",
            "must be between 1 and 100",
        )])),
    }
}

impl Core {
    /// Records a security event: one log line now, stored off the request
    /// path (see `crate::audit`). Never fails and never waits. A refusal
    /// (429, CAPTCHA, throttled sign-in) is only counted: it is stored
    /// aggregated, one event per client network, action and minute.
    pub fn audit(&self, event: AuditEvent, user_id: Option<&str>, client: &ClientInfo) {
        let record = event.record(
            user_id,
            client.ip.map(|ip| ip.to_string()),
            client.user_agent.as_deref(),
            self.clock.now(),
            secs(self.settings.security.audit_retention),
        );
        if event.is_refusal() {
            // Aggregated: one stored event per network, action and minute
            // (the refusal itself is logged by its caller).
            let network = crate::service::throttle::network_of(client.ip);
            self.security.sink.push_refusal(record, network);
            return;
        }
        crate::audit::log(&record);
        self.security.sink.push(record);
    }

    /// Records an event at once, without the buffer: for processes that run
    /// no flusher (the CLI). Stores it (and queues its webhook when one is
    /// configured) before returning.
    pub async fn audit_now(
        &self,
        event: AuditEvent,
        user_id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.clock.now();
        let record = event.record(
            user_id,
            client.ip.map(|ip| ip.to_string()),
            client.user_agent.as_deref(),
            now,
            secs(self.settings.security.audit_retention),
        );
        crate::audit::log(&record);
        let s = &self.settings.security;
        if s.webhook_url.is_some() && s.webhook_secret.is_some() {
            let delivery = crate::webhooks::delivery_of(&record, now);
            self.store.enqueue_webhooks(&[delivery]).await?;
        }
        self.store.append_audit(&[record]).await?;
        Ok(())
    }

    /// Waits until the events recorded so far are stored (bounded); false
    /// when that did not happen in time.
    pub async fn flush_audit(&self, limit: Duration) -> bool {
        self.security.sink.flush(limit).await
    }

    /// [`Core::flush_audit`], closing every refusal window (their webhooks
    /// are queued): for a clean shutdown.
    pub async fn close_audit(&self, limit: Duration) -> bool {
        self.security.sink.close(limit).await
    }

    /// The caller's own security events, newest first.
    pub async fn activity(
        &self,
        who: &Principal,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<EventPage> {
        let query = AuditQuery {
            user_id: Some(who.user_id.to_string()),
            before: parse_cursor(cursor)?,
            limit: parse_limit(limit)?,
            ..AuditQuery::default()
        };
        self.read_events(query).await
    }

    /// The audit log for an admin, filtered.
    pub async fn audit_log(&self, _admin: &Principal, f: AuditFilter) -> Result<EventPage> {
        let mut errors = Vec::new();
        let since = f
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()
            .map_err(|e| collect(&mut errors, e))
            .ok()
            .flatten();
        let until = f
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()
            .map_err(|e| collect(&mut errors, e))
            .ok()
            .flatten();
        let ip = match f.ip.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => match raw.parse::<IpAddr>() {
                Ok(ip) => Some(ip.to_string()),
                Err(_) => {
                    errors.push(FieldError::invalid(
                        "ip",
                        "IP address",
                        "is not an IP address",
                    ));
                    None
                }
            },
        };
        let kind = f.kind.filter(|k| !k.is_empty());
        if kind.as_ref().is_some_and(|k| {
            k.len() > 64
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || matches!(c, '.' | '_' | '*'))
        }) {
            errors.push(FieldError::invalid("type", "Type", "is not an event type"));
        }
        let before = parse_cursor(f.cursor)
            .map_err(|e| collect(&mut errors, e))
            .ok()
            .flatten();
        let limit = parse_limit(f.limit)
            .map_err(|e| collect(&mut errors, e))
            .ok();
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        let query = AuditQuery {
            user_id: f.user_id.filter(|u| !u.is_empty()),
            kind,
            ip,
            since,
            until,
            before,
            limit,
        };
        self.read_events(query).await
    }

    /// One page: `limit + 1` are read to know whether another page exists.
    /// This replica's buffer is flushed first, so a caller sees their own
    /// latest actions.
    async fn read_events(&self, mut query: AuditQuery) -> Result<EventPage> {
        if !self.flush_audit(READ_FLUSH_WAIT).await {
            tracing::warn!(
                "audit buffer not flushed before a read; the page may miss recent events"
            );
        }
        let limit = query.limit;
        query.limit = limit + 1;
        let mut events = self.store.audit_events(&query, self.clock.now()).await?;
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(EventPage {
            events: events.into_iter().map(SecurityEvent::from).collect(),
            next_cursor,
        })
    }

    /// Deletes audit events past retention and abandoned webhook deliveries.
    pub async fn purge_security_records(&self) -> Result<(u64, u64)> {
        let now = self.clock.now();
        let events = self.store.purge_audit(now).await?;
        let hooks = self.store.purge_webhooks(now).await?;
        Ok((events, hooks))
    }
}

fn collect(errors: &mut Vec<FieldError>, e: Error) {
    if let Error::Validation(mut v) = e {
        errors.append(&mut v);
    }
}
