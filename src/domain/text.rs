//! What free text may hold: no control characters but newline and tab (a NUL or an
//! ESC sequence in a reason would reach whoever prints the history), and, in
//! identifiers, no invisible format characters (which make look-alike order ids).
//!
//! Each text field has one [`TextRule`]: the server checks the text as sent with
//! it, and the API document states the same rule as a JSON Schema `pattern` and
//! `maxLength` built from it, so the two cannot disagree.

/// Which characters a text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chars {
    /// Any but control characters (Unicode general category Cc).
    Text,
    /// Any but control characters other than newline and tab (free text).
    Lines,
    /// Any but control and invisible format characters (identifiers people compare).
    Identifier,
    /// Printable ASCII, `!` to `~` (values that travel in headers and receipts).
    AsciiGraphic,
}

impl Chars {
    /// Whether `c` may appear.
    pub fn allows(self, c: char) -> bool {
        match self {
            Self::Text => !c.is_control(),
            Self::Lines => !c.is_control() || c == '\n' || c == '\t',
            Self::Identifier => !c.is_control() && !is_format(c),
            Self::AsciiGraphic => c.is_ascii_graphic(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Text => "no control characters",
            Self::Lines => "no control characters but newline and tab",
            Self::Identifier => "no control or invisible format characters",
            Self::AsciiGraphic => "printable ASCII only",
        }
    }
}

/// What one text field may hold, checked on the text as sent (any trimming comes
/// after, as normalization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Which characters.
    pub chars: Chars,
    /// At most this many characters (Unicode scalar values, as `maxLength` counts).
    pub max_chars: usize,
    /// Whether it must hold a character other than white space.
    pub required: bool,
}

impl TextRule {
    /// Whether `s` follows the rule.
    pub fn allows(&self, s: &str) -> bool {
        s.chars().count() <= self.max_chars
            && s.chars().all(|c| self.chars.allows(c))
            && (!self.required || s.chars().any(|c| !c.is_whitespace()))
    }

    /// The fewest characters a text of this rule has.
    pub fn min_chars(&self) -> usize {
        usize::from(self.required)
    }

    /// The rule in words, for error messages: "1 to 256 characters, no control characters".
    pub fn describe(&self) -> String {
        let visible = if self.required && self.chars != Chars::AsciiGraphic {
            ", not only white space"
        } else {
            ""
        };
        format!(
            "{} to {} characters, {}{visible}",
            self.min_chars(),
            self.max_chars,
            self.chars.describe()
        )
    }

    /// The rule as a regular expression (ECMA-262, which Python and Rust read alike
    /// for these classes), without the length: `maxLength` states that.
    pub fn pattern(&self) -> String {
        let allowed = class(|c| self.chars.allows(c));
        if self.required && self.chars != Chars::AsciiGraphic {
            let visible = class(|c| self.chars.allows(c) && !c.is_whitespace());
            format!("^{allowed}*{visible}{allowed}*$")
        } else {
            format!("^{allowed}*$")
        }
    }
}

/// A regex character class of the characters `member` takes, as the shorter of
/// the class itself and its negation. Built by walking every character, so it is
/// the predicate the server checks with, not a copy of it.
pub fn class(member: impl Fn(char) -> bool) -> String {
    let ins = ranges(&member);
    let outs = complement(&ins);
    let (negated, list) = if outs.len() <= ins.len() {
        ("^", outs)
    } else {
        ("", ins)
    };
    let mut out = format!("[{negated}");
    for (lo, hi) in list {
        out.push_str(&escape(lo));
        if hi != lo {
            out.push('-');
            out.push_str(&escape(hi));
        }
    }
    out.push(']');
    out
}

/// The runs of characters `member` takes, in order (surrogates, which are no
/// characters, do not break a run).
fn ranges(member: impl Fn(char) -> bool) -> Vec<(char, char)> {
    let mut out: Vec<(char, char)> = Vec::new();
    let mut run: Option<(char, char)> = None;
    for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
        match (member(c), run) {
            (true, Some((lo, _))) => run = Some((lo, c)),
            (true, None) => run = Some((c, c)),
            (false, Some(r)) => {
                out.push(r);
                run = None;
            }
            (false, None) => {}
        }
    }
    out.extend(run);
    out
}

/// The runs of characters between the runs `ins`.
fn complement(ins: &[(char, char)]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut next = Some('\u{0}');
    for &(lo, hi) in ins {
        if let Some(from) = next {
            if from < lo {
                out.extend(before(lo).map(|to| (from, to)));
            }
        }
        next = after(hi);
    }
    out.extend(next.map(|from| (from, char::MAX)));
    out
}

/// The character before `c`, skipping surrogates.
fn before(c: char) -> Option<char> {
    (0..c as u32).rev().find_map(char::from_u32)
}

/// The character after `c`, skipping surrogates.
fn after(c: char) -> Option<char> {
    (c as u32 + 1..=char::MAX as u32).find_map(char::from_u32)
}

/// A character as a regex escape every dialect reads: letters and digits as they
/// are, the rest as `\uXXXX` (or `\UXXXXXXXX` beyond the first plane).
fn escape(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else if (c as u32) <= 0xFFFF {
        format!("\\u{:04X}", c as u32)
    } else {
        format!("\\U{:08X}", c as u32)
    }
}

/// Longest free text accepted: a reason, a customer's message.
pub const MAX_NOTE_CHARS: usize = 1000;

/// An optional note: the reason of a lifecycle action or a deactivation, a
/// customer's message.
pub const NOTE: TextRule = TextRule {
    chars: Chars::Lines,
    max_chars: MAX_NOTE_CHARS,
    required: false,
};

