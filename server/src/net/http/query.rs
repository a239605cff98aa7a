//! Query strings as HTTP carries them (`application/x-www-form-urlencoded`):
//! `name=value` pairs split on `&`, `+` for a space, `%XX` escapes decoded by
//! the `percent-encoding` crate. Stricter than a browser: an escape that is
//! not `%` and two hex digits, or bytes that are not UTF-8 once decoded, make
//! the string malformed (a hand-written decoder once took `%+5` as a byte).

use percent_encoding::percent_decode_str;

/// A query string that does not decode; `near` is the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed query string near `{near}`")]
pub struct Malformed {
    pub near: String,
}

/// Every pair of `raw`, decoded, in order (empty parts skipped; a part with
/// no `=` has an empty value).
pub fn pairs(raw: &str) -> Result<Vec<(String, String)>, Malformed> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            match (decode(name), decode(value)) {
                (Some(n), Some(v)) => Ok((n, v)),
                _ => Err(Malformed { near: part.chars().take(64).collect() }),
            }
        })
        .collect()
}

/// One component, decoded; `None` for a bad escape or non-UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let escapes_ok = b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b'%')
        .all(|(i, _)| b.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_ok {
        return None;
    }
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8().ok().map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(decode("a%20b+c%2B"), Some("a b c+".into()));
        assert_eq!(decode("%C3%A9"), Some("é".into()));
        assert_eq!(
            pairs("x=1&&flag&y=%7A").expect("ok"),
            [("x", "1"), ("flag", ""), ("y", "z")].map(|(a, b)| (a.into(), b.into()))
        );
    }

    #[test]
    fn refuses_bad_escapes_and_non_utf8() {
        for bad in ["%+5", "%-1", "%4", "%", "%zz", "a%2", "%FF", "%C3"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(pairs("ok=1&x=%+5").unwrap_err().near, "x=%+5");
    }
}
