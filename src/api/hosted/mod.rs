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

mod authorize;
mod login;

pub use authorize::{authorize_route, consent_route, logout_route};
pub use login::{
    forgot_route, login_route, mfa_route, passkey_route, passkey_script_route, provider_done_route,
    provider_route,
};

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

/// The `ar` (sealed authorization request) query of the pages.
#[derive(Debug, Deserialize)]
struct ArQuery {
    ar: Option<String>,
}

/// The pending authorization request a page carries, if it is still valid.
fn open(core: &Core, ar: Option<&str>) -> Option<AuthorizeRequest> {
    core.open_request(ar?).ok()
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
