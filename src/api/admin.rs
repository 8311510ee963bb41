//! `/v1/admin/users...`: account management for operators. Every handler
//! takes [`AdminAuth`], so none can run for a caller without the `admin`
//! role (401 without a token, 403 without the role).

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::problem::responses;
use super::views::AdminUserView;
use super::{AdminAuth, ApiTags};
use crate::domain::UserId;
use crate::service::{AdminPatch, Core};
use poem::web::Data;

/// A page of accounts.
#[derive(Debug, Object)]
#[oai(rename = "UserPage")]
pub struct UserPageView {
    /// Accounts in email order.
    pub users: Vec<AdminUserView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// An operator's change to an account; fields left out stay as they are.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AdminPatchRequest {
    /// Disable the account (its sessions end at once) or re-enable it.
    pub disabled: Option<bool>,
    /// The account's roles (`user`, `admin`, ...), replacing the old ones.
    pub roles: Option<Vec<String>>,
    /// Whether the email address counts as verified.
    pub email_verified: Option<bool>,
}

/// Sessions ended.
#[derive(Debug, Object)]
pub struct RevokedView {
    /// How many sessions were active and are now ended.
    pub revoked: u64,
}

responses! {
    pub enum ListUsersResponse {
        /// A page of accounts.
        Ok(Json<UserPageView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Unprocessable = 422, Unavailable = 503 }
}

responses! {
    pub enum AdminUserResponse {
        /// The account.
        Ok(Json<AdminUserView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, Unavailable = 503 }
}

responses! {
    pub enum AdminDeleteResponse {
        /// Done.
        Deleted = 204,
    }
    errors { Unauthorized = 401, Forbidden = 403, NotFound = 404, Unavailable = 503 }
}

/// `/v1/admin/users...`
pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List accounts, optionally those whose email starts with
    /// `email_prefix`, in email order, `limit` (1 to 100, default 50) at a
    /// time; follow `next_cursor` for the next page.
    #[oai(
        path = "/v1/admin/users",
        method = "get",
        operation_id = "adminListUsers"
    )]
    async fn list_users(
        &self,
        core: Data<&Core>,
        auth: AdminAuth,
        email_prefix: Query<Option<String>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> ListUsersResponse {
        match core
            .admin_list_users(
                &auth.0,
                email_prefix.0.as_deref(),
                cursor.0.as_deref(),
                limit.0,
            )
            .await
        {
            Ok(page) => ListUsersResponse::Ok(Json(UserPageView {
                users: page.users.iter().map(AdminUserView::from).collect(),
                next_cursor: page.next_cursor,
            })),
            Err(e) => e.into(),
        }
    }

    /// One account.
    #[oai(
        path = "/v1/admin/users/:id",
        method = "get",
        operation_id = "adminGetUser"
    )]
    async fn get_user(
        &self,
        core: Data<&Core>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> AdminUserResponse {
        match core.admin_get_user(&auth.0, &UserId::from(id.0)).await {
            Ok(u) => {
                let mut view = AdminUserView::from(&u);
                match core.identities_of_user(&u.id).await {
                    Ok(list) => {
                        view.identities = Some(list.into_iter().map(Into::into).collect());
                    }
                    Err(e) => return e.into(),
                }
                AdminUserResponse::Ok(Json(view))
            }
            Err(e) => e.into(),
        }
    }

    /// Change an account: disable or re-enable it (disabling ends its
    /// sessions at once), set its roles, mark its email verified.
    #[oai(
        path = "/v1/admin/users/:id",
        method = "patch",
        operation_id = "adminUpdateUser"
    )]
    async fn update_user(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: AdminAuth,
        id: Path<String>,
        body: Json<AdminPatchRequest>,
    ) -> AdminUserResponse {
        let patch = AdminPatch {
            disabled: body.0.disabled,
            roles: body.0.roles,
            email_verified: body.0.email_verified,
        };
        match core
            .admin_update_user(
                &auth.0,
                &UserId::from(id.0),
                patch,
                &super::client_info(req, &core),
            )
            .await
        {
            Ok(u) => AdminUserResponse::Ok(Json(AdminUserView::from(&u))),
            Err(e) => e.into(),
        }
    }

    /// Delete an account (profile, credentials, sessions, avatar).
    #[oai(
        path = "/v1/admin/users/:id",
        method = "delete",
        operation_id = "adminDeleteUser"
    )]
    async fn delete_user(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> AdminDeleteResponse {
        match core
            .admin_delete_user(
                &auth.0,
                &UserId::from(id.0),
                &super::client_info(req, &core),
            )
            .await
        {
            Ok(()) => AdminDeleteResponse::Deleted,
            Err(e) => e.into(),
        }
    }

    /// End every session of an account (its tokens are refused at once).
    #[oai(
        path = "/v1/admin/users/:id/sessions",
        method = "delete",
        operation_id = "adminEndSessions"
    )]
    async fn end_sessions(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> AdminDeleteResponse {
        match core
            .admin_end_sessions(
                &auth.0,
                &UserId::from(id.0),
                &super::client_info(req, &core),
            )
            .await
        {
            Ok(_) => AdminDeleteResponse::Deleted,
            Err(e) => e.into(),
        }
    }
}
