//! Activations in PostgreSQL: seats taken, refreshed, released and freed, and the
//! last-seen times validations leave behind. Seats are counted with the license
//! row locked (`FOR UPDATE OF licenses`), inside the transaction that inserts.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    exec, license_from_row, opt, require_license, rows, update_license_state, Write,
    LICENSE_COLUMNS, LICENSE_COLUMN_COUNT,
};
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
    seats_used: i64,
}

/// The license of a key (by its SHA-256), in one query; `lock` holds the license
/// row until the transaction ends.
async fn license_by_key<C: GenericClient>(
    c: &C,
    key_hash: &[u8; 32],
    lock: bool,
) -> Result<Option<KeyedLicense>, StorageError> {
    let sql = format!(
        "SELECT {LICENSE_COLUMNS}, first_presented_at, first_activated_at, seats_used
         FROM license_keys JOIN licenses ON licenses.id = license_keys.license_id
         WHERE license_keys.key_hash = $1{}",
        if lock { " FOR UPDATE OF licenses" } else { "" }
    );
    let Some(r) = opt(c, &sql, &[&key_hash.as_slice()]).await? else {
        return Ok(None);
    };
    Ok(Some(KeyedLicense {
        license: license_from_row(&r)?,
        first_presented: r.try_get(LICENSE_COLUMN_COUNT)?,
        first_activated: r.try_get(LICENSE_COLUMN_COUNT + 1)?,
        seats_used: r.try_get(LICENSE_COLUMN_COUNT + 2)?,
    }))
}

/// The license a key (by its SHA-256) belongs to.
pub(super) async fn license_of_key<C: GenericClient>(
    c: &C,
    key_hash: &[u8; 32],
) -> Result<Option<String>, StorageError> {
    Ok(opt(
        c,
        "SELECT license_id FROM license_keys WHERE key_hash = $1",
        &[&key_hash.as_slice()],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?)
}

const ACTIVATION_COLUMNS: &str =
    "id, license_id, fingerprint, name, platform, activated_at, last_seen, deactivated_at";

fn activation_from_row(r: &Row) -> Result<Activation, StorageError> {
    Ok(Activation {
        id: r.try_get(0)?,
        license_id: r.try_get(1)?,
        fingerprint: r.try_get(2)?,
        name: r.try_get(3)?,
        platform: r.try_get(4)?,
        activated_at: time::from_unix(r.try_get(5)?),
        last_seen: time::from_unix(r.try_get(6)?),
        deactivated_at: r.try_get::<_, Option<i64>>(7)?.map(time::from_unix),
    })
}

pub(super) async fn activate_one(
    w: &mut Write<'_>,
    req: &NewActivation,
    now: Timestamp,
) -> Result<ActivationOutcome, StorageError> {
    let Some(KeyedLicense {
        mut license,
        first_presented,
        first_activated,
        mut seats_used,
    }) = license_by_key(&w.tx, &req.key_hash, true).await?
    else {
        return Ok(ActivationOutcome::NotFound);
    };
    let license_id = license.id.clone();
    mark_presented(
        w,
        &license_id,
        first_presented.is_some(),
        PresentedBy::Activation,
        now,
    )
    .await?;
    if let Some(release) = req.policies.release(&license, now) {
        let released = rows(
            &w.tx,
            "UPDATE activations SET deactivated_at = $2, deactivated_by = $4
             WHERE license_id = $1 AND deactivated_at IS NULL AND last_seen <= $3
             RETURNING id",
            &[
                &license_id,
                &now.timestamp(),
                &release.last_seen_by.timestamp(),
                &DeactivatedBy::Released.as_str(),
            ],
        )
        .await?;
        // The order of a statement's RETURNING rows is not defined: by id, for a
        // chain that does not depend on the plan.
        let mut released: Vec<String> = released
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        released.sort();
        if !released.is_empty() {
            let freed = i64::try_from(released.len()).unwrap_or(i64::MAX);
            seats_used = (seats_used - freed).max(0);
            free_seats(w, &license_id, freed).await?;
        }
        for id in released {
            w.append(NewEvent::about(
                &license_id,
                now,
                Actor::System,
                release.event(&id),
            ))
            .await?;
        }
    }
    let fingerprint = req.fingerprint.as_str();
    let existing = opt(
        &w.tx,
        &format!(
            "SELECT {ACTIVATION_COLUMNS} FROM activations
             WHERE license_id = $1 AND fingerprint = $2 AND deactivated_at IS NULL"
        ),
        &[&license_id, &fingerprint],
    )
    .await?
    .as_ref()
    .map(activation_from_row)
    .transpose()?;
    let seats = SeatUse {
        active: u32::try_from(seats_used).unwrap_or(u32::MAX),
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
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event))
                .await?;
            return Ok(ActivationOutcome::Refused(refusal));
        }
        (ActivationPlan::Refresh { event }, Some(mut a)) => {
            exec(
                &w.tx,
                "UPDATE activations SET last_seen = $2 WHERE id = $1",
                &[&a.id, &now.timestamp()],
            )
            .await?;
            exec(
                &w.tx,
                "UPDATE licenses SET last_seen_at = $2 WHERE id = $1",
                &[&license_id, &now.timestamp()],
            )
            .await?;
            a.last_seen = now;
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event))
                .await?;
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
                update_license_state(w, &license).await?;
            }
            // The seat, the first activation (planned from the same locked row) and
            // the last-seen time in one statement.
            exec(
                &w.tx,
                "UPDATE licenses SET seats_used = seats_used + 1, last_seen_at = $2,
                     first_activated_at = CASE WHEN $3 THEN $2 ELSE first_activated_at END
                 WHERE id = $1",
                &[&license_id, &now.timestamp(), &first_activation],
            )
            .await?;
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
            exec(
                &w.tx,
                &format!(
                    "INSERT INTO activations ({ACTIVATION_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
                ),
                &[
                    &a.id,
                    &a.license_id,
                    &a.fingerprint,
                    &a.name,
                    &a.platform,
                    &now.timestamp(),
                    &now.timestamp(),
                ],
            )
            .await?;
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event))
                .await?;
            (a, true)
        }
    };
    Ok(ActivationOutcome::Granted {
        license: Box::new(license),
        activation: Box::new(activation),
        created,
    })
}

