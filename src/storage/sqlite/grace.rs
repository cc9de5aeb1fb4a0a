//! Late claims in SQLite: decisions with their evidence, the credit ledger, claims.
//!
//! Each operation runs in one write job: the evidence is read, the rule applied and
//! the effects stored in the same transaction, so two decisions cannot race.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use super::{license_events, mint_one, require_license, store_key, update_license_state};
use crate::domain::audit::{Actor, NewEvent};
use crate::domain::grace::{ClaimVerdict, DecisionInput, Evidence, PastEvent, Plan, Remedy};
use crate::domain::license::{License, LicenseStatus};
use crate::domain::product::Price;
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;
use crate::storage::grace::{
    Claim, ClaimOutcome, CreditEntry, Decision, DecisionOutcome, DecisionResult, GraceRequest,
    NewClaim, Redemption,
};
use crate::storage::{MintOutcome, StorageError};

const DECISION_COLUMNS: &str =
    "id, license_id, remedy, reason, actor, automatic, at, evidence, result, claim_id";

fn remedy_of(s: &str) -> Option<Remedy> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn decision_from_row(r: &Row<'_>) -> rusqlite::Result<Decision> {
    let bad = |what: &str| {
        rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
    };
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

fn evidence_of(
    conn: &Connection,
    license: &License,
    now: Timestamp,
) -> Result<Evidence, StorageError> {
    let events: Vec<PastEvent> = license_events(conn, &license.id)?
        .into_iter()
        .map(|e| PastEvent {
            at: e.at,
            kind: e.kind,
            data: e.data,
        })
        .collect();
    Ok(Evidence::gather(license, &events, now))
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
                "SELECT {DECISION_COLUMNS}, request_hash FROM decisions WHERE idempotency_key = ?1"
            ))?
            .query_row([&idem.key], |r| Ok((decision_from_row(r)?, r.get(10)?)))
            .optional()?;
        if let Some((decision, hash)) = found {
            if hash != idem.request_hash {
                return Err(DomainError::IdempotencyKeyReused.into());
            }
            return Ok(DecisionOutcome::Replayed(decision));
        }
    }
    let mut license = require_license(ctx, &req.license_id)?;
    let evidence = evidence_of(ctx.conn, &license, now)?;
    let price_paid = license.price.clone().or_else(|| req.catalog_price.clone());
    let plan = license.plan(
        &DecisionInput {
            remedy: req.remedy,
            days: req.days,
            product_window_days: req.product_window_days,
            target_price: req.target.as_ref().map(|t| &t.price),
            price_paid: price_paid.as_ref(),
            substitute_tolerance_percent: req.tolerance_percent,
            email: req.email.as_deref(),
        },
        now,
    )?;
    let mut result = DecisionResult::default();
    let close = |license: &mut License, status: LicenseStatus| {
        license.status = status;
        license.updated_at = now;
    };
    match &plan {
        Plan::Extend { activate_by, days } => {
            license.activate_by = Some(*activate_by);
            license.updated_at = now;
            result.activate_by = Some(time::format(*activate_by));
            result.days = Some(*days);
            if let Some(key) = &req.fresh_key {
                store_key(ctx.conn, &license.id, key, now)?;
            }
        }
        Plan::Substitute | Plan::Upgrade { .. } => {
            let target = req.target.as_ref().ok_or(DomainError::ProductRequired)?;
            let mut new = target.license.clone();
            new.license.supersedes = Some(license.id.clone());
            if let Plan::Upgrade { amount_due } = &plan {
                new.license.status = LicenseStatus::PendingPayment;
                new.license.amount_due = Some(amount_due.clone());
                result.amount_due = Some(amount_due.clone());
            }
            match mint_one(ctx, &new, &target.key, &req.actor)? {
                MintOutcome::Created(l) => result.new_license = Some(l.id),
                MintOutcome::Existing(..) => {
                    return Err(StorageError::Corrupt(
                        "a remedy's order id was taken".into(),
                    ))
                }
            }
            license.superseded_by = result.new_license.clone();
            close(&mut license, LicenseStatus::Superseded);
        }
        Plan::Credit { amount, email } => {
            insert_credit(
                ctx,
                &CreditRow {
                    id: format!("cre_{}", &req.id[4..]),
                    email,
                    amount: i64::try_from(amount.amount).unwrap_or(i64::MAX),
                    currency: &amount.currency,
                    kind: "grant",
                    license_id: Some(&license.id),
                    decision_id: Some(&req.id),
                    order_id: None,
                    at: now,
                    actor: &req.actor,
                },
            )?;
            result.credit = Some(amount.clone());
            result.credit_email = Some(email.clone());
            close(&mut license, LicenseStatus::Credited);
        }
        Plan::Refund { amount } => {
            result.refund = Some(amount.clone());
            close(&mut license, LicenseStatus::Refunded);
        }
        Plan::Decline => {}
    }
    if plan != Plan::Decline {
        update_license_state(ctx, &license)?;
    }
    let decision = Decision {
        id: req.id.clone(),
        license_id: license.id.clone(),
        remedy: req.remedy,
        reason: req.reason.clone(),
        actor: serde_json::from_str(&req.actor.to_json()).unwrap_or_default(),
        automatic: req.automatic,
        at: now,
        evidence: serde_json::to_value(&evidence).unwrap_or_default(),
        result,
        claim_id: req.claim_id.clone(),
    };
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO decisions ({DECISION_COLUMNS}, new_license_id, idempotency_key, request_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?
        .execute(params![
            decision.id,
            decision.license_id,
            req.remedy.as_str(),
            decision.reason,
            req.actor.to_json(),
            decision.automatic,
            now.timestamp(),
            decision.evidence.to_string(),
            serde_json::to_string(&decision.result).unwrap_or_default(),
            decision.claim_id,
            decision.result.new_license,
            req.idempotency.as_ref().map(|i| i.key.as_str()),
            req.idempotency.as_ref().map(|i| &i.request_hash[..]),
        ])?;
    ctx.append(NewEvent {
        at: now,
        actor: req.actor.clone(),
        kind: "grace_decision",
        license_id: Some(license.id.clone()),
        data: serde_json::json!({
            "decision": decision.id,
            "remedy": req.remedy.as_str(),
            "automatic": req.automatic,
            "reason": decision.reason,
            "result": decision.result,
            "days_late": evidence.days_late,
            "ever_presented": evidence.ever_presented,
            "claim": decision.claim_id,
        }),
    })?;
    if let Some(new_id) = &decision.result.new_license {
        ctx.append(NewEvent {
            at: now,
            actor: req.actor.clone(),
            kind: "license_replaces",
            license_id: Some(new_id.clone()),
            data: serde_json::json!({ "supersedes": license.id, "decision": decision.id }),
        })?;
    }
    if let Some(claim) = &req.claim_id {
        ctx.conn
            .prepare_cached(
                "UPDATE claims SET status = ?2, decision_id = ?3, resolved_at = ?4 WHERE id = ?1",
            )?
            .execute(params![
                claim,
                if req.automatic { "granted" } else { "resolved" },
                decision.id,
                now.timestamp()
            ])?;
    }
    Ok(DecisionOutcome::Made(decision))
}

