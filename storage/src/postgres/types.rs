//! Binary wire encodings of the crate's own column types, so values cross the
//! connection without a date or JSON library in between.
//!
//! - `Timestamp` ⇄ `timestamptz`: PostgreSQL sends microseconds since
//!   2000-01-01 UTC as a big-endian i64; ours count from 1970. The shift
//!   saturates, so PostgreSQL's ±infinity (i64::MAX / i64::MIN) stay at the ends.
//! - `Json` ⇄ `jsonb` (version byte 1, then the text) or `json` (the text).
//!   jsonb comes back re-spaced and with keys re-ordered; `Json` compares by value.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::{Json, Timestamp};

type BoxError = Box<dyn Error + Sync + Send>;

/// 2000-01-01T00:00:00Z in microseconds since the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The only jsonb binary format version PostgreSQL has defined so far.
const JSONB_VERSION: u8 = 1;

pub(super) fn to_pg_micros(t: Timestamp) -> i64 {
    t.as_micros().saturating_sub(PG_EPOCH_MICROS)
}

pub(super) fn from_pg_micros(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros.saturating_add(PG_EPOCH_MICROS))
}

impl ToSql for Timestamp {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&to_pg_micros(*self).to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Timestamp {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| format!("timestamp of {} bytes, expected 8", raw.len()))?;
        Ok(from_pg_micros(i64::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP)
    }
}

impl ToSql for Json {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[JSONB_VERSION]);
        }
        out.extend_from_slice(self.as_str().as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Json {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let body = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((&JSONB_VERSION, rest)) => rest,
                Some((v, _)) => return Err(format!("unsupported jsonb format version {v}").into()),
                None => return Err("empty jsonb value".into()),
            }
        } else {
            raw
        };
        Ok(Json::parse(std::str::from_utf8(body)?)?)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: ToSql>(v: &T, ty: &Type) -> Vec<u8> {
        let mut out = BytesMut::new();
        v.to_sql_checked(ty, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn timestamps_shift_to_the_2000_epoch_and_back() {
        let y2k = Timestamp::parse_rfc3339("2000-01-01T00:00:00Z").unwrap();
        assert_eq!(encode(&y2k, &Type::TIMESTAMPTZ), 0i64.to_be_bytes());
        let t = Timestamp::from_micros(1_649_367_553_123_456);
        let raw = encode(&t, &Type::TIMESTAMPTZ);
        assert_eq!(Timestamp::from_sql(&Type::TIMESTAMPTZ, &raw).unwrap(), t);
        let before = Timestamp::from_micros(-5);
        assert_eq!(Timestamp::from_sql(&Type::TIMESTAMPTZ, &encode(&before, &Type::TIMESTAMPTZ)).unwrap(), before);
    }

    #[test]
    fn infinite_timestamps_saturate_instead_of_overflowing() {
        let inf = Timestamp::from_sql(&Type::TIMESTAMPTZ, &i64::MAX.to_be_bytes()).unwrap();
        assert_eq!(inf.as_micros(), i64::MAX);
        let neg = Timestamp::from_sql(&Type::TIMESTAMPTZ, &i64::MIN.to_be_bytes()).unwrap();
        assert_eq!(to_pg_micros(neg), i64::MIN);
        assert!(Timestamp::from_sql(&Type::TIMESTAMPTZ, &[0, 1, 2]).is_err());
    }

    #[test]
    fn timestamps_refuse_other_types() {
        let mut out = BytesMut::new();
        assert!(Timestamp::from_micros(0).to_sql_checked(&Type::INT8, &mut out).is_err());
    }

    #[test]
    fn jsonb_carries_a_version_byte_and_json_does_not() {
        let j = Json::parse(r#"{"a":1}"#).unwrap();
        assert_eq!(encode(&j, &Type::JSONB), b"\x01{\"a\":1}");
        assert_eq!(encode(&j, &Type::JSON), b"{\"a\":1}");
        assert_eq!(Json::from_sql(&Type::JSONB, b"\x01{\"a\": 1}").unwrap(), j);
        assert_eq!(Json::from_sql(&Type::JSON, b"{\"a\":1}").unwrap(), j);
    }

    #[test]
    fn bad_jsonb_is_an_error_not_a_panic() {
        assert!(Json::from_sql(&Type::JSONB, b"").is_err());
        assert!(Json::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(Json::from_sql(&Type::JSONB, b"\x01{").is_err());
        assert!(Json::from_sql(&Type::JSONB, b"\x01\xff").is_err());
    }
}
