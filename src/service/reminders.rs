//! Reminders before an unused license's activation window closes: a scheduler
//! inside keyclerk looks for the reminders that fell due, judges each by the
//! domain's rules and mails it with the license's key. The schedule is in the
//! database (it survives restarts); with several instances each may settle the
//! same reminder, and the outbox, unique per cause, sends it once.

use std::time::Duration;

use crate::domain::mail::NewMail;
use crate::domain::reminder::{days_left, verdict, Verdict};
use crate::domain::time::{self, Timestamp};
use crate::service::{AppState, ServiceError};
use crate::storage::reminders::{DueReminder, Settled, SettledReminder};

/// Reminders read and settled in one go.
const BATCH: u32 = 200;

/// How long a reminder whose key cannot be signed now waits before it is tried
/// again.
const RETRY_AFTER_HOURS: i64 = 1;

impl AppState {
    /// Mails every reminder due at `now`; how many were queued.
    pub async fn send_due_reminders(&self, now: Timestamp) -> Result<usize, ServiceError> {
        let mut sent = 0;
        loop {
            let due = self.store.due_reminders(now, BATCH).await?;
            let full = due.len() == BATCH as usize;
            let mut settled = Vec::with_capacity(due.len());
            for d in due {
                let s = self.settle_reminder(d, now).await;
                if matches!(s.settled, Settled::Sent(_)) {
                    sent += 1;
                }
                settled.push(s);
            }
            self.store.settle_reminders(settled, now).await?;
            if !full {
                return Ok(sent);
            }
        }
    }

    async fn settle_reminder(&self, d: DueReminder, now: Timestamp) -> SettledReminder {
        let product = self.catalog.get(&d.license.product);
        let listed = product.map_or(&[][..], |p| &p.spec.remind_before_days[..]);
        let settled = match verdict(&d.license, d.activated, d.days, listed, now) {
            Verdict::Drop => Settled::Dropped,
            Verdict::Later(at) => Settled::Later(at),
            Verdict::Send => match self.reissue(&d.license, &d.key).await {
                Ok(key) => {
                    let name = product.map_or(d.license.product.as_str(), |p| &p.spec.name);
                    let left = d.license.activate_by.map_or(0, |t| days_left(t, now));
                    NewMail::reminder(&d.license, name, &key, d.days, left, d.locale)
                        .map_or(Settled::Dropped, Settled::Sent)
                }
                Err(e) => {
                    log::warn!(
                        "reminder: the key of {} cannot be signed now ({e}); trying again later",
                        d.license.id
                    );
                    Settled::Later(now + chrono::Duration::hours(RETRY_AFTER_HOURS))
                }
            },
        };
        SettledReminder {
            license_id: d.license.id,
            days: d.days,
            settled,
        }
    }
}

/// Looks for due reminders every `every`, from now on, on the server's runtime.
pub fn start(state: actix_web::web::Data<AppState>, every: Duration) {
    actix_web::rt::spawn(async move {
        loop {
            match state.send_due_reminders(time::now()).await {
                Ok(0) => {}
                Ok(n) => log::info!("reminders: {n} mailed"),
                Err(e) => log::warn!("reminders: {e}"),
            }
            actix_web::rt::time::sleep(every).await;
        }
    });
}
