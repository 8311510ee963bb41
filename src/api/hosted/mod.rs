//! The browser side of Portcullis as an OpenID provider:
//! `GET|POST /oauth/authorize`, `GET|POST /oauth/logout`, and the hosted
//! pages `/login`, `/login/mfa`, `/login/passkey`, `/login/forgot` and
//! `/consent`.
//!
//! The pages are server-rendered `minijinja` templates (`en` built in from
//! `templates/`, each overridable per locale as
//! `<PORTCULLIS_TEMPLATES_DIR>/<locale>/page_<name>.html`; the locale comes
//! from `ui_locales`, then `Accept-Language`), themed by
//! `PORTCULLIS_PAGES_CSS` and `PORTCULLIS_PAGES_LOGO_URL`. Their policy:
//! no script but `/login/passkey.js` (the passkey button), styles by hash,
//! `frame-ancestors 'none'`, forms to this origin (and, on pages whose
//! answer redirects to the app, to the app's redirect URI). Every form
//! carries a CSRF token matching the `__Host-portcullis-csrf` cookie.
//!
//! Sign-in is the JSON API's use cases ([`Core::login`],
//! [`Core::login_mfa`], [`Core::passkey_sign_in`]: throttles, CAPTCHA,
//! second factor, audit); the session they open becomes the browser
//! session cookie `__Host-portcullis`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use base64::Engine;
use minijinja::{Environment, Value, context};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Form, Query};
use poem::{Request, Response, RouteMethod, handler};
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::client_info;
use crate::config::Settings;
use crate::service::oidc::{
    AuthorizeFailure, AuthorizeParams, AuthorizeRequest, BrowserSession, Decision, LogoutOutcome,
    LogoutParams, SESSION_COOKIE, encode_component,
};
use crate::service::{Core, Error, IssuedTokens, SecondFactor, SignIn};

/// `GET|POST /oauth/authorize`.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// `GET|POST /oauth/logout`.
pub const LOGOUT_PATH: &str = "/oauth/logout";
/// The sign-in page.
pub const LOGIN_PATH: &str = "/login";
/// The second-factor step.
pub const MFA_PATH: &str = "/login/mfa";
/// The passkey button's form.
pub const PASSKEY_PATH: &str = "/login/passkey";
/// The passkey button's script.
pub const PASSKEY_SCRIPT_PATH: &str = "/login/passkey.js";
/// Forgot password.
pub const FORGOT_PATH: &str = "/login/forgot";
/// The consent page.
pub const CONSENT_PATH: &str = "/consent";
/// A provider button: starts the upstream provider's redirect flow.
pub const PROVIDER_PATH: &str = "/login/provider";
/// Where a provider button's flow comes back to (from the callback).
pub const PROVIDER_DONE_PATH: &str = "/login/provider/done";
/// Every path (metric labels).
pub const PATHS: [&str; 10] = [
    AUTHORIZE_PATH,
    LOGOUT_PATH,
    LOGIN_PATH,
    MFA_PATH,
    PASSKEY_PATH,
    PASSKEY_SCRIPT_PATH,
    FORGOT_PATH,
    CONSENT_PATH,
    PROVIDER_PATH,
    PROVIDER_DONE_PATH,
];

/// The CSRF cookie of the hosted forms.
pub const CSRF_COOKIE: &str = "__Host-portcullis-csrf";

/// The cookie binding a provider button's flow to the browser that
/// pressed it (its S256 is the flow's code challenge; 10 minutes).
pub const FEDERATION_COOKIE: &str = "__Host-portcullis-fed";

const BASE_CSS: &str = "body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}main{display:block}.logo{max-height:3rem;display:block;margin-bottom:1rem}label{display:block;margin-top:1rem;font-weight:600}input{width:100%;padding:.55rem;box-sizing:border-box;font-size:1rem;border:1px solid #666;border-radius:4px}input:focus,button:focus,a:focus{outline:3px solid #1a5fb4;outline-offset:2px}button,.button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:4px;border:1px solid #1a5fb4;background:#1a5fb4;color:#fff;cursor:pointer;text-decoration:none}button.secondary{background:#fff;color:#1a5fb4}.error{color:#a00;font-weight:600}.providers{list-style:none;padding:0}";

const PASSKEY_JS: &str = include_str!("passkey.js");

