//! keyclerk's integration tests: one binary, real servers on port 0, real HTTP.
#![allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on the first surprise"
)]

mod activations;
mod auth;
mod authz;
mod backup;
mod cli;
mod crash;
mod desktop_app;
mod errors;
mod grace;
mod helpers;
mod interop;
mod keys;
mod lifecycle;
mod limits;
mod mint;
mod openapi;
mod parsers;
mod process;
mod schemathesis;
mod secrets;
mod validation;
mod vectors;
