//! Request metrics: a fixed block of counters per route slot, laid out once from the
//! route table, so that recording a request is a handful of relaxed atomic additions
//! at indices known up front (no map, no lock, no string built).
//!
//! Slots: one per route of the table (method and pattern), one per pattern for the
//! methods it does not have (`method="other"`, the 405s), and one for every path no
//! pattern matches (`route="(unmatched)"`). Labels are patterns, never raw paths, so
//! that the number of series stays bounded whatever clients send.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::{Counters, Encoder, Histogram, Interner};

/// The route label of paths no pattern matches.
pub const UNMATCHED: &str = "(unmatched)";
/// The method label of a pattern's methods it has no route for.
pub const OTHER_METHOD: &str = "other";
/// The problem code of a rate-limit refusal.
pub const RATE_LIMITED: &str = "rate_limited";

/// Statuses counted one by one: 100 to 599, every status HTTP defines.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;
/// Distinct problem codes (and validation verdicts) kept apart; more share `other`.
const CODES: usize = 64;
const VERDICTS: usize = 24;

/// Where a request landed in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A route of the table, by its index.
    Route(usize),
    /// A pattern of the table, by its index, with a method it has no route for.
    Pattern(usize),
    /// No pattern.
    Unmatched,
}

/// What one request did, for [`HttpMetrics::record`].
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Its slot.
    pub slot: Slot,
    /// The answer's status.
    pub status: u16,
    /// Time from arrival to the answer, in microseconds.
    pub micros: u64,
    /// The `code` of a problem answer.
    pub problem: Option<&'static str>,
    /// The verdict of a validation (`VALID`, `NOT_FOUND`, …).
    pub verdict: Option<&'static str>,
}

/// The request metrics of one server.
#[derive(Debug)]
pub struct HttpMetrics {
    routes: usize,
    patterns: usize,
    /// `(method, route)` per slot.
    labels: Vec<(&'static str, &'static str)>,
    statuses: Counters,
    latency: Vec<Histogram>,
    codes: Interner,
    refusals: Counters,
    rate_limited: Counters,
    in_flight: AtomicI64,
    activation_route: Option<usize>,
    activations_created: AtomicU64,
    activations_refreshed: AtomicU64,
    verdicts: Interner,
    verdict_counts: Counters,
}

