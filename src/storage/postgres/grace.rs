//! Late claims in PostgreSQL: decisions with their evidence, the credit ledger,
//! claims. Each operation is one write transaction with the license row locked:
//! the evidence is read, the rule applied and the effects stored together.

use tokio_postgres::Row;

use super::{
    corrupt, evidence_events, exec, mint_one, one, opt, require_license, rows, store_key,
    update_license_state, Db, Write,
};
use crate::domain::audit::{Actor, AuditEvent, ClaimStatus, NewEvent, PresentedBy};
use crate::domain::grace::{
    check_redemption, check_replay, ClaimVerdict, Evidence, EvidenceEvents, PastEvent, Remedy,
    StoredRedemption, AUTOMATIC_EXTENSION_REASON, MAX_LISTED_CLAIMS,
};
use crate::domain::license::License;
use crate::domain::mail::Locale;
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;
use crate::storage::grace::{
    plan_decision, Claim, ClaimOutcome, CreditEntry, Decision, DecisionOutcome, GraceRequest,
    NewClaim, NewCreditLine, Redemption,
};
use crate::storage::rows::remedy_of;
use crate::storage::{MintOutcome, StorageError};

const DECISION_COLUMNS: &str =
    "id, license_id, remedy, reason, actor, automatic, at, evidence, result, claim_id";

fn decision_from_row(r: &Row) -> Result<Decision, StorageError> {
    let remedy: String = r.try_get(2)?;
    let actor: String = r.try_get(4)?;
    let evidence: String = r.try_get(7)?;
    let result: String = r.try_get(8)?;
    Ok(Decision {
        id: r.try_get(0)?,
        license_id: r.try_get(1)?,
        remedy: remedy_of(&remedy).ok_or_else(|| corrupt("remedy"))?,
        reason: r.try_get(3)?,
        actor: serde_json::from_str(&actor).map_err(|_| corrupt("actor"))?,
        automatic: r.try_get(5)?,
        at: time::from_unix(r.try_get(6)?),
        evidence: serde_json::from_str(&evidence).map_err(|_| corrupt("evidence"))?,
        result: serde_json::from_str(&result).map_err(|_| corrupt("result"))?,
        claim_id: r.try_get(9)?,
    })
}

/// The evidence of the log about `license`: the events chained, then those this
/// transaction appended and chains at its commit.
async fn evidence_of(
    w: &Write<'_>,
    license: &License,
    now: Timestamp,
) -> Result<Evidence, StorageError> {
    let mut events = evidence_events(w, &license.id).await?;
    let read = |kind: &str| {
        EvidenceEvents::FIRST_OF.contains(&kind) || EvidenceEvents::ALL_OF.contains(&kind)
    };
    events.extend(
        w.appended(&license.id)
            .filter(|e| read(&e.event.kind()))
            .map(|e| PastEvent {
                at: e.at,
                event: e.event.clone(),
                repeats: None,
            }),
    );
    Ok(Evidence::gather(license, &events, now))
}

