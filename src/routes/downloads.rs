//! Downloads: the signed links of a license (for staff and vendors' portals), and
//! the endpoint that serves the file of a link, whole or a range of it.

use std::os::unix::fs::FileExt;

use actix_web::body::SizedStream;
use actix_web::http::{header, Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::download::{content_type, etag, DownloadRefusal, RangeAsk};
use crate::domain::ids::is_id;
use crate::domain::time;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::service::downloads::{DownloadLink, OpenedFile};
use crate::service::AppState;

/// Bytes read from the file per chunk of the answer.
const CHUNK_BYTES: u64 = 64 * 1024;

/// The signed download links of a license.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DownloadLinks {
    /// The license.
    pub license_id: String,
    /// A link per file of its product (none for a license that is not active).
    pub downloads: Vec<DownloadLink>,
}

/// `GET /v1/licenses/{id}/downloads`: a fresh signed link to each file of the
/// license's product, for a vendor's own portal or for support to hand out.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/downloads",
    operation_id = "license_downloads",
    tag = "support",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "A link per file, valid `[downloads] link_minutes`; an empty list for a license that is revoked, refunded, superseded, suspended or waiting for payment", body = DownloadLinks),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn links(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if !is_id("lic", &id) {
        return Err(DomainError::LicenseNotFound.into());
    }
    let downloads = state.license_downloads(&id, time::now()).await?;
    Ok(HttpResponse::Ok().json(DownloadLinks {
        license_id: id,
        downloads,
    }))
}

/// Query of `GET /v1/downloads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The link's token, as `GET /v1/licenses/{id}/downloads` made it (in the query,
    /// so that it never reaches the access log).
    #[param(value_type = crate::domain::schema::DownloadToken)]
    link: String,
}

/// `GET /v1/downloads?link=…`: the file of a signed link. `Range: bytes=a-b`,
/// `bytes=a-` and `bytes=-n` get 206 with that part; HEAD answers the headers.
/// A GET that serves the file from its first byte is a download: an audit event
/// on the license.
#[utoipa::path(
    get,
    path = "/v1/downloads",
    operation_id = "download",
    tag = "customers",
    params(
        DownloadQuery,
        ("Range" = Option<String>, Header, description = "One range of bytes: `bytes=0-99`, `bytes=100-`, `bytes=-100` (several ranges, or another unit: the whole file)"),
        ("If-Range" = Option<String>, Header, description = "The `ETag` the range belongs to; another one gets the whole file"),
    ),
    responses(
        (status = 200, description = "The whole file (`Content-Disposition: attachment`, `ETag`, `Last-Modified`, `Accept-Ranges: bytes`)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for, with `Content-Range`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "`invalid_parameter`: no `link`"),
        (status = 403, description = "`download_link_invalid`: a malformed or altered link, or one made for another license or file; `license_revoked`, `license_superseded`, `license_suspended`, `license_pending_payment`: the license may not download"),
        (status = 404, description = "`file_not_found`: the product no longer offers the file"),
        (status = 410, description = "`download_link_expired`: ask for a new link"),
        (status = 416, description = "`range_not_satisfiable`: the range lies past the end of the file (`Content-Range: bytes */size`)")
    )
)]
pub async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = time::now();
    let opened = state.open_download(&query.link, now).await?;
    let modified = opened
        .modified
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let tag = etag(opened.size, modified);
    let range = header_str(&req, header::RANGE)
        .filter(|_| header_str(&req, header::IF_RANGE).is_none_or(|given| given == tag));
    let ask = RangeAsk::parse(range, opened.size);
    let (status, start, len) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, opened.size),
        RangeAsk::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeAsk::Unsatisfiable => {
            return Err(DownloadRefusal::RangeNotSatisfiable { size: opened.size }.into())
        }
    };
    if req.method() == Method::GET && ask.starts_download() {
        state.record_download(&opened, now).await?;
    }
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, content_type(&opened.name)))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", opened.name),
        ))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, tag))
        // The link is a credential for a few minutes: nobody keeps a copy.
        .insert_header((header::CACHE_CONTROL, "private, no-store"));
    if let Some(m) = opened.modified {
        res.insert_header((header::LAST_MODIFIED, httpdate::fmt_http_date(m)));
    }
    if let RangeAsk::Part { start, end } = ask {
        res.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{}", opened.size),
        ));
    }
    Ok(res.body(SizedStream::new(len, file_stream(opened, start, len))))
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `len` bytes of the file from `start`, read in chunks off the async executor:
/// the file is never held in memory whole.
fn file_stream(
    opened: OpenedFile,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let file = std::sync::Arc::new(opened.file);
    futures_util::stream::unfold(
        (Some(file), start, len),
        |(file, offset, left)| async move {
            let file = file?;
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK_BYTES);
            let reading = std::sync::Arc::clone(&file);
            let read = web::block(move || {
                // `n` is at most CHUNK_BYTES, which fits a usize.
                let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
                reading.read_exact_at(&mut buf, offset).map(|()| buf)
            })
            .await;
            match read {
                Ok(Ok(buf)) => Some((Ok(Bytes::from(buf)), (Some(file), offset + n, left - n))),
                Ok(Err(e)) => {
                    log::warn!("a download stopped: {e}");
                    Some((Err(e.into()), (None, offset, 0)))
                }
                Err(e) => Some((Err(e.into()), (None, offset, 0))),
            }
        },
    )
}
