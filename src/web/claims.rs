//! The late-claim flow of the console: a remedy's preview (its effect worked out by
//! the decision's own rule), the confirmed decision, and the queue of pending claims.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::domain::audit::ClaimStatus;
use crate::domain::grace::{DecisionAsk, Plan, Remedy};
use crate::domain::ids::new_id;
use crate::domain::license::{parse_email, License};
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;
use crate::service::grace::{GraceBody, Granted};
use crate::service::{AppState, ServiceError};
use crate::storage::grace::QueuedClaim;
use crate::web::display::{money, summary, When};
use crate::web::licenses::{failed, problem, reauth, sentence_case, EvidenceView, REMEDY_CHOICES};
use crate::web::pages::{render, Me};
use crate::web::session::Staff;
use crate::web::ConsoleState;

/// Pending claims the queue shows at most, oldest first.
const QUEUE_SHOWN: usize = 100;

/// Whether `remedy` needs the password asked again: money leaves or is promised.
fn needs_password(remedy: Remedy) -> bool {
    matches!(remedy, Remedy::Credit | Remedy::Refund)
}

fn remedy_of(s: &str) -> Option<Remedy> {
    Remedy::ALL.into_iter().find(|r| r.as_str() == s)
}

/// Another product as a substitute or upgrade, as the preview lists it.
#[derive(Debug, Clone)]
pub struct CandidateRow {
    /// Product id.
    pub product: String,
    /// Display name.
    pub name: String,
    /// Catalog price.
    pub price: String,
    /// Whether the decision would accept it.
    pub allowed: bool,
    /// What it would do (`no cost`, `49.00 EUR due`) or why not.
    pub note: String,
    /// Chosen already.
    pub checked: bool,
}

/// The preview of a remedy, and the form that grants it.
#[derive(Template)]
#[template(path = "console/remedy_preview.html")]
pub struct RemedyPage {
    /// The staff member.
    pub me: Option<Me>,
    /// The license.
    pub id: String,
    /// Its product, status and order, to be sure of the license.
    pub summary: String,
    /// The remedy.
    pub remedy: &'static str,
    /// Its name for people.
    pub remedy_label: &'static str,
    /// The claim the decision closes, if one.
    pub claim: String,
    /// The evidence (always there; an option for the shared template).
    pub evidence: Option<EvidenceView>,
    /// What the remedy does, when it can be made.
    pub effect: Option<String>,
    /// The new deadline of an extension.
    pub new_deadline: Option<When>,
    /// Why it cannot be made as asked.
    pub refusal: Option<String>,
    /// What to choose before the effect can be shown.
    pub prompt: Option<String>,
    /// Whether the remedy takes days (extend).
    pub takes_days: bool,
    /// The days typed.
    pub days: String,
    /// Whether the remedy takes another product.
    pub takes_product: bool,
    /// The products it could give.
    pub candidates: Vec<CandidateRow>,
    /// Whether a ledger email must be given (credit, for a license without one).
    pub takes_email: bool,
    /// The email typed.
    pub email: String,
    /// Whether the password is asked again.
    pub ask_password: bool,
    /// Sent with the decision, so that sending the form twice decides once.
    pub idempotency: String,
    /// Whether the form may be sent.
    pub can_confirm: bool,
    /// Why the last try failed.
    pub error: Option<String>,
    /// The reason typed.
    pub reason: String,
    /// The six remedies, to switch.
    pub remedies: [(&'static str, &'static str); 6],
}

/// What a remedy is asked with: the query of the preview, the fields of the decision.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RemedyForm {
    #[serde(default)]
    remedy: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    claim: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    idempotency: String,
    #[serde(default)]
    password: Option<String>,
}

fn effect_of(plan: &Plan, license: &License, product: &str) -> String {
    match plan {
        Plan::Extend { days, .. } => format!(
            "The activation window opens again for {days} days. The customer's key works as it \
             is: their app can activate now."
        ),
        Plan::Substitute => format!(
            "A new license for {product} is made at no cost, with a new key; license {} \
             closes as superseded.",
            license.id
        ),
        Plan::Upgrade { amount_due } => format!(
            "A new license for {product} is made, usable once {} is paid; license {} closes \
             as superseded.",
            money(amount_due),
            license.id
        ),
        Plan::Credit { amount, email } => format!(
            "{} goes to the store credit of {email}; license {} closes as credited.",
            money(amount),
            license.id
        ),
        Plan::Refund { amount } => format!(
            "{} is recorded as paid back; license {} closes as refunded.",
            money(amount),
            license.id
        ),
        Plan::Decline => "Nothing changes; the reason is recorded in the license's history.".into(),
    }
}

