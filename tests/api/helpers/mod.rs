//! Test helpers: `spawn_app()` and the request helpers of the HTTP suite.
//!
//! Split by concern so no file grows past the size limit: starting the
//! server and its backend (`spawn`), request helpers per endpoint group
//! (`requests`: accounts, sessions, profile, admin, activity; `factors`:
//! two-factor, passkeys, hardening, OAuth), the mail outbox (`mail`) and
//! assertions and small decoders (`checks`). Everything is re-exported here,
//! so tests keep importing from `crate::helpers`.

mod checks;
mod factors;
// Federated sign-in: an OpenID provider on loopback.
pub mod issuer;
mod mail;
mod requests;
mod spawn;

pub use checks::*;
pub use spawn::*;
