//! Profile fields a user sets on themselves: a locale (BCP 47), a time zone
//! (IANA) and the application's metadata object. Each type only exists
//! valid; parsing never panics (property tests below).

use serde_json::Value;

/// A well-formed and valid BCP 47 language tag (RFC 5646, checked against
/// the IANA subtag registry by the `language-tags` crate), in its
/// canonical form (`en-us` → `en-US`, `en-Latn` → `en`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    /// Longest accepted tag, in bytes (RFC 5646 has no limit; real tags
    /// are short).
    pub const MAX_LEN: usize = 64;

    /// Parses and canonicalizes a tag.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let input = input.trim();
        if input.is_empty() {
            return Err("is empty");
        }
        if input.len() > Self::MAX_LEN {
            return Err("is longer than 64 characters");
        }
        let tag = language_tags::LanguageTag::parse(input)
            .map_err(|_| "is not a well-formed BCP 47 language tag (like `en` or `pt-BR`)")?;
        tag.validate().map_err(
            |_| "is not a valid BCP 47 language tag (unknown language, script or region)",
        )?;
        let tag = tag
            .canonicalize()
            .map_err(|_| "is not a valid BCP 47 language tag")?;
        Ok(Self(tag.into_string()))
    }

    /// The canonical tag.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An IANA time zone name known to the tz database bundled with the
/// service (the `jiff` crate's copy), in its canonical spelling
/// (`europe/paris` → `Europe/Paris`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Parses a zone name.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let input = input.trim();
        if input.is_empty() {
            return Err("is empty");
        }
        if input.len() > 64 || input.chars().any(|c| c.is_control()) {
            return Err("is not an IANA time zone name");
        }
        let tz = jiff::tz::db()
            .get(input)
            .map_err(|_| "is not an IANA time zone name (like `Europe/Paris`)")?;
        match tz.iana_name() {
            Some(name) if name != "Etc/Unknown" => Ok(Self(name.to_string())),
            _ => Err("is not an IANA time zone name (like `Europe/Paris`)"),
        }
    }

    /// The canonical name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The application's JSON object for a user: at most 4 KiB serialized,
/// nested at most 5 levels deep, no key starting with `$` or containing
/// `.` (MongoDB operator and path syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata(String);

impl Metadata {
    /// Largest accepted serialized size, in bytes.
    pub const MAX_BYTES: usize = 4096;
    /// Deepest accepted nesting (the object itself is level 1).
    pub const MAX_DEPTH: usize = 5;

    /// Validates a JSON value; keeps its compact serialization.
    pub fn parse(value: &Value) -> Result<Self, String> {
        if !value.is_object() {
            return Err("must be a JSON object".into());
        }
        check(value, 1)?;
        let text = serde_json::to_string(value).map_err(|_| "cannot be serialized".to_string())?;
        if text.len() > Self::MAX_BYTES {
            return Err(format!(
                "is {} bytes serialized; at most {} are allowed",
                text.len(),
                Self::MAX_BYTES
            ));
        }
        Ok(Self(text))
    }

    /// The compact JSON text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Depth and key rules, recursively; `depth` is the level of `value`.
fn check(value: &Value, depth: usize) -> Result<(), String> {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| k.starts_with('$') || k.contains('.')) {
                let shown: String = key.chars().take(40).collect();
                return Err(format!(
                    "has the key {shown:?}: keys may not start with `$` or contain `.`"
                ));
            }
            Box::new(map.values())
        }
        Value::Array(items) => Box::new(items.iter()),
        _ => return Ok(()),
    };
    let mut children = children.peekable();
    if children.peek().is_some() && depth >= Metadata::MAX_DEPTH {
        // A non-empty container at the deepest level would nest one more.
        if children.any(|c| c.is_object() || c.is_array()) {
            return Err(format!(
                "is nested more than {} levels deep",
                Metadata::MAX_DEPTH
            ));
        }
        return Ok(());
    }
    for child in children {
        check(child, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn locales() {
        assert_eq!(Locale::parse("en").unwrap().into_inner(), "en");
        assert_eq!(Locale::parse("pt-br").unwrap().into_inner(), "pt-BR");
        assert_eq!(
            Locale::parse("zh-Hant-TW").unwrap().into_inner(),
            "zh-Hant-TW"
        );
        assert_eq!(Locale::parse("en-Latn-US").unwrap().into_inner(), "en-US");
        for bad in [
            "",
            "   ",
            "english",
            "en_US",
            "xx-YY-ZZ-123456789",
            "en-",
            "zz-US",
            "en-ZZZ",
        ] {
            assert!(Locale::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Locale::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn time_zones() {
        assert_eq!(
            TimeZoneName::parse("Europe/Paris").unwrap().into_inner(),
            "Europe/Paris"
        );
        assert_eq!(
            TimeZoneName::parse("america/new_york")
                .unwrap()
                .into_inner(),
            "America/New_York"
        );
        assert_eq!(TimeZoneName::parse("UTC").unwrap().into_inner(), "UTC");
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "+02:00",
            "Europe/\nParis",
            "../etc/passwd",
            "Etc/Unknown",
        ] {
            assert!(TimeZoneName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn metadata_rules() {
        assert!(Metadata::parse(&json!({})).is_ok());
        assert!(Metadata::parse(&json!({"theme": "dark", "n": [1, 2, {"a": null}]})).is_ok());
        assert!(Metadata::parse(&json!([1])).is_err(), "not an object");
        assert!(Metadata::parse(&json!("x")).is_err());
        assert!(Metadata::parse(&json!({"$where": 1})).is_err());
        assert!(Metadata::parse(&json!({"a": {"b.c": 1}})).is_err());
        assert!(Metadata::parse(&json!({"a": [{"$x": 1}]})).is_err());
        // Depth: the object is level 1; five levels pass, six do not.
        let five = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        assert!(Metadata::parse(&five).is_ok());
        let six = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
        assert!(Metadata::parse(&six).is_err());
        let six_by_array = json!({"a": {"b": {"c": {"d": [[1]]}}}});
        assert!(Metadata::parse(&six_by_array).is_err());
        // Size: exactly 4096 bytes passes, 4097 does not.
        let pad = |n: usize| json!({"k": "x".repeat(n)});
        let base = serde_json::to_string(&pad(0)).unwrap().len();
        assert!(Metadata::parse(&pad(4096 - base)).is_ok());
        assert!(Metadata::parse(&pad(4097 - base)).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = Locale::parse(&s);
            let _ = TimeZoneName::parse(&s);
            let _ = Metadata::parse(&json!({ s.clone(): s }));
        }
    }
}
