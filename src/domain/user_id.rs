//! The id of an account: opaque text (a UUIDv7 for accounts made here, any
//! text for imported ones), the `sub` of its tokens and the key of its
//! records. A type of its own so that a session id, a jti or an email can
//! never be passed where a user id is meant.
//!
//! Stored and sent as the bare string (`#[serde(transparent)]`): records
//! written before the type existed read back unchanged.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A user id. Made by [`UserId::mint`] for a new account, or from text that
/// names one (a token's `sub`, a path segment, a stored record) with
/// [`From`]; such text is not checked here: an id that names no account
/// simply finds nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// A fresh id for a new account (UUIDv7 text: sortable by creation).
    #[must_use]
    pub fn mint() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string (for wire types and log fields).
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user id reads as text wherever text is wanted (a log field, a store
/// key, a wire type): the type guards the other way, text becoming an id,
/// which takes an explicit [`From`].
impl std::ops::Deref for UserId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl PartialEq<str> for UserId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for UserId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<UserId> for str {
    fn eq(&self, other: &UserId) -> bool {
        self == other.0
    }
}

impl PartialEq<UserId> for String {
    fn eq(&self, other: &UserId) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_bare_string() {
        let id = UserId::from("0190f0c2-7e0a-7000-8000-000000000001");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0190f0c2-7e0a-7000-8000-000000000001\"");
        let back: UserId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn minted_ids_are_distinct_uuids() {
        let (a, b) = (UserId::mint(), UserId::mint());
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(a.as_str()).is_ok());
    }
}
