//! Timestamps: whole seconds, UTC, written as RFC 3339.

use chrono::{DateTime, SecondsFormat, TimeZone, Timelike, Utc};

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

/// Why a text is not a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not an RFC 3339 date-time.
    Malformed,
    /// A date-time past 9999-12-31T23:59:59Z, which RFC 3339 cannot write in UTC.
    OutOfRange,
}

/// Parses an RFC 3339 date-time as JSON Schema's `date-time` reads it (RFC 3339
/// §5.6): `YYYY-MM-DD`, `T`, `HH:MM:SS`, an optional fraction, then `Z` or an
/// offset `±HH:MM`; `T` and `Z` in either case; second 60 only at 23:59 UTC (a
/// leap second, read as the second before). Into UTC, without the fraction.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimeError> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let shaped = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shaped {
        return Err(TimeError::Malformed);
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 {
            return Err(TimeError::Malformed);
        }
        rest = &fraction[n..];
    }
    let offset_minutes: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let number = |x: &u8, y: &u8| i64::from(x - b'0') * 10 + i64::from(y - b'0');
            let (hours, minutes) = (number(h1, h2), number(m1, m2));
            if hours > 23 || minutes > 59 {
                return Err(TimeError::Malformed);
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return Err(TimeError::Malformed),
    };
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| TimeError::Malformed)?;
    if &s[17..19] == "60" {
        // Hours and minutes of the time in UTC: a leap second ends a UTC day.
        let local = i64::from(t.hour()) * 60 + i64::from(t.minute());
        if (local - offset_minutes).rem_euclid(24 * 60) != 23 * 60 + 59 {
            return Err(TimeError::Malformed);
        }
    }
    let secs = t.with_timezone(&Utc).timestamp();
    if secs > LATEST_UNIX {
        return Err(TimeError::OutOfRange);
    }
    Ok(from_unix(secs))
}

/// [`parse_rfc3339`], for callers that need no reason: a time past 9999-12-31 in
/// UTC (`9999-12-31T23:30:00-01:00`) is refused too.
pub fn parse(s: &str) -> Option<Timestamp> {
    parse_rfc3339(s).ok()
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

    #[test]
    fn date_times_are_read_as_json_schema_reads_them() {
        for (case, s, ok) in [
            ("utc", "2020-01-01T00:00:00Z", true),
            ("lower-case t and z", "2020-01-01t00:00:00z", true),
            ("an offset", "2020-01-01T00:00:00+23:59", true),
            ("negative zero offset", "2020-01-01T00:00:00-00:00", true),
            ("a long fraction", "2020-01-01T00:00:00.123456789123Z", true),
            ("year zero", "0000-01-01T00:00:00Z", true),
            ("a leap second", "2016-12-31T23:59:60Z", true),
            (
                "a leap second at 23:59 UTC",
                "2017-01-01T00:59:60+01:00",
                true,
            ),
            ("a space for T", "2020-01-01 00:00:00Z", false),
            (
                "second 60 not at 23:59 UTC",
                "2020-01-01T23:59:60+01:00",
                false,
            ),
            ("second 60 mid-day", "2020-01-01T00:00:60Z", false),
            ("hour 24 offset", "2020-01-01T00:00:00+24:00", false),
            ("no offset", "2020-01-01T00:00:00", false),
            ("offset without colon", "2020-01-01T00:00:00+0100", false),
            ("empty fraction", "2020-01-01T00:00:00.Z", false),
            ("hour 24", "2020-01-01T24:00:00Z", false),
            ("no seconds", "2020-01-01T00:00Z", false),
            ("february 30", "2020-02-30T00:00:00Z", false),
            ("trailing text", "2020-01-01T00:00:00Zx", false),
            ("leading space", " 2020-01-01T00:00:00Z", false),
        ] {
            assert_eq!(parse_rfc3339(s).is_ok(), ok, "{case}: {s}");
        }
        assert_eq!(
            parse_rfc3339("9999-12-31T23:30:00-01:00"),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(
            parse("2016-12-31T23:59:60Z").map(format).as_deref(),
            Some("2016-12-31T23:59:59Z")
        );
    }
}