/// Makes a grace decision (or finds the one made under the same `Idempotency-Key`).
pub(super) async fn decide(
    w: &mut Write<'_>,
    req: &GraceRequest,
    now: Timestamp,
) -> Result<DecisionOutcome, StorageError> {
    // Locked first: a concurrent decision on the license waits here, then sees the
    // decision stored under its idempotency key.
    let license = require_license(w, &req.license_id).await?;
    if let Some(idem) = &req.idempotency {
        let found = opt(
            w,
            &format!(
                "SELECT {DECISION_COLUMNS}, request_hash FROM decisions
                 WHERE license_id = $1 AND idempotency_key = $2"
            ),
            &[&req.license_id, &idem.key],
        )
        .await?;
        if let Some(r) = found {
            let hash: Vec<u8> = r.try_get(10)?;
            check_replay(&hash, &idem.request_hash)?;
            return Ok(DecisionOutcome::Replayed(decision_from_row(&r)?));
        }
    }
    let evidence = evidence_of(w, &license, now).await?;
    let writes = plan_decision(license, &evidence, req, now)?;
    if writes.effects.store_fresh_key {
        if let Some(key) = &req.fresh_key {
            store_key(w, &writes.license.id, key, now);
        }
    }
    if let (Some(new), Some(target)) = (&writes.effects.mint, &req.target) {
        if let MintOutcome::Existing(..) = mint_one(w, new, &target.key, &req.actor).await? {
            return Err(StorageError::Corrupt(
                "a remedy's order id was taken".into(),
            ));
        }
    }
    if let Some(line) = &writes.credit {
        insert_credit(w, line).await?;
    }
    if writes.effects.license_changed {
        update_license_state(w, &writes.license).await?;
    }
    let d = &writes.decision;
    exec(
        w,
        &format!(
            "INSERT INTO decisions ({DECISION_COLUMNS}, new_license_id, idempotency_key, request_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ),
        &[
            &d.id,
            &d.license_id,
            &d.remedy.as_str(),
            &d.reason,
            &req.actor.to_json(),
            &d.automatic,
            &now.timestamp(),
            &d.evidence.to_string(),
            &writes.result_json,
            &d.claim_id,
            &d.result.new_license,
            &req.idempotency.as_ref().map(|i| i.key.as_str()),
            &req.idempotency.as_ref().map(|i| i.request_hash.as_slice()),
        ],
    )
    .await?;
    for event in writes.events.iter().cloned() {
        w.append(event);
    }
    if let Some((claim, status)) = &writes.claim {
        exec(
            w,
            "UPDATE claims SET status = $2, decision_id = $3, resolved_at = $4 WHERE id = $1",
            &[claim, &status.as_str(), &d.id, &now.timestamp()],
        )
        .await?;
    }
    Ok(DecisionOutcome::Made(writes.decision))
}

async fn insert_credit(w: &mut Write<'_>, line: &NewCreditLine) -> Result<(), StorageError> {
    exec(
        w,
        "INSERT INTO credit_entries
         (id, email, amount, currency, kind, license_id, decision_id, order_id, at, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &line.id,
            &line.email,
            &line.amount,
            &line.currency,
            &line.kind.as_str(),
            &line.license_id,
            &line.decision_id,
            &line.order_id,
            &line.at.timestamp(),
            &line.actor.to_json(),
        ],
    )
    .await?;
    w.append(line.event());
    Ok(())
}

const CREDIT_COLUMNS: &str =
    "id, email, amount, currency, kind, license_id, decision_id, order_id, at";

fn credit_from_row(r: &Row) -> Result<CreditEntry, StorageError> {
    Ok(CreditEntry {
        id: r.try_get(0)?,
        email: r.try_get(1)?,
        amount: r.try_get(2)?,
        currency: r.try_get(3)?,
        kind: r.try_get(4)?,
        license_id: r.try_get(5)?,
        decision_id: r.try_get(6)?,
        order_id: r.try_get(7)?,
        at: time::from_unix(r.try_get(8)?),
    })
}

/// A customer's ledger, oldest first.
pub(super) async fn credits<C: Db + ?Sized>(
    c: &C,
    email: &str,
) -> Result<Vec<CreditEntry>, StorageError> {
    rows(
        c,
        &format!("SELECT {CREDIT_COLUMNS} FROM credit_entries WHERE email = $1 ORDER BY at, n"),
        &[&email],
    )
    .await?
    .iter()
    .map(credit_from_row)
    .collect()
}

/// Spends credit on an order; the same order again finds the first redemption.
pub(super) async fn redeem(
    w: &mut Write<'_>,
    r: &Redemption,
    now: Timestamp,
) -> Result<(CreditEntry, bool), StorageError> {
    // The customer's entries in the currency are locked first (in one order, so two
    // redemptions never wait on each other crosswise): no other redemption of the
    // balance runs between its reading below and the insert. Without an entry the
    // balance is zero and nothing can be spent. A redemption of the same order for
    // another customer takes other locks: the order id's unique constraint stops
    // it, and its second run (`write_tx!`) finds this one.
    exec(
        w,
        "SELECT n FROM credit_entries WHERE email = $1 AND currency = $2 ORDER BY n FOR UPDATE",
        &[&r.email, &r.amount.currency],
    )
    .await?;
    let existing = opt(
        w,
        &format!("SELECT {CREDIT_COLUMNS} FROM credit_entries WHERE order_id = $1"),
        &[&r.order_id],
    )
    .await?
    .as_ref()
    .map(credit_from_row)
    .transpose()?;
    let balance: i64 = one(
        w,
        "SELECT coalesce(sum(amount), 0)::BIGINT FROM credit_entries
         WHERE email = $1 AND currency = $2",
        &[&r.email, &r.amount.currency],
    )
    .await?
    .try_get(0)?;
    let stored = existing.as_ref().map(|e| StoredRedemption {
        email: &e.email,
        amount: e.amount,
        currency: &e.currency,
    });
    if !check_redemption(&r.order_id, &r.email, &r.amount, stored, balance)? {
        let e = existing.ok_or_else(|| StorageError::Corrupt("redemption vanished".into()))?;
        return Ok((e, false));
    }
    insert_credit(w, &r.line(now)?).await?;
    let entry = opt(
        w,
        &format!("SELECT {CREDIT_COLUMNS} FROM credit_entries WHERE id = $1"),
        &[&r.id],
    )
    .await?
    .as_ref()
    .map(credit_from_row)
    .transpose()?
    .ok_or_else(|| StorageError::Corrupt("redemption vanished".into()))?;
    Ok((entry, true))
}

/// Confirms an upgrade's payment: the pending license becomes active.
pub(super) async fn confirm_payment(
    w: &mut Write<'_>,
    id: &str,
    actor: &Actor,
    now: Timestamp,
) -> Result<License, StorageError> {
    let mut license = require_license(w, id).await?;
    let event = license.confirm_payment(now)?;
    update_license_state(w, &license).await?;
    w.append(NewEvent::about(id, now, actor.clone(), event));
    Ok(license)
}

const CLAIM_COLUMNS: &str =
    "id, license_id, email, message, status, note, decision_id, created_at, resolved_at, locale";

fn claim_from_row(r: &Row) -> Result<Claim, StorageError> {
    let status: String = r.try_get(4)?;
    Ok(Claim {
        id: r.try_get(0)?,
        license_id: r.try_get(1)?,
        email: r.try_get(2)?,
        message: r.try_get(3)?,
        status: ClaimStatus::parse(&status).ok_or_else(|| corrupt("claim status"))?,
        note: r.try_get(5)?,
        decision_id: r.try_get(6)?,
        created_at: time::from_unix(r.try_get(7)?),
        resolved_at: r.try_get::<_, Option<i64>>(8)?.map(time::from_unix),
        locale: r
            .try_get::<_, Option<String>>(9)?
            .as_deref()
            .and_then(Locale::parse)
            .unwrap_or_default(),
    })
}

/// One claim.
pub(super) async fn claim<C: Db + ?Sized>(c: &C, id: &str) -> Result<Option<Claim>, StorageError> {
    opt(
        c,
        &format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(claim_from_row)
    .transpose()
}

/// Claims with a status, oldest first (at most [`MAX_LISTED_CLAIMS`]).
pub(super) async fn claims<C: Db + ?Sized>(
    c: &C,
    status: ClaimStatus,
) -> Result<Vec<Claim>, StorageError> {
    rows(
        c,
        &format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE status = $1 ORDER BY created_at, id
             LIMIT {MAX_LISTED_CLAIMS}"
        ),
        &[&status.as_str()],
    )
    .await?
    .iter()
    .map(claim_from_row)
    .collect()
}

/// A customer's claims, oldest first (at most [`MAX_LISTED_CLAIMS`]): those of the
/// licenses sold to `email` and those filed under it.
pub(super) async fn customer_claims<C: Db + ?Sized>(
    c: &C,
    email: &str,
) -> Result<Vec<Claim>, StorageError> {
    rows(
        c,
        &format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE license_id IN
                 (SELECT id FROM licenses WHERE customer_email = $1)
             UNION
             SELECT {CLAIM_COLUMNS} FROM claims WHERE email = $1
             ORDER BY created_at, id
             LIMIT {MAX_LISTED_CLAIMS}"
        ),
        &[&email],
    )
    .await?
    .iter()
    .map(claim_from_row)
    .collect()
}

