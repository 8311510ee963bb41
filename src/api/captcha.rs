//! `GET /v1/captcha`: a proof-of-work challenge (ALTCHA v1).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::auth::captcha::Challenge;
use crate::service::Core;

/// An ALTCHA v1 challenge. Find `number` ≤ `maxnumber` with
/// `hex(sha256(salt + number)) == challenge`, then send base64 of
/// `{algorithm, challenge, number, salt, signature}` as `captcha`.
#[derive(Debug, Object)]
#[oai(rename = "CaptchaChallenge")]
pub struct CaptchaChallenge {
    /// Always `SHA-256`.
    pub algorithm: String,
    /// `hex(sha256(salt + number))`.
    pub challenge: String,
    /// Largest possible `number`: the work of the challenge.
    pub maxnumber: u64,
    /// Random salt carrying the expiry: `<hex>?expires=<unix>`.
    pub salt: String,
    /// HMAC of `challenge` under the server's key.
    pub signature: String,
}

impl From<Challenge> for CaptchaChallenge {
    fn from(c: Challenge) -> Self {
        Self {
            algorithm: c.algorithm,
            challenge: c.challenge,
            maxnumber: c.maxnumber,
            salt: c.salt,
            signature: c.signature,
        }
    }
}

/// Responses of `GET /v1/captcha`.
#[derive(ApiResponse)]
pub enum CaptchaResponse {
    /// A fresh challenge (valid for 10 minutes, usable once).
    #[oai(status = 200)]
    Ok(Json<CaptchaChallenge>),
}

/// `GET /v1/captcha`.
pub struct CaptchaApi;

#[OpenApi(tag = "ApiTags::Captcha")]
impl CaptchaApi {
    /// A proof-of-work challenge.
    #[oai(path = "/v1/captcha", method = "get", operation_id = "captcha")]
    async fn captcha(&self, core: Data<&Core>) -> CaptchaResponse {
        CaptchaResponse::Ok(Json(core.captcha_challenge().into()))
    }
}
