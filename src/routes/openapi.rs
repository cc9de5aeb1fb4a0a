//! The API described as OpenAPI 3.1, generated from the handlers' annotations, the
//! request and response types and the route table (access, security, the errors
//! every route can give); served at `GET /openapi.json`. A test keeps the
//! committed copy, `docs/openapi.json`, in step.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Type;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::extract::{MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES};
use crate::routes::{Access, ROUTES};

/// An error (RFC 9457), `application/problem+json`. More members may come with
/// some codes: `field`, `current_status`, `retry_after_seconds`, `balance`,
/// `price`, `ceiling`, `suggested_remedy`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:keyclerk:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable code to branch on.
    pub code: String,
    /// For people.
    pub detail: String,
    /// The field at fault, where one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The errors a route can give by what it is (from the route table), added to
/// the ones its handler declares.
fn common_errors(method: &str, access: Access) -> Vec<(u16, String)> {
    let mut errors = Vec::new();
    let reads_token = matches!(access, Access::Roles(_) | Access::KeyOrRoles(_));
    if matches!(method, "POST" | "PUT" | "PATCH") && reads_token {
        errors.push((
            400,
            "`invalid_json`, `missing_field`, `invalid_field`, `invalid_parameter`: the body's shape is wrong (unknown fields too); `duplicate_authorization`: more than one `Authorization` header".into(),
        ));
    } else if reads_token {
        errors.push((
            400,
            "`invalid_parameter`: a query parameter is wrong; `duplicate_authorization`: more than one `Authorization` header".into(),
        ));
    }
    if access == Access::ProviderSignature {
        errors.push((
            413,
            format!(
                "`payload_too_large`: a body over {} KiB",
                crate::routes::extract::MAX_PAYMENT_BODY_BYTES / 1024
            ),
        ));
        errors.push((
            408,
            "`body_timeout`: the body did not arrive within the server's deadline; the connection is closed".into(),
        ));
        errors.push((
            415,
            "`unsupported_content_encoding`: a compressed body (nothing is decoded; `Accept-Encoding: identity`); `unsupported_charset`: a charset other than UTF-8".into(),
        ));
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        errors.push((
            400,
            "`invalid_json`, `missing_field`, `invalid_field`, `invalid_parameter`: the body's shape is wrong (unknown fields too)".into(),
        ));
        errors.push((
            413,
            format!(
                "`payload_too_large`: a body over {} KiB ({} MiB for batches)",
                MAX_BODY_BYTES / 1024,
                MAX_BATCH_BODY_BYTES / 1024 / 1024
            ),
        ));
        errors.push((
            408,
            "`body_timeout`: the body did not arrive within the server's deadline; the connection is closed".into(),
        ));
        errors.push((
            415,
            "`unsupported_media_type`: a body that is not `application/json`; `unsupported_content_encoding`: a compressed body (nothing is decoded; `Accept-Encoding: identity`); `unsupported_charset`: a charset other than UTF-8".into(),
        ));
    } else if !matches!(access, Access::Anyone) {
        errors.push((
            400,
            "`invalid_parameter`: a query parameter is wrong".into(),
        ));
    }
    match access {
        Access::Roles(_) => {
            errors.push((
                401,
                "`missing_token`, `invalid_token`, `token_revoked`".into(),
            ));
            errors.push((403, "`forbidden`: the token's role may not do this".into()));
        }
        Access::KeyOrRoles(_) => {
            errors.push((
                401,
                "`invalid_token`, `token_revoked` (when a token is sent)".into(),
            ));
            errors.push((403, "`forbidden`: the token's role may not do this".into()));
        }
        Access::Anyone | Access::LicenseKey | Access::ProviderSignature => {}
    }
    if matches!(access, Access::LicenseKey | Access::KeyOrRoles(_)) {
        errors.push((
            429,
            "`rate_limited`: too many failed look-ups from this address or requests for this key; `Retry-After`".into(),
        ));
    }
    errors.push((500, "`internal_error`: nothing of the cause is told".into()));
    errors.push((
        503,
        "`database_unavailable`: the database does not answer; `Retry-After`".into(),
    ));
    errors
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// The answer to a method a path does not have (no operation can describe it).
fn method_not_allowed_response() -> RefOr<utoipa::openapi::Response> {
    let allow = utoipa::openapi::header::HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        )
        .description(Some(
            "The methods the path has: those of its operations, and HEAD with GET",
        ))
        .build();
    let RefOr::T(mut response) = problem_response(
        "`method_not_allowed`: any method this path has no operation for (HEAD answers wherever GET does)",
    ) else {
        return problem_response("`method_not_allowed`");
    };
    response.headers.insert("Allow".into(), allow);
    RefOr::T(response)
}

