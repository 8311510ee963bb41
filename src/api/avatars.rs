//! `/v1/me/avatar` and `/v1/users/{id}/avatar`.
//!
//! The upload is a raw image body (`image/png`, `image/jpeg`,
//! `image/webp`) or a `multipart/form-data` field `file`. Its size is
//! bounded while it streams in (`PORTCULLIS_AVATAR_MAX_BYTES`, by the body
//! limit middleware) → 413. What is served back is always the service's
//! own re-encoding (see [`crate::media`]).

use poem::Request;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiRequest, ApiResponse, Multipart, OpenApi};

use super::problem::{Problem, internal, problem_of, responses};
use super::views::UserView;
use super::{ApiTags, BearerAuth};
use crate::domain::UserId;
use crate::media::UploadType;
use crate::service::{Avatar, Core, Error};

/// A multipart upload.
#[derive(Debug, Multipart)]
pub struct AvatarForm {
    /// The image (PNG, JPEG or WebP).
    pub file: Upload,
}

/// The avatar image, as a raw body of its type or a multipart form.
#[derive(Debug, ApiRequest)]
pub enum AvatarUpload {
    /// A PNG image.
    #[oai(content_type = "image/png")]
    Png(Binary<Vec<u8>>),
    /// A JPEG image.
    #[oai(content_type = "image/jpeg")]
    Jpeg(Binary<Vec<u8>>),
    /// A WebP image.
    #[oai(content_type = "image/webp")]
    Webp(Binary<Vec<u8>>),
    /// `multipart/form-data` with the image in the field `file`.
    Form(AvatarForm),
}

responses! {
    pub enum PutAvatarResponse {
        /// The account with its new `avatar_url`.
        Ok(Json<UserView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum DeleteAvatarResponse {
        /// Removed (or there was none).
        Deleted = 204,
    }
    errors { Unauthorized = 401, Unavailable = 503 }
}

/// A stored avatar image (always PNG).
#[derive(Debug)]
pub struct PngImage(pub Vec<u8>);

impl Payload for PngImage {
    const CONTENT_TYPE: &'static str = crate::media::STORED_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("binary"),
            ..MetaSchema::new("string")
        }))
    }
}

impl poem::IntoResponse for PngImage {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// Responses of `GET /v1/users/{id}/avatar`.
#[derive(ApiResponse)]
pub enum GetAvatarResponse {
    /// The image.
    #[oai(status = 200)]
    Ok(
        PngImage,
        /// Strong entity tag of the image.
        #[oai(header = "ETag")]
        String,
        /// Caching rules.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// The client's copy (its `If-None-Match`) is current.
    #[oai(status = 304)]
    NotModified(
        /// Strong entity tag of the image.
        #[oai(header = "ETag")]
        String,
        /// Caching rules.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Problem details (RFC 9457).
    #[oai(status = 400)]
    BadRequest(Problem),
    /// No such user, or no avatar.
    #[oai(status = 404)]
    NotFound(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 503)]
    Unavailable(Problem),
    /// Unexpected server error.
    #[oai(status = 500)]
    InternalError(Problem),
}

impl From<Error> for GetAvatarResponse {
    fn from(e: Error) -> Self {
        let p = problem_of(&e);
        match p.status() {
            StatusCode::NOT_FOUND => Self::NotFound(p),
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(p),
            StatusCode::INTERNAL_SERVER_ERROR => Self::InternalError(p),
            other => {
                tracing::error!(
                    status = other.as_u16(),
                    op = "GetAvatarResponse",
                    "undocumented error status"
                );
                Self::InternalError(internal())
            }
        }
    }
}

/// Browsers and CDNs may keep an avatar for a few minutes, then revalidate
/// with the ETag (a 304 costs one store read and no image bytes).
const CACHE_CONTROL: &str = "public, max-age=300, must-revalidate";

/// Whether an `If-None-Match` value names `etag` (or is `*`); weak
/// validators compare by their opaque tag (RFC 9110 §13.1.2).
fn matches_etag(if_none_match: &HeaderValue, etag: &str) -> bool {
    let Ok(value) = if_none_match.to_str() else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*"
            || candidate
                .strip_prefix("W/")
                .unwrap_or(candidate)
                .trim_matches('"')
                == etag
    })
}

/// `/v1/me/avatar` and `/v1/users/{id}/avatar`.
pub struct AvatarApi;

#[OpenApi(tag = "ApiTags::Users")]
impl AvatarApi {
    /// Upload the caller's avatar (PNG, JPEG or WebP; at most
    /// `PORTCULLIS_AVATAR_MAX_BYTES`). It is decoded, squared, scaled to
    /// 256×256 and re-encoded as PNG; nothing of the upload (EXIF, GPS
    /// tags) is kept.
    #[oai(path = "/v1/me/avatar", method = "put", operation_id = "putAvatar")]
    async fn put_avatar(
        &self,
        core: Data<&Core>,
        auth: BearerAuth,
        body: AvatarUpload,
    ) -> PutAvatarResponse {
        let (declared, bytes) = match body {
            AvatarUpload::Png(b) => (Some(UploadType::Png), b.0),
            AvatarUpload::Jpeg(b) => (Some(UploadType::Jpeg), b.0),
            AvatarUpload::Webp(b) => (Some(UploadType::Webp), b.0),
            AvatarUpload::Form(form) => {
                let declared_type = form.file.content_type().map(str::to_string);
                let bytes = match form.file.into_vec().await {
                    Ok(b) => b,
                    Err(e) => return Error::Unexpected(anyhow::Error::new(e)).into(),
                };
                // A part without a type (or a generic one) is taken as what
                // its bytes say; a declared type must be one of ours.
                let declared = match declared_type.as_deref() {
                    None | Some("application/octet-stream") => UploadType::sniff(&bytes),
                    Some(t) => UploadType::from_media_type(t),
                };
                (declared, bytes)
            }
        };
        match core.put_avatar(&auth.0, declared, bytes).await {
            Ok(user) => PutAvatarResponse::Ok(Json(UserView::from(&user))),
            Err(e) => e.into(),
        }
    }

    /// Remove the caller's avatar.
    #[oai(
        path = "/v1/me/avatar",
        method = "delete",
        operation_id = "deleteAvatar"
    )]
    async fn delete_avatar(&self, core: Data<&Core>, auth: BearerAuth) -> DeleteAvatarResponse {
        match core.delete_avatar(&auth.0).await {
            Ok(()) => DeleteAvatarResponse::Deleted,
            Err(e) => e.into(),
        }
    }

    /// A user's avatar image (public). Answers 304 when `If-None-Match`
    /// names the current image.
    #[oai(
        path = "/v1/users/:id/avatar",
        method = "get",
        operation_id = "getAvatar"
    )]
    async fn get_avatar(
        &self,
        req: &Request,
        core: Data<&Core>,
        id: Path<String>,
    ) -> GetAvatarResponse {
        let Avatar { etag, bytes, .. } = match core.avatar(&UserId::from(id.0)).await {
            Ok(a) => a,
            Err(e) => return e.into(),
        };
        let quoted = format!("\"{etag}\"");
        let fresh = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|v| matches_etag(v, &etag));
        if fresh {
            GetAvatarResponse::NotModified(quoted, CACHE_CONTROL.to_string())
        } else {
            GetAvatarResponse::Ok(PngImage(bytes), quoted, CACHE_CONTROL.to_string())
        }
    }
}
