//! `GET /sign-in?token=`: the built-in page a sign-in mail's link opens
//! when no `PORTCULLIS_APP_URL` points it at an SPA, in the manner of
//! `/reset-password` (see [`pages`](super::pages)): opening it (GET, HEAD,
//! a mail scanner's prefetch) never touches the token; only the form's
//! POST, a person pressing the button, signs in. Without `?token=` it asks
//! for the address and the code. When the account has a second factor,
//! the answer asks for it (a TOTP or recovery code) with the `mfa_token`
//! in a hidden field, and that POST completes the sign-in.
//!
//! A page has no app to hand tokens to: it completes the sign-in and says
//! so. Apps point `PORTCULLIS_APP_URL` at their own page, which posts the
//! token to `POST /v1/sessions/email/verify` and keeps the tokens.

use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Request, Response, RouteMethod, handler};
use secrecy::SecretString;
use serde::Deserialize;

use super::client_info;
use super::pages::{TokenQuery, esc, failure_page, non_empty, page, proof_fields};
use crate::service::{Core, Error, SecondFactor, SignIn, TicketProof};

/// Path of the sign-in page.
pub const SIGN_IN_PATH: &str = "/sign-in";

const TITLE: &str = "Sign in";

/// The sign-in form as posted.
#[derive(Deserialize)]
struct SignInForm {
    token: Option<String>,
    email: Option<String>,
    email_code: Option<String>,
    /// The second step: the `mfa_token` of the first and a code.
    mfa_token: Option<String>,
    second_factor: Option<String>,
}

fn sign_in_form(token: Option<&str>, email: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"sign-in\">{}\
         <button type=\"submit\">Sign in</button></form>",
        proof_fields(token, email)
    )
}

fn second_factor_form(mfa_token: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{error}<p>This account has two-factor sign-in on.</p>\
         <form method=\"post\" action=\"sign-in\"><input type=\"hidden\" name=\"mfa_token\" value=\"{}\">\
         <label>Code from your authenticator app, or a recovery code<input name=\"second_factor\" autocomplete=\"one-time-code\" maxlength=\"64\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
        esc(mfa_token)
    )
}

fn signed_in() -> Response {
    page(
        StatusCode::OK,
        "You are signed in",
        "<p>You are signed in. You can close this page and return to the app.</p>",
    )
}

/// `GET /sign-in`: the button; the token is not used here.
#[handler]
fn sign_in_get(Query(q): Query<TokenQuery>) -> Response {
    let token = non_empty(q.token);
    page(
        StatusCode::OK,
        TITLE,
        &sign_in_form(token.as_deref(), "", None),
    )
}

/// `POST /sign-in`: the button's submission (or the second step's).
#[handler]
async fn sign_in_post(req: &Request, core: Data<&Core>, Form(f): Form<SignInForm>) -> Response {
    let client = client_info(req, &core);
    if let Some(mfa_token) = non_empty(f.mfa_token) {
        // Six digits are an authenticator's code; anything else a recovery code.
        let factor = match non_empty(f.second_factor).map(|s| s.replace([' ', '-'], "")) {
            Some(c) if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) => {
                SecondFactor::Code(c)
            }
            Some(c) => SecondFactor::RecoveryCode(SecretString::from(c)),
            None => {
                return page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    TITLE,
                    &second_factor_form(&mfa_token, Some("Enter a code.")),
                );
            }
        };
        return match core.login_mfa(&mfa_token, factor, client).await {
            Ok(_) => signed_in(),
            Err(Error::InvalidCode) => page(
                StatusCode::UNAUTHORIZED,
                TITLE,
                &second_factor_form(&mfa_token, Some("The code is wrong or was already used.")),
            ),
            Err(Error::TokenInvalid(_)) => failure_page(&Error::TicketInvalid),
            Err(e) => failure_page(&e),
        };
    }
    let token = non_empty(f.token);
    let email = non_empty(f.email).unwrap_or_default();
    let proof = match (token, non_empty(f.email_code)) {
        (Some(t), _) => TicketProof::Token(t),
        (None, Some(code)) if !email.is_empty() => TicketProof::Code { email, code },
        _ => {
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                TITLE,
                &sign_in_form(None, &email, Some("Enter your email address and the code.")),
            );
        }
    };
    match core.verify_email_sign_in(Some(proof), client).await {
        Ok(SignIn::Tokens(_)) => signed_in(),
        Ok(SignIn::MfaRequired(c)) => page(
            StatusCode::OK,
            TITLE,
            &second_factor_form(&c.mfa_token, None),
        ),
        Err(e) => failure_page(&e),
    }
}

/// `GET`/`HEAD`/`POST /sign-in`.
pub fn sign_in_page() -> RouteMethod {
    RouteMethod::new().get(sign_in_get).post(sign_in_post)
}