/// The claims on one license with a status, oldest first (at most
/// [`MAX_LISTED_CLAIMS`]), through `claims_by_license`.
pub(super) async fn license_claims<C: Db + ?Sized>(
    c: &C,
    license_id: &str,
    status: ClaimStatus,
) -> Result<Vec<Claim>, StorageError> {
    rows(
        c,
        &format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE license_id = $1 AND status = $2
             ORDER BY created_at, id LIMIT {MAX_LISTED_CLAIMS}"
        ),
        &[&license_id, &status.as_str()],
    )
    .await?
    .iter()
    .map(claim_from_row)
    .collect()
}

/// A customer's own claim: granted by the policy, or filed for support.
pub(super) async fn file_claim(
    w: &mut Write<'_>,
    c: &NewClaim,
    now: Timestamp,
) -> Result<ClaimOutcome, StorageError> {
    let Some(license_id) = super::activations::license_of_key(w, &c.key_hash).await? else {
        return Ok(ClaimOutcome::NotFound);
    };
    let license = require_license(w, &license_id).await?;
    super::activations::mark_presented(w, &license_id, false, PresentedBy::Claim, now).await?;
    let evidence = evidence_of(w, &license, now).await?;
    let (verdict, terms) = c.rules.judge(&license, &evidence, now);
    let note = match verdict {
        ClaimVerdict::NotNeeded => return Ok(ClaimOutcome::NotNeeded(Box::new(license))),
        ClaimVerdict::Extend(days) => {
            let decision = decide(
                w,
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
            )
            .await?;
            let (DecisionOutcome::Made(decision) | DecisionOutcome::Replayed(decision)) = decision;
            insert_claim(
                w,
                c,
                &license_id,
                ClaimStatus::Granted,
                None,
                Some(&decision.id),
                now,
            )
            .await?;
            if let Some(mail) = c.mail_about(&license, Some(&decision.id)) {
                w.queue_mail(&mail, now);
            }
            return Ok(ClaimOutcome::Granted(Box::new(decision)));
        }
        ClaimVerdict::ForSupport(why) => why,
    };
    insert_claim(
        w,
        c,
        &license_id,
        ClaimStatus::Pending,
        Some(note),
        None,
        now,
    )
    .await?;
    if let Some(mail) = c.mail_about(&license, None) {
        w.queue_mail(&mail, now);
    }
    let filed = claim(w, &c.id)
        .await?
        .ok_or_else(|| StorageError::Corrupt("claim vanished".into()))?;
    Ok(ClaimOutcome::Filed(Box::new(filed)))
}