/// Adds the route table's security and errors to every operation.
struct FromRouteTable;

impl Modify for FromRouteTable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("kc_…")
                    .description(Some("An API token: `Authorization: Bearer kc_…`"))
                    .build(),
            ),
        );
        components
            .responses
            .insert("MethodNotAllowed".into(), method_not_allowed_response());
        // `ProductSpec` refuses unknown fields in `config.toml`; in a response it is
        // flattened into `Product` beside `id`, which its closed schema would refuse.
        if let Some(RefOr::T(Schema::Object(spec))) = components.schemas.get_mut("ProductSpec") {
            spec.additional_properties = None;
        }
        for (name, schema) in crate::domain::schema::all() {
            components.schemas.insert(name, schema);
        }
        if let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut("GraceBody") {
            body.extensions
                .get_or_insert_with(Default::default)
                .insert("allOf".into(), remedy_fields());
        }
        for route in ROUTES {
            let Some(item) = openapi.paths.paths.get_mut(route.path) else {
                continue;
            };
            let op: Option<&mut Operation> = match route.method {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                "PUT" => item.put.as_mut(),
                "PATCH" => item.patch.as_mut(),
                "DELETE" => item.delete.as_mut(),
                "HEAD" => item.head.as_mut(),
                "OPTIONS" => item.options.as_mut(),
                "TRACE" => item.trace.as_mut(),
                _ => None,
            };
            let Some(op) = op else { continue };
            match route.access {
                Access::Roles(_) => {
                    op.security = Some(vec![SecurityRequirement::new(
                        "token",
                        Vec::<String>::new(),
                    )]);
                }
                Access::KeyOrRoles(_) => {
                    op.security = Some(vec![
                        SecurityRequirement::default(),
                        SecurityRequirement::new("token", Vec::<String>::new()),
                    ]);
                }
                Access::Anyone | Access::LicenseKey | Access::ProviderSignature => {
                    op.security = Some(vec![SecurityRequirement::default()]);
                }
            }
            // A parameter that may be left out is absent, never null (utoipa writes an
            // optional header's schema as "null or ...").
            for parameter in op.parameters.iter_mut().flatten() {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &parameter.schema {
                    let not_null: Vec<_> = one_of
                        .items
                        .iter()
                        .filter(|item| !matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == Type::Null.into()))
                        .cloned()
                        .collect();
                    if let [only] = not_null.as_slice() {
                        parameter.schema = Some(only.clone());
                    }
                }
            }
            // Every error is a problem: the handlers' annotations give status and codes.
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(r) = response {
                    if !status.starts_with('2') && r.content.is_empty() {
                        *response = problem_response(&r.description);
                    }
                }
            }
            for (status, description) in common_errors(route.method, route.access) {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| problem_response(&description));
            }
        }
        add_links(openapi);
    }
}

/// Which remedies take `days`, `product` and `email` (and need `product`), as
/// JSON Schema conditions on `GraceBody`, from the rule the server applies.
fn remedy_fields() -> serde_json::Value {
    use crate::domain::grace::{Remedy, REMEDY_FIELDS};
    let conditions: Vec<serde_json::Value> = REMEDY_FIELDS
        .iter()
        .map(|field| {
            let takers: Vec<&str> = Remedy::ALL
                .into_iter()
                .filter(|r| (field.takes)(*r))
                .map(Remedy::as_str)
                .collect();
            let mut condition = serde_json::json!({
                "if": {"properties": {"remedy": {"enum": takers}}, "required": ["remedy"]},
                "else": {"properties": {field.name: {"type": "null"}}},
            });
            if field.needed {
                condition["then"] = serde_json::json!({
                    "required": [field.name],
                    "properties": {field.name: {"type": "string"}},
                });
            }
            condition
        })
        .collect();
    serde_json::Value::Array(conditions)
}

/// An OpenAPI link: from the answer `status` of the operation `from`, to the
/// operation `to`, with its path or query parameters and body taken from the
/// answer or the request.
struct LinkSpec {
    from: &'static str,
    statuses: &'static [&'static str],
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    body: &'static [(&'static str, &'static str)],
}

