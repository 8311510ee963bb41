//! Two-factor sign-in: `/v1/me/mfa/*` (enrol, activate, turn off, new
//! recovery codes) and `/v1/sessions/mfa` (the second step of a sign-in),
//! plus the body `POST /v1/sessions` answers with when that step is needed.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Union};
use secrecy::{ExposeSecret, SecretString};

use super::problem::responses;
use super::types::{Secret, Text};
use super::users::{PasskeyProof, one_proof};
use super::views::TokensView;
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{
    Core, Error, FieldError, MfaChallenge, Proof, SecondFactor, SignIn, TotpEnrolment,
};

/// The second step of a sign-in is needed: no tokens yet.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MfaChallenge")]
pub struct MfaChallengeView {
    /// Always `true`: send a code to `POST /v1/sessions/mfa`.
    pub mfa_required: bool,
    /// Short-lived, single-use token for `POST /v1/sessions/mfa` (not an
    /// access or refresh token).
    pub mfa_token: String,
    /// Seconds until `mfa_token` expires.
    pub expires_in: u64,
    /// The second factors this account has: `totp`, `recovery_code`.
    pub methods: Vec<String>,
}

impl From<MfaChallenge> for MfaChallengeView {
    fn from(c: MfaChallenge) -> Self {
        Self {
            mfa_required: true,
            mfa_token: c.mfa_token,
            expires_in: c.expires_in,
            methods: c.methods.into_iter().map(str::to_string).collect(),
        }
    }
}

/// What `POST /v1/sessions` answers with: tokens, or the second step.
#[derive(Debug, Clone, Union)]
#[oai(one_of)]
pub enum LoginResult {
    /// Signed in.
    Tokens(TokensView),
    /// Two-factor sign-in is on: send a code with the `mfa_token`.
    MfaRequired(MfaChallengeView),
}

impl From<SignIn> for LoginResult {
    fn from(s: SignIn) -> Self {
        match s {
            SignIn::Tokens(t) => Self::Tokens((*t).into()),
            SignIn::MfaRequired(c) => Self::MfaRequired(c.into()),
        }
    }
}

/// The second step of a sign-in: the `mfa_token` and exactly one of
/// `code`, `recovery_code` and `passkey`.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// The `mfa_token` from `POST /v1/sessions`.
    pub mfa_token: Secret,
    /// The 6-digit code shown by the authenticator app.
    pub code: Option<Secret>,
    /// One of the recovery codes (each works once).
    pub recovery_code: Option<Secret>,
    /// A passkey assertion for options from
    /// `POST /v1/sessions/passkey/options {mfa_token}`.
    pub passkey: Option<MfaPasskey>,
}

/// A passkey as the second factor.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct MfaPasskey {
    /// From `POST /v1/sessions/passkey/options {mfa_token}`.
    pub challenge_id: Text,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, as its
    /// `toJSON()` (WebAuthn Level 3 JSON, base64url).
    pub credential: serde_json::Value,
}

/// A code for the pending secret, from the authenticator app.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CodeRequest {
    /// The 6-digit code shown by the authenticator app.
    pub code: Secret,
    /// The account's password, when the session has no recent proof
    /// (step-up); leave it out otherwise.
    pub password: Option<Secret>,
}

/// Confirmation of a change: at most one of a current code, the password
/// and a passkey assertion; none when the session proved itself recently
/// (step-up).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The 6-digit code shown by the authenticator app.
    pub code: Option<Secret>,
    /// The account's password.
    pub password: Option<Secret>,
    /// A fresh assertion by one of the caller's passkeys.
    pub passkey: Option<PasskeyProof>,
}

/// A TOTP secret to enrol (pending until activated).
// No `Debug`: it holds the secret in the clear.
#[derive(Clone, Object)]
#[oai(rename = "TotpEnrolment")]
pub struct TotpEnrolmentView {
    /// The secret in base32 (RFC 4648), for typing into an app by hand.
    pub secret: String,
    /// The `otpauth://totp/...` key URI (SHA-1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The key URI as a QR code: an SVG document.
    pub qr_svg: String,
}

