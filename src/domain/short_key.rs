//! Short license keys for people who type them: `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
//!
//! 24 Crockford base32 characters carry 120 bits, the 25th is a Luhn mod 32 check
//! character that catches every single mistyped character and every swap of two
//! neighbours. Reading is forgiving: case, dashes and spaces do not matter, and
//! `I`/`L` read as `1`, `O` as `0`, as Crockford intends.

use std::fmt;

pub use keyclerk_client::base32::encode_bits as crockford_encode;
use keyclerk_client::base32::{value_of, ALPHABET};

const DATA_CHARS: usize = 24;

/// Number of random bytes a short key needs (120 bits).
pub const SHORT_KEY_BYTES: usize = 15;

/// Luhn mod N over base 32: the check value that makes the whole sum divisible by 32.
fn check_value(values: &[usize]) -> usize {
    let mut factor = 2;
    let mut sum = 0;
    for &v in values.iter().rev() {
        let addend = factor * v;
        sum += addend / 32 + addend % 32;
        factor = if factor == 2 { 1 } else { 2 };
    }
    (32 - sum % 32) % 32
}

/// A well-formed short key (check character verified), in canonical form.
#[derive(Clone, PartialEq, Eq)]
pub struct ShortKey(String);

impl ShortKey {
    /// The key for 120 bits of key material.
    pub fn from_bytes(bytes: &[u8; SHORT_KEY_BYTES]) -> Self {
        let data = crockford_encode(bytes, DATA_CHARS);
        let values: Vec<usize> = data.bytes().filter_map(value_of).collect();
        let mut s = data;
        s.push(char::from(ALPHABET[check_value(&values)]));
        Self(s)
    }

    /// Reads a key as a person typed it; `None` for anything that is not a valid key.
    pub fn parse(input: &str) -> Option<Self> {
        let mut values = Vec::with_capacity(DATA_CHARS + 1);
        for b in input.bytes() {
            if b == b'-' || b == b' ' {
                continue;
            }
            values.push(value_of(b)?);
            if values.len() > DATA_CHARS + 1 {
                return None;
            }
        }
        if values.len() != DATA_CHARS + 1 {
            return None;
        }
        let (data, check) = values.split_at(DATA_CHARS);
        if check_value(data) != check[0] {
            return None;
        }
        Some(Self(
            values.iter().map(|&v| char::from(ALPHABET[v])).collect(),
        ))
    }

    /// The 25 characters without dashes: what gets hashed and looked up.
    pub fn canonical(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, chunk) in self.0.as_bytes().chunks(5).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShortKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShortKey {
        ShortKey::from_bytes(&[
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32,
        ])
    }

    #[test]
    fn a_key_is_five_groups_of_five() {
        let shown = sample().to_string();
        assert_eq!(shown.len(), 29);
        assert_eq!(shown.split('-').count(), 5);
        assert!(shown.split('-').all(|g| g.len() == 5));
    }

    #[test]
    fn golden_encoding_of_fixed_bytes() {
        assert_eq!(sample().to_string(), "04HMA-SW9NF-6YZZP-WQAC7-CN1JE");
    }

    #[test]
    fn typing_is_forgiving_about_case_dashes_and_lookalikes() {
        let key = sample();
        let typed = key.to_string().to_lowercase().replace('-', " ");
        assert_eq!(ShortKey::parse(&typed), Some(key.clone()));
        let with_o = key.canonical().replace('0', "O");
        assert_eq!(ShortKey::parse(&with_o), Some(key));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let key = sample();
        let canonical = key.canonical().as_bytes().to_vec();
        for pos in 0..canonical.len() {
            for &c in ALPHABET {
                if c == canonical[pos] {
                    continue;
                }
                let mut typo = canonical.clone();
                typo[pos] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(ShortKey::parse(&typo), None, "typo at {pos}: {typo}");
            }
        }
    }

    #[test]
    fn swapping_two_neighbours_is_caught() {
        let canonical = sample().canonical().as_bytes().to_vec();
        for pos in 0..canonical.len() - 1 {
            if canonical[pos] == canonical[pos + 1] {
                continue;
            }
            let mut swapped = canonical.clone();
            swapped.swap(pos, pos + 1);
            let swapped = String::from_utf8(swapped).unwrap();
            assert_eq!(ShortKey::parse(&swapped), None, "swap at {pos}");
        }
    }

    #[test]
    fn malformed_inputs_are_refused() {
        for (case, input) in [
            ("empty", ""),
            ("too short", "048MA-SW9NF"),
            ("too long", "048MA-SW9NF-7ZZQ5-TK1V1-MCJ3K-00000"),
            (
                "letter U is not in the alphabet",
                "U48MA-SW9NF-7ZZQ5-TK1V1-MCJ3K",
            ),
            ("non ascii", "é48MA-SW9NF-7ZZQ5-TK1V1-MCJ3K"),
        ] {
            assert_eq!(ShortKey::parse(input), None, "{case}");
        }
    }

    #[test]
    fn debug_does_not_print_the_key() {
        assert_eq!(format!("{:?}", sample()), "ShortKey(..)");
    }
}
