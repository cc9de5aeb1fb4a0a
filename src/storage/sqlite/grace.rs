//! Late claims in SQLite: decisions with their evidence, the credit ledger, claims.
//!
//! Each operation runs in one write job: the evidence is read, the rule applied and
//! the effects stored in the same transaction, so two decisions cannot race.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use super::{evidence_events, mint_one, require_license, store_key, update_license_state};
use crate::domain::audit::{Actor, AuditEvent, ClaimStatus, NewEvent, PresentedBy};
use crate::domain::grace::{
    check_redemption, check_replay, ClaimVerdict, Evidence, Remedy, StoredRedemption,
    AUTOMATIC_EXTENSION_REASON, MAX_LISTED_CLAIMS,
};
use crate::domain::license::License;
use crate::domain::mail::Locale;
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;
use crate::storage::grace::{
    plan_decision, Claim, ClaimOutcome, CreditEntry, Decision, DecisionOutcome, GraceRequest,
    NewClaim, NewCreditLine, Redemption,
};
use crate::storage::{MintOutcome, StorageError};

const DECISION_COLUMNS: &str =
    "id, license_id, remedy, reason, actor, automatic, at, evidence, result, claim_id";

use crate::storage::rows::remedy_of;

fn decision_from_row(r: &Row<'_>) -> rusqlite::Result<Decision> {
    let bad = super::corrupt;
    let remedy: String = r.get(2)?;
    let actor: String = r.get(4)?;
    let evidence: String = r.get(7)?;
    let result: String = r.get(8)?;
    Ok(Decision {
        id: r.get(0)?,
        license_id: r.get(1)?,
        remedy: remedy_of(&remedy).ok_or_else(|| bad("remedy"))?,
        reason: r.get(3)?,
        actor: serde_json::from_str(&actor).map_err(|_| bad("actor"))?,
        automatic: r.get(5)?,
        at: time::from_unix(r.get(6)?),
        evidence: serde_json::from_str(&evidence).map_err(|_| bad("evidence"))?,
        result: serde_json::from_str(&result).map_err(|_| bad("result"))?,
        claim_id: r.get(9)?,
    })
}

/// The evidence of the log about `license` at `now`.
pub(super) fn evidence_of(
    conn: &Connection,
    license: &License,
    now: Timestamp,
) -> Result<Evidence, StorageError> {
    Ok(Evidence::gather(
        license,
        &evidence_events(conn, &license.id)?,
        now,
    ))
}

