//! [`ApiError`]: every way an API request can fail, mapped once, here, to an
//! HTTP status, a snake_case code and the JSON error shape
//! `{"error":{"code","message"}}`, plus `"field"` when the error names one
//! ([`ServiceError::field`]: validation errors, an inbound body's shape, JSON
//! that came in one field). Storage
//! errors keep their source for the log, but internal details never reach the
//! client.

use converger_storage::StoreError;
use serde_json::json;
use tracing::warn;

use crate::adapters::InboundError;
use crate::auth::AuthError;
use crate::net::http::Response;
use crate::service::{Public, ServiceError};

/// `Retry-After` (seconds) of a `storage_full` answer.
const STORAGE_FULL_RETRY_AFTER: &str = "10";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for {path}")]
    NoRoute { path: String },
    #[error("method {method} is not allowed here (allowed: {allow})")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    BadRequest(String),
    /// A body was sent with a Content-Type other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A query or path parameter does not parse.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter { name: &'static str, message: String },
    #[error("storage is unavailable")]
    StorageUnavailable(#[source] StoreError),
    /// Readiness in a cluster: the NATS connection is down. The node still
    /// serves its own clients; load balancers should prefer the others.
    #[error("this node has lost the cluster bus (NATS); it serves its own clients but not other nodes' live traffic")]
    ClusterUnavailable,
    /// A browser Origin not in `--cors-origins` (a preflight or a socket upgrade).
    #[error("this origin is not allowed: add it to --cors-origins")]
    OriginNotAllowed,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::Service(ServiceError::Store(e))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError::Service(ServiceError::Auth(e))
    }
}

impl ApiError {
    fn status_code(&self) -> (u16, &'static str) {
        match self {
            ApiError::NoRoute { .. } => (404, "not_found"),
            ApiError::MethodNotAllowed { .. } => (405, "method_not_allowed"),
            ApiError::BadRequest(_) => (400, "bad_request"),
            ApiError::UnsupportedMediaType(_) => (415, "unsupported_media_type"),
            ApiError::InvalidParameter { .. } => (400, "invalid_parameter"),
            ApiError::StorageUnavailable(_) => (503, "storage_unavailable"),
            ApiError::ClusterUnavailable => (503, "cluster_unavailable"),
            ApiError::OriginNotAllowed => (403, "origin_not_allowed"),
            ApiError::Service(e) => e.status_code(),
        }
    }

    pub fn status(&self) -> u16 {
        self.status_code().0
    }

