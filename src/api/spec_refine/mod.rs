//! What the derived spec cannot say by itself, added to it once at start-up
//! (and by `portcullis openapi`), so the spec tells the truth:
//!
//! - request bodies refuse unknown fields (`deny_unknown_fields`):
//!   `additionalProperties: false`;
//! - an optional body field may be sent as `null` (it means "left out"):
//!   `nullable: true`;
//! - `PATCH /v1/me` does not list the operator's fields it refuses;
//! - `limit` query parameters carry their bounds (1 to 100);
//! - every request body has an example;
//! - each problem response names the slugs the route can answer.

use serde_json::{Map, Value, json};

/// Slugs answered with a status by any route of that status, whatever it is.
const COMMON: &[(&str, &[&str])] = &[
    ("404", &["not-found"]),
    ("413", &["payload-too-large"]),
    ("415", &["unsupported-media-type"]),
    ("422", &["validation"]),
    ("429", &["rate-limited"]),
    ("500", &["internal"]),
    ("503", &["unavailable"]),
];

/// Slugs particular to a route, by operation id and status.
const BY_OPERATION: &[(&str, &str, &[&str])] = &[
    ("register", "409", &["conflict"]),
    ("login", "401", &["invalid-credentials"]),
    ("login", "403", &["account-disabled", "email-unverified"]),
    ("loginMfa", "401", &["invalid-code", "token-invalid"]),
    ("loginMfa", "403", &["account-disabled", "email-unverified"]),
    ("refresh", "401", &["token-invalid"]),
    (
        "deleteMe",
        "401",
        &[
            "invalid-credentials",
            "invalid-code",
            "passkey-rejected",
            "reauthentication-required",
        ],
    ),
    (
        "reauthenticate",
        "401",
        &["invalid-credentials", "invalid-code", "passkey-rejected"],
    ),
    (
        "changePassword",
        "401",
        &[
            "invalid-credentials",
            "invalid-code",
            "reauthentication-required",
        ],
    ),
    ("totpBegin", "401", &["reauthentication-required"]),
    ("totpBegin", "409", &["conflict"]),
    (
        "totpDisable",
        "401",
        &[
            "invalid-credentials",
            "invalid-code",
            "reauthentication-required",
        ],
    ),
    ("totpDisable", "409", &["conflict"]),
    (
        "totpActivate",
        "401",
        &["invalid-code", "reauthentication-required"],
    ),
    ("totpActivate", "409", &["conflict"]),
    (
        "regenerateRecoveryCodes",
        "401",
        &[
            "invalid-credentials",
            "invalid-code",
            "reauthentication-required",
        ],
    ),
    ("regenerateRecoveryCodes", "409", &["conflict"]),
    (
        "changeEmail",
        "401",
        &[
            "invalid-credentials",
            "invalid-code",
            "reauthentication-required",
        ],
    ),
    ("notMe", "400", &["token-invalid-or-expired"]),
    ("resetPassword", "400", &["token-invalid-or-expired"]),
    ("resetPassword", "401", &["mfa-required", "invalid-code"]),
    ("verifyEmail", "400", &["token-invalid-or-expired"]),
    ("verifyEmail", "409", &["conflict"]),
    ("passkeyRegistrationOptions", "400", &["passkey-invalid"]),
    (
        "passkeyRegistrationOptions",
        "401",
        &["reauthentication-required"],
    ),
    ("passkeyRegistrationOptions", "409", &["passkey-limit"]),
    ("addPasskey", "400", &["passkey-invalid"]),
    ("addPasskey", "401", &["reauthentication-required"]),
    ("passkeySignInOptions", "400", &["passkey-invalid"]),
    ("addPasskey", "409", &["conflict", "passkey-limit"]),
    ("deletePasskey", "409", &["conflict"]),
    ("passkeySignInOptions", "401", &["token-invalid"]),
    ("passkeySignIn", "400", &["passkey-invalid"]),
    (
        "passkeySignIn",
        "401",
        &["passkey-rejected", "token-invalid"],
    ),
    (
        "passkeySignIn",
        "403",
        &["account-disabled", "email-unverified"],
    ),
    ("adminGetUser", "400", &["bad-request"]),
    ("adminUpdateUser", "409", &["conflict"]),
    ("getAvatar", "400", &["bad-request"]),
    ("putAvatar", "400", &["bad-request"]),
    ("logout", "400", &["bad-request"]),
    ("revokeSession", "400", &["bad-request"]),
    ("myActivity", "400", &["bad-request"]),
    ("adminAudit", "400", &["bad-request"]),
    ("adminListUsers", "400", &["bad-request"]),
    ("oauthUserinfo", "400", &["bad-request"]),
    ("oauthUserinfoPost", "400", &["bad-request"]),
    ("oauthIntrospect", "401", &["authentication-required"]),
];

