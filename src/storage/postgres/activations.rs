//! Activations in PostgreSQL: seats taken, refreshed, released and freed, and the
//! last-seen times validations leave behind. The seats in use are kept on the
//! license row (`seats_used`), changed with it locked (`FOR UPDATE OF licenses`) in
//! the transaction that takes or frees them.

use tokio_postgres::Row;

use super::{
    exec, license_from_row, one, opt, rows, Db, Write, LICENSE_COLUMNS, LICENSE_COLUMN_COUNT,
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
use crate::storage::rows::price_columns;
use crate::storage::StorageError;

/// A key's license with its first presentation and first activation times and
/// the seats its machines hold.
struct KeyedLicense {
    license: License,
    first_presented: Option<i64>,
    first_activated: Option<i64>,
    seats_used: i64,
}

/// The license of a key (by its SHA-256), in one query, its row locked until the
/// transaction ends.
async fn license_by_key(
    w: &Write<'_>,
    key_hash: &[u8; 32],
) -> Result<Option<KeyedLicense>, StorageError> {
    let Some(r) = opt(
        w,
        &format!(
            "SELECT {LICENSE_COLUMNS}, first_presented_at, first_activated_at, seats_used
             FROM license_keys JOIN licenses ON licenses.id = license_keys.license_id
             WHERE license_keys.key_hash = $1 FOR UPDATE OF licenses"
        ),
        &[&key_hash.as_slice()],
    )
    .await?
    else {
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
pub(super) async fn license_of_key<C: Db + ?Sized>(
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

/// Takes a seat, refreshes one or refuses. The license row is locked first
/// (`FOR UPDATE OF licenses`) and holds the seats in use (`seats_used`, changed in
/// the transaction of every seat taken or freed), so seats are taken inside one
/// transaction per license at a time, across instances.
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
    }) = license_by_key(w, &req.key_hash).await?
    else {
        return Ok(ActivationOutcome::NotFound);
    };
    let license_id = license.id.clone();
    // The row is locked: nobody else marks it presented before this commits.
    let presented_now =
        first_presentation(first_presented.is_some(), PresentedBy::Activation).map(|event| {
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event));
            now.timestamp()
        });
    if let Some(release) = req.policies.release(&license, now) {
        let released = rows(
            w,
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
            free_seats(w, &license_id, freed);
        }
        for id in released {
            w.append(NewEvent::about(
                &license_id,
                now,
                Actor::System,
                release.event(&id),
            ));
        }
    }
    let fingerprint = req.fingerprint.as_str();
    // The seats held are kept on the license row (locked above), in the same
    // transaction as every seat taken or freed: no count that grows with them.
    let existing = opt(
        w,
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
    let (activation, created, first_activation) = match (plan, existing) {
        (ActivationPlan::Refused { refusal, event }, _) => {
            if let Some(at) = presented_now {
                w.later(
                    "UPDATE licenses SET first_presented_at = $2 WHERE id = $1",
                    vec![Box::new(license_id.clone()), Box::new(at)],
                );
            }
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event));
            return Ok(ActivationOutcome::Refused(refusal));
        }
        (ActivationPlan::Refresh { event }, Some(mut a)) => {
            a.last_seen = now;
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event));
            (a, false, false)
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
            }
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
            w.append(NewEvent::about(&license_id, now, Actor::LicenseKey, event));
            (a, true, first_activation)
        }
    };
    // One statement for the seat and the license, sent with the commit.
    let (due_amount, due_currency) = price_columns(license.amount_due.as_ref());
    let (seat_sql, seat_params): (String, Vec<super::Owned>) = if created {
        (
            format!(
                "WITH seat AS (INSERT INTO activations ({ACTIVATION_COLUMNS})
                     VALUES ($14, $1, $15, $16, $17, $12, $12, NULL))"
            ),
            vec![
                Box::new(activation.id.clone()),
                Box::new(activation.fingerprint.clone()),
                Box::new(activation.name.clone()),
                Box::new(activation.platform.clone()),
            ],
        )
    } else {
        (
            "WITH seat AS (UPDATE activations SET last_seen = $12 WHERE id = $14)".to_owned(),
            vec![Box::new(activation.id.clone())],
        )
    };
    let mut params: Vec<super::Owned> = vec![
        Box::new(license_id.clone()),
        Box::new(license.status.as_str().to_owned()),
        Box::new(license.expires_at.map(|t| t.timestamp())),
        Box::new(i64::from(license.extra_days)),
        Box::new(license.updated_at.timestamp()),
        Box::new(license.activate_by.map(|t| t.timestamp())),
        Box::new(license.superseded_by.clone()),
        Box::new(due_amount),
        Box::new(due_currency.map(str::to_owned)),
        Box::new(presented_now),
        Box::new(first_activation.then_some(now.timestamp())),
        Box::new(now.timestamp()),
        Box::new(i64::from(created)),
    ];
    params.extend(seat_params);
    w.later(
        format!(
            "{seat_sql}
             UPDATE licenses SET status = $2, expires_at = $3, extra_days = $4, updated_at = $5,
                 activate_by = $6, superseded_by = $7, due_amount = $8, due_currency = $9,
                 first_presented_at = coalesce(first_presented_at, $10),
                 first_activated_at = coalesce(first_activated_at, $11), last_seen_at = $12,
                 seats_used = seats_used + $13
             WHERE id = $1"
        ),
        params,
    );
    Ok(ActivationOutcome::Granted {
        license: Box::new(license),
        activation: Box::new(activation),
        created,
    })
}

