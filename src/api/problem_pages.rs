//! `GET /problems/{slug}`: every problem `type` URI answers with a page
//! that describes the problem to a person (RFC 9457 §3.1.1), instead of a
//! 404.

use poem::http::StatusCode;
use poem::web::Path;
use poem::{IntoResponse, Response, handler};

use super::problem::Problem;

/// Every slug the service (and the contract) uses: slug, status, title,
/// and what it means for the client.
pub const PROBLEMS: &[(&str, u16, &str, &str)] = &[
    (
        "validation",
        422,
        "Validation failed",
        "A field of the request breaks a rule. `errors` lists each field with a machine-readable `code` (`too_short`, `too_common`, `same_as_current`, `invalid`, ...).",
    ),
    (
        "malformed-request",
        400,
        "Malformed request",
        "The body is not valid JSON, is not an object, misses a required field, has a field of the wrong type, or has a field the endpoint does not know. `errors` names the fields.",
    ),
    (
        "invalid-credentials",
        401,
        "Invalid credentials",
        "The email address or password is wrong (the answer is the same for an unknown email), or the current password given to confirm a change is wrong.",
    ),
    (
        "authentication-required",
        401,
        "Authentication required",
        "Send an access token as `Authorization: Bearer <token>`.",
    ),
    (
        "token-invalid",
        401,
        "Token invalid",
        "The token is malformed, expired, revoked, of the wrong kind, or a reused refresh token (which also ends its session). Sign in again.",
    ),
    (
        "account-disabled",
        403,
        "Account disabled",
        "The account has been disabled by an administrator.",
    ),
    (
        "forbidden",
        403,
        "Forbidden",
        "The caller may not do this (for example, an admin route without the admin role, or `/metrics` without its token).",
    ),
    (
        "email-unverified",
        403,
        "Email not verified",
        "Sign-in needs a verified email address on this deployment. Use the link or code sent by email.",
    ),
    (
        "invalid-code",
        401,
        "Invalid code",
        "The two-factor code or recovery code is wrong, outside the one step (30 seconds) of drift allowed, or already used: a code works once, so two sign-ins within one step need the next code.",
    ),
    (
        "passkey-invalid",
        400,
        "Passkey not registered",
        "A passkey registration was refused: an unknown, expired or used `challenge_id`, a credential that does not parse or verify, a wrong origin or RP id, or an authenticator already registered. `detail` says which.",
    ),
    (
        "passkey-rejected",
        401,
        "Passkey rejected",
        "A passkey sign-in or proof was refused: an unknown, expired or used `challenge_id`, an assertion that does not verify, a wrong origin or RP id, a passkey that is not the account's, or a signature counter that went backwards (a cloned authenticator). `detail` says which.",
    ),
    (
        "mfa-required",
        401,
        "Second factor required",
        "The account has two-factor authentication on: send a one-time code or a recovery code too.",
    ),
    (
        "reauthentication-required",
        401,
        "Reauthentication required",
        "Adding or removing a credential, changing the email or deleting the account needs a recent proof on this session: the password, a current TOTP code or a passkey assertion, sent in the same request (`password`, `code`, `passkey`) or given within `PORTCULLIS_REAUTH_WINDOW` (default 5 minutes) at sign-in or through `POST /v1/me/reauthenticate`. `methods` lists the proofs the account can give. A bare access token never adds a credential.",
    ),
    // Federated sign-in.
    (
        "id-token-invalid",
        401,
        "ID token invalid",
        "The identity provider's token was refused: bad signature, wrong issuer or audience (the provider's CLIENT_ID or NATIVE_CLIENT_IDS), expired, no nonce, a nonce that is not a fresh one from POST /v1/federation/nonce (raw or SHA-256 hex), or a token already used.",
    ),
    (
        "link-required",
        409,
        "Link required",
        "An account already uses the identity's email address. Sign in to that account by its own means (second factor included), then POST the `link_token` member of this problem to /v1/me/identities.",
    ),
    (
        "provider-email-unverified",
        422,
        "Provider email unverified",
        "The identity provider gave no verified email address and the identity is not linked to an account: nothing was created or linked.",
    ),
    (
        "signup-disabled",
        403,
        "Sign-up disabled",
        "A first sign-in with an identity provider would create an account, and PORTCULLIS_FEDERATION_SIGNUP is false.",
    ),
    (
        "code-invalid",
        400,
        "Code invalid",
        "The one-time code of a redirect sign-in is invalid, expired (5 minutes), already used, meant for another intent, or the code_verifier does not match its code_challenge.",
    ),
    (
        "last-credential",
        409,
        "Last way to sign in",
        "Unlinking this identity would leave the account without a password, passkey or other identity: add one first.",
    ),
    (
        "identity-taken",
        409,
        "Identity linked elsewhere",
        "The identity is linked to another account; unlink it there first.",
    ),
    (
        "provider-unavailable",
        502,
        "Identity provider unavailable",
        "The identity provider did not answer in time or gave an unusable answer (discovery, keys, token endpoint). Try again shortly.",
    ),
    (
        "unknown-provider",
        400,
        "Unknown provider",
        "No identity provider with this id is configured (GET /v1/providers lists them).",
    ),
    (
        "redirect-not-allowed",
        400,
        "Redirect not allowed",
        "`redirect_to` is not one of PORTCULLIS_REDIRECT_URLS (exact URLs, or prefixes ending in `*`).",
    ),
    (
        "pkce-required",
        400,
        "PKCE required",
        "A redirect sign-in needs the client's PKCE `code_challenge` with `code_challenge_method=S256`.",
    ),
    (
        "intent-invalid",
        400,
        "Intent invalid",
        "`intent` is `signin` or `link`.",
    ),
    (
        "state-invalid",
        400,
        "Sign-in state invalid",
        "The provider's answer names no sign-in in progress (unknown, expired after 10 minutes, or already finished): start again.",
    ),
    (
        "anonymous-disabled",
        403,
        "Anonymous users are off",
        "`POST /v1/sessions/anonymous` creates guest users only where `PORTCULLIS_ANONYMOUS=true`; this deployment has them off.",
    ),
    (
        "anonymous-user",
        403,
        "Not for anonymous users",
        "An anonymous (guest) user cannot add a passkey, turn on two-factor sign-in or change its email: it has no address and no password to recover it. Upgrade it first with `POST /v1/me/upgrade` (`{email, password}`), which keeps its id and sessions.",
    ),
    (
        "passkey-limit",
        409,
        "Too many passkeys",
        "The account has `PORTCULLIS_MAX_PASSKEYS` passkeys (default 20), the most allowed: remove one before adding another.",
    ),
    (
        "not-found",
        404,
        "Not found",
        "No such resource, or not one of the caller's.",
    ),
    (
        "method-not-allowed",
        405,
        "Method not allowed",
        "The resource exists but not with this method; `Allow` lists the methods it takes.",
    ),
    (
        "conflict",
        409,
        "Conflict",
        "A unique value is taken (for example, an email address that already has an account).",
    ),
    (
        "payload-too-large",
        413,
        "Payload too large",
        "The request body is larger than this endpoint accepts.",
    ),
    (
        "uri-too-long",
        414,
        "URI too long",
        "The request target is longer than this server accepts.",
    ),
    (
        "request-header-fields-too-large",
        431,
        "Request header fields too large",
        "The request has too many headers, or headers too large.",
    ),
    (
        "request-timeout",
        408,
        "Request timeout",
        "The request (headers or body) did not arrive within `PORTCULLIS_HTTP_TIMEOUT`; the connection is closed.",
    ),
    (
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "The endpoint takes another content type (JSON endpoints take `application/json`).",
    ),
    (
        "captcha-required",
        400,
        "CAPTCHA required",
        "Too many failed attempts (or a deployment that always asks): solve the proof-of-work challenge from `GET /v1/captcha` and send the solution as `captcha`. Each solution works once.",
    ),
    (
        "token-invalid-or-expired",
        400,
        "Token invalid or expired",
        "The reset or verification token (or email code) is invalid, expired, already used, or superseded by a newer one.",
    ),
    (
        "rate-limited",
        429,
        "Too many requests",
        "Too many attempts from this address or for this account: wait the number of seconds in `Retry-After`.",
    ),
    (
        "bad-request",
        400,
        "Bad request",
        "The request could not be processed.",
    ),
    (
        "internal",
        500,
        "Internal error",
        "Something went wrong on the server's side; the cause is in its logs, never in the answer.",
    ),
    (
        "unavailable",
        503,
        "Service unavailable",
        "The service cannot reach its store right now: retry after `Retry-After` seconds.",
    ),
    // DPoP (RFC 9449).
    (
        "invalid-dpop-proof",
        401,
        "Invalid DPoP proof",
        "The `DPoP` proof header was refused (RFC 9449 §4.3): not a `dpop+jwt` signed with ES256 or EdDSA by the public key in its `jwk`, a private key in `jwk`, `htm`/`htu` not this request's method and URL, `iat` too old or in the future, `ath` not the access token's hash, or a proof already used. Make a new proof for each request. The body's `error` and `WWW-Authenticate: DPoP error=...` say `invalid_dpop_proof`.",
    ),
    (
        "use-dpop-nonce",
        401,
        "DPoP nonce required",
        "This server wants a server nonce in every DPoP proof. Send the request again with a new proof whose `nonce` claim is the value of the `DPoP-Nonce` response header (`use_dpop_nonce`).",
    ),
    (
        "dpop-required",
        401,
        "DPoP proof required",
        "This deployment issues sender-constrained tokens only (`PORTCULLIS_DPOP=required`): sign-in and refresh requests need a `DPoP` proof header (RFC 9449).",
    ),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "")
}

/// The page of one problem type; a 404 problem for unknown slugs.
#[handler]
pub(super) fn page(Path(slug): Path<String>) -> Response {
    let Some((slug, status, title, text)) = PROBLEMS.iter().find(|p| p.0 == slug) else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "No such problem type.",
        )
        .into_response();
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<p>Problem type <code>{slug}</code>, HTTP status {status}.</p>\n<p>{text}</p>\n\
         <p>Answers of this kind are <code>application/problem+json</code> (RFC 9457) with <code>type</code>, \
         <code>title</code>, <code>status</code> and <code>detail</code>.</p></body></html>\n",
        title = escape(title),
        text = escape(text),
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(poem::http::header::CACHE_CONTROL, "public, max-age=86400")
        .body(html)
}
