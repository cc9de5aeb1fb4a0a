//! Delivery from the durable outbox: the rows that writes add in the transaction of
//! the change they report, sent by background workers (never inside a request,
//! never on the writer). Webhooks and mail, two channels of the same table.

pub mod client;
pub mod mail;
pub mod webhook;

pub use mail::{MailSettings, MailWorker};
pub use webhook::{WebhookSettings, WebhookWorker};
