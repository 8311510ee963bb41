//! Security activity: `GET /v1/me/activity` (the caller's own events),
//! `GET /v1/admin/audit` (the audit log, admins only) and
//! `POST /v1/security/not-me` (the answer to a new-sign-in notice).

use std::collections::BTreeMap;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::problem::responses;
use super::types::Secret;
use super::views::rfc3339;
use super::{AdminAuth, ApiTags, BearerAuth, client_info};
use crate::service::{AuditFilter, Core, EventPage, SecurityEvent};

/// One security event.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SecurityEvent")]
pub struct SecurityEventView {
    /// Event id (the `webhook-id` of its webhook delivery).
    pub id: String,
    /// Event type: `login.succeeded`, `password.changed`, `suspicious.burst`, ...
    #[oai(rename = "type")]
    pub kind: String,
    /// The account concerned.
    #[oai(nullable)]
    pub user_id: Option<String>,
    /// Client address.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Client `User-Agent`.
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// When (RFC 3339).
    pub at: String,
    /// `success`, `failure` or `detected`.
    pub outcome: String,
    /// Event-specific facts (session id, counts, reasons); never a secret.
    pub details: BTreeMap<String, String>,
}

impl From<SecurityEvent> for SecurityEventView {
    fn from(e: SecurityEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            user_id: e.user_id,
            ip: e.ip,
            user_agent: e.user_agent,
            at: rfc3339(e.at),
            outcome: e.outcome,
            details: e.details,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SecurityEventPage")]
pub struct EventPageView {
    /// The events, newest first.
    pub events: Vec<SecurityEventView>,
    /// `cursor` of the next (older) page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

impl From<EventPage> for EventPageView {
    fn from(p: EventPage) -> Self {
        Self {
            events: p.events.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// The token of a "not me" link.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NotMeRequest {
    /// The `token` of the link in the new-sign-in notice.
    pub token: Secret,
}

responses! {
    pub enum ActivityResponse {
        /// The caller's security events, newest first.
        Ok(Json<EventPageView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Unprocessable = 422, Unavailable = 503 }
}

responses! {
    pub enum AdminAuditResponse {
        /// Matching security events, newest first.
        Ok(Json<EventPageView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Unprocessable = 422, Unavailable = 503 }
}

responses! {
    pub enum NotMeResponse {
        /// Every session of the account ended; a password-reset email is on its way.
        NoContent = 204,
    }
    errors { body_errors, Unavailable = 503 }
}

/// Security activity routes.
pub struct ActivityApi;

#[OpenApi]
impl ActivityApi {
    /// The caller's own security events (sign-ins, refreshes, password
    /// changes, alerts), newest first.
    #[oai(
        path = "/v1/me/activity",
        method = "get",
        operation_id = "myActivity",
        tag = "ApiTags::Users"
    )]
    async fn activity(
        &self,
        core: Data<&Core>,
        auth: BearerAuth,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Events per page: default 50, at most 100.
        limit: Query<Option<u32>>,
    ) -> ActivityResponse {
        match core.activity(&auth.0, cursor.0, limit.0).await {
            Ok(page) => ActivityResponse::Ok(Json(page.into())),
            Err(e) => e.into(),
        }
    }

    /// The audit log (admins only), newest first, with filters.
    #[oai(
        path = "/v1/admin/audit",
        method = "get",
        operation_id = "adminAudit",
        tag = "ApiTags::Admin"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        core: Data<&Core>,
        auth: AdminAuth,
        /// Only this user's events.
        user_id: Query<Option<String>>,
        /// Only this event type; a trailing `*` matches a prefix (`suspicious.*`).
        #[oai(name = "type")]
        kind: Query<Option<String>>,
        /// Only events from this client address.
        ip: Query<Option<String>>,
        /// Only events at or after this time (Unix seconds or RFC 3339).
        since: Query<Option<String>>,
        /// Only events at or before this time (Unix seconds or RFC 3339).
        until: Query<Option<String>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Events per page: default 50, at most 100.
        limit: Query<Option<u32>>,
    ) -> AdminAuditResponse {
        let filter = AuditFilter {
            user_id: user_id.0,
            kind: kind.0,
            ip: ip.0,
            since: since.0,
            until: until.0,
            cursor: cursor.0,
            limit: limit.0,
        };
        match core.audit_log(&auth.0, filter).await {
            Ok(page) => AdminAuditResponse::Ok(Json(page.into())),
            Err(e) => e.into(),
        }
    }

    /// "Not me": answer to a new-sign-in notice. Ends every session of the
    /// account and sends a password-reset email. The token works once.
    #[oai(
        path = "/v1/security/not-me",
        method = "post",
        operation_id = "notMe",
        tag = "ApiTags::Sessions"
    )]
    async fn not_me(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<NotMeRequest>,
    ) -> NotMeResponse {
        let client = client_info(req, &core);
        match core.not_me(&body.0.token.0, &client).await {
            Ok(()) => NotMeResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}
