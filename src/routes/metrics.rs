//! `GET /metrics`: the Prometheus text format, for admin tokens on the API's address,
//! and for anyone on `[metrics] listen` when that is set.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::metrics::http::HttpMetrics;
use crate::metrics::{Encoder, CONTENT_TYPE};
use crate::service::AppState;
use crate::storage::StorageStats;

/// Everything keyclerk measures, in the text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format (version 0.0.4): requests by route, method and status, latencies, refusals by code, activations, validations, the write queue and group commits, connection pools, the webhook outbox", content_type = "text/plain", body = String)
    )
)]
pub async fn scrape(
    state: web::Data<AppState>,
    http: web::Data<HttpMetrics>,
) -> Result<HttpResponse, ApiError> {
    // One count of the outbox (an index range of its pending rows); a database that
    // does not answer leaves the gauge out rather than fail the scrape.
    let outbox = state
        .store
        .outbox_pending(crate::domain::webhook::WEBHOOK_CHANNEL)
        .await
        .ok();
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(exposition(&state, &http, outbox)))
}

/// The routes of the `[metrics] listen` address: `/metrics` without a token, and
/// nothing else (404 problem).
pub fn configure_listener(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(scrape)))
        .default_service(web::to(super::not_found));
}

/// The whole exposition: the requests, then storage and the in-memory queues.
pub fn exposition(state: &AppState, http: &HttpMetrics, webhook_outbox: Option<i64>) -> String {
    let mut e = Encoder::new();
    e.family(
        "keyclerk_build_info",
        "gauge",
        "Always 1; the version and the storage engine are its labels.",
    );
    let stats = state.store.stats();
    e.sample(
        "keyclerk_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("engine", stats.engine),
        ],
        1.0,
    );
    http.encode(&mut e);
    storage(&mut e, &stats);
    e.family(
        "keyclerk_last_seen_pending",
        "gauge",
        "Last-seen times of licenses and machines noted by validations, not written yet.",
    );
    e.sample(
        "keyclerk_last_seen_pending",
        &[],
        state.last_seen.pending() as f64,
    );
    if let Some(pending) = webhook_outbox {
        e.family(
            "keyclerk_outbox_pending",
            "gauge",
            "Messages of the durable outbox not delivered yet (waiting for an attempt or a retry), by channel.",
        );
        e.sample(
            "keyclerk_outbox_pending",
            &[("channel", crate::domain::webhook::WEBHOOK_CHANNEL)],
            pending as f64,
        );
    }
    e.finish()
}

fn storage(e: &mut Encoder, stats: &StorageStats) {
    if let Some(q) = stats.write_queue {
        e.family(
            "keyclerk_db_write_queue_depth",
            "gauge",
            "Writes waiting for the one writer.",
        );
        e.sample("keyclerk_db_write_queue_depth", &[], q.depth as f64);
        e.family(
            "keyclerk_db_write_queue_capacity",
            "gauge",
            "Writes that may wait; past them a write is answered 503.",
        );
        e.sample("keyclerk_db_write_queue_capacity", &[], q.capacity as f64);
    }
    if let Some(h) = &stats.write_batch_size {
        e.family(
            "keyclerk_db_write_batch_size",
            "histogram",
            "Writes committed together in one group commit.",
        );
        e.histogram("keyclerk_db_write_batch_size", &[], h);
    }
    if let Some(h) = &stats.batch_micros {
        e.family(
            "keyclerk_db_write_batch_duration_seconds",
            "histogram",
            "Time of one write transaction, BEGIN to the end of COMMIT (SQLite: one group commit of many writes).",
        );
        e.histogram("keyclerk_db_write_batch_duration_seconds", &[], h);
    }
    if let Some(h) = &stats.commit_micros {
        e.family(
            "keyclerk_db_commit_duration_seconds",
            "histogram",
            "Time of one COMMIT until it is on disk (SQLite: the fsync; PostgreSQL: the chain's append, COMMIT and the WAL flush).",
        );
        e.histogram("keyclerk_db_commit_duration_seconds", &[], h);
    }
    e.family(
        "keyclerk_db_pool_connections",
        "gauge",
        "Connections of a pool: open and held (in_use), open and free (idle).",
    );
    for p in &stats.pools {
        let in_use = p.open.saturating_sub(p.idle) as f64;
        e.sample(
            "keyclerk_db_pool_connections",
            &[("pool", p.name), ("state", "in_use")],
            in_use,
        );
        e.sample(
            "keyclerk_db_pool_connections",
            &[("pool", p.name), ("state", "idle")],
            p.idle as f64,
        );
    }
    e.family(
        "keyclerk_db_pool_max_connections",
        "gauge",
        "Connections a pool may open.",
    );
    for p in &stats.pools {
        e.sample(
            "keyclerk_db_pool_max_connections",
            &[("pool", p.name)],
            p.max as f64,
        );
    }
    e.family(
        "keyclerk_db_pool_waiting",
        "gauge",
        "Callers waiting for a connection of a pool.",
    );
    for p in &stats.pools {
        e.sample(
            "keyclerk_db_pool_waiting",
            &[("pool", p.name)],
            p.waiting as f64,
        );
    }
}