/// Counts a request in flight from its creation until dropped.
#[derive(Debug)]
pub struct InFlight<'m>(&'m AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HttpMetrics {
    /// Slots for `routes` (method, pattern; in table order) and their distinct
    /// `patterns`; `activation_route` is the index of the route whose 201 and 200
    /// count as activations created and refreshed.
    pub fn new(
        routes: &[(&'static str, &'static str)],
        patterns: &[&'static str],
        activation_route: Option<usize>,
    ) -> Self {
        let mut labels: Vec<_> = routes.to_vec();
        labels.extend(patterns.iter().map(|p| (OTHER_METHOD, *p)));
        labels.push((OTHER_METHOD, UNMATCHED));
        let slots = labels.len();
        Self {
            routes: routes.len(),
            patterns: patterns.len(),
            statuses: Counters::new(slots * STATUSES),
            latency: (0..slots).map(|_| Histogram::latency()).collect(),
            codes: Interner::new(CODES),
            refusals: Counters::new(slots * CODES),
            rate_limited: Counters::new(slots),
            in_flight: AtomicI64::new(0),
            activation_route,
            activations_created: AtomicU64::new(0),
            activations_refreshed: AtomicU64::new(0),
            verdicts: Interner::new(VERDICTS),
            verdict_counts: Counters::new(VERDICTS),
            labels,
        }
    }

    fn index(&self, slot: Slot) -> usize {
        match slot {
            Slot::Route(i) if i < self.routes => i,
            Slot::Pattern(p) if p < self.patterns => self.routes + p,
            _ => self.routes + self.patterns,
        }
    }

    /// Marks a request as begun; it ends when the guard is dropped.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Counts one answered request.
    pub fn record(&self, o: &Observation) {
        let slot = self.index(o.slot);
        let status = usize::from(o.status.clamp(FIRST_STATUS, FIRST_STATUS + 499) - FIRST_STATUS);
        self.statuses.inc(slot * STATUSES + status);
        self.latency[slot].observe(o.micros);
        if let Some(code) = o.problem {
            self.refusals.inc(slot * CODES + self.codes.index(code));
            if code == RATE_LIMITED {
                self.rate_limited.inc(slot);
            }
        }
        if let Some(verdict) = o.verdict {
            self.verdict_counts.inc(self.verdicts.index(verdict));
        }
        if matches!(o.slot, Slot::Route(i) if Some(i) == self.activation_route) {
            match o.status {
                201 => self.activations_created.fetch_add(1, Ordering::Relaxed),
                200 => self.activations_refreshed.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    }

    /// Writes every family.
    pub fn encode(&self, e: &mut Encoder) {
        e.family(
            "keyclerk_http_requests_total",
            "counter",
            "Requests answered, by route pattern, method and status.",
        );
        for (slot, (method, route)) in self.labels.iter().enumerate() {
            for s in 0..STATUSES {
                let n = self.statuses.get(slot * STATUSES + s);
                if n > 0 {
                    let status = (FIRST_STATUS as usize + s).to_string();
                    e.sample(
                        "keyclerk_http_requests_total",
                        &[("method", method), ("route", route), ("status", &status)],
                        n as f64,
                    );
                }
            }
        }
        e.family(
            "keyclerk_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer, by route pattern and method.",
        );
        for (slot, (method, route)) in self.labels.iter().enumerate() {
            let h = self.latency[slot].snapshot();
            // A route never called has no series (as with the counters).
            if h.count() > 0 {
                e.histogram(
                    "keyclerk_http_request_duration_seconds",
                    &[("method", method), ("route", route)],
                    &h,
                );
            }
        }
        e.family(
            "keyclerk_http_requests_in_flight",
            "gauge",
            "Requests begun and not yet answered.",
        );
        e.sample(
            "keyclerk_http_requests_in_flight",
            &[],
            self.in_flight.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "keyclerk_refusals_total",
            "counter",
            "Problem answers (4xx and 5xx), by route pattern, method and problem code.",
        );
        for (slot, (method, route)) in self.labels.iter().enumerate() {
            for c in 0..self.codes.capacity() {
                let n = self.refusals.get(slot * CODES + c);
                if let (true, Some(code)) = (n > 0, self.codes.name(c)) {
                    e.sample(
                        "keyclerk_refusals_total",
                        &[("method", method), ("route", route), ("code", code)],
                        n as f64,
                    );
                }
            }
        }
        e.family(
            "keyclerk_rate_limited_total",
            "counter",
            "Requests refused by a rate limit (429 rate_limited), by route pattern and method.",
        );
        for (slot, (method, route)) in self.labels.iter().enumerate() {
            let n = self.rate_limited.get(slot);
            if n > 0 {
                e.sample(
                    "keyclerk_rate_limited_total",
                    &[("method", method), ("route", route)],
                    n as f64,
                );
            }
        }
        e.family(
            "keyclerk_activations_total",
            "counter",
            "Activations granted: a new seat (created) or a machine that holds one (refreshed).",
        );
        for (outcome, n) in [
            ("created", &self.activations_created),
            ("refreshed", &self.activations_refreshed),
        ] {
            e.sample(
                "keyclerk_activations_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        e.family(
            "keyclerk_validations_total",
            "counter",
            "Validations answered, by verdict code (VALID, NOT_FOUND, SUSPENDED, …).",
        );
        for v in 0..self.verdicts.capacity() {
            let n = self.verdict_counts.get(v);
            if let (true, Some(code)) = (n > 0, self.verdicts.name(v)) {
                e.sample("keyclerk_validations_total", &[("code", code)], n as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> HttpMetrics {
        HttpMetrics::new(
            &[("GET", "/a"), ("POST", "/a"), ("POST", "/act")],
            &["/a", "/act"],
            Some(2),
        )
    }

    fn seen(slot: Slot, status: u16, problem: Option<&'static str>) -> Observation {
        Observation {
            slot,
            status,
            micros: 700,
            problem,
            verdict: None,
        }
    }

    #[test]
    fn each_request_counts_under_its_route_status_and_code() {
        let m = metrics();
        m.record(&seen(Slot::Route(0), 200, None));
        m.record(&seen(Slot::Route(0), 200, None));
        m.record(&seen(Slot::Route(2), 201, None));
        m.record(&seen(Slot::Route(2), 429, Some(RATE_LIMITED)));
        m.record(&seen(Slot::Pattern(0), 405, Some("method_not_allowed")));
        m.record(&seen(Slot::Unmatched, 404, Some("not_found")));
        let mut e = Encoder::new();
        m.encode(&mut e);
        let text = e.finish();
        for line in [
            "keyclerk_http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 2",
            "keyclerk_http_requests_total{method=\"other\",route=\"/a\",status=\"405\"} 1",
            "keyclerk_http_requests_total{method=\"other\",route=\"(unmatched)\",status=\"404\"} 1",
            "keyclerk_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"0.001\"} 2",
            "keyclerk_refusals_total{method=\"POST\",route=\"/act\",code=\"rate_limited\"} 1",
            "keyclerk_rate_limited_total{method=\"POST\",route=\"/act\"} 1",
            "keyclerk_activations_total{outcome=\"created\"} 1",
            "keyclerk_activations_total{outcome=\"refreshed\"} 0",
            "keyclerk_http_requests_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains("route=\"/a\",status=\"201\""), "{text}");
    }

    #[test]
    fn a_request_in_flight_is_counted_until_its_guard_goes() {
        let m = metrics();
        let guard = m.begin();
        assert_eq!(m.in_flight.load(Ordering::Relaxed), 1);
        drop(guard);
        assert_eq!(m.in_flight.load(Ordering::Relaxed), 0);
    }
}