    pub fn code(&self) -> &'static str {
        self.status_code().1
    }

    pub fn into_response(self) -> Response {
        let public = match &self {
            // The one rule for what a client sees (and what is logged instead).
            ApiError::Service(e) => e.public(),
            ApiError::StorageUnavailable(e) => ServiceError::Store(e.clone()).public(),
            other => {
                let (status, code) = other.status_code();
                Public { status, code, message: other.to_string(), field: None }
            }
        };
        let Public { status, code, message, field } = public;
        // Readiness refusals are logged where the outage is seen, not per probe.
        // A full disk is logged by the storage, when it becomes full and when it recovers.
        if status == 503 && !matches!(code, "storage_unavailable" | "storage_full" | "cluster_unavailable") {
            warn!(error = ?self, "request refused: {code}");
        }
        let response = match field {
            Some(field) => {
                Response::json(status, &json!({"error": {"code": code, "message": message, "field": field}}))
            }
            None => Response::error(status, code, &message),
        };
        match self {
            ApiError::MethodNotAllowed { allow, .. } => response.with_header("allow", allow),
            // An adapter's 405 (a GET to a channel type that takes POST only) says so too.
            ApiError::Service(ServiceError::Inbound(InboundError::MethodNotAllowed { allow, .. })) => {
                response.with_header("allow", allow)
            }
            ApiError::Service(ServiceError::RateLimited { retry_after, .. }) => {
                response.with_header("retry-after", crate::rt::rate::retry_after_secs(retry_after).to_string())
            }
            // All momentary: tell clients when to come back.
            _ if matches!(code, "overloaded" | "shutting_down" | "storage_unavailable" | "cluster_unavailable") => {
                response.with_header("retry-after", "1")
            }
            // Space comes back when an operator frees it: no point in asking every second.
            _ if code == "storage_full" => response.with_header("retry-after", STORAGE_FULL_RETRY_AFTER),
            _ if status == 401 => response.with_header("www-authenticate", "Bearer"),
            _ => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use converger_storage::Entity;

    use super::*;

    fn body(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("json")
    }

    #[test]
    fn store_errors_map_to_statuses_and_hide_internals() {
        let e = ApiError::from(StoreError::NotFound(Entity::Channel));
        assert_eq!((e.status(), e.code()), (404, "not_found"));
        let e = ApiError::from(StoreError::Internal("SELECT secret FROM x".into()));
        let r = e.into_response();
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }

    #[test]
    fn method_not_allowed_carries_allow_header() {
        let r = ApiError::MethodNotAllowed { method: "POST".into(), allow: "GET, HEAD".into() }.into_response();
        assert_eq!(r.status, 405);
        assert!(r.headers.iter().any(|(n, v)| *n == "allow" && v == "GET, HEAD"));
    }

    #[test]
    fn an_adapters_method_not_allowed_carries_allow_too() {
        let e = InboundError::MethodNotAllowed { method: "GET".into(), allow: "POST" };
        let r = ApiError::from(ServiceError::Inbound(e)).into_response();
        assert_eq!(r.status, 405);
        assert_eq!(body(&r)["error"]["code"], "method_not_allowed");
        assert!(r.headers.iter().any(|(n, v)| *n == "allow" && v == "POST"), "{:?}", r.headers);
    }

    #[test]
    fn an_adapters_validation_failure_names_its_field_like_every_other() {
        let e = InboundError::invalid("results", "is required (an array)");
        let r = ApiError::from(ServiceError::Inbound(e)).into_response();
        assert_eq!(r.status, 422);
        let v = body(&r);
        assert_eq!(
            (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (Some("validation_failed"), Some("results"))
        );
    }

    #[test]
    fn overload_is_503_with_retry_after() {
        let r = ApiError::from(ServiceError::Publish(crate::service::PublishError::Overloaded)).into_response();
        assert_eq!(r.status, 503);
        assert_eq!(body(&r)["error"]["code"], "overloaded");
        assert!(r.headers.iter().any(|(n, v)| *n == "retry-after" && v == "1"));
    }

    #[test]
    fn a_full_disk_is_503_storage_full_with_retry_after_and_no_path() {
        let full = StoreError::Full("database or disk is full (/data/converger.db)".into());
        let r = ApiError::from(ServiceError::Publish(crate::service::PublishError::Store(full))).into_response();
        assert_eq!(r.status, 503);
        let v = body(&r);
        assert_eq!(v["error"]["code"], "storage_full");
        assert!(!v["error"]["message"].as_str().unwrap_or("").contains("/data"), "{v}");
        assert!(r.headers.iter().any(|(n, v)| *n == "retry-after" && v == STORAGE_FULL_RETRY_AFTER));
    }

    #[test]
    fn auth_errors_are_401_403_or_404_and_validation_names_the_field() {
        let status = |e: AuthError| {
            let e = ApiError::from(e);
            (e.status(), e.code())
        };
        assert_eq!(status(AuthError::Missing), (401, "unauthorized"));
        assert_eq!(status(AuthError::TenantInactive), (403, "tenant_inactive"));
        assert_eq!(status(AuthError::ChannelInactive), (403, "channel_inactive"));
        assert_eq!(status(AuthError::AdminAddressRefused), (403, "forbidden"));
        assert_eq!(status(AuthError::AdminDisabled), (404, "admin_disabled"));
        let r = ApiError::from(AuthError::Missing).into_response();
        assert!(r.headers.iter().any(|(n, _)| *n == "www-authenticate"));
        let r = ApiError::from(ServiceError::invalid("sender", "`sender` is required")).into_response();
        assert_eq!(r.status, 422);
        assert_eq!(
            body(&r),
            json!({"error": {"code": "validation_failed", "message": "`sender` is required", "field": "sender"}})
        );
    }

    #[test]
    fn an_inbound_webhook_refused_by_its_adapter_names_the_field_like_every_422() {
        let e =
            crate::adapters::InboundError::Invalid { field: "entry[0].changes".into(), message: "is required".into() };
        let r = ApiError::from(ServiceError::from(e)).into_response();
        assert_eq!(r.status, 422);
        assert_eq!(
            body(&r),
            json!({"error": {"code": "validation_failed", "message": "`entry[0].changes`: is required",
                             "field": "entry[0].changes"}})
        );
        // Other inbound refusals carry no field.
        let r = ApiError::from(ServiceError::from(crate::adapters::InboundError::BadRequest("not JSON".into())))
            .into_response();
        assert_eq!(body(&r), json!({"error": {"code": "bad_request", "message": "not JSON"}}));
    }
}
