//! Email addresses: validated and normalized so that uniqueness is
//! case-insensitive.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// A syntactically valid, normalized email address (`local@domain`).
///
/// Normalization: NFC, surrounding white space trimmed, the whole address
/// lower-cased. Lower-casing the local part is what users expect of an
/// identity service (`Alice@x.org` and `alice@x.org` are one account), even
/// though RFC 5321 lets a server treat local parts case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates and normalizes an address; the error says why it is refused.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s: String = input.trim().nfc().collect::<String>().to_lowercase();
        if s.is_empty() {
            return Err("is empty");
        }
        if s.len() > 254 {
            return Err("is longer than 254 bytes");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains white space or control characters");
        }
        let (local, domain) = s.rsplit_once('@').ok_or("has no @")?;
        if local.is_empty() || local.len() > 64 {
            return Err("has an empty or over-long local part");
        }
        if local.contains('@') {
            return Err("has more than one @");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err("has a misplaced dot in the local part");
        }
        const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
        if !local
            .chars()
            .all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c))
        {
            return Err("has a character not allowed in the local part");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err("needs a domain with a dot");
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err("has an empty or over-long domain label");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err("has a domain label starting or ending with a hyphen");
            }
            if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
                return Err("has a character not allowed in the domain");
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err("has a numeric top-level domain");
        }
        Ok(Self(s))
    }

    /// The normalized address (the account's unique key).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_addresses_are_normalized() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert!(Email::parse("a.b+tag@sub.example.org").is_ok());
        assert!(Email::parse("josé@exämple.de").is_ok());
    }

    #[test]
    fn invalid_addresses_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a@-b.com",
            "a@b.123",
            "a\u{0}@b.com",
            "a@b_c.com",
            "{\"$ne\":null}",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.com", "b".repeat(250))).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                let again = Email::parse(e.as_str()).unwrap();
                prop_assert_eq!(again, e);
            }
        }

        #[test]
        fn case_does_not_matter(local in "[a-zA-Z0-9]{1,20}", domain in "[a-zA-Z]{1,20}") {
            let a = Email::parse(&format!("{local}@{domain}.com")).unwrap();
            let b = Email::parse(&format!("{}@{}.COM", local.to_uppercase(), domain.to_uppercase())).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}