/// The admin-only fields `PATCH /v1/me` refuses with 422: not part of its
/// request schema.
const OPERATOR_FIELDS: &[&str] = &["email", "email_verified", "roles", "disabled"];

/// Example values by property name.
fn example_value(name: &str) -> Option<Value> {
    Some(match name {
        "email" => json!("ada@example.com"),
        "password" | "current_password" => json!("correct horse battery staple 42"),
        "new_password" => json!("a new and long passphrase 77"),
        "display_name" => json!("Ada Lovelace"),
        "locale" => json!("en"),
        "timezone" => json!("Europe/Paris"),
        "metadata" => json!({"plan": "free"}),
        "refresh_token" => json!("AZKx3vQ8mZr0tq2bYl9S4w_JcE1uH7nKpD5fVg6aLs"),
        "token" => json!("AaJIvo34doq-KYcaVUzFWTuOumju-Pe"),
        "mfa_token" => json!("eyJhbGciOiJFZERTQSIsInR5cCI6Im1mYStqd3QifQ.e30.c2ln"),
        "code" | "mfa_code" => json!("123456"),
        "recovery_code" => json!("k3v9-7hq2-x4mp"),
        "name" => json!("MacBook Touch ID"),
        "grant_type" => json!("refresh_token"),
        "client_id" => json!("portcullis"),
        "token_type_hint" => json!("refresh_token"),
        "roles" => json!(["user", "admin"]),
        "disabled" => json!(false),
        "email_verified" => json!(true),
        _ => return None,
    })
}

/// Adds what the derived spec lacks (see the module docs).
pub fn refine(spec: &mut Value) {
    let body_schemas = request_body_schemas(spec);
    if let Some(schemas) = spec
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        if let Some(profile) = schemas
            .get_mut("UpdateProfileRequest")
            .and_then(Value::as_object_mut)
        {
            if let Some(props) = profile.get_mut("properties").and_then(Value::as_object_mut) {
                for field in OPERATOR_FIELDS {
                    props.remove(*field);
                }
            }
            profile.insert(
                "description".into(),
                json!("Profile changes; fields left out stay as they are, `null` clears. An operator's fields (`email`, `email_verified`, `roles`, `disabled`: `PATCH /v1/admin/users/{id}`) are refused with 422 and change nothing."),
            );
        }
        // Form fields RFC 6749 §6 and RFC 7009 §2.1 make required (the
        // form types keep them optional to answer with an OAuth error).
        for (name, field) in [("TokenForm", "grant_type"), ("RevokeForm", "token")] {
            if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
                schema.insert("required".into(), json!([field]));
            }
        }
        for name in &body_schemas {
            let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) else {
                continue;
            };
            schema.insert("additionalProperties".into(), Value::Bool(false));
            let required: Vec<String> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                for (field, prop) in props.iter_mut() {
                    if !required.contains(field)
                        && let Some(p) = prop.as_object_mut()
                    {
                        p.insert("nullable".into(), Value::Bool(true));
                    }
                }
            }
        }
    }
    let schemas = spec
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for ops in paths.values_mut() {
        let Some(ops) = ops.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            refine_operation(op, &schemas);
        }
    }
    add_browser_routes(paths);
}

