//! Whole numbers as JSON Schema reads them: `2.0` and `2e0` are the integer 2
//! (an `integer` is any number without a fraction), so a request field the API
//! document calls an integer takes them; `2.5` stays refused. Serde helpers for
//! `#[serde(deserialize_with = ...)]`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;

/// 2^64, the first float past every `u64`.
const U64_END: f64 = 18_446_744_073_709_551_616.0;
/// -2^63, the least `i64`, which a float writes exactly.
const I64_START: f64 = -9_223_372_036_854_775_808.0;

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64> + TryFrom<i64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number that fits {}", std::any::type_name::<T>())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::invalid_type(Unexpected::Float(v), &self));
        }
        // Whole and in range, so the casts are exact.
        if (0.0..U64_END).contains(&v) {
            self.visit_u64(v as u64)
        } else if (I64_START..0.0).contains(&v) {
            self.visit_i64(v as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

/// A whole number, its own type or one written with a fraction of zero.
pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    d.deserialize_any(Whole(PhantomData))
}

/// An optional whole number (null or absent: none).
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    struct Wrapped<T>(T);
    impl<'de, T: TryFrom<u64> + TryFrom<i64>> Deserialize<'de> for Wrapped<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize(d).map(Wrapped)
        }
    }
    Ok(Option::<Wrapped<T>>::deserialize(d)?.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::deserialize")]
        n: u32,
        #[serde(default, deserialize_with = "super::option")]
        m: Option<u64>,
    }

    fn read(s: &str) -> Result<(u32, Option<u64>), String> {
        serde_json::from_str::<Body>(s)
            .map(|b| (b.n, b.m))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_read_however_they_are_written() {
        assert_eq!(read(r#"{"n": 7}"#), Ok((7, None)));
        assert_eq!(read(r#"{"n": 7.0, "m": null}"#), Ok((7, None)));
        assert_eq!(read(r#"{"n": 7e0, "m": 4.0}"#), Ok((7, Some(4))));
        assert_eq!(read(r#"{"n": 4294967295.0}"#), Ok((u32::MAX, None)));
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        for (case, body) in [
            ("a fraction", r#"{"n": 7.5}"#),
            ("negative", r#"{"n": -1}"#),
            ("negative float", r#"{"n": -1.0}"#),
            ("past u32", r#"{"n": 4294967296}"#),
            ("past u32 as a float", r#"{"n": 4294967296.0}"#),
            ("past u64", r#"{"n": 1, "m": 18446744073709551616.0}"#),
            ("a string", r#"{"n": "7"}"#),
        ] {
            assert!(read(body).is_err(), "{case}");
        }
    }
}
