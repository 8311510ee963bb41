//! `/v1/users` and `/v1/me`.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use super::problem::responses;
use super::types::{Secret, Text};
use super::views::UserView;
use super::{ApiTags, BearerAuth, BearerTokenAuth, client_info};
use crate::service::{Core, Error, FieldError, ProfilePatch, Proof, Registration};

/// New account.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address; unique, case-insensitively.
    pub email: Text,
    /// 8 to 128 characters of any script; common passwords are refused.
    pub password: Secret,
    /// Optional name shown to others (1 to 64 characters).
    #[oai(nullable)]
    pub display_name: Option<Text>,
    /// Optional BCP 47 language tag the user prefers (`en`, `pt-BR`); mail
    /// and apps use it.
    #[oai(nullable)]
    pub locale: Option<Text>,
    /// ALTCHA solution (base64 JSON) when a CAPTCHA is required.
    pub captcha: Option<Text>,
}

/// Profile changes; fields left out stay as they are, `null` clears.
/// `email`, `email_verified`, `roles` and `disabled` are an operator's
/// (`PATCH /v1/admin/users/{id}`): sending any of them here is a 422 and
/// changes nothing.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    /// New display name (1 to 64 characters, trimmed, no control
    /// characters); `null` clears it.
    #[oai(nullable)]
    pub display_name: MaybeUndefined<Text>,
    /// BCP 47 language tag (`en`, `pt-BR`), stored in canonical form;
    /// `null` clears it.
    #[oai(nullable)]
    pub locale: MaybeUndefined<Text>,
    /// IANA time zone (`Europe/Paris`); `null` clears it.
    #[oai(nullable)]
    pub timezone: MaybeUndefined<Text>,
    /// The application's JSON object (≤ 4 KiB serialized, depth ≤ 5, no key
    /// starting with `$` or containing `.`); replaces the old one whole;
    /// `null` clears it.
    #[oai(nullable)]
    pub metadata: MaybeUndefined<serde_json::Value>,
    /// Admin only: refused with 422.
    #[oai(nullable)]
    pub email: MaybeUndefined<serde_json::Value>,
    /// Admin only: refused with 422.
    #[oai(nullable)]
    pub email_verified: MaybeUndefined<serde_json::Value>,
    /// Admin only: refused with 422.
    #[oai(nullable)]
    pub roles: MaybeUndefined<serde_json::Value>,
    /// Admin only: refused with 422.
    #[oai(nullable)]
    pub disabled: MaybeUndefined<serde_json::Value>,
}

/// Proof that the caller is the account's owner: at most one of
/// `password`, `code` and `passkey`, of a kind the account has (a password
/// for an account without one, or a code for an account without two-factor
/// sign-in, is refused with 401 like a wrong one). Without any, the
/// session must have proved itself recently (at sign-in or through
/// `POST /v1/me/reauthenticate`, within `PORTCULLIS_REAUTH_WINDOW`), else
/// 401 `reauthentication-required`. Wrong proofs are counted per account
/// with the password checks of `POST /v1/me/password` and
/// `POST /v1/me/email`: 429 with `Retry-After` past
/// `PORTCULLIS_LOGIN_MAX_FAILURES` in 15 minutes.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password.
    pub password: Option<Secret>,
    /// A current 6-digit code from the authenticator app (accounts with
    /// two-factor sign-in on). Recovery codes are not accepted here.
    pub code: Option<Secret>,
    /// A fresh assertion by one of the caller's passkeys: the way a
    /// passkey-only account (no password) proves itself.
    pub passkey: Option<PasskeyProof>,
}

/// A proof of identity for `POST /v1/me/reauthenticate`: exactly one of
/// `password`, `code` and `passkey`.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ReauthenticateRequest {
    /// The account's password.
    pub password: Option<Secret>,
    /// A current 6-digit code from the authenticator app.
    pub code: Option<Secret>,
    /// A fresh assertion by one of the caller's passkeys, for options from
    /// `POST /v1/sessions/passkey/options`.
    pub passkey: Option<PasskeyProof>,
}

