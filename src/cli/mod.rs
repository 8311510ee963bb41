//! What the binary runs besides the server. Declared by `main.rs`, not by
//! the library, so none of it is in the service's request path or API.

pub mod admin;
pub mod bench;
pub mod clients;
pub mod import;
pub mod keys;
pub mod passwords;

/// An admin or import command could not open the embedded store because a
/// running server holds it: say in one line what to do instead of the bare
/// lock error. Any other error passes through.
pub fn explain_store_in_use(err: anyhow::Error, command: &str, instead: &str) -> anyhow::Error {
    match err.downcast_ref::<portcullis::store::embedded::StoreInUse>() {
        Some(in_use) => anyhow::anyhow!(
            "{} is held by a running portcullis server (the embedded store opens in one process at a time): stop the server, run `portcullis {command}` again, then start the server{instead}",
            in_use.path.display()
        ),
        None => err,
    }
}
