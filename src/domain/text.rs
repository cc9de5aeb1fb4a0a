//! What free text may hold: no control characters but newline and tab (a NUL or an
//! ESC sequence in a reason would reach whoever prints the history), and, in
//! identifiers, no invisible format characters (which make look-alike order ids).

/// Whether `s` holds a control character other than newline and tab.
pub fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
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