/// Where an answer leads: the ids and keys it carries, so that generated sequences
/// mint, look up, activate, validate, deactivate and decide on real objects.
const LINKS: &[LinkSpec] = {
    const MINTED: &[&str] = &["201", "200"];
    const OK: &[&str] = &["200"];
    const LICENSE: &[(&str, &str)] = &[("id", "$response.body#/license/id")];
    const ENDPOINT: &[(&str, &str)] = &[("id", "$response.body#/endpoint/id")];
    const SAME_LICENSE: &[(&str, &str)] = &[("id", "$request.path.id")];
    const KEY: &[(&str, &str)] = &[("license_key", "$response.body#/key")];
    const NONE: &[(&str, &str)] = &[];
    const fn link(
        from: &'static str,
        statuses: &'static [&'static str],
        to: &'static str,
        parameters: &'static [(&'static str, &'static str)],
        body: &'static [(&'static str, &'static str)],
    ) -> LinkSpec {
        LinkSpec {
            from,
            statuses,
            to,
            parameters,
            body,
        }
    }
    &[
        link("mint", MINTED, "get_license", LICENSE, NONE),
        link("mint", MINTED, "license_activations", LICENSE, NONE),
        link("mint", MINTED, "history", LICENSE, NONE),
        link("mint", MINTED, "activate", NONE, KEY),
        link("mint", MINTED, "validate", NONE, KEY),
        link("mint", MINTED, "file_claim", NONE, KEY),
        link("mint", MINTED, "grace_extension", LICENSE, NONE),
        link("mint", MINTED, "suspend", LICENSE, NONE),
        link("mint", MINTED, "revoke", LICENSE, NONE),
        link("mint", MINTED, "refund", LICENSE, NONE),
        link("mint", MINTED, "renew", LICENSE, NONE),
        link("mint", MINTED, "confirm_payment", LICENSE, NONE),
        link(
            "mint_batch",
            OK,
            "get_license",
            &[("id", "$response.body#/results/0/license/id")],
            NONE,
        ),
        link("get_license", OK, "activate", NONE, KEY),
        link("get_license", OK, "history", SAME_LICENSE, NONE),
        link("get_license", OK, "license_activations", SAME_LICENSE, NONE),
        link("get_license", OK, "grace_extension", SAME_LICENSE, NONE),
        link(
            "list_licenses",
            OK,
            "get_license",
            &[("id", "$response.body#/items/0/id")],
            NONE,
        ),
        link("suspend", OK, "reinstate", SAME_LICENSE, NONE),
        link("suspend", OK, "validate", NONE, NONE),
        link("reinstate", OK, "suspend", SAME_LICENSE, NONE),
        link("renew", OK, "get_license", SAME_LICENSE, NONE),
        link("confirm_payment", OK, "get_license", SAME_LICENSE, NONE),
        link(
            "activate",
            MINTED,
            "deactivate",
            &[("id", "$response.body#/activation/id")],
            &[("license_key", "$request.body#/license_key")],
        ),
        link(
            "activate",
            MINTED,
            "validate",
            NONE,
            &[
                ("license_key", "$request.body#/license_key"),
                ("fingerprint", "$response.body#/activation/fingerprint"),
            ],
        ),
        link(
            "activate",
            MINTED,
            "activate",
            NONE,
            &[
                ("license_key", "$request.body#/license_key"),
                ("fingerprint", "$response.body#/activation/fingerprint"),
            ],
        ),
        link(
            "activate",
            MINTED,
            "license_activations",
            &[("id", "$response.body#/activation/license_id")],
            NONE,
        ),
        link(
            "deactivate",
            OK,
            "activate",
            NONE,
            &[
                ("license_key", "$request.body#/license_key"),
                ("fingerprint", "$response.body#/activation/fingerprint"),
            ],
        ),
        link(
            "deactivate",
            OK,
            "license_activations",
            &[("id", "$response.body#/activation/license_id")],
            NONE,
        ),
        link(
            "license_activations",
            OK,
            "deactivate",
            &[("id", "$response.body#/activations/0/id")],
            NONE,
        ),
        link(
            "file_claim",
            &["202"],
            "resolve_claim",
            &[("id", "$response.body#/claim/id")],
            NONE,
        ),
        link("file_claim", &["200"], "get_license", LICENSE, NONE),
        link(
            "list_claims",
            OK,
            "resolve_claim",
            &[("id", "$response.body#/claims/0/id")],
            NONE,
        ),
        link("grace_extension", MINTED, "get_license", LICENSE, NONE),
        link("grace_extension", MINTED, "history", LICENSE, NONE),
        link("grace_extension", MINTED, "activate", NONE, KEY),
        link(
            "grace_extension",
            MINTED,
            "confirm_payment",
            &[("id", "$response.body#/new_license/id")],
            NONE,
        ),
        link(
            "grace_extension",
            MINTED,
            "credits",
            &[("email", "$response.body#/decision/result/credit_email")],
            NONE,
        ),
        link("resolve_claim", MINTED, "get_license", LICENSE, NONE),
        link("resolve_claim", MINTED, "activate", NONE, KEY),
        link(
            "credits",
            OK,
            "redeem",
            NONE,
            &[("email", "$request.query.email")],
        ),
        link(
            "redeem",
            MINTED,
            "credits",
            &[("email", "$request.body#/email")],
            NONE,
        ),
        link(
            "create_webhook_endpoint",
            &["201"],
            "get_webhook_endpoint",
            ENDPOINT,
            NONE,
        ),
        link(
            "create_webhook_endpoint",
            &["201"],
            "list_webhook_deliveries",
            ENDPOINT,
            NONE,
        ),
        link(
            "create_webhook_endpoint",
            &["201"],
            "disable_webhook_endpoint",
            ENDPOINT,
            NONE,
        ),
        link(
            "create_webhook_endpoint",
            &["201"],
            "rotate_webhook_secret",
            ENDPOINT,
            NONE,
        ),
        link(
            "create_webhook_endpoint",
            &["201"],
            "remove_webhook_endpoint",
            ENDPOINT,
            NONE,
        ),
        link(
            "disable_webhook_endpoint",
            OK,
            "enable_webhook_endpoint",
            ENDPOINT,
            NONE,
        ),
        link(
            "create_token",
            &["201"],
            "revoke_token",
            &[("id", "$response.body#/token/id")],
            NONE,
        ),
    ]
};