/// Built-in templates.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "en/page_layout.html",
        include_str!("templates/en/page_layout.html"),
    ),
    (
        "en/page_login.html",
        include_str!("templates/en/page_login.html"),
    ),
    (
        "en/page_mfa.html",
        include_str!("templates/en/page_mfa.html"),
    ),
    (
        "en/page_consent.html",
        include_str!("templates/en/page_consent.html"),
    ),
    (
        "en/page_message.html",
        include_str!("templates/en/page_message.html"),
    ),
    (
        "en/page_forgot.html",
        include_str!("templates/en/page_forgot.html"),
    ),
];

/// One button per configured upstream provider on the sign-in page
/// (`name` shown as "Continue with …", `url` where the button goes: a
/// plain link to [`PROVIDER_PATH`] with the sealed request `ar` to come
/// back to).
#[derive(Debug, Clone)]
pub struct ProviderButton {
    /// Label.
    pub name: String,
    /// Where the button goes.
    pub url: String,
}

/// The upstream-provider buttons for a sign-in page carrying the sealed
/// request `ar` (see [`ProviderButton`]), one per configured provider.
pub fn upstream_provider_buttons(core: &Core, ar: &str) -> Vec<ProviderButton> {
    core.providers()
        .into_iter()
        .map(|p| ProviderButton {
            url: format!(
                "{PROVIDER_PATH}?provider={}&ar={}",
                encode_component(&p.id),
                encode_component(ar)
            ),
            name: p.name,
        })
        .collect()
}

/// Templates and theme of the pages.
pub struct Pages {
    env: Environment<'static>,
    theme_css: Option<String>,
    logo_url: Option<String>,
    csp: String,
    secure_cookies: bool,
    session_max_age: u64,
}

fn style_hash(css: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(css.as_bytes()))
    )
}

impl Pages {
    /// The templates (built-in, then overrides from the templates folder)
    /// and theme of `settings`.
    pub fn new(settings: &Settings) -> Arc<Self> {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            if let Err(e) = env.add_template_owned(name.to_string(), source.to_string()) {
                tracing::error!(template = name, error = %e, "built-in page template does not parse");
            }
        }
        if let Some(dir) = &settings.mail.templates_dir
            && let Ok(locales) = std::fs::read_dir(dir)
        {
            for locale in locales.flatten() {
                let Ok(files) = std::fs::read_dir(locale.path()) else {
                    continue;
                };
                let lang = locale.file_name().to_string_lossy().to_string();
                for f in files.flatten() {
                    let file = f.file_name().to_string_lossy().to_string();
                    if !(file.starts_with("page_") && file.ends_with(".html")) {
                        continue;
                    }
                    match std::fs::read_to_string(f.path()) {
                        Ok(source) => {
                            if let Err(e) = env.add_template_owned(format!("{lang}/{file}"), source)
                            {
                                tracing::error!(template = %file, locale = %lang, error = %e, "page template does not parse; the built-in one is used");
                            }
                        }
                        Err(e) => {
                            tracing::error!(template = %file, error = %e, "cannot read page template")
                        }
                    }
                }
            }
        }
        let theme_css = settings.pages.stylesheet.clone();
        let mut styles = style_hash(BASE_CSS);
        if let Some(css) = &theme_css {
            styles.push(' ');
            styles.push_str(&style_hash(css));
        }
        let logo = match settings.pages.logo_url.as_deref() {
            Some(u) if u.starts_with("https://") => {
                let origin: String = u.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!(" {origin}")
            }
            _ => String::new(),
        };
        let csp = format!(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src {styles}; img-src 'self'{logo}; frame-ancestors 'none'; base-uri 'none'"
        );
        Arc::new(Self {
            env,
            theme_css,
            logo_url: settings.pages.logo_url.clone(),
            csp,
            secure_cookies: !is_http_localhost(&settings.http.public_url),
            session_max_age: settings.tokens.refresh_ttl.as_secs(),
        })
    }

    /// The template `name` in the first of `langs` that has it, else `en`.
    fn template_for(&self, name: &str, langs: &[String]) -> (String, String) {
        for l in langs {
            let t = format!("{l}/page_{name}.html");
            if self.env.get_template(&t).is_ok() {
                return (l.clone(), t);
            }
        }
        ("en".to_string(), format!("en/page_{name}.html"))
    }

    fn render(
        &self,
        status: StatusCode,
        name: &str,
        langs: &[String],
        form_targets: &[String],
        ctx: Value,
    ) -> Response {
        let (lang, template) = self.template_for(name, langs);
        let (_, layout) = self.template_for("layout", std::slice::from_ref(&lang));
        let base = context! {
            lang => lang,
            layout => layout,
            base_css => BASE_CSS,
            theme_css => self.theme_css.clone(),
            logo_url => self.logo_url.clone(),
        };
        let html = self
            .env
            .get_template(&template)
            .and_then(|t| t.render(context! { ..ctx, ..base }));
        let (status, html) = match html {
            Ok(h) => (status, h),
            Err(e) => {
                tracing::error!(template = %template, error = %e, "page template failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_string(),
                )
            }
        };
        let mut csp = self.csp.clone();
        csp.push_str("; form-action 'self'");
        for t in form_targets {
            csp.push(' ');
            csp.push_str(t);
        }
        let mut resp = Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html);
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
        resp
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure_cookies {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        c
    }

    fn session_cookie(&self, value: &str) -> String {
        self.cookie(SESSION_COOKIE, value, Some(self.session_max_age))
    }

    fn clear_session_cookie(&self) -> String {
        self.cookie(SESSION_COOKIE, "", Some(0))
    }
}

