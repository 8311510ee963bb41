//! Portcullis: a stateless, token-issuing identity service.
//!
//! Imports point one way, down this list (nothing below `api` imports
//! `poem`, and `store` imports neither `auth` nor `service`):
//!
//! - [`startup`] wires everything and runs the server; [`jobs`] are the
//!   background tasks beside it.
//! - [`api`]: HTTP only (poem + poem-openapi): handlers, problem+json,
//!   middleware, extractors. Thin: parse, call a use case, map.
//! - [`service`]: the use cases, one file per capability, on one [`service::Core`];
//!   its own error type with no HTTP in it.
//! - [`auth`] (tokens, keys, password hashing, CAPTCHA, limits),
//!   [`domain`] (validated newtypes) and [`mail`] (the mailer and templates).
//! - [`store`]: traits per kind of record and two backends (`embedded` on
//!   redb, `mongo` on MongoDB).
//! - [`media`]: avatar decoding and re-encoding (used by `service`).
//! - [`audit`] (typed security events and their buffer) and [`webhooks`]
//!   (signed delivery of those events) sit beside `auth`, below `service`.
//! - [`config`], [`clock`] and [`telemetry`] are used from every layer.
//!
//! The command line (`src/main.rs` + `src/cli/`) is not part of the library.

// The HTTP middleware stack (`api::routes`) is one deeply nested type.
#![recursion_limit = "256"]

pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod mail;
pub mod media;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use config::Settings;
pub use startup::Application;