/// Makes a grace decision (or finds the one made under the same `Idempotency-Key`).
pub(super) fn decide(
    ctx: &mut WriteCtx<'_>,
    req: &GraceRequest,
    now: Timestamp,
) -> Result<DecisionOutcome, StorageError> {
    if let Some(idem) = &req.idempotency {
        let found: Option<(Decision, Vec<u8>)> = ctx
            .conn
            .prepare_cached(&format!(
                "SELECT {DECISION_COLUMNS}, request_hash FROM decisions
                 WHERE license_id = ?1 AND idempotency_key = ?2"
            ))?
            .query_row(params![req.license_id, idem.key], |r| {
                Ok((decision_from_row(r)?, r.get(10)?))
            })
            .optional()?;
        if let Some((decision, hash)) = found {
            check_replay(&hash, &idem.request_hash)?;
            return Ok(DecisionOutcome::Replayed(decision));
        }
    }
    let license = require_license(ctx, &req.license_id)?;
    let evidence = evidence_of(ctx.conn, &license, now)?;
    let w = plan_decision(license, &evidence, req, now)?;
    if w.effects.store_fresh_key {
        if let Some(key) = &req.fresh_key {
            store_key(ctx.conn, &w.license.id, key, now)?;
        }
    }
    if let (Some(new), Some(target)) = (&w.effects.mint, &req.target) {
        if let MintOutcome::Existing(..) = mint_one(ctx, new, &target.key, &req.actor)? {
            return Err(StorageError::Corrupt(
                "a remedy's order id was taken".into(),
            ));
        }
    }
    if let Some(line) = &w.credit {
        insert_credit(ctx, line)?;
    }
    if w.effects.license_changed {
        update_license_state(ctx, &w.license)?;
    }
    let d = &w.decision;
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO decisions ({DECISION_COLUMNS}, new_license_id, idempotency_key, request_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?
        .execute(params![
            d.id,
            d.license_id,
            d.remedy.as_str(),
            d.reason,
            req.actor.to_json(),
            d.automatic,
            now.timestamp(),
            d.evidence.to_string(),
            w.result_json,
            d.claim_id,
            d.result.new_license,
            req.idempotency.as_ref().map(|i| i.key.as_str()),
            req.idempotency.as_ref().map(|i| &i.request_hash[..]),
        ])?;
    for event in w.events {
        ctx.append(event)?;
    }
    if let Some((claim, status)) = &w.claim {
        ctx.conn
            .prepare_cached(
                "UPDATE claims SET status = ?2, decision_id = ?3, resolved_at = ?4 WHERE id = ?1",
            )?
            .execute(params![claim, status.as_str(), d.id, now.timestamp()])?;
    }
    Ok(DecisionOutcome::Made(w.decision))
}

fn insert_credit(ctx: &mut WriteCtx<'_>, line: &NewCreditLine) -> Result<(), StorageError> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO credit_entries
             (id, email, amount, currency, kind, license_id, decision_id, order_id, at, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            line.id,
            line.email,
            line.amount,
            line.currency,
            line.kind.as_str(),
            line.license_id,
            line.decision_id,
            line.order_id,
            line.at.timestamp(),
            line.actor.to_json()
        ])?;
    ctx.append(line.event())?;
    Ok(())
}

const CREDIT_COLUMNS: &str =
    "id, email, amount, currency, kind, license_id, decision_id, order_id, at";

fn credit_from_row(r: &Row<'_>) -> rusqlite::Result<CreditEntry> {
    Ok(CreditEntry {
        id: r.get(0)?,
        email: r.get(1)?,
        amount: r.get(2)?,
        currency: r.get(3)?,
        kind: r.get(4)?,
        license_id: r.get(5)?,
        decision_id: r.get(6)?,
        order_id: r.get(7)?,
        at: time::from_unix(r.get(8)?),
    })
}

/// A customer's ledger, oldest first.
pub(super) fn credits(conn: &Connection, email: &str) -> Result<Vec<CreditEntry>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CREDIT_COLUMNS} FROM credit_entries WHERE email = ?1 ORDER BY at, rowid"
    ))?;
    let rows = stmt.query_map([email], credit_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Spends credit on an order; the same order again finds the first redemption.
pub(super) fn redeem(
    ctx: &mut WriteCtx<'_>,
    r: &Redemption,
    now: Timestamp,
) -> Result<(CreditEntry, bool), StorageError> {
    let existing = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT {CREDIT_COLUMNS} FROM credit_entries WHERE order_id = ?1"
        ))?
        .query_row([&r.order_id], credit_from_row)
        .optional()?;
    let balance: i64 = ctx
        .conn
        .prepare_cached(
            "SELECT coalesce(sum(amount), 0) FROM credit_entries WHERE email = ?1 AND currency = ?2",
        )?
        .query_row(params![r.email, r.amount.currency], |row| row.get(0))?;
    let stored = existing.as_ref().map(|e| StoredRedemption {
        email: &e.email,
        amount: e.amount,
        currency: &e.currency,
    });
    if !check_redemption(&r.order_id, &r.email, &r.amount, stored, balance)? {
        let e = existing.ok_or_else(|| StorageError::Corrupt("redemption vanished".into()))?;
        return Ok((e, false));
    }
    insert_credit(ctx, &r.line(now)?)?;
    let entry = credits(ctx.conn, &r.email)?
        .into_iter()
        .find(|e| e.id == r.id)
        .ok_or_else(|| StorageError::Corrupt("redemption vanished".into()))?;
    Ok((entry, true))
}

