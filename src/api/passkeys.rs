//! Passkeys (WebAuthn): `/v1/me/passkeys` (register, list, delete),
//! `/v1/sessions/passkey` (sign in), and the native-app association files
//! under `/.well-known/`.

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::problem::responses;
use super::types::{Secret, Text};
use super::views::{TokensView, rfc3339};
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{AssociationFiles, Core, Error, FieldError, PasskeyOptions, PasskeySummary};

/// A missing `credential` is a validation failure, not a failed ceremony.
fn require_credential(credential: &serde_json::Value) -> Result<(), Error> {
    if credential.is_null() {
        return Err(Error::Validation(vec![FieldError::new(
            "credential",
            "required",
            "The PublicKeyCredential (its toJSON()) is required.",
        )]));
    }
    Ok(())
}

/// Options for `navigator.credentials.create` or `.get`.
#[derive(Debug, Object)]
#[oai(rename = "PasskeyOptions")]
pub struct PasskeyOptionsView {
    /// Names this ceremony in the request that finishes it (single use;
    /// expires after 5 minutes).
    pub challenge_id: String,
    /// The WebAuthn `publicKey` options in their JSON form (binary fields
    /// base64url): pass to `PublicKeyCredential.parseCreationOptionsFromJSON`
    /// or `parseRequestOptionsFromJSON`.
    pub public_key: serde_json::Value,
    /// `conditional` when the options suit the autofill UI
    /// (`mediation: "conditional"`, usernameless sign-in).
    #[oai(skip_serializing_if_is_none)]
    pub mediation: Option<String>,
}

impl From<PasskeyOptions> for PasskeyOptionsView {
    fn from(o: PasskeyOptions) -> Self {
        Self {
            challenge_id: o.challenge_id,
            public_key: o.public_key,
            mediation: o.mediation,
        }
    }
}

/// One passkey of the caller (no key material).
#[derive(Debug, Object)]
#[oai(rename = "Passkey")]
pub struct PasskeyView {
    /// Passkey id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When it last signed in (RFC 3339), `null` if never.
    #[oai(nullable)]
    pub last_used_at: Option<String>,
    /// Whether the credential may be synced to other devices (a "synced
    /// passkey") rather than bound to one authenticator.
    pub backup_eligible: bool,
    /// Whether it was backed up at its last use.
    pub backed_up: bool,
}

impl From<PasskeySummary> for PasskeyView {
    fn from(p: PasskeySummary) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
            backup_eligible: p.backup_eligible,
            backed_up: p.backup_state,
        }
    }
}

/// The browser's answer to a registration.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AddPasskeyRequest {
    /// From `POST /v1/me/passkeys/options`.
    pub challenge_id: Text,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, as
    /// its `toJSON()` (WebAuthn Level 3 JSON, base64url).
    pub credential: serde_json::Value,
    /// A name for it (1 to 64 characters); default `Passkey <n>`.
    pub name: Option<Text>,
    /// The account's password, when the session has no recent proof
    /// (step-up); leave it out otherwise.
    pub password: Option<Secret>,
    /// A current TOTP code, instead of `password`.
    pub code: Option<Secret>,
}

/// Begins a passkey sign-in.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PasskeySignInOptionsRequest {
    /// The account's email, to list its passkeys; leave it out for a
    /// usernameless sign-in (discoverable credentials, autofill UI).
    pub email: Option<Text>,
    /// The `mfa_token` of a password sign-in that needs a second factor.
    pub mfa_token: Option<Secret>,
}

/// The browser's answer to a sign-in.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PasskeySignInRequest {
    /// From `POST /v1/sessions/passkey/options`.
    pub challenge_id: Text,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, as its
    /// `toJSON()` (WebAuthn Level 3 JSON, base64url).
    pub credential: serde_json::Value,
}

