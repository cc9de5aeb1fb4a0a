//! Delivery from the durable outbox: the rows that writes add in the transaction of
//! the change they report, sent by background workers (never inside a request,
//! never on the writer). Webhooks now; mail will be another channel of the same
//! table.

pub mod client;
pub mod webhook;

pub use webhook::{WebhookSettings, WebhookWorker};
