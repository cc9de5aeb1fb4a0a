//! Payment events on PostgreSQL: the event row and its effect in one transaction.
//! Every write transaction holds the head of the audit chain first (see the
//! module's head), so two instances receiving one event at once look it up one
//! after the other; the unique (provider, event id) backs that.

use tokio_postgres::Row;

use super::{exec, load_license, mint_one, one, opt, rows, update_license_state, Db, Write};
use crate::domain::audit::NewEvent;
use crate::domain::payments::{
    self, mint_outcome, Found, LicenseChange, Outcome, PaymentEvent, Provider, Reference,
};
use crate::domain::DomainError;
use crate::storage::payments::{
    decided, event_from_columns, licenses_column, PaymentEffect, PaymentFilter, PaymentRequest,
    PaymentResult,
};
use crate::storage::webhooks::payment_messages;
use crate::storage::{MintOutcome, StorageError};

const COLUMNS: &str =
    "id, provider, event_id, kind, received_at, outcome, reason, licenses, decided_at, body";

fn from_row(r: &Row) -> Result<PaymentEvent, StorageError> {
    let provider: String = r.try_get(1)?;
    let outcome: String = r.try_get(5)?;
    let licenses: String = r.try_get(7)?;
    event_from_columns(
        r.try_get(0)?,
        &provider,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        &outcome,
        r.try_get(6)?,
        &licenses,
        r.try_get(8)?,
        r.try_get(9)?,
    )
}

