//! Reminders before an activation window closes, on PostgreSQL: the schedule's
//! rows written with the mint, read when due, settled in one transaction.

use super::{exec, latest_key, load_license, rows, Db, Write};
use crate::domain::license::NewLicense;
use crate::domain::mail::Locale;
use crate::domain::reminder::due_at;
use crate::domain::time::Timestamp;
use crate::storage::reminders::{DueReminder, Settled, SettledReminder};
use crate::storage::StorageError;

/// Schedules the reminders of a license minted now (sent with the commit, after
/// the license's row).
pub(super) fn schedule(w: &mut Write<'_>, new: &NewLicense) {
    let (Some(plan), Some(deadline)) = (&new.reminders, new.license.activate_by) else {
        return;
    };
    for &days in &plan.days {
        w.later(
            "INSERT INTO reminders (license_id, days, due_at, locale) VALUES ($1, $2, $3, $4)
             ON CONFLICT (license_id, days) DO NOTHING",
            vec![
                Box::new(new.license.id.clone()),
                Box::new(i64::from(days)),
                Box::new(due_at(deadline, days).timestamp()),
                Box::new(plan.locale.as_str()),
            ],
        );
    }
}

/// Up to `limit` reminders due at `now`, the earliest first.
pub(super) async fn due<C: Db + ?Sized>(
    c: &C,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DueReminder>, StorageError> {
    let found = rows(
        c,
        "SELECT r.license_id, r.days, r.locale, l.first_activated_at IS NOT NULL
         FROM reminders r JOIN licenses l ON l.id = r.license_id
         WHERE r.due_at <= $1 ORDER BY r.due_at, r.license_id, r.days LIMIT $2",
        &[&now.timestamp(), &i64::from(limit)],
    )
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for row in found {
        let id: String = row.try_get(0)?;
        let days: i64 = row.try_get(1)?;
        let locale: String = row.try_get(2)?;
        let license = load_license(c, &id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("reminder of {id}")))?;
        out.push(DueReminder {
            key: latest_key(c, &id).await?,
            license,
            activated: row.try_get(3)?,
            days: u32::try_from(days)
                .map_err(|_| StorageError::Corrupt(format!("reminder days {days}")))?,
            locale: Locale::parse(&locale).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Records what became of due reminders (see [`crate::storage::Storage::settle_reminders`]).
pub(super) async fn settle(
    w: &mut Write<'_>,
    settled: &[SettledReminder],
    now: Timestamp,
) -> Result<(), StorageError> {
    for s in settled {
        let days = i64::from(s.days);
        match &s.settled {
            Settled::Later(at) => {
                exec(
                    w,
                    "UPDATE reminders SET due_at = $3 WHERE license_id = $1 AND days = $2",
                    &[&s.license_id, &days, &at.timestamp()],
                )
                .await?;
            }
            Settled::Sent(_) | Settled::Dropped => {
                exec(
                    w,
                    "DELETE FROM reminders WHERE license_id = $1 AND days = $2",
                    &[&s.license_id, &days],
                )
                .await?;
            }
        }
        if let Settled::Sent(mail) = &s.settled {
            w.queue_mail(mail, now);
        }
    }
    Ok(())
}
