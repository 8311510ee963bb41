//! HTTP integration tests: a real server on a random port, a fresh store per
//! test. `PORTCULLIS_TEST_BACKEND=mongo` (with `PORTCULLIS_TEST_MONGODB_URI`)
//! runs the same suite against MongoDB.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation should stop the test loudly"
)]

mod activity;
mod atomic_limits;
mod audit_log;
mod cli;
mod dev_mode;
// Sender-constrained tokens.
mod dpop;
mod errors;
// Federated sign-in.
mod federation;
mod hardening;
mod helpers;
mod limits;
// Email flows.
mod mailbox;
mod me;
mod mfa;
mod mongo;
// Passkeys.
mod oauth;
// OpenID provider.
mod oidc;
mod passkeys;
// Passwordless sign-in and anonymous users.
mod passwordless;
mod probe_findings;
mod process;
// Lean read path.
mod read_path;
mod recovery;
// Refresh tokens signed with the HMAC key (performance round two).
mod refresh_signing;
mod routes_table;
mod sessions;
mod shutdown;
mod spec_truth;
// Step-up and credential safety.
mod stepup;
mod storm;
mod users;
mod verification;
mod webhooks;
mod wellknown;
// Profile, avatar, admin, import.
mod admin;
mod avatar;
mod import;
mod profile;
// The book's generated references (docs/reference/).
mod docs_reference;
