//! keyclerk's integration tests: one binary, real servers on port 0, real HTTP.
#![allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on the first surprise"
)]

mod activations;
mod audit_growth;
mod auth;
mod authz;
mod backup;
mod browser;
mod cli;
mod concurrent_guesses;
mod console;
mod console_admin;
mod console_pages;
mod contract;
mod crash;
mod db_copy;
mod desktop_app;
mod downloads;
mod errors;
mod failover;
mod file_modes;
mod forwarded;
mod grace;
mod helpers;
mod http;
mod instances;
mod interop;
mod keys;
mod lifecycle;
mod limits;
mod logs;
mod mail;
mod metrics;
mod mint;
mod my_offline;
mod my_page;
mod openapi;
mod outage;
mod parsers;
mod payments;
mod pg;
mod process;
mod schemathesis;
mod secrets;
mod slow_bodies;
mod storage_contract;
mod text_and_dates;
mod validation;
mod vectors;
mod views;
mod webhooks;