/// Why a product cannot be the target, with amounts written as money.
fn why_not(e: &DomainError, currency: &str) -> String {
    let m = |amount: u64| {
        money(&crate::domain::product::Price {
            amount,
            currency: currency.to_owned(),
        })
    };
    match e {
        DomainError::SubstituteTooExpensive { price, ceiling } => format!(
            "Costs {}, more than the {} a substitute may cost; an upgrade can give it.",
            m(*price),
            m(*ceiling)
        ),
        DomainError::UpgradeNotDearer => {
            "Not dearer than the price paid; a substitute can give it.".to_owned()
        }
        other => sentence_case(&other.to_string()) + ".",
    }
}

fn parse_days(s: &str) -> Result<Option<u32>, String> {
    match s.trim() {
        "" => Ok(None),
        d => d
            .parse::<u32>()
            .map(Some)
            .map_err(|_| "Days must be a whole number, such as 30.".to_owned()),
    }
}

/// Everything the preview of `form` on license `id` shows.
async fn remedy_page(
    app: &AppState,
    console: &ConsoleState,
    staff: &Staff,
    id: &str,
    form: &RemedyForm,
    error: Option<String>,
) -> Result<Result<RemedyPage, &'static str>, ServiceError> {
    let now = time::now();
    let Some(remedy) = remedy_of(&form.remedy) else {
        return Ok(Err("Choose one of the six remedies on the license's page."));
    };
    let (license, evidence) = app.evidence(id, now).await?;
    if !form.claim.is_empty() {
        let claim = app.claim_by_id(&form.claim).await?;
        if claim.license_id != license.id || claim.status != ClaimStatus::Pending {
            return Ok(Err(
                "That claim is not pending on this license; open the queue again.",
            ));
        }
    }
    let days = parse_days(&form.days);
    let email = (!form.email.trim().is_empty()).then(|| form.email.trim().to_owned());
    let mut candidates = Vec::new();
    let mut chosen_price = None;
    if remedy.mints() {
        for c in app.candidates(&license, remedy, now) {
            let checked = c.product == form.product;
            if checked {
                chosen_price = Some(c.price.clone());
            }
            let (allowed, note) = match &c.plan {
                Ok(Plan::Upgrade { amount_due }) => (true, format!("{} due", money(amount_due))),
                Ok(_) => (true, "no cost".to_owned()),
                Err(e) => (false, why_not(e, &c.price.currency)),
            };
            candidates.push(CandidateRow {
                product: c.product,
                name: c.name,
                price: money(&c.price),
                allowed,
                note,
                checked,
            });
        }
    }
    let mut prompt = None;
    let plan = match (&days, remedy.mints(), &chosen_price) {
        (Err(why), _, _) => Err(why.clone()),
        (_, true, None) if candidates.iter().any(|c| c.allowed) => {
            prompt = Some("Choose a product below: each shows what it would do.".to_owned());
            Err(String::new())
        }
        (_, true, None) => Err(format!(
            "No product of the catalog can be a {} for this license.",
            remedy.as_str()
        )),
        (Ok(days), _, price) => app
            .preview(
                &license,
                DecisionAsk {
                    remedy,
                    days: *days,
                    target_price: price.as_ref(),
                    email: email.as_deref(),
                },
                now,
            )
            .map_err(|e| sentence_case(&e.to_string()) + "."),
    };
    let within = chrono::Duration::minutes(i64::from(console.settings.reauth_minutes));
    let can_confirm = plan.is_ok() || (remedy.mints() && candidates.iter().any(|c| c.allowed));
    let label = REMEDY_CHOICES
        .iter()
        .find(|(v, _)| *v == remedy.as_str())
        .map_or("", |(_, l)| *l);
    Ok(Ok(RemedyPage {
        me: Some(Me::of(staff)),
        id: license.id.clone(),
        summary: summary(&license),
        remedy: remedy.as_str(),
        remedy_label: label,
        claim: form.claim.clone(),
        evidence: Some(EvidenceView::of(&evidence, now)),
        effect: plan
            .as_ref()
            .ok()
            .map(|p| effect_of(p, &license, &form.product)),
        new_deadline: match &plan {
            Ok(Plan::Extend { activate_by, .. }) => Some(When::at(*activate_by, now)),
            _ => None,
        },
        refusal: plan.err().filter(|r| !r.is_empty()),
        prompt,
        takes_days: remedy.takes_days(),
        days: form.days.trim().to_owned(),
        takes_product: remedy.mints(),
        candidates,
        takes_email: remedy.takes_email() && license.customer_email.is_none(),
        email: form.email.trim().to_owned(),
        ask_password: needs_password(remedy) && !staff.session.reauthenticated(within, now),
        idempotency: if form.idempotency.is_empty() {
            format!("console-{}", new_id("dec", now))
        } else {
            form.idempotency.clone()
        },
        can_confirm,
        error,
        reason: form.reason.clone(),
        remedies: REMEDY_CHOICES,
    }))
}

