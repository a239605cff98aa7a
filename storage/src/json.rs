//! JSON columns (channel config, metadata, attachments) as validated raw text.
//!
//! The edge validates a document once; after that it is copied byte-for-byte into
//! storage and back out into responses, never re-parsed on the write path.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A syntactically valid JSON document.
#[derive(Clone)]
pub struct Json(Box<RawValue>);

impl Json {
    /// Validates `text` as JSON.
    pub fn parse(text: impl Into<String>) -> Result<Json, serde_json::Error> {
        RawValue::from_string(text.into()).map(Json)
    }

    /// `{}`: the default for metadata.
    pub fn empty_object() -> Json {
        Json::from_value(&serde_json::Value::Object(Default::default()))
    }

    pub fn from_value(value: &serde_json::Value) -> Json {
        // A Value always serializes to valid JSON.
        Json(serde_json::value::to_raw_value(value).expect("serde_json::Value serializes"))
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }

    pub fn is_object(&self) -> bool {
        self.as_str().trim_start().starts_with('{')
    }

    pub fn is_array(&self) -> bool {
        self.as_str().trim_start().starts_with('[')
    }
}

/// Equal when the documents are equal as values: PostgreSQL's `jsonb` re-spaces and
/// re-orders keys, and that must not make a stored document differ from its source.
impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_and_compares_by_value() {
        let a = Json::parse(r#"{"b":1,"a":[true]}"#).unwrap();
        let b = Json::parse(r#"{"a": [true], "b": 1}"#).unwrap();
        assert_eq!(a.as_str(), r#"{"b":1,"a":[true]}"#);
        assert_eq!(a, b);
        assert!(a.is_object() && !a.is_array());
        assert!(Json::parse("{").is_err());
        assert_eq!(Json::empty_object().as_str(), "{}");
    }
}
