//! The mapping from [`service::Error`](crate::service::Error) to a problem:
//! status, slug, title, detail, `WWW-Authenticate` and `Retry-After`, with
//! 5xx causes logged and hidden; and the 503 and 500 documents.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use super::{FieldErrorBody, Problem};
use crate::service::Error;

/// The problem document a client sees for a use-case failure. Logs 5xx causes.
#[allow(
    clippy::too_many_lines,
    reason = "one arm per service::Error variant: the whole mapping reads as one table"
)]
pub fn problem_of(e: &Error) -> Problem {
    use StatusCode as S;
    match e {
        Error::Validation(errors) => {
            let detail = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.detail))
                .collect::<Vec<_>>()
                .join("; ");
            let mut p = Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "validation",
                "Validation failed",
                detail,
            );
            p.body.errors = Some(errors.iter().map(FieldErrorBody::from).collect());
            p
        }
        Error::InvalidCredentials => Problem::new(
            S::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
            "The email address or password is wrong.",
        ),
        Error::WrongPassword => Problem::new(
            S::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
            "The current password is wrong.",
        ),
        Error::InvalidCode => Problem::new(
            S::UNAUTHORIZED,
            "invalid-code",
            "Invalid code",
            "The two-factor code is wrong, expired or was already used.",
        ),
        Error::MfaRequired(why) => Problem::new(
            S::UNAUTHORIZED,
            "mfa-required",
            "Second factor required",
            *why,
        ),
        Error::Unauthenticated => Problem::new(
            S::UNAUTHORIZED,
            "authentication-required",
            "Authentication required",
            "Send an access token as `Authorization: Bearer <token>`.",
        ),
        Error::IntrospectionCallerRefused => Problem::new(
            S::UNAUTHORIZED,
            "authentication-required",
            "Authentication required",
            "Send the resource servers' introspection credential (`PORTCULLIS_INTROSPECTION_TOKEN`) as `Authorization: Bearer <credential>`; an access token is not one.",
        ),
        Error::TokenInvalid(why) => Problem::new(
            S::UNAUTHORIZED,
            "token-invalid",
            "Token invalid",
            format!("The token is invalid: {why}."),
        )
        .with_bearer_error("invalid_token", why),
        Error::LinkInvalid(why) => Problem::new(
            S::BAD_REQUEST,
            "token-invalid-or-expired",
            "Link invalid or expired",
            format!("{why}."),
        ),
        Error::AccountDisabled => Problem::new(
            S::FORBIDDEN,
            "account-disabled",
            "Account disabled",
            "This account has been disabled.",
        ),
        Error::Forbidden(why) => Problem::new(S::FORBIDDEN, "forbidden", "Forbidden", *why)
            .with_bearer_error("insufficient_scope", why),
        Error::NotFound(what) => Problem::new(
            S::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found."),
        ),
        Error::Conflict(why) => Problem::new(S::CONFLICT, "conflict", "Conflict", *why),
        Error::RateLimited { retry_after } => {
            let mut p = Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("Too many attempts; retry in {retry_after} seconds."),
            );
            p.retry_after = Some(*retry_after);
            p
        }
        Error::CaptchaRequired => Problem::new(
            S::BAD_REQUEST,
            "captcha-required",
            "CAPTCHA required",
            "Solve the challenge from GET /v1/captcha and send it as `captcha`.",
        ),
        Error::UnsupportedMedia(why) => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            *why,
        ),
        Error::TicketInvalid => Problem::new(
            S::BAD_REQUEST,
            "token-invalid-or-expired",
            "Link or code invalid or expired",
            "The link or code is invalid, expired, already used or replaced by a newer one. Request a new one.",
        ),
        Error::EmailUnverified => Problem::new(
            S::FORBIDDEN,
            "email-unverified",
            "Email address not verified",
            "Confirm your email address with the link or code we sent, then sign in.",
        ),
        // Passkeys.
        Error::PasskeyInvalid(why) => Problem::new(
            S::BAD_REQUEST,
            "passkey-invalid",
            "Passkey not registered",
            format!("The passkey could not be registered: {why}."),
        ),
        Error::PasskeyRejected(why) => Problem::new(
            S::UNAUTHORIZED,
            "passkey-rejected",
            "Passkey rejected",
            format!("The passkey sign-in failed: {why}."),
        ),
        // Step-up. RFC 9470's challenge: the token is fine, the
        // authentication behind it is not recent enough.
        Error::ReauthenticationRequired { methods } => {
            let mut p = Problem::new(
                S::UNAUTHORIZED,
                "reauthentication-required",
                "Reauthentication required",
                "This change needs a recent proof that it is you: send `password`, `code` or `passkey` with it, or confirm first with POST /v1/me/reauthenticate.",
            )
            .with_bearer_error(
                "insufficient_user_authentication",
                "a recent authentication is required",
            );
            p.body.methods = Some(methods.iter().map(|m| (*m).to_string()).collect());
            p
        }
        Error::PasskeyLimit { max } => Problem::new(
            S::CONFLICT,
            "passkey-limit",
            "Too many passkeys",
            format!(
                "The account has {max} passkeys, the most allowed: remove one before adding another."
            ),
        ),
        // Anonymous users.
        Error::AnonymousDisabled => Problem::new(
            S::FORBIDDEN,
            "anonymous-disabled",
            "Anonymous users are off",
            "This deployment does not create anonymous users (PORTCULLIS_ANONYMOUS is off).",
        ),
        Error::AnonymousUser(what) => Problem::new(
            S::FORBIDDEN,
            "anonymous-user",
            "Not for anonymous users",
            format!(
                "An anonymous user cannot {what}: upgrade to a full account first (POST /v1/me/upgrade)."
            ),
        ),
        // Federated sign-in.
        Error::IdTokenInvalid(why) => Problem::new(
            S::UNAUTHORIZED,
            "id-token-invalid",
            "ID token invalid",
            format!("The identity provider's token was refused: {why}."),
        ),
        Error::LinkRequired { link_token } => {
            let mut p = Problem::new(
                S::CONFLICT,
                "link-required",
                "Link required",
                "An account already uses this email address. Sign in to it by its own means, then link this identity: POST /v1/me/identities {link_token}.",
            );
            p.body.link_token = Some(link_token.clone());
            p
        }
        Error::ProviderEmailUnverified => Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "provider-email-unverified",
            "Provider email unverified",
            "The identity provider gave no verified email address, and this identity is not linked to an account.",
        ),
        Error::SignupDisabled => Problem::new(
            S::FORBIDDEN,
            "signup-disabled",
            "Sign-up disabled",
            "New accounts cannot be created with an identity provider here.",
        ),
        Error::CodeInvalid => Problem::new(
            S::BAD_REQUEST,
            "code-invalid",
            "Code invalid",
            "The code is invalid, expired or already used, or the code_verifier does not match.",
        ),
        Error::LastCredential => Problem::new(
            S::CONFLICT,
            "last-credential",
            "Last way to sign in",
            "This is the account's last way to sign in (no password, passkey or other identity): add another first.",
        ),
        Error::IdentityTaken => Problem::new(
            S::CONFLICT,
            "identity-taken",
            "Identity linked elsewhere",
            "This identity is linked to another account.",
        ),
        Error::ProviderUnavailable => {
            let mut p = Problem::new(
                S::BAD_GATEWAY,
                "provider-unavailable",
                "Identity provider unavailable",
                "The identity provider could not be reached or gave an unusable answer; try again shortly.",
            );
            p.retry_after = Some(5);
            p
        }
        Error::FederationRefused { slug, detail } => {
            Problem::new(S::BAD_REQUEST, slug, "Federation request refused", *detail)
        }
        // DPoP (RFC 9449 §7.1): 401 with a `DPoP` challenge on every
        // route of the JSON API (the token endpoint answers RFC 6749's 400).
        Error::DpopProofInvalid(why) => Problem::new(
            S::UNAUTHORIZED,
            "invalid-dpop-proof",
            "Invalid DPoP proof",
            format!("The DPoP proof was refused: {why}."),
        )
        .with_dpop_error("invalid_dpop_proof", why),
        Error::DpopNonceRequired(nonce) => Problem::new(
            S::UNAUTHORIZED,
            "use-dpop-nonce",
            "DPoP nonce required",
            "Send the request again with a new DPoP proof carrying the nonce of the DPoP-Nonce header.",
        )
        .with_dpop_error("use_dpop_nonce", "a server nonce is required")
        .with_dpop_nonce(nonce.clone()),
        Error::DpopRequired => Problem::new(
            S::UNAUTHORIZED,
            "dpop-required",
            "DPoP proof required",
            "This server issues sender-constrained tokens only: send a DPoP proof (RFC 9449) in the DPoP header.",
        )
        .with_dpop_error("invalid_dpop_proof", "a DPoP proof is required"),
        Error::DpopBinding(why) => Problem::new(
            S::UNAUTHORIZED,
            "token-invalid",
            "Token invalid",
            format!("The token is invalid: {why}."),
        )
        .with_dpop_error("invalid_token", why),
        Error::Unavailable => {
            tracing::error!("store unavailable");
            unavailable()
        }
        Error::Unexpected(e) => {
            tracing::error!(error = ?e, "unexpected error");
            internal()
        }
    }
}

/// 503 problem.
pub fn unavailable() -> Problem {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        "The service cannot reach its store; try again shortly.",
    );
    p.retry_after = Some(5);
    p
}

/// 500 problem; the cause is logged by the caller, never shown.
pub fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "Something went wrong on our side.",
    )
}

impl poem::error::ResponseError for Error {
    fn status(&self) -> StatusCode {
        problem_of(self).status()
    }

    fn as_response(&self) -> Response {
        problem_of(self).into_response()
    }
}
