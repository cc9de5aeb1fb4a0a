//! `/v1/licenses`: mint, batch, look up, list, lifecycle, history.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::audit::MAX_HISTORY_PAGE;
use crate::domain::ids::is_id;
use crate::domain::key::LicenseKey;
use crate::domain::license::{
    Action, Email, LicenseStatus, MintRequest, DEFAULT_LICENSE_PAGE, MAX_LICENSE_PAGE, ORDER_ID,
};
use crate::domain::time;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{from_value, JsonBody, OptionalJsonBody, MAX_BATCH_BODY_BYTES};
use crate::routes::views::{
    BatchItem, BatchResults, History, LicenseBody, LicenseListing, LicenseWithKey, Machines,
};
use crate::service::{note, AppState, MAX_BATCH};
use crate::storage::{EventPage, LicenseLookup, LicensePage};

/// `POST /v1/licenses`: 201 with the license and its key; 200 for a repeat of the order.
#[utoipa::path(
    post,
    path = "/v1/licenses",
    tag = "vendor",
    request_body = crate::domain::license::MintRequest,
    responses(
        (status = 201, description = "Minted: the license and its key", body = crate::routes::views::LicenseWithKey),
        (status = 200, description = "The same order again with the same fields: the same license and key", body = crate::routes::views::LicenseWithKey),
        (status = 409, description = "`order_conflict`: the order id was minted with other fields"),
        (status = 422, description = "`unknown_product`, `purchased_in_future`, `invalid_expiry`, `date_out_of_range` (a time past 9999-12-31 in UTC), `invalid_field`")
    )
)]
pub async fn mint(
    state: web::Data<AppState>,
    caller: Caller,
    http: actix_web::HttpRequest,
    JsonBody(mut req): JsonBody<MintRequest>,
) -> Result<HttpResponse, ApiError> {
    default_locale(&mut req, &http);
    let minted = state.mint(req, caller.actor(), time::now()).await?;
    let status = if minted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(LicenseWithKey::from(&minted)))
}

/// Body of `POST /v1/licenses/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The licenses to mint.
    #[schema(value_type = crate::domain::schema::BatchItems)]
    licenses: Vec<Value>,
}

/// `POST /v1/licenses/batch`: one result per item, in order.
#[utoipa::path(
    post,
    path = "/v1/licenses/batch",
    tag = "vendor",
    request_body = crate::routes::licenses::BatchRequest,
    responses(
        (status = 200, description = "One result per item, in order", body = crate::routes::views::BatchResults),
        (status = 400, description = "`empty_batch`, `batch_too_large`, `invalid_json`, `missing_field`, `invalid_field`")
    )
)]
pub async fn mint_batch(
    state: web::Data<AppState>,
    caller: Caller,
    http: actix_web::HttpRequest,
    JsonBody(req): JsonBody<BatchRequest, MAX_BATCH_BODY_BYTES>,
) -> Result<HttpResponse, ApiError> {
    if req.licenses.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if req.licenses.len() > MAX_BATCH {
        return Err(ApiError::BatchTooLarge(MAX_BATCH));
    }
    let items = req
        .licenses
        .into_iter()
        .map(|v| {
            from_value::<MintRequest>(v).map(|mut req| {
                default_locale(&mut req, &http);
                req
            })
        })
        .collect();
    let results = state
        .into_inner()
        .mint_batch(items, caller.actor(), time::now())
        .await?;
    // At most `MAX_BATCH` items, so every index fits.
    let results = (0u32..).zip(&results).map(|(i, r)| BatchItem::new(i, r));
    Ok(HttpResponse::Ok().json(BatchResults {
        results: results.collect(),
    }))
}

/// A mint request without a `locale` takes its language from the request's
/// `Accept-Language` (when it names one keyclerk writes).
fn default_locale(req: &mut MintRequest, http: &actix_web::HttpRequest) {
    if req.locale.is_none() {
        req.locale = accept_language(http);
    }
}

/// The language a request's `Accept-Language` prefers among those keyclerk
/// writes, as a tag.
pub(crate) fn accept_language(http: &actix_web::HttpRequest) -> Option<String> {
    http.headers()
        .get(actix_web::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::domain::mail::Locale::from_accept_language)
        .map(|l| l.as_str().to_owned())
}

fn license_id(raw: &str) -> Result<String, ApiError> {
    if is_id("lic", raw) {
        Ok(raw.to_owned())
    } else {
        Err(DomainError::LicenseNotFound.into())
    }
}

/// `GET /v1/licenses/{id}`: the license and its current key.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}",
    operation_id = "get_license",
    tag = "support",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "The license and its current key", body = crate::routes::views::LicenseWithKey),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let (license, key) = state.license_with_key(&id).await?;
    Ok(HttpResponse::Ok().json(LicenseWithKey::new(&license, &key)))
}

