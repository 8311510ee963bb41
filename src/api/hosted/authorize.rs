//! `/oauth/authorize`, the consent page and RP-initiated logout
//! (`/oauth/logout`).

use super::*;

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
