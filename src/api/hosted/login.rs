//! The sign-in pages: `/login` (email and password), the upstream
//! provider buttons (`/login/provider`, `/login/provider/done`),
//! `/login/mfa`, `/login/passkey` and its script, `/login/forgot`.

use super::*;

// ---- /login ----

#[derive(Deserialize)]
struct LoginForm {
    ar: Option<String>,
    csrf: Option<String>,
    email: Option<String>,
    password: Option<String>,
    captcha: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn login_page(
    req: &Request,
    core: &Core,
    pages: &Pages,
    status: StatusCode,
    r: &AuthorizeRequest,
    ar: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, set) = csrf_of(req, pages);
    let client_name = core
        .client(r.client_id())
        .await
        .map(|c| c.name)
        .unwrap_or_default();
    let forgot = format!("{FORGOT_PATH}?ar={}", encode_component(ar));
    let resp = pages.render(
        status,
        "login",
        &languages(req, r.ui_locales.as_deref()),
        &[redirect_target(&r.redirect_uri)],
        context! {
            ar => ar,
            csrf => csrf,
            email => email,
            error => error,
            client_name => client_name,
            forgot_url => forgot,
            passkeys => core.passkeys_available(),
            providers => upstream_provider_buttons(core, ar)
                .into_iter()
                .map(|b| context! { name => b.name, url => b.url })
                .collect::<Vec<Value>>(),
        },
    );
    with_cookie(resp, set)
}

#[handler]
async fn login_get(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Query(q): Query<ArQuery>,
) -> Response {
    let Some(r) = open(&core, q.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = q.ar.unwrap_or_default();
    let hint = r.login_hint.clone().unwrap_or_default();
    login_page(req, &core, &pages, StatusCode::OK, &r, &ar, &hint, None).await
}

/// A session opened by a hosted-page sign-in: the browser session cookie,
/// then the request goes on (a code, or the consent page).
async fn signed_in(
    req: &Request,
    core: &Core,
    pages: &Pages,
    r: &AuthorizeRequest,
    tokens: &IssuedTokens,
) -> Response {
    let previous = browser(core, req).await.ok().flatten();
    let (cookie, b) = match core.browser_cookie_for(tokens, previous.as_ref()).await {
        Ok(ok) => ok,
        Err(e) => return failure(pages, req, &e),
    };
    let resp = match core.authorize_decide(r, Some(&b), true).await {
        Ok(d) => decision_response(d),
        Err(e) => failure(pages, req, &e),
    };
    with_cookie(resp, Some(pages.session_cookie(&cookie)))
}

fn error_code(e: &Error) -> &'static str {
    match e {
        Error::InvalidCredentials => "invalid_credentials",
        Error::InvalidCode | Error::MfaRequired(_) => "invalid_code",
        Error::RateLimited { .. } => "rate_limited",
        Error::CaptchaRequired => "captcha_required",
        Error::EmailUnverified => "email_unverified",
        Error::AccountDisabled => "account_disabled",
        Error::PasskeyRejected(_) | Error::PasskeyInvalid(_) => "passkey",
        Error::TokenInvalid(_) => "request_expired",
        Error::Unavailable => "unavailable",
        Error::LinkRequired { .. } => "link_required",
        Error::ProviderEmailUnverified => "provider_email_unverified",
        Error::SignupDisabled => "signup_disabled",
        Error::CodeInvalid
        | Error::IdTokenInvalid(_)
        | Error::ProviderUnavailable
        | Error::FederationRefused { .. } => "provider_error",
        _ => "error",
    }
}

