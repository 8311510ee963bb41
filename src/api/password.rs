//! `/v1/me/password`.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::problem::responses;
use super::types::Secret;
use super::{ApiTags, BearerAuth};
use crate::service::Core;

/// A password change.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now in use.
    pub current_password: Secret,
    /// 8 to 128 characters; common passwords are refused.
    pub new_password: Secret,
}

responses! {
    pub enum ChangePasswordResponse {
        /// Password changed; every other session of the user is revoked.
        NoContent = 204,
    }
    errors { BadRequest = 400, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unauthorized = 401, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

/// `/v1/me/password`.
pub struct PasswordApi;

#[OpenApi(tag = "ApiTags::Password")]
impl PasswordApi {
    /// Change the caller's password.
    #[oai(
        path = "/v1/me/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<ChangePasswordRequest>,
    ) -> ChangePasswordResponse {
        let body = body.0;
        let client = super::client_info(req, &core);
        match core
            .change_password(
                &auth.0,
                body.current_password.0,
                body.new_password.0,
                &client,
            )
            .await
        {
            Ok(()) => ChangePasswordResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}