/// Gives `n` seats of a license back (its machines were deactivated or released),
/// sent with the commit.
fn free_seats(w: &mut Write<'_>, license_id: &str, n: i64) {
    w.later(
        "UPDATE licenses SET seats_used = GREATEST(seats_used - $2, 0) WHERE id = $1",
        vec![Box::new(license_id.to_owned()), Box::new(n)],
    );
}

/// Records the first time a key is presented; nothing if it was presented before
/// (the update is conditional, so two presentations at once write one event).
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
        w,
        "UPDATE licenses SET first_presented_at = $2
         WHERE id = $1 AND first_presented_at IS NULL",
        &[&license_id, &now.timestamp()],
    )
    .await?;
    if changed == 1 {
        w.append(NewEvent::about(license_id, now, Actor::LicenseKey, event));
    }
    Ok(())
}

/// Frees a seat, for the customer (within the churn limit) or for support.
pub(super) async fn deactivate_one(
    w: &mut Write<'_>,
    req: &Deactivation,
    now: Timestamp,
) -> Result<DeactivationOutcome, StorageError> {
    // The license first (an activation never changes license), then the activation
    // as it is once the lock is held: a deactivation of it that committed in the
    // meantime is seen.
    let locked = opt(
        w,
        &format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses
             WHERE id = (SELECT license_id FROM activations WHERE id = $1) FOR UPDATE"
        ),
        &[&req.activation_id],
    )
    .await?;
    let Some(license) = locked.as_ref().map(license_from_row).transpose()? else {
        return Ok(DeactivationOutcome::NotFound);
    };
    let found = one(
        w,
        &format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE id = $1"),
        &[&req.activation_id],
    )
    .await?;
    let mut activation = activation_from_row(&found)?;
    let (by, recent) = match &req.by {
        Deactivator::Customer(key_hash) => {
            let recent: Vec<Timestamp> = rows(
                w,
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
            let key_license = license_of_key(w, key_hash).await?;
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
            w.append(NewEvent::about(&license.id, now, Actor::LicenseKey, event));
            Ok(DeactivationOutcome::LimitReached(free_at))
        }
        DeactivationPlan::Free { by, actor } => {
            w.later(
                "UPDATE activations SET deactivated_at = $2, deactivated_by = $3 WHERE id = $1",
                vec![
                    Box::new(activation.id.clone()),
                    Box::new(now.timestamp()),
                    Box::new(by.as_str().to_owned()),
                ],
            );
            free_seats(w, &license.id, 1);
            activation.deactivated_at = Some(now);
            let event = DeactivationPlan::freed_event(&machine, by, req.reason.clone());
            w.append(NewEvent::about(&license.id, now, actor, event));
            Ok(DeactivationOutcome::Deactivated {
                activation: Box::new(activation),
                already: false,
            })
        }
    }
}

/// What a validation needs to know about a key: read-only, one statement.
pub(super) async fn key_facts<C: Db + ?Sized>(
    c: &C,
    key_hash: &[u8; 32],
    fingerprint: Option<&str>,
) -> Result<Option<KeyFacts>, StorageError> {
    let found = opt(
        c,
        &format!(
            "SELECT {LICENSE_COLUMNS}, first_presented_at, first_activated_at, activations.id
             FROM license_keys JOIN licenses ON licenses.id = license_keys.license_id
             LEFT JOIN activations ON activations.license_id = licenses.id
                 AND activations.fingerprint = $2 AND activations.deactivated_at IS NULL
             WHERE license_keys.key_hash = $1"
        ),
        &[&key_hash.as_slice(), &fingerprint],
    )
    .await?;
    let Some(r) = found else {
        return Ok(None);
    };
    Ok(Some(KeyFacts {
        license: license_from_row(&r)?,
        presented_before: r.try_get::<_, Option<i64>>(LICENSE_COLUMN_COUNT)?.is_some(),
        ever_activated: r
            .try_get::<_, Option<i64>>(LICENSE_COLUMN_COUNT + 1)?
            .is_some(),
        activation_id: r.try_get(LICENSE_COLUMN_COUNT + 2)?,
    }))
}

/// Every activation of a license, newest first.
pub(super) async fn list<C: Db + ?Sized>(
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

/// Writes last-seen times, the licenses' and then the machines', each in one
/// statement; a time already stored later is kept (`GREATEST`), so a batch written
/// late never moves one backwards. Rows are taken in id order (the writers of two
/// instances lock them in the same order) and no event is written: this never
/// waits for the head of the chain.
pub(super) async fn record_last_seen(w: &mut Write<'_>, p: &SeenTimes) -> Result<(), StorageError> {
    fn columns(seen: &std::collections::HashMap<String, Timestamp>) -> (Vec<&str>, Vec<i64>) {
        let mut sorted: Vec<(&str, i64)> = seen
            .iter()
            .map(|(id, at)| (id.as_str(), at.timestamp()))
            .collect();
        sorted.sort_unstable();
        sorted.into_iter().unzip()
    }
    if !p.licenses.is_empty() {
        let (ids, ats) = columns(&p.licenses);
        exec(
            w,
            "UPDATE licenses SET last_seen_at = GREATEST(coalesce(licenses.last_seen_at, 0), v.at)
             FROM (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[]) AS u (id, at) ORDER BY id) AS v
             WHERE licenses.id = v.id",
            &[&ids, &ats],
        )
        .await?;
    }
    if !p.activations.is_empty() {
        let (ids, ats) = columns(&p.activations);
        exec(
            w,
            "UPDATE activations SET last_seen = GREATEST(activations.last_seen, v.at)
             FROM (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[]) AS u (id, at) ORDER BY id) AS v
             WHERE activations.id = v.id",
            &[&ids, &ats],
        )
        .await?;
    }
    Ok(())
}
