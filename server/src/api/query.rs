//! Query strings: percent-decoded `name=value` pairs, and the typed readers
//! every list uses. A value that does not parse is 400 `invalid_parameter`
//! naming the parameter; unknown parameters are ignored (as caches and
//! proxies add their own); an empty value counts as absent.
//!
//! Pagination: `limit` (1..=1000, default 50) and `cursor`, the opaque
//! `next_cursor` of the previous page (today: the last id, which lists are
//! ordered by).

use std::ops::RangeInclusive;

use converger_storage::{Id, PageRequest};

use super::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;

/// A parsed query string.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let bad = || ApiError::BadRequest(format!("malformed query string near `{part}`"));
            pairs.push((decode(name).ok_or_else(bad)?, decode(value).ok_or_else(bad)?));
        }
        Ok(Query(pairs))
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// `name` parsed by `parse`, whose refusal `expected` describes.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParameter { name, message: format!("`{v}` is not {expected}") }),
        }
    }

    pub fn id(&self, name: &'static str) -> Result<Option<Id>, ApiError> {
        self.parsed(name, "a valid id", |v| Id::parse_str(v).ok())
    }

    pub fn int(&self, name: &'static str, range: RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        self.parsed(name, &expected, |v| v.parse::<i64>().ok().filter(|n| range.contains(n)))
    }

    /// `limit` and `cursor` of a list.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest { after: self.cursor()?, limit: self.limit()? })
    }

    pub fn limit(&self) -> Result<u32, ApiError> {
        let max = i64::from(PageRequest::MAX_LIMIT);
        Ok(self.int("limit", 1..=max)?.map_or(DEFAULT_LIMIT, |n| n as u32))
    }

    fn cursor(&self) -> Result<Option<Id>, ApiError> {
        self.parsed("cursor", "a cursor returned as next_cursor", |v| Id::parse_str(v).ok())
    }
}

/// Percent-decoding with `+` as space; `None` for a bad escape or non-UTF-8.
/// (Also used by the adapters, which read providers' query strings.)
pub(crate) fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_reads_typed_values() {
        let id = converger_storage::new_id();
        let q = Query::parse(Some(&format!("status=a%20b&limit=5&cursor={id}&x=&flag"))).expect("parse");
        assert_eq!(q.get("status"), Some("a b"));
        assert_eq!(q.get("x"), None);
        assert_eq!(q.page().expect("page"), PageRequest { after: Some(id), limit: 5 });
        assert_eq!(Query::parse(None).expect("empty").page().expect("page").limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_values_are_invalid_parameters_naming_the_parameter() {
        for (raw, name) in
            [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"), ("cursor=zz", "cursor")]
        {
            match Query::parse(Some(raw)).expect("parse").page() {
                Err(ApiError::InvalidParameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{raw}: {other:?}"),
            }
        }
        assert!(matches!(Query::parse(Some("a=%zz")), Err(ApiError::BadRequest(_))));
    }
}
