//! The built-in pages the links in reset, verification and new-sign-in mails
//! open when no `PORTCULLIS_APP_URL` points them at an SPA:
//! `GET /reset-password`, `GET /verify-email` and `GET /not-me`.
//!
//! Scanner-safe: opening a page (GET, HEAD, a mail scanner's prefetch)
//! never touches the token; the page is a form, and only its POST (a person
//! pressing the button) uses it. The pages are plain HTML with no script at
//! all, an inline style allowed by its hash, `form-action 'self'`, and
//! (from the middleware) `Referrer-Policy: no-referrer` and `no-store`, so
//! the token in the URL leaks to no other site. Without `?token=` the page
//! asks for the address and the code from the mail instead (another device).
//! The form posts `application/x-www-form-urlencoded` to the same path; the
//! answer is a page too.
//!
//! An account with two-factor sign-in on needs a code (TOTP or recovery
//! code) to reset: the reset form asks for it once a submission has shown
//! the link or code to be good and the account to need it, never before,
//! so the page tells nothing to someone without the mail.

use std::sync::LazyLock;

use base64::Engine;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Form, Query};
use poem::{Request, Response, RouteMethod, handler};
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::client_info;
use crate::service::{Core, Error, PasswordReset, TicketProof};

/// Path of the reset page.
pub const RESET_PATH: &str = "/reset-password";
/// Path of the verification page.
pub const VERIFY_PATH: &str = "/verify-email";
/// Path of the "not me" page (the link of a new-sign-in notice).
pub const NOT_ME_PATH: &str = "/not-me";
/// Every page path (metric labels).
pub const PATHS: [&str; 3] = [RESET_PATH, VERIFY_PATH, NOT_ME_PATH];

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;line-height:1.5}label{display:block;margin-top:1rem}input{width:100%;padding:.5rem;box-sizing:border-box;font-size:1rem}button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}.error{color:#a00}";

/// The pages' own policy: no script, the one inline style by its hash,
/// forms only to this origin.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
});

/// `?token=`
#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    pub(super) token: Option<String>,
}

/// The reset form as posted.
#[derive(Deserialize)]
struct ResetForm {
    token: Option<String>,
    email: Option<String>,
    email_code: Option<String>,
    new_password: Option<String>,
    /// A TOTP code or a recovery code, for an account with two-factor on.
    second_factor: Option<String>,
}

/// The verification form as posted.
#[derive(Deserialize)]
struct VerifyForm {
    token: Option<String>,
    email: Option<String>,
    email_code: Option<String>,
}

/// Text for HTML (element content and quoted attribute values).
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>\n",
        title = esc(title)
    );
    let mut resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(html);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    resp
}

pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The fields that prove a ticket: a hidden token, or address and code.
pub(super) fn proof_fields(token: Option<&str>, email: &str) -> String {
    proof_fields_with(token, email, "")
}

/// [`proof_fields`], the code field filled with `code` (a form shown again).
fn proof_fields_with(token: Option<&str>, email: &str, code: &str) -> String {
    match token {
        Some(t) => format!(
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            esc(t)
        ),
        None => format!(
            "<label>Email address (the one the email was sent to)<input type=\"email\" name=\"email\" autocomplete=\"email\" required value=\"{}\"></label>\
             <label>Code from the email<input name=\"email_code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{8}}\" maxlength=\"8\" required value=\"{}\"></label>",
            esc(email),
            esc(code)
        ),
    }
}

/// The reset form as first shown.
fn reset_form(token: Option<&str>, email: &str, error: Option<&str>) -> String {
    reset_form_with(token, email, "", false, error)
}