/// The reason of a grace decision: always given, kept without its surrounding
/// white space.
pub const REASON: TextRule = TextRule {
    required: true,
    ..NOTE
};

/// Whether `s` holds a control character other than newline and tab.
pub fn has_control(s: &str) -> bool {
    s.chars().any(|c| !Chars::Lines.allows(c))
}

/// Whether `c` is a format character (Unicode general category Cf, as of Unicode
/// 15.1): soft hyphen, zero-width spaces and joiners, bidirectional marks and
/// overrides, the byte-order mark, tags. Listed here rather than taken from a
/// Unicode crate: the category is small and changes rarely.
pub fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// The first string in a JSON value (keys included, at any depth) that holds a
/// control character other than newline and tab.
pub fn control_in_json(value: &serde_json::Value) -> Option<&str> {
    match value {
        serde_json::Value::String(s) => has_control(s).then_some(s.as_str()),
        serde_json::Value::Array(items) => items.iter().find_map(control_in_json),
        serde_json::Value::Object(map) => control_in_map(map),
        _ => None,
    }
}

/// [`control_in_json`] of an object.
pub fn control_in_map(map: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    map.iter().find_map(|(k, v)| {
        if has_control(k) {
            Some(k.as_str())
        } else {
            control_in_json(v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every rule of a text field, with its name.
    pub(crate) fn every_rule() -> Vec<(&'static str, TextRule)> {
        vec![
            ("fingerprint", crate::domain::activation::FINGERPRINT),
            ("machine label", crate::domain::activation::MACHINE_LABEL),
            ("nonce", crate::domain::activation::NONCE),
            ("note", NOTE),
            ("reason", REASON),
            ("order id", crate::domain::license::ORDER_ID),
            ("token name", crate::domain::token::TOKEN_NAME),
            ("idempotency key", crate::domain::grace::IDEMPOTENCY_KEY),
        ]
    }

    /// What the document says of `s` for `rule`: its pattern and length.
    fn document_allows(rule: &TextRule, pattern: &regex::Regex, s: &str) -> bool {
        let n = s.chars().count();
        pattern.is_match(s) && n >= rule.min_chars() && n <= rule.max_chars
    }

    /// Characters that tell the rules apart: every kind of white space, control,
    /// format and ordinary character, and some beyond the first plane.
    fn telling_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just(' '),
            Just('\t'),
            Just('\n'),
            Just('\r'),
            Just('\u{0}'),
            Just('\u{85}'),
            Just('\u{A0}'),
            Just('\u{200B}'),
            Just('\u{2028}'),
            Just('\u{3000}'),
            Just('\u{FEFF}'),
            Just('\u{E0041}'),
            Just('~'),
            Just('-'),
            Just('\\'),
            Just(']'),
            Just('^'),
            proptest::char::range('a', 'c'),
            proptest::char::range('\u{0}', '\u{200}'),
            any::<char>(),
        ]
    }

    /// Every rule with its pattern, compiled once.
    static PATTERNS: std::sync::LazyLock<Vec<(&str, TextRule, regex::Regex)>> =
        std::sync::LazyLock::new(|| {
            every_rule()
                .into_iter()
                .map(|(name, rule)| (name, rule, regex::Regex::new(&rule.pattern()).unwrap()))
                .collect()
        });

    proptest! {
        #[test]
        fn each_rules_pattern_says_what_its_check_says(
            texts in proptest::collection::vec(proptest::collection::vec(telling_char(), 0..12), 64),
        ) {
            for (name, rule, pattern) in PATTERNS.iter() {
                for chars in &texts {
                    let s: String = chars.iter().collect();
                    prop_assert_eq!(
                        document_allows(rule, pattern, &s),
                        rule.allows(&s),
                        "{}: {:?}", name, s
                    );
                }
            }
        }
    }

    #[test]
    fn lengths_are_counted_in_characters_at_both_ends_of_the_range() {
        for (name, rule, pattern) in PATTERNS.iter() {
            let longest = "é".repeat(rule.max_chars);
            let longest = if rule.chars == Chars::AsciiGraphic {
                "x".repeat(rule.max_chars)
            } else {
                longest
            };
            let over = format!("{longest}x");
            for s in [longest.as_str(), over.as_str(), "", " "] {
                assert_eq!(
                    document_allows(rule, pattern, s),
                    rule.allows(s),
                    "{name}: {} characters",
                    s.chars().count()
                );
            }
        }
    }

    #[test]
    fn newline_and_tab_are_text_other_controls_are_not() {
        assert!(!has_control("line one\nline two\tend"));
        for bad in [
            "nul\0",
            "esc\u{1b}[31m",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
            "cr\r",
        ] {
            assert!(has_control(bad), "{bad:?}");
        }
    }

    #[test]
    fn invisible_format_characters_are_known_and_visible_ones_are_not() {
        for c in [
            '\u{200B}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            assert!(is_format(c), "{:X}", c as u32);
        }
        for c in ['a', 'é', '中', '-', ' ', '\u{2010}', '😀'] {
            assert!(!is_format(c), "{c}");
        }
    }

    #[test]
    fn a_control_character_is_found_in_any_key_or_value_of_metadata() {
        let ok = serde_json::json!({"note": "two\nlines", "n": 1, "list": ["a", {"b": "c"}]});
        assert_eq!(control_in_json(&ok), None);
        for bad in [
            serde_json::json!({"k\u{0}": "v"}),
            serde_json::json!({"k": "v\u{1b}"}),
            serde_json::json!({"k": ["ok", {"deep": "\u{0}"}]}),
        ] {
            assert!(control_in_json(&bad).is_some(), "{bad}");
        }
    }
}
