//! The console's license pages: the search, a license with its machines, history
//! and lifecycle actions (each confirmed first), and the late-claim panel.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::domain::audit::ClaimStatus;
use crate::domain::grace::Evidence;
use crate::domain::license::{Action, License};
use crate::domain::product::DurationFrom;
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;
use crate::routes::extract::ClientAddr;
use crate::service::console::FoundBy;
use crate::service::{note, AppState, DeactivationRequest, ServiceError};
use crate::storage::activation::Activation;
use crate::storage::EventPage;
use crate::web::customers::customer_path;
use crate::web::display::{actor_label, days, money, sentence, summary, When};
use crate::web::pages::{render, ErrorPage, Me};
use crate::web::session::Staff;
use crate::web::{see_other, ConsoleState};

/// Events of the history a license page shows at most (the API pages the rest).
const HISTORY_SHOWN: u32 = crate::domain::audit::MAX_HISTORY_PAGE;

/// A page that says what went wrong and what to do, in the signed-in layout.
pub fn problem(staff: &Staff, status: StatusCode, heading: &str, advice: &str) -> HttpResponse {
    render(
        status,
        &ErrorPage {
            me: Some(Me::of(staff)),
            heading: heading.to_owned(),
            advice: advice.to_owned(),
        },
    )
}

/// The page of a failed operation: what to do, never the cause of a failure on our
/// side (that goes to the log).
pub fn failed(staff: &Staff, e: &ServiceError) -> HttpResponse {
    match e {
        ServiceError::Domain(DomainError::LicenseNotFound) => problem(
            staff,
            StatusCode::NOT_FOUND,
            "No such license",
            "Search for it again by key, email or order id.",
        ),
        ServiceError::Domain(DomainError::ClaimNotFound) => problem(
            staff,
            StatusCode::NOT_FOUND,
            "No such claim",
            "Open the claims queue again.",
        ),
        ServiceError::ActivationNotFound => problem(
            staff,
            StatusCode::NOT_FOUND,
            "No such machine on this license",
            "Open the license again and choose a machine from its list.",
        ),
        ServiceError::Domain(d) => problem(
            staff,
            StatusCode::CONFLICT,
            "This could not be done",
            &format!(
                "{}. Go back to the license to choose again.",
                sentence_case(&d.to_string())
            ),
        ),
        ServiceError::InvalidParameter(m) | ServiceError::MissingField(m) => problem(
            staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Part of the form was not right",
            &format!("{}. Go back and correct it.", sentence_case(m)),
        ),
        ServiceError::Unavailable(_) => problem(
            staff,
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is not answering",
            "Try again in a minute.",
        ),
        other => {
            log::error!("console: {other}");
            problem(
                staff,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side",
                "Try again; if it keeps failing, tell the operator.",
            )
        }
    }
}

/// `s` with a capital first letter.
pub fn sentence_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A license as a row of results.
#[derive(Debug, Clone)]
pub struct LicenseRow {
    /// `lic_…`
    pub id: String,
    /// Product id.
    pub product: String,
    /// Status.
    pub status: &'static str,
    /// The shop's order.
    pub order_id: String,
    /// The customer, if known.
    pub email: String,
    /// The customer page of the email (empty without one).
    pub customer_href: String,
    /// Purchased.
    pub purchased: When,
    /// How the search found it.
    pub found_by: &'static str,
}

impl LicenseRow {
    fn of(l: &License, found_by: &'static str, now: Timestamp) -> Self {
        Self {
            id: l.id.clone(),
            product: l.product.clone(),
            status: l.status.as_str(),
            order_id: l.order_id.clone(),
            email: l.customer_email.clone().unwrap_or_default(),
            customer_href: l
                .customer_email
                .as_deref()
                .map(customer_path)
                .unwrap_or_default(),
            purchased: When::at(l.purchased_at, now),
            found_by,
        }
    }
}

/// The search and its results.
#[derive(Template)]
#[template(path = "console/search.html")]
pub struct SearchPage {
    /// The staff member.
    pub me: Option<Me>,
    /// What was searched for.
    pub q: String,
    /// What it found.
    pub results: Vec<LicenseRow>,
    /// The customer page, when the query was an email that found licenses.
    pub customer_href: String,
}

