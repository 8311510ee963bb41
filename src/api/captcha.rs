//! `GET /v1/captcha`: a proof-of-work challenge (ALTCHA v1).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::auth::tokens::now_secs;
use crate::service::Portcullis;

/// An ALTCHA v1 challenge. Find `number` ≤ `maxnumber` with
/// `hex(sha256(salt + number)) == challenge`, then send base64 of
/// `{algorithm, challenge, number, salt, signature}` as `captcha`.
#[derive(Debug, Object)]
#[oai(rename = "CaptchaChallenge")]
pub struct CaptchaChallenge {
    /// Always `SHA-256`.
    pub algorithm: String,
    pub challenge: String,
    pub maxnumber: u64,
    /// Random salt carrying the expiry: `<hex>?expires=<unix>`.
    pub salt: String,
    pub signature: String,
}

#[derive(ApiResponse)]
pub enum CaptchaResponse {
    /// A fresh challenge (valid for 10 minutes, usable once).
    #[oai(status = 200)]
    Ok(Json<CaptchaChallenge>),
}

pub struct CaptchaApi;

#[OpenApi(tag = "ApiTags::Captcha")]
impl CaptchaApi {
    /// A proof-of-work challenge.
    #[oai(path = "/v1/captcha", method = "get", operation_id = "captcha")]
    async fn captcha(&self, core: Data<&Portcullis>) -> CaptchaResponse {
        let c = core.captcha.challenge(now_secs());
        CaptchaResponse::Ok(Json(CaptchaChallenge {
            algorithm: c.algorithm,
            challenge: c.challenge,
            maxnumber: c.maxnumber,
            salt: c.salt,
            signature: c.signature,
        }))
    }
}
