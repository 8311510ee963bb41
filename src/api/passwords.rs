//! `/v1/me/password`, and recovery: `/v1/password/forgot` and
//! `/v1/password/reset`.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::problem::responses;
use super::types::{Secret, Text};
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{Core, PasswordReset, TicketProof};

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
    errors { body_errors, Unauthorized = 401, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
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
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<ChangePasswordRequest>,
    ) -> ChangePasswordResponse {
        let body = body.0;
        let client = client_info(req, &core);
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

// --- Recovery: forgot and reset ---------------------------------

/// A reset request.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's email address.
    pub email: Text,
    /// ALTCHA solution (base64 JSON) when a CAPTCHA is required.
    pub captcha: Option<Text>,
}

/// The answer to a request whose outcome is mailed.
#[derive(Debug, Object)]
pub struct AcceptedBody {
    /// `accepted`: if the address has an account, a mail is on its way.
    pub status: String,
}

/// A new password, proven by the link's token or by the address and code
/// of the reset mail.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The `token` query parameter of the link in the mail.
    pub token: Option<Secret>,
    /// The account's email address (with `email_code`).
    pub email: Option<Text>,
    /// The 8-digit code in the mail (with `email`).
    pub email_code: Option<Secret>,
    /// 8 to 128 characters; common passwords are refused.
    pub new_password: Secret,
    /// A TOTP code, when the account has two-factor on.
    pub mfa_code: Option<Secret>,
    /// A recovery code, when the account has two-factor on.
    pub recovery_code: Option<Secret>,
}

impl ResetPasswordRequest {
    /// The proof the body carries: the token wins over a code.
    pub(super) fn proof(
        token: Option<Secret>,
        email: Option<Text>,
        email_code: Option<Secret>,
    ) -> Option<TicketProof> {
        use secrecy::ExposeSecret;
        match (token, email, email_code) {
            (Some(t), _, _) => Some(TicketProof::Token(t.0.expose_secret().to_string())),
            (None, Some(e), Some(c)) => Some(TicketProof::Code {
                email: e.0,
                code: c.0.expose_secret().to_string(),
            }),
            _ => None,
        }
    }
}

responses! {
    pub enum ForgotPasswordResponse {
        /// Accepted: the same answer whether or not the address has an
        /// account; a reset mail goes out only if it has one.
        Accepted(Json<AcceptedBody>) = 202,
    }
    errors { body_errors, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum ResetPasswordResponse {
        /// Password set; every session of the user is revoked. Sign in with it.
        NoContent = 204,
    }
    errors { body_errors, Unauthorized = 401, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

/// `/v1/password/forgot` and `/v1/password/reset`.
pub struct RecoveryApi;

#[OpenApi(tag = "ApiTags::Password")]
impl RecoveryApi {
    /// Ask for a password-reset mail (a link and a code).
    #[oai(
        path = "/v1/password/forgot",
        method = "post",
        operation_id = "forgotPassword"
    )]
    async fn forgot(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<ForgotPasswordRequest>,
    ) -> ForgotPasswordResponse {
        let body = body.0;
        let client = client_info(req, &core);
        let captcha = body.captcha.map(|t| t.0);
        match core
            .forgot_password(&body.email.0, captcha.as_deref(), &client)
            .await
        {
            Ok(()) => ForgotPasswordResponse::Accepted(Json(AcceptedBody {
                status: "accepted".to_string(),
            })),
            Err(e) => e.into(),
        }
    }

    /// Set a new password with the link's token or the mail's code.
    #[oai(
        path = "/v1/password/reset",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<ResetPasswordRequest>,
    ) -> ResetPasswordResponse {
        let b = body.0;
        let client = client_info(req, &core);
        let input = PasswordReset {
            proof: ResetPasswordRequest::proof(b.token, b.email, b.email_code),
            new_password: b.new_password.0,
            mfa_code: b.mfa_code.map(|s| s.0),
            recovery_code: b.recovery_code.map(|s| s.0),
        };
        match core.reset_password(input, &client).await {
            Ok(()) => ResetPasswordResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}