/// The reset form; with `second_factor`, it also asks for a TOTP or
/// recovery code (shown only after the ticket checked out).
fn reset_form_with(
    token: Option<&str>,
    email: &str,
    code: &str,
    second_factor: bool,
    error: Option<&str>,
) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let factor = if second_factor {
        "<label>Two-factor code (from your authenticator app) or a recovery code<input name=\"second_factor\" autocomplete=\"one-time-code\" maxlength=\"64\" required></label>"
    } else {
        ""
    };
    format!(
        "{error}<form method=\"post\" action=\"reset-password\">{}\
         <label>New password<input type=\"password\" name=\"new_password\" autocomplete=\"new-password\" minlength=\"8\" maxlength=\"128\" required></label>\
         {factor}<button type=\"submit\">Set new password</button></form>",
        proof_fields_with(token, email, code)
    )
}

fn verify_form(token: Option<&str>, email: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"verify-email\">{}\
         <button type=\"submit\">Confirm my email address</button></form>",
        proof_fields(token, email)
    )
}

/// A failure as a page; `None` for failures the form shows itself.
pub(super) fn failure_page(e: &Error) -> Response {
    match e {
        Error::TicketInvalid => page(
            StatusCode::BAD_REQUEST,
            "Link or code invalid or expired",
            "<p>This link or code is invalid, has expired, was already used or was replaced by a newer one. Please ask for a new one.</p>",
        ),
        Error::RateLimited { .. } => page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "<p>Too many attempts. Please wait a minute and try again.</p>",
        ),
        Error::Unavailable => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again shortly",
            "<p>The service is briefly unavailable. Please try again in a moment.</p>",
        ),
        other => {
            // Logged by the mapping to problem+json, which also hides the cause.
            let status = super::problem::problem_of(other).status();
            page(
                status,
                "Something went wrong",
                "<p>Something went wrong. Please try again.</p>",
            )
        }
    }
}

/// `GET /reset-password`: the form; the token is not used here.
#[handler]
fn reset_get(Query(q): Query<TokenQuery>) -> Response {
    let token = non_empty(q.token);
    page(
        StatusCode::OK,
        "Choose a new password",
        &reset_form(token.as_deref(), "", None),
    )
}

/// `POST /reset-password`: the form's submission.
#[handler]
async fn reset_post(req: &Request, core: Data<&Core>, Form(f): Form<ResetForm>) -> Response {
    let token = non_empty(f.token);
    let email = non_empty(f.email).unwrap_or_default();
    let code = non_empty(f.email_code);
    let proof = match (&token, &code) {
        (Some(t), _) => Some(TicketProof::Token(t.clone())),
        (None, Some(code)) if !email.is_empty() => Some(TicketProof::Code {
            email: email.clone(),
            code: code.clone(),
        }),
        _ => None,
    };
    // Six digits are an authenticator's code; anything else a recovery code.
    let factor = non_empty(f.second_factor).map(|s| s.replace([' ', '-'], ""));
    let (mfa_code, recovery_code) = match factor {
        Some(c) if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(SecretString::from(c)), None)
        }
        Some(c) => (None, Some(SecretString::from(c))),
        None => (None, None),
    };
    let asked_factor = mfa_code.is_some() || recovery_code.is_some();
    let input = PasswordReset {
        proof,
        new_password: SecretString::from(f.new_password.unwrap_or_default()),
        mfa_code,
        recovery_code,
    };
    let code = code.unwrap_or_default();
    let client = client_info(req, &core);
    match core.reset_password(input, &client).await {
        Ok(()) => page(
            StatusCode::OK,
            "Password changed",
            "<p>Your password has been changed and every session was signed out. Sign in with your new password.</p>",
        ),
        Err(Error::Validation(errors)) => {
            let why = errors
                .iter()
                .map(|e| e.detail.clone())
                .collect::<Vec<_>>()
                .join(" ");
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose a new password",
                &reset_form_with(token.as_deref(), &email, &code, asked_factor, Some(&why)),
            )
        }
        // Reached only with a good link or code: the form now asks for the
        // second factor.
        Err(Error::MfaRequired(_)) => {
            let why = if asked_factor {
                "The two-factor code is wrong or was already used. Enter your new password and a current code again."
            } else {
                "This account has two-factor sign-in on: enter your new password again with a code from your authenticator app, or one of your recovery codes."
            };
            page(
                StatusCode::UNAUTHORIZED,
                "Choose a new password",
                &reset_form_with(token.as_deref(), &email, &code, true, Some(why)),
            )
        }
        Err(e) => failure_page(&e),
    }
}

