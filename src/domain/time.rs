//! Timestamps: whole seconds, UTC, written as RFC 3339.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// A point in time with one-second precision, UTC.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to whole seconds. Only the edges call this.
pub fn now() -> Timestamp {
    from_unix(Utc::now().timestamp())
}

/// A timestamp from Unix seconds (clamped to chrono's range).
pub fn from_unix(secs: i64) -> Timestamp {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// RFC 3339 with a `Z` and whole seconds, the format of every claim and response.
pub fn format(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Unix seconds of 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
pub const LATEST_UNIX: i64 = 253_402_300_799;

/// Parses RFC 3339 (any offset) into UTC, dropping fractions of a second; a time
/// past 9999-12-31 in UTC (`9999-12-31T23:30:00-01:00`) is refused.
pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp())
        .filter(|&secs| secs <= LATEST_UNIX)
        .map(from_unix)
}

/// `t` moved forward by whole days, at most to 9999-12-31T23:59:59Z (a later time
/// could not be written as RFC 3339).
pub fn plus_days(t: Timestamp, days: u32) -> Timestamp {
    from_unix(
        t.timestamp()
            .saturating_add(i64::from(days) * 86_400)
            .min(LATEST_UNIX),
    )
}

/// Whether `t` moved forward by `days` stays within 9999-12-31.
pub fn fits_days(t: Timestamp, days: u32) -> bool {
    t.timestamp().saturating_add(i64::from(days) * 86_400) <= LATEST_UNIX
}

/// Serde helpers for optional RFC 3339 fields.
pub mod serde_opt {
    use super::{format, parse, Timestamp};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads an optional RFC 3339 timestamp (null or absent: none).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time")),
            None => Ok(None),
        }
    }

    /// Serializes an optional timestamp as RFC 3339 or null.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(*t)),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper for required RFC 3339 fields.
pub mod serde_req {
    use super::{format, parse, Timestamp};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads an RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }

    /// Serializes a timestamp as RFC 3339.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip_in_utc() {
        let t = parse("2026-01-02T03:04:05+02:00").unwrap();
        assert_eq!(format(t), "2026-01-02T01:04:05Z");
        assert_eq!(parse(&format(t)), Some(t));
    }

    #[test]
    fn fractions_of_a_second_are_dropped() {
        let t = parse("2026-01-02T03:04:05.999Z").unwrap();
        assert_eq!(format(t), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn plus_days_counts_whole_days() {
        let t = parse("2026-01-30T00:00:00Z").unwrap();
        assert_eq!(format(plus_days(t, 2)), "2026-02-01T00:00:00Z");
    }

    #[test]
    fn no_time_past_9999_is_parsed_or_made() {
        assert_eq!(format(from_unix(LATEST_UNIX)), "9999-12-31T23:59:59Z");
        assert!(parse("9999-12-31T23:59:59Z").is_some());
        assert_eq!(parse("9999-12-31T23:30:00-01:00"), None);
        let last = parse("9999-12-01T00:00:00Z").unwrap();
        assert_eq!(format(plus_days(last, 365)), "9999-12-31T23:59:59Z");
        assert!(fits_days(last, 30));
        assert!(!fits_days(last, 31));
    }

    #[test]
    fn garbage_is_not_a_time() {
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse(""), None);
    }
}
