//! The log: `env_logger`, except that what a client's mistake makes actix log as an
//! error (a request that does not parse, a connection cut mid-request) is logged at
//! debug. Anyone can send those without a token; an ERROR line should mean that
//! something on the server needs a person.
//!
//! Two formats (`[log] format`): `text`, a line for people, and `json`, one JSON
//! object a line (`time`, `level`, `target`, `message`, `request_id`, and the
//! fields of an access line). A line logged while a request is handled carries that
//! request's id, in both formats: the request's future runs inside
//! [`in_request`], and the formatter reads the id from there.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use log::kv::{Key, Value, VisitSource, VisitValue};
use log::{Level, Log, Metadata, Record};
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[LEVEL] message request_id=…`, for people.
    #[default]
    Text,
    /// One JSON object a line, for a log collector.
    Json,
}

/// The `[log]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// An `env_logger` filter: `info`, `debug`, `keyclerk=trace,actix_web=warn`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Runs `f` as the handling of request `id`: every line it logs carries the id.
pub async fn in_request<F: Future>(id: Arc<str>, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id of the request being handled on this thread, if one is.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// The key of a line's request id, in its key-values (`request_id = …`) and in JSON.
pub const REQUEST_ID_KEY: &str = "request_id";

/// An `env_logger` with `filter` and `format`.
pub fn build(filter: &str, format: LogFormat) -> env_logger::Logger {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter);
    match format {
        LogFormat::Text => builder.format(text_line),
        LogFormat::Json => builder.format(json_line),
    };
    builder.build()
}

/// The request id a line carries: its own key-value (an access line, logged after
/// its request), else the request being handled.
fn request_id_of(record: &Record<'_>) -> Option<String> {
    record
        .key_values()
        .get(Key::from_str(REQUEST_ID_KEY))
        .map(|v| v.to_string())
        .or_else(|| current_request_id().map(|id| id.to_string()))
}

fn text_line(buf: &mut env_logger::fmt::Formatter, record: &Record<'_>) -> std::io::Result<()> {
    let style = buf.default_level_style(record.level());
    write!(
        buf,
        "[{style}{:<5}{style:#}] {}",
        record.level(),
        record.args()
    )?;
    if let Some(id) = request_id_of(record) {
        write!(buf, " {REQUEST_ID_KEY}={id}")?;
    }
    writeln!(buf)
}

fn json_line(buf: &mut env_logger::fmt::Formatter, record: &Record<'_>) -> std::io::Result<()> {
    buf.write_all(json_of(record).as_bytes())
}

/// One record as a line of JSON (with its newline).
pub fn json_of(record: &Record<'_>) -> String {
    let mut line = String::with_capacity(256);
    line.push_str("{\"time\":");
    push_json_str(
        &mut line,
        &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    line.push_str(",\"level\":");
    push_json_str(&mut line, &record.level().as_str().to_ascii_lowercase());
    line.push_str(",\"target\":");
    push_json_str(&mut line, record.target());
    line.push_str(",\"message\":");
    push_json_str(&mut line, &record.args().to_string());
    let own_id = record
        .key_values()
        .get(Key::from_str(REQUEST_ID_KEY))
        .is_some();
    if !own_id {
        if let Some(id) = current_request_id() {
            line.push_str(",\"request_id\":");
            push_json_str(&mut line, &id);
        }
    }
    let _ = record.key_values().visit(&mut JsonFields(&mut line));
    line.push_str("}\n");
    line
}

fn push_json_str(out: &mut String, s: &str) {
    // Serializing a str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Writes key-values as `,"key":value`, leaving out those without a value.
struct JsonFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let mut shown = String::new();
        value.visit(JsonValue(&mut shown))?;
        if shown != "null" {
            self.0.push(',');
            push_json_str(self.0, key.as_str());
            self.0.push(':');
            self.0.push_str(&shown);
        }
        Ok(())
    }
}

/// Writes one value: numbers and booleans as they are, anything else as a string.
struct JsonValue<'a>(&'a mut String);

impl<'v> VisitValue<'v> for JsonValue<'_> {
    fn visit_any(&mut self, value: Value<'_>) -> Result<(), log::kv::Error> {
        push_json_str(self.0, &value.to_string());
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), log::kv::Error> {
        self.0.push_str("null");
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        self.0.push_str(&value.to_string());
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        self.0.push_str(&value.to_string());
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), log::kv::Error> {
        match serde_json::Number::from_f64(value) {
            Some(n) => self.0.push_str(&n.to_string()),
            None => self.0.push_str("null"),
        }
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        self.0.push_str(if value { "true" } else { "false" });
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        push_json_str(self.0, value);
        Ok(())
    }
}

/// Wraps `inner`, demoting client-caused errors to debug.
pub struct Logger {
    inner: env_logger::Logger,
}

/// Whether `record` is actix's report of a client's malformed or broken request.
pub fn is_client_mistake(record: &Record<'_>) -> bool {
    record.level() == Level::Error && record.target().starts_with("actix_http::h1") && {
        let text = record.args().to_string();
        text.starts_with("stream error") || text.starts_with("MAX_BUFFER_SIZE")
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_client_mistake(record) {
            if self.inner.matches(record) {
                self.inner.log(record);
            }
            return;
        }
        let demoted = Record::builder()
            .args(*record.args())
            .key_values(record.key_values())
            .level(Level::Debug)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.inner.matches(&demoted) {
            self.inner.log(&demoted);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs `inner`, wrapped, as the process's logger (once; later calls do nothing).
pub fn install(inner: env_logger::Logger) {
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(level: Level, target: &'a str, args: std::fmt::Arguments<'a>) -> bool {
        is_client_mistake(
            &Record::builder()
                .level(level)
                .target(target)
                .args(args)
                .build(),
        )
    }

    #[test]
    fn a_json_line_holds_the_message_its_fields_and_the_request_id() {
        let line = json_of(
            &Record::builder()
                .level(Level::Info)
                .target("keyclerk::access")
                .args(format_args!("say \"hi\"\nthere"))
                .key_values(&[
                    ("status", Some(201u64)),
                    ("latency_ms", Some(3)),
                    ("cause", None),
                ])
                .build(),
        );
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["target"], "keyclerk::access");
        assert_eq!(v["message"], "say \"hi\"\nthere");
        assert_eq!(v["status"], 201);
        assert!(
            v.get("cause").is_none(),
            "a field without a value is left out: {v}"
        );
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(v.get("request_id").is_none(), "outside a request: {v}");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inside = runtime.block_on(in_request(Arc::from("rid-7"), async {
            json_of(
                &Record::builder()
                    .level(Level::Warn)
                    .args(format_args!("inside"))
                    .build(),
            )
        }));
        let v: serde_json::Value = serde_json::from_str(&inside).unwrap();
        assert_eq!(v["request_id"], "rid-7");
        assert_eq!(current_request_id(), None);
    }

    #[test]
    fn only_actix_reports_of_bad_requests_are_demoted() {
        assert!(record(
            Level::Error,
            "actix_http::h1::dispatcher",
            format_args!("stream error: request parse error: invalid Header provided")
        ));
        assert!(!record(
            Level::Error,
            "actix_http::h1::dispatcher",
            format_args!("Response payload stream error: x")
        ));
        assert!(!record(
            Level::Error,
            "keyclerk::service",
            format_args!("stream error: ours")
        ));
        assert!(!record(
            Level::Warn,
            "actix_http::h1::dispatcher",
            format_args!("stream error: x")
        ));
    }
}