struct CreditRow<'a> {
    id: String,
    email: &'a str,
    amount: i64,
    currency: &'a str,
    kind: &'a str,
    license_id: Option<&'a str>,
    decision_id: Option<&'a str>,
    order_id: Option<&'a str>,
    at: Timestamp,
    actor: &'a Actor,
}

fn insert_credit(ctx: &mut WriteCtx<'_>, row: &CreditRow<'_>) -> Result<(), StorageError> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO credit_entries
             (id, email, amount, currency, kind, license_id, decision_id, order_id, at, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            row.id,
            row.email,
            row.amount,
            row.currency,
            row.kind,
            row.license_id,
            row.decision_id,
            row.order_id,
            row.at.timestamp(),
            row.actor.to_json()
        ])?;
    ctx.append(NewEvent {
        at: row.at,
        actor: row.actor.clone(),
        kind: if row.kind == "grant" {
            "credit_granted"
        } else {
            "credit_redeemed"
        },
        license_id: row.license_id.map(str::to_owned),
        data: serde_json::json!({
            "entry": row.id,
            "email": row.email,
            "amount": row.amount,
            "currency": row.currency,
            "order_id": row.order_id,
        }),
    })?;
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
    let amount =
        i64::try_from(r.amount.amount).map_err(|_| DomainError::field("amount", "is too large"))?;
    let existing = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT {CREDIT_COLUMNS} FROM credit_entries WHERE order_id = ?1"
        ))?
        .query_row([&r.order_id], credit_from_row)
        .optional()?;
    if let Some(e) = existing {
        if e.email != r.email || e.amount != -amount || e.currency != r.amount.currency {
            return Err(DomainError::OrderConflict(r.order_id.clone()).into());
        }
        return Ok((e, false));
    }
    let balance: i64 = ctx
        .conn
        .prepare_cached(
            "SELECT coalesce(sum(amount), 0) FROM credit_entries WHERE email = ?1 AND currency = ?2",
        )?
        .query_row(params![r.email, r.amount.currency], |row| row.get(0))?;
    if balance < amount {
        return Err(DomainError::InsufficientCredit {
            balance: u64::try_from(balance).unwrap_or(0),
            amount: r.amount.amount,
        }
        .into());
    }
    insert_credit(
        ctx,
        &CreditRow {
            id: r.id.clone(),
            email: &r.email,
            amount: -amount,
            currency: &r.amount.currency,
            kind: "redeem",
            license_id: None,
            decision_id: None,
            order_id: Some(&r.order_id),
            at: now,
            actor: &r.actor,
        },
    )?;
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
    if license.status != LicenseStatus::PendingPayment {
        return Err(DomainError::InvalidTransition {
            action: "confirm-payment",
            status: license.status,
        }
        .into());
    }
    let paid: Option<Price> = license.amount_due.take();
    license.status = LicenseStatus::Active;
    license.updated_at = now;
    update_license_state(ctx, &license)?;
    ctx.append(NewEvent {
        at: now,
        actor: actor.clone(),
        kind: "payment_confirmed",
        license_id: Some(license.id.clone()),
        data: serde_json::json!({ "amount": paid }),
    })?;
    Ok(license)
}

