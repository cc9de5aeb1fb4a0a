//! Metrics in the Prometheus text format (version 0.0.4), written by hand: counters
//! and histograms are plain atomics with fixed buckets, so that recording on the hot
//! path is a few relaxed additions and never a lock; [`Encoder`] writes them out,
//! escaping label values as the format demands.
//!
//! Imports nothing of keyclerk's: storage and routes both record into these types.

pub mod http;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds of request latencies and commit times, in microseconds (0.1 ms to 10 s).
pub const LATENCY_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A histogram with fixed upper bounds; observations are integers (microseconds,
/// or a count), shown divided by `scale` (1e6 to show seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    scale: f64,
    /// One counter per bound and one for the rest (+Inf); not cumulative.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with `bounds` (ascending), shown divided by `scale`.
    pub fn new(bounds: &'static [u64], scale: f64) -> Self {
        Self {
            bounds,
            scale,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A histogram of durations in microseconds, shown in seconds.
    pub fn latency() -> Self {
        Self::new(LATENCY_BOUNDS_US, 1e6)
    }

    /// Counts one observation of `value`.
    pub fn observe(&self, value: u64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// What it holds now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            scale: self.scale,
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// The contents of a [`Histogram`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// The upper bounds, unscaled.
    pub bounds: &'static [u64],
    /// What values are divided by when shown.
    pub scale: f64,
    /// Observations per bucket (the last: above every bound); not cumulative.
    pub counts: Vec<u64>,
    /// The sum of the values observed, unscaled.
    pub sum: u64,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Small integers for a bounded set of `&'static str` (error codes, verdicts),
/// handed out on first sight, without a lock: a slot is taken once and never changes.
#[derive(Debug)]
pub struct Interner {
    slots: Box<[OnceLock<&'static str>]>,
}

impl Interner {
    /// Room for `capacity` strings; the last slot takes every string beyond them and
    /// is shown as `other`.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity.max(1)).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The index of `s`, taking a free slot for a string not seen before.
    pub fn index(&self, s: &'static str) -> usize {
        let last = self.slots.len() - 1;
        for (i, slot) in self.slots[..last].iter().enumerate() {
            match slot.get() {
                Some(held) if *held == s => return i,
                Some(_) => {}
                None => {
                    // Another thread may take the slot first, with this string or another.
                    if *slot.get_or_init(|| s) == s {
                        return i;
                    }
                }
            }
        }
        last
    }

    /// The string of slot `i`, once taken (`other` for the overflow slot).
    pub fn name(&self, i: usize) -> Option<&'static str> {
        if i + 1 == self.slots.len() {
            return Some("other");
        }
        self.slots.get(i).and_then(|s| s.get().copied())
    }
}

/// A row of counters, one per slot of an [`Interner`] (or any index).
#[derive(Debug)]
pub struct Counters(Box<[AtomicU64]>);

impl Counters {
    /// `n` counters at zero.
    pub fn new(n: usize) -> Self {
        Self((0..n).map(|_| AtomicU64::new(0)).collect())
    }

    /// Adds one to counter `i` (an index out of range is ignored).
    pub fn inc(&self, i: usize) {
        if let Some(c) = self.0.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counter `i`.
    pub fn get(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// How many counters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Writes metric families in the text format.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram with `labels`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0;
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count;
            let le = match h.bounds.get(i) {
                Some(b) => format_value(*b as f64 / h.scale),
                None => "+Inf".to_owned(),
            };
            self.out.push_str(name);
            self.out.push_str("_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum as f64 / h.scale);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|v| ("le", v));
        for (i, (name, value)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_label_value(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// A label value as the text format writes it: `\`, `"` and newline escaped.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    out.push_str(&format_value(v));
}

/// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN` as the format
/// spells them.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_into_the_first_bucket_that_holds_the_value() {
        let h = Histogram::new(&[1, 10, 100], 1.0);
        for v in [0, 1, 2, 10, 11, 1000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 1, 1]);
        assert_eq!(s.sum, 1024);
        assert_eq!(s.count(), 6);
    }

    #[test]
    fn the_encoder_writes_cumulative_buckets_and_escapes_label_values() {
        let h = Histogram::new(&[500, 1_000_000], 1e6);
        h.observe(400);
        h.observe(2_000_000);
        let mut e = Encoder::new();
        e.family("x_seconds", "histogram", "Time.\nMore");
        e.histogram("x_seconds", &[("route", "a\"b\\c\nd")], &h.snapshot());
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_seconds Time.\\nMore\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"0.0005\"} 1\n\
             x_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"1\"} 1\n\
             x_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 2\n\
             x_seconds_sum{route=\"a\\\"b\\\\c\\nd\"} 2.0004\n\
             x_seconds_count{route=\"a\\\"b\\\\c\\nd\"} 2\n"
        );
    }

    #[test]
    fn the_interner_gives_each_string_one_slot_and_overflows_into_other() {
        let i = Interner::new(3);
        assert_eq!(i.index("a"), 0);
        assert_eq!(i.index("b"), 1);
        assert_eq!(i.index("a"), 0);
        assert_eq!(i.index("c"), 2);
        assert_eq!(i.index("d"), 2);
        assert_eq!(i.name(0), Some("a"));
        assert_eq!(i.name(2), Some("other"));
    }
}