impl From<TotpEnrolment> for TotpEnrolmentView {
    fn from(e: TotpEnrolment) -> Self {
        Self {
            secret: e.secret.expose_secret().to_string(),
            otpauth_uri: e.otpauth_uri.expose_secret().to_string(),
            qr_svg: e.qr_svg,
        }
    }
}

/// A new set of recovery codes, shown once.
// No `Debug`: it holds them in the clear.
#[derive(Clone, Object)]
#[oai(rename = "RecoveryCodes")]
pub struct RecoveryCodesView {
    /// Ten single-use codes (`xxxxx-xxxxx`); only their hashes are kept, so
    /// they cannot be shown again.
    pub recovery_codes: Vec<String>,
}

impl From<Vec<SecretString>> for RecoveryCodesView {
    fn from(codes: Vec<SecretString>) -> Self {
        Self {
            recovery_codes: codes
                .iter()
                .map(|c| c.expose_secret().to_string())
                .collect(),
        }
    }
}

/// Exactly one of two optional fields, or a validation error naming both.
fn one_of<T>(a: (&str, Option<T>), b: (&str, Option<T>)) -> Result<Result<T, T>, Error> {
    match (a.1, b.1) {
        (Some(x), None) => Ok(Ok(x)),
        (None, Some(y)) => Ok(Err(y)),
        (x, _) => {
            let why = if x.is_some() {
                "send only one of the two"
            } else {
                "one of the two is required"
            };
            Err(Error::Validation(vec![
                FieldError::new(a.0, "one_of", format!("`{}` or `{}`: {why}", a.0, b.0)),
                FieldError::new(b.0, "one_of", format!("`{}` or `{}`: {why}", a.0, b.0)),
            ]))
        }
    }
}

impl ConfirmRequest {
    fn proof(self) -> Result<Option<Proof>, Error> {
        one_proof(self.password, self.code, self.passkey)
    }
}

