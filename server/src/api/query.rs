//! Query strings: percent-decoded `name=value` pairs, and the typed readers
//! every list uses. Unknown parameters are ignored (caches and proxies add
//! their own). A parameter the server reads must, when present, be given once
//! with a non-empty value that parses; else 400 `invalid_parameter` naming it.
//! `limit=`, a bare `limit`, or `limit=1&limit=2` are refused, not read as
//! absent or as one of the values: the server never guesses what was meant.
//! Integers are plain decimal digits (no sign, no `+`: no parameter takes a
//! negative value); ids are canonical (see [`parse_id`]).
//!
//! Pagination: `limit` (1..=1000, default 50) and `cursor`, the opaque
//! `next_cursor` of the previous page (today: the last id, which lists are
//! ordered by).

use std::ops::RangeInclusive;

use converger_storage::{Id, PageRequest};

use super::ApiError;
use crate::net::http::query;
use crate::service::input::parse_id;

pub const DEFAULT_LIMIT: u32 = 50;

/// A parsed query string.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs = query::pairs(raw.unwrap_or("")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Query(pairs))
    }

    /// The value of `name`, if it is given: once, and not empty.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let invalid = |message: &str| ApiError::InvalidParameter { name, message: message.to_string() };
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(invalid("given more than once")),
            (Some(""), None) => Err(invalid("has no value")),
            (Some(v), None) => Ok(Some(v)),
        }
    }

    /// `name` parsed by `parse`, whose refusal `expected` describes.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParameter { name, message: format!("`{v}` is not {expected}") }),
        }
    }

    pub fn id(&self, name: &'static str) -> Result<Option<Id>, ApiError> {
        self.parsed(name, "a valid id", parse_id)
    }

    /// An integer in `range`, written as plain digits (no range takes a
    /// negative value today, so no sign is read at all).
    pub fn int(&self, name: &'static str, range: RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        self.parsed(name, &expected, |v| decimal(v).filter(|n| range.contains(n)))
    }

    /// `reader`: the sender whose own reactions a read marks `me` (an API
    /// key reads for nobody unless it names one).
    pub fn reader(&self) -> Result<Option<&str>, ApiError> {
        match self.get("reader")? {
            Some(r) if r.len() > crate::service::activities::MAX_SENDER_BYTES => Err(ApiError::InvalidParameter {
                name: "reader",
                message: format!("is longer than {} bytes", crate::service::activities::MAX_SENDER_BYTES),
            }),
            other => Ok(other),
        }
    }

    /// `limit` and `cursor` of a list.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest { after: self.cursor()?, limit: self.limit()? })
    }

    pub fn limit(&self) -> Result<u32, ApiError> {
        let max = i64::from(PageRequest::MAX_LIMIT);
        // The range keeps it within u32.
        Ok(self.int("limit", 1..=max)?.map_or(DEFAULT_LIMIT, |n| n as u32))
    }

    fn cursor(&self) -> Result<Option<Id>, ApiError> {
        self.parsed("cursor", "a cursor returned as next_cursor", parse_id)
    }
}

/// Plain decimal digits, and nothing else: `str::parse` alone would also take
/// a leading `+` or `-`.
fn decimal(v: &str) -> Option<i64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str, read: impl Fn(&Query) -> Result<(), ApiError>) -> &'static str {
        match read(&Query::parse(Some(raw)).expect("parse")) {
            Err(ApiError::InvalidParameter { name, .. }) => name,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn decodes_pairs_and_reads_typed_values() {
        let id = converger_storage::new_id();
        let q = Query::parse(Some(&format!("status=a%20b&limit=5&cursor={id}&x=&flag&x=1"))).expect("parse");
        assert_eq!(q.get("status").expect("status"), Some("a b"));
        assert_eq!(q.get("missing").expect("absent"), None);
        assert_eq!(q.page().expect("page"), PageRequest { after: Some(id), limit: 5 });
        assert_eq!(Query::parse(None).expect("empty").page().expect("page").limit, DEFAULT_LIMIT);
        assert_eq!(Query::parse(Some("limit=007")).expect("parse").limit().expect("digits"), 7);
    }

    #[test]
    fn bad_values_are_invalid_parameters_naming_the_parameter() {
        for (raw, name) in
            [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"), ("cursor=zz", "cursor")]
        {
            assert_eq!(refused(raw, |q| q.page().map(drop)), name);
        }
        assert!(matches!(Query::parse(Some("a=%zz")), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn a_read_parameter_must_have_a_value_be_unsigned_digits_and_come_once() {
        let page = |q: &Query| q.page().map(drop);
        let seq = |q: &Query| q.int("after_seq", 0..=i64::MAX).map(drop);
        let id = |q: &Query| q.id("channel_id").map(drop);
        let status = |q: &Query| q.parsed("status", "a status", |v| (v == "active").then_some(())).map(drop);
        for raw in [
            "limit=",
            "limit",
            "limit=+5",
            "limit=-5",
            "limit=%2B5",
            "limit=+",
            "limit= 5",
            "limit=5 ",
            "limit=1&limit=2",
            "limit=&limit=2",
            "limit=1&limit=1",
            "limit=99999999999999999999999",
        ] {
            assert_eq!(refused(raw, page), "limit", "{raw}");
        }
        for raw in ["after_seq=", "after_seq=+1", "after_seq=-0", "after_seq=1e3", "after_seq=0x10"] {
            assert_eq!(refused(raw, seq), "after_seq", "{raw}");
        }
        for raw in ["channel_id=", "channel_id", "cursor="] {
            let name = if raw.starts_with("cursor") { "cursor" } else { "channel_id" };
            let read = |q: &Query| if name == "cursor" { page(q) } else { id(q) };
            assert_eq!(refused(raw, read), name, "{raw}");
        }
        assert_eq!(refused("status=", status), "status");
        assert_eq!(refused("status=active&status=active", status), "status");
        // Parameters nobody reads are not checked: a proxy's `_=` or `utm=a&utm=b` pass.
        assert!(page(&Query::parse(Some("_=&utm=a&utm=b")).expect("parse")).is_ok());
    }

    #[test]
    fn query_ids_are_canonical_only() {
        let id = converger_storage::new_id();
        let read = |raw: String| Query::parse(Some(&raw)).expect("parse").id("tenant_id");
        assert_eq!(read(format!("tenant_id={id}")).expect("canonical"), Some(id));
        assert_eq!(read(format!("tenant_id={}", id.to_string().to_uppercase())).expect("upper"), Some(id));
        for lenient in [id.simple().to_string(), format!("%7B{id}%7D"), format!("urn:uuid:{id}")] {
            assert!(
                matches!(
                    read(format!("tenant_id={lenient}")),
                    Err(ApiError::InvalidParameter { name: "tenant_id", .. })
                ),
                "{lenient}"
            );
        }
    }
}