/// Whether the service is served on `http://localhost[:port]`: its cookies
/// then go without `Secure` (a plain-HTTP client on a laptop keeps them).
/// Browsers refuse a `__Host-` cookie without `Secure`, so browser work on
/// plain HTTP uses `http://127.0.0.1:<port>` (where Chromium and Firefox
/// accept `Secure` cookies) or HTTPS.
fn is_http_localhost(public_url: &str) -> bool {
    public_url
        .strip_prefix("http://localhost")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
}

/// Where a form may post to besides this origin: the app's redirect URI
/// (the answer to the form redirects there, which `form-action` governs).
fn redirect_target(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return String::new();
    };
    match scheme {
        "https" | "http" => {
            let host = rest
                .trim_start_matches("//")
                .split(['/', '?'])
                .next()
                .unwrap_or("");
            let is_loopback = host.starts_with("127.0.0.1") || host.starts_with("[::1]");
            if scheme == "http" && is_loopback {
                let h = host
                    .rsplit_once(':')
                    .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                    .map_or(host, |(h, _)| h);
                format!("http://{h}:*")
            } else {
                format!("{scheme}://{host}")
            }
        }
        other => format!("{other}:"),
    }
}

/// The cookies of a request.
fn cookies(req: &Request) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in req.headers().get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                out.entry(k.to_string()).or_insert_with(|| val.to_string());
            }
        }
    }
    out
}

/// Languages to try: `ui_locales`, then `Accept-Language`.
fn languages(req: &Request, ui_locales: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = ui_locales
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(al) = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    {
        out.extend(
            al.split(',')
                .filter_map(|p| p.split(';').next())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && s != "*"),
        );
    }
    // Only tags made of letters, digits and hyphens become file names.
    out.retain(|l| l.len() <= 35 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let mut with_base = Vec::new();
    for l in out {
        let base = l.split('-').next().unwrap_or("").to_string();
        with_base.push(l);
        if !base.is_empty() {
            with_base.push(base);
        }
    }
    with_base
}

/// The CSRF token of this browser, and the cookie setting it when new.
fn csrf_of(req: &Request, pages: &Pages) -> (String, Option<String>) {
    match cookies(req).get(CSRF_COOKIE) {
        Some(v) if v.len() == 43 => (v.clone(), None),
        _ => {
            let t = crate::service::oidc::random_token();
            let c = pages.cookie(CSRF_COOKIE, &t, None);
            (t, Some(c))
        }
    }
}