responses! {
    pub enum RegistrationOptionsResponse {
        /// Creation options.
        Ok(Json<PasskeyOptionsView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum AddPasskeyResponse {
        /// Passkey added.
        Created(Json<PasskeyView>) = 201,
    }
    errors { body_errors, Unauthorized = 401, Conflict = 409, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum ListPasskeysResponse {
        /// The caller's passkeys, oldest first.
        Ok(Json<Vec<PasskeyView>>) = 200,
    }
    errors { Unauthorized = 401, Unavailable = 503 }
}

responses! {
    pub enum DeletePasskeyResponse {
        /// Passkey removed.
        NoContent = 204,
    }
    errors { Unauthorized = 401, NotFound = 404, Conflict = 409, Unavailable = 503 }
}

responses! {
    pub enum SignInOptionsResponse {
        /// Request options.
        Ok(Json<PasskeyOptionsView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum PasskeySignInResponse {
        /// Signed in: a token pair (`amr` `["hwk", "user"]`).
        Ok(Json<TokensView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Forbidden = 403, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

/// Passkey routes.
pub struct PasskeysApi;

#[OpenApi(tag = "ApiTags::Passkeys")]
impl PasskeysApi {
    /// Begin adding a passkey: options for `navigator.credentials.create`.
    ///
    /// Needs a recent proof on the session (sign-in or
    /// `POST /v1/me/reauthenticate` within `PORTCULLIS_REAUTH_WINDOW`), else
    /// 401 `reauthentication-required`: a bare access token never adds a
    /// credential. 409 `passkey-limit` when the account has
    /// `PORTCULLIS_MAX_PASSKEYS` already.
    #[oai(
        path = "/v1/me/passkeys/options",
        method = "post",
        operation_id = "passkeyRegistrationOptions"
    )]
    async fn registration_options(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
    ) -> RegistrationOptionsResponse {
        let client = client_info(req, &core);
        match core.passkey_registration_options(&auth.0, &client).await {
            Ok(o) => RegistrationOptionsResponse::Ok(Json(o.into())),
            Err(e) => e.into(),
        }
    }

    /// Finish adding a passkey. Other sessions and credentials are kept.
    ///
    /// Needs a recent proof on the session, or `password` (or `code`) in
    /// the body; 409 `passkey-limit` past `PORTCULLIS_MAX_PASSKEYS`.
    #[oai(path = "/v1/me/passkeys", method = "post", operation_id = "addPasskey")]
    async fn add(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<AddPasskeyRequest>,
    ) -> AddPasskeyResponse {
        let body = body.0;
        if let Err(e) = require_credential(&body.credential) {
            return e.into();
        }
        let proof = match super::users::one_proof(body.password, body.code, None) {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        match core
            .add_passkey(
                &auth.0,
                &body.challenge_id.0,
                &body.credential,
                body.name.as_ref().map(|n| n.0.as_str()),
                proof,
                &super::client_info(req, &core),
            )
            .await
        {
            Ok(p) => AddPasskeyResponse::Created(Json(p.into())),
            Err(e) => e.into(),
        }
    }

    /// The caller's passkeys.
    #[oai(
        path = "/v1/me/passkeys",
        method = "get",
        operation_id = "listPasskeys"
    )]
    async fn list(&self, core: Data<&Core>, auth: BearerAuth) -> ListPasskeysResponse {
        match core.passkeys(&auth.0).await {
            Ok(list) => ListPasskeysResponse::Ok(Json(list.into_iter().map(Into::into).collect())),
            Err(e) => e.into(),
        }
    }

    /// Remove a passkey. Refused (409) when it is the only way into an
    /// account without a password. Needs a recent proof on the session
    /// (step-up), else 401 `reauthentication-required`.
    #[oai(
        path = "/v1/me/passkeys/:id",
        method = "delete",
        operation_id = "deletePasskey"
    )]
    async fn delete(
        &self,
        req: &poem::Request,
        core: Data<&Core>,
        auth: BearerAuth,
        id: Path<String>,
    ) -> DeletePasskeyResponse {
        match core
            .remove_passkey(&auth.0, &id.0, &super::client_info(req, &core))
            .await
        {
            Ok(()) => DeletePasskeyResponse::NoContent,
            Err(e) => e.into(),
        }
    }

    /// Begin a passkey sign-in: options for `navigator.credentials.get`.
    ///
    /// Without `email` the options are for discoverable credentials
    /// (usernameless; suitable for the autofill UI). With an `email` the
    /// answer has one shape whatever the address: an account's passkeys are
    /// listed in `allowCredentials`; an unknown address or one without
    /// passkeys gets stable made-up credential ids instead, so the answer
    /// does not tell which addresses have accounts or passkeys.
    #[oai(
        path = "/v1/sessions/passkey/options",
        method = "post",
        operation_id = "passkeySignInOptions"
    )]
    async fn sign_in_options(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<PasskeySignInOptionsRequest>,
    ) -> SignInOptionsResponse {
        use secrecy::ExposeSecret;
        let client = client_info(req, &core);
        let body = body.0;
        match core
            .passkey_sign_in_options(
                body.email.as_ref().map(|e| e.0.as_str()),
                body.mfa_token.as_ref().map(|t| t.0.expose_secret()),
                &client,
            )
            .await
        {
            Ok(o) => SignInOptionsResponse::Ok(Json(o.into())),
            Err(e) => e.into(),
        }
    }

    /// Finish a passkey sign-in: a token pair.
    #[oai(
        path = "/v1/sessions/passkey",
        method = "post",
        operation_id = "passkeySignIn"
    )]
    async fn sign_in(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<PasskeySignInRequest>,
    ) -> PasskeySignInResponse {
        let client = client_info(req, &core);
        let body = body.0;
        if let Err(e) = require_credential(&body.credential) {
            return e.into();
        }
        match core
            .passkey_sign_in(&body.challenge_id.0, &body.credential, client)
            .await
        {
            Ok(tokens) => PasskeySignInResponse::Ok(Json(tokens.into())),
            Err(e) => e.into(),
        }
    }
}