/// Query of `GET /v1/licenses`: one look-up (`order_id`, `email` or `key`), or a
/// page (`status`, `product`, `limit`, `after`); the two do not mix.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Look-up: the license of this order (at most one). Alone: no other parameter.
    #[param(value_type = Option<crate::domain::schema::OrderId>)]
    order_id: Option<String>,
    /// Look-up: the licenses of this customer (at most the first 100). Alone: no
    /// other parameter.
    #[param(value_type = Option<crate::domain::schema::EmailAddress>)]
    email: Option<String>,
    /// Look-up: the license of this key (none for a malformed, unknown or forged
    /// key). Alone: no other parameter.
    key: Option<String>,
    /// Page: only licenses that stand so.
    #[param(value_type = Option<crate::domain::license::LicenseStatus>)]
    status: Option<String>,
    /// Page: only licenses of this product slug.
    product: Option<String>,
    /// Page: at most this many licenses.
    #[param(value_type = Option<crate::domain::schema::LicensePageLimit>)]
    limit: Option<u32>,
    /// Page: only licenses whose id sorts after this one (the `next` of the page before).
    after: Option<String>,
}

/// The parameters of a look-up, and those of a page.
const LOOKUPS: [&str; 3] = ["order_id", "email", "key"];
const PAGING: [&str; 4] = ["status", "product", "limit", "after"];

impl ListQuery {
    /// The parameters given among `names`, whose values are `given`.
    fn given<const N: usize>(names: [&'static str; N], given: [bool; N]) -> Vec<&'static str> {
        names
            .into_iter()
            .zip(given)
            .filter_map(|(name, given)| given.then_some(name))
            .collect()
    }

    /// The look-up this query asks for, if it asks for one; 400
    /// `conflicting_parameters` for a query that mixes look-ups, or a look-up with
    /// page parameters.
    fn lookup(&self) -> Result<Option<&'static str>, ApiError> {
        let lookups = Self::given(
            LOOKUPS,
            [
                self.order_id.is_some(),
                self.email.is_some(),
                self.key.is_some(),
            ],
        );
        let paging = Self::given(
            PAGING,
            [
                self.status.is_some(),
                self.product.is_some(),
                self.limit.is_some(),
                self.after.is_some(),
            ],
        );
        match (lookups.as_slice(), paging.as_slice()) {
            ([], _) => Ok(None),
            ([one], []) => Ok(Some(one)),
            ([one], [_, ..]) => Err(ApiError::ConflictingParameters(format!(
                "{one} is a look-up, which takes none of {}",
                paging.join(", ")
            ))),
            _ => Err(ApiError::ConflictingParameters(format!(
                "look up by one of {}, not by {}",
                LOOKUPS.join(", "),
                lookups.join(" and ")
            ))),
        }
    }
}

/// `GET /v1/licenses`: by `order_id`, `email` or `key`, or else a page.
#[utoipa::path(
    get,
    path = "/v1/licenses",
    operation_id = "list_licenses",
    tag = "support",
    params(crate::routes::licenses::ListQuery),
    responses(
        (status = 200, description = "Licenses by `order_id`, `email` or `key`, or else a page", body = crate::routes::views::LicenseListing),
        (status = 400, description = "`conflicting_parameters`: one look-up at a time (`order_id`, `email` or `key`), and a look-up takes no page parameters (`status`, `product`, `limit`, `after`); `invalid_parameter`: a parameter is wrong (unknown ones too)")
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(by) = q.lookup()? {
        let lookup = match by {
            "order_id" => {
                let order = q.order_id.as_deref().unwrap_or_default();
                if !ORDER_ID.allows(order) {
                    return Err(ApiError::InvalidQuery(format!(
                        "order_id: {}",
                        ORDER_ID.describe()
                    )));
                }
                LicenseLookup::OrderId(order.trim().to_owned())
            }
            "email" => LicenseLookup::Email(
                Email::parse(q.email.as_deref().unwrap_or_default())
                    .ok_or_else(|| ApiError::InvalidQuery("email: not an email address".into()))?
                    .into_string(),
            ),
            _ => match LicenseKey::parse(q.key.as_deref().unwrap_or_default()) {
                Some(key) => LicenseLookup::KeyHash(key.hash()),
                // A malformed key matches nothing, like an unknown one.
                None => return Ok(HttpResponse::Ok().json(LicenseListing::new(&[], None))),
            },
        };
        let items = state.find_licenses(lookup).await?;
        return Ok(HttpResponse::Ok().json(LicenseListing::new(&items, None)));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LICENSE_PAGE);
    if !(1..=MAX_LICENSE_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit: between 1 and {MAX_LICENSE_PAGE}"
        )));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| {
            LicenseStatus::parse(s).ok_or_else(|| {
                ApiError::InvalidQuery(format!("status: `{s}` is not a license status"))
            })
        })
        .transpose()?;
    let (items, next) = state
        .list_licenses(LicensePage {
            status,
            product: q.product,
            limit,
            after: q.after,
        })
        .await?;
    Ok(HttpResponse::Ok().json(LicenseListing::new(&items, next)))
}

/// Body of `suspend`, `reinstate`, `revoke` and `refund`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Why; kept in the license's history.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Note>)]
    reason: Option<String>,
}