/// `GET /verify-email`: the confirmation button; the token is not used here.
#[handler]
fn verify_get(Query(q): Query<TokenQuery>) -> Response {
    let token = non_empty(q.token);
    page(
        StatusCode::OK,
        "Confirm your email address",
        &verify_form(token.as_deref(), "", None),
    )
}

/// `POST /verify-email`: the button's submission.
#[handler]
async fn verify_post(req: &Request, core: Data<&Core>, Form(f): Form<VerifyForm>) -> Response {
    let token = non_empty(f.token);
    let email = non_empty(f.email).unwrap_or_default();
    let proof = match (token, non_empty(f.email_code)) {
        (Some(t), _) => TicketProof::Token(t),
        (None, Some(code)) if !email.is_empty() => TicketProof::Code { email, code },
        _ => {
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Confirm your email address",
                &verify_form(None, &email, Some("Enter your email address and the code.")),
            );
        }
    };
    let client = client_info(req, &core);
    match core.verify_email(proof, &client).await {
        Ok(()) => page(
            StatusCode::OK,
            "Email address confirmed",
            "<p>Thank you: your email address is confirmed. You can close this page.</p>",
        ),
        Err(e) => failure_page(&e),
    }
}

/// The "not me" form as posted.
#[derive(Deserialize)]
struct NotMeForm {
    token: Option<String>,
}

/// `GET /not-me`: what the button does; the token is not used here.
#[handler]
fn not_me_get(Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = non_empty(q.token) else {
        return failure_page(&Error::LinkInvalid("no token"));
    };
    page(
        StatusCode::OK,
        "Was this sign-in not you?",
        &format!(
            "<p>If you did not sign in, confirm below: every session of your account is signed out and we send you a link to reset your password.</p>\
             <form method=\"post\" action=\"not-me\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">It was not me: sign out everywhere</button></form>",
            esc(&token)
        ),
    )
}

/// `POST /not-me`: the button's submission.
#[handler]
async fn not_me_post(req: &Request, core: Data<&Core>, Form(f): Form<NotMeForm>) -> Response {
    let token = SecretString::from(non_empty(f.token).unwrap_or_default());
    let client = client_info(req, &core);
    match core.not_me(&token, &client).await {
        Ok(()) => page(
            StatusCode::OK,
            "Every session signed out",
            "<p>Every session of your account has been signed out. We sent you an email with a link to choose a new password.</p>",
        ),
        Err(Error::LinkInvalid(_)) => failure_page(&Error::TicketInvalid),
        Err(e) => failure_page(&e),
    }
}

/// `GET`/`HEAD`/`POST /not-me`.
pub fn not_me_page() -> RouteMethod {
    RouteMethod::new().get(not_me_get).post(not_me_post)
}

/// `GET`/`HEAD`/`POST /reset-password`.
pub fn reset_page() -> RouteMethod {
    RouteMethod::new().get(reset_get).post(reset_post)
}

/// `GET`/`HEAD`/`POST /verify-email`.
pub fn verify_page() -> RouteMethod {
    RouteMethod::new().get(verify_get).post(verify_post)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_attribute_breakouts() {
        assert_eq!(
            esc("\"><script>alert('x')</script>&"),
            "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }

    #[test]
    fn csp_allows_no_script_and_names_the_style_hash() {
        assert!(!CSP.contains("script-src"));
        assert!(CSP.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(CSP.contains("form-action 'self'"));
    }
}