/// Whether a posted form's token matches the browser's CSRF cookie.
fn csrf_ok(req: &Request, posted: Option<&str>) -> bool {
    match (cookies(req).get(CSRF_COOKIE), posted) {
        (Some(c), Some(p)) if c.len() == 43 => bool::from(c.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    }
}

fn with_cookie(mut resp: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

async fn browser(core: &Core, req: &Request) -> Result<Option<BrowserSession>, Error> {
    let jar = cookies(req);
    core.browser_session(jar.get(SESSION_COOKIE).map(String::as_str))
        .await
}

/// A message page (`kind` picks the text in the template).
fn message(pages: &Pages, req: &Request, status: StatusCode, kind: &str, detail: &str) -> Response {
    pages.render(
        status,
        "message",
        &languages(req, None),
        &[],
        context! { kind => kind, detail => detail },
    )
}

fn failure(pages: &Pages, req: &Request, e: &Error) -> Response {
    match e {
        Error::TokenInvalid(_) => message(pages, req, StatusCode::BAD_REQUEST, "expired", ""),
        Error::Unavailable => message(pages, req, StatusCode::SERVICE_UNAVAILABLE, "error", ""),
        other => {
            let status = super::problem::problem_of(other).status();
            message(pages, req, status, "error", "")
        }
    }
}

fn decision_response(d: Decision) -> Response {
    match d {
        Decision::Redirect(url) => see_other(&url),
        Decision::Login(ar) => see_other(&format!("{LOGIN_PATH}?ar={}", encode_component(&ar))),
        Decision::Consent(ar) => see_other(&format!("{CONSENT_PATH}?ar={}", encode_component(&ar))),
    }
}

// ---- /oauth/authorize ----

async fn authorize(req: &Request, core: &Core, pages: &Pages, p: AuthorizeParams) -> Response {
    let (r, _client) = match core.authorize_request(&p).await {
        Ok(Ok(ok)) => ok,
        Ok(Err(AuthorizeFailure::Page(why))) => {
            return message(pages, req, StatusCode::BAD_REQUEST, "bad_request", &why);
        }
        Ok(Err(AuthorizeFailure::Redirect(url))) => return see_other(&url),
        Err(e) => return failure(pages, req, &e),
    };
    let b = match browser(core, req).await {
        Ok(b) => b,
        Err(e) => return failure(pages, req, &e),
    };
    match core.authorize_decide(&r, b.as_ref(), false).await {
        Ok(d) => decision_response(d),
        Err(e) => failure(pages, req, &e),
    }
}

#[handler]
async fn authorize_get(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    authorize(req, &core, &pages, p).await
}

#[handler]
async fn authorize_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(p): Form<AuthorizeParams>,
) -> Response {
    authorize(req, &core, &pages, p).await
}

/// `GET`/`POST /oauth/authorize`.
pub fn authorize_route() -> RouteMethod {
    RouteMethod::new().get(authorize_get).post(authorize_post)
}

// ---- /login ----

#[derive(Debug, Deserialize)]
struct ArQuery {
    ar: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    ar: Option<String>,
    csrf: Option<String>,
    email: Option<String>,
    password: Option<String>,
    captcha: Option<String>,
}

fn open(core: &Core, ar: Option<&str>) -> Option<AuthorizeRequest> {
    core.open_request(ar?).ok()
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

// ---- /consent ----

#[derive(Deserialize)]
struct ConsentForm {
    ar: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

async fn consent_page(
    req: &Request,
    core: &Core,
    pages: &Pages,
    status: StatusCode,
    r: &AuthorizeRequest,
    ar: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, set) = csrf_of(req, pages);
    let client_name = core
        .client(r.client_id())
        .await
        .map(|c| c.name)
        .unwrap_or_default();
    let resp = pages.render(
        status,
        "consent",
        &languages(req, r.ui_locales.as_deref()),
        &[redirect_target(&r.redirect_uri)],
        context! { ar => ar, csrf => csrf, client_name => client_name, scopes => r.scope.clone(), error => error },
    );
    with_cookie(resp, set)
}

#[handler]
async fn consent_get(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Query(q): Query<ArQuery>,
) -> Response {
    let Some(r) = open(&core, q.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = q.ar.unwrap_or_default();
    match browser(&core, req).await {
        Ok(Some(_)) => consent_page(req, &core, &pages, StatusCode::OK, &r, &ar, None).await,
        Ok(None) => see_other(&format!("{LOGIN_PATH}?ar={}", encode_component(&ar))),
        Err(e) => failure(&pages, req, &e),
    }
}

#[handler]
async fn consent_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(f): Form<ConsentForm>,
) -> Response {
    let Some(r) = open(&core, f.ar.as_deref()) else {
        return message(&pages, req, StatusCode::BAD_REQUEST, "expired", "");
    };
    let ar = f.ar.clone().unwrap_or_default();
    if !csrf_ok(req, f.csrf.as_deref()) {
        return consent_page(
            req,
            &core,
            &pages,
            StatusCode::FORBIDDEN,
            &r,
            &ar,
            Some("csrf"),
        )
        .await;
    }
    let b = match browser(&core, req).await {
        Ok(Some(b)) => b,
        Ok(None) => return see_other(&format!("{LOGIN_PATH}?ar={}", encode_component(&ar))),
        Err(e) => return failure(&pages, req, &e),
    };
    let allow = f.decision.as_deref() == Some("allow");
    match core
        .authorize_consent(&r, &b, allow, &client_info(req, &core))
        .await
    {
        Ok(url) => see_other(&url),
        Err(e) => failure(&pages, req, &e),
    }
}

/// `GET`/`POST /consent`.
pub fn consent_route() -> RouteMethod {
    RouteMethod::new().get(consent_get).post(consent_post)
}

// ---- /oauth/logout ----

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
    #[serde(flatten)]
    params: LogoutFields,
}

#[derive(Deserialize, Default)]
struct LogoutFields {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    ui_locales: Option<String>,
}

impl From<LogoutFields> for LogoutParams {
    fn from(f: LogoutFields) -> Self {
        Self {
            id_token_hint: f.id_token_hint,
            post_logout_redirect_uri: f.post_logout_redirect_uri,
            state: f.state,
            client_id: f.client_id,
            ui_locales: f.ui_locales,
        }
    }
}

async fn logout(
    req: &Request,
    core: &Core,
    pages: &Pages,
    p: LogoutParams,
    confirmed: bool,
) -> Response {
    let b = match browser(core, req).await {
        Ok(b) => b,
        Err(e) => return failure(pages, req, &e),
    };
    let langs = languages(req, p.ui_locales.as_deref());
    let outcome = match core.rp_logout(&p, b.as_ref(), confirmed).await {
        Ok(o) => o,
        Err(e) => return failure(pages, req, &e),
    };
    let clear = Some(pages.clear_session_cookie());
    match outcome {
        LogoutOutcome::Redirect(url) => with_cookie(see_other(&url), clear),
        LogoutOutcome::SignedOut => with_cookie(
            pages.render(
                StatusCode::OK,
                "message",
                &langs,
                &[],
                context! { kind => "signed_out" },
            ),
            clear,
        ),
        LogoutOutcome::Refused(why) => pages.render(
            StatusCode::BAD_REQUEST,
            "message",
            &langs,
            &[],
            context! { kind => "bad_request", detail => why },
        ),
        LogoutOutcome::Confirm => {
            let (csrf, set) = csrf_of(req, pages);
            let mut fields: Vec<(&str, String)> = Vec::new();
            for (k, v) in [
                ("post_logout_redirect_uri", &p.post_logout_redirect_uri),
                ("state", &p.state),
                ("client_id", &p.client_id),
                ("ui_locales", &p.ui_locales),
            ] {
                if let Some(v) = v {
                    fields.push((k, v.clone()));
                }
            }
            let target = p
                .post_logout_redirect_uri
                .as_deref()
                .map(redirect_target)
                .unwrap_or_default();
            let resp = pages.render(
                StatusCode::OK,
                "message",
                &langs,
                &[target],
                context! { kind => "confirm_logout", csrf => csrf, fields => fields },
            );
            with_cookie(resp, set)
        }
    }
}

#[handler]
async fn logout_get(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Query(f): Query<LogoutFields>,
) -> Response {
    logout(req, &core, &pages, f.into(), false).await
}

#[handler]
async fn logout_post(
    req: &Request,
    core: Data<&Core>,
    pages: Data<&Arc<Pages>>,
    Form(f): Form<LogoutForm>,
) -> Response {
    // A form from the confirmation page (CSRF-checked), or an RP posting
    // the logout request itself (then it is the GET's).
    let confirmed = f.csrf.is_some();
    if confirmed && !csrf_ok(req, f.csrf.as_deref()) {
        return message(
            &pages,
            req,
            StatusCode::FORBIDDEN,
            "bad_request",
            "This form expired. Please try again.",
        );
    }
    logout(req, &core, &pages, f.params.into(), confirmed).await
}

/// `GET`/`POST /oauth/logout`.
pub fn logout_route() -> RouteMethod {
    RouteMethod::new().get(logout_get).post(logout_post)
}

/// The built-in template sources compile (checked in tests).
pub static TEMPLATE_NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| BUILT_IN.iter().map(|(n, _)| *n).collect());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_targets_of_redirect_uris() {
        assert_eq!(
            redirect_target("https://app.example/cb?x=1"),
            "https://app.example"
        );
        assert_eq!(
            redirect_target("http://127.0.0.1:4000/cb"),
            "http://127.0.0.1:*"
        );
        assert_eq!(redirect_target("http://[::1]/cb"), "http://[::1]:*");
        assert_eq!(redirect_target("com.example.app:/cb"), "com.example.app:");
    }

    #[test]
    fn cookies_are_secure_except_on_http_localhost() {
        assert!(is_http_localhost("http://localhost:8080"));
        assert!(is_http_localhost("http://localhost"));
        assert!(!is_http_localhost("http://localhost.evil.example"));
        assert!(!is_http_localhost("http://127.0.0.1:8080"));
        assert!(!is_http_localhost("https://localhost:8443"));
    }

    #[test]
    fn built_in_templates_parse() {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            env.add_template(name, source).unwrap();
        }
        assert_eq!(TEMPLATE_NAMES.len(), BUILT_IN.len());
    }
}