const CLAIM_COLUMNS: &str =
    "id, license_id, email, message, status, note, decision_id, created_at, resolved_at";

fn claim_from_row(r: &Row<'_>) -> rusqlite::Result<Claim> {
    Ok(Claim {
        id: r.get(0)?,
        license_id: r.get(1)?,
        email: r.get(2)?,
        message: r.get(3)?,
        status: r.get(4)?,
        note: r.get(5)?,
        decision_id: r.get(6)?,
        created_at: time::from_unix(r.get(7)?),
        resolved_at: r.get::<_, Option<i64>>(8)?.map(time::from_unix),
    })
}

/// One claim.
pub(super) fn claim(conn: &Connection, id: &str) -> Result<Option<Claim>, StorageError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"))?
        .query_row([id], claim_from_row)
        .optional()?)
}

/// Claims with a status, oldest first (at most 500).
pub(super) fn claims(conn: &Connection, status: &str) -> Result<Vec<Claim>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE status = ?1 ORDER BY created_at, rowid LIMIT 500"
    ))?;
    let rows = stmt.query_map([status], claim_from_row)?;
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
    super::activations::mark_presented(ctx, &license_id, "claim", now)?;
    let license = require_license(ctx, &license_id)?;
    let evidence = evidence_of(ctx.conn, &license, now)?;
    let product = c.catalog.get(&license.product);
    let window = product.and_then(|p| p.spec.activation_window_days);
    let verdict = c.policy.judge(&license, &evidence, window, now);
    let note = match verdict {
        ClaimVerdict::NotNeeded => return Ok(ClaimOutcome::NotNeeded(Box::new(license))),
        ClaimVerdict::Extend(days) => {
            let decision = decide(
                ctx,
                &GraceRequest {
                    id: c.decision_id.clone(),
                    license_id: license_id.clone(),
                    remedy: Remedy::Extend,
                    reason: "late_claims policy: never activated, within the policy's limits"
                        .into(),
                    days: Some(days),
                    email: None,
                    target: None,
                    fresh_key: None,
                    product_window_days: window,
                    catalog_price: product.map(|p| p.spec.price.clone()),
                    tolerance_percent: c.policy.substitute_tolerance_percent,
                    actor: Actor::System,
                    automatic: true,
                    idempotency: None,
                    claim_id: None,
                },
                now,
            )?;
            let (DecisionOutcome::Made(decision) | DecisionOutcome::Replayed(decision)) = decision;
            insert_claim(
                ctx,
                c,
                &license_id,
                "granted",
                None,
                Some(&decision.id),
                now,
            )?;
            return Ok(ClaimOutcome::Granted(Box::new(decision)));
        }
        ClaimVerdict::ForSupport(why) => why,
    };
    insert_claim(ctx, c, &license_id, "pending", Some(note), None, now)?;
    let filed =
        claim(ctx.conn, &c.id)?.ok_or_else(|| StorageError::Corrupt("claim vanished".into()))?;
    Ok(ClaimOutcome::Filed(Box::new(filed)))
}

fn insert_claim(
    ctx: &mut WriteCtx<'_>,
    c: &NewClaim,
    license_id: &str,
    status: &str,
    note: Option<&str>,
    decision: Option<&str>,
    now: Timestamp,
) -> Result<(), StorageError> {
    let resolved = decision.map(|_| now.timestamp());
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO claims ({CLAIM_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?
        .execute(params![
            c.id,
            license_id,
            c.email,
            c.message,
            status,
            note,
            decision,
            now.timestamp(),
            resolved
        ])?;
    ctx.append(NewEvent {
        at: now,
        actor: Actor::LicenseKey,
        kind: "claim_filed",
        license_id: Some(license_id.to_owned()),
        data: serde_json::json!({
            "claim": c.id,
            "status": status,
            "note": note,
            "decision": decision,
            "email": c.email,
        }),
    })?;
    Ok(())
}

/// Support closes a pending claim with a decision.
pub(super) fn resolve_claim(
    ctx: &mut WriteCtx<'_>,
    req: &GraceRequest,
    now: Timestamp,
) -> Result<DecisionOutcome, StorageError> {
    let claim_id = req.claim_id.as_deref().unwrap_or_default();
    let found = claim(ctx.conn, claim_id)?.ok_or(DomainError::ClaimNotFound)?;
    if found.status != "pending" {
        // A retry with the same Idempotency-Key still finds its decision.
        if req.idempotency.is_some() {
            return decide(ctx, req, now);
        }
        return Err(DomainError::ClaimResolved.into());
    }
    if found.license_id != req.license_id {
        return Err(StorageError::Corrupt("claim and license disagree".into()));
    }
    decide(ctx, req, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedies_read_back_from_their_names() {
        for r in [
            Remedy::Extend,
            Remedy::Substitute,
            Remedy::Upgrade,
            Remedy::Credit,
            Remedy::Refund,
            Remedy::Decline,
        ] {
            assert_eq!(remedy_of(r.as_str()), Some(r));
        }
    }
}
