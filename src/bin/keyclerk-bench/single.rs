//! Activation on one license: fresh, and holding [`HELD`] machines, which must be
//! as fast (a site license or a large volume license pays nothing for the seats it
//! already holds).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::load::Span;
use crate::server::{Limits, Server, Workspace, SITE_SEATS};
use crate::wrk::{Mode, Wrk};
use crate::{activate_from, http, load, secs, target, Args, Figures, Row, Target, OWN, WRK};

/// Machines the full license holds before it is measured.
pub const HELD: u64 = 50_000;

/// Requests per key per minute with the rate limits on: the shipped 120 would
/// refuse nearly every activation of one license at thousands a second, and the
/// limiter counts in whole milliseconds, so this lets about 60,000 through at once.
const PER_KEY: u32 = 1_000_000;

/// Licenses of the `site` product (100,000 seats each), one batch.
pub(crate) fn site_licenses(
    port: u16,
    token: &str,
    tag: &str,
    n: usize,
) -> Result<Vec<String>, String> {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"product":"site","order_id":"site-{tag}-{i}","customer_email":"site@example.com"}}"#
            )
        })
        .collect();
    let request = http::post(
        "/v1/licenses/batch",
        Some(token),
        &format!(r#"{{"licenses":[{}]}}"#, items.join(",")),
    );
    let keys: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let out = Arc::clone(&keys);
    load::run(
        &[port],
        1,
        Span::Requests(1),
        Arc::new(move |_| request.clone()),
        Arc::new(move |_, status, body| {
            let Ok(doc) = serde_json::from_slice::<Value>(body) else {
                return false;
            };
            let found: Vec<String> = doc["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["key"].as_str().map(str::to_owned))
                .collect();
            out.lock().map(|mut o| *o = found).is_ok() && status == 200
        }),
    )
    .map_err(|e| format!("minting site licenses: {e}"))?;
    let keys = std::mem::take(&mut *keys.lock().map_err(|_| "poisoned")?);
    if keys.len() != n {
        return Err(format!("minted {} site licenses, not {n}", keys.len()));
    }
    Ok(keys)
}

/// The name of the rows of a license holding `held` machines.
fn name(held: u64) -> String {
    if held == 0 {
        "activate, new seat (one license, fresh)".into()
    } else {
        format!("activate, new seat (one license holding {held})")
    }
}

/// Measures activation on one fresh license and on one holding [`HELD`] machines,
/// by each client, with the rate limits off and on. The rows, and the server's
/// peak memory.
pub fn measure(
    args: &Args,
    base: &Path,
    wrk: &mut Option<Wrk>,
    ceiling: Option<f64>,
) -> Result<(Vec<Row>, u64), String> {
    let err = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    let workspace = Workspace::new(base, "single", &args.log).map_err(err("single workspace"))?;
    let conns = args.connections;
    // Each measurement adds at most this many machines, so that none reaches the
    // license's seats.
    let room = u64::from(SITE_SEATS) - HELD;
    let span = Span::Capped {
        warmup: secs(args.warmup),
        measure: secs(args.seconds),
        most: room,
    };
    let mut rows = Vec::new();
    let mut peak = 0;
    for (round, limits) in [Limits::Off, Limits::PerKeyPerMinute(PER_KEY)]
        .into_iter()
        .enumerate()
    {
        // Filled with the limits off (else the fill would spend the key's
        // allowance), then served with the round's limits.
        let filler = Server::keyclerk_with(&workspace.config(), Limits::Off)
            .map_err(err("keyclerk (single)"))?;
        let token = workspace.admin_token().map_err(err("admin token"))?;
        let keys = site_licenses(filler.port, &token, &round.to_string(), 4)?;
        let one = |i: usize| Arc::new(vec![keys[i].clone()]);
        // Fill the two licenses that are measured full, over HTTP like the rest.
        for &full in &[1, 3] {
            let (stats, _, _) = activate_from(
                &[filler.port],
                conns,
                Span::Requests(HELD),
                one(full),
                1_000_000_000,
            )?;
            if stats.failed > 0 || stats.ok != HELD {
                return Err(format!(
                    "filling a license: {} of {HELD} activations failed; first: {}",
                    stats.failed,
                    stats.first_failure.unwrap_or_default()
                ));
            }
        }
        peak = peak.max(filler.peak_memory().map_err(err("peak memory"))?);
        filler.stop().map_err(err("stopping keyclerk"))?;
        let server =
            Server::keyclerk_with(&workspace.config(), limits).map_err(err("keyclerk (single)"))?;
        let port = server.port;
        let mut own_rate = 0.0;
        for (i, held) in [(0, 0), (1, HELD)] {
            let (stats, _, _) = activate_from(&[port], conns, span, one(i), 0)?;
            own_rate = f64::max(own_rate, stats.rate());
            let figures = Figures::from(&stats);
            rows.push(Row::http(
                &name(held),
                (OWN, limits),
                figures,
                "req/s",
                1.0,
                ceiling,
            ));
        }
        if let Some(w) = wrk.as_mut() {
            // wrk cannot stop at a count: its run is kept short enough that the
            // machines it adds stay within the license's seats at the rate just seen.
            let seconds = (room as f64 * 0.8 / own_rate.max(1.0))
                .min(args.seconds)
                .floor()
                .max(1.0) as u64;
            for (i, held) in [(2, 0), (3, HELD)] {
                let measured = w.run(port, conns, seconds, Mode::Activate, &[keys[i].clone()])?;
                let figures = Figures::from(&measured);
                rows.push(Row::http(
                    &name(held),
                    (WRK, limits),
                    figures,
                    "req/s",
                    1.0,
                    ceiling,
                ));
            }
        }
        peak = peak.max(server.peak_memory().map_err(err("peak memory"))?);
        server.stop().map_err(err("stopping keyclerk"))?;
    }
    Ok((rows, peak))
}

/// The issue's goals for one license: the fresh figure at 10,000/s with p99 <= 25
/// ms, and the full one at no less than 0.9 x the fresh one (each client, limits off).
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    for client in [OWN, WRK] {
        let fresh = rows.iter().find(|r| r.is(&name(0), client, "off"));
        let full = rows.iter().find(|r| r.is(&name(HELD), client, "off"));
        let (Some(fresh), Some(full)) = (fresh, full) else {
            continue;
        };
        let (Some(f), Some(h)) = (fresh.figures.as_ref(), full.figures.as_ref()) else {
            continue;
        };
        for (what, x) in [("fresh", f), ("holding 50,000", h)] {
            out.push(target(
                format!(
                    "activate on one license, {what} ({client}) >= 10,000/s with p99 <= 25 ms: {:.0}/s, p99 {:.2} ms",
                    x.rate, x.p99_ms
                ),
                x.rate >= 10_000.0 && x.p99_ms <= 25.0,
            ));
        }
        out.push(target(
            format!(
                "activate on one license holding {HELD} >= 0.9 x fresh ({client}): {:.2}",
                h.rate / f.rate
            ),
            h.rate / f.rate >= 0.9,
        ));
    }
    out
}
