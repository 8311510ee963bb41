//! Authentication machinery: signing keys and JWKS, token issue/verify,
//! password hashing, second factors (TOTP, recovery codes), passkeys (WebAuthn).

pub mod breached;
pub mod captcha;
pub mod dpop;
pub mod keys;
pub mod limits;
// Passkeys.
pub mod passkeys;
pub mod password;
pub mod secrets;
pub mod signers;
pub mod token_cache;
pub mod tokens;
pub mod totp;

pub use captcha::Captcha;
pub use keys::KeyRing;
pub use limits::Limits;
pub use passkeys::PasskeyRp;
pub use password::PasswordHasher;
pub use token_cache::TokenCache;
pub use tokens::{AccessClaims, Confirmation, MfaClaims, RefreshClaims, TokenError, TokenService};