/// Records the first time a key is presented; nothing if it was presented before
/// (the update is conditional, so two presentations at once write one event).
/// Gives `n` seats of a license back (its machines were deactivated or released).
async fn free_seats(w: &Write<'_>, license_id: &str, n: i64) -> Result<(), StorageError> {
    exec(
        &w.tx,
        "UPDATE licenses SET seats_used = GREATEST(seats_used - $2, 0) WHERE id = $1",
        &[&license_id, &n],
    )
    .await?;
    Ok(())
}

pub(super) async fn mark_presented(
    w: &mut Write<'_>,
    license_id: &str,
    presented_before: bool,
    by: PresentedBy,
    now: Timestamp,
) -> Result<(), StorageError> {
    let Some(event) = first_presentation(presented_before, by) else {
        return Ok(());
    };
    let changed = exec(
        &w.tx,
        "UPDATE licenses SET first_presented_at = $2
         WHERE id = $1 AND first_presented_at IS NULL",
        &[&license_id, &now.timestamp()],
    )
    .await?;
    if changed == 1 {
        w.append(NewEvent::about(license_id, now, Actor::LicenseKey, event))
            .await?;
    }
    Ok(())
}

/// Frees a seat, for the customer (within the churn limit) or for support.
pub(super) async fn deactivate_one(
    w: &mut Write<'_>,
    req: &Deactivation,
    now: Timestamp,
) -> Result<DeactivationOutcome, StorageError> {
    let found = opt(
        &w.tx,
        &format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE id = $1"),
        &[&req.activation_id],
    )
    .await?;
    let Some(mut activation) = found.as_ref().map(activation_from_row).transpose()? else {
        return Ok(DeactivationOutcome::NotFound);
    };
    let license = require_license(w, &activation.license_id).await?;
    let (by, recent) = match &req.by {
        Deactivator::Customer(key_hash) => {
            let recent: Vec<Timestamp> = rows(
                &w.tx,
                "SELECT deactivated_at FROM activations
                 WHERE license_id = $1 AND deactivated_by = $3 AND deactivated_at > $2
                 ORDER BY deactivated_at",
                &[
                    &license.id,
                    &churn_window_start(now).timestamp(),
                    &DeactivatedBy::Customer.as_str(),
                ],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0).map(time::from_unix))
            .collect::<Result<_, _>>()?;
            let key_license = license_of_key(&w.tx, key_hash).await?;
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
            w.append(NewEvent::about(&license.id, now, Actor::LicenseKey, event))
                .await?;
            Ok(DeactivationOutcome::LimitReached(free_at))
        }
        DeactivationPlan::Free { by, actor } => {
            exec(
                &w.tx,
                "UPDATE activations SET deactivated_at = $2, deactivated_by = $3 WHERE id = $1",
                &[&activation.id, &now.timestamp(), &by.as_str()],
            )
            .await?;
            free_seats(w, &license.id, 1).await?;
            activation.deactivated_at = Some(now);
            let event = DeactivationPlan::freed_event(&machine, by, req.reason.clone());
            w.append(NewEvent::about(&license.id, now, actor, event))
                .await?;
            Ok(DeactivationOutcome::Deactivated {
                activation: Box::new(activation),
                already: false,
            })
        }
    }
}

/// What a validation needs to know about a key: read-only.
pub(super) async fn key_facts<C: GenericClient>(
    c: &C,
    key_hash: &[u8; 32],
    fingerprint: Option<&str>,
) -> Result<Option<KeyFacts>, StorageError> {
    let Some(KeyedLicense {
        license,
        first_presented,
        first_activated,
        ..
    }) = license_by_key(c, key_hash, false).await?
    else {
        return Ok(None);
    };
    let activation_id = match fingerprint {
        Some(f) => opt(
            c,
            "SELECT id FROM activations
             WHERE license_id = $1 AND fingerprint = $2 AND deactivated_at IS NULL",
            &[&license.id, &f],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?,
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
pub(super) async fn list<C: GenericClient>(
    c: &C,
    license_id: &str,
) -> Result<Vec<Activation>, StorageError> {
    rows(
        c,
        &format!(
            "SELECT {ACTIVATION_COLUMNS} FROM activations WHERE license_id = $1
             ORDER BY activated_at DESC, id DESC"
        ),
        &[&license_id],
    )
    .await?
    .iter()
    .map(activation_from_row)
    .collect()
}

/// Writes last-seen times; a time already stored later is kept (`GREATEST`), so a
/// batch written late never moves one backwards.
pub(super) async fn record_last_seen(w: &mut Write<'_>, p: &SeenTimes) -> Result<(), StorageError> {
    for (id, at) in &p.licenses {
        exec(
            &w.tx,
            "UPDATE licenses SET last_seen_at = GREATEST(coalesce(last_seen_at, 0), $2)
             WHERE id = $1",
            &[id, &at.timestamp()],
        )
        .await?;
    }
    for (id, at) in &p.activations {
        exec(
            &w.tx,
            "UPDATE activations SET last_seen = GREATEST(last_seen, $2) WHERE id = $1",
            &[id, &at.timestamp()],
        )
        .await?;
    }
    Ok(())
}
