//! Email addresses: validated and normalized so that one mailbox is one
//! account key, whatever way it is typed.
//!
//! Normalization, in order:
//! 1. surrounding white space trimmed, Unicode NFKC (`ｅｘａｍｐｌｅ` →
//!    `example`, ligatures and compatibility forms folded);
//! 2. the domain through IDNA (UTS #46, the `idna` crate, STD3 rules) to its
//!    ASCII form in lower case: `bücher.example` and `xn--bcher-kva.example`
//!    are one domain;
//! 3. the local part lower-cased (what users expect of an identity service,
//!    though RFC 5321 lets a server treat local parts case-sensitively).
//!
//! Look-alikes (UTS #39, the `unicode-security` crate) are refused: a local
//! part or domain label that mixes scripts (`pаypal` with a Cyrillic `а`),
//! or a non-ASCII local part whose confusable skeleton is plain ASCII (an
//! all-Cyrillic `асе` that reads as `ace`). So nobody can register an
//! address that reads as someone else's.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// A syntactically valid, normalized email address (`local@domain`).
/// Equality and hashing use the normalized key only.
#[derive(Debug, Clone)]
pub struct Email {
    key: String,
    typed: String,
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Email {}

impl std::hash::Hash for Email {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// Checks the characters of a local part (after lower-casing).
fn check_local(local: &str) -> Result<(), &'static str> {
    if local.is_empty() || local.len() > 64 {
        return Err("has an empty or over-long local part");
    }
    if local.contains('@') {
        return Err("has more than one @");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot in the local part");
    }
    // An RFC 2047 encoded-word (`=?charset?q?...?=`) is plain atext, but
    // some parsers and MTAs decode it inside an address, so the address
    // verified here would not be the one mail reaches ("splitting the
    // email atom").
    if let Some(start) = local.find("=?")
        && local[start + 2..].contains("?=")
    {
        return Err("has an encoded-word (=?...?=) in the local part");
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if !local
        .chars()
        .all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return Err("has a character not allowed in the local part");
    }
    if !local.is_ascii() {
        let letters: String = local.chars().filter(|c| c.is_alphanumeric()).collect();
        if !letters.as_str().is_single_script() {
            return Err("mixes scripts in the local part (it could pass for another address)");
        }
        if unicode_security::skeleton(&letters).all(|c| c.is_ascii()) {
            return Err("reads as a plain-ASCII address (confusable characters)");
        }
    }
    Ok(())
}

/// The domain's ASCII form (IDNA UTS #46), checked label by label.
fn ascii_domain(domain: &str) -> Result<String, &'static str> {
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| "has a domain that is not a valid (internationalized) domain name")?
        .to_ascii_lowercase();
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err("needs a domain with a dot");
    }
    if ascii.len() > 253 {
        return Err("has an over-long domain");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty or over-long domain label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a domain label starting or ending with a hyphen");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("has a character not allowed in the domain");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("has a numeric top-level domain");
    }
    let (unicode, _) = idna::domain_to_unicode(&ascii);
    for label in unicode.split('.') {
        let letters: String = label.chars().filter(|c| c.is_alphanumeric()).collect();
        if !letters.is_ascii() && !letters.as_str().is_single_script() {
            return Err("mixes scripts in a domain label (it could pass for another domain)");
        }
    }
    Ok(ascii)
}

