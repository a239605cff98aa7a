//! [`Fields`]: typed reading of a JSON object given by a client (a REST body,
//! later a WebSocket payload), so every transport validates input the same way
//! and every refusal names its field.
//!
//! Rules: unknown fields are refused (a typo such as `idempotencyKey` must not
//! be silently ignored); `null` is the same as an absent field.
//!
//! [`parse_id`] is the one reading of an id a client wrote, wherever it is
//! written: a body field, a URL path, a query parameter, a Phoenix topic.

use converger_storage::{Id, Json};
use serde_json::{Map, Value};

use super::{ServiceError, ServiceResult};

/// An id as a client writes it: the canonical hyphenated form
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (8-4-4-4-12 hex digits, either
/// case), the form the server answers with. The other spellings the `uuid`
/// crate also reads (32 digits without dashes, `{…}`, `urn:uuid:…`) are
/// refused: one id has one spelling, so it cannot slip past a comparison,
/// a cache or a log search written against the canonical one.
pub fn parse_id(text: &str) -> Option<Id> {
    let bytes = text.as_bytes();
    let canonical = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if canonical {
        Id::try_parse(text).ok()
    } else {
        None
    }
}

/// A JSON object whose fields are read by name.
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Wraps `map`, refusing any field not in `allowed`.
    pub fn new(map: Map<String, Value>, allowed: &[&str]) -> ServiceResult<Fields> {
        Fields::only(&map, allowed)?;
        Ok(Fields { map })
    }

    /// Refuses any field of `map` not in `allowed`, as [`Fields::new`] does.
    pub fn only(map: &Map<String, Value>, allowed: &[&str]) -> ServiceResult<()> {
        match map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) if allowed.is_empty() => {
                Err(ServiceError::invalid(unknown.clone(), format!("unknown field `{unknown}` (this takes no fields)")))
            }
            Some(unknown) => Err(ServiceError::invalid(
                unknown.clone(),
                format!("unknown field `{unknown}` (expected one of: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// An optional string of at most `max` bytes.
    pub fn string(&self, name: &str, max: usize) -> ServiceResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() > max => {
                Err(ServiceError::invalid(name, format!("`{name}` is longer than {max} bytes")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be a string"))),
        }
    }

    /// An optional boolean.
    pub fn boolean(&self, name: &str) -> ServiceResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be true or false"))),
        }
    }

    /// A required, non-blank string of at most `max` bytes.
    pub fn required_string(&self, name: &str, max: usize) -> ServiceResult<String> {
        match self.string(name, max)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must not be empty"))),
            None => Err(ServiceError::invalid(name, format!("`{name}` is required"))),
        }
    }

    /// An optional non-blank string (blank is refused rather than taken as absent).
    pub fn non_blank_string(&self, name: &str, max: usize) -> ServiceResult<Option<String>> {
        match self.string(name, max)? {
            Some(s) if s.trim().is_empty() => Err(ServiceError::invalid(name, format!("`{name}` must not be empty"))),
            other => Ok(other),
        }
    }

    /// An optional JSON object.
    pub fn object(&self, name: &str) -> ServiceResult<Option<Json>> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(Json::from_value(v))),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be a JSON object"))),
        }
    }

    /// An optional JSON object as its map, for a nested object whose own
    /// fields the caller reads one by one (naming them `name.<field>`).
    pub fn map(&self, name: &str) -> ServiceResult<Option<&Map<String, Value>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be a JSON object"))),
        }
    }

    /// An optional array, its items for the caller to read (naming them `name[i]`).
    pub fn array(&self, name: &str) -> ServiceResult<Option<&Vec<Value>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be an array"))),
        }
    }

    /// An optional array whose items are all JSON objects.
    pub fn array_of_objects(&self, name: &str) -> ServiceResult<Option<Json>> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Array(items)) if items.iter().all(Value::is_object) => Ok(Some(Json::from_value(v))),
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be an array of JSON objects"))),
        }
    }

    /// An optional id (a UUID string).
    pub fn id(&self, name: &str) -> ServiceResult<Option<Id>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                parse_id(s).map(Some).ok_or_else(|| ServiceError::invalid(name, format!("`{name}` is not a valid id")))
            }
            Some(_) => Err(ServiceError::invalid(name, format!("`{name}` must be an id string"))),
        }
    }

    /// A required id.
    pub fn required_id(&self, name: &str) -> ServiceResult<Id> {
        self.id(name)?.ok_or_else(|| ServiceError::invalid(name, format!("`{name}` is required")))
    }

    /// An optional integer in `range`.
    pub fn integer(&self, name: &str, range: std::ops::RangeInclusive<i64>) -> ServiceResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(ServiceError::invalid(
                    name,
                    format!("`{name}` must be an integer from {} to {}", range.start(), range.end()),
                )),
            },
        }
    }

    /// True when no field was given.
    pub fn is_empty(&self) -> bool {
        self.map.values().all(Value::is_null)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(v: Value, allowed: &[&str]) -> ServiceResult<Fields> {
        match v {
            Value::Object(map) => Fields::new(map, allowed),
            _ => panic!("object"),
        }
    }

    fn field_of(e: ServiceError) -> String {
        match e {
            ServiceError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = fields(json!({"name": "x", "nmae": 1}), &["name"]).err().expect("refused");
        assert_eq!(field_of(e), "nmae");
    }

    #[test]
    fn each_reader_names_the_field_it_refuses() {
        let f = fields(
            json!({"s": 1, "blank": " ", "o": [], "a": [1], "id": "nope", "n": 5, "null": null}),
            &["s", "blank", "o", "a", "id", "n", "null", "missing"],
        )
        .expect("fields");
        assert_eq!(field_of(f.string("s", 10).expect_err("type")), "s");
        assert_eq!(field_of(f.required_string("blank", 10).expect_err("blank")), "blank");
        assert_eq!(field_of(f.required_string("missing", 10).expect_err("missing")), "missing");
        assert_eq!(field_of(f.object("o").expect_err("object")), "o");
        assert_eq!(field_of(f.array_of_objects("a").expect_err("array")), "a");
        assert_eq!(field_of(f.id("id").expect_err("id")), "id");
        assert_eq!(field_of(f.integer("n", 6..=9).expect_err("range")), "n");
        assert_eq!(f.string("null", 10).expect("null is absent"), None);
    }

    #[test]
    fn ids_are_read_only_in_the_canonical_hyphenated_form() {
        let id = converger_storage::new_id();
        let canonical = id.to_string();
        assert_eq!(parse_id(&canonical), Some(id));
        assert_eq!(parse_id(&canonical.to_uppercase()), Some(id), "either case");
        for lenient in [
            id.simple().to_string(),
            format!("{{{canonical}}}"),
            format!("urn:uuid:{canonical}"),
            format!(" {canonical}"),
            format!("{canonical}\n"),
            canonical.replacen('-', "", 1) + "0",
            canonical.replace('-', "_"),
            canonical[..35].to_string() + "g",
            "".to_string(),
        ] {
            assert_eq!(parse_id(&lenient), None, "{lenient}");
        }
        let f = fields(json!({"id": id.simple().to_string()}), &["id"]).expect("fields");
        assert_eq!(field_of(f.id("id").expect_err("dashless")), "id");
    }

    #[test]
    fn good_values_are_read() {
        let id = converger_storage::new_id();
        let f = fields(
            json!({"s": "hi", "o": {"k": 1}, "a": [{}], "id": id.to_string(), "n": 7}),
            &["s", "o", "a", "id", "n"],
        )
        .expect("fields");
        assert_eq!(f.required_string("s", 2).expect("s"), "hi");
        assert_eq!(field_of(f.string("s", 1).expect_err("too long")), "s");
        assert!(f.object("o").expect("o").is_some_and(|j| j.is_object()));
        assert!(f.array_of_objects("a").expect("a").is_some_and(|j| j.is_array()));
        assert_eq!(f.required_id("id").expect("id"), id);
        assert_eq!(f.integer("n", 1..=9).expect("n"), Some(7));
    }
}
