//! How a tenant's [`TenantLimits`] are stored: one JSON object column
//! (`limits`, `jsonb` in PostgreSQL, `TEXT` in SQLite) holding only the keys
//! that are set, e.g. `{"deliveries_per_second": 5}`; `{}` is "every limit is
//! the server's".
//!
//! Reading back never fails the row: a value this binary cannot use (not an
//! object, a key that is not a whole number from 1 to `u32::MAX`) is logged
//! and read as unset, so the server's default applies. Why not
//! `StoreError::Schema`: the limits only refine safe defaults, every request
//! of the tenant reads them, and the admin API repairs them with a PATCH
//! that reads the tenant first — an error would turn one bad value into an
//! outage of the tenant that the API could not even fix. Keys this binary
//! does not know (written by a newer one) are ignored for the same reason.

use serde_json::{Map, Value};
use tracing::warn;

use crate::{Id, Json, TenantLimits};

const REQUESTS: &str = "requests_per_second";
const ACTIVITIES: &str = "activities_per_second";
const DELIVERIES: &str = "deliveries_per_second";

impl TenantLimits {
    /// The stored form: an object with the keys that are set.
    pub(crate) fn to_stored(self) -> Json {
        let mut map = Map::new();
        for (key, value) in [
            (REQUESTS, self.requests_per_second),
            (ACTIVITIES, self.activities_per_second),
            (DELIVERIES, self.deliveries_per_second),
        ] {
            if let Some(n) = value {
                map.insert(key.to_string(), Value::from(n));
            }
        }
        Json::from_value(&Value::Object(map))
    }

    /// Reads the stored form of `tenant`'s limits (`None`: no value at all);
    /// what cannot be used is logged and read as unset.
    pub(crate) fn from_stored(tenant: Id, stored: Option<&str>) -> TenantLimits {
        let Some(text) = stored else {
            warn!(%tenant, "stored tenant limits are not text; the server's defaults apply");
            return TenantLimits::default();
        };
        let map = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => {
                warn!(%tenant, stored = %text.chars().take(200).collect::<String>(),
                    "stored tenant limits are not a JSON object; the server's defaults apply");
                return TenantLimits::default();
            }
        };
        let read = |key: &str| match map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => {
                let n = v.as_u64().filter(|n| *n >= 1).and_then(|n| u32::try_from(n).ok());
                if n.is_none() {
                    warn!(%tenant, key, value = %v, "a stored tenant limit is not a positive whole number; the server's default applies");
                }
                n
            }
        };
        TenantLimits {
            requests_per_second: read(REQUESTS),
            activities_per_second: read(ACTIVITIES),
            deliveries_per_second: read(DELIVERIES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_set_keys_are_stored_and_read_back() {
        let t = crate::new_id();
        assert_eq!(TenantLimits::default().to_stored().as_str(), "{}");
        let limits =
            TenantLimits { requests_per_second: None, activities_per_second: Some(7), deliveries_per_second: Some(5) };
        let stored = limits.to_stored();
        assert_eq!(stored.to_value(), serde_json::json!({"activities_per_second": 7, "deliveries_per_second": 5}));
        assert_eq!(TenantLimits::from_stored(t, Some(stored.as_str())), limits);
        assert_eq!(TenantLimits::from_stored(t, Some("{}")), TenantLimits::default());
    }

    #[test]
    fn what_cannot_be_used_reads_as_unset_and_the_rest_is_kept() {
        let t = crate::new_id();
        for bad in ["", "[]", "null", "not json", "5"] {
            assert_eq!(TenantLimits::from_stored(t, Some(bad)), TenantLimits::default(), "{bad}");
        }
        assert_eq!(TenantLimits::from_stored(t, None), TenantLimits::default());
        let mixed = r#"{"requests_per_second": 0, "activities_per_second": "9", "deliveries_per_second": 4294967296,
                       "future_limit": 3}"#;
        assert_eq!(TenantLimits::from_stored(t, Some(mixed)), TenantLimits::default());
        let partly =
            r#"{"requests_per_second": 1.5, "activities_per_second": 4294967295, "deliveries_per_second": null}"#;
        let read = TenantLimits::from_stored(t, Some(partly));
        assert_eq!(read, TenantLimits { activities_per_second: Some(u32::MAX), ..TenantLimits::default() });
    }
}
