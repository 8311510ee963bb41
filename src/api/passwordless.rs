//! Passwordless sign-in by email (`/v1/sessions/email`,
//! `/v1/sessions/email/verify`) and anonymous users
//! (`/v1/sessions/anonymous`, `/v1/me/upgrade`).

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::mfa::LoginResult;
use super::passwords::{AcceptedBody, ResetPasswordRequest};
use super::problem::responses;
use super::types::{Secret, Text};
use super::users::VerificationSentBody;
use super::views::{TokensView, UserView};
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{Core, UpgradeOutcome};

/// A request for a sign-in mail.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct EmailSignInRequest {
    /// The address to sign in with.
    pub email: Text,
    /// ALTCHA solution (base64 JSON) when a CAPTCHA is required.
    pub captcha: Option<Text>,
}

/// The proof of a sign-in mail: the link's token, or the address and code.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct EmailSignInVerifyRequest {
    /// The `token` query parameter of the link in the mail.
    pub token: Option<Secret>,
    /// The address (with `email_code`).
    pub email: Option<Text>,
    /// The 8-digit code in the mail (with `email`).
    pub email_code: Option<Secret>,
}

/// A request for an anonymous user.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AnonymousSignInRequest {
    /// ALTCHA solution (base64 JSON) when a CAPTCHA is required.
    pub captcha: Option<Text>,
}

/// What an anonymous user becomes.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// The account's address from now on (a verification mail goes to it).
    pub email: Text,
    /// The account's password from now on.
    pub password: Secret,
}

responses! {
    pub enum EmailSignInResponse {
        /// Accepted: the same answer whether or not the address has an
        /// account; a mail (a link and an 8-digit code) goes out only if it
        /// has one, or with `PORTCULLIS_EMAIL_SIGNUP=true`.
        Accepted(Json<AcceptedBody>) = 202,
    }
    errors { BadRequest = 400, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum EmailSignInVerifyResponse {
        /// Signed in (`amr: ["email"]`); or, when the account has a second
        /// factor, `{mfa_required: true, mfa_token, expires_in, methods}`
        /// (continue with `POST /v1/sessions/mfa`).
        Ok(Json<LoginResult>) = 200,
    }
    errors { BadRequest = 400, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum AnonymousSignInResponse {
        /// A new anonymous user, signed in (`is_anonymous: true` in the
        /// access token and the user body).
        Ok(Json<TokensView>) = 200,
    }
    errors { BadRequest = 400, PayloadTooLarge = 413, UnsupportedMediaType = 415, Forbidden = 403, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum UpgradeResponse {
        /// The account is a full one now (same id, sessions kept); refresh
        /// for tokens without `is_anonymous`.
        Ok(Json<UserView>) = 200,
        /// With `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`: the same answer for
        /// a free and a taken address (as sign-up).
        Accepted(Json<VerificationSentBody>) = 202,
    }
    errors { BadRequest = 400, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unauthorized = 401, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

/// Passwordless sign-in and anonymous users.
pub struct PasswordlessApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl PasswordlessApi {
    /// Ask for a sign-in mail (a link and an 8-digit code).
    #[oai(
        path = "/v1/sessions/email",
        method = "post",
        operation_id = "signInWithEmail"
    )]
    async fn email(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<EmailSignInRequest>,
    ) -> EmailSignInResponse {
        let body = body.0;
        let client = client_info(req, &core);
        let captcha = body.captcha.map(|t| t.0);
        match core
            .request_email_sign_in(&body.email.0, captcha.as_deref(), &client)
            .await
        {
            Ok(()) => EmailSignInResponse::Accepted(Json(AcceptedBody {
                status: "accepted".to_string(),
            })),
            Err(e) => e.into(),
        }
    }

    /// Sign in with the sign-in mail's link token or its code.
    ///
    /// A code has 5 tries, and an address has a budget of wrong codes
    /// across all its mails (429 past it). 400 `token-invalid-or-expired`
    /// for a wrong, used, superseded or expired link or code.
    #[oai(
        path = "/v1/sessions/email/verify",
        method = "post",
        operation_id = "verifyEmailSignIn"
    )]
    async fn verify(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<EmailSignInVerifyRequest>,
    ) -> EmailSignInVerifyResponse {
        let b = body.0;
        let client = client_info(req, &core);
        let proof = ResetPasswordRequest::proof(b.token, b.email, b.email_code);
        match core.verify_email_sign_in(proof, client).await {
            Ok(signed_in) => EmailSignInVerifyResponse::Ok(Json(signed_in.into())),
            Err(e) => e.into(),
        }
    }

    /// Create an anonymous user and sign it in.
    ///
    /// Only with `PORTCULLIS_ANONYMOUS=true` (else 403
    /// `anonymous-disabled`). Limited per client network; past the limit a
    /// CAPTCHA is needed (or 429 with `PORTCULLIS_CAPTCHA=off`).
    #[oai(
        path = "/v1/sessions/anonymous",
        method = "post",
        operation_id = "signInAnonymously"
    )]
    async fn anonymous(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<AnonymousSignInRequest>,
    ) -> AnonymousSignInResponse {
        let client = client_info(req, &core);
        let captcha = body.0.captcha.map(|t| t.0);
        match core.sign_in_anonymously(captcha.as_deref(), client).await {
            Ok(tokens) => AnonymousSignInResponse::Ok(Json(tokens.into())),
            Err(e) => e.into(),
        }
    }

    /// Turn the caller's anonymous user into a full account.
    ///
    /// Same id, sessions kept; a verification mail goes to the address.
    /// A taken address: 409 (with `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`,
    /// 202 as for a free one). 409 too when the caller is not anonymous.
    #[oai(
        path = "/v1/me/upgrade",
        method = "post",
        operation_id = "upgrade",
        tag = "ApiTags::Users"
    )]
    async fn upgrade(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<UpgradeRequest>,
    ) -> UpgradeResponse {
        let b = body.0;
        let client = client_info(req, &core);
        match core
            .upgrade(&auth.0, &b.email.0, b.password.0, &client)
            .await
        {
            Ok(UpgradeOutcome::Upgraded(account)) => {
                UpgradeResponse::Ok(Json(UserView::from(&*account)))
            }
            Ok(UpgradeOutcome::VerificationSent) => {
                UpgradeResponse::Accepted(Json(VerificationSentBody {
                    status: "verification_sent".to_string(),
                }))
            }
            Err(e) => e.into(),
        }
    }
}