/// A stored event by its id.
pub(super) async fn event<C: Db + ?Sized>(
    c: &C,
    id: &str,
) -> Result<Option<PaymentEvent>, StorageError> {
    opt(
        c,
        &format!("SELECT {COLUMNS} FROM payment_events WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// A page of stored events, in the order they arrived.
pub(super) async fn events<C: Db + ?Sized>(
    c: &C,
    f: &PaymentFilter,
) -> Result<Vec<PaymentEvent>, StorageError> {
    // One outcome other than `applied` through the partial index of those (the
    // query repeats its condition so that the planner may use it).
    let sql = match f.outcome {
        Some(o) if o != Outcome::Applied => format!(
            "SELECT {COLUMNS} FROM payment_events
             WHERE outcome = $2 AND outcome <> 'applied' AND ($1::TEXT IS NULL OR provider = $1)
               AND id > coalesce($3::TEXT, '')
             ORDER BY id LIMIT $4"
        ),
        _ => format!(
            "SELECT {COLUMNS} FROM payment_events
             WHERE ($1::TEXT IS NULL OR provider = $1) AND ($2::TEXT IS NULL OR outcome = $2)
               AND ($3::TEXT IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        ),
    };
    rows(
        c,
        &sql,
        &[
            &f.provider.map(Provider::as_str),
            &f.outcome.map(Outcome::as_str),
            &f.after,
            &i64::from(f.limit),
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// The licenses the first reference that has any finds.
async fn find(
    w: &Write<'_>,
    provider: Provider,
    refs: &[Reference],
) -> Result<Vec<Found>, StorageError> {
    for r in refs {
        let linked = rows(
            w,
            "SELECT license_id, ended_at IS NOT NULL FROM payment_links
             WHERE provider = $1 AND reference = $2 ORDER BY license_id",
            &[&provider.as_str(), &r.as_str()],
        )
        .await?;
        if linked.is_empty() {
            continue;
        }
        let mut found = Vec::with_capacity(linked.len());
        for row in linked {
            let id: String = row.try_get(0)?;
            let license = load_license(w, &id)
                .await?
                .ok_or_else(|| StorageError::Corrupt(format!("payment link to {id}")))?;
            found.push(Found {
                license,
                subscription_ended: row.try_get(1)?,
            });
        }
        return Ok(found);
    }
    Ok(Vec::new())
}

async fn link(
    w: &Write<'_>,
    provider: Provider,
    refs: &[Reference],
    license: &str,
) -> Result<(), StorageError> {
    for r in refs {
        exec(
            w,
            "INSERT INTO payment_links (provider, reference, license_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&provider.as_str(), &r.as_str(), &license],
        )
        .await?;
    }
    Ok(())
}

/// Applies a payment event (see [`crate::storage::payments`]).
pub(super) async fn apply(
    w: &mut Write<'_>,
    req: &PaymentRequest,
) -> Result<PaymentResult, StorageError> {
    let ev = &req.event;
    let provider = ev.provider;
    let stored = match &req.again {
        None => opt(
            w,
            &format!("SELECT {COLUMNS} FROM payment_events WHERE provider = $1 AND event_id = $2"),
            &[&provider.as_str(), &ev.event_id],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()?,
        Some(id) => Some(
            opt(
                w,
                &format!("SELECT {COLUMNS} FROM payment_events WHERE id = $1 FOR UPDATE"),
                &[id],
            )
            .await?
            .as_ref()
            .map(from_row)
            .transpose()?
            .ok_or(DomainError::PaymentEventNotFound)?,
        ),
    };
    if let Some(stored) = stored {
        if req.again.is_none() || !stored.outcome.may_apply_again() {
            return Ok(PaymentResult {
                event: stored,
                repeated: true,
                minted: Vec::new(),
            });
        }
    }
    let actor = provider.actor();
    let now = req.now;
    let mut minted = Vec::new();
    let (outcome, reason, licenses) = match &req.effect {
        PaymentEffect::Mint { licenses, refs } => {
            let (mut created, mut existing, mut refused, mut ids) = (0, 0, Vec::new(), Vec::new());
            for (new, key) in licenses {
                match mint_one(w, new, key, &actor).await {
                    Ok(outcome) => {
                        let license = match &outcome {
                            MintOutcome::Created(l) => {
                                created += 1;
                                l
                            }
                            MintOutcome::Existing(l, _) => {
                                existing += 1;
                                l
                            }
                        };
                        link(w, provider, refs, &license.id).await?;
                        ids.push(license.id.clone());
                        minted.push(outcome);
                    }
                    Err(StorageError::Domain(e)) => refused.push(e),
                    Err(e) => return Err(e),
                }
            }
            let (outcome, reason) = mint_outcome(created, existing, &refused);
            (outcome, reason, ids)
        }
        PaymentEffect::Change { refs, change } => {
            let found = find(w, provider, refs).await?;
            let plan = payments::plan(provider, change, found, now);
            for (license, event) in &plan.changes {
                update_license_state(w, license).await?;
                w.append(NewEvent::about(
                    &license.id,
                    now,
                    actor.clone(),
                    event.clone(),
                ));
            }
            if let (LicenseChange::EndSubscription(_), false) = (change, plan.changes.is_empty()) {
                for r in refs {
                    exec(
                        w,
                        "UPDATE payment_links SET ended_at = $3
                         WHERE provider = $1 AND reference = $2 AND ended_at IS NULL",
                        &[&provider.as_str(), &r.as_str(), &now.timestamp()],
                    )
                    .await?;
                }
            }
            (plan.outcome, plan.reason, plan.licenses)
        }
        PaymentEffect::Link { refs, add } => {
            let found = find(w, provider, refs).await?;
            if found.is_empty() {
                (
                    Outcome::Unmapped,
                    Some("no license of keyclerk belongs to this order".into()),
                    Vec::new(),
                )
            } else {
                let mut ids = Vec::new();
                for f in &found {
                    link(w, provider, add, &f.license.id).await?;
                    ids.push(f.license.id.clone());
                }
                (Outcome::Applied, None, ids)
            }
        }
        PaymentEffect::Record { outcome, reason } => (*outcome, reason.clone(), Vec::new()),
    };
    let mut event = decided(ev, outcome, reason, licenses, now);
    let licenses = licenses_column(&event.licenses);
    match &req.again {
        None => {
            exec(
                w,
                &format!(
                    "INSERT INTO payment_events ({COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &event.id,
                    &provider.as_str(),
                    &event.event_id,
                    &event.kind,
                    &event.received_at.timestamp(),
                    &event.outcome.as_str(),
                    &event.reason,
                    &licenses,
                    &now.timestamp(),
                    &event.body,
                ],
            )
            .await?;
        }
        Some(id) => {
            let row = one(
                w,
                &format!(
                    "UPDATE payment_events SET outcome = $2, reason = $3, licenses = $4,
                         decided_at = $5
                     WHERE id = $1 RETURNING {COLUMNS}"
                ),
                &[
                    id,
                    &event.outcome.as_str(),
                    &event.reason,
                    &licenses,
                    &now.timestamp(),
                ],
            )
            .await?;
            event = from_row(&row)?;
        }
    }
    w.queue_messages(payment_messages(&event, now), now);
    Ok(PaymentResult {
        event,
        repeated: false,
        minted,
    })
}