/// Responses of an association file.
#[derive(ApiResponse)]
pub enum AssociationResponse {
    /// The file (cacheable for an hour).
    #[oai(status = 200)]
    Ok(
        Json<serde_json::Value>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Not configured.
    #[oai(status = 404)]
    NotFound(super::problem::Problem),
}

fn association(core: &Core, which: AssociationFiles) -> AssociationResponse {
    match core.association_file(which) {
        Some(body) => AssociationResponse::Ok(Json(body), "public, max-age=3600".to_string()),
        None => AssociationResponse::NotFound(super::problem::problem_of(
            &crate::service::Error::NotFound("Association file"),
        )),
    }
}

/// Native-app association files (passkeys and links in iOS and Android apps).
pub struct AssociationApi;

#[OpenApi(tag = "ApiTags::Wellknown")]
impl AssociationApi {
    /// iOS: associated domains (`webcredentials` for passkeys, `applinks`
    /// for the reset and verification links), from `PORTCULLIS_APPLE_APP_IDS`.
    #[oai(
        path = "/.well-known/apple-app-site-association",
        method = "get",
        operation_id = "appleAppSiteAssociation"
    )]
    async fn apple(&self, core: Data<&Core>) -> AssociationResponse {
        association(&core, AssociationFiles::Apple)
    }

    /// Android: Digital Asset Links (`get_login_creds` for passkeys,
    /// `handle_all_urls` for links), from `PORTCULLIS_ANDROID_APPS`.
    #[oai(
        path = "/.well-known/assetlinks.json",
        method = "get",
        operation_id = "assetLinks"
    )]
    async fn android(&self, core: Data<&Core>) -> AssociationResponse {
        association(&core, AssociationFiles::Android)
    }
}