/// `?q=` of the search.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /console/search?q=`: one hit goes straight to its license.
pub async fn search(
    app: web::Data<AppState>,
    staff: Staff,
    query: web::Query<SearchQuery>,
) -> HttpResponse {
    let now = time::now();
    let q = query.q.trim().to_owned();
    let found = if q.is_empty() {
        Vec::new()
    } else {
        match app.search(&q).await {
            Ok(f) => f,
            Err(e) => return failed(&staff, &e),
        }
    };
    if let [(only, _)] = found.as_slice() {
        return see_other(&format!("/console/licenses/{}", only.id));
    }
    render(
        if q.is_empty() || !found.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        &SearchPage {
            me: Some(Me::of(&staff)),
            results: found
                .iter()
                .map(|(l, by)| LicenseRow::of(l, by.as_str(), now))
                .collect(),
            customer_href: if found.iter().any(|(_, by)| *by == FoundBy::Email) {
                customer_path(&q)
            } else {
                String::new()
            },
            q,
        },
    )
}

/// A date of the license with its distance from now.
#[derive(Debug, Clone)]
pub struct Dated {
    /// The date.
    pub when: When,
    /// `12 days left`, `40 days late`, `3 days ago`.
    pub note: String,
}

/// A machine of the license.
#[derive(Debug, Clone)]
pub struct MachineRow {
    /// `act_…`
    pub id: String,
    /// Its name, as the app sent it.
    pub name: String,
    /// Its platform.
    pub platform: String,
    /// Activated.
    pub first_seen: When,
    /// Last seen.
    pub last_seen: When,
    /// Deactivated, if it was.
    pub deactivated: Option<When>,
}

impl MachineRow {
    fn of(a: &Activation, now: Timestamp) -> Self {
        Self {
            id: a.id.clone(),
            name: a.name.clone().unwrap_or_else(|| "(no name)".into()),
            platform: a.platform.clone().unwrap_or_else(|| "(unknown)".into()),
            first_seen: When::at(a.activated_at, now),
            last_seen: When::at(a.last_seen, now),
            deactivated: a.deactivated_at.map(|t| When::at(t, now)),
        }
    }
}

/// One line of the history.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// When.
    pub at: When,
    /// Who (`user:ann@example.com`).
    pub actor: String,
    /// What, as a sentence.
    pub sentence: String,
}

/// A lifecycle action the license's status allows now.
#[derive(Debug, Clone)]
pub struct ActionLink {
    /// `suspend`, `reinstate`, `revoke`, `refund`, `renew`.
    pub action: &'static str,
    /// The button's text.
    pub label: &'static str,
}

/// The evidence of a late claim, as the panel shows it.
#[derive(Debug, Clone)]
pub struct EvidenceView {
    /// The deadline.
    pub deadline: Option<When>,
    /// Whole days past it.
    pub days_late: i64,
    /// When the key was first presented, if ever.
    pub first_presented: Option<When>,
    /// Whether that was before the deadline.
    pub presented_before_deadline: bool,
    /// Whether any machine ever activated.
    pub ever_activated: bool,
    /// When a file was first downloaded, if ever.
    pub first_downloaded: Option<When>,
    /// Downloads started.
    pub downloads: u64,
    /// Refused activations: when, code, how often, last time.
    pub refused: Vec<(When, String, u64, When)>,
    /// Earlier decisions: when, remedy, by the policy, id.
    pub decisions: Vec<(When, String, bool, String)>,
}

impl EvidenceView {
    /// The view of `e` at `now`.
    pub fn of(e: &Evidence, now: Timestamp) -> Self {
        Self {
            deadline: e.activate_by.map(|t| When::at(t, now)),
            days_late: e.days_late,
            first_presented: e.first_presented_at.map(|t| When::at(t, now)),
            presented_before_deadline: e.presented_before_deadline,
            ever_activated: e.ever_activated,
            first_downloaded: e.first_downloaded_at.map(|t| When::at(t, now)),
            downloads: e.downloads,
            refused: e
                .refused_activations
                .iter()
                .map(|r| {
                    (
                        When::at(r.at, now),
                        r.code.clone(),
                        r.attempts,
                        When::at(r.last_at, now),
                    )
                })
                .collect(),
            decisions: e
                .earlier_decisions
                .iter()
                .map(|d| {
                    (
                        When::at(d.at, now),
                        d.remedy.clone(),
                        d.automatic,
                        d.decision.clone(),
                    )
                })
                .collect(),
        }
    }
}