impl Email {
    /// Validates and normalizes an address; the error says why it is refused.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let typed: String = input.trim().nfkc().collect();
        if typed.is_empty() {
            return Err("is empty");
        }
        if typed.len() > 254 {
            return Err("is longer than 254 bytes");
        }
        if typed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains white space or control characters");
        }
        let (local, domain) = typed.rsplit_once('@').ok_or("has no @")?;
        let local: String = local.to_lowercase().nfkc().collect();
        check_local(&local)?;
        let domain = ascii_domain(domain)?;
        let key = format!("{local}@{domain}");
        if key.len() > 254 {
            return Err("is longer than 254 bytes");
        }
        Ok(Self { key, typed })
    }

    /// The normalized address (the account's unique key).
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The address as typed, after NFKC: where mail is sent.
    pub fn as_typed(&self) -> &str {
        &self.typed
    }

    /// The key an earlier release stored for this address (NFC, lower case,
    /// the domain in Unicode form). Differs from [`Email::as_str`] only for
    /// internationalized domains: lookups fall back to it, so accounts
    /// stored by earlier releases keep working.
    pub fn legacy_key(&self) -> Option<String> {
        let (local, domain) = self.key.rsplit_once('@')?;
        let (unicode, _) = idna::domain_to_unicode(domain);
        let legacy: String = format!("{local}@{unicode}")
            .nfc()
            .collect::<String>()
            .to_lowercase();
        (legacy != self.key).then_some(legacy)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
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

    fn key(s: &str) -> String {
        Email::parse(s).unwrap().as_str().to_string()
    }

    #[test]
    fn one_mailbox_is_one_key() {
        assert_eq!(key("uni@ｅｘａｍｐｌｅ.com"), "uni@example.com");
        assert_eq!(key("uni@EXAMPLE.com"), "uni@example.com");
        assert_eq!(key("ＵＮＩ@example.com"), "uni@example.com");
        assert_eq!(key("bücher@bücher.example"), "bücher@xn--bcher-kva.example");
        assert_eq!(
            key("bücher@xn--bcher-kva.example"),
            "bücher@xn--bcher-kva.example"
        );
        assert_eq!(key("BÜCHER@BÜCHER.example"), "bücher@xn--bcher-kva.example");
        // The typed form (after NFKC) is kept for sending mail.
        assert_eq!(
            Email::parse(" Uni@ｅｘａｍｐｌｅ.com").unwrap().as_typed(),
            "Uni@example.com"
        );
    }

    #[test]
    fn look_alikes_are_refused() {
        for bad in [
            "p\u{0430}ypal@example.com",            // Latin + Cyrillic а
            "\u{0430}\u{0441}\u{0435}@example.com", // all-Cyrillic "асе" reads as "ace"
            "admin@ex\u{0430}mple.com",             // mixed-script domain label
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Genuine non-Latin addresses are fine.
        for good in [
            "иван@пример.рф",
            "josé@example.com",
            "用户@例子.中国",
            "παύλος@example.gr",
        ] {
            assert!(
                Email::parse(good).is_ok(),
                "{good:?} refused: {:?}",
                Email::parse(good)
            );
        }
    }

    #[test]
    fn legacy_keys_of_internationalized_domains() {
        let e = Email::parse("bücher@xn--bcher-kva.example").unwrap();
        assert_eq!(e.legacy_key().as_deref(), Some("bücher@bücher.example"));
        assert_eq!(Email::parse("a@example.com").unwrap().legacy_key(), None);
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

    /// L9: encoded-words in local parts are refused; `=` and `?` alone are not.
    #[test]
    fn encoded_words_are_refused() {
        for bad in [
            "=?utf-8?q?admin=40evil.example?=@example.com",
            "=?UTF-8?B?YWRtaW5AZXZpbC5leGFtcGxl?=@example.com",
            "x=?iso-8859-1?q?a?=y@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
        for good in ["a=b@example.com", "what?@example.com", "a?=b@example.com"] {
            assert!(Email::parse(good).is_ok(), "{good} refused");
        }
    }

    proptest! {
        /// L9: no accepted address holds an encoded-word in its local part.
        #[test]
        fn accepted_local_parts_hold_no_encoded_word(
            pre in "[a-z0-9=?._-]{0,8}", charset in "[a-zA-Z0-9-]{1,10}",
            enc in "[qQbB]", text in "[a-zA-Z0-9=_]{0,12}", post in "[a-z0-9=?._-]{0,8}",
        ) {
            let addr = format!("{pre}=?{charset}?{enc}?{text}?={post}@example.com");
            prop_assert!(Email::parse(&addr).is_err(), "{} accepted", addr);
        }

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
