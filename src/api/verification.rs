//! `/v1/email/verify`, `/v1/email/verify/resend` and `/v1/me/email`.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::passwords::{AcceptedBody, ResetPasswordRequest};
use super::problem::responses;
use super::types::{Secret, Text};
use super::users::{PasskeyProof, one_proof};
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{Core, Error, FieldError};

/// Proof of an address: the link's token, or the address and the code.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` query parameter of the link in the mail.
    pub token: Option<Secret>,
    /// The address (with `email_code`).
    pub email: Option<Text>,
    /// The 8-digit code in the mail (with `email`).
    pub email_code: Option<Secret>,
}

responses! {
    pub enum VerifyEmailResponse {
        /// The address is verified (for an email change: the account now has it).
        NoContent = 204,
    }
    errors { body_errors, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

/// A change of the account's address.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The new address; it receives a verification link and code.
    pub new_email: Text,
    /// The account's password. A proof (this, `code` or `passkey`) may be
    /// left out when the session proved itself recently (step-up).
    pub password: Option<Secret>,
    /// A current 6-digit code from the authenticator app.
    pub code: Option<Secret>,
    /// A fresh assertion by one of the caller's passkeys.
    pub passkey: Option<PasskeyProof>,
}

responses! {
    pub enum ChangeEmailResponse {
        /// A verification mail is on its way to the new address (and a
        /// notice to the current one); the address changes when it is used.
        /// An address that has an account answers the same (its owner gets
        /// a notice instead): this answer says nothing about accounts.
        Accepted(Json<AcceptedBody>) = 202,
    }
    errors { body_errors, Unauthorized = 401, Forbidden = 403, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum ResendVerificationResponse {
        /// A new verification mail is on its way (none if already verified).
        Accepted(Json<AcceptedBody>) = 202,
    }
    errors { Unauthorized = 401, TooManyRequests = 429, Unavailable = 503 }
}

/// Email verification.
pub struct EmailApi;

#[OpenApi(tag = "ApiTags::Email")]
impl EmailApi {
    /// Verify an email address with the link's token or the mail's code.
    #[oai(
        path = "/v1/email/verify",
        method = "post",
        operation_id = "verifyEmail"
    )]
    async fn verify(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<VerifyEmailRequest>,
    ) -> VerifyEmailResponse {
        let b = body.0;
        let client = client_info(req, &core);
        let Some(proof) = ResetPasswordRequest::proof(b.token, b.email, b.email_code) else {
            return Error::Validation(vec![FieldError::new(
                "token",
                "required",
                "Send `token` (from the link) or `email` and `email_code`.",
            )])
            .into();
        };
        match core.verify_email(proof, &client).await {
            Ok(()) => VerifyEmailResponse::NoContent,
            Err(e) => e.into(),
        }
    }

    /// Change the caller's email address (after the link to the new one is used).
    ///
    /// Needs a proof (step-up): `password`, `code` or `passkey` in the
    /// body, or a recent one on the session (sign-in or
    /// `POST /v1/me/reauthenticate`); else 401 `reauthentication-required`.
    #[oai(path = "/v1/me/email", method = "post", operation_id = "changeEmail")]
    async fn change_email(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<ChangeEmailRequest>,
    ) -> ChangeEmailResponse {
        let b = body.0;
        let proof = match one_proof(b.password, b.code, b.passkey) {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        let client = client_info(req, &core);
        match core
            .request_email_change(&auth.0, &b.new_email.0, proof, &client)
            .await
        {
            Ok(()) => ChangeEmailResponse::Accepted(Json(AcceptedBody {
                status: "verification_sent".to_string(),
            })),
            Err(e) => e.into(),
        }
    }

    /// Send the caller a new verification mail.
    #[oai(
        path = "/v1/email/verify/resend",
        method = "post",
        operation_id = "resendVerification"
    )]
    async fn resend(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
    ) -> ResendVerificationResponse {
        let client = client_info(req, &core);
        match core.resend_verification(&auth.0, &client).await {
            Ok(()) => ResendVerificationResponse::Accepted(Json(AcceptedBody {
                status: "accepted".to_string(),
            })),
            Err(e) => e.into(),
        }
    }
}