/// Adds [`LINKS`] to the answers they leave from.
fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    let object = |pairs: &[(&str, &str)]| {
        serde_json::Value::Object(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                .collect(),
        )
    };
    for item in openapi.paths.paths.values_mut() {
        for op in [item.get.as_mut(), item.post.as_mut()]
            .into_iter()
            .flatten()
        {
            let Some(from) = op.operation_id.clone() else {
                continue;
            };
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let mut links = serde_json::Map::new();
                for spec in LINKS
                    .iter()
                    .filter(|l| l.from == from && l.statuses.contains(&status.as_str()))
                {
                    let mut link = serde_json::json!({ "operationId": spec.to });
                    if !spec.parameters.is_empty() {
                        link["parameters"] = object(spec.parameters);
                    }
                    if !spec.body.is_empty() {
                        link["requestBody"] = object(spec.body);
                    }
                    let name = if spec.from == spec.to {
                        format!("{}_again", spec.to)
                    } else {
                        spec.to.to_owned()
                    };
                    links.insert(name, link);
                }
                // One extension member, a JSON object: utoipa's own `Link` would spell
                // its members in snake case (`operation_id`), which no reader knows.
                if !links.is_empty() {
                    response
                        .extensions
                        .get_or_insert_with(Default::default)
                        .insert("links".into(), serde_json::Value::Object(links));
                }
            }
        }
    }
}

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyclerk",
        description = "A self-hosted license server: offline-verifiable license keys, activations, late claims. Errors are `application/problem+json` with a stable `code`. Every GET operation answers HEAD too; any other method a path has no operation for is 405 `method_not_allowed` with `Allow` (the response `MethodNotAllowed`).",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        document,
        super::metrics::scrape,
        super::keys::list,
        super::keys::reload,
        super::activations::activate,
        super::activations::deactivate,
        super::activations::validate,
        super::products::list,
        super::tokens::list,
        super::tokens::create,
        super::tokens::revoke,
        super::licenses::list,
        super::licenses::mint,
        super::licenses::mint_batch,
        super::licenses::get,
        super::grace::grace_extension,
        super::grace::confirm_payment,
        super::grace::list,
        super::grace::file,
        super::grace::resolve,
        super::grace::credits,
        super::grace::redeem,
        super::licenses::activations,
        super::licenses::history,
        super::downloads::links,
        super::downloads::download,
        super::licenses::suspend,
        super::licenses::reinstate,
        super::licenses::revoke,
        super::licenses::refund,
        super::licenses::renew,
        super::payments::receive,
        super::payments::list,
        super::payments::apply,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::get,
        super::webhooks::remove,
        super::webhooks::disable,
        super::webhooks::enable,
        super::webhooks::rotate_secret,
        super::webhooks::deliveries,
        super::webhooks::resend,
        super::mail::list,
    ),
    components(schemas(Problem)),
    modifiers(&FromRouteTable),
    tags(
        (name = "apps", description = "Called by desktop apps with the license key"),
        (name = "vendor", description = "The shop: minting and the license lifecycle"),
        (name = "support", description = "Support: look-ups, history, grace decisions, claims"),
        (name = "admin", description = "Tokens, the catalog, webhook endpoints and the customers' mail"),
        (name = "payments", description = "The payment providers' webhooks (signed by the provider, no token), and the events they sent (admin)"),
        (name = "operations", description = "Health, metrics, public keys, this document"),
        (name = "customers", description = "What customers reach through links keyclerk made for them: the files of their products"),
    )
)]
pub struct ApiDoc;

/// The document as served (pretty JSON, built once).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n")
}

/// `GET /openapi.json`: this API, as OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
