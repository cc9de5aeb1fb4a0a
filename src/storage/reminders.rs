//! Shapes the storage boundary uses for reminders before an activation window
//! closes: the scheduled ones that fell due, and what became of them.

use crate::domain::license::License;
use crate::domain::mail::{Locale, NewMail};
use crate::domain::time::Timestamp;
use crate::storage::StoredKey;

/// A scheduled reminder that fell due, with what judging and writing it needs.
#[derive(Debug, Clone)]
pub struct DueReminder {
    /// The license, as it stands now.
    pub license: License,
    /// Its key as stored (the mail carries the key).
    pub key: StoredKey,
    /// Whether it was ever activated.
    pub activated: bool,
    /// Days before the deadline.
    pub days: u32,
    /// The language of the mint's mail.
    pub locale: Locale,
}

/// What became of a due reminder.
#[derive(Debug, Clone)]
pub enum Settled {
    /// Mailed: the message is queued, the schedule's row gone.
    Sent(NewMail),
    /// Not wanted: the row is gone.
    Dropped,
    /// The window moved: the row is due again then.
    Later(Timestamp),
}

/// A due reminder, settled.
#[derive(Debug, Clone)]
pub struct SettledReminder {
    /// The license.
    pub license_id: String,
    /// Days before the deadline.
    pub days: u32,
    /// What became of it.
    pub settled: Settled,
}
