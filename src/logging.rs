//! The log: `env_logger`, except that what a client's mistake makes actix log as an
//! error (a request that does not parse, a connection cut mid-request) is logged at
//! debug. Anyone can send those without a token; an ERROR line should mean that
//! something on the server needs a person.

use log::{Level, Log, Metadata, Record};

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