/// The six remedies, as the panel offers them: value and button text.
pub const REMEDY_CHOICES: [(&str, &str); 6] = [
    ("extend", "Extend the window"),
    ("substitute", "Substitute another product"),
    ("upgrade", "Upgrade to a dearer product"),
    ("credit", "Give store credit"),
    ("refund", "Refund"),
    ("decline", "Decline"),
];

/// A license's page.
#[derive(Template)]
#[template(path = "console/license.html")]
pub struct LicensePage {
    /// The staff member.
    pub me: Option<Me>,
    /// `lic_…`
    pub id: String,
    /// Product id and name.
    pub product: String,
    /// The product's display name, if it is still in the catalog.
    pub product_name: String,
    /// Status.
    pub status: &'static str,
    /// The shop's order.
    pub order_id: String,
    /// The customer.
    pub email: String,
    /// The customer page of the email (empty without one).
    pub customer_href: String,
    /// Purchased, with how long ago.
    pub purchased: Dated,
    /// The activation deadline, with days left or late.
    pub activate_by: Option<Dated>,
    /// The expiry, with days left or since.
    pub expires: Option<Dated>,
    /// Without an expiry: `never`, or how it will be set.
    pub expires_note: String,
    /// Seats held now.
    pub seats_used: usize,
    /// Seats of the license.
    pub seats: u32,
    /// The price paid, if known.
    pub price: String,
    /// What an upgrade still waits for.
    pub amount_due: String,
    /// The license this one replaced, and the one that replaced it.
    pub supersedes: String,
    /// The license that replaced this one.
    pub superseded_by: String,
    /// Entitlements, comma-separated.
    pub entitlements: String,
    /// Metadata, key and JSON value.
    pub metadata: Vec<(String, String)>,
    /// The key, once asked for.
    pub key: Option<String>,
    /// Machines, live first.
    pub machines: Vec<MachineRow>,
    /// The history, oldest first.
    pub history: Vec<HistoryRow>,
    /// The lifecycle actions allowed now.
    pub actions: Vec<ActionLink>,
    /// The late-claim panel's evidence, when the window closed without an activation.
    pub evidence: Option<EvidenceView>,
    /// The remedies.
    pub remedies: [(&'static str, &'static str); 6],
    /// Claims on this license waiting for support: id, filed, message.
    pub pending_claims: Vec<(String, When, String)>,
    /// The oldest of them, which a remedy chosen here closes.
    pub claim: String,
    /// What the last action did.
    pub notice: Option<String>,
}

/// The lifecycle actions `license` allows at `now`, as the domain says.
fn actions_of(license: &License, now: Timestamp) -> Vec<ActionLink> {
    let mut out: Vec<ActionLink> = [
        (Action::Suspend, "Suspend"),
        (Action::Reinstate, "Reinstate"),
        (Action::Revoke, "Revoke"),
        (Action::Refund, "Refund"),
    ]
    .into_iter()
    .filter(|(a, _)| license.apply(*a).is_ok())
    .map(|(a, label)| ActionLink {
        action: a.as_str(),
        label,
    })
    .collect();
    let renewable = !matches!(
        license.renew(None, now),
        Err(DomainError::InvalidTransition { .. } | DomainError::LicensePerpetual)
    );
    if renewable {
        out.push(ActionLink {
            action: "renew",
            label: "Renew",
        });
    }
    out
}

fn dated(t: Timestamp, now: Timestamp, deadline: bool) -> Dated {
    let when = When::at(t, now);
    let note = if deadline {
        when.left_or_late()
    } else {
        when.from_now()
    };
    Dated { when, note }
}