async fn show(
    app: &AppState,
    console: &ConsoleState,
    staff: &Staff,
    id: &str,
    form: &RemedyForm,
    error: Option<String>,
) -> HttpResponse {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    match remedy_page(app, console, staff, id, form, error).await {
        Ok(Ok(page)) => render(status, &page),
        Ok(Err(advice)) => problem(staff, StatusCode::NOT_FOUND, "Nothing to preview", advice),
        Err(e) => failed(staff, &e),
    }
}

/// `GET /console/licenses/{id}/remedy?remedy=`: the evidence beside the effect of
/// the remedy, and the form that grants it.
pub async fn preview(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    staff: Staff,
    path: web::Path<String>,
    query: web::Query<RemedyForm>,
) -> HttpResponse {
    show(&app, &console, &staff, &path, &query, None).await
}

/// What a decision made, as its page shows it.
#[derive(Template)]
#[template(path = "console/decision.html")]
pub struct DecisionPage {
    /// The staff member.
    pub me: Option<Me>,
    /// `dec_…`
    pub decision: String,
    /// The remedy.
    pub remedy: &'static str,
    /// Why.
    pub reason: String,
    /// The license decided on.
    pub license: String,
    /// Its status now.
    pub status: &'static str,
    /// The claim it closed.
    pub claim: String,
    /// The new deadline (extend).
    pub new_deadline: Option<When>,
    /// The new license (substitute, upgrade).
    pub new_license: String,
    /// The key the customer should use now.
    pub key: Option<String>,
    /// What is still to pay (upgrade).
    pub amount_due: String,
    /// The credit and whose ledger (credit).
    pub credit: String,
    /// What was paid back (refund).
    pub refund: String,
    /// Found again: the form was sent twice and decided once.
    pub replayed: bool,
}

fn decision_page(staff: &Staff, g: &Granted, now: Timestamp) -> DecisionPage {
    let r = &g.decision.result;
    DecisionPage {
        me: Some(Me::of(staff)),
        decision: g.decision.id.clone(),
        remedy: g.decision.remedy.as_str(),
        reason: g.decision.reason.clone(),
        license: g.license.id.clone(),
        status: g.license.status.as_str(),
        claim: g.decision.claim_id.clone().unwrap_or_default(),
        new_deadline: r
            .activate_by
            .as_deref()
            .and_then(time::parse)
            .map(|t| When::at(t, now)),
        new_license: r.new_license.clone().unwrap_or_default(),
        key: g.key.clone(),
        amount_due: r.amount_due.as_ref().map(money).unwrap_or_default(),
        credit: match (&r.credit, &r.credit_email) {
            (Some(p), Some(e)) => format!("{} to {e}", money(p)),
            (Some(p), None) => money(p),
            _ => String::new(),
        },
        refund: r.refund.as_ref().map(money).unwrap_or_default(),
        replayed: g.replayed,
    }
}

