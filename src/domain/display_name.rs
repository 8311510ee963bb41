//! Display names shown to other users.

use unicode_normalization::UnicodeNormalization;

/// 1 to 64 characters after trimming, NFC-normalized, without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Trims and validates a name: 1 to 64 characters, no control characters.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s: String = input.trim().nfc().collect();
        if s.is_empty() {
            return Err("is empty");
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err("is longer than 64 characters");
        }
        if s.chars().any(|c| c.is_control() || is_invisible_format(c)) {
            return Err("contains control or invisible formatting characters");
        }
        Ok(Self(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Bidi overrides and similar characters that let a name masquerade as another.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rules() {
        assert_eq!(
            DisplayName::parse("  Ada Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
        assert!(DisplayName::parse("山田太郎").is_ok());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert!(DisplayName::parse("a\nb").is_err());
        assert!(DisplayName::parse("evil\u{202E}gpj.exe").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,100}") {
            let _ = DisplayName::parse(&s);
        }
    }
}
