//! [`AvatarStore`] on MongoDB: the `avatars` collection (`_id` the user
//! id; the image as base64 text, see [`AvatarRecord`]) and the etag on the
//! account's document in `users`.
//!
//! Two documents, no transaction: the avatar is written first and the etag
//! second, so a reader that sees an etag finds an image; deleting goes the
//! other way round (etag first). A crash in between leaves at worst an
//! image no account points at, which the next upload or the account's
//! deletion replaces or removes.

use async_trait::async_trait;
use mongodb::bson::doc;

use super::{MongoStore, from_doc, to_doc};
use crate::domain::UserId;
use crate::store::{AvatarRecord, AvatarStore, StoreResult};

#[async_trait]
impl AvatarStore for MongoStore {
    async fn put_avatar(&self, avatar: &AvatarRecord) -> StoreResult<bool> {
        let id = avatar.user_id.as_str();
        if self.user_by_id_exists(id).await? {
            let mut d = to_doc(avatar)?;
            d.insert("_id", id);
            self.run(self.avatars.replace_one(doc! { "_id": id }, d).upsert(true))
                .await?;
            let r = self
                .run(self.users.update_one(
                    doc! { "_id": id },
                    doc! { "$set": { "avatar_etag": &avatar.etag } },
                ))
                .await?;
            if r.matched_count > 0 {
                return Ok(true);
            }
            // The account went away meanwhile: take the image back out.
            self.run(self.avatars.delete_one(doc! { "_id": id }))
                .await?;
        }
        Ok(false)
    }

    async fn avatar(&self, user_id: &UserId) -> StoreResult<Option<AvatarRecord>> {
        let Some(mut d) = self
            .run(self.avatars.find_one(doc! { "_id": user_id }))
            .await?
        else {
            return Ok(None);
        };
        d.insert("user_id", user_id);
        from_doc(d).map(Some)
    }

    async fn delete_avatar(&self, user_id: &UserId) -> StoreResult<bool> {
        self.run(self.users.update_one(
            doc! { "_id": user_id },
            doc! { "$unset": { "avatar_etag": "" } },
        ))
        .await?;
        let r = self
            .run(self.avatars.delete_one(doc! { "_id": user_id }))
            .await?;
        Ok(r.deleted_count > 0)
    }
}

impl MongoStore {
    /// Whether an account with this id exists (an `_id` lookup).
    async fn user_by_id_exists(&self, id: &str) -> StoreResult<bool> {
        Ok(self
            .run(self.users.count_documents(doc! { "_id": id }).limit(1))
            .await?
            > 0)
    }
}
