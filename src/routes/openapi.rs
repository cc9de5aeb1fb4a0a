//! The API described as OpenAPI 3.1, generated from the handlers' annotations, the
//! request and response types and the route table (access, security, the errors
//! every route can give); served at `GET /openapi.json`. A test keeps the
//! committed copy, `docs/openapi.json`, in step.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, ToSchema};

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
fn common_errors(method: &str, access: Access) -> Vec<(u16, &'static str)> {
    let mut errors = Vec::new();
    let reads_token = matches!(access, Access::Roles(_) | Access::KeyOrRoles(_));
    if matches!(method, "POST" | "PUT" | "PATCH") && reads_token {
        errors.push((
            400,
            "`invalid_json`, `missing_field`, `invalid_field`, `invalid_parameter`: the body's shape is wrong (unknown fields too); `duplicate_authorization`: more than one `Authorization` header",
        ));
    } else if reads_token {
        errors.push((
            400,
            "`invalid_parameter`: a query parameter is wrong; `duplicate_authorization`: more than one `Authorization` header",
        ));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        errors.push((
            400,
            "`invalid_json`, `missing_field`, `invalid_field`, `invalid_parameter`: the body's shape is wrong (unknown fields too)",
        ));
        errors.push((
            413,
            "`payload_too_large`: a body over 64 KiB (2 MiB for batches)",
        ));
        errors.push((
            408,
            "`body_timeout`: the body did not arrive within the server's deadline; the connection is closed",
        ));
        errors.push((
            415,
            "`unsupported_media_type`: a body that is not `application/json`; `unsupported_content_encoding`: a compressed body (nothing is decoded; `Accept-Encoding: identity`); `unsupported_charset`: a charset other than UTF-8",
        ));
    } else if !matches!(access, Access::Anyone) {
        errors.push((400, "`invalid_parameter`: a query parameter is wrong"));
    }
    match access {
        Access::Roles(_) => {
            errors.push((401, "`missing_token`, `invalid_token`, `token_revoked`"));
            errors.push((403, "`forbidden`: the token's role may not do this"));
        }
        Access::KeyOrRoles(_) => {
            errors.push((
                401,
                "`invalid_token`, `token_revoked` (when a token is sent)",
            ));
            errors.push((403, "`forbidden`: the token's role may not do this"));
        }
        Access::Anyone | Access::LicenseKey => {}
    }
    if matches!(access, Access::LicenseKey | Access::KeyOrRoles(_)) {
        errors.push((
            429,
            "`rate_limited`: too many failed look-ups from this address or requests for this key; `Retry-After`",
        ));
    }
    errors.push((500, "`internal_error`: nothing of the cause is told"));
    errors.push((
        503,
        "`database_unavailable`: the database does not answer; `Retry-After`",
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
                Access::Anyone | Access::LicenseKey => {
                    op.security = Some(vec![SecurityRequirement::default()]);
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
                    .or_insert_with(|| problem_response(description));
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
        super::licenses::act,
    ),
    components(schemas(Problem)),
    modifiers(&FromRouteTable),
    tags(
        (name = "apps", description = "Called by desktop apps with the license key"),
        (name = "vendor", description = "The shop: minting and the license lifecycle"),
        (name = "support", description = "Support: look-ups, history, grace decisions, claims"),
        (name = "admin", description = "Tokens and the catalog"),
        (name = "operations", description = "Health, metrics, public keys, this document"),
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
