//! A license key as presented by a client: a signed token or a short key.

use sha2::{Digest, Sha256};

use crate::domain::short_key::ShortKey;

/// Longest signed key we look at; anything longer is not one of ours.
pub const MAX_SIGNED_KEY_LEN: usize = 4096;

/// A license key in one of the two formats. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub enum LicenseKey {
    /// A PASETO `v4.public` token (not yet verified).
    Signed(String),
    /// A short key with a valid check character.
    Short(ShortKey),
}

impl LicenseKey {
    /// Reads a key; `None` for anything that has the shape of neither format.
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        if s.starts_with("v4.public.") {
            return (s.len() <= MAX_SIGNED_KEY_LEN).then(|| Self::Signed(s.to_owned()));
        }
        ShortKey::parse(s).map(Self::Short)
    }

    /// SHA-256 of the key's canonical text: what the database indexes.
    pub fn hash(&self) -> [u8; 32] {
        match self {
            Self::Signed(t) => Sha256::digest(t.as_bytes()).into(),
            Self::Short(k) => Sha256::digest(k.canonical().as_bytes()).into(),
        }
    }
}

impl std::fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Signed(_) => "LicenseKey::Signed(..)",
            Self::Short(_) => "LicenseKey::Short(..)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::short_key::SHORT_KEY_BYTES;

    #[test]
    fn a_short_key_hashes_the_same_however_it_was_typed() {
        let key = ShortKey::from_bytes(&[3u8; SHORT_KEY_BYTES]);
        let a = LicenseKey::parse(&key.to_string()).unwrap();
        let b = LicenseKey::parse(&key.to_string().to_lowercase().replace('-', "")).unwrap();
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn neither_format_is_no_key() {
        for (case, s) in [
            ("empty", ""),
            ("words", "hello world"),
            ("local token", "v4.local.abc"),
            ("huge", &format!("v4.public.{}", "A".repeat(5000))),
        ] {
            assert!(LicenseKey::parse(s).is_none(), "{case}");
        }
    }
}