/// `POST /console/licenses/{id}/remedy`: the decision, through the API's own
/// operation (a claim's when it closes one), with the staff member as actor.
pub async fn decide(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<RemedyForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let id = path.into_inner();
    let now = time::now();
    let Some(remedy) = remedy_of(&form.remedy) else {
        return show(&app, &console, &staff, &id, &form, None).await;
    };
    if form.reason.trim().is_empty() {
        let why = "Write the reason: it goes into the license's history.".to_owned();
        return show(&app, &console, &staff, &id, &form, Some(why)).await;
    }
    let days = match parse_days(&form.days) {
        Ok(d) => d.filter(|_| remedy.takes_days()),
        Err(why) => return show(&app, &console, &staff, &id, &form, Some(why)).await,
    };
    let email = match form.email.trim() {
        "" => None,
        _ if !remedy.takes_email() => None,
        e => match parse_email("email", e) {
            Ok(e) => Some(e),
            Err(_) => {
                let why = "That email is not an email address.".to_owned();
                return show(&app, &console, &staff, &id, &form, Some(why)).await;
            }
        },
    };
    match reauth(
        &app,
        &console,
        &staff,
        needs_password(remedy),
        form.password.clone(),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return show(&app, &console, &staff, &id, &form, Some(why)).await,
        Err(e) => return failed(&staff, &e),
    }
    let body = GraceBody {
        remedy,
        reason: form.reason.trim().to_owned(),
        days,
        product: (remedy.mints() && !form.product.is_empty()).then(|| form.product.clone()),
        email,
    };
    let idempotency = (!form.idempotency.is_empty()).then(|| form.idempotency.clone());
    let actor = staff.user.actor();
    let done = if form.claim.is_empty() {
        app.grace(&id, body, actor, idempotency, None, now).await
    } else {
        match app.claim_by_id(&form.claim).await {
            Ok(c) if c.license_id == id => {
                app.resolve_claim(&form.claim, body, actor, idempotency, now)
                    .await
            }
            Ok(_) => Err(DomainError::ClaimNotFound.into()),
            Err(e) => Err(e),
        }
    };
    match done {
        Ok(granted) => render(StatusCode::OK, &decision_page(&staff, &granted, now)),
        Err(ServiceError::Domain(d)) if d != DomainError::LicenseNotFound => {
            let why = sentence_case(&d.to_string()) + ".";
            show(&app, &console, &staff, &id, &form, Some(why)).await
        }
        Err(e) => failed(&staff, &e),
    }
}

/// A pending claim as the queue shows it.
#[derive(Debug, Clone)]
pub struct ClaimRow {
    /// `clm_…`
    pub id: String,
    /// Filed.
    pub filed: When,
    /// The email the customer gave.
    pub email: String,
    /// Their message.
    pub message: String,
    /// Why the policy left it to support.
    pub note: String,
    /// The license.
    pub license: String,
    /// Its product.
    pub product: String,
    /// Its status.
    pub status: &'static str,
    /// The evidence (always there; an option for the shared template).
    pub evidence: Option<EvidenceView>,
}

/// The queue of pending claims.
#[derive(Template)]
#[template(path = "console/claims.html")]
pub struct ClaimsPage {
    /// The staff member.
    pub me: Option<Me>,
    /// The claims, oldest first.
    pub claims: Vec<ClaimRow>,
    /// Pending claims beyond those shown.
    pub more: usize,
    /// The six remedies.
    pub remedies: [(&'static str, &'static str); 6],
}

/// `GET /console/claims`: pending claims, oldest first, each with its evidence and
/// the remedies to preview.
pub async fn queue(app: web::Data<AppState>, staff: Staff) -> HttpResponse {
    let now = time::now();
    // One read for the queue and the evidence of every claim shown.
    let pending = match app
        .claims_with_evidence(ClaimStatus::Pending, QUEUE_SHOWN, now)
        .await
    {
        Ok(c) => c,
        Err(e) => return failed(&staff, &e),
    };
    let more = pending.len().saturating_sub(QUEUE_SHOWN);
    let mut claims = Vec::new();
    for QueuedClaim { claim: c, read } in pending.into_iter().take(QUEUE_SHOWN) {
        let Some((license, evidence)) = read else {
            return failed(&staff, &DomainError::LicenseNotFound.into());
        };
        claims.push(ClaimRow {
            id: c.id,
            filed: When::at(c.created_at, now),
            email: c.email.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
            note: c.note.unwrap_or_default(),
            license: license.id.clone(),
            product: license.product.clone(),
            status: license.status.as_str(),
            evidence: Some(EvidenceView::of(&evidence, now)),
        });
    }
    render(
        StatusCode::OK,
        &ClaimsPage {
            me: Some(Me::of(&staff)),
            claims,
            more,
            remedies: REMEDY_CHOICES,
        },
    )
}
