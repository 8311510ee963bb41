//! HTTP integration tests: a real server on a random port, a fresh store per
//! test. `PORTCULLIS_TEST_BACKEND=mongo` (with `PORTCULLIS_TEST_MONGODB_URI`)
//! runs the same suite against MongoDB.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation should stop the test loudly"
)]

mod errors;
mod hardening;
mod helpers;
mod limits;
mod me;
mod mongo;
mod oauth;
mod process;
mod sessions;
mod storm;
mod users;
mod wellknown;