/// Confirms an upgrade's payment: the pending license becomes active.
pub(super) fn confirm_payment(
    ctx: &mut WriteCtx<'_>,
    id: &str,
    actor: &Actor,
    now: Timestamp,
) -> Result<License, StorageError> {
    let mut license = require_license(ctx, id)?;
    let event = license.confirm_payment(now)?;
    update_license_state(ctx, &license)?;
    ctx.append(NewEvent::about(id, now, actor.clone(), event))?;
    Ok(license)
}

const CLAIM_COLUMNS: &str =
    "id, license_id, email, message, status, note, decision_id, created_at, resolved_at, locale";

fn claim_from_row(r: &Row<'_>) -> rusqlite::Result<Claim> {
    let status: String = r.get(4)?;
    Ok(Claim {
        id: r.get(0)?,
        license_id: r.get(1)?,
        email: r.get(2)?,
        message: r.get(3)?,
        status: ClaimStatus::parse(&status).ok_or_else(|| super::corrupt("claim status"))?,
        note: r.get(5)?,
        decision_id: r.get(6)?,
        created_at: time::from_unix(r.get(7)?),
        resolved_at: r.get::<_, Option<i64>>(8)?.map(time::from_unix),
        locale: r
            .get::<_, Option<String>>(9)?
            .as_deref()
            .and_then(Locale::parse)
            .unwrap_or_default(),
    })
}

/// One claim.
pub(super) fn claim(conn: &Connection, id: &str) -> Result<Option<Claim>, StorageError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"))?
        .query_row([id], claim_from_row)
        .optional()?)
}