/// Everything a license page shows, read for `id`.
pub async fn license_page(
    app: &AppState,
    staff: &Staff,
    id: &str,
    key: bool,
    done: Option<&str>,
) -> Result<LicensePage, ServiceError> {
    let now = time::now();
    let (license, machines) = app.machines(id).await?;
    let key = if key {
        Some(app.license_with_key(id).await?.1)
    } else {
        None
    };
    let events = app
        .history(
            id,
            EventPage {
                after: None,
                limit: HISTORY_SHOWN,
            },
        )
        .await?;
    let (_, evidence) = app.evidence(id, now).await?;
    let window_closed = license.window_closed(evidence.ever_activated, now);
    // The license's own pending claims, read through its index (not picked out of
    // the queue, which lists only the oldest).
    let pending_claims: Vec<(String, When, String)> = app
        .license_claims(&license.id, ClaimStatus::Pending)
        .await?
        .into_iter()
        .map(|c| {
            (
                c.id,
                When::at(c.created_at, now),
                c.message.unwrap_or_default(),
            )
        })
        .collect();
    let product = app.catalog.get(&license.product);
    let mut machines: Vec<&Activation> = machines.iter().collect();
    machines.sort_by_key(|a| a.deactivated_at.is_some());
    Ok(LicensePage {
        me: Some(Me::of(staff)),
        id: license.id.clone(),
        product: license.product.clone(),
        product_name: product.map(|p| p.spec.name.clone()).unwrap_or_default(),
        status: license.status.as_str(),
        order_id: license.order_id.clone(),
        email: license.customer_email.clone().unwrap_or_default(),
        customer_href: license
            .customer_email
            .as_deref()
            .map(customer_path)
            .unwrap_or_default(),
        purchased: dated(license.purchased_at, now, false),
        activate_by: license.activate_by.map(|t| dated(t, now, true)),
        expires: license.expires_at.map(|t| dated(t, now, true)),
        expires_note: match (license.duration_days, license.duration_from) {
            (Some(d), DurationFrom::Activation) => format!(
                "{} after the first activation",
                days(i64::from(d) + i64::from(license.extra_days))
            ),
            _ => "never".to_owned(),
        },
        seats_used: machines
            .iter()
            .filter(|a| a.deactivated_at.is_none())
            .count(),
        seats: license.seats,
        price: license
            .price_paid(product.map(|p| &p.spec.price))
            .map(|p| money(&p))
            .unwrap_or_default(),
        amount_due: license.amount_due.as_ref().map(money).unwrap_or_default(),
        supersedes: license.supersedes.clone().unwrap_or_default(),
        superseded_by: license.superseded_by.clone().unwrap_or_default(),
        entitlements: license.entitlements.join(", "),
        metadata: license
            .metadata
            .iter()
            .flatten()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        key,
        machines: machines.iter().map(|a| MachineRow::of(a, now)).collect(),
        history: events
            .iter()
            .map(|e| HistoryRow {
                at: When::at(e.at, now),
                actor: actor_label(&e.actor),
                sentence: sentence(e),
            })
            .collect(),
        actions: actions_of(&license, now),
        evidence: window_closed.then(|| EvidenceView::of(&evidence, now)),
        remedies: REMEDY_CHOICES,
        notice: done.and_then(|action| done_notice(action, &license)),
        claim: pending_claims
            .first()
            .map(|c| c.0.clone())
            .unwrap_or_default(),
        pending_claims,
    })
}

/// What the action `done` (just made) did, said from the license as it is now.
fn done_notice(done: &str, license: &License) -> Option<String> {
    Some(match done {
        "suspend" | "reinstate" | "revoke" | "refund" => {
            format!("Done: the license is now {}.", license.status.as_str())
        }
        "renew" => match license.expires_at {
            Some(t) => format!("Renewed: the license now expires {}.", time::format(t)),
            None => "Renewed: the days wait for the first activation.".into(),
        },
        "deactivate" => "Done: the machine is deactivated and its seat is free.".into(),
        _ => return None,
    })
}

/// `?done=` of a license page: the action just made, to say what it did.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/licenses/{id}` (`?done=` after an action).
pub async fn license(
    app: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> HttpResponse {
    match license_page(&app, &staff, &path, false, query.done.as_deref()).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => failed(&staff, &e),
    }
}

/// `POST /console/licenses/{id}/key`: the page with the key shown (asked for with
/// a form, so that the key is in no page an agent did not ask for).
pub async fn reveal_key(
    app: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
) -> HttpResponse {
    match license_page(&app, &staff, &path, true, None).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => failed(&staff, &e),
    }
}