/// A passkey assertion proving the caller is present.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PasskeyProof {
    /// From `POST /v1/sessions/passkey/options`, called with the caller's
    /// `email` (or with none: discoverable credentials). Single use.
    pub challenge_id: Text,
    /// The `PublicKeyCredential` from `navigator.credentials.get` for those
    /// options, as its `toJSON()` (WebAuthn Level 3 JSON, base64url); it
    /// must be by one of the caller's own passkeys.
    pub credential: serde_json::Value,
}

/// The one proof a body carries (`None` when it carries none); a 422
/// naming the fields when it carries several.
pub(crate) fn one_proof(
    password: Option<Secret>,
    code: Option<Secret>,
    passkey: Option<PasskeyProof>,
) -> Result<Option<Proof>, Error> {
    let given = [
        password.map(|p| Proof::Password(p.0)),
        code.map(|c| Proof::Code(c.0)),
        passkey.map(|p| Proof::Passkey {
            challenge_id: p.challenge_id.0,
            credential: p.credential,
        }),
    ];
    let mut given = given.into_iter().flatten();
    match (given.next(), given.next()) {
        (first, None) => Ok(first),
        _ => Err(Error::Validation(
            ["password", "code", "passkey"]
                .into_iter()
                .map(|f| {
                    FieldError::new(
                        f,
                        "one_of",
                        "send only one of `password`, `code` and `passkey`",
                    )
                })
                .collect(),
        )),
    }
}

/// `MaybeUndefined` as "leave / clear / set".
fn patch_of<T, U>(v: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Option<Option<U>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(t) => Some(Some(f(t))),
    }
}

/// The answer to a registration when verified addresses are required.
#[derive(Debug, Object)]
pub struct VerificationSentBody {
    /// `verification_sent`: the same for a new and a taken address.
    pub status: String,
}

