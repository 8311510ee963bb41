//! What the binary runs besides the server. Declared by `main.rs`, not by
//! the library, so none of it is in the service's request path or API.

pub mod admin;
pub mod bench;
pub mod clients;
pub mod import;
pub mod keys;
pub mod passwords;