fn error_status(e: &Error) -> StatusCode {
    match e {
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Error::EmailUnverified | Error::AccountDisabled | Error::SignupDisabled => {
            StatusCode::FORBIDDEN
        }
        Error::LinkRequired { .. } => StatusCode::CONFLICT,
        Error::ProviderEmailUnverified => StatusCode::UNPROCESSABLE_ENTITY,
        Error::ProviderUnavailable => StatusCode::BAD_GATEWAY,
        Error::FederationRefused { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[handler]
async fn login_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let Some(r) = open(&core, f.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = f.ar.clone().unwrap_or_default();
    let email = f.email.clone().unwrap_or_default();
    if !csrf_ok(req, f.csrf.as_deref()) {
        return login_page(
            req,
            &core,
            &pages,
            StatusCode::FORBIDDEN,
            &r,
            &ar,
            &email,
            Some("csrf"),
        )
        .await;
    }
    let password = SecretString::from(f.password.unwrap_or_default());
    let client = client_info(req, &core);
    match core
        .login(&email, password, f.captcha.as_deref(), client)
        .await
    {
        Ok(SignIn::Tokens(t)) => signed_in(req, &core, &pages, &r, &t).await,
        Ok(SignIn::MfaRequired(ch)) => {
            mfa_page(req, &pages, StatusCode::OK, &r, &ar, &ch.mfa_token, None)
        }
        Err(e) => {
            let code = error_code(&e);
            login_page(
                req,
                &core,
                &pages,
                error_status(&e),
                &r,
                &ar,
                &email,
                Some(code),
            )
            .await
        }
    }
}

/// `GET`/`POST /login`.
pub fn login_route() -> RouteMethod {
    RouteMethod::new().get(login_get).post(login_post)
}

// ---- /login/provider ----

#[derive(Deserialize)]
struct ProviderQuery {
    ar: Option<String>,
    provider: Option<String>,
}

/// A provider button: starts the provider's redirect flow (the federation
/// use case, kind `hosted`) and binds it to this browser with a cookie.
#[handler]
async fn provider_get(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Query(q): Query<ProviderQuery>,
) -> Response {
    let Some(r) = open(&core, q.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = q.ar.unwrap_or_default();
    let binding = crate::service::oidc::random_token();
    let return_to = format!(
        "{}{PROVIDER_DONE_PATH}?ar={}",
        core.settings.http.public_url,
        encode_component(&ar)
    );
    let client = client_info(req, &core);
    let provider = q.provider.unwrap_or_default();
    match core
        .federation_hosted_authorize(&provider, return_to, &binding, &client)
        .await
    {
        Ok(url) => with_cookie(
            see_other(&url),
            Some(pages.cookie(FEDERATION_COOKIE, &binding, Some(600))),
        ),
        Err(e) => {
            let hint = r.login_hint.clone().unwrap_or_default();
            login_page(
                req,
                &core,
                &pages,
                error_status(&e),
                &r,
                &ar,
                &hint,
                Some(error_code(&e)),
            )
            .await
        }
    }
}

/// `GET /login/provider?provider=&ar=`.
pub fn provider_route() -> RouteMethod {
    RouteMethod::new().get(provider_get)
}

#[derive(Deserialize)]
struct ProviderDoneQuery {
    ar: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The end of a provider button's flow: the callback's one-time code (or
/// its error) and this browser's binding cookie → the browser session,
/// the second-factor step, or the sign-in page with the refusal.
#[handler]
async fn provider_done(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Query(q): Query<ProviderDoneQuery>,
) -> Response {
    let Some(r) = open(&core, q.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = q.ar.clone().unwrap_or_default();
    let hint = r.login_hint.clone().unwrap_or_default();
    let binding = cookies(req).remove(FEDERATION_COOKIE).unwrap_or_default();
    let clear = Some(pages.cookie(FEDERATION_COOKIE, "", Some(0)));
    let refused = |status: StatusCode, code: &'static str| {
        login_page(req, &core, &pages, status, &r, &ar, &hint, Some(code))
    };
    let outcome = match (q.code.as_deref(), q.error.as_deref()) {
        (Some(code), None) => {
            let client = client_info(req, &core);
            core.sign_in_with_hosted_code(code, &binding, &client).await
        }
        (_, Some("link-required")) => Err(Error::LinkRequired {
            link_token: String::new(),
        }),
        (_, Some("provider-email-unverified")) => Err(Error::ProviderEmailUnverified),
        (_, Some("signup-disabled")) => Err(Error::SignupDisabled),
        (_, Some("account-disabled")) => Err(Error::AccountDisabled),
        (_, Some("rate-limited")) => Err(Error::RateLimited { retry_after: 60 }),
        _ => Err(Error::CodeInvalid),
    };
    let resp = match outcome {
        Ok(SignIn::Tokens(t)) => signed_in(req, &core, &pages, &r, &t).await,
        Ok(SignIn::MfaRequired(ch)) => {
            mfa_page(req, &pages, StatusCode::OK, &r, &ar, &ch.mfa_token, None)
        }
        Err(e) => refused(error_status(&e), error_code(&e)).await,
    };
    with_cookie(resp, clear)
}

/// `GET /login/provider/done` (the callback of a provider button's flow
/// redirects here).
pub fn provider_done_route() -> RouteMethod {
    RouteMethod::new().get(provider_done)
}

// ---- /login/mfa ----

#[derive(Deserialize)]
struct MfaForm {
    ar: Option<String>,
    csrf: Option<String>,
    mfa_token: Option<String>,
    code: Option<String>,
}

fn mfa_page(
    req: &Request,
    pages: &Pages,
    status: StatusCode,
    r: &AuthorizeRequest,
    ar: &str,
    mfa_token: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, set) = csrf_of(req, pages);
    let resp = pages.render(
        status,
        "mfa",
        &languages(req, r.ui_locales.as_deref()),
        &[redirect_target(&r.redirect_uri)],
        context! { ar => ar, csrf => csrf, mfa_token => mfa_token, error => error },
    );
    with_cookie(resp, set)
}

#[handler]
async fn mfa_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(f): Form<MfaForm>,
) -> Response {
    let Some(r) = open(&core, f.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = f.ar.clone().unwrap_or_default();
    let mfa_token = f.mfa_token.clone().unwrap_or_default();
    if !csrf_ok(req, f.csrf.as_deref()) {
        return mfa_page(
            req,
            &pages,
            StatusCode::FORBIDDEN,
            &r,
            &ar,
            &mfa_token,
            Some("csrf"),
        );
    }
    let code = f.code.unwrap_or_default().replace([' ', '-'], "");
    let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        SecondFactor::Code(code)
    } else {
        SecondFactor::RecoveryCode(SecretString::from(code))
    };
    let client = client_info(req, &core);
    match core.login_mfa(&mfa_token, factor, client).await {
        Ok(t) => signed_in(req, &core, &pages, &r, &t).await,
        // The password step is over (token expired or used): start again.
        Err(Error::TokenInvalid(_)) => {
            let hint = r.login_hint.clone().unwrap_or_default();
            login_page(
                req,
                &core,
                &pages,
                StatusCode::UNAUTHORIZED,
                &r,
                &ar,
                &hint,
                Some("request_expired"),
            )
            .await
        }
        Err(e) => {
            let code = error_code(&e);
            mfa_page(
                req,
                &pages,
                error_status(&e),
                &r,
                &ar,
                &mfa_token,
                Some(code),
            )
        }
    }
}

/// `POST /login/mfa` (the step is shown by `POST /login`).
pub fn mfa_route() -> RouteMethod {
    RouteMethod::new().post(mfa_post)
}

// ---- /login/passkey ----

#[derive(Deserialize)]
struct PasskeyForm {
    ar: Option<String>,
    csrf: Option<String>,
    challenge_id: Option<String>,
    credential: Option<String>,
}

#[handler]
async fn passkey_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(f): Form<PasskeyForm>,
) -> Response {
    let Some(r) = open(&core, f.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = f.ar.clone().unwrap_or_default();
    let hint = r.login_hint.clone().unwrap_or_default();
    if !csrf_ok(req, f.csrf.as_deref()) {
        return login_page(
            req,
            &core,
            &pages,
            StatusCode::FORBIDDEN,
            &r,
            &ar,
            &hint,
            Some("csrf"),
        )
        .await;
    }
    let credential: serde_json::Value = f
        .credential
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(serde_json::Value::Null);
    let client = client_info(req, &core);
    match core
        .passkey_sign_in(f.challenge_id.as_deref().unwrap_or(""), &credential, client)
        .await
    {
        Ok(t) => signed_in(req, &core, &pages, &r, &t).await,
        Err(e) => {
            let code = match e {
                Error::TokenInvalid(_) | Error::Validation(_) => "passkey",
                ref other => error_code(other),
            };
            login_page(
                req,
                &core,
                &pages,
                error_status(&e),
                &r,
                &ar,
                &hint,
                Some(code),
            )
            .await
        }
    }
}

/// `POST /login/passkey`.
pub fn passkey_route() -> RouteMethod {
    RouteMethod::new().post(passkey_post)
}

#[handler]
fn passkey_script() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(PASSKEY_JS)
}

/// `GET /login/passkey.js`: the passkey button's script.
pub fn passkey_script_route() -> RouteMethod {
    RouteMethod::new().get(passkey_script)
}

// ---- /login/forgot ----

#[derive(Deserialize)]
struct ForgotForm {
    csrf: Option<String>,
    email: Option<String>,
}

#[handler]
fn forgot_get(req: &Request, pages: Data<&Arc<Pages>>) -> Response {
    let (csrf, set) = csrf_of(req, &pages);
    let resp = pages.render(
        StatusCode::OK,
        "forgot",
        &languages(req, None),
        &[],
        context! { csrf => csrf, email => "", sent => false },
    );
    with_cookie(resp, set)
}

#[handler]
async fn forgot_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(f): Form<ForgotForm>,
) -> Response {
    let (csrf, set) = csrf_of(req, &pages);
    let email = f.email.unwrap_or_default();
    let langs = languages(req, None);
    if !csrf_ok(req, f.csrf.as_deref()) {
        let resp = pages.render(
            StatusCode::FORBIDDEN,
            "forgot",
            &langs,
            &[],
            context! { csrf => csrf, email => email, sent => false, error => "csrf" },
        );
        return with_cookie(resp, set);
    }
    let client = client_info(req, &core);
    let (status, error) = match core.forgot_password(&email, None, &client).await {
        Ok(()) => (StatusCode::OK, None),
        Err(e) => (error_status(&e), Some(error_code(&e))),
    };
    let resp = pages.render(
        status,
        "forgot",
        &langs,
        &[],
        context! { csrf => csrf, email => email, sent => error.is_none(), error => error },
    );
    with_cookie(resp, set)
}

/// `GET`/`POST /login/forgot`.
pub fn forgot_route() -> RouteMethod {
    RouteMethod::new().get(forgot_get).post(forgot_post)
}