responses! {
    pub enum MfaLoginResponse {
        /// Signed in: a token pair (`amr` `["pwd", "otp"]` or `["pwd", "rc"]`).
        Ok(Json<TokensView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Forbidden = 403, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum TotpBeginResponse {
        /// A new secret, pending until activated with a code.
        Ok(Json<TotpEnrolmentView>) = 200,
    }
    errors { Unauthorized = 401, Forbidden = 403, Conflict = 409, Unavailable = 503 }
}

responses! {
    pub enum TotpActivateResponse {
        /// Two-factor sign-in is on; the other sessions are ended. The
        /// recovery codes are shown this once.
        Ok(Json<RecoveryCodesView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum TotpDisableResponse {
        /// Two-factor sign-in is off; the other sessions are ended.
        NoContent = 204,
    }
    errors { body_errors, Unauthorized = 401, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum RecoveryCodesResponse {
        /// A new set; the old one no longer works and the other sessions are
        /// ended. Shown this once.
        Ok(Json<RecoveryCodesView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

/// `/v1/me/mfa/*` and `/v1/sessions/mfa`.
pub struct MfaApi;

#[OpenApi(tag = "ApiTags::Mfa")]
impl MfaApi {
    /// Second step of a sign-in: the `mfa_token` and a code (or a recovery code).
    ///
    /// A code works once (a replay in its 30 s step fails); wrong codes are
    /// counted per account and throttled like wrong passwords (429 with
    /// `Retry-After`). A wrong code leaves the `mfa_token` usable until it
    /// expires; a right one spends it.
    #[oai(path = "/v1/sessions/mfa", method = "post", operation_id = "loginMfa")]
    async fn login_mfa(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<MfaLoginRequest>,
    ) -> MfaLoginResponse {
        let body = body.0;
        let client = client_info(req, &core);
        if let Some(passkey) = body.passkey {
            if body.code.is_some() || body.recovery_code.is_some() {
                return Error::Validation(vec![FieldError::new(
                    "passkey",
                    "one_of",
                    "Send exactly one of `code`, `recovery_code` and `passkey`.",
                )])
                .into();
            }
            return match core
                .login_mfa_passkey(
                    body.mfa_token.0.expose_secret(),
                    &passkey.challenge_id.0,
                    &passkey.credential,
                    client,
                )
                .await
            {
                Ok(tokens) => MfaLoginResponse::Ok(Json(tokens.into())),
                Err(e) => e.into(),
            };
        }
        let factor = match one_of(("code", body.code), ("recovery_code", body.recovery_code)) {
            Ok(Ok(code)) => SecondFactor::Code(code.0.expose_secret().to_string()),
            Ok(Err(rc)) => SecondFactor::RecoveryCode(rc.0),
            Err(e) => return e.into(),
        };
        match core
            .login_mfa(body.mfa_token.0.expose_secret(), factor, client)
            .await
        {
            Ok(tokens) => MfaLoginResponse::Ok(Json(tokens.into())),
            Err(e) => e.into(),
        }
    }

    /// Start two-factor sign-in: a new TOTP secret (pending until activated).
    ///
    /// Show `qr_svg` (or `secret` for typing) to the user, then send a code
    /// from their app to `POST /v1/me/mfa/totp/activate`. Calling again
    /// replaces a pending secret. Needs a recent proof on the session
    /// (sign-in or `POST /v1/me/reauthenticate` within
    /// `PORTCULLIS_REAUTH_WINDOW`), else 401 `reauthentication-required`.
    #[oai(path = "/v1/me/mfa/totp", method = "post", operation_id = "totpBegin")]
    async fn totp_begin(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
    ) -> TotpBeginResponse {
        match core.totp_begin(&auth.0, &client_info(req, &core)).await {
            Ok(e) => TotpBeginResponse::Ok(Json(e.into())),
            Err(e) => e.into(),
        }
    }

    /// Turn two-factor sign-in on with a code for the pending secret.
    ///
    /// Needs a recent proof on the session, or the `password` in the body
    /// (step-up); else 401 `reauthentication-required`.
    #[oai(
        path = "/v1/me/mfa/totp/activate",
        method = "post",
        operation_id = "totpActivate"
    )]
    async fn totp_activate(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<CodeRequest>,
    ) -> TotpActivateResponse {
        let b = body.0;
        match core
            .totp_activate(
                &auth.0,
                b.code.0.expose_secret(),
                b.password.map(|p| Proof::Password(p.0)),
                &super::client_info(req, &core),
            )
            .await
        {
            Ok(codes) => TotpActivateResponse::Ok(Json(codes.into())),
            Err(e) => e.into(),
        }
    }

    /// Turn two-factor sign-in off, confirmed by a current code, the
    /// password or a passkey assertion, or by a recent proof on the
    /// session (`{}`; step-up).
    #[oai(
        path = "/v1/me/mfa/totp",
        method = "delete",
        operation_id = "totpDisable"
    )]
    async fn totp_disable(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<ConfirmRequest>,
    ) -> TotpDisableResponse {
        let proof = match body.0.proof() {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        match core
            .totp_disable(&auth.0, proof, &super::client_info(req, &core))
            .await
        {
            Ok(()) => TotpDisableResponse::NoContent,
            Err(e) => e.into(),
        }
    }

    /// A new set of recovery codes, confirmed by a current code, the
    /// password or a passkey assertion, or by a recent proof on the
    /// session (`{}`; step-up).
    #[oai(
        path = "/v1/me/mfa/recovery-codes",
        method = "post",
        operation_id = "regenerateRecoveryCodes"
    )]
    async fn recovery_codes(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<ConfirmRequest>,
    ) -> RecoveryCodesResponse {
        let proof = match body.0.proof() {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        match core
            .regenerate_recovery_codes(&auth.0, proof, &client_info(req, &core))
            .await
        {
            Ok(codes) => RecoveryCodesResponse::Ok(Json(codes.into())),
            Err(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_two_fields() {
        assert!(matches!(one_of(("a", Some(1)), ("b", None)), Ok(Ok(1))));
        assert!(matches!(one_of(("a", None), ("b", Some(2))), Ok(Err(2))));
        for (x, y) in [(None, None), (Some(1), Some(2))] {
            match one_of(("a", x), ("b", y)) {
                Err(Error::Validation(errors)) => assert_eq!(errors.len(), 2),
                other => panic!("{other:?}"),
            }
        }
    }
}
