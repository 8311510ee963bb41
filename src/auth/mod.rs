//! Authentication machinery: signing keys and JWKS, token issue/verify,
//! password hashing.

pub mod breached;
pub mod captcha;
pub mod keys;
pub mod limits;
pub mod password;
pub mod secrets;
pub mod tokens;

pub use captcha::Captcha;
pub use keys::KeyRing;
pub use limits::Limits;
pub use password::PasswordHasher;
pub use tokens::{AccessClaims, RefreshClaims, TokenError, TokenService};