/// The browser's entry points of the OpenID provider (`src/api/hosted/`),
/// served beside the API (HTML and redirects, no JSON): documented here so
/// that clients find their parameters. Marked `x-browser-route`.
fn add_browser_routes(paths: &mut Map<String, Value>) {
    let query = |name: &str, required: bool, what: &str| json!({"name": name, "in": "query", "required": required, "schema": {"type": "string"}, "description": what});
    let html = |what: &str| json!({"description": what, "content": {"text/html": {"schema": {"type": "string"}}}});
    let redirect = |what: &str| json!({"description": what, "headers": {"Location": {"schema": {"type": "string"}}}});
    let authorize = json!({"get": {
        "tags": ["OAuth"],
        "summary": "Authorization endpoint (code flow with PKCE)",
        "description": "OpenID Connect authorization request: `response_type=code` only, S256 PKCE required for every client. Signs the user in on the hosted pages (`/login`, `/login/mfa`, `/consent`), then redirects to `redirect_uri` with `code` and `state` (or an RFC 6749 §4.1.2.1 error). An unknown client or redirect URI gets an HTML error page, never a redirect.",
        "operationId": "oauthAuthorize",
        "x-browser-route": true,
        "parameters": [
            query("response_type", true, "`code`."),
            query("client_id", true, "A registered client."),
            query("redirect_uri", true, "One of the client's redirect URIs (loopback: any port)."),
            query("scope", false, "`openid`, `email`, `profile`, `offline_access`."),
            query("state", false, "Returned unchanged."),
            query("nonce", false, "Put in the ID token."),
            query("code_challenge", true, "PKCE challenge (RFC 7636)."),
            query("code_challenge_method", true, "`S256`."),
            query("prompt", false, "`none`, `login` or `consent`."),
            query("max_age", false, "Seconds since the last sign-in beyond which the user signs in again."),
            query("login_hint", false, "Fills the email field."),
            query("ui_locales", false, "Preferred languages of the pages."),
        ],
        "responses": {
            "302": redirect("To the client's `redirect_uri` (code or error)."),
            "303": redirect("To the hosted sign-in or consent page."),
            "400": html("Unknown client or redirect URI: an error page."),
        },
    }});
    let logout = json!({"get": {
        "tags": ["OAuth"],
        "summary": "RP-initiated logout",
        "description": "OpenID Connect RP-Initiated Logout 1.0: ends the browser session, then redirects to a registered `post_logout_redirect_uri` (with `state`) or shows a page.",
        "operationId": "oauthLogout",
        "x-browser-route": true,
        "parameters": [
            query("id_token_hint", false, "An ID token this server issued."),
            query("post_logout_redirect_uri", false, "One of the client's registered logout URIs."),
            query("state", false, "Returned unchanged."),
            query("client_id", false, "The client asking."),
        ],
        "responses": {
            "200": html("Signed out (or asked to confirm)."),
            "302": redirect("To the registered `post_logout_redirect_uri`."),
            "303": redirect("Back after the confirmation form."),
            "400": html("An unknown client or redirect: an error page."),
        },
    }});
    paths.insert(
        super::hosted::AUTHORIZE_PATH.to_string(),
        with_form_post(authorize),
    );
    paths.insert(
        super::hosted::LOGOUT_PATH.to_string(),
        with_form_post(logout),
    );
}

/// Adds the `POST` twin of a browser route's `GET`: the same parameters as
/// an `application/x-www-form-urlencoded` body (OIDC Core §3.1.2.1, RP-Initiated
/// Logout §2), the same answers.
fn with_form_post(mut item: Value) -> Value {
    let mut post = item["get"].clone();
    let mut props = Map::new();
    let mut required = Vec::new();
    for p in post["parameters"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        if p["required"] == json!(true) {
            required.push(json!(name));
        }
        props.insert(
            name,
            json!({"type": "string", "description": p["description"]}),
        );
    }
    if let Some(op) = post.as_object_mut() {
        op.remove("parameters");
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        op.insert("operationId".into(), json!(format!("{id}Post")));
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": props, "required": required}}}}),
        );
    }
    post["responses"]["415"] = json!({
        "description": "Problem details (RFC 9457). Problem types (`/problems/<slug>`): `unsupported-media-type`.",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    item["post"] = post;
    item
}

/// Names of the component schemas used as JSON request bodies, and of the
/// schemas their properties refer to (every one is `deny_unknown_fields`).
fn request_body_schemas(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(paths) = spec.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for op in paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|o| o.values())
    {
        let Some(content) = op
            .pointer("/requestBody/content")
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (media_type, media) in content {
            if !media_type.starts_with("application/json") {
                // Forms (OAuth) ignore unknown parameters, as RFC 6749 says.
                continue;
            }
            if let Some(name) = media
                .pointer("/schema/$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_string());
            }
        }
    }
    let schemas = &spec["components"]["schemas"];
    let nested: Vec<String> = out
        .iter()
        .filter_map(|n| schemas[n.as_str()]["properties"].as_object())
        .flat_map(|p| p.values())
        .filter_map(|p| {
            p.get("$ref")
                .or_else(|| p.pointer("/allOf/0/$ref"))
                .or_else(|| p.pointer("/items/$ref"))
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(String::from)
        })
        .collect();
    out.extend(nested);
    out.sort();
    out.dedup();
    out
}

