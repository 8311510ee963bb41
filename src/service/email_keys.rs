//! Finding an account by email under the normalization of issue 9, with
//! accounts stored by earlier releases still found (normalize on read).

use super::{Core, Result};
use crate::domain::Email;
use crate::store::UserRecord;

impl Core {
    /// The account of `email`: under its normalized key, else under the key
    /// an earlier release stored (Unicode domains; see
    /// [`Email::legacy_key`]).
    pub(super) async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        if let Some(u) = self.store.user_by_email(email.as_str()).await? {
            return Ok(Some(u));
        }
        match email.legacy_key() {
            Some(legacy) => Ok(self.store.user_by_email(&legacy).await?),
            None => Ok(None),
        }
    }
}