async fn insert_claim(
    w: &mut Write<'_>,
    c: &NewClaim,
    license_id: &str,
    status: ClaimStatus,
    note: Option<&str>,
    decision: Option<&str>,
    now: Timestamp,
) -> Result<(), StorageError> {
    let resolved = decision.map(|_| now.timestamp());
    exec(
        w,
        &format!(
            "INSERT INTO claims ({CLAIM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &c.id,
            &license_id,
            &c.email,
            &c.message,
            &status.as_str(),
            &note,
            &decision,
            &now.timestamp(),
            &resolved,
            &c.locale.as_str(),
        ],
    )
    .await?;
    w.append(NewEvent::about(
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
    ));
    Ok(())
}

/// Support closes a pending claim with a decision.
pub(super) async fn resolve_claim(
    w: &mut Write<'_>,
    req: &GraceRequest,
    now: Timestamp,
) -> Result<DecisionOutcome, StorageError> {
    let claim_id = req
        .claim_id
        .as_deref()
        .ok_or_else(|| StorageError::Corrupt("a claim's decision without its claim".into()))?;
    // The license is locked before the claim is read: a resolution of the claim
    // that committed while this waited is seen, and the claim resolved once.
    require_license(w, &req.license_id).await?;
    let found = claim(w, claim_id)
        .await?
        .ok_or(DomainError::ClaimNotFound)?;
    found.status.check_resolvable(req.idempotency.is_some())?;
    if found.license_id != req.license_id {
        return Err(StorageError::Corrupt("claim and license disagree".into()));
    }
    let outcome = decide(w, req, now).await?;
    if let (DecisionOutcome::Made(_), Some(mail)) = (&outcome, &req.mail) {
        w.queue_mail(mail, now);
    }
    Ok(outcome)
}