#[allow(
    clippy::too_many_lines,
    reason = "one pass over an operation, each refinement a short step in spec order"
)]
fn refine_operation(op: &mut Value, schemas: &Value) {
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    // Body properties, for the slugs that follow from them.
    let mut body_props: Vec<String> = Vec::new();
    let mut json_body = false;
    if let Some(content) = op
        .pointer_mut("/requestBody/content")
        .and_then(Value::as_object_mut)
    {
        for (media, m) in content.iter_mut() {
            let Some(name) = m
                .pointer("/schema/$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(String::from)
            else {
                continue;
            };
            json_body |= media.starts_with("application/json");
            let schema = &schemas[name.as_str()];
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                body_props.extend(props.keys().cloned());
            }
            if let Some(m) = m.as_object_mut() {
                m.insert("example".into(), example_of(schema, schemas, 0));
            }
        }
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params {
            if p.get("name").and_then(Value::as_str) == Some("limit")
                && let Some(s) = p.get_mut("schema").and_then(Value::as_object_mut)
            {
                s.insert("minimum".into(), json!(1));
                s.insert("maximum".into(), json!(100));
                s.insert("default".into(), json!(50));
            }
        }
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let is_problem = response
            .pointer("/content/application~1problem+json")
            .is_some();
        if !is_problem {
            continue;
        }
        let mut slugs: Vec<&str> = Vec::new();
        if let Some((_, s)) = COMMON.iter().find(|(st, _)| st == status) {
            slugs.extend_from_slice(s);
        }
        match status.as_str() {
            "400" => {
                if json_body {
                    slugs.push("malformed-request");
                }
                if body_props.iter().any(|p| p == "captcha") {
                    slugs.push("captcha-required");
                }
            }
            "401" if secured && id != "oauthIntrospect" => {
                slugs.extend_from_slice(&["authentication-required", "token-invalid"]);
            }
            "403" if id.starts_with("admin") => slugs.push("forbidden"),
            _ => {}
        }
        for (op_id, st, s) in BY_OPERATION {
            if *op_id == id && st == status {
                slugs.extend_from_slice(s);
            }
        }
        let mut seen = Vec::new();
        slugs.retain(|s| {
            let new = !seen.contains(s);
            seen.push(*s);
            new
        });
        if slugs.is_empty() {
            continue;
        }
        let list = slugs
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(r) = response.as_object_mut() {
            let old = r
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("Problem details (RFC 9457).")
                .to_string();
            r.insert(
                "description".into(),
                json!(format!("{old} Problem types (`/problems/<slug>`): {list}.")),
            );
        }
    }
}

/// An example of `schema`: its required properties (or, with none
/// required, its first one), each from [`example_value`] or its type.
fn example_of(schema: &Value, schemas: &Value, depth: usize) -> Value {
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return if depth > 4 {
            json!({})
        } else {
            example_of(&schemas[name], schemas, depth + 1)
        };
    }
    if let Some(first) = schema
        .get("allOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return example_of(first, schemas, depth + 1);
    }
    if let Some(v) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return v.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return json!({});
            };
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = Map::new();
            for (name, prop) in props {
                let wanted = if required.is_empty() {
                    out.is_empty()
                } else {
                    required.contains(&name.as_str())
                };
                if wanted {
                    let v =
                        example_value(name).unwrap_or_else(|| example_of(prop, schemas, depth + 1));
                    out.insert(name.clone(), v);
                }
            }
            Value::Object(out)
        }
        Some("string") => json!("string"),
        Some("integer") => json!(1),
        Some("number") => json!(1.0),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests;