/// Whether `action` needs the password asked again: a refund.
fn needs_password(action: &str) -> bool {
    action == "refund"
}

/// The confirmation of a lifecycle action or a deactivation.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    /// The staff member.
    pub me: Option<Me>,
    /// The license.
    pub id: String,
    /// Its product and status, to be sure of the license.
    pub summary: String,
    /// `suspend`, `reinstate`, `revoke`, `refund`, `renew` or `deactivate`.
    pub action: String,
    /// What the action will do, in words.
    pub effect: String,
    /// The machine, for `deactivate`.
    pub activation: String,
    /// Whether the form asks for days (renew).
    pub takes_days: bool,
    /// Whether the password is asked again.
    pub ask_password: bool,
    /// Why the last try failed.
    pub error: Option<String>,
    /// The reason typed before.
    pub reason: String,
}

/// `?action=&activation=` of the confirmation page.
#[derive(Debug, Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    activation: Option<String>,
}

fn effect_of(action: &str, machine: Option<&MachineRow>) -> Option<String> {
    Some(match action {
        "suspend" => "The license stops working until it is reinstated.".into(),
        "reinstate" => "The license works again.".into(),
        "revoke" => "The license is closed for good; its machines stop working.".into(),
        "refund" => "The license is closed as refunded; its machines stop working.".into(),
        "renew" => "The expiry moves on by the days below (empty: the license's period).".into(),
        "deactivate" => match machine {
            Some(m) => format!(
                "The seat of \u{201c}{}\u{201d} ({}) is freed; that machine stops working.",
                m.name, m.platform
            ),
            None => return None,
        },
        _ => return None,
    })
}

/// A confirmation shown again: why, and the reason typed.
type Retry = Option<(String, String)>;

async fn confirm_page(
    app: &AppState,
    console: &ConsoleState,
    staff: &Staff,
    id: &str,
    (action, activation): (&str, Option<&str>),
    retry: Retry,
) -> Result<Result<ConfirmPage, &'static str>, ServiceError> {
    let now = time::now();
    let (error, reason) = match retry {
        Some((e, r)) => (Some(e), r),
        None => (None, String::new()),
    };
    let (license, machines) = app.machines(id).await?;
    let machine = activation.and_then(|a| {
        machines
            .iter()
            .find(|m| m.id == a && m.deactivated_at.is_none())
            .map(|m| MachineRow::of(m, now))
    });
    let Some(effect) = effect_of(action, machine.as_ref()) else {
        return Ok(Err(
            "Choose an action or a machine from the license's page.",
        ));
    };
    let within = chrono::Duration::minutes(i64::from(console.settings.reauth_minutes));
    Ok(Ok(ConfirmPage {
        me: Some(Me::of(staff)),
        id: license.id.clone(),
        summary: summary(&license),
        action: action.to_owned(),
        effect,
        activation: machine.map(|m| m.id).unwrap_or_default(),
        takes_days: action == "renew",
        ask_password: needs_password(action) && !staff.session.reauthenticated(within, now),
        error,
        reason,
    }))
}

/// `GET /console/licenses/{id}/confirm?action=`: what the action will do, and the
/// form that does it.
pub async fn confirm(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    staff: Staff,
    path: web::Path<String>,
    query: web::Query<ConfirmQuery>,
) -> HttpResponse {
    match confirm_page(
        &app,
        &console,
        &staff,
        &path,
        (&query.action, query.activation.as_deref()),
        None,
    )
    .await
    {
        Ok(Ok(page)) => render(StatusCode::OK, &page),
        Ok(Err(advice)) => problem(&staff, StatusCode::NOT_FOUND, "Nothing to confirm", advice),
        Err(e) => failed(&staff, &e),
    }
}

/// The fields of a confirmed action.
#[derive(Debug, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    activation: String,
    #[serde(default)]
    password: Option<String>,
}

