//! Driver errors as store errors: transient failures become
//! `Unavailable`, a unique-index violation is recognized by its code
//! (11000, never by message text), and connection strings are scrubbed
//! from any message that might quote them.

use mongodb::error::{ErrorKind, WriteFailure};

use crate::store::StoreError;

/// Duplicate key (unique index violation).
const DUPLICATE_KEY: i32 = 11000;
/// Command not implemented (FerretDB, for TTL indexes).
pub(super) const NOT_IMPLEMENTED: i32 = 238;
/// Codes that mean "this server cannot serve now" (network, shutdown,
/// failover): the request may succeed later.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Maps a driver error: cannot reach / talk to the server → `Unavailable`
/// (HTTP 503), anything else → `Other`. The texts are ours and short; none
/// holds the connection string.
pub(super) fn map_err(e: mongodb::error::Error) -> StoreError {
    let transient = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => Some("no MongoDB server available".to_string()),
        ErrorKind::Io(io) => Some(format!("I/O error talking to MongoDB: {}", io.kind())),
        ErrorKind::ConnectionPoolCleared { .. } => {
            Some("MongoDB connection pool cleared".to_string())
        }
        ErrorKind::DnsResolve { .. } => Some("DNS resolution of the MongoDB host failed".into()),
        ErrorKind::Shutdown => Some("MongoDB client shut down".to_string()),
        ErrorKind::Command(c) if TRANSIENT_CODES.contains(&c.code) => Some(format!(
            "MongoDB server not ready ({} {})",
            c.code, c.code_name
        )),
        ErrorKind::Write(WriteFailure::WriteConcernError(w))
            if TRANSIENT_CODES.contains(&w.code) =>
        {
            Some(format!(
                "MongoDB server not ready ({} {})",
                w.code, w.code_name
            ))
        }
        _ => None,
    };
    match transient {
        Some(text) => StoreError::Unavailable(text),
        None => StoreError::Other(anyhow::Error::new(e).context("MongoDB operation failed")),
    }
}

/// True when the error is a unique-index violation (code 11000), in any of
/// the forms the driver reports it.
pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}

/// The server's error code, when the error is a command error.
pub(super) fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// Removes the userinfo (`user:password@`) of `uri` from a message, in case
/// a driver message quoted it.
pub(super) fn scrub(message: &str, uri: &str) -> String {
    let Some((_, rest)) = uri.split_once("://") else {
        return message.to_string();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return message.to_string();
    };
    let mut out = message.replace(userinfo, "***");
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        out = out.replace(password, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrub_removes_credentials() {
        let uri = "mongodb://app:s3cr%40t@db.example:27017/?authSource=admin";
        let msg = scrub("bad thing near app:s3cr%40t@db.example and s3cr%40t", uri);
        assert!(!msg.contains("s3cr"), "{msg}");
        assert_eq!(scrub("no secrets", "mongodb://h:1/"), "no secrets");
    }
}
