//! Authentication machinery: signing keys and JWKS, token issue/verify,
//! password hashing.

pub mod keys;
pub mod password;
pub mod tokens;

pub use keys::KeyRing;
pub use password::PasswordHasher;
pub use tokens::{AccessClaims, RefreshClaims, TokenError, TokenService};