/// Claims with a status, oldest first (at most [`MAX_LISTED_CLAIMS`]).
pub(super) fn claims(conn: &Connection, status: ClaimStatus) -> Result<Vec<Claim>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE status = ?1 ORDER BY created_at, id
         LIMIT {MAX_LISTED_CLAIMS}"
    ))?;
    let rows = stmt.query_map([status.as_str()], claim_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A customer's claims, oldest first (at most [`MAX_LISTED_CLAIMS`]): those of the
/// licenses sold to `email` and those filed under it.
pub(super) fn customer_claims(conn: &Connection, email: &str) -> Result<Vec<Claim>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE license_id IN
             (SELECT id FROM licenses WHERE customer_email = ?1)
         UNION
         SELECT {CLAIM_COLUMNS} FROM claims WHERE email = ?1
         ORDER BY created_at, id
         LIMIT {MAX_LISTED_CLAIMS}"
    ))?;
    let rows = stmt.query_map([email], claim_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The claims on `license_id` (`?1`) with a status (`?2`), oldest first (at most
/// [`MAX_LISTED_CLAIMS`]): through `claims_by_license`, never the whole queue.
fn license_claims_sql() -> String {
    format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE license_id = ?1 AND status = ?2
         ORDER BY created_at, id LIMIT {MAX_LISTED_CLAIMS}"
    )
}

/// The claims on one license with a status, oldest first.
pub(super) fn license_claims(
    conn: &Connection,
    license_id: &str,
    status: ClaimStatus,
) -> Result<Vec<Claim>, StorageError> {
    let mut stmt = conn.prepare_cached(&license_claims_sql())?;
    let rows = stmt.query_map(params![license_id, status.as_str()], claim_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A customer's own claim: granted by the policy, or filed for support.
pub(super) fn file_claim(
    ctx: &mut WriteCtx<'_>,
    c: &NewClaim,
    now: Timestamp,
) -> Result<ClaimOutcome, StorageError> {
    let Some(license_id) = super::activations::license_of_key(ctx.conn, &c.key_hash)? else {
        return Ok(ClaimOutcome::NotFound);
    };
    super::activations::mark_presented(ctx, &license_id, false, PresentedBy::Claim, now)?;
    let license = require_license(ctx, &license_id)?;
    let evidence = evidence_of(ctx.conn, &license, now)?;
    let (verdict, terms) = c.rules.judge(&license, &evidence, now);
    let note = match verdict {
        ClaimVerdict::NotNeeded => return Ok(ClaimOutcome::NotNeeded(Box::new(license))),
        ClaimVerdict::Extend(days) => {
            let decision = decide(
                ctx,
                &GraceRequest {
                    id: c.decision_id.clone(),
                    license_id: license_id.clone(),
                    remedy: Remedy::Extend,
                    reason: AUTOMATIC_EXTENSION_REASON.into(),
                    days: Some(days),
                    email: None,
                    target: None,
                    fresh_key: None,
                    terms,
                    actor: Actor::System,
                    automatic: true,
                    idempotency: None,
                    claim_id: None,
                    credit_id: c.credit_id.clone(),
                    mail: None,
                },
                now,
            )?;
            let (DecisionOutcome::Made(decision) | DecisionOutcome::Replayed(decision)) = decision;
            insert_claim(
                ctx,
                c,
                &license_id,
                ClaimStatus::Granted,
                None,
                Some(&decision.id),
                now,
            )?;
            if let Some(mail) = c.mail_about(&license, Some(&decision.id)) {
                ctx.queue_mail(&mail, now)?;
            }
            return Ok(ClaimOutcome::Granted(Box::new(decision)));
        }
        ClaimVerdict::ForSupport(why) => why,
    };
    insert_claim(
        ctx,
        c,
        &license_id,
        ClaimStatus::Pending,
        Some(note),
        None,
        now,
    )?;
    if let Some(mail) = c.mail_about(&license, None) {
        ctx.queue_mail(&mail, now)?;
    }
    let filed =
        claim(ctx.conn, &c.id)?.ok_or_else(|| StorageError::Corrupt("claim vanished".into()))?;
    Ok(ClaimOutcome::Filed(Box::new(filed)))
}

fn insert_claim(
    ctx: &mut WriteCtx<'_>,
    c: &NewClaim,
    license_id: &str,
    status: ClaimStatus,
    note: Option<&str>,
    decision: Option<&str>,
    now: Timestamp,
) -> Result<(), StorageError> {
    let resolved = decision.map(|_| now.timestamp());
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO claims ({CLAIM_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?
        .execute(params![
            c.id,
            license_id,
            c.email,
            c.message,
            status.as_str(),
            note,
            decision,
            now.timestamp(),
            resolved,
            c.locale.as_str()
        ])?;
    ctx.append(NewEvent::about(
        license_id,
        now,
        Actor::LicenseKey,
        AuditEvent::ClaimFiled {
            claim: c.id.clone(),
            status,
            note: note.map(str::to_owned),
            decision: decision.map(str::to_owned),
            email: c.email.clone(),
        },
    ))?;
    Ok(())
}

/// Support closes a pending claim with a decision.
pub(super) fn resolve_claim(
    ctx: &mut WriteCtx<'_>,
    req: &GraceRequest,
    now: Timestamp,
) -> Result<DecisionOutcome, StorageError> {
    let claim_id = req
        .claim_id
        .as_deref()
        .ok_or_else(|| StorageError::Corrupt("a claim's decision without its claim".into()))?;
    let found = claim(ctx.conn, claim_id)?.ok_or(DomainError::ClaimNotFound)?;
    found.status.check_resolvable(req.idempotency.is_some())?;
    if found.license_id != req.license_id {
        return Err(StorageError::Corrupt("claim and license disagree".into()));
    }
    let outcome = decide(ctx, req, now)?;
    if let (DecisionOutcome::Made(_), Some(mail)) = (&outcome, &req.mail) {
        ctx.queue_mail(mail, now)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::{migrate_for_tests, plan_for_tests};

    /// A license page reads its own claims through the license's index, not the
    /// queue's: a scan or the status index would grow with every claim filed.
    #[test]
    fn a_license_s_claims_are_read_through_its_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_for_tests(&mut conn);
        let plan = plan_for_tests(&conn, &super::license_claims_sql());
        assert!(plan.contains("USING INDEX claims_by_license"), "{plan}");
        assert!(!plan.contains("SCAN claims"), "{plan}");
    }
}
