//! Liveness and readiness probes.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::service::Core;

/// Probe result.
#[derive(Debug, Object)]
pub struct HealthStatus {
    /// `ok`.
    pub status: String,
}

/// Responses of `GET /healthz`.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The process is up.
    #[oai(status = 200)]
    Ok(Json<HealthStatus>),
}

/// Responses of `GET /readyz`.
#[allow(
    clippy::large_enum_variant,
    reason = "answered once per probe; the problem is built only when the store is down"
)]
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The store answers: ready for traffic.
    #[oai(status = 200)]
    Ok(Json<HealthStatus>),
    /// The store does not answer.
    #[oai(status = 503)]
    Unavailable(super::problem::Problem),
}

/// `/healthz` and `/readyz`.
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process answers.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(HealthStatus {
            status: "ok".into(),
        }))
    }

    /// Readiness: the store answers.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, core: Data<&Core>) -> ReadyResponse {
        match core.ready().await {
            Ok(()) => ReadyResponse::Ok(Json(HealthStatus {
                status: "ok".into(),
            })),
            Err(_) => ReadyResponse::Unavailable(super::problem::unavailable()),
        }
    }
}