responses! {
    pub enum RegisterResponse {
        /// Account created.
        Created(Json<UserView>) = 201,
        /// With `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`: a mail is on its
        /// way (a verification link, or an "you already have an account"
        /// notice); the same answer for a new and a taken address.
        Accepted(Json<VerificationSentBody>) = 202,
    }
    errors { body_errors, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum MeResponse {
        /// The caller's account.
        Ok(Json<UserView>) = 200,
    }
    errors { Unauthorized = 401, Unavailable = 503 }
}

responses! {
    pub enum DeleteMeResponse {
        /// Account erased.
        Deleted = 204,
    }
    errors { body_errors, Unauthorized = 401, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum ReauthenticateResponse {
        /// The proof is recorded on the caller's session: changes that need
        /// a recent proof work without one for `PORTCULLIS_REAUTH_WINDOW`.
        NoContent = 204,
    }
    errors { body_errors, Unauthorized = 401, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum UpdateMeResponse {
        /// The updated account.
        Ok(Json<UserView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Unprocessable = 422, Unavailable = 503 }
}

/// `/v1/users` and `/v1/me`.
pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Register a new account.
    #[oai(path = "/v1/users", method = "post", operation_id = "register")]
    async fn register(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<RegisterRequest>,
    ) -> RegisterResponse {
        let body = body.0;
        let client = client_info(req, &core);
        let input = Registration {
            email: body.email.0,
            password: body.password.0,
            display_name: body.display_name.map(|t| t.0),
            locale: body.locale.map(|t| t.0),
            captcha: body.captcha.map(|t| t.0),
        };
        if core.verification_required() {
            return match core.register_quietly(input, &client).await {
                Ok(()) => RegisterResponse::Accepted(Json(VerificationSentBody {
                    status: "verification_sent".to_string(),
                })),
                Err(e) => e.into(),
            };
        }
        match core.register(input, &client).await {
            Ok(account) => RegisterResponse::Created(Json(UserView::from(&account))),
            Err(e) => e.into(),
        }
    }

    /// The caller's account.
    #[oai(path = "/v1/me", method = "get", operation_id = "getMe")]
    async fn me(&self, core: Data<&Core>, auth: BearerTokenAuth) -> MeResponse {
        // The session is checked with the account read (one store read).
        match core.me_checked(&auth.0).await {
            Ok(user) => MeResponse::Ok(Json(UserView::from(&user))),
            Err(e) => e.into(),
        }
    }

    /// Update the caller's profile.
    #[oai(path = "/v1/me", method = "patch", operation_id = "updateMe")]
    async fn update_me(
        &self,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<UpdateProfileRequest>,
    ) -> UpdateMeResponse {
        let b = body.0;
        let admin_fields = [
            ("email", b.email.is_undefined()),
            ("email_verified", b.email_verified.is_undefined()),
            ("roles", b.roles.is_undefined()),
            ("disabled", b.disabled.is_undefined()),
        ]
        .into_iter()
        .filter(|(_, absent)| !absent)
        .map(|(name, _)| name)
        .collect();
        let patch = ProfilePatch {
            display_name: patch_of(b.display_name, |t| t.0),
            locale: patch_of(b.locale, |t| t.0),
            timezone: patch_of(b.timezone, |t| t.0),
            metadata: patch_of(b.metadata, |v| v),
            admin_fields,
        };
        match core.update_profile(&auth.0, patch).await {
            Ok(user) => UpdateMeResponse::Ok(Json(UserView::from(&user))),
            Err(e) => e.into(),
        }
    }

    /// Delete the caller's account: profile, credentials, sessions and
    /// avatar are erased; the email can be registered again.
    ///
    /// Needs a proof that the caller is the owner (step-up): at most one of
    /// the `password`; a current TOTP `code`; or, for any account with a
    /// passkey (the only way for one without a password), a `passkey`
    /// assertion: call `POST /v1/sessions/passkey/options` with the
    /// caller's `email` (or `{}`), pass its `public_key` to
    /// `navigator.credentials.get`, and send `{passkey: {challenge_id,
    /// credential}}`. `{}` works when the session proved itself within
    /// `PORTCULLIS_REAUTH_WINDOW` (sign-in, `POST /v1/me/reauthenticate`),
    /// else 401 `reauthentication-required`. An assertion by another
    /// account's passkey, a replayed or a wrong one is a 401 and nothing is
    /// deleted.
    #[oai(path = "/v1/me", method = "delete", operation_id = "deleteMe")]
    async fn delete_me(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<DeleteAccountRequest>,
    ) -> DeleteMeResponse {
        let b = body.0;
        let proof = match one_proof(b.password, b.code, b.passkey) {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        let client = client_info(req, &core);
        match core.delete_account(&auth.0, proof, &client).await {
            Ok(()) => DeleteMeResponse::Deleted,
            Err(e) => e.into(),
        }
    }

    /// Confirm it is you: a proof of identity on the caller's session.
    ///
    /// Exactly one of the `password`, a current TOTP `code`, or a `passkey`
    /// assertion (options from `POST /v1/sessions/passkey/options`, as for
    /// `DELETE /v1/me`). For `PORTCULLIS_REAUTH_WINDOW` (default 5 minutes)
    /// afterwards, this session may add or remove credentials, change the
    /// email and delete the account without sending a proof again; other
    /// sessions are not affected, and a refresh does not extend the window.
    /// Wrong proofs are throttled per account like the other password and
    /// code checks.
    #[oai(
        path = "/v1/me/reauthenticate",
        method = "post",
        operation_id = "reauthenticate"
    )]
    async fn reauthenticate(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<ReauthenticateRequest>,
    ) -> ReauthenticateResponse {
        let b = body.0;
        let proof = match one_proof(b.password, b.code, b.passkey) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Error::Validation(
                    ["password", "code", "passkey"]
                        .into_iter()
                        .map(|f| {
                            FieldError::new(
                                f,
                                "one_of",
                                "send one proof: `password`, `code` or `passkey`",
                            )
                        })
                        .collect(),
                )
                .into();
            }
            Err(e) => return e.into(),
        };
        let client = client_info(req, &core);
        match core.reauthenticate(&auth.0, proof, &client).await {
            Ok(()) => ReauthenticateResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}
