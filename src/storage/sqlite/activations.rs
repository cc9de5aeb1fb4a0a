//! Activations in SQLite: seats taken, refreshed, released and freed, and the
//! last-seen times validations leave behind.

use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use super::{license_from_row, require_license, update_license_state, LICENSE_COLUMNS};
use crate::domain::activation::{
    churn_window_start, first_presentation, ActivationPlan, DeactivationBy, DeactivationPlan,
    SeatUse,
};
use crate::domain::audit::{Actor, DeactivatedBy, NewEvent, PresentedBy};
use crate::domain::license::License;
use crate::domain::time::{self, Timestamp};
use crate::storage::activation::{
    Activation, ActivationOutcome, Deactivation, DeactivationOutcome, Deactivator, KeyFacts,
    NewActivation,
};
use crate::storage::last_seen::SeenTimes;
use crate::storage::StorageError;

/// A key's license with its first presentation and first activation times and
/// the seats its machines hold.
struct KeyedLicense {
    license: License,
    first_presented: Option<i64>,
    first_activated: Option<i64>,
    seats_used: u32,
}

/// The license of a key (by its SHA-256), in one query: the hot path of every
/// activation and validation.
fn license_by_key(
    conn: &Connection,
    key_hash: &[u8; 32],
) -> Result<Option<KeyedLicense>, StorageError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {LICENSE_COLUMNS}, first_presented_at, first_activated_at, seats_used
             FROM license_keys JOIN licenses ON licenses.id = license_keys.license_id
             WHERE license_keys.key_hash = ?1"
        )
    });
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row([&key_hash[..]], |r| {
            Ok(KeyedLicense {
                license: license_from_row(r)?,
                first_presented: r.get(LICENSE_COLUMN_COUNT)?,
                first_activated: r.get(LICENSE_COLUMN_COUNT + 1)?,
                seats_used: r.get(LICENSE_COLUMN_COUNT + 2)?,
            })
        })
        .optional()?)
}

/// Columns in [`LICENSE_COLUMNS`] (a test keeps the two in step).
const LICENSE_COLUMN_COUNT: usize = 23;

/// The license a key (by its SHA-256) belongs to.
pub(super) fn license_of_key(
    conn: &Connection,
    key_hash: &[u8; 32],
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT license_id FROM license_keys WHERE key_hash = ?1")?
        .query_row([&key_hash[..]], |r| r.get(0))
        .optional()
}

fn load_activation(conn: &Connection, id: &str) -> rusqlite::Result<Option<Activation>> {
    conn.prepare_cached(&format!(
        "SELECT {ACTIVATION_COLUMNS} FROM activations WHERE id = ?1"
    ))?
    .query_row([id], activation_from_row)
    .optional()
}

const ACTIVATION_COLUMNS: &str =
    "id, license_id, fingerprint, name, platform, activated_at, last_seen, deactivated_at";

fn activation_from_row(r: &Row<'_>) -> rusqlite::Result<Activation> {
    Ok(Activation {
        id: r.get(0)?,
        license_id: r.get(1)?,
        fingerprint: r.get(2)?,
        name: r.get(3)?,
        platform: r.get(4)?,
        activated_at: time::from_unix(r.get(5)?),
        last_seen: time::from_unix(r.get(6)?),
        deactivated_at: r.get::<_, Option<i64>>(7)?.map(time::from_unix),
    })
}

