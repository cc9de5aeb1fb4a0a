//! Crockford's base32, the alphabet of keyclerk's short keys and of offline
//! activation request codes: digits and capitals without `I`, `L`, `O` and `U`.
//! Reading is forgiving, as Crockford intends: lower case is upper case, `I` and
//! `L` read as `1`, `O` as `0`.

/// The 32 characters, by value.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The leading `chars * 5` bits of `bytes` (zero-padded at the end) as `chars`
/// characters.
pub fn encode_bits(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    for i in 0..chars {
        let mut v = 0usize;
        for bit in i * 5..i * 5 + 5 {
            let byte = bytes.get(bit / 8).copied().unwrap_or(0);
            v = (v << 1) | usize::from((byte >> (7 - bit % 8)) & 1);
        }
        out.push(char::from(ALPHABET[v]));
    }
    out
}

/// All of `bytes`, the last character padded with zero bits.
pub fn encode(bytes: &[u8]) -> String {
    encode_bits(bytes, (bytes.len() * 8).div_ceil(5))
}

/// The value of one character as a person may have typed it.
pub fn value_of(c: u8) -> Option<usize> {
    let c = match c.to_ascii_uppercase() {
        b'I' | b'L' => b'1',
        b'O' => b'0',
        other => other,
    };
    ALPHABET.iter().position(|&a| a == c)
}

/// The bytes [`encode`] wrote: `None` for a character outside the alphabet or
/// padding bits that are not zero (text [`encode`] cannot have written).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = u32::try_from(value_of(c)?).ok()?;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
        acc &= (1 << bits) - 1;
    }
    // Fewer than 8 bits remain: padding, which must be zero and shorter than a
    // character (a whole spare character was never written).
    (bits < 5 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_round_trips() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for n in 0..40 {
            let text = encode(&bytes[..n]);
            assert_eq!(text.len(), (n * 8).div_ceil(5));
            assert_eq!(decode(&text).unwrap(), &bytes[..n], "{n}");
        }
    }

    #[test]
    fn known_answer() {
        // "f" = 0x66 = 01100 110(00): 12, 24 → "CR".
        assert_eq!(encode(b"f"), "CR");
        assert_eq!(encode(b"foobar"), "CSQPYRK1E8");
        assert_eq!(decode("csqpyrkie8").unwrap(), b"foobar");
    }

    #[test]
    fn padding_bits_and_spare_characters_are_refused() {
        assert!(decode("CS").is_none(), "non-zero padding");
        assert!(decode("CR0").is_none(), "a spare character");
        assert!(decode("CU").is_none(), "U is not in the alphabet");
    }
}
