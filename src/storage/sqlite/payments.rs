//! Payment events on SQLite: the event row and its effect in one writer job.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use super::{load_license, mint_with_text, update_license_state, MintText};
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

/// The columns of `payment_events`, as a literal: the statements are made with
/// `concat!`, not formatted on every call.
macro_rules! columns {
    () => {
        "id, provider, event_id, kind, received_at, outcome, reason, licenses, decided_at, body"
    };
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<PaymentEvent, StorageError>> {
    let provider: String = r.get(1)?;
    let outcome: String = r.get(5)?;
    let licenses: String = r.get(7)?;
    Ok(event_from_columns(
        r.get(0)?,
        &provider,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        &outcome,
        r.get(6)?,
        &licenses,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn one(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Option<PaymentEvent>, StorageError> {
    conn.prepare_cached(sql)?
        .query_row(p, from_row)
        .optional()?
        .transpose()
}

/// A stored event by its id.
pub(super) fn event(conn: &Connection, id: &str) -> Result<Option<PaymentEvent>, StorageError> {
    one(
        conn,
        concat!("SELECT ", columns!(), " FROM payment_events WHERE id = ?1"),
        [id],
    )
}

/// The query of [`events`]: one outcome other than `applied` through the partial
/// index of those (the query repeats its condition so that SQLite may use it);
/// any other filter in order by id.
pub(super) fn events_sql(outcome: Option<Outcome>) -> &'static str {
    match outcome {
        Some(o) if o != Outcome::Applied => concat!(
            "SELECT ",
            columns!(),
            " FROM payment_events
             WHERE outcome = ?2 AND outcome <> 'applied' AND (?1 IS NULL OR provider = ?1)
               AND id > coalesce(?3, '')
             ORDER BY id LIMIT ?4"
        ),
        _ => concat!(
            "SELECT ",
            columns!(),
            " FROM payment_events
             WHERE (?1 IS NULL OR provider = ?1) AND (?2 IS NULL OR outcome = ?2)
               AND (?3 IS NULL OR id > ?3)
             ORDER BY id LIMIT ?4"
        ),
    }
}

/// A page of stored events, in the order they arrived.
pub(super) fn events(
    conn: &Connection,
    f: &PaymentFilter,
) -> Result<Vec<PaymentEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(events_sql(f.outcome))?;
    let rows = stmt.query_map(
        params![
            f.provider.map(Provider::as_str),
            f.outcome.map(Outcome::as_str),
            f.after,
            f.limit
        ],
        from_row,
    )?;
    rows.map(|r| r?).collect()
}

/// The licenses the first reference that has any finds.
fn find(
    ctx: &WriteCtx<'_>,
    provider: Provider,
    refs: &[Reference],
) -> Result<Vec<Found>, StorageError> {
    let mut stmt = ctx.conn.prepare_cached(
        "SELECT license_id, ended_at IS NOT NULL FROM payment_links
         WHERE provider = ?1 AND reference = ?2 ORDER BY license_id",
    )?;
    for r in refs {
        let linked = stmt
            .query_map(params![provider.as_str(), r.as_str()], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if linked.is_empty() {
            continue;
        }
        let mut found = Vec::with_capacity(linked.len());
        for (id, ended) in linked {
            let license = load_license(ctx.conn, &id)?
                .ok_or_else(|| StorageError::Corrupt(format!("payment link to {id}")))?;
            found.push(Found {
                license,
                subscription_ended: ended,
            });
        }
        return Ok(found);
    }
    Ok(Vec::new())
}

fn link(
    ctx: &WriteCtx<'_>,
    provider: Provider,
    refs: &[Reference],
    license: &str,
) -> Result<(), StorageError> {
    let mut stmt = ctx.conn.prepare_cached(
        "INSERT OR IGNORE INTO payment_links (provider, reference, license_id) VALUES (?1, ?2, ?3)",
    )?;
    for r in refs {
        stmt.execute(params![provider.as_str(), r.as_str(), license])?;
    }
    Ok(())
}

/// The text of the rows a payment event would mint (empty for any other effect),
/// made before the writer takes the job, as a plain mint's is.
pub(super) fn mint_texts(req: &PaymentRequest) -> Result<Vec<MintText>, StorageError> {
    let PaymentEffect::Mint { licenses, .. } = &req.effect else {
        return Ok(Vec::new());
    };
    let actor = req.event.provider.actor();
    licenses
        .iter()
        .map(|(new, key)| MintText::of(new, key, &actor))
        .collect()
}

/// Applies a payment event (see [`crate::storage::payments`]), with the text of
/// what it mints from [`mint_texts`].
pub(super) fn apply(
    ctx: &mut WriteCtx<'_>,
    req: &PaymentRequest,
    texts: Vec<MintText>,
) -> Result<PaymentResult, StorageError> {
    let ev = &req.event;
    let provider = ev.provider;
    let stored = match &req.again {
        None => one(
            ctx.conn,
            concat!(
                "SELECT ",
                columns!(),
                " FROM payment_events WHERE provider = ?1 AND event_id = ?2"
            ),
            params![provider.as_str(), ev.event_id],
        )?,
        Some(id) => Some(event(ctx.conn, id)?.ok_or(DomainError::PaymentEventNotFound)?),
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
            for ((new, key), text) in licenses.iter().zip(texts) {
                match mint_with_text(ctx, new, key, text) {
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
                        link(ctx, provider, refs, &license.id)?;
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
            let found = find(ctx, provider, refs)?;
            let plan = payments::plan(provider, change, found, now);
            for (license, event) in &plan.changes {
                update_license_state(ctx, license)?;
                ctx.append(NewEvent::about(
                    &license.id,
                    now,
                    actor.clone(),
                    event.clone(),
                ))?;
            }
            if let (LicenseChange::EndSubscription(_), false) = (change, plan.changes.is_empty()) {
                let mut end = ctx.conn.prepare_cached(
                    "UPDATE payment_links SET ended_at = ?3
                     WHERE provider = ?1 AND reference = ?2 AND ended_at IS NULL",
                )?;
                for r in refs {
                    end.execute(params![provider.as_str(), r.as_str(), now.timestamp()])?;
                }
            }
            (plan.outcome, plan.reason, plan.licenses)
        }
        PaymentEffect::Link { refs, add } => {
            let found = find(ctx, provider, refs)?;
            if found.is_empty() {
                (
                    Outcome::Unmapped,
                    Some("no license of keyclerk belongs to this order".into()),
                    Vec::new(),
                )
            } else {
                let mut ids = Vec::new();
                for f in &found {
                    link(ctx, provider, add, &f.license.id)?;
                    ids.push(f.license.id.clone());
                }
                (Outcome::Applied, None, ids)
            }
        }
        PaymentEffect::Record { outcome, reason } => (*outcome, reason.clone(), Vec::new()),
    };
    let mut event = decided(ev, outcome, reason, licenses, now);
    match &req.again {
        None => {
            ctx.conn
                .prepare_cached(concat!(
                    "INSERT INTO payment_events (",
                    columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))?
                .execute(params![
                    event.id,
                    provider.as_str(),
                    event.event_id,
                    event.kind,
                    event.received_at.timestamp(),
                    event.outcome.as_str(),
                    event.reason,
                    licenses_column(&event.licenses),
                    now.timestamp(),
                    event.body
                ])?;
        }
        Some(id) => {
            ctx.conn
                .prepare_cached(
                    "UPDATE payment_events SET outcome = ?2, reason = ?3, licenses = ?4, decided_at = ?5
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    event.outcome.as_str(),
                    event.reason,
                    licenses_column(&event.licenses),
                    now.timestamp()
                ])?;
            event = self::event(ctx.conn, id)?
                .ok_or_else(|| StorageError::Corrupt(format!("payment event {id} vanished")))?;
        }
    }
    if ctx.sends_webhooks() {
        ctx.queue_messages(payment_messages(&event, now), now)?;
    }
    Ok(PaymentResult {
        event,
        repeated: false,
        minted,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::{migrate_for_tests, plan_for_tests};
    use super::*;

    /// The events a vendor looks for (unmapped, failed) are read through the
    /// partial index, in order, without a sort; applied ones, which the index does
    /// not hold, in order by id.
    #[test]
    fn unsettled_events_are_listed_through_their_partial_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_for_tests(&mut conn);
        for outcome in [Outcome::Unmapped, Outcome::Failed, Outcome::Duplicate] {
            let plan = plan_for_tests(&conn, events_sql(Some(outcome)));
            assert!(
                plan.contains("USING INDEX payment_events_unsettled"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
        for outcome in [None, Some(Outcome::Applied)] {
            let plan = plan_for_tests(&conn, events_sql(outcome));
            assert!(!plan.contains("payment_events_unsettled"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// The index holds no applied event: the events a payment applies, nearly all
    /// of them, write no entry there.
    #[test]
    fn the_partial_index_holds_only_unsettled_events() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_for_tests(&mut conn);
        for (i, outcome) in ["applied", "unmapped", "applied", "failed"]
            .iter()
            .enumerate()
        {
            conn.execute(
                concat!(
                    "INSERT INTO payment_events (",
                    columns!(),
                    ") VALUES (?1, 'stripe', ?1, 'k', 0, ?2, NULL, '[]', 0, '{}')"
                ),
                params![format!("pay_{i}"), outcome],
            )
            .unwrap();
        }
        let indexed: Vec<String> = conn
            .prepare("SELECT outcome FROM payment_events INDEXED BY payment_events_unsettled WHERE outcome <> 'applied' ORDER BY outcome")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexed, ["failed", "unmapped"]);
        // Listing one unsettled outcome, then another, does not make SQLite prepare
        // the statement again (see `EVIDENCE_SQL` in the parent module).
        for outcome in [Outcome::Unmapped, Outcome::Failed, Outcome::Unmapped] {
            let filter = PaymentFilter {
                provider: None,
                outcome: Some(outcome),
                after: None,
                limit: 10,
            };
            assert_eq!(events(&conn, &filter).unwrap().len(), 1);
        }
        let stmt = conn
            .prepare_cached(events_sql(Some(Outcome::Failed)))
            .unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
