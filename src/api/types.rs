//! Strict request field types.
//!
//! poem-openapi's `String` accepts numbers and booleans and turns them into
//! text; an identity service should not guess. These types accept a JSON
//! string and nothing else (objects such as `{"$ne": null}` included), and
//! keep secrets in `SecretString` from the moment they are parsed.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use secrecy::SecretString;
use serde_json::Value;

/// Longest string accepted in any field (the body limit bounds it too).
const MAX_FIELD_BYTES: usize = 4096;

fn string_schema(format: Option<&'static str>, max_length: Option<usize>) -> MetaSchemaRef {
    let mut schema = MetaSchema::new("string");
    schema.format = format;
    schema.max_length = max_length;
    MetaSchemaRef::Inline(Box::new(schema))
}

fn parse_string(value: Option<Value>) -> Result<String, String> {
    match value {
        Some(Value::String(s)) if s.len() <= MAX_FIELD_BYTES => Ok(s),
        Some(Value::String(_)) => Err(format!("must be at most {MAX_FIELD_BYTES} bytes")),
        Some(Value::Null) | None => Err("is required".to_string()),
        Some(other) => Err(format!("must be a string, not {}", json_kind(&other))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A plain text field that must be a JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        string_schema(None, None)
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        parse_string(value).map(Text).map_err(ParseError::custom)
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A secret field (password, token): a JSON string kept in `SecretString`;
/// its `Debug` is redacted and it serializes to nothing.
#[derive(Clone)]
pub struct Secret(pub SecretString);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl Type for Secret {
    const IS_REQUIRED: bool = true;
    type RawValueType = SecretString;
    type RawElementValueType = SecretString;

    fn name() -> Cow<'static, str> {
        "string(password)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        string_schema(Some("password"), None)
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for Secret {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        parse_string(value)
            .map(|s| Secret(SecretString::from(s)))
            .map_err(ParseError::custom)
    }
}

impl ToJSON for Secret {
    fn to_json(&self) -> Option<Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn only_strings_are_accepted() {
        assert_eq!(Text::parse_from_json(Some(json!("a"))).unwrap().0, "a");
        for bad in [
            json!(5),
            json!(true),
            json!(null),
            json!({"$ne": null}),
            json!(["a"]),
        ] {
            assert!(
                Text::parse_from_json(Some(bad.clone())).is_err(),
                "{bad} accepted"
            );
            assert!(Secret::parse_from_json(Some(bad)).is_err());
        }
        assert!(Text::parse_from_json(None).is_err());
        assert!(Text::parse_from_json(Some(json!("x".repeat(MAX_FIELD_BYTES + 1)))).is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::parse_from_json(Some(json!("hunter22hunter22"))).unwrap();
        assert!(!format!("{s:?}").contains("hunter"));
        assert!(s.to_json().is_none());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,64}", n in any::<i64>(), b in any::<bool>()) {
            let _ = Text::parse_from_json(Some(json!(s)));
            let _ = Text::parse_from_json(Some(json!(n)));
            let _ = Secret::parse_from_json(Some(json!({ "k": b })));
        }
    }
}