pub(super) fn activate_one(
    ctx: &mut WriteCtx<'_>,
    req: &NewActivation,
    now: Timestamp,
) -> Result<ActivationOutcome, StorageError> {
    let Some(KeyedLicense {
        mut license,
        first_presented,
        first_activated,
        mut seats_used,
    }) = license_by_key(ctx.conn, &req.key_hash)?
    else {
        return Ok(ActivationOutcome::NotFound);
    };
    let license_id = license.id.clone();
    mark_presented(
        ctx,
        &license_id,
        first_presented.is_some(),
        PresentedBy::Activation,
        now,
    )?;
    if let Some(release) = req.policies.release(&license, now) {
        let released: Vec<String> = ctx
            .conn
            .prepare_cached(
                "UPDATE activations SET deactivated_at = ?2, deactivated_by = ?4
                 WHERE license_id = ?1 AND deactivated_at IS NULL AND last_seen <= ?3
                 RETURNING id",
            )?
            .query_map(
                params![
                    license_id,
                    now.timestamp(),
                    release.last_seen_by.timestamp(),
                    DeactivatedBy::Released.as_str()
                ],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        if !released.is_empty() {
            // At most the seats held: the count cannot go below zero.
            let freed = u32::try_from(released.len()).unwrap_or(u32::MAX);
            seats_used = seats_used.saturating_sub(freed);
            free_seats(ctx, &license_id, freed)?;
        }
        for id in released {
            ctx.append(NewEvent::about(
                &license_id,
                now,
                Actor::System,
                release.event(&id),
            ))?;
        }
    }
    let fingerprint = req.fingerprint.as_str();
    let existing: Option<Activation> = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT {ACTIVATION_COLUMNS} FROM activations
             WHERE license_id = ?1 AND fingerprint = ?2 AND deactivated_at IS NULL"
        ))?
        .query_row(params![license_id, fingerprint], activation_from_row)
        .optional()?;
    let seats = SeatUse {
        active: seats_used,
        this_machine_holds_one: existing.is_some(),
        ever_activated: first_activated.is_some(),
    };
    let plan = license.plan_activation(
        seats,
        &req.fingerprint,
        existing.as_ref().map(|a| a.id.as_str()),
        &req.id,
        now,
    );
    let (activation, created) = match (plan, existing) {
        (ActivationPlan::Refused { refusal, event }, _) => {
            ctx.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event))?;
            return Ok(ActivationOutcome::Refused(refusal));
        }
        (ActivationPlan::Refresh { event }, Some(mut a)) => {
            ctx.conn
                .prepare_cached("UPDATE activations SET last_seen = ?2 WHERE id = ?1")?
                .execute(params![a.id, now.timestamp()])?;
            ctx.conn
                .prepare_cached("UPDATE licenses SET last_seen_at = ?2 WHERE id = ?1")?
                .execute(params![license_id, now.timestamp()])?;
            a.last_seen = now;
            ctx.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event))?;
            (a, false)
        }
        (ActivationPlan::Refresh { .. }, None) => {
            return Err(StorageError::Corrupt(
                "a refresh was planned for a machine without a seat".into(),
            ))
        }
        (
            ActivationPlan::NewSeat {
                starts_expiry,
                first_activation,
                event,
            },
            _,
        ) => {
            if let Some(expires) = starts_expiry {
                license.expires_at = Some(expires);
                license.updated_at = now;
                update_license_state(ctx, &license)?;
            }
            // The seat, the first activation (planned from the same row) and the
            // last-seen time in one statement.
            ctx.conn
                .prepare_cached(
                    "UPDATE licenses SET seats_used = seats_used + 1, last_seen_at = ?2,
                         first_activated_at = CASE WHEN ?3 THEN ?2 ELSE first_activated_at END
                     WHERE id = ?1",
                )?
                .execute(params![license_id, now.timestamp(), first_activation])?;
            let a = Activation {
                id: req.id.clone(),
                license_id: license_id.clone(),
                fingerprint: fingerprint.to_owned(),
                name: req.name.clone(),
                platform: req.platform.clone(),
                activated_at: now,
                last_seen: now,
                deactivated_at: None,
            };
            ctx.conn
                .prepare_cached(&format!(
                    "INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"
                ))?
                .execute(params![
                    a.id,
                    a.license_id,
                    a.fingerprint,
                    a.name,
                    a.platform,
                    now.timestamp(),
                    now.timestamp()
                ])?;
            ctx.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event))?;
            (a, true)
        }
    };
    Ok(ActivationOutcome::Granted {
        license: Box::new(license),
        activation: Box::new(activation),
        created,
    })
}

/// Gives `n` seats of a license back (its machines were deactivated or released).
fn free_seats(ctx: &WriteCtx<'_>, license_id: &str, n: u32) -> Result<(), StorageError> {
    ctx.conn
        .prepare_cached("UPDATE licenses SET seats_used = max(seats_used - ?2, 0) WHERE id = ?1")?
        .execute(params![license_id, n])?;
    Ok(())
}

/// Records the first time a key is presented; nothing if it was presented before
/// (the update is conditional, so two presentations at once write one event).
pub(super) fn mark_presented(
    ctx: &mut WriteCtx<'_>,
    license_id: &str,
    presented_before: bool,
    by: PresentedBy,
    now: Timestamp,
) -> Result<(), StorageError> {
    let Some(event) = first_presentation(presented_before, by) else {
        return Ok(());
    };
    let changed = ctx
        .conn
        .prepare_cached(
            "UPDATE licenses SET first_presented_at = ?2
             WHERE id = ?1 AND first_presented_at IS NULL",
        )?
        .execute(params![license_id, now.timestamp()])?;
    if changed == 1 {
        ctx.append(NewEvent::about(license_id, now, Actor::LicenseKey, event))?;
    }
    Ok(())
}

