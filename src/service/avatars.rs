//! Avatars: upload (checked and re-encoded by [`crate::media`]), serve,
//! remove.

use super::{Account, Core, Error, FieldError, Principal, Result};
use crate::domain::UserId;
use crate::media::{self, MediaError, UploadType};
use crate::store::AvatarRecord;

/// Avatar uploads a user may make within 15 minutes before 429: each costs
/// a decode (up to about 0.4 s of CPU and 80 MB).
pub const UPLOADS_PER_USER: usize = 10;

/// A stored avatar, ready to serve.
#[derive(Debug, Clone)]
pub struct Avatar {
    /// Media type of `bytes`.
    pub content_type: String,
    /// Strong entity tag, without quotes.
    pub etag: String,
    /// The image.
    pub bytes: Vec<u8>,
}

impl Core {
    /// Replaces the caller's avatar with a re-encoded copy of `bytes`,
    /// declared as `declared` (`None`: a type this service does not take).
    pub async fn put_avatar(
        &self,
        who: &Principal,
        declared: Option<UploadType>,
        bytes: Vec<u8>,
    ) -> Result<Account> {
        let declared = declared.ok_or(Error::UnsupportedMedia(
            "An avatar is a PNG, JPEG or WebP image (`image/png`, `image/jpeg`, `image/webp`).",
        ))?;
        self.per_address_limit("avatar", &who.user_id, UPLOADS_PER_USER)
            .await?;
        // A turn among the bounded decodes; the blocking task keeps it until
        // the decode ends, even if this request is dropped meanwhile.
        let permit = media::decode_permit().await;
        let encoded = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            media::reencode(&bytes, declared)
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::anyhow!("avatar task failed: {e}")))?
        .map_err(|e| match e {
            MediaError::NotAnImage => Error::UnsupportedMedia(
                "The body is not a complete image of the type its Content-Type declares.",
            ),
            MediaError::TooLarge => Error::Validation(vec![FieldError::new(
                "file",
                "too_large",
                "The image is larger than 4096×4096 pixels.",
            )]),
            MediaError::Encode => Error::Unexpected(anyhow::anyhow!("avatar re-encoding failed")),
        })?;
        let record = AvatarRecord {
            user_id: who.user_id.clone(),
            content_type: media::STORED_TYPE.to_string(),
            etag: encoded.etag,
            bytes: encoded.bytes,
            updated_at: self.clock.now(),
        };
        if !self.store.put_avatar(&record).await? {
            return Err(Error::TokenInvalid("unknown subject"));
        }
        tracing::info!(user_id = %who.user_id, event = "avatar.updated", "avatar updated");
        self.account(&who.user_id).await
    }

    /// The avatar of a user, for anyone; `NotFound` when there is none.
    pub async fn avatar(&self, user_id: &UserId) -> Result<Avatar> {
        let a = self
            .store
            .avatar(user_id)
            .await?
            .ok_or(Error::NotFound("Avatar"))?;
        Ok(Avatar {
            content_type: a.content_type,
            etag: a.etag,
            bytes: a.bytes,
        })
    }

    /// Removes the caller's avatar (done when there is none).
    pub async fn delete_avatar(&self, who: &Principal) -> Result<()> {
        if self.store.delete_avatar(&who.user_id).await? {
            tracing::info!(user_id = %who.user_id, event = "avatar.removed", "avatar removed");
        }
        Ok(())
    }
}