/// Asks the password again when `needed` and the session has not given it within
/// `[console] reauth_minutes`: `Err` is why the form comes back.
pub async fn reauth(
    app: &AppState,
    console: &ConsoleState,
    staff: &Staff,
    needed: bool,
    password: Option<String>,
) -> Result<Result<(), String>, ServiceError> {
    let now = time::now();
    let within = chrono::Duration::minutes(i64::from(console.settings.reauth_minutes));
    if !needed || staff.session.reauthenticated(within, now) {
        return Ok(Ok(()));
    }
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Ok(Err("Enter your password to confirm this.".into()));
    };
    let outcome = crate::service::staff::reauthenticate(
        app.store.staff_store(),
        &console.limits,
        &staff.session,
        &staff.user,
        password,
        now,
    )
    .await?;
    Ok(match outcome {
        Ok(()) => Ok(()),
        Err(crate::service::staff::SignInRefused::Throttled(wait)) => Err(format!(
            "Too many wrong passwords. Wait {} minute(s), then try again.",
            wait.div_ceil(60)
        )),
        Err(_) => Err("That password is not right; type it again.".into()),
    })
}

/// `POST /console/licenses/{id}/act`: the confirmed action, through the API's own
/// operation, recorded with the staff member as actor; the license page after it.
pub async fn act(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    staff: Staff,
    address: ClientAddr,
    path: web::Path<String>,
    form: web::Form<ActForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let id = path.into_inner();
    let now = time::now();
    let again = |error: String, reason: String| {
        let (app, console, staff, id, action, activation) = (
            app.clone(),
            console.clone(),
            staff.clone(),
            id.clone(),
            form.action.clone(),
            form.activation.clone(),
        );
        async move {
            let activation = (!activation.is_empty()).then_some(activation);
            match confirm_page(
                &app,
                &console,
                &staff,
                &id,
                (&action, activation.as_deref()),
                Some((error, reason)),
            )
            .await
            {
                Ok(Ok(page)) => render(StatusCode::UNPROCESSABLE_ENTITY, &page),
                Ok(Err(advice)) => {
                    problem(&staff, StatusCode::NOT_FOUND, "Nothing to confirm", advice)
                }
                Err(e) => failed(&staff, &e),
            }
        }
    };
    let reason = match note("reason", Some(form.reason.trim().to_owned())) {
        Ok(r) => r.filter(|r| !r.is_empty()),
        Err(e) => return again(sentence_case(&e.to_string()), form.reason.clone()).await,
    };
    match reauth(
        &app,
        &console,
        &staff,
        needs_password(&form.action),
        form.password.clone(),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return again(why, form.reason.clone()).await,
        Err(e) => return failed(&staff, &e),
    }
    let actor = staff.user.actor();
    let done: Result<(), ServiceError> = match form.action.as_str() {
        "suspend" | "reinstate" | "revoke" | "refund" => {
            let action = match form.action.as_str() {
                "suspend" => Action::Suspend,
                "reinstate" => Action::Reinstate,
                "revoke" => Action::Revoke,
                _ => Action::Refund,
            };
            app.transition(id.clone(), action, reason, actor, now)
                .await
                .map(|_| ())
        }
        "renew" => {
            let days = match form.days.trim() {
                "" => None,
                d => match d.parse::<u32>() {
                    Ok(d) => Some(d),
                    Err(_) => {
                        return again(
                            "Days must be a whole number, such as 365.".into(),
                            form.reason.clone(),
                        )
                        .await
                    }
                },
            };
            app.renew(id.clone(), days, actor, now).await.map(|_| ())
        }
        "deactivate" => {
            // Only a machine of this license, whatever the form says.
            match app.machines(&id).await {
                Ok((_, machines)) if machines.iter().any(|m| m.id == form.activation) => {}
                Ok(_) => return failed(&staff, &ServiceError::ActivationNotFound),
                Err(e) => return failed(&staff, &e),
            }
            app.deactivate(
                &form.activation,
                DeactivationRequest {
                    license_key: None,
                    reason,
                },
                Some(actor),
                &address.0,
                now,
            )
            .await
            .map(|_| ())
        }
        _ => {
            return problem(
                &staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unknown action",
                "Choose an action from the license's page.",
            )
        }
    };
    // Redirected, so that reloading the page cannot do the action twice.
    match done {
        Ok(()) => see_other(&format!(
            "/console/licenses/{id}?done={}",
            form.action.as_str()
        )),
        Err(e) => failed(&staff, &e),
    }
}