/// Frees a seat, for the customer (within the churn limit) or for support.
pub(super) fn deactivate_one(
    ctx: &mut WriteCtx<'_>,
    req: &Deactivation,
    now: Timestamp,
) -> Result<DeactivationOutcome, StorageError> {
    let Some(mut activation) = load_activation(ctx.conn, &req.activation_id)? else {
        return Ok(DeactivationOutcome::NotFound);
    };
    let license = require_license(ctx, &activation.license_id)?;
    let (by, recent) = match &req.by {
        Deactivator::Customer(key_hash) => {
            let recent: Vec<Timestamp> = ctx
                .conn
                .prepare_cached(
                    "SELECT deactivated_at FROM activations
                     WHERE license_id = ?1 AND deactivated_by = ?3 AND deactivated_at > ?2
                     ORDER BY deactivated_at",
                )?
                .query_map(
                    params![
                        license.id,
                        churn_window_start(now).timestamp(),
                        DeactivatedBy::Customer.as_str()
                    ],
                    |r| r.get(0).map(time::from_unix),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let key_license = license_of_key(ctx.conn, key_hash)?;
            (DeactivationBy::Customer { key_license }, recent)
        }
        Deactivator::Support(actor) => (DeactivationBy::Support(actor.clone()), Vec::new()),
    };
    let machine = activation.machine();
    match req
        .policies
        .deactivation(&license, &machine, &by, &recent, now)
    {
        DeactivationPlan::NotFound => Ok(DeactivationOutcome::NotFound),
        DeactivationPlan::Already => Ok(DeactivationOutcome::Deactivated {
            activation: Box::new(activation),
            already: true,
        }),
        DeactivationPlan::Refused { free_at, event } => {
            ctx.append(NewEvent::about(&license.id, now, Actor::LicenseKey, event))?;
            Ok(DeactivationOutcome::LimitReached(free_at))
        }
        DeactivationPlan::Free { by, actor } => {
            ctx.conn
                .prepare_cached(
                    "UPDATE activations SET deactivated_at = ?2, deactivated_by = ?3 WHERE id = ?1",
                )?
                .execute(params![activation.id, now.timestamp(), by.as_str()])?;
            free_seats(ctx, &license.id, 1)?;
            activation.deactivated_at = Some(now);
            let event = DeactivationPlan::freed_event(&machine, by, req.reason.clone());
            ctx.append(NewEvent::about(&license.id, now, actor, event))?;
            Ok(DeactivationOutcome::Deactivated {
                activation: Box::new(activation),
                already: false,
            })
        }
    }
}

/// What a validation needs to know about a key: read-only.
pub(super) fn key_facts(
    conn: &Connection,
    key_hash: &[u8; 32],
    fingerprint: Option<&str>,
) -> Result<Option<KeyFacts>, StorageError> {
    let Some(KeyedLicense {
        license,
        first_presented,
        first_activated,
        ..
    }) = license_by_key(conn, key_hash)?
    else {
        return Ok(None);
    };
    let license_id = &license.id;
    let activation_id = match fingerprint {
        Some(f) => conn
            .prepare_cached(
                "SELECT id FROM activations
                 WHERE license_id = ?1 AND fingerprint = ?2 AND deactivated_at IS NULL",
            )?
            .query_row(params![license_id, f], |r| r.get(0))
            .optional()?,
        None => None,
    };
    Ok(Some(KeyFacts {
        license,
        ever_activated: first_activated.is_some(),
        presented_before: first_presented.is_some(),
        activation_id,
    }))
}

/// Every activation of a license, newest first.
pub(super) fn list(conn: &Connection, license_id: &str) -> Result<Vec<Activation>, StorageError> {
    // Live and freed machines are indexed apart (`activations_live` and
    // `activations_unseen`, `activations_freed`): one branch each.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ACTIVATION_COLUMNS} FROM activations
         WHERE license_id = ?1 AND deactivated_at IS NULL
         UNION ALL
         SELECT {ACTIVATION_COLUMNS} FROM activations
         WHERE license_id = ?1 AND deactivated_at IS NOT NULL
         ORDER BY activated_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([license_id], activation_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Writes last-seen times; a time already stored later is kept (`max`), so a
/// batch written late never moves one backwards.
pub(super) fn record_last_seen(ctx: &WriteCtx<'_>, p: &SeenTimes) -> Result<(), StorageError> {
    let mut lic = ctx.conn.prepare_cached(
        "UPDATE licenses SET last_seen_at = max(coalesce(last_seen_at, 0), ?2) WHERE id = ?1",
    )?;
    for (id, at) in &p.licenses {
        lic.execute(params![id, at.timestamp()])?;
    }
    let mut act = ctx
        .conn
        .prepare_cached("UPDATE activations SET last_seen = max(last_seen, ?2) WHERE id = ?1")?;
    for (id, at) in &p.activations {
        act.execute(params![id, at.timestamp()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::plan_for_tests as plan;

    /// What an activation, a refresh, a deactivation, a release and a validation
    /// read goes through an index keyed by the license: never a scan of its machines.
    #[test]
    fn every_read_of_a_license_s_machines_goes_through_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate_for_tests(&mut conn);
        let cases = [
            (
                "SELECT id FROM activations
                 WHERE license_id = ?1 AND fingerprint = ?2 AND deactivated_at IS NULL",
                "activations_live",
            ),
            (
                "UPDATE activations SET deactivated_at = ?2, deactivated_by = ?4
                 WHERE license_id = ?1 AND deactivated_at IS NULL AND last_seen <= ?3",
                "activations_unseen",
            ),
            (
                "SELECT deactivated_at FROM activations
                 WHERE license_id = ?1 AND deactivated_by = ?3 AND deactivated_at > ?2
                 ORDER BY deactivated_at",
                "activations_freed",
            ),
        ];
        for (sql, index) in cases {
            let plan = plan(&conn, sql);
            assert!(
                plan.contains(&format!("USING INDEX {index}")),
                "{sql}: {plan}"
            );
        }
        let listed = plan(
            &conn,
            &format!(
                "SELECT {cols} FROM activations WHERE license_id = ?1 AND deactivated_at IS NULL
                 UNION ALL SELECT {cols} FROM activations
                 WHERE license_id = ?1 AND deactivated_at IS NOT NULL",
                cols = super::ACTIVATION_COLUMNS
            ),
        );
        // The live branch may take either index of live machines.
        assert!(listed.contains("activations_freed"), "{listed}");
        assert!(!listed.contains("SCAN activations"), "{listed}");
    }

    /// The evidence of a late claim reads a license's events of its four kinds
    /// through the partial index `events_evidence` (license, kind, seq), for every
    /// kind it names: never a walk over every event of the license (a site license's
    /// activations among them). Other events write no entry there.
    #[test]
    fn the_evidence_reads_events_by_kind_through_an_index() {
        use crate::domain::grace::EvidenceEvents;
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate_for_tests(&mut conn);
        let kinds = super::super::evidence_kinds("kind");
        for sql in super::super::EVIDENCE_SQL.iter() {
            let plan = plan(&conn, sql);
            assert!(
                plan.contains("INDEX events_evidence (license_id=? AND kind=?)"),
                "{sql}: {plan}"
            );
        }
        assert_eq!(
            super::super::EVIDENCE_SQL.len(),
            EvidenceEvents::FIRST_OF.len() + EvidenceEvents::ALL_OF.len()
        );
        // The index holds exactly the kinds the evidence reads.
        let index_sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'events_evidence'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        for kind in EvidenceEvents::FIRST_OF
            .iter()
            .chain(&EvidenceEvents::ALL_OF)
        {
            assert!(
                index_sql.contains(&format!("'{kind}'")),
                "{kind}: {index_sql}"
            );
        }
        let named = EvidenceEvents::FIRST_OF.len() + EvidenceEvents::ALL_OF.len();
        assert_eq!(index_sql.matches('\'').count(), 2 * named, "{index_sql}");
        // An event of another kind writes no entry in it.
        conn.execute_batch(
            "INSERT INTO events (seq, at, actor, kind, license_id, data, hash)
             VALUES (1, 0, '{}', 'license_minted', 'lic_1', '{}', x'00'),
                    (2, 0, '{}', 'activation_created', 'lic_1', '{}', x'00')",
        )
        .unwrap();
        let entries: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM events INDEXED BY events_evidence WHERE {kinds}"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 1);
    }

    /// Reading the evidence of one license after another never makes SQLite
    /// prepare its statements again (a parameter where the partial index names
    /// values did, on every query: see `EVIDENCE_SQL`).
    #[test]
    fn the_evidence_s_statements_are_not_prepared_again() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate_for_tests(&mut conn);
        for license in ["lic_1", "lic_2", "lic_3", "lic_1"] {
            let events = super::super::evidence_events(&conn, license).unwrap();
            assert!(events.is_empty());
        }
        for sql in super::super::EVIDENCE_SQL.iter() {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    #[test]
    fn the_column_count_is_the_count_of_license_columns() {
        assert_eq!(
            super::LICENSE_COLUMN_COUNT,
            super::LICENSE_COLUMNS.split(',').count()
        );
    }
}
