//! keyclerk: a self-hosted license server with offline-verifiable keys.

pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod routes;
pub mod server;
pub mod service;
pub mod startup;
pub mod storage;
pub mod token;
pub mod web;
