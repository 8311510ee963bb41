//! What the OpenAPI spec knows about each route, used where poem's own
//! errors know too little:
//!
//! - `405` answers carry `Allow` (RFC 9110 §15.5.6) with the route's methods;
//! - a body that fails to parse gets a problem naming the offending *fields*
//!   (`password: is required`), never internal type names such as
//!   `string(password)` or `LoginRequest`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::Value;

use super::problem::{FieldErrorBody, Problem};
use crate::telemetry::RouteLabels;

/// The JSON object a request body must be.
#[derive(Debug, Clone, Default)]
struct BodySchema {
    required: BTreeSet<String>,
    /// Property name → JSON type (`string`, `object`, ...; `None`: any).
    properties: BTreeMap<String, Option<String>>,
}

/// Methods and body schemas per route template.
#[derive(Debug, Clone)]
pub(super) struct RoutesMeta {
    labels: Arc<RouteLabels>,
    methods: HashMap<String, BTreeSet<String>>,
    bodies: HashMap<(String, String), BodySchema>,
}

impl RoutesMeta {
    /// From the spec, plus routes outside it (`extra`: template, methods).
    pub(super) fn new(spec: &Value, labels: Arc<RouteLabels>, extra: &[(&str, &[&str])]) -> Self {
        let mut methods: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut bodies = HashMap::new();
        for (path, ops) in spec["paths"].as_object().into_iter().flatten() {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let method = method.to_ascii_uppercase();
                methods
                    .entry(path.clone())
                    .or_default()
                    .insert(method.clone());
                let schema = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| {
                        c.iter()
                            .find(|(media, _)| media.starts_with("application/json"))
                            .map(|(_, m)| m)
                    })
                    .map(|m| resolve(spec, &m["schema"]));
                if let Some(schema) = schema.filter(|s| s["type"] == "object") {
                    bodies.insert((path.clone(), method), body_schema(spec, &schema));
                }
            }
        }
        for (path, ms) in extra {
            methods
                .entry((*path).to_string())
                .or_default()
                .extend(ms.iter().map(|m| (*m).to_string()));
        }
        Self {
            labels,
            methods,
            bodies,
        }
    }

    /// The `Allow` value for a path (`None` for unknown paths).
    fn allow(&self, path: &str) -> Option<String> {
        let template = self.labels.label(path);
        let methods = self.methods.get(&*template)?;
        let mut all: Vec<&str> = methods.iter().map(String::as_str).collect();
        if all.contains(&"GET") && !all.contains(&"HEAD") {
            // poem answers HEAD for GET routes.
            all.push("HEAD");
        }
        Some(all.join(", "))
    }

    /// A problem naming the fields of `body` that break the route's schema;
    /// `None` when the route has no known schema.
    fn body_problem(&self, path: &str, method: &Method, body: &[u8]) -> Option<Problem> {
        let template = self.labels.label(path);
        let schema = self
            .bodies
            .get(&(template.to_string(), method.as_str().to_string()))?;
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Some(malformed(format!(
                    "The request body is not valid JSON (line {}, column {}).",
                    e.line(),
                    e.column()
                )));
            }
        };
        let Some(obj) = value.as_object() else {
            return Some(malformed("The request body must be a JSON object.".into()));
        };
        let mut errors = Vec::new();
        for name in &schema.required {
            if obj.get(name).is_none_or(Value::is_null) {
                errors.push(FieldErrorBody::new(name, "required", "is required"));
            }
        }
        for (name, v) in obj {
            match schema.properties.get(name) {
                None => errors.push(FieldErrorBody::new(
                    name,
                    "unknown_field",
                    "is not a field of this request",
                )),
                Some(Some(ty)) if !v.is_null() && !has_type(v, ty) => {
                    errors.push(FieldErrorBody::new(
                        name,
                        "invalid",
                        format!("must be {}", article(ty)),
                    ));
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            return None;
        }
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = malformed(format!("The request body is not valid: {detail}."));
        p.body.errors = Some(errors);
        Some(p)
    }
}

fn malformed(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-request",
        "Malformed request",
        detail,
    )
}

fn article(ty: &str) -> String {
    match ty {
        "object" | "array" | "integer" => format!("an {ty}"),
        other => format!("a {other}"),
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "string" => v.is_string(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

/// Follows a `$ref` into `components/schemas`.
fn resolve(spec: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str() {
        Some(r) => spec
            .pointer(r.trim_start_matches('#'))
            .cloned()
            .unwrap_or(Value::Null),
        None => schema.clone(),
    }
}

fn body_schema(spec: &Value, schema: &Value) -> BodySchema {
    let required = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let properties = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = resolve(spec, v);
            let ty = v["type"].as_str().map(str::to_string).or_else(|| {
                // `allOf: [{$ref}]` (documented enums and objects).
                v["allOf"][0]
                    .get("$ref")
                    .map(|_| resolve(spec, &v["allOf"][0]))
                    .and_then(|r| r["type"].as_str().map(str::to_string))
            });
            (k.clone(), ty)
        })
        .collect();
    BodySchema {
        required,
        properties,
    }
}

/// A request body as read by the body limit, kept for error reports.
#[derive(Clone)]
pub(super) struct RawBody(pub(super) Arc<Vec<u8>>);

/// Adds `Allow` to 405 answers and names fields in body parse errors.
pub(super) async fn explain<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    meta: &RoutesMeta,
) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req.extensions().get::<RawBody>().cloned();
    let result = ep.call(req).await;
    let mut resp = match result {
        Ok(r) => r.into_response(),
        Err(e) => {
            let named = e
                .downcast_ref::<poem_openapi::error::ParseRequestPayloadError>()
                .and(body.as_ref())
                .and_then(|body| meta.body_problem(&path, &method, &body.0));
            match named {
                Some(p) => p.into_response(),
                None if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    super::problem::problem_from_poem_error(e)
                }
                None => return Err(e),
            }
        }
    };
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(v) = meta
            .allow(&path)
            .and_then(|a| HeaderValue::from_str(&a).ok())
    {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    Ok(resp)
}
