//! Reminders before an activation window closes, on SQLite: the schedule's rows
//! written with the mint, read when due, settled in one writer job.

use rusqlite::{params, Connection};

use super::writer::WriteCtx;
use super::{latest_key, load_license};
use crate::domain::license::NewLicense;
use crate::domain::mail::Locale;
use crate::domain::reminder::due_at;
use crate::domain::time::Timestamp;
use crate::storage::reminders::{DueReminder, Settled, SettledReminder};
use crate::storage::StorageError;

/// Schedules the reminders of a license minted now.
pub(super) fn schedule(ctx: &mut WriteCtx<'_>, new: &NewLicense) -> Result<(), StorageError> {
    let (Some(plan), Some(deadline)) = (&new.reminders, new.license.activate_by) else {
        return Ok(());
    };
    let mut stmt = ctx.conn.prepare_cached(
        "INSERT INTO reminders (license_id, days, due_at, locale) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (license_id, days) DO NOTHING",
    )?;
    for &days in &plan.days {
        stmt.execute(params![
            new.license.id,
            days,
            due_at(deadline, days).timestamp(),
            plan.locale.as_str()
        ])?;
    }
    Ok(())
}

/// Up to `limit` reminders due at `now`, the earliest first.
pub(super) fn due(
    conn: &Connection,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DueReminder>, StorageError> {
    let rows: Vec<(String, u32, String, bool)> = conn
        .prepare_cached(
            "SELECT r.license_id, r.days, r.locale, l.first_activated_at IS NOT NULL
             FROM reminders r JOIN licenses l ON l.id = r.license_id
             WHERE r.due_at <= ?1 ORDER BY r.due_at, r.license_id, r.days LIMIT ?2",
        )?
        .query_map(params![now.timestamp(), limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, days, locale, activated) in rows {
        let license = load_license(conn, &id)?
            .ok_or_else(|| StorageError::Corrupt(format!("reminder of {id}")))?;
        out.push(DueReminder {
            key: latest_key(conn, &id)?,
            license,
            activated,
            days,
            locale: Locale::parse(&locale).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Records what became of due reminders (see [`crate::storage::Storage::settle_reminders`]).
pub(super) fn settle(
    ctx: &mut WriteCtx<'_>,
    settled: &[SettledReminder],
    now: Timestamp,
) -> Result<(), StorageError> {
    for s in settled {
        match &s.settled {
            Settled::Later(at) => {
                ctx.conn
                    .prepare_cached(
                        "UPDATE reminders SET due_at = ?3 WHERE license_id = ?1 AND days = ?2",
                    )?
                    .execute(params![s.license_id, s.days, at.timestamp()])?;
            }
            Settled::Sent(_) | Settled::Dropped => {
                ctx.conn
                    .prepare_cached("DELETE FROM reminders WHERE license_id = ?1 AND days = ?2")?
                    .execute(params![s.license_id, s.days])?;
            }
        }
        if let Settled::Sent(mail) = &s.settled {
            ctx.queue_mail(mail, now)?;
        }
    }
    Ok(())
}