/// Body of `renew`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// Days to add (default: the license's period; `days_required` without one).
    #[serde(default, deserialize_with = "crate::domain::whole::option")]
    #[schema(value_type = Option<crate::domain::schema::RenewalDays>)]
    days: Option<u32>,
}

async fn transition(
    state: web::Data<AppState>,
    caller: Caller,
    id: &str,
    action: Action,
    body: ActionBody,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(id)?;
    let reason = note("reason", body.reason)?;
    let license = state
        .transition(id, action, reason, caller.actor(), time::now())
        .await?;
    Ok(HttpResponse::Ok().json(LicenseBody::from(&license)))
}

/// Declares the handler of one lifecycle action.
macro_rules! lifecycle_action {
    ($(#[$doc:meta])* $name:ident, $action:expr, $path:literal, $conflict:literal) => {
        $(#[$doc])*
        #[utoipa::path(
            post,
            path = $path,
            tag = "vendor",
            params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)")),
            request_body(content = Option<crate::routes::licenses::ActionBody>, description = "Optional: an empty body is no reason"),
            responses(
                (status = 200, description = "The license after the action", body = crate::routes::views::LicenseBody),
                (status = 404, description = "`license_not_found`"),
                (status = 409, description = $conflict),
                (status = 422, description = "`invalid_field`")
            )
        )]
        pub async fn $name(
            state: web::Data<AppState>,
            caller: Caller,
            path: web::Path<String>,
            OptionalJsonBody(body): OptionalJsonBody<ActionBody>,
        ) -> Result<HttpResponse, ApiError> {
            transition(state, caller, &path, $action, body).await
        }
    };
}

lifecycle_action!(
    /// `POST /v1/licenses/{id}/suspend`: blocks the license until `reinstate`.
    suspend, Action::Suspend, "/v1/licenses/{id}/suspend",
    "`invalid_transition`: only an active license is suspended (`current_status`)"
);
lifecycle_action!(
    /// `POST /v1/licenses/{id}/reinstate`: lifts a suspension.
    reinstate, Action::Reinstate, "/v1/licenses/{id}/reinstate",
    "`invalid_transition`: only a suspended license is reinstated (`current_status`)"
);
lifecycle_action!(
    /// `POST /v1/licenses/{id}/revoke`: closes the license for good.
    revoke, Action::Revoke, "/v1/licenses/{id}/revoke",
    "`invalid_transition`: a closed license stays closed (`current_status`)"
);
lifecycle_action!(
    /// `POST /v1/licenses/{id}/refund`: closes the license, the money went back.
    refund, Action::Refund, "/v1/licenses/{id}/refund",
    "`invalid_transition`: a closed license stays closed (`current_status`)"
);

/// `POST /v1/licenses/{id}/renew`: adds `days` (or the license's period) to the
/// later of now and its expiry.
#[utoipa::path(
    post,
    path = "/v1/licenses/{id}/renew",
    tag = "vendor",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)")),
    request_body(content = Option<crate::routes::licenses::RenewBody>, description = "Optional: an empty body renews by the license's period"),
    responses(
        (status = 200, description = "The license after the renewal", body = crate::routes::views::LicenseBody),
        (status = 404, description = "`license_not_found`"),
        (status = 409, description = "`invalid_transition`: only an active or suspended license is renewed (`current_status`)"),
        (status = 422, description = "`license_perpetual`, `days_required`, `date_out_of_range` (a renewal past 9999-12-31), `invalid_field`")
    )
)]
pub async fn renew(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RenewBody>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let license = state
        .renew(id, body.days, caller.actor(), time::now())
        .await?;
    Ok(HttpResponse::Ok().json(LicenseBody::from(&license)))
}

/// `GET /v1/licenses/{id}/activations`: the machines of a license, newest first,
/// with the ids support needs to free a lost machine's seat.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/activations",
    operation_id = "license_activations",
    tag = "support",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "Every machine of the license, newest first", body = crate::routes::views::Machines),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn activations(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let (license, activations) = state.machines(&id).await?;
    Ok(HttpResponse::Ok().json(Machines::new(&license, &activations)))
}

/// Query of `GET /v1/licenses/{id}/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many events (default: the most a page holds).
    #[param(value_type = Option<crate::domain::schema::HistoryPageLimit>)]
    limit: Option<u32>,
    /// Only events after this sequence number (the `next` of the page before).
    #[param(value_type = Option<crate::domain::schema::EventCursor>)]
    after: Option<i64>,
}

/// `GET /v1/licenses/{id}/history`: the license's audit events, oldest first, a page
/// at a time.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/history",
    tag = "support",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)"), HistoryQuery),
    responses(
        (status = 200, description = "A page of the license's audit events, oldest first; `next` is the cursor of the next page", body = crate::routes::views::History),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn history(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let limit = q.limit.unwrap_or(MAX_HISTORY_PAGE);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit: between 1 and {MAX_HISTORY_PAGE}"
        )));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::InvalidQuery("after: a sequence number".into()));
    }
    let page = EventPage {
        after: q.after,
        limit,
    };
    let events = state.history(&id, page).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(History::new(&id, &events, next)))
}
