//! Portcullis: a stateless, token-issuing identity service.
//!
//! Layers depend one way: `api` → `service` → `auth`/`domain` → `store`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod auth;
pub mod bench_support;
pub mod config;
pub mod domain;
pub mod error;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::Settings;
pub use startup::Application;
